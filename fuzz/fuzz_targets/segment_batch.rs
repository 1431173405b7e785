//! One batch, as a ranged GET returns it. The input is decoded as it is, and
//! again with its length and CRC32C fields made to match, so the fuzzer gets
//! past the checksum to the decompression and record parsing behind it.
#![no_main]

use floe_broker::segment::{BATCH_HEADER_LEN, decode_batch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_batch(data);
    if data.len() >= BATCH_HEADER_LEN {
        let mut batch = data.to_vec();
        let payload_len = (batch.len() - BATCH_HEADER_LEN) as u32;
        batch[0..4].copy_from_slice(&payload_len.to_le_bytes());
        let crc = crc32c::crc32c(&batch[8..]);
        batch[4..8].copy_from_slice(&crc.to_le_bytes());
        let _ = decode_batch(&batch);
    }
});
