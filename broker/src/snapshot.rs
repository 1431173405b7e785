//! Snapshots: the whole state as of one log position, zstd-compressed JSON,
//! written create-only at `snapshots/{seq}`.

use futures::TryStreamExt;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

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

/// Formats this build reads: a format-1 snapshot's topics were all created
/// by entries without incarnations (id 0), as replaying them gives.
const READABLE_FORMATS: std::ops::RangeInclusive<u32> = 1..=SPOOL_SNAPSHOT_FORMAT;

#[derive(Serialize, Deserialize)]
struct Stored<S> {
    format: u32,
    state: S,
}

pub fn encode(state: &State) -> Result<Vec<u8>> {
    let format = if state.spools.is_empty() { SNAPSHOT_FORMAT } else { SPOOL_SNAPSHOT_FORMAT };
    let json = serde_json::to_vec(&Stored { format, state }).map_err(|e| Error::encode("snapshot", e))?;
    zstd::bulk::compress(&json, 3).map_err(|e| Error::encode("snapshot", e))
}

pub fn decode(seq: u64, bytes: &[u8]) -> Result<State> {
    let what = || format!("snapshot {seq}");
    let json = zstd::stream::decode_all(bytes).map_err(|e| Error::corrupt(what(), e))?;
    let stored: Stored<State> = serde_json::from_slice(&json).map_err(|e| Error::corrupt(what(), e))?;
    if !READABLE_FORMATS.contains(&stored.format) {
        return Err(Error::UnsupportedFormat(format!("{} has format {}", what(), stored.format)));
    }
    if stored.state.applied != seq {
        return Err(Error::corrupt(what(), format!("holds state as of {}", stored.state.applied)));
    }
    Ok(stored.state)
}

/// Writes a snapshot of `state`; `false` if one already exists at that position.
pub async fn write(store: &dyn ObjectStore, state: &State) -> Result<bool> {
    put_if_absent(store, &keys::snapshot(state.applied), encode(state)?.into()).await
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
