//! Compactor settings: a plain struct with `Default` for the library. With
//! the `cli` feature (on by default, for the binaries) it is also a set of
//! clap flags, each with a `FLOE_*` variable; the same flags serve the
//! standalone binary and the compactor embedded in an agent.

use std::time::Duration;

#[derive(Clone, Debug, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct CompactorSettings {
    /// Pause between compaction cycles.
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_COMPACTION_INTERVAL_MS", default_value_t = 30_000))]
    pub compaction_interval_ms: u64,

    /// How long an unreferenced object waits before it is deleted. Must exceed
    /// the cluster's commit window (60 s by default) by a wide margin.
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_GC_GRACE_MS", default_value_t = 600_000))]
    pub gc_grace_ms: u64,

    /// Write a snapshot once this many log entries follow the newest one.
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_SNAPSHOT_EVERY_ENTRIES", default_value_t = 1_000))]
    pub snapshot_every_entries: u64,

    /// The snapshot format written: 4 (partitions' batch indexes in binary,
    /// fast to load), or 3 (one JSON document, which builds before format 4
    /// read: set it while older agents or compactors may still start on
    /// this bucket, as during a rolling upgrade; docs/compactor.md).
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_SNAPSHOT_FORMAT", default_value_t = 4, value_parser = clap::value_parser!(u32).range(3..=4)))]
    pub snapshot_format: u32,

    /// Batches smaller than this (compressed bytes) that sit in flush
    /// segments are merged. The default is an agent's read chunk (8 MiB):
    /// a partition read alone gets about a chunk per GET from the merged
    /// segments, and one batch per GET from flush segments.
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_MERGE_SMALL_BATCH_BYTES", default_value_t = 8 << 20))]
    pub merge_small_batch_bytes: u64,

    /// A run of small batches is merged once it holds this many batches, even
    /// if together they are still small.
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_MERGE_MIN_BATCHES", default_value_t = 32))]
    pub merge_min_batches: usize,

    /// Largest merged segment (compressed bytes, estimated from the inputs).
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_MERGE_TARGET_BYTES", default_value_t = 16 << 20))]
    pub merge_target_bytes: u64,

    /// Records per batch in merged segments are cut at this many raw bytes,
    /// so a fetch still reads one modest ranged GET.
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_MERGE_BATCH_BYTES", default_value_t = 1 << 20))]
    pub merge_batch_bytes: usize,

    /// Input (compressed bytes) read together for several merge runs: the
    /// runs of different partitions over the same flushes read each flush
    /// segment with one GET. Held in memory while they are merged; larger
    /// groups make fewer GETs (docs/compactor.md).
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_MERGE_READ_BYTES", default_value_t = 64 << 20))]
    pub merge_read_bytes: u64,

    /// Bytes merged per cycle at most.
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_MERGE_MAX_BYTES_PER_CYCLE", default_value_t = 256 << 20))]
    pub merge_max_bytes_per_cycle: u64,

    /// Log entries shrunk to tombstones per cycle at most.
    #[cfg_attr(feature = "cli", arg(long, env = "FLOE_TOMBSTONES_PER_CYCLE", default_value_t = 10_000))]
    pub tombstones_per_cycle: usize,
}

impl Default for CompactorSettings {
    fn default() -> Self {
        Self {
            compaction_interval_ms: 30_000,
            gc_grace_ms: 600_000,
            snapshot_every_entries: 1_000,
            snapshot_format: floe_broker::snapshot::INDEXED_SNAPSHOT_FORMAT,
            merge_small_batch_bytes: 8 << 20,
            merge_min_batches: 32,
            merge_target_bytes: 16 << 20,
            merge_batch_bytes: 1 << 20,
            merge_read_bytes: 64 << 20,
            merge_max_bytes_per_cycle: 256 << 20,
            tombstones_per_cycle: 10_000,
        }
    }
}

impl CompactorSettings {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.compaction_interval_ms.max(1))
    }

    pub fn gc_grace(&self) -> Duration {
        Duration::from_millis(self.gc_grace_ms)
    }
}
