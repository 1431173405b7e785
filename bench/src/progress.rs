//! Live progress of a load: counters the load tasks add to, and the line on
//! stderr that shows them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::report::MIB;

/// Progress counters shared by the load tasks, printed once a second.
#[derive(Default)]
pub struct Progress {
    pub produced_bytes: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub errors: AtomicU64,
}

/// Prints a progress line to stderr every second until dropped.
pub struct ProgressLine(tokio::task::JoinHandle<()>);

impl ProgressLine {
    pub fn start(label: String, total: Duration, progress: Arc<Progress>) -> Self {
        let start = Instant::now();
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let t = start.elapsed().as_secs_f64();
                let done = (t / total.as_secs_f64().max(0.001)).min(1.0);
                let bar = "#".repeat((done * 20.0) as usize);
                eprint!(
                    "\r{label} [{bar:<20}] {t:>4.0}s  produced {:>8.1} MiB  consumed {:>8.1} MiB  errors {}   ",
                    progress.produced_bytes.load(Ordering::Relaxed) as f64 / MIB,
                    progress.consumed_bytes.load(Ordering::Relaxed) as f64 / MIB,
                    progress.errors.load(Ordering::Relaxed)
                );
            }
        }))
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.0.abort();
        eprintln!();
    }
}
