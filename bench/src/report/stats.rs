//! The agent's store counters (`/v1/stats`) and what its requests cost at
//! AWS S3 Standard prices.

use serde::Serialize;
use serde_json::Value;

use super::GIB;
use crate::procs::Err;

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
    /// The agent's CPU time in compression, microseconds (estimated from a
    /// sample; none where the agent cannot time it).
    pub compression_cpu_us: Option<u64>,
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
            compression_cpu_us: v["compression_cpu_us"].as_u64(),
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
            compression_cpu_us: self
                .compression_cpu_us
                .zip(before.compression_cpu_us)
                .map(|(a, b)| a.saturating_sub(b)),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
