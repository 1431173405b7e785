//! Produce, fetch and tail records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_broker::Record;
use floe_broker::segment::ProducerStamp;
use floe_broker::state::Placement;
use serde::Serialize;

use super::{Agent, validate};
use crate::auth::{Action, Caller};
use crate::budget::Held;
use crate::error::{Error, Invalid, Result};
use crate::partitioner;
use crate::reader::{FetchRequest, Fetched};
use crate::writer::{Acks, PartitionRecords, Receipt, WriteError};

/// A record to produce. Without a partition, a keyed record goes where its
/// key hashes and an unkeyed one to the request's sticky partition; without
/// a timestamp, it gets the agent's clock.
#[derive(Clone, Debug, Default)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub partition: Option<u32>,
    pub headers: Vec<(String, Bytes)>,
    pub timestamp: Option<i64>,
}

/// Where one produced record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RecordOffset {
    pub partition: u32,
    pub offset: u64,
}

/// What a produce came to: where each record landed, and (unless the
/// request was a retry answered from the log) where the time went.
#[derive(Clone, Debug)]
pub struct Produced {
    /// Empty for `acks=local`.
    pub offsets: Vec<RecordOffset>,
    pub receipt: Option<Receipt>,
    /// For `acks=local`: the spooled flush that holds the records until it is committed.
    pub flush: Option<floe_broker::entry::FlushId>,
}

/// How long one internal long-poll of a tail waits before polling again.
const TAIL_POLL: Duration = Duration::from_secs(10);

impl Agent {
    /// Appends `records` to `topic`, all or none, and answers once they are
    /// durable in the log: one offset per record, in request order. With
    /// `producer`, the request is idempotent: all its records go to one
    /// partition, and a retry is answered with the original's offsets.
    pub async fn produce(
        &self,
        caller: &Caller,
        topic: &str,
        records: Vec<NewRecord>,
        producer: Option<ProducerStamp>,
        acks: Acks,
        buffered: impl FnOnce() + Send,
    ) -> Result<Produced> {
        caller.check(Action::Produce(topic))?;
        let started = tokio::time::Instant::now();
        let count = records.len() as u64;
        let bytes: u64 = records.iter().map(|r| r.value.len() as u64).sum();
        let answer = self.produce_untimed(topic, records, producer, acks, buffered).await;
        let outcome = answer.as_ref().map(|_| (count, bytes)).map_err(Error::class);
        self.metrics.produce(outcome, started.elapsed().as_secs_f64());
        if let Ok(Produced { receipt: Some(receipt), .. }) = &answer {
            self.metrics.write_stages(receipt);
        }
        answer
    }

    async fn produce_untimed(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        producer: Option<ProducerStamp>,
        acks: Acks,
        buffered: impl FnOnce() + Send,
    ) -> Result<Produced> {
        if records.is_empty() {
            return Err(Error::invalid(Invalid::Request, "a produce request needs at least one record"));
        }
        let (partitions, topic_id) = self.partitions_of(topic).await?;
        // Validate and place every record before buffering any: nothing is half-applied.
        let now = i64::try_from(self.log.node().now_ms()).unwrap_or(i64::MAX);
        let mut sticky = None;
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        let mut placed = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            check_record(topic, partitions, r).map_err(|e| e.in_record(i))?;
            let partition = match (r.partition, &r.key) {
                (Some(p), _) => p,
                (None, Some(key)) => partitioner::for_key(key, partitions),
                (None, None) => *sticky.get_or_insert_with(|| self.sticky.next(partitions)),
            };
            let count = counts.entry(partition).or_default();
            placed.push((partition, *count as u64));
            *count += 1;
        }
        // Each partition's records in a vector of their number: not grown (and copied) by doubling.
        let mut groups: BTreeMap<u32, Vec<Record>> = counts.iter().map(|(p, n)| (*p, Vec::with_capacity(*n))).collect();
        for (r, (partition, _)) in records.into_iter().zip(&placed) {
            let group = groups.entry(*partition).or_default();
            group.push(Record {
                key: r.key,
                value: r.value,
                timestamp: r.timestamp.unwrap_or(now),
                headers: r.headers,
            });
        }
        if let Some(stamp) = &producer {
            if groups.len() > 1 {
                return Err(Error::invalid(
                    Invalid::Request,
                    "an idempotent request (with \"producer\") must put all its records in one partition",
                ));
            }
            self.check_producer(stamp).await?;
        }
        let order: Vec<u32> = groups.keys().copied().collect();
        let parts = groups
            .into_iter()
            .map(|(partition, records)| PartitionRecords { partition, topic_id, producer, records })
            .collect();
        // No wait from here until the write buffer holds the records (or
        // refuses them): whatever counted them before may let go.
        buffered();
        let written = self.writer.append(topic.to_owned(), parts, acks).await.map_err(|e| refused(e, producer))?;
        if written.flush.is_some() {
            return Ok(Produced { offsets: Vec::new(), receipt: None, flush: written.flush });
        }
        let base_of: BTreeMap<u32, u64> = order.into_iter().zip(written.bases).collect();
        let offsets = placed
            .into_iter()
            .map(|(partition, index)| RecordOffset {
                partition,
                offset: base_of.get(&partition).copied().unwrap_or_default() + index,
            })
            .collect();
        Ok(Produced { offsets, receipt: written.receipt, flush: None })
    }

    /// The topic's partition count and incarnation, as this agent knows them.
    fn partition_count(&self, topic: &str) -> Option<(u32, u64)> {
        self.log.state().topic(topic).map(|t| (t.partitions.len() as u32, t.id))
    }

    /// The topic's partition count and incarnation, catching up with the log
    /// if the topic is not known yet (another agent may have just created it).
    async fn partitions_of(&self, topic: &str) -> Result<(u32, u64)> {
        let (partitions, id) = match self.partition_count(topic) {
            Some(known) => known,
            None => {
                self.log.catch_up().await?;
                self.partition_count(topic).ok_or_else(|| Error::TopicNotFound { topic: topic.to_owned() })?
            }
        };
        // Topics are created with at least one partition; an old log may hold one without.
        if partitions == 0 {
            return Err(Error::PartitionNotFound { topic: topic.to_owned(), partition: 0 });
        }
        Ok((partitions, id))
    }

    /// What `produce` would refuse in each record, all checked at once; for
    /// faces that answer each record on its own (Kafka REST's streaming
    /// produce). The topic itself failing is the whole call's error.
    pub async fn check_records<'a>(
        &self,
        caller: &Caller,
        topic: &str,
        records: impl IntoIterator<Item = &'a NewRecord>,
    ) -> Result<Vec<Result<()>>> {
        caller.check(Action::Produce(topic))?;
        let (partitions, _) = self.partitions_of(topic).await?;
        Ok(records.into_iter().map(|r| check_record(topic, partitions, r)).collect())
    }

    /// Refuses, before anything is buffered, a producer the log does not know
    /// or has fenced. The log re-checks on apply; this only answers early.
    async fn check_producer(&self, stamp: &ProducerStamp) -> Result<()> {
        let current = || self.log.state().producers.get(&stamp.id).map(|p| p.epoch);
        let mut epoch = current();
        if epoch.is_none_or(|e| e < stamp.epoch) {
            self.log.catch_up().await?;
            epoch = current();
        }
        match epoch {
            None => Err(Error::ProducerNotFound { producer_id: stamp.id }),
            Some(e) if e != stamp.epoch => {
                Err(Error::ProducerFenced { producer_id: stamp.id, epoch: stamp.epoch, current_epoch: Some(e) })
            }
            Some(_) => Ok(()),
        }
    }

    /// Reads from one partition; at the high watermark, waits up to the
    /// request's timeout for records to arrive.
    pub async fn fetch(&self, caller: &Caller, req: &FetchRequest) -> Result<Fetched> {
        caller.check(Action::Consume(&req.topic))?;
        let started = tokio::time::Instant::now();
        let timeout_ms = u64::try_from(req.timeout.as_millis()).unwrap_or(u64::MAX);
        validate::fetch_limits(req.max_records, req.max_bytes, timeout_ms)?;
        // A long-poll does not hold up a stopping agent: it is answered with
        // what is there now.
        let fetched = tokio::select! {
            fetched = self.reader.fetch(req) => fetched?,
            () = self.stopping.cancelled() => {
                self.reader.fetch(&FetchRequest { timeout: Duration::ZERO, ..req.clone() }).await?
            }
        };
        let bytes = fetched.records.iter().map(|(_, r)| r.value.len() as u64).sum();
        self.metrics.fetch(fetched.records.len() as u64, bytes, started.elapsed().as_secs_f64());
        Ok(fetched)
    }

    /// A live tail from `req.offset`. The start is checked (and its records
    /// read) before this returns, so a bad start is an ordinary error.
    pub async fn tail(self: &Arc<Self>, caller: &Caller, req: FetchRequest) -> Result<Tail> {
        let first = self.fetch(caller, &FetchRequest { timeout: Duration::ZERO, ..req.clone() }).await?;
        Ok(Tail {
            agent: self.clone(),
            caller: caller.clone(),
            req: FetchRequest { offset: first.next_offset, timeout: TAIL_POLL, ..req },
            first: Some((first.records, first.held)),
        })
    }
}

/// Records of a partition as they commit.
pub struct Tail {
    agent: Arc<Agent>,
    /// Refreshed and checked again before each read: a token removed or
    /// narrowed by a reload ends the tail.
    caller: Caller,
    req: FetchRequest,
    first: Option<(Vec<(u64, Record)>, Held)>,
}

impl Tail {
    /// The next records (possibly none, after a quiet long-poll), with
    /// their bytes in the fetch-memory budget until they are sent; `None`
    /// once the agent is stopping, which ends the tail.
    ///
    /// # Cancel safety
    /// Cancel safe: the position moves only when records are returned.
    pub async fn next(&mut self) -> Result<Option<(Vec<(u64, Record)>, Held)>> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        self.recheck()?;
        let fetched = tokio::select! {
            fetched = self.agent.reader.fetch(&self.req) => fetched?,
            () = self.agent.stopping.cancelled() => return Ok(None),
        };
        // Again after the long-poll: the token may have been removed while it waited.
        self.recheck()?;
        self.req.offset = fetched.next_offset;
        Ok(Some((fetched.records, fetched.held)))
    }

    fn recheck(&mut self) -> Result<()> {
        self.caller = self.agent.refresh_caller(&self.caller)?;
        self.caller.check(Action::Consume(&self.req.topic))
    }
}

/// The checks one record passes before any of its request is buffered.
fn check_record(topic: &str, partitions: u32, r: &NewRecord) -> Result<()> {
    if r.timestamp.is_some_and(|t| t < 0) {
        return Err(Error::invalid(
            Invalid::Timestamp,
            "record timestamps are milliseconds since the Unix epoch, never negative",
        ));
    }
    match r.partition {
        Some(p) if p >= partitions => Err(Error::PartitionNotFound { topic: topic.to_owned(), partition: p }),
        _ => Ok(()),
    }
}

/// The writer's refusal, named for the request's producer where it is about one.
fn refused(e: WriteError, producer: Option<ProducerStamp>) -> Error {
    match (e, producer) {
        (WriteError::Producer(Placement::Fenced), Some(p)) => {
            Error::ProducerFenced { producer_id: p.id, epoch: p.epoch, current_epoch: None }
        }
        (WriteError::Producer(Placement::OutOfOrder { expected }), _) => Error::OutOfOrderSequence { expected },
        (WriteError::Producer(_), p) => Error::ProducerNotFound { producer_id: p.map(|p| p.id).unwrap_or_default() },
        (e, _) => e.into(),
    }
}
