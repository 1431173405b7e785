//! What a benchmark reads and prints: the agent's store counters
//! (`/v1/stats`) and their request cost, agent CPU time, latency histograms
//! and their chart, and `floe-bench`'s text output and JSON summary.

mod chart;
mod cpu;
mod latency;
mod stats;
mod summary;
pub mod text;

pub use chart::latency_svg;
pub use cpu::cpu_seconds;
pub use latency::{Latency, histogram, ms_at};
pub use stats::{Counts, GET_PER_1000, PUT_LIST_PER_1000, PerGib, Stats, dollars, price_table};
pub use summary::{Results, Summary};

pub const MIB: f64 = 1024.0 * 1024.0;
pub const GIB: f64 = 1024.0 * MIB;
