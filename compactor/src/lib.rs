//! `floe-compactor`: merges small segments, enforces retention, writes
//! snapshots and collects garbage. The broker already reads snapshots
//! (`floe_broker::snapshot`); the compaction rules arrive with the compactor
//! issue and live here.
