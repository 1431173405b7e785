//! Prometheus metrics (`GET /metrics`): live counters and histograms the
//! service and the faces update, and the agent's other counters (object
//! store, cache, writer, log, compactor) read at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::Agent;
use crate::auth::{Caller, OpenEndpoint};
use crate::error::Result;

/// Seconds, from 1 ms to about 65 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 17)
}

fn histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `v1`, `v2`, `v3`, `internal` or `other`: which face.
    pub face: &'static str,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    budget: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    kind: &'static str,
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreOutcomeLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreBytesLabels {
    kind: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupPartitionLabels {
    group: String,
    topic: String,
    partition: u32,
}

/// The metrics that change as requests are served.
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RequestLabels, Histogram, fn() -> Histogram>,
    produce_ack_seconds: Histogram,
    /// The stages of acknowledged writes (`stage`: buffer, upload, commit).
    write_stage_seconds: Family<StageLabels, Histogram, fn() -> Histogram>,
    produces: Family<OutcomeLabels, Counter>,
    produced_records: Counter,
    produced_bytes: Counter,
    fetched_records: Counter,
    fetched_bytes: Counter,
    fetch_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(histogram),
            produce_ack_seconds: histogram(),
            write_stage_seconds: Family::new_with_constructor(histogram),
            produces: Family::default(),
            produced_records: Counter::default(),
            produced_bytes: Counter::default(),
            fetched_records: Counter::default(),
            fetched_bytes: Counter::default(),
            fetch_seconds: histogram(),
        }
    }
}

impl Metrics {
    /// One answered request.
    pub fn request(&self, labels: RequestLabels, seconds: f64) {
        self.requests.get_or_create(&labels).inc();
        self.request_seconds.get_or_create(&labels).observe(seconds);
    }

    /// One produce request, acknowledged (`Ok`, with its records and bytes) or refused.
    pub fn produce(&self, outcome: Result<(u64, u64), &'static str>, seconds: f64) {
        match outcome {
            Ok((records, bytes)) => {
                self.produces.get_or_create(&OutcomeLabels { outcome: "acknowledged" }).inc();
                self.produce_ack_seconds.observe(seconds);
                self.produced_records.inc_by(records);
                self.produced_bytes.inc_by(bytes);
            }
            Err(outcome) => {
                self.produces.get_or_create(&OutcomeLabels { outcome }).inc();
            }
        }
    }

    /// Where an acknowledged write's time went.
    pub fn write_stages(&self, receipt: &crate::writer::Receipt) {
        for (stage, d) in [("buffer", receipt.buffer), ("upload", receipt.upload), ("commit", receipt.commit)] {
            self.write_stage_seconds.get_or_create(&StageLabels { stage }).observe(d.as_secs_f64());
        }
    }

    pub fn fetch(&self, records: u64, bytes: u64, seconds: f64) {
        self.fetch_seconds.observe(seconds);
        self.fetched_records.inc_by(records);
        self.fetched_bytes.inc_by(bytes);
    }
}

fn counter(value: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(value);
    c
}

type GroupGauges = Family<GroupPartitionLabels, Gauge>;

impl Agent {
    /// Committed offsets and lag per group and partition, from the log as
    /// applied here (any agent answers the same).
    fn group_positions(&self) -> (GroupGauges, GroupGauges) {
        let (committed, lag) = (GroupGauges::default(), GroupGauges::default());
        let state = self.log.state();
        for (group, topics) in &state.group_offsets {
            for (topic, partitions) in topics {
                for (&partition, &offset) in partitions {
                    let labels = GroupPartitionLabels { group: group.clone(), topic: topic.clone(), partition };
                    let high_watermark = state.partition(topic, partition).map_or(0, |p| p.high_watermark);
                    committed.get_or_create(&labels).set(offset as i64);
                    lag.get_or_create(&labels).set(high_watermark.saturating_sub(offset) as i64);
                }
            }
        }
        (committed, lag)
    }
}

fn gauge(value: i64) -> Gauge {
    let g = Gauge::default();
    g.set(value);
    g
}

impl Agent {
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every metric in Prometheus' text format.
    pub async fn metrics_text(&self, caller: &Caller) -> Result<String> {
        self.check_open(caller, OpenEndpoint::Metrics)?;
        let m = &self.metrics;
        let mut r = Registry::with_prefix("floe");
        r.register("http_requests", "HTTP requests answered", m.requests.clone());
        r.register("http_request_seconds", "Time to answer an HTTP request", m.request_seconds.clone());
        r.register(
            "produce_ack_seconds",
            "Time from a produce request to its acknowledgement",
            m.produce_ack_seconds.clone(),
        );
        r.register(
            "write_stage_seconds",
            "Stages of acknowledged writes: waiting for the flush, the segment PUT, the log commit",
            m.write_stage_seconds.clone(),
        );
        r.register("produce_requests", "Produce requests by outcome", m.produces.clone());
        r.register("produced_records", "Records acknowledged", m.produced_records.clone());
        r.register("produced_bytes", "Bytes of records acknowledged", m.produced_bytes.clone());
        r.register("fetched_records", "Records returned by fetches", m.fetched_records.clone());
        r.register("fetched_bytes", "Bytes of values returned by fetches", m.fetched_bytes.clone());
        r.register("fetch_seconds", "Time to answer a fetch, long-polls included", m.fetch_seconds.clone());

        let stats = self.snapshot().await;
        let kinds = [
            ("log", stats.store.log),
            ("segments", stats.store.segments),
            ("snapshots", stats.store.snapshots),
            ("other", stats.store.other),
        ];
        let store: Family<StoreLabels, Counter> = Family::default();
        let outcomes: Family<StoreOutcomeLabels, Counter> = Family::default();
        for (kind, c) in kinds {
            for (op, n) in [("put", c.put), ("get", c.get), ("list", c.list), ("delete", c.delete)] {
                store.get_or_create(&StoreLabels { kind, op }).inc_by(n);
            }
            for (outcome, n) in [("already_exists", c.put_exists), ("not_found", c.get_missing), ("failed", c.failed)] {
                outcomes.get_or_create(&StoreOutcomeLabels { kind, outcome }).inc_by(n);
            }
        }
        r.register("store_requests", "Object-store requests by kind of key and operation", store);
        r.register(
            "store_request_outcomes",
            "Object-store requests that did not succeed, by kind of key and outcome (already_exists: a create-only PUT found the key taken)",
            outcomes,
        );
        let store_bytes: Family<StoreBytesLabels, Counter> = Family::default();
        for (kind, c) in
            [("log", stats.store.log), ("segments", stats.store.segments), ("snapshots", stats.store.snapshots)]
        {
            store_bytes.get_or_create(&StoreBytesLabels { kind, direction: "put" }).inc_by(c.put_bytes);
            store_bytes.get_or_create(&StoreBytesLabels { kind, direction: "get" }).inc_by(c.get_bytes);
        }
        r.register(
            "store_bytes",
            "Bytes written to and read from the store, by kind of key (segment bytes per segment PUT: the flush size)",
            store_bytes,
        );
        let cache = stats.cache;
        r.register("cache_lookups", "Batches asked of the read cache", counter(cache.lookups));
        r.register("cache_loads", "Batches not in RAM, loaded from disk or the store", counter(cache.loads));
        r.register("cache_disk_hits", "Loads served by the disk tier", counter(cache.disk_hits));
        r.register("cache_bytes", "Bytes held in the RAM tier", gauge(cache.bytes as i64));
        r.register(
            "writer_held_bytes",
            "Bytes of records taken and not yet answered",
            gauge(stats.writer.held_bytes as i64),
        );
        if let Some(spool) = &stats.writer.spool {
            r.register(
                "spool_held_bytes",
                "Bytes of flushes in the spool, not yet committed",
                gauge(spool.held_bytes as i64),
            );
            r.register(
                "spool_oldest_age_ms",
                "Age of the oldest flush in the spool (acks=local: acknowledged data only this disk holds)",
                gauge(spool.oldest_age_ms as i64),
            );
        }
        r.register("log_applied", "Log position applied by this agent", gauge(stats.log.applied as i64));
        r.register("log_commits", "Log entries this agent committed", counter(stats.log.commits));
        r.register(
            "log_commit_conflicts",
            "Log positions another writer took first (the entry went to the next)",
            counter(stats.log.commit_conflicts),
        );
        r.register(
            "log_commit_settles",
            "Commits whose outcome was unknown and read back from the log",
            counter(stats.log.commit_settles),
        );
        r.register("writer_budget_bytes", "The write buffer's budget", gauge(stats.writer.budget_bytes as i64));
        r.register(
            "http_connections",
            "HTTP connections open (on reserved slots too)",
            gauge(stats.connections.open as i64),
        );
        r.register(
            "http_connections_limit",
            "HTTP connections that may be open at once (--max-connections)",
            gauge(stats.connections.limit as i64),
        );
        let memory = &stats.memory;
        if let Some(rss) = memory.rss_bytes {
            r.register("resident_memory_bytes", "The agent process's resident set size", gauge(rss as i64));
        }
        let seconds = |us: u64| {
            let seconds = Counter::<f64, AtomicU64>::default();
            seconds.inc_by(us as f64 / 1e6);
            seconds
        };
        if let Some(us) = stats.compression_cpu_us {
            r.register(
                "compression_cpu_seconds",
                "CPU time spent compressing records, estimated from one compression in eight per thread (Linux)",
                seconds(us),
            );
        }
        if let Some(us) = stats.process_cpu_us {
            r.register(
                "process_cpu_seconds",
                "The agent process's CPU time, user and system, all threads (Linux, macOS)",
                seconds(us),
            );
        }
        let (held, budgets) = (Family::<BudgetLabels, Gauge>::default(), Family::<BudgetLabels, Gauge>::default());
        for (budget, b) in [
            ("write_buffer", &memory.write_buffer),
            ("batch_cache", &memory.batch_cache),
            ("chunk_cache", &memory.chunk_cache),
            ("request_bodies", &memory.request_bodies),
            ("fetch_answers", &memory.fetch_answers),
        ] {
            held.get_or_create(&BudgetLabels { budget }).set(b.held_bytes as i64);
            budgets.get_or_create(&BudgetLabels { budget }).set(b.budget_bytes as i64);
        }
        r.register("memory_held_bytes", "Bytes held against each memory budget", held);
        r.register("memory_budget_bytes", "Each memory budget's size", budgets);
        // Group and topic names: with tokens on, only for an admin's scrape.
        if caller.may(crate::auth::Action::Admin) {
            let (committed, lag) = self.group_positions();
            r.register("group_committed_offset", "A group's committed offset per partition", committed);
            r.register("group_lag", "Records between a group's committed offset and the high watermark", lag);
            let members = Family::<GroupLabels, Gauge>::default();
            let generations = Family::<GroupLabels, Gauge>::default();
            for (group, count, generation) in self.groups.coordinated() {
                members.get_or_create(&GroupLabels { group: group.clone() }).set(count as i64);
                generations.get_or_create(&GroupLabels { group }).set(generation as i64);
            }
            r.register("group_members", "Members of each group this agent coordinates", members);
            r.register("group_generation", "Generation of each group this agent coordinates", generations);
        }
        if let Some(c) = &self.compactor_stats {
            let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            r.register("compactor_cycles", "Compaction cycles run", counter(n(&c.cycles)));
            r.register("compactor_failed_cycles", "Compaction cycles that failed", counter(n(&c.failed_cycles)));
            r.register(
                "compactor_merge_panics",
                "Merge runs skipped because merging them panicked (a bug to report)",
                counter(n(&c.merge_panics)),
            );
        }
        let panics = Family::<TaskLabels, Counter>::default();
        for (task, n) in &stats.background_panics {
            panics.get_or_create(&TaskLabels { task }).inc_by(*n);
        }
        r.register(
            "background_task_panics",
            "Panics of background tasks the agent serves without, each started again after a pause",
            panics,
        );
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &r) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        Ok(out)
    }
}
