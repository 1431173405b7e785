//! How fast zstd (level 1, as segments use it) compresses a request's
//! records laid out as segment format v1 lays them out, each record's fixed
//! fields (timestamp, lengths) before its value, against the same records
//! with all fixed fields first and the values after them, and against the
//! values alone. Per second of this thread's CPU time, alternating the three
//! in rounds so that each sees the machine at the same speed.
//!
//! ```sh
//! taskset -c 0 cargo run --release -p floe-broker --example zstd_layout
//! ```
//!
//! docs/benchmarks.md ("2026-12-07 (fourth)") has what it found and why.

use std::time::Duration;

use bytes::Bytes;
use floe_broker::Record;
use floe_broker::cpu_time::thread_ns;
use floe_broker::segment::SegmentBuilder;

/// Requests of 100 records, 64 MiB of them in all: more than the CPU caches
/// hold, as in `floe-bench floor --cpu`.
const RECORDS_PER_REQUEST: usize = 100;
const BYTES: usize = 64 << 20;
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_millis(600);
/// A record's timestamp: the agent's clock, the same for a whole request.
const TIMESTAMP: i64 = 1_796_600_000_000;

type Error = Box<dyn std::error::Error>;
/// How a request's values are laid out before compression.
type Layout = fn(&[Vec<u8>]) -> Vec<u8>;

fn main() -> Result<(), Error> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for (kind, value) in
        [("random alphanumeric, 1 KiB", random_text as fn(&mut XorShift) -> Vec<u8>), ("JSON log lines", log_line)]
    {
        let mut requests = Vec::new();
        let mut total = 0;
        while total < BYTES {
            let values: Vec<Vec<u8>> = (0..RECORDS_PER_REQUEST).map(|_| value(&mut rng)).collect();
            total += values.iter().map(Vec::len).sum::<usize>();
            requests.push(values);
        }
        same_as_the_segment_encoder(&requests[0])?;
        let layouts: [(&str, Layout); 3] = [
            ("values alone", |v| v.concat()),
            ("format v1 (interleaved)", interleaved),
            ("fixed fields first", fields_first),
        ];
        let encoded: Vec<Vec<Vec<u8>>> = layouts.iter().map(|(_, f)| requests.iter().map(|r| f(r)).collect()).collect();
        let payload: usize = requests.iter().flatten().map(Vec::len).sum();
        let mut speeds = vec![Vec::new(); layouts.len()];
        let mut compressor = zstd::bulk::Compressor::new(1)?;
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(encoded[1][0].len() * 2));
        for _ in 0..ROUNDS {
            for (i, bodies) in encoded.iter().enumerate() {
                let (start, mut n, mut bytes) = (thread_ns().ok_or("no thread CPU clock here (Linux only)")?, 0, 0);
                while thread_ns().unwrap_or(u64::MAX) - start < ROUND.as_nanos() as u64 {
                    out.clear();
                    let body = &bodies[n % bodies.len()];
                    compressor.compress_to_buffer(body, &mut out)?;
                    bytes += requests[n % requests.len()].iter().map(Vec::len).sum::<usize>();
                    n += 1;
                }
                let seconds = (thread_ns().unwrap_or(start) - start) as f64 / 1e9;
                speeds[i].push(bytes as f64 / (1 << 20) as f64 / seconds);
            }
        }
        println!(
            "{kind}: {} requests of {RECORDS_PER_REQUEST} records, {:.1} MiB of values",
            requests.len(),
            payload as f64 / (1 << 20) as f64
        );
        let median = |s: &mut Vec<f64>| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        };
        let alone = median(&mut speeds[0].clone());
        for (i, (name, _)) in layouts.iter().enumerate() {
            let m = median(&mut speeds[i]);
            let mut compressed = 0;
            for body in &encoded[i] {
                out.clear();
                compressed += compressor.compress_to_buffer(body, &mut out)?;
            }
            // Per byte of the values, which every layout holds: comparable.
            let size = compressed as f64 / payload as f64;
            println!(
                "  {name:<24} {m:7.1} MiB of values per CPU-s ({:.2} of the values alone), {size:.4} B compressed per B of values",
                m / alone
            );
        }
    }
    Ok(())
}

/// Checks that [`interleaved`] lays `values` out as the segment encoder
/// does, so the figures stay those of the format.
fn same_as_the_segment_encoder(values: &[Vec<u8>]) -> Result<(), Error> {
    let records: Vec<Record> = values
        .iter()
        .map(|v| Record { key: None, value: Bytes::copy_from_slice(v), timestamp: TIMESTAMP, headers: Vec::new() })
        .collect();
    let mut segment = SegmentBuilder::new();
    let meta = segment.add_batch("t", 0, &records)?.clone();
    let (chunks, _) = segment.finish_chunks()?;
    let batch = &chunks.concat()[meta.pos as usize..][..meta.len as usize];
    // The payload follows the batch's 28-byte header (docs/segment-format.md).
    let raw = zstd::stream::decode_all(&batch[28..])?;
    if raw != interleaved(values) {
        return Err("the example's v1 layout is not the segment encoder's".into());
    }
    Ok(())
}

/// Segment format v1's records: each one's fixed fields, then its bytes.
fn interleaved(values: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        fixed_fields(&mut out, v.len());
        out.extend_from_slice(v);
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out
}

/// The same fields, every record's first, then every value.
fn fields_first(values: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        fixed_fields(&mut out, v.len());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    values.iter().for_each(|v| out.extend_from_slice(v));
    out
}

/// Timestamp, a null key, the value's length (the header count follows).
fn fixed_fields(out: &mut Vec<u8>, value_len: usize) {
    out.extend_from_slice(&TIMESTAMP.to_le_bytes());
    out.extend_from_slice(&(-1i32).to_le_bytes());
    out.extend_from_slice(&u32::try_from(value_len).unwrap_or(u32::MAX).to_le_bytes());
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// As `floe-bench` makes values: about 6 bits of entropy a byte.
fn random_text(rng: &mut XorShift) -> Vec<u8> {
    const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..1024).map(|_| ALPHANUMERIC[(rng.next() % 62) as usize]).collect()
}

/// A structured log line of about 270 bytes, with varying fields.
fn log_line(rng: &mut XorShift) -> Vec<u8> {
    let n = rng.next();
    let (trace_a, trace_b) = (rng.next(), rng.next());
    let level = ["info", "warn", "error", "debug"][(n >> 26) as usize % 4];
    let status = [200, 201, 404, 500][(n >> 54) as usize % 4];
    format!(
        r#"{{"ts":"2026-12-07T07:{:02}:{:02}.{:03}Z","level":"{level}","service":"svc-{}","msg":"request handled","user_id":{},"path":"/api/v1/items/{}","latency_ms":{}.{},"trace":"{trace_a:016x}{trace_b:016x}","ua":"Mozilla/5.0 (X11; Linux x86_64) Chrome/1{}.0","status":{status},"bytes":{}}}"#,
        n % 60,
        (n >> 8) % 60,
        (n >> 16) % 1000,
        (n >> 28) % 12,
        (n >> 32) % 100_000,
        (n >> 40) % 5000,
        (n >> 44) % 300,
        (n >> 50) % 10,
        n % 30,
        (n >> 56) * 37,
    )
    .into_bytes()
}
