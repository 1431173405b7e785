//! `floe-bench`: the load generator and reporter. Its scenarios (`produce`,
//! `consume`, `e2e`, `floor`) arrive with the benchmark issue; this crate is
//! the workspace slot they fill.
