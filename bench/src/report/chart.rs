//! The latency chart: percentiles of several histograms, as SVG.

use hdrhistogram::Histogram;

use super::latency::ms_at;

/// A percentile chart (x: percentile on a log scale from 0 to 99.99, y:
/// latency in ms) of each named histogram, as a standalone SVG document.
pub fn latency_svg(title: &str, series: &[(&str, &Histogram<u64>)]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 420.0;
    const L: f64 = 70.0;
    const R: f64 = 20.0;
    const T: f64 = 40.0;
    const B: f64 = 60.0;
    const NINES: f64 = 4.0; // up to 99.99%
    const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let quantiles: Vec<f64> = (0..=200).map(|i| 1.0 - 10f64.powf(-NINES * i as f64 / 200.0)).collect();
    let ymax = series.iter().map(|(_, h)| ms_at(h, 1.0 - 10f64.powf(-NINES))).fold(1.0, f64::max) * 1.1;
    let x = |q: f64| L + (W - L - R) * (-(1.0 - q).max(1e-12).log10() / NINES).min(1.0);
    let y = |ms: f64| T + (H - T - B) * (1.0 - ms / ymax);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        escape(title)
    );
    // Axes, grid and labels.
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%"].iter().enumerate() {
        let q = 1.0 - 10f64.powi(-(i as i32));
        let xi = x(q);
        out += &format!(
            "<line x1=\"{xi:.1}\" y1=\"{T}\" x2=\"{xi:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n<text x=\"{xi:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>\n",
            H - B,
            H - B + 18.0
        );
    }
    for i in 0..=5 {
        let ms = ymax * i as f64 / 5.0;
        let yi = y(ms);
        out += &format!(
            "<line x1=\"{L}\" y1=\"{yi:.1}\" x2=\"{:.1}\" y2=\"{yi:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{ms:.0}</text>\n",
            W - R,
            L - 6.0,
            yi + 4.0
        );
    }
    out += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile</text>\n<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">latency (ms)</text>\n",
        (L + W - R) / 2.0,
        H - 14.0,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    for (i, (name, h)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = quantiles.iter().map(|&q| format!("{:.1},{:.1}", x(q), y(ms_at(h, q)))).collect();
        out += &format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{} (n={})</text>\n",
            points.join(" "),
            L + 10.0,
            T + 16.0 + 16.0 * i as f64,
            escape(name),
            h.len()
        );
    }
    out += "</svg>\n";
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::histogram;

    #[test]
    fn svg_plots_each_series_in_percentile_order() {
        let mut a = histogram();
        let mut b = histogram();
        for i in 1..=1000u64 {
            a.record(i * 1000).unwrap();
            b.record(i * 3000).unwrap();
        }
        let svg = latency_svg("produce <latency>", &[("produce", &a), ("e2e", &b)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("produce &lt;latency&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Higher percentiles are further right and higher up (smaller y).
        let first = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        let pts: Vec<(f64, f64)> = first
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(pts.len(), 201);
        assert!(pts.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 <= w[0].1));
        assert!(pts[0].1 > pts[200].1);
    }
}
