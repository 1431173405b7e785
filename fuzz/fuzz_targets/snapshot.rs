//! A snapshot as read from the bucket (zstd-compressed JSON). The input is
//! decoded as it is, and compressed first, so the fuzzer reaches the JSON
//! and the state behind the compression.
#![no_main]

use floe_broker::snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = snapshot::decode(0, data);
    if let Ok(compressed) = zstd::bulk::compress(data, 1) {
        let _ = snapshot::decode(0, &compressed);
    }
});
