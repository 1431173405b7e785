//! `floe-bench`: measuring tools for Floe. The benchmark scenarios
//! (`floor`, `produce`, `consume`, `e2e`, `all`, and `metadata`) are in
//! `scenarios.rs` and `metadata.rs`, with their reporting in `report.rs`; the
//! chaos checker (`floe-chaos`) kills agents at random while producers and
//! consumers run, then checks every queue invariant.

pub mod chaos;
pub mod history;
pub mod metadata;
pub mod procs;
pub mod report;
pub mod scenarios;
