//! A snapshot as read from the bucket: zstd-compressed JSON (formats 1–3),
//! or that JSON followed by each partition's binary batch index in a
//! skippable frame (format 4). The input is decoded as it is; compressed
//! first, so the fuzzer reaches the JSON and the state behind the
//! compression; and as the index frame of a one-partition format-4
//! snapshot, so it reaches the binary index.
#![no_main]

use std::sync::OnceLock;

use floe_broker::entry::{LogEntry, Op, TopicConfig};
use floe_broker::snapshot;
use floe_broker::state::State;
use libfuzzer_sys::fuzz_target;

/// The JSON frame of a format-4 snapshot (at position 1) of a state with
/// one topic of one partition.
fn header() -> &'static [u8] {
    static HEADER: OnceLock<Vec<u8>> = OnceLock::new();
    HEADER.get_or_init(|| {
        let mut state = State::default();
        let create = Op::CreateTopic { name: "t".into(), partitions: 1, config: TopicConfig::default() };
        state.apply(1, &LogEntry::new(vec![create])).expect("a topic is created");
        let bytes = snapshot::encode(&state).expect("a state encodes");
        let first = zstd::zstd_safe::find_frame_compressed_size(&bytes).expect("a zstd frame first");
        bytes[..first].to_vec()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = snapshot::decode(0, data);
    if let Ok(compressed) = zstd::bulk::compress(data, 1) {
        let _ = snapshot::decode(0, &compressed);
        let mut object = header().to_vec();
        object.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        object.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        object.extend_from_slice(&compressed);
        let _ = snapshot::decode(1, &object);
    }
});
