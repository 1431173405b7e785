//! Times `floe_broker::crc::combine` against what it replaces and what it
//! replaced: a CRC32C pass over a 78 KB frame (the work a batch's CRC
//! did per frame at the flush, here hot) and the `crc32c` crate's combine.
//! Figures are ratios to that pass, measured in the same run
//! (docs/benchmarks.md, "2026-12-06 (fourth)").
//!
//! `cargo run --release -p floe-broker --example crc_combine`

use std::hint::black_box;
use std::time::Instant;

/// Bytes of a frame: a 100-record request of 1 KiB values, compressed.
const FRAME_BYTES: usize = 78_000;

/// Nanoseconds per call of `f`, over `calls`.
fn per_call(calls: u32, mut f: impl FnMut(u32) -> u32) -> f64 {
    let started = Instant::now();
    let mut sink = 0;
    for i in 0..calls {
        sink ^= f(i);
    }
    black_box(sink);
    started.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn main() {
    let frame: Vec<u8> = (0..FRAME_BYTES as u32).map(|i| (i.wrapping_mul(7) + i / 13) as u8).collect();
    let (header, body) = (crc32c::crc32c(b"a batch header"), crc32c::crc32c(&frame));
    let len = FRAME_BYTES as u64;
    let pass = per_call(2_000, |_| crc32c::crc32c(black_box(&frame)));
    let combine = per_call(100_000, |i| floe_broker::crc::combine(black_box(header), body, len + u64::from(i & 1)));
    let crate_combine = per_call(2_000, |_| crc32c::crc32c_combine(black_box(header), body, FRAME_BYTES));
    println!("CRC32C of a {FRAME_BYTES}-byte frame, hot: {pass:.0} ns (the floor of this run)");
    println!("crc::combine: {combine:.0} ns, {:.3} of it", combine / pass);
    println!("crc32c::crc32c_combine: {crate_combine:.0} ns, {:.2} of it", crate_combine / pass);
}
