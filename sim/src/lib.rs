//! `floe-sim`: a seeded, deterministic simulation of Floe's storage core.
//!
//! Writers (each a `MetadataLog` with the write path's commit logic: upload,
//! commit, re-commit after a lost reply, idempotent retries), two compactors
//! and two consumer-group coordinators share one in-memory object store that
//! fails, delays and lands writes late. Time is tokio's paused clock, and
//! every random choice — faults, schedules, commit ids, clock offsets —
//! comes from one seed, so a seed replays exactly. Afterwards a checker holds
//! the history to the queue invariants (see `check`).
//!
//! What it does not model: the HTTP layer, the agent's in-memory write buffer
//! and its in-flight retry dedup, the real S3 client, and stores whose reads
//! lag their writes (S3 is strongly consistent; see docs/simulation.md).

mod check;
mod nodes;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use floe_broker::clock::Clock;
use floe_broker::components::{Random, SeededRandom};
use floe_broker::fault::{FaultyStore, RandomFaults};
use floe_broker::{Components, LogSettings, MetadataLog};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use tokio::time::Instant;

pub use check::Violation;

/// What one run simulates.
#[derive(Clone, Debug)]
pub struct Settings {
    pub writers: usize,
    /// Requests each writer makes (each acknowledged or abandoned).
    pub requests: usize,
    pub partitions: u32,
    /// Probability that a store operation on `log/` or `segments/` is faulted.
    pub fault_rate: f64,
    /// The cluster's commit window, in simulated milliseconds.
    pub commit_window_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { writers: 3, requests: 12, partitions: 2, fault_rate: 0.05, commit_window_ms: 60_000 }
    }
}

/// A run that passed: a digest of everything it did (equal for equal seeds)
/// and a few counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub digest: u64,
    pub acknowledged: usize,
    pub entries: u64,
}

/// The time every simulated clock starts at (2025-01-01), so runs do not
/// depend on the machine's clock.
const EPOCH_MS: u64 = 1_735_689_600_000;

/// Simulated wall time: paused tokio time since the run began, plus an
/// offset that can change (a skewed or jumping clock).
#[derive(Debug)]
pub struct SimClock {
    start: Instant,
    offset_ms: AtomicI64,
}

impl SimClock {
    fn new(start: Instant) -> Self {
        Self { start, offset_ms: AtomicI64::new(0) }
    }

    pub fn set_offset_ms(&self, offset: i64) {
        self.offset_ms.store(offset, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        (EPOCH_MS + elapsed).saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }
}

/// Everything the actors of one run share.
pub(crate) struct World {
    pub settings: Settings,
    pub seed: u64,
    pub random: Arc<SeededRandom>,
    /// The store as the nodes see it: faulty.
    pub store: Arc<dyn ObjectStore>,
    /// The same objects without faults, for the checker.
    pub truth: Arc<dyn ObjectStore>,
    /// The store's own clock (and the reference for the nodes' offsets).
    pub store_clock: Arc<SimClock>,
    pub start: Instant,
}

impl World {
    /// A uniform draw from `0..n` (0 when `n` is 0).
    pub fn below(&self, n: u64) -> u64 {
        self.random.next_u64().checked_rem(n).unwrap_or(0)
    }

    pub fn chance(&self, p: f64) -> bool {
        ((self.random.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub fn millis(&self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to.saturating_sub(from).max(1)))
    }

    /// A node: its own clock (offset from the store's) and its own stream of randomness.
    pub fn node(&self) -> (Components, Arc<SimClock>) {
        let clock = Arc::new(SimClock::new(self.start));
        let random = Arc::new(SeededRandom::new(self.random.next_u64()));
        (Components { clock: clock.clone(), random }, clock)
    }

    pub fn log_settings(&self) -> LogSettings {
        LogSettings {
            new_cluster_commit_window_ms: self.settings.commit_window_ms,
            settle_attempts: 4,
            ..LogSettings::default()
        }
    }

    /// Opens the bucket as a (re)started node does, retrying store faults.
    pub async fn open(&self, node: &Components) -> Arc<MetadataLog> {
        loop {
            match floe_broker::open_with(self.store.clone(), node.clone(), self.log_settings()).await {
                Ok((_, log)) => return Arc::new(log),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// Runs one seed to the end and checks it.
pub fn run(seed: u64, settings: &Settings) -> Result<Outcome, Violation> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
    let runtime = runtime.map_err(|e| Violation::new(seed, format!("cannot build the runtime: {e}")))?;
    runtime.block_on(simulate(seed, settings.clone()))
}

async fn simulate(seed: u64, settings: Settings) -> Result<Outcome, Violation> {
    let start = Instant::now();
    let random = Arc::new(SeededRandom::new(seed));
    let store_clock = Arc::new(SimClock::new(start));
    let truth: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let faults = RandomFaults { rate: settings.fault_rate, max_delay: Some(Duration::from_secs(3)) };
    let faulty = FaultyStore::new(truth.clone()).with_faults(faults, random.next_u64()).with_clock(store_clock.clone());
    let world = Arc::new(World { settings, seed, random, store: Arc::new(faulty), truth, store_clock, start });
    let history = nodes::run_actors(world.clone()).await;
    // Writes that land late land now; then the checker reads what is there.
    tokio::time::sleep(Duration::from_secs(10)).await;
    check::check(&world, &history).await
}
