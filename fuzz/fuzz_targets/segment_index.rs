//! A whole segment's index. The input's first four bytes are the batch
//! count, the rest the index; header and trailer (with a matching CRC32C)
//! are added around it, so the fuzzer explores the index parser itself.
#![no_main]

use floe_broker::segment::{MAGIC, read_index};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_index(data);
    if data.len() < 4 {
        return;
    }
    let (count, index) = data.split_at(4);
    let mut segment = MAGIC.to_vec();
    segment.extend_from_slice(index);
    segment.extend_from_slice(&(index.len() as u32).to_le_bytes());
    segment.extend_from_slice(count);
    segment.extend_from_slice(&crc32c::crc32c(index).to_le_bytes());
    segment.extend_from_slice(b"FSIX");
    let _ = read_index(&segment);
});
