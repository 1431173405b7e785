//! Snapshots: the whole state as of one log position, written create-only
//! at `snapshots/{seq}`: zstd-compressed JSON, and each partition's batch
//! index in a binary frame of its own (format 4).

use std::collections::HashMap;

use bytes::{Buf, BufMut};
use futures::TryStreamExt;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::state::State;
use crate::store::{get_if_exists, put_if_absent};
use crate::{Error, Result, keys};

/// 2 added topic incarnations (`Topic::id`): a build that reads only
/// format 1 would drop them and apply stale appends to a re-created topic,
/// so it must refuse these snapshots.
pub const SNAPSHOT_FORMAT: u32 = 2;

/// 3 added spools' last committed flushes (`State::spools`): a build that
/// reads format 2 would drop them and append a replayed flush twice. Only
/// snapshots that hold some carry it.
pub const SPOOL_SNAPSHOT_FORMAT: u32 = 3;

/// 4 moved the partitions' batch indexes out of the JSON: the JSON (with
/// empty indexes) is the object's first zstd frame, and each partition's
/// index follows in a skippable frame of its own, in a compact binary form
/// that a fresh agent decodes ~5× faster. A build that reads formats 1–3
/// skips those frames, finds format 4 and refuses the snapshot.
pub const INDEXED_SNAPSHOT_FORMAT: u32 = 4;

/// Formats this build reads as one JSON document: a format-1 snapshot's
/// topics were all created by entries without incarnations (id 0), as
/// replaying them gives.
const JSON_FORMATS: std::ops::RangeInclusive<u32> = 1..=SPOOL_SNAPSHOT_FORMAT;

#[derive(Serialize, Deserialize)]
struct Stored<S> {
    format: u32,
    state: S,
}

/// `state` in format 4, or, for a `format` below it, as one JSON document
/// (format 2, or 3 if it holds spools) that builds before format 4 read.
pub fn encode_as(state: &State, format: u32) -> Result<Vec<u8>> {
    if format >= INDEXED_SNAPSHOT_FORMAT {
        return encode(state);
    }
    let format = if state.spools.is_empty() { SNAPSHOT_FORMAT } else { SPOOL_SNAPSHOT_FORMAT };
    let json = serde_json::to_vec(&Stored { format, state }).map_err(|e| Error::encode("snapshot", e))?;
    zstd::bulk::compress(&json, 3).map_err(|e| Error::encode("snapshot", e))
}

/// `state` in format 4.
pub fn encode(state: &State) -> Result<Vec<u8>> {
    let header = state.without_batch_indexes();
    let json = serde_json::to_vec(&Stored { format: INDEXED_SNAPSHOT_FORMAT, state: &header })
        .map_err(|e| Error::encode("snapshot", e))?;
    let mut out = zstd::bulk::compress(&json, 3).map_err(|e| Error::encode("snapshot", e))?;
    drop(json);
    let segments: HashMap<Ulid, u32> = state.segments.keys().zip(0u32..).map(|(s, i)| (*s, i)).collect();
    for partition in state.topics.values().flat_map(|t| &t.partitions) {
        let index = batch_index::encode(&partition.batches, &segments)?;
        let frame = zstd::bulk::compress(&index, 3).map_err(|e| Error::encode("snapshot", e))?;
        let len =
            u32::try_from(frame.len()).map_err(|_| Error::encode("snapshot", "a partition's index is over 4 GiB"))?;
        out.put_u32_le(SKIPPABLE_MAGIC);
        out.put_u32_le(len);
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

pub fn decode(seq: u64, bytes: &[u8]) -> Result<State> {
    let what = || format!("snapshot {seq}");
    // The first frame alone: the JSON. (Formats 1–3 are one frame.)
    let first = zstd::zstd_safe::find_frame_compressed_size(bytes).map_err(|e| Error::corrupt(what(), e))?;
    let (head, mut rest) = bytes.split_at(first.min(bytes.len()));
    let json = zstd::stream::decode_all(head).map_err(|e| Error::corrupt(what(), e))?;
    let stored: Stored<State> = serde_json::from_slice(&json).map_err(|e| Error::corrupt(what(), e))?;
    drop(json);
    let mut state = stored.state;
    if stored.format == INDEXED_SNAPSHOT_FORMAT {
        let segments: Vec<Ulid> = state.segments.keys().copied().collect();
        for partition in state.topics.values_mut().flat_map(|t| &mut t.partitions) {
            let frame =
                next_skippable(&mut rest).ok_or_else(|| Error::corrupt(what(), "a partition's index is missing"))?;
            let index = zstd::stream::decode_all(frame).map_err(|e| Error::corrupt(what(), e))?;
            partition.batches = batch_index::decode(&index, &segments).map_err(|e| Error::corrupt(what(), e))?;
        }
    } else if !JSON_FORMATS.contains(&stored.format) {
        return Err(Error::UnsupportedFormat(format!("{} has format {}", what(), stored.format)));
    }
    if !rest.is_empty() {
        return Err(Error::corrupt(what(), "bytes after its last frame"));
    }
    if state.applied != seq {
        return Err(Error::corrupt(what(), format!("holds state as of {}", state.applied)));
    }
    Ok(state)
}

/// The first of zstd's skippable-frame magic numbers (RFC 8878, 3.1.2):
/// decoders skip such frames, so older builds read the JSON alone.
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// The payload of the skippable frame at the start of `rest`, which moves
/// past it; `None` if there is none, or it is cut short.
fn next_skippable<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut header = rest.get(..8)?;
    if header.get_u32_le() != SKIPPABLE_MAGIC {
        return None;
    }
    let len = usize::try_from(header.get_u32_le()).ok()?;
    let payload = rest.get(8..8usize.checked_add(len)?)?;
    *rest = &rest[8 + len..];
    Some(payload)
}

/// One partition's batch index in binary: its batch count (u64), then
/// per batch in offset order its base offset (u64), its segment's place
/// among the state's live segments (u32), its position (u64), length
/// (u32), record count (u32) and largest timestamp (i64), little-endian.
mod batch_index {
    use std::collections::{BTreeMap, HashMap};

    use bytes::{Buf, BufMut};
    use ulid::Ulid;

    use crate::state::StoredBatch;
    use crate::{Error, Result};

    const BATCH_BYTES: usize = 8 + 4 + 8 + 4 + 4 + 8;

    pub fn encode(batches: &BTreeMap<u64, StoredBatch>, segments: &HashMap<Ulid, u32>) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(8 + batches.len() * BATCH_BYTES);
        out.put_u64_le(batches.len() as u64);
        for (base, b) in batches {
            let segment = segments.get(&b.segment).ok_or_else(|| {
                Error::encode("snapshot", format!("segment {} is not among the live ones", b.segment))
            })?;
            out.put_u64_le(*base);
            out.put_u32_le(*segment);
            out.put_u64_le(b.pos);
            out.put_u32_le(b.len);
            out.put_u32_le(b.records);
            out.put_i64_le(b.max_timestamp);
        }
        Ok(out)
    }

    pub fn decode(mut bytes: &[u8], segments: &[Ulid]) -> std::result::Result<BTreeMap<u64, StoredBatch>, String> {
        if bytes.len() < 8 {
            return Err("an index shorter than its count".into());
        }
        let count = bytes.get_u64_le();
        // Checked before anything is allocated for it.
        if usize::try_from(count).ok().and_then(|n| n.checked_mul(BATCH_BYTES)) != Some(bytes.len()) {
            return Err(format!("an index of {count} batches in {} bytes", bytes.len()));
        }
        let mut batches = Vec::with_capacity(bytes.len() / BATCH_BYTES);
        let mut last: Option<u64> = None;
        while bytes.has_remaining() {
            let base = bytes.get_u64_le();
            if last.is_some_and(|l| l >= base) {
                return Err(format!("batch {base} out of order"));
            }
            last = Some(base);
            let segment = *segments.get(bytes.get_u32_le() as usize).ok_or("a segment that is not live")?;
            let (pos, len, records, max_timestamp) =
                (bytes.get_u64_le(), bytes.get_u32_le(), bytes.get_u32_le(), bytes.get_i64_le());
            batches.push((base, StoredBatch { segment, pos, len, records, max_timestamp }));
        }
        // In order already: built bottom-up, without a search per batch.
        Ok(BTreeMap::from_iter(batches))
    }
}

/// Writes a snapshot of `state` in `format` (`encode_as`); `false` if one
/// already exists at that position.
pub async fn write(store: &dyn ObjectStore, state: &State, format: u32) -> Result<bool> {
    put_if_absent(store, &keys::snapshot(state.applied), encode_as(state, format)?.into()).await
}

/// The newest snapshot in the bucket, if any.
pub async fn load_latest(store: &dyn ObjectStore) -> Result<Option<State>> {
    let newest = store
        .list(Some(&keys::snapshots_prefix()))
        .try_filter_map(|meta| futures::future::ready(Ok(keys::parse_snapshot_seq(&meta.location))))
        .try_fold(None, |max: Option<u64>, seq| futures::future::ready(Ok(Some(max.map_or(seq, |m| m.max(seq))))))
        .await?;
    let Some(seq) = newest else { return Ok(None) };
    let bytes = get_if_exists(store, &keys::snapshot(seq))
        .await?
        .ok_or_else(|| Error::corrupt(format!("snapshot {seq}"), "listed, then not found"))?;
    decode(seq, &bytes).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{LogEntry, Op, TopicConfig};
    use crate::segment::BatchMeta;

    /// A state with two topics, five partitions and batches in three segments.
    #[allow(clippy::disallowed_methods)] // test set-up: segments as new as the entries
    fn a_state() -> State {
        let mut s = State::default();
        let create =
            |name: &str, partitions| Op::CreateTopic { name: name.into(), partitions, config: TopicConfig::default() };
        s.apply(1, &LogEntry::new(vec![create("a", 2), create("b", 3)])).unwrap();
        for (n, segment) in [Ulid::new(), Ulid::new(), Ulid::new()].into_iter().enumerate() {
            let batches = (0..7u64)
                .map(|i| BatchMeta {
                    topic: if i % 2 == 0 { "a".into() } else { "b".into() },
                    partition: (i % 3) as u32 % if i % 2 == 0 { 2 } else { 3 },
                    pos: i * 100,
                    len: 100,
                    records: 1 + i as u32,
                    max_timestamp: -5 + i as i64,
                    producer: None,
                    topic_id: None,
                })
                .collect();
            s.apply(2 + n as u64, &LogEntry::new(vec![Op::Append { segment, batches, flush: None }])).unwrap();
        }
        s
    }

    #[test]
    fn a_snapshot_restores_the_state_it_was_made_of() {
        let s = a_state();
        assert!(s.topics.values().flat_map(|t| &t.partitions).all(|p| !p.batches.is_empty()));
        let restored = decode(s.applied, &encode(&s).unwrap()).unwrap();
        assert_eq!(restored, s);
        assert_eq!(encode(&restored).unwrap(), encode(&s).unwrap(), "byte for byte");
    }

    /// An older build decodes every frame it knows (the JSON) and skips the
    /// indexes, so it finds format 4 and refuses, instead of loading
    /// partitions without batches.
    #[test]
    fn older_builds_see_format_4_and_refuse_it() {
        let bytes = encode(&a_state()).unwrap();
        let json = zstd::stream::decode_all(&bytes[..]).unwrap();
        let stored: Stored<State> = serde_json::from_slice(&json).unwrap();
        assert_eq!(stored.format, INDEXED_SNAPSHOT_FORMAT);
        assert!(!JSON_FORMATS.contains(&stored.format));
    }

    /// What `--snapshot-format 3` writes is what builds before format 4
    /// read (one JSON frame of format 2), and this build reads it too.
    #[test]
    fn json_snapshots_of_earlier_formats_still_load() {
        let s = a_state();
        let bytes = encode_as(&s, 3).unwrap();
        let json = zstd::bulk::decompress(&bytes, 1 << 20).unwrap();
        let stored: Stored<State> = serde_json::from_slice(&json).unwrap();
        assert_eq!((stored.format, &stored.state), (SNAPSHOT_FORMAT, &s), "one frame, the whole state");
        assert_eq!(decode(s.applied, &bytes).unwrap(), s);
    }

    #[test]
    fn a_damaged_index_is_refused() {
        let s = a_state();
        let bytes = encode(&s).unwrap();
        let cut = decode(s.applied, &bytes[..bytes.len() - 3]);
        assert!(matches!(cut, Err(Error::Corrupt { .. })), "{cut:?}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(s.applied, &longer), Err(Error::Corrupt { .. })));
        let segments: Vec<Ulid> = s.segments.keys().copied().collect();
        let mut index = Vec::new();
        index.put_u64_le(u64::MAX / 2);
        assert!(batch_index::decode(&index, &segments).is_err(), "a count its bytes cannot hold");
        let batches = &s.topics["a"].partitions[0].batches;
        let mut lookup: HashMap<Ulid, u32> = HashMap::new();
        lookup.insert(*segments.first().unwrap(), 0);
        assert!(batch_index::encode(batches, &lookup).is_err(), "a batch in a segment not among the live ones");
    }
}
