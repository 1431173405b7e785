//! The service layer: one agent's operations as typed methods with typed
//! results and errors (`crate::error`), no HTTP in them. Every face (the
//! native API, internal routes, later Confluent's REST API and the console)
//! parses, calls one method here, and renders.
//!
//! `Agent`'s fields are private to this module: the faces reach the log,
//! the writer and the groups only through these methods.

mod cluster;
pub mod connections;
mod follow;
mod groups;
mod internal;
mod metrics;
mod producers;
mod records;
mod stats;
mod topics;
pub mod validate;

pub use crate::reader::{FetchRequest, Fetched};
pub use crate::writer::{Acks, Receipt};
pub use cluster::{AgentInfo, ClusterInfo};
pub use floe_broker::entry::FlushId;
pub use groups::{CommittedOffset, GroupDescription, GroupSummary};
pub use internal::Peer;
pub use metrics::{Metrics, RequestLabels};
pub use producers::{FlushStatus, ProducerId};
pub use records::{NewRecord, Produced, RecordOffset, Tail};
pub use stats::{AllocatorStats, Stats, report_allocator};
pub use topics::{NewTopic, PartitionInfo, TopicInfo, TopicUpdate};

use std::sync::Arc;

use floe_broker::metered::MeteredStore;
use floe_broker::{LogSettings, MetadataLog};
use object_store::ObjectStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::time::Duration;

use crate::auth::{Action, Auth, Caller, OpenEndpoint};
use crate::cache::BatchCache;
use crate::chunks::{CHUNK_BYTES, Chunks};
use crate::committer::{Committer, GroupSettings, LeaseSettings};
use crate::config::{AgentArgs, CompactorMode};
use crate::error::Result;
use crate::groups::Groups;
use crate::partitioner::Sticky;
use crate::peers::PeerAuth;
use crate::reader::Reader;
use crate::restarting::{Panics, restarting};
use crate::spool::Spool;
use crate::writer::{Writer, WriterSettings};
use floe_compactor::Compactor;

pub struct Agent {
    settings: AgentArgs,
    /// The bucket's cluster id, shown to clients as the cluster's.
    cluster_id: ulid::Ulid,
    /// Set when the agent cannot go on (a log entry that does not decode):
    /// the faces stop, and the process exits with the error.
    fatal: tokio::sync::watch::Sender<Option<Arc<floe_broker::Error>>>,
    /// Cancelled when the agent stops taking requests: tails end, the
    /// writer drains.
    stopping: CancellationToken,
    /// Cancelled once the writer has drained: the background loops end.
    background: CancellationToken,
    /// Every background task but the writer's own.
    tasks: TaskTracker,
    /// The embedded compactor's counters (none when compaction runs elsewhere).
    compactor_stats: Option<Arc<floe_compactor::CompactorStats>>,
    /// Panics of the background tasks, each started again after it.
    panics: Arc<Panics>,
    peers: Arc<PeerAuth>,
    store_stats: Arc<MeteredStore>,
    cache: BatchCache,
    log: Arc<MetadataLog>,
    committer: Arc<Committer>,
    groups: Groups,
    writer: Writer,
    reader: Reader,
    sticky: Sticky,
    metrics: Metrics,
    /// Where other agents reach this one.
    url: String,
    /// Clients' tokens; `None` when authentication is off.
    auth: Option<Auth>,
    /// One permit per request in flight (`--max-concurrent-requests`).
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Connections open, and the slots they take (`--max-connections`).
    connections: Arc<connections::Connections>,
    /// Request bodies in flight (`--request-memory-bytes`).
    bodies: crate::budget::MemoryBudget,
    /// Raw segment chunks of the read path.
    chunks: Chunks,
}

impl Agent {
    /// Opens the bucket (safety probe, cluster object, snapshot + log replay)
    /// and starts the background tasks, which run until `shutdown`.
    /// `url` is where other agents reach this one (`AgentArgs::advertised_url`).
    pub async fn start(
        settings: AgentArgs,
        store: Arc<dyn ObjectStore>,
        url: &str,
    ) -> Result<Arc<Self>, floe_broker::Error> {
        let metered = Arc::new(MeteredStore::new(store));
        let store: Arc<dyn ObjectStore> = metered.clone();
        let log_settings =
            LogSettings { new_cluster_commit_window_ms: settings.commit_window_ms, ..LogSettings::default() };
        let mut node = floe_broker::Components::default();
        if let Some(offset) = settings.test_clock_offset_ms {
            node.clock = Arc::new(floe_broker::clock::OffsetClock::new(offset));
        }
        // Before the bucket: a bad spool directory is a start-up error, at once.
        let spool = match &settings.spool_dir {
            Some(dir) => {
                let (spool, recovered) =
                    Spool::open(dir, settings.spool_bytes, || node.ulid(), node.now_ms()).map_err(|e| {
                        floe_broker::Error::LocalIo { what: "spool".into(), source: std::io::Error::other(e) }
                    })?;
                tracing::info!(dir = %dir.display(), spool = %spool.id(), replaying = recovered.len(), "spool opened");
                Some((Arc::new(spool), recovered))
            }
            None => None,
        };
        let (cluster, log) = floe_broker::open_with(store, node, log_settings).await?;
        let log = Arc::new(log);
        tracing::info!(cluster_id = %cluster.cluster_id, applied = log.applied(), "bucket opened");
        let disk = settings.cache_dir.clone().map(|d| (d, settings.cache_dir_bytes));
        let chunk_budget = chunk_budget(settings.cache_bytes);
        let chunks = Chunks::new(log.store().clone(), CHUNK_BYTES, chunk_budget);
        let cache = BatchCache::new(settings.cache_bytes - chunk_budget, disk)
            .map_err(|source| floe_broker::Error::LocalIo { what: "cache directory".into(), source })?;
        let secret = floe_broker::cluster::internal_secret(log.store().as_ref(), log.node()).await?;
        let trusted = match &settings.tls_ca {
            Some(path) => crate::peers::trusted_certificates(path).map_err(|e| floe_broker::Error::LocalIo {
                what: "agent-to-agent TLS".into(),
                source: std::io::Error::other(e),
            })?,
            None => Vec::new(),
        };
        let auth = Arc::new(
            PeerAuth::new(cluster.cluster_id, secret, trusted).with_header_timeout(settings.request_header_timeout()),
        );
        let advertised = url.to_owned();
        let (tasks, stopping, background) = (TaskTracker::new(), CancellationToken::new(), CancellationToken::new());
        let lease = settings.commit_lease.then(|| LeaseSettings {
            url: advertised.clone(),
            term: Duration::from_millis(settings.lease_term_ms.max(100)),
            forward_timeout: Duration::from_secs(2),
        });
        let group = GroupSettings { window: Duration::from_millis(settings.group_commit_ms) };
        let committer =
            Committer::start(log.clone(), auth.clone(), lease, group, &tasks, stopping.clone(), background.clone());
        let writer = Writer::start(
            log.clone(),
            committer.clone(),
            cache.clone(),
            WriterSettings {
                flush_interval: settings.flush_interval(),
                flush_bytes: settings.flush_bytes,
                buffer_bytes: settings.buffer_bytes,
                max_uploads: settings.max_uploads,
            },
            spool,
        );
        let (fatal, _) = tokio::sync::watch::channel(None);
        let panics = Arc::new(Panics::default());
        let (weak, every, stop) = (Arc::downgrade(&log), settings.log_poll_interval(), background.clone());
        let follower = {
            let fatal = fatal.clone();
            move || follow::follow(weak.clone(), every, fatal.clone(), stop.clone())
        };
        tasks.spawn(restarting("log_follower", panics.clone(), background.clone(), follower));
        let compactor_stats = (settings.compactor == CompactorMode::Embedded).then(|| {
            let stats = Arc::new(floe_compactor::CompactorStats::default());
            let (log, compaction, stop, counted) =
                (log.clone(), settings.compaction.clone(), stopping.clone(), stats.clone());
            let compactor = move || {
                let compactor = Compactor::new(log.clone(), compaction.clone()).with_stats(counted.clone());
                compactor.run(stop.clone().cancelled_owned())
            };
            tasks.spawn(restarting("compactor", panics.clone(), stopping.clone(), compactor));
            stats
        });
        let answers = crate::budget::MemoryBudget::new(settings.fetch_memory_bytes);
        let reader = Reader::new(log.clone(), cache.clone(), chunks.clone(), tasks.clone(), answers);
        let groups = Groups::new(
            log.clone(),
            reader.clone(),
            advertised.clone(),
            Duration::from_millis(settings.group_coordinator_term_ms.max(1_000)),
            auth.clone(),
            stopping.clone(),
        );
        let client_auth = match &settings.auth_tokens {
            Some(path) => Some(Auth::load(path, &settings.open_endpoints()).map_err(|e| {
                floe_broker::Error::LocalIo { what: "client authentication".into(), source: std::io::Error::other(e) }
            })?),
            None => None,
        };
        let max_concurrent = settings.max_concurrent_requests.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        let max_connections =
            settings.max_connections.unwrap_or_else(|| connections::default_max(connections::open_file_limit()));
        let body_budget = body_budget(&settings);
        let agent = Arc::new(Self {
            settings,
            cluster_id: cluster.cluster_id,
            fatal,
            stopping,
            background,
            tasks,
            compactor_stats,
            panics,
            peers: auth,
            store_stats: metered,
            cache,
            log,
            committer,
            groups,
            writer,
            reader,
            sticky: Sticky::default(),
            metrics: Metrics::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(max_concurrent)),
            connections: Arc::new(connections::Connections::new(max_connections)),
            bodies: crate::budget::MemoryBudget::new(body_budget),
            chunks,
            auth: client_auth,
            url: advertised,
        });
        let (weak, stop) = (Arc::downgrade(&agent), agent.stopping.clone());
        let upkeep = move || maintain_groups(weak.clone(), stop.clone());
        agent.tasks.spawn(restarting("group_upkeep", agent.panics.clone(), agent.stopping.clone(), upkeep));
        Ok(agent)
    }

    /// Who a request comes from, by its `Authorization` header value:
    /// `Unauthenticated` for a token the agent does not know.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller> {
        match &self.auth {
            Some(auth) => auth.authenticate(authorization),
            None => Ok(Caller::Unrestricted),
        }
    }

    /// The caller as the tokens in force now see it (after a reload, a
    /// removed token is `Unauthenticated`): for long-lived requests.
    pub fn refresh_caller(&self, caller: &Caller) -> Result<Caller> {
        match &self.auth {
            Some(auth) => auth.refresh(caller),
            None => Ok(caller.clone()),
        }
    }

    /// Reads the tokens file again (SIGHUP); on an error the tokens in force stay.
    pub fn reload_tokens(&self) {
        if let Some(auth) = &self.auth {
            match auth.reload() {
                Ok(count) => tracing::info!(tokens = count, "tokens file reloaded"),
                Err(e) => tracing::error!(error = %e, "cannot reload the tokens file; the tokens in force stay"),
            }
        }
    }

    /// Whether `caller` may reach an endpoint that can be left open.
    fn check_open(&self, caller: &Caller, endpoint: OpenEndpoint) -> Result<()> {
        match &self.auth {
            Some(auth) if !auth.is_open(endpoint) => caller.check(Action::Authenticated),
            _ => Ok(()),
        }
    }

    /// The cluster's id, for any caller with a valid token.
    pub fn describe_cluster(&self, caller: &Caller) -> Result<String> {
        caller.check(Action::Authenticated)?;
        Ok(self.cluster_id())
    }

    /// Liveness: answers while the process serves requests.
    pub fn health(&self, caller: &Caller) -> Result<()> {
        self.check_open(caller, OpenEndpoint::Healthz)
    }

    /// The cluster this agent serves: the bucket's id, lower-case.
    pub fn cluster_id(&self) -> String {
        self.cluster_id.to_string().to_lowercase()
    }

    /// A fresh id, for names a client leaves to the agent.
    pub fn fresh_id(&self) -> String {
        self.log.node().ulid().to_string().to_lowercase()
    }

    /// The agent's clock and randomness, for the faces' ids.
    pub fn components(&self) -> floe_broker::Components {
        self.log.node().clone()
    }

    /// How long a client may take to send a request's head.
    pub fn request_header_timeout(&self) -> Duration {
        self.settings.request_header_timeout()
    }

    /// How long a client may take to send a request body.
    pub fn request_body_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.request_body_timeout_ms.max(1))
    }

    /// The slots connections take, and the count of those open.
    pub fn connections(&self) -> Arc<connections::Connections> {
        self.connections.clone()
    }

    /// A slot for one more request in flight, held until it is answered;
    /// `None` when all are taken.
    pub fn admit_request(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.in_flight.clone().try_acquire_owned().ok()
    }

    /// The largest request body a face should read.
    pub fn max_request_bytes(&self) -> usize {
        self.settings.max_request_bytes
    }

    /// When a native produce that does not say is answered (`--acks`).
    pub fn default_acks(&self) -> Acks {
        self.settings.acks
    }

    /// Reserves `bytes` of the request-body budget for a request's lifetime,
    /// waiting while the bodies in flight hold it (the client's body stays
    /// in its socket meanwhile).
    ///
    /// # Cancel safety
    /// Cancel safe, as `Semaphore::acquire_many_owned`.
    pub async fn reserve_body(&self, bytes: usize) -> crate::budget::Held {
        self.bodies.take(bytes).await
    }

    /// Bytes of the request-body budget held by requests in flight.
    pub fn bodies_held(&self) -> usize {
        self.bodies.held()
    }

    /// The request-body budget: `--request-memory-bytes`, and room for at
    /// least one request of the largest size.
    pub(super) fn body_budget(&self) -> usize {
        self.bodies.total()
    }

    /// How long, once stopping, in-flight requests and the drain may take.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.drain_timeout_ms)
    }

    /// Resolves when the agent should stop serving: it met an error it
    /// cannot go on from, or `stop` was called.
    pub async fn stopped(&self) {
        let mut fatal = self.fatal.subscribe();
        tokio::select! {
            _ = fatal.wait_for(Option::is_some) => {}
            () = self.stopping.cancelled() => {}
        }
    }

    /// The error that stopped the agent, if one did.
    pub fn fatal_error(&self) -> Option<Arc<floe_broker::Error>> {
        self.fatal.borrow().clone()
    }

    /// Stops taking requests: produce answers `ShuttingDown`, tails end.
    /// What was taken before is still written (see `drain`).
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// Stops, then writes out everything taken before (uploads, commits,
    /// answers), then ends the background tasks (the log follower, group
    /// upkeep, the commit lease, the compactor after its current cycle).
    ///
    /// # Cancel safety
    /// Cancel safe: the work goes on in the agent's tasks; dropping this
    /// future only stops waiting. A process that exits anyway loses nothing
    /// acknowledged (acknowledged means committed), only work in progress.
    pub async fn drain(&self) {
        self.stop();
        self.writer.drain().await;
        self.background.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// A quarter of the read cache holds raw segment chunks, the rest decoded batches.
fn chunk_budget(cache_bytes: u64) -> u64 {
    cache_bytes / 4
}

fn body_budget(settings: &AgentArgs) -> usize {
    settings.request_memory_bytes.max(settings.max_request_bytes)
}

/// A background loop's rhythm: a tick every period (late ticks are not
/// made up), until `stop`, which wins over a tick that is due.
pub(super) struct Ticks {
    interval: tokio::time::Interval,
    stop: CancellationToken,
}

impl Ticks {
    pub(super) fn new(every: Duration, stop: CancellationToken) -> Self {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { interval, stop }
    }

    /// `true` at the next tick, `false` once stopped.
    ///
    /// # Cancel safety
    /// Cancel safe, as `Interval::tick`.
    pub(super) async fn next(&mut self) -> bool {
        tokio::select! {
            biased;
            () = self.stop.cancelled() => false,
            _ = self.interval.tick() => true,
        }
    }
}

/// Expires group members and renews coordinator leases.
///
/// # Cancel safety
/// Cancel safe, as `Groups::maintain`.
async fn maintain_groups(agent: std::sync::Weak<Agent>, stop: CancellationToken) {
    let mut ticks = Ticks::new(Duration::from_millis(500), stop);
    while ticks.next().await {
        let Some(agent) = agent.upgrade() else { return };
        agent.groups.maintain().await;
    }
}
