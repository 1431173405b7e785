//! The benchmark scenarios against an agent: `produce`, `consume` (tail and
//! catch-up) and `e2e` (produce to consume latency). Each runs against an
//! agent started on a temporary local store (with a latency profile) or
//! against `--target`; `floor` (the raw store) is in `crate::floor`.

mod consume;
mod e2e;
pub mod memory;
mod produce;

pub use consume::{ConsumeResult, consume_scenario};
pub use e2e::{E2eResult, e2e};
pub use produce::{ProduceResult, produce};
