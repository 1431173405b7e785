//! The latency chart: percentiles of several histograms, drawn by plotters.
//!
//! SVG only. Plotters' bitmap backend draws no text without a TrueType font
//! stack (its `ttf` feature links fontconfig through font-kit; `ab_glyph`
//! needs a font file at run time), which CI machines need not have, and a
//! PNG chart without its axis labels and legend would not say what it shows.

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::latency::ms_at;
use crate::procs::Err;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 420;
/// The chart reaches the 99.99th percentile: four nines.
const NINES: f64 = 4.0;
/// Points per series, evenly spread over the nines.
const POINTS: u32 = 200;
const COLOURS: [RGBColor; 4] =
    [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28), RGBColor(0x2c, 0xa0, 0x2c), RGBColor(0x94, 0x67, 0xbd)];

/// A percentile chart (x: percentile on a log scale from 0 to 99.99, y:
/// latency in ms) of each named histogram, as a standalone SVG document.
pub fn latency_svg(title: &str, series: &[(&str, &Histogram<u64>)]) -> Result<String, Err> {
    let ymax = series.iter().map(|(_, h)| ms_at(h, quantile(NINES))).fold(1.0, f64::max) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..NINES, 0.0..ymax)?;
        chart
            .configure_mesh()
            .x_labels(NINES as usize + 1)
            .x_label_formatter(&|nines| percentile_label(*nines))
            .y_labels(6)
            .light_line_style(TRANSPARENT)
            .y_label_formatter(&|ms| format!("{ms:.0}"))
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .draw()?;
        for (i, (name, h)) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points = (0..=POINTS).map(|i| {
                let nines = NINES * f64::from(i) / f64::from(POINTS);
                (nines, ms_at(h, quantile(nines)))
            });
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(format!("{name} (n={})", h.len()))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            // Latency rises to the right, so the lower right is the emptiest corner.
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// The quantile `nines` nines in: 0 → 0, 1 → 0.9, 2 → 0.99, …
fn quantile(nines: f64) -> f64 {
    1.0 - 10f64.powf(-nines)
}

/// "0%", "90%", "99%", "99.9%", "99.99%": as many decimals as the nines need.
fn percentile_label(nines: f64) -> String {
    let decimals = (nines.round() as usize).saturating_sub(2);
    format!("{:.decimals$}%", 100.0 * quantile(nines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::histogram;

    #[test]
    fn percentile_labels() {
        let labels: Vec<String> = (0..=4).map(|n| percentile_label(f64::from(n))).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
    }

    #[test]
    fn svg_plots_each_series_in_percentile_order() {
        let mut a = histogram();
        let mut b = histogram();
        for i in 1..=1000u64 {
            a.record(i * 1000).unwrap();
            b.record(i * 3000).unwrap();
        }
        let svg = latency_svg("produce <latency>", &[("produce", &a), ("e2e", &b)]).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> =
            doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
        for wanted in ["produce <latency>", "produce (n=1000)", "e2e (n=1000)", "99.99%", "percentile", "latency (ms)"]
        {
            assert!(texts.contains(&wanted), "no {wanted:?} in {texts:?}");
        }
        // One line per series (the legend's samples are two-point lines).
        let lines: Vec<Vec<(f64, f64)>> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter_map(|n| n.attribute("points"))
            .map(|points| {
                points
                    .split_whitespace()
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .filter(|pts: &Vec<(f64, f64)>| pts.len() > 2)
            .collect();
        assert_eq!(lines.len(), 2);
        for pts in &lines {
            assert_eq!(pts.len(), POINTS as usize + 1);
            // Higher percentiles are further right and higher up (smaller y).
            assert!(pts.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 <= w[0].1));
            assert!(pts[0].1 > pts[POINTS as usize].1);
        }
        // b is three times slower: its line is above a's at every point.
        assert!(lines[0].iter().zip(&lines[1]).all(|(a, b)| b.1 <= a.1));
    }

    #[test]
    fn no_series_is_still_a_chart() {
        let svg = latency_svg("nothing", &[]).unwrap();
        assert!(roxmltree::Document::parse(&svg).is_ok());
    }
}
