//! What a benchmark reads and prints: the agent's store counters
//! (`/v1/stats`), request cost at AWS S3 Standard prices, agent CPU time from
//! `/proc`, latency histograms and their SVG chart.

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::procs::Err;

pub const MIB: f64 = 1024.0 * 1024.0;
pub const GIB: f64 = 1024.0 * MIB;

/// AWS S3 Standard request prices (us-east-1), dollars per 1,000 requests.
/// PUT, COPY, POST and LIST cost the same; GET and the rest the lower price;
/// DELETE is free.
pub const PUT_LIST_PER_1000: f64 = 0.005;
pub const GET_PER_1000: f64 = 0.0004;

pub fn price_table() -> String {
    format!(
        "prices (AWS S3 Standard, us-east-1): PUT/COPY/POST/LIST ${PUT_LIST_PER_1000} per 1,000; GET ${GET_PER_1000} per 1,000; DELETE free; storage and transfer not counted"
    )
}

/// Requests and bytes for one kind of key (or a sum): the agent's own type.
pub type Counts = floe_broker::metered::CounterSnapshot;

/// Dollars for these requests at S3 Standard prices.
pub fn dollars(c: &Counts) -> f64 {
    (c.put + c.list) as f64 * PUT_LIST_PER_1000 / 1000.0 + c.get as f64 * GET_PER_1000 / 1000.0
}

/// One agent's `/v1/stats`, or the difference of two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub log: Counts,
    pub segments: Counts,
    pub snapshots: Counts,
    pub other: Counts,
    pub cache_lookups: u64,
    pub cache_loads: u64,
}

impl Stats {
    pub fn from_json(v: &Value) -> Self {
        let s: floe_broker::metered::StoreStats = serde_json::from_value(v["store"].clone()).unwrap_or_default();
        Self {
            log: s.log,
            segments: s.segments,
            snapshots: s.snapshots,
            other: s.other,
            cache_lookups: v["cache"]["lookups"].as_u64().unwrap_or(0),
            cache_loads: v["cache"]["loads"].as_u64().unwrap_or(0),
        }
    }

    pub async fn fetch(http: &reqwest::Client, url: &str) -> Result<Self, Err> {
        let v: Value = http.get(format!("{url}/v1/stats")).send().await?.error_for_status()?.json().await?;
        Ok(Self::from_json(&v))
    }

    pub fn total(&self) -> Counts {
        let add = |a: u64, b: u64| a + b;
        self.log.zip(self.segments, add).zip(self.snapshots, add).zip(self.other, add)
    }

    /// `self - before`, counter by counter.
    pub fn since(&self, before: &Stats) -> Stats {
        let sub = |a: u64, b: u64| a.saturating_sub(b);
        Stats {
            log: self.log.zip(before.log, sub),
            segments: self.segments.zip(before.segments, sub),
            snapshots: self.snapshots.zip(before.snapshots, sub),
            other: self.other.zip(before.other, sub),
            cache_lookups: self.cache_lookups.saturating_sub(before.cache_lookups),
            cache_loads: self.cache_loads.saturating_sub(before.cache_loads),
        }
    }
}

/// Object-store requests per GiB of payload, and their price.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PerGib {
    pub put: f64,
    pub get: f64,
    pub list: f64,
    pub delete: f64,
    pub dollars: f64,
}

impl PerGib {
    pub fn of(c: &Counts, payload_bytes: u64) -> Self {
        let gib = (payload_bytes as f64 / GIB).max(f64::MIN_POSITIVE);
        Self {
            put: c.put as f64 / gib,
            get: c.get as f64 / gib,
            list: c.list as f64 / gib,
            delete: c.delete as f64 / gib,
            dollars: dollars(c) / gib,
        }
    }
}

/// utime + stime of a process, in seconds, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Clock ticks are USER_HZ, 100 per second on every Linux architecture Floe runs on.
pub fn parse_proc_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses; fields
    // after the last ')' start at field 3, so utime (14) and stime (15) are
    // the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 significant digits.
#[allow(clippy::expect_used)] // constant bounds that `new_with_bounds` accepts (tested)
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn ms_at(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() { 0.0 } else { h.value_at_quantile(q) as f64 / 1000.0 }
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            count: h.len(),
            p50_ms: ms_at(h, 0.5),
            p90_ms: ms_at(h, 0.9),
            p99_ms: ms_at(h, 0.99),
            p999_ms: ms_at(h, 0.999),
            max_ms: if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms ({} samples)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.count
        )
    }
}

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

    #[test]
    fn reads_cpu_time_after_the_command_name() {
        // Field 2 holds a space and a parenthesis; utime 250, stime 50 ticks.
        let stat = "4242 (floe agent) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 1000 0 0";
        assert_eq!(parse_proc_stat(stat), Some(3.0));
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn own_process_has_cpu_time() {
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds(std::process::id()).is_some());
    }

    #[test]
    fn differences_and_costs() {
        let v = serde_json::json!({
            "store": {"log": {"put": 10, "get": 2, "list": 1}, "segments": {"put": 5, "get": 100, "put_bytes": 50},
                      "snapshots": {}, "other": {"delete": 3}},
            "cache": {"lookups": 7, "loads": 1}
        });
        let after = Stats::from_json(&v);
        let before = Stats { log: Counts { put: 4, ..Counts::default() }, ..Stats::default() };
        let d = after.since(&before);
        assert_eq!(d.log.put, 6);
        let t = d.total();
        assert_eq!((t.put, t.get, t.list, t.delete, t.put_bytes), (11, 102, 1, 3, 50));
        // 12 PUT/LIST at $0.005/1000 + 102 GET at $0.0004/1000.
        assert!((dollars(&t) - (12.0 * 0.005 + 102.0 * 0.0004) / 1000.0).abs() < 1e-12);
        let per = PerGib::of(&t, (GIB / 2.0) as u64);
        assert!((per.put - 22.0).abs() < 1e-9 && (per.get - 204.0).abs() < 1e-9);
    }

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
