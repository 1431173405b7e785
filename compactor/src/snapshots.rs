//! Snapshots and the log behind them: writing a snapshot when enough entries
//! follow the newest, shrinking entries that two snapshots cover to
//! tombstones (never deleting them), and dropping snapshots older than the
//! newest two.

use floe_broker::entry::LogObject;
use floe_broker::{MetadataLog, Result, keys, snapshot};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

/// Snapshots kept; older ones are deleted. Two, so an agent that is loading
/// the previous one when a new one lands still finds it.
pub const KEEP_SNAPSHOTS: usize = 2;

/// Snapshot positions in the bucket, oldest first.
pub async fn list(store: &dyn ObjectStore) -> Result<Vec<u64>> {
    let mut seqs: Vec<u64> = store
        .list(Some(&keys::snapshots_prefix()))
        .try_filter_map(|m| futures::future::ready(Ok(keys::parse_snapshot_seq(&m.location))))
        .try_collect()
        .await?;
    seqs.sort_unstable();
    Ok(seqs)
}

/// Writes a snapshot of the applied state in `format` (see
/// `CompactorSettings::snapshot_format`); `Some(seq)` if one now exists there.
pub async fn write(log: &MetadataLog, format: u32) -> Result<u64> {
    let state = log.state().clone();
    snapshot::write(log.store().as_ref(), &state, format).await?;
    Ok(state.applied)
}

/// Deletes snapshots older than the newest `KEEP_SNAPSHOTS`; returns how many.
pub async fn delete_old(store: &dyn ObjectStore, seqs: &[u64]) -> Result<usize> {
    let old = seqs.len().saturating_sub(KEEP_SNAPSHOTS);
    for seq in &seqs[..old] {
        match store.delete(&keys::snapshot(*seq)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(old)
}

/// Shrinks log entries at positions `≤ through` to tombstones pointing at
/// snapshot `through` (which covers them), at most `limit` per call, starting
/// after `done`; returns the new `done`. Positions stay occupied: a deleted
/// one would let a stale agent's create-only PUT fork the history.
pub async fn tombstone(store: &dyn ObjectStore, through: u64, done: u64, limit: usize) -> Result<(u64, usize)> {
    if through <= done {
        return Ok((done, 0));
    }
    let tombstone = LogObject::tombstone_bytes(through)?;
    let mut todo: Vec<(u64, u64)> = store
        .list_with_offset(Some(&keys::log_prefix()), &keys::log_entry(done))
        .try_filter_map(|m| futures::future::ready(Ok(keys::parse_log_seq(&m.location).map(|seq| (seq, m.size)))))
        .try_filter(|(seq, _)| futures::future::ready(*seq <= through))
        .try_collect()
        .await?;
    todo.sort_unstable();
    let mut reached = done;
    let mut shrunk = 0;
    for (seq, size) in todo {
        if shrunk >= limit {
            break;
        }
        if size > tombstone.len() as u64 {
            store.put(&keys::log_entry(seq), tombstone.clone().into()).await?;
            shrunk += 1;
        }
        reached = seq;
    }
    if shrunk < limit {
        reached = through;
    }
    Ok((reached, shrunk))
}
