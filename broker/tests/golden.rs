//! Freezes segment format v1: the bytes written for a fixed input must not
//! change, and the stored golden file must always decode to the same records.
//! Regenerate (only for a new format version) with `FLOE_BLESS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::PathBuf;

use bytes::Bytes;
use floe_broker::Record;
use floe_broker::segment::{SegmentBuilder, decode_batch, read_index};

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/segment-v1.bin")
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

#[test]
fn segment_v1_bytes_are_frozen() {
    let bytes = encode_fixed();
    if std::env::var_os("FLOE_BLESS").is_some() {
        std::fs::write(golden_path(), &bytes).unwrap();
    }
    let golden = std::fs::read(golden_path()).expect("golden file exists (FLOE_BLESS=1 writes it)");
    assert_eq!(bytes.as_ref(), golden.as_slice(), "segment v1 encoding changed: that needs a new format version");
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
