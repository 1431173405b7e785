//! `floe-bench`: measuring tools for Floe. The benchmark scenarios
//! (`floor`, `produce`, `consume`, `e2e`, `all`, and `metadata`) are in
//! `floor.rs`, `scenarios/` and `metadata.rs`, on the agent of `cluster.rs`
//! under the load of `load/`, with their reporting in `report/`; the
//! chaos checker (`floe-chaos`) kills agents at random while producers and
//! consumers run, then checks every queue invariant.

// The bench and the checker are clients of Floe: they use the machine's
// clock and randomness (clippy.toml keeps those out of Floe itself).
#![allow(clippy::disallowed_methods)]

pub mod chaos;
pub mod clock;
pub mod cluster;
pub mod cpu_floor;
pub mod floor;
pub mod history;
pub mod load;
pub mod metadata;
pub mod procs;
pub mod progress;
pub mod report;
pub mod scenarios;
