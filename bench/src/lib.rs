//! `floe-bench`: measuring tools for Floe. Today it holds the chaos checker
//! (`floe-chaos`): agents killed at random while producers and consumers run,
//! then every queue invariant checked. The benchmark scenarios (`produce`,
//! `consume`, `e2e`, `floor`) arrive with the benchmark issue.

pub mod chaos;
pub mod history;
pub mod metadata;
pub mod procs;
