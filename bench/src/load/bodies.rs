//! Produce request bodies of random records.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use super::{Keys, Load};
use crate::clock::now_micros;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Random alphanumeric text (compresses roughly as much as base64 data does).
pub fn random_text(rng: &mut impl Rng, n: usize) -> String {
    (0..n).map(|_| ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())] as char).collect()
}

/// Builds produce bodies of fresh random alphanumeric values (about 6 bits
/// of entropy per byte, so zstd cannot shrink them by repetition). With
/// `stamp`, each value starts with the send time in microseconds (16
/// digits), for end-to-end latency.
pub(crate) struct Bodies {
    load: Load,
    rng: StdRng,
    raw: Vec<u8>,
}

impl Bodies {
    pub(crate) fn new(load: &Load, seed: u64) -> Self {
        Self { load: load.clone(), rng: StdRng::seed_from_u64(seed), raw: vec![0; load.record_bytes] }
    }

    pub(crate) fn next(&mut self, stamp: bool) -> Bytes {
        let n = self.load.record_bytes;
        let mut body = Vec::with_capacity((n + 40) * self.load.records_per_request + 16);
        body.extend_from_slice(b"{\"records\":[");
        let sent = now_micros();
        for i in 0..self.load.records_per_request {
            if i > 0 {
                body.push(b',');
            }
            body.push(b'{');
            if let Keys::Uniform(k) = self.load.keys {
                body.extend_from_slice(format!("\"key\":\"k{}\",", self.rng.random_range(0..k.max(1))).as_bytes());
            }
            body.extend_from_slice(b"\"value\":\"");
            self.rng.fill_bytes(&mut self.raw);
            let mut value: Vec<u8> = self.raw.iter().map(|b| ALPHANUMERIC[*b as usize % ALPHANUMERIC.len()]).collect();
            if stamp && n >= 16 {
                value[..16].copy_from_slice(format!("{sent:016}").as_bytes());
            }
            body.extend_from_slice(&value);
            body.extend_from_slice(b"\"}");
        }
        body.extend_from_slice(b"]}");
        Bytes::from(body)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use super::*;

    #[test]
    fn bodies_have_the_requested_shape() {
        let load = Load {
            producers: 1,
            record_bytes: 100,
            records_per_request: 3,
            partitions: 4,
            keys: Keys::Uniform(10),
            rate: None,
            duration: Duration::from_secs(1),
        };
        let mut b = Bodies::new(&load, 1);
        let v: Value = serde_json::from_slice(&b.next(true)).unwrap();
        let records = v["records"].as_array().unwrap();
        assert_eq!(records.len(), 3);
        for r in records {
            let value = r["value"].as_str().unwrap();
            assert_eq!(value.len(), 100);
            let sent: u64 = value[..16].parse().unwrap();
            assert!(sent.abs_diff(now_micros()) < 60_000_000);
            assert!(r["key"].as_str().unwrap().starts_with('k'));
        }
        // Fresh random values: no two records alike beyond the stamp.
        let tails: std::collections::HashSet<&str> =
            records.iter().map(|r| &r["value"].as_str().unwrap()[16..]).collect();
        assert_eq!(tails.len(), 3);
        let unkeyed = Load { keys: Keys::None, ..load };
        let v: Value = serde_json::from_slice(&Bodies::new(&unkeyed, 1).next(false)).unwrap();
        assert!(v["records"][0].get("key").is_none());
    }
}
