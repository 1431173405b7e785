//! Freezes segment format v1: the bytes written for a fixed input must not
//! change, and the stored golden files must always decode to the same
//! records: one with a zstd frame per batch (what the compactor writes) and
//! one whose batch is several frames (what an agent writes when it
//! compressed large requests as they arrived). Regenerate (only for a new
//! format version) with `FLOE_BLESS=1 cargo test -p floe-broker --test golden --
//! --test-threads=1` (the decoding tests read what the others write).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::PathBuf;

use bytes::Bytes;
use floe_broker::Record;
use floe_broker::segment::{Frame, SegmentBuilder, batch_frames, decode_batch, read_index};

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/segment-v1.bin")
}

fn golden_frames_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/segment-v1-frames.bin")
}

fn fixed_batches() -> Vec<(&'static str, u32, Vec<Record>)> {
    let r = |key: Option<&'static str>, value: &'static str, ts: i64, headers: &[(&str, &'static str)]| Record {
        key: key.map(|k| Bytes::from_static(k.as_bytes())),
        value: Bytes::from_static(value.as_bytes()),
        timestamp: ts,
        headers: headers.iter().map(|(k, v)| ((*k).to_owned(), Bytes::from_static(v.as_bytes()))).collect(),
    };
    vec![
        (
            "orders",
            0,
            vec![
                r(Some("alice"), "{\"qty\":1}", 1_700_000_000_000, &[("trace", "a1")]),
                r(None, "", 1_700_000_000_001, &[]),
            ],
        ),
        ("orders", 2, vec![r(Some("bob"), "second partition", 1_700_000_000_002, &[])]),
        ("payments", 0, vec![r(Some(""), "empty key, two headers", -5, &[("x", ""), ("y", "z")])]),
    ]
}

fn encode_fixed() -> Bytes {
    let mut b = SegmentBuilder::new();
    for (topic, partition, records) in fixed_batches() {
        b.add_batch(topic, partition, &records).unwrap();
    }
    b.finish().unwrap().0
}

/// One batch of six records: records 1 and 4..6 compressed ahead as frames
/// of their own, the runs around them (0, and 2..4) compressed at the end.
fn fixed_framed_batch() -> (&'static str, u32, Vec<Record>) {
    let records = (0..6)
        .map(|i| Record {
            key: (i % 2 == 0).then(|| Bytes::from(format!("key-{i}"))),
            value: Bytes::from(format!("value {i} {}", "x".repeat(i * 7))),
            timestamp: 1_700_000_000_000 + i as i64,
            headers: if i == 4 { vec![("h".to_owned(), Bytes::from_static(b"v"))] } else { Vec::new() },
        })
        .collect();
    ("framed", 3, records)
}

fn encode_framed() -> Bytes {
    let (topic, partition, records) = fixed_framed_batch();
    let frames = [(1, Frame::compress(&records[1..2]).unwrap()), (4, Frame::compress(&records[4..6]).unwrap())];
    let mut b = SegmentBuilder::new();
    b.add_batch_with_frames(topic, partition, &records, &frames).unwrap();
    b.finish().unwrap().0
}

/// `bytes` must be the golden file at `path` (written first with `FLOE_BLESS`).
fn assert_frozen(bytes: &[u8], path: PathBuf) {
    if std::env::var_os("FLOE_BLESS").is_some() {
        std::fs::write(&path, bytes).unwrap();
    }
    let golden = std::fs::read(&path).expect("golden file exists (FLOE_BLESS=1 writes it)");
    assert_eq!(bytes, golden.as_slice(), "segment v1 encoding changed: that needs a new format version");
}

#[test]
fn segment_v1_bytes_are_frozen() {
    assert_frozen(&encode_fixed(), golden_path());
}

#[test]
fn segment_v1_bytes_of_a_batch_of_frames_are_frozen() {
    let bytes = encode_framed();
    if std::env::var_os("FLOE_BLESS").is_some() {
        // The fuzzer starts from this batch too (scripts/fuzz). Written from
        // the bytes just encoded, not from the file another test may be reading.
        let r = read_index(&bytes).unwrap()[0].range();
        let seeds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/segment_batch");
        std::fs::create_dir_all(&seeds).unwrap();
        std::fs::write(seeds.join("golden-frames"), &bytes[r.start as usize..r.end as usize]).unwrap();
    }
    assert_frozen(&bytes, golden_frames_path());
}

#[test]
fn golden_segment_v1_of_a_batch_of_frames_decodes() {
    let golden = std::fs::read(golden_frames_path()).unwrap();
    let index = read_index(&golden).unwrap();
    let (topic, partition, records) = fixed_framed_batch();
    assert_eq!(index.len(), 1);
    let meta = &index[0];
    assert_eq!((meta.topic.as_str(), meta.partition, meta.records as usize), (topic, partition, records.len()));
    let r = meta.range();
    let batch = &golden[r.start as usize..r.end as usize];
    assert_eq!(decode_batch(batch).unwrap(), records);
    // Four frames: 0, 1 (ahead), 2..4, 4..6 (ahead).
    assert_eq!(batch_frames(batch).unwrap(), 4);
}

#[test]
fn golden_segment_v1_decodes() {
    let golden = std::fs::read(golden_path()).unwrap();
    let index = read_index(&golden).unwrap();
    let expected = fixed_batches();
    assert_eq!(index.len(), expected.len());
    for (meta, (topic, partition, records)) in index.iter().zip(expected) {
        assert_eq!((meta.topic.as_str(), meta.partition, meta.records as usize), (topic, partition, records.len()));
        let r = meta.range();
        assert_eq!(decode_batch(&golden[r.start as usize..r.end as usize]).unwrap(), records);
    }
}
