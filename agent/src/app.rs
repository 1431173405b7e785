//! One agent: the metadata log it follows, its writer, reader and cache.

use std::sync::Arc;

use floe_broker::metered::MeteredStore;
use floe_broker::{LogSettings, MetadataLog};
use object_store::ObjectStore;
use tokio::net::TcpListener;

use std::time::Duration;

use crate::cache::BatchCache;
use crate::committer::{Committer, GroupSettings, LeaseSettings};
use crate::config::{AgentArgs, CompactorMode};
use crate::groups::Groups;
use crate::partitioner::Sticky;
use crate::peers::PeerAuth;
use crate::reader::Reader;
use crate::writer::{Writer, WriterSettings};
use floe_compactor::Compactor;

pub struct Agent {
    pub settings: AgentArgs,
    /// Set when the agent cannot go on (a log entry that does not decode):
    /// `serve` stops, and the process exits with the error.
    fatal: tokio::sync::watch::Sender<Option<Arc<floe_broker::Error>>>,
    /// The embedded compactor's counters (none when compaction runs elsewhere).
    pub compactor_stats: Option<Arc<floe_compactor::CompactorStats>>,
    pub peers: Arc<PeerAuth>,
    pub store_stats: Arc<MeteredStore>,
    pub cache: BatchCache,
    pub log: Arc<MetadataLog>,
    pub committer: Arc<Committer>,
    pub groups: Groups,
    pub writer: Writer,
    pub reader: Reader,
    pub sticky: Sticky,
}

impl Agent {
    /// Opens the bucket (safety probe, cluster object, snapshot + log replay)
    /// and starts the background tasks.
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
        let (cluster, log) = floe_broker::open_with(store, node, log_settings).await?;
        let log = Arc::new(log);
        tracing::info!(cluster_id = %cluster.cluster_id, applied = log.applied(), "bucket opened");
        let disk = settings.cache_dir.clone().map(|d| (d, settings.cache_dir_bytes));
        let cache = BatchCache::new(settings.cache_bytes, disk)
            .map_err(|source| floe_broker::Error::LocalIo { what: "cache directory".into(), source })?;
        let secret = floe_broker::cluster::internal_secret(log.store().as_ref(), log.node()).await?;
        let auth = Arc::new(PeerAuth::new(cluster.cluster_id, secret));
        let advertised = url.to_owned();
        let groups = Groups::new(
            log.node().ulid(),
            advertised.clone(),
            Duration::from_millis(settings.group_coordinator_term_ms.max(1_000)),
            auth.clone(),
        );
        let lease = settings.commit_lease.then(|| LeaseSettings {
            url: advertised.clone(),
            term: Duration::from_millis(settings.lease_term_ms.max(100)),
            forward_timeout: Duration::from_secs(2),
        });
        let group = GroupSettings { window: Duration::from_millis(settings.group_commit_ms) };
        let committer = Committer::start(log.clone(), auth.clone(), lease, group);
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
        );
        let (fatal, _) = tokio::sync::watch::channel(None);
        tokio::spawn(follow(Arc::downgrade(&log), settings.log_poll_interval(), fatal.clone()));
        let compactor_stats = (settings.compactor == CompactorMode::Embedded).then(|| {
            let compactor = Compactor::new(log.clone(), settings.compaction.clone());
            let stats = compactor.stats();
            tokio::spawn(compactor.run());
            stats
        });
        let reader = Reader::new(log.clone(), cache.clone());
        let agent = Arc::new(Self {
            settings,
            fatal,
            compactor_stats,
            peers: auth,
            store_stats: metered,
            cache,
            log,
            committer,
            groups,
            writer,
            reader,
            sticky: Sticky::default(),
        });
        tokio::spawn(maintain_groups(Arc::downgrade(&agent)));
        Ok(agent)
    }

    pub fn partition_count(&self, topic: &str) -> Option<u32> {
        self.log.state().topic(topic).map(|t| t.partitions.len() as u32)
    }

    /// Serves the HTTP API until `shutdown` resolves, or until the agent
    /// meets an error it cannot go on from (returned).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut fatal = self.fatal.subscribe();
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                _ = fatal.wait_for(Option::is_some) => {}
            }
        };
        axum::serve(listener, crate::api::router(self.clone())).with_graceful_shutdown(stop).await?;
        match self.fatal.borrow().clone() {
            Some(e) => Err(std::io::Error::other(e)),
            None => Ok(()),
        }
    }
}

/// Expires group members and renews coordinator leases.
async fn maintain_groups(agent: std::sync::Weak<Agent>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(agent) = agent.upgrade() else { return };
        agent.groups.maintain(&agent).await;
    }
}

/// Learns entries committed by other agents, so long-polls wake and reads
/// stay fresh. A log entry that does not decode stops the agent: nothing
/// after it can be applied, and retrying would only spin.
async fn follow(
    log: std::sync::Weak<MetadataLog>,
    every: std::time::Duration,
    fatal: tokio::sync::watch::Sender<Option<Arc<floe_broker::Error>>>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(log) = log.upgrade() else { return };
        match log.catch_up().await {
            Ok(_) => {}
            Err(e @ floe_broker::Error::CorruptLogEntry { .. }) => {
                tracing::error!(error = %e, "stopping");
                fatal.send_replace(Some(Arc::new(e)));
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the metadata log"),
        }
    }
}
