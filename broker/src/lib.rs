//! Floe's core: the segment format, the metadata log, the state folded from it,
//! and object-store access. No HTTP here.

pub mod abort;
pub mod aligned;
pub mod clock;
pub mod cluster;
pub mod components;
pub mod conformance;
pub mod cpu_time;
pub mod crc;
#[cfg(target_os = "linux")]
pub mod direct;
pub mod entry;
mod error;
pub mod fault;
pub mod keys;
pub mod latency;
pub mod log;
pub mod metered;
pub mod panics;
pub mod record;
pub mod segment;
pub mod shutdown;
pub mod snapshot;
pub mod staging;
pub mod state;
pub mod store;
/// Fixtures for tests (an S3 server from the environment); not part of the production API.
#[cfg(feature = "test-util")]
pub mod testing;

use std::sync::Arc;

use object_store::ObjectStore;

pub use components::Components;
pub use error::{Error, ErrorKind, Result, store_error_kind};
pub use log::{Committed, LogSettings, MetadataLog};
pub use record::Record;

/// Opens a bucket for an agent or compactor: refuses a store that ignores
/// create-only PUTs, creates or checks the `cluster` object, then loads the
/// newest snapshot and replays the log.
pub async fn open(store: Arc<dyn ObjectStore>, settings: LogSettings) -> Result<(cluster::ClusterInfo, MetadataLog)> {
    open_with(store, Components::default(), settings).await
}

/// `open`, with this node's clock and random source injected.
pub async fn open_with(
    store: Arc<dyn ObjectStore>,
    node: Components,
    settings: LogSettings,
) -> Result<(cluster::ClusterInfo, MetadataLog)> {
    cluster::probe_create_only(store.as_ref(), &node).await?;
    let info = cluster::init(store.as_ref(), &node, settings.new_cluster_commit_window_ms).await?;
    let log = MetadataLog::open(store, node, settings, info.commit_window_ms).await?;
    Ok((info, log))
}
