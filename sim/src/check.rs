//! The checker: after a run, the bucket and the history must satisfy the
//! queue invariants (the same as `floe-chaos`, plus what only a simulation
//! can see).

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use floe_broker::segment::decode_batch;
use floe_broker::{MetadataLog, keys};
use object_store::ObjectStoreExt;

use crate::nodes::{History, Status, TOPIC};
use crate::{Outcome, World};

#[derive(Debug)]
pub struct Violation {
    pub seed: u64,
    pub what: String,
}

impl Violation {
    pub fn new(seed: u64, what: impl Into<String>) -> Self {
        Self { seed, what: what.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {}\n  replay: cargo run -p floe-sim --release -- --seed {}",
            self.seed, self.what, self.seed
        )
    }
}

impl std::error::Error for Violation {}

/// Checks, in order:
/// - every node still running agrees with a fresh reader, byte for byte;
/// - each partition's offsets are dense from its start, and every batch the
///   state references is still in the bucket (GC deleted nothing live);
/// - an acknowledged attempt's records are in the log exactly once, at the
///   acknowledged offsets; an attempt of unknown outcome at most once; a
///   failed one never (no aborted reads);
/// - an idempotent request's records appear at most once, whatever its retries;
/// - per writer and partition, acknowledged requests are in request order;
/// - a committed group offset never moved backwards;
/// - no node dragged the log clock past the store's clock by more than the
///   skew bound.
pub async fn check(world: &World, history: &History) -> Result<Outcome, Violation> {
    let fail = |what: String| Violation::new(world.seed, what);
    let (reader_node, _) = world.node();
    let reader = world.open(&reader_node).await;
    catch_up(&reader).await.map_err(|e| fail(format!("the reader cannot catch up: {e}")))?;
    let reference = serde_json::to_vec(&*reader.state()).map_err(|e| fail(e.to_string()))?;
    for (i, log) in history.logs.iter().enumerate() {
        catch_up(log).await.map_err(|e| fail(format!("node {i} cannot catch up: {e}")))?;
        let mine = serde_json::to_vec(&*log.state()).map_err(|e| fail(e.to_string()))?;
        if mine != reference {
            return Err(fail(format!("node {i} disagrees with a fresh reader at position {}", reader.applied())));
        }
    }

    // Every record in the log, by value.
    let state = reader.state().clone();
    let mut seen: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
    let topic = state.topic(TOPIC).ok_or_else(|| fail("the topic is gone".into()))?;
    for (p, partition) in topic.partitions.iter().enumerate() {
        let mut next = partition.log_start_offset;
        for (base, b) in &partition.batches {
            if *base != next {
                return Err(fail(format!("partition {p}: a hole or overlap at offset {next} (batch at {base})")));
            }
            let range = b.pos..b.pos + u64::from(b.len);
            let bytes = world.truth.get_range(&keys::segment(b.segment), range).await.map_err(|e| {
                fail(format!("partition {p} offset {base}: the state references segment {} but: {e}", b.segment))
            })?;
            let records = decode_batch(&bytes).map_err(|e| fail(format!("partition {p} offset {base}: {e}")))?;
            if records.len() as u64 != u64::from(b.records) {
                return Err(fail(format!("partition {p} offset {base}: batch holds {} records", records.len())));
            }
            for (i, r) in records.iter().enumerate() {
                let value = String::from_utf8_lossy(&r.value).into_owned();
                seen.entry(value).or_default().push((p as u32, base + i as u64));
            }
            next = base + u64::from(b.records);
        }
        if next != partition.high_watermark {
            return Err(fail(format!(
                "partition {p}: batches end at {next}, high watermark {}",
                partition.high_watermark
            )));
        }
    }

    let mut acked = 0;
    let mut order: BTreeMap<(usize, u32), (usize, u64)> = BTreeMap::new();
    for a in &history.attempts {
        for i in 0..a.records {
            let value = format!("{}#{i}", a.tag);
            let found = seen.get(&value).map_or(&[][..], Vec::as_slice);
            let at = |base: u64| (a.partition, base + u64::from(i));
            match a.status {
                Status::Acked(base) if found != [at(base)] => {
                    return Err(fail(format!("acknowledged {value} at {:?}, found at {found:?}", at(base))));
                }
                Status::Spooled if found.len() != 1 => {
                    return Err(fail(format!(
                        "{value} (acknowledged from a spool) is in the log {} times",
                        found.len()
                    )));
                }
                Status::Unknown if found.len() > 1 => {
                    return Err(fail(format!("{value} (outcome unknown) is in the log {} times", found.len())));
                }
                Status::Failed if !a.idempotent && !found.is_empty() => {
                    return Err(fail(format!("{value} was refused, yet read at {found:?}")));
                }
                _ if a.idempotent && found.len() > 1 => {
                    return Err(fail(format!("idempotent {value} is in the log {} times", found.len())));
                }
                _ => {}
            }
        }
        let base = match a.status {
            Status::Acked(base) => Some(base),
            // Found exactly once above: where its first record is.
            Status::Spooled => seen.get(&format!("{}#0", a.tag)).and_then(|f| f.first()).map(|(_, o)| *o),
            _ => None,
        };
        if let Some(base) = base {
            acked += 1;
            let key = (a.writer, a.partition);
            if let Some((request, offset)) = order.get(&key)
                && *request < a.request
                && *offset >= base
            {
                return Err(fail(format!(
                    "writer {} partition {}: request {} before {request}",
                    a.writer, a.partition, a.request
                )));
            }
            order.insert(key, (a.request, base));
        }
    }

    if let Some(w) = history.group_offsets.windows(2).find(|w| w[1] < w[0]) {
        return Err(fail(format!("the group's committed offset moved back from {} to {}", w[0], w[1])));
    }

    let store_now = crate::Clock::now_ms(world.store_clock.as_ref());
    let bound = reader.skew().bound_ms();
    if state.log_clock_ms > store_now + bound + 1_000 {
        return Err(fail(format!("the log clock is {} ms ahead of the store's", state.log_clock_ms - store_now)));
    }

    let mut hasher = DefaultHasher::new();
    reference.hash(&mut hasher);
    for a in &history.attempts {
        (&a.tag, format!("{:?}", a.status)).hash(&mut hasher);
    }
    history.group_offsets.hash(&mut hasher);
    Ok(Outcome { digest: hasher.finish(), acknowledged: acked, entries: reader.applied() })
}

/// Catches up through store faults (a few tries).
async fn catch_up(log: &MetadataLog) -> floe_broker::Result<u64> {
    let mut last = None;
    for _ in 0..20 {
        match log.catch_up().await {
            Ok(n) => return Ok(n),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(last.unwrap_or(floe_broker::Error::MissingLogEntry { seq: 0 }))
}
