//! Background work the agent serves without: the embedded compactor, the
//! log follower and group upkeep. A panic in one (a bug) used to end that
//! task alone, with a line on stderr and nothing else to show: an embedded
//! compactor that panicked once stopped retention and garbage collection
//! for good while the agent looked healthy. Now the panic is logged with
//! the task's name and its message, and counted (`/v1/stats`
//! `background_panics`, metric `floe_background_task_panics_total`), and a
//! new task is started after a pause. The task's own state starts afresh,
//! as in a restarted process: the compactor's (it catches up with the log
//! it shares with the agent, and its garbage collector starts its grace
//! periods again), the follower's pace. What it shares with the rest of
//! the agent stays as the panic left it: the applied log state (a panic
//! while applying an entry aborts, `floe_broker::abort`) and the groups'
//! membership, which request handlers change too. The pause doubles while
//! the task keeps panicking soon after its start, so a panic that recurs
//! costs a log line a minute, not a crash loop.
//!
//! The tasks the agent cannot write without abort instead (`essential`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floe_broker::panics::caught;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The pause after a first panic.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause; a task that ran this long before it panicked starts
/// again after [`FIRST_PAUSE`].
pub const LONGEST_PAUSE: Duration = Duration::from_secs(60);

/// Panics so far, by task (every task given to [`restarting`] is listed,
/// from 0).
#[derive(Debug, Default)]
pub struct Panics(Mutex<BTreeMap<&'static str, u64>>);

impl Panics {
    pub fn by_task(&self) -> BTreeMap<&'static str, u64> {
        self.counts().clone()
    }

    fn add(&self, task: &'static str, n: u64) {
        *self.counts().entry(task).or_default() += n;
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, u64>> {
        // Nothing panics while holding it; a poisoned map is still a map.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs the task `start` makes until it returns or `stop` is cancelled;
/// after a panic (in `start` or in the task), counts it in `panics` and,
/// after a pause, runs a new one. The task is listed in `panics` at once,
/// before the future is first polled.
///
/// # Cancel safety
/// As cancel safe as the tasks `start` makes: dropping this drops the one
/// running (or the pause).
pub fn restarting<F, T>(
    task: &'static str,
    panics: Arc<Panics>,
    stop: CancellationToken,
    mut start: F,
) -> impl Future<Output = ()>
where
    F: FnMut() -> T,
    T: Future<Output = ()>,
{
    panics.add(task, 0);
    async move {
        let mut pause = FIRST_PAUSE;
        loop {
            let started = Instant::now();
            let Err(panic) = caught(async { start().await }).await else { return };
            panics.add(task, 1);
            if started.elapsed() >= LONGEST_PAUSE {
                pause = FIRST_PAUSE;
            }
            tracing::error!(
                task,
                panic,
                pause_s = pause.as_secs(),
                "a background task panicked; a new one starts after a pause"
            );
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures::FutureExt;

    use super::*;

    /// Starts of a task that panics at its first `panicking` starts, each
    /// after running `runs_for`, then returns.
    fn flaky(
        panicking: u32,
        runs_for: Duration,
    ) -> (Arc<Mutex<Vec<Instant>>>, impl FnMut() -> futures::future::BoxFuture<'static, ()>) {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let seen = starts.clone();
        let n = Arc::new(AtomicU32::new(0));
        let start = move || {
            let (seen, n) = (seen.clone(), n.clone());
            async move {
                seen.lock().unwrap().push(Instant::now());
                tokio::time::sleep(runs_for).await;
                if n.fetch_add(1, Ordering::Relaxed) < panicking {
                    panic!("a bug");
                }
            }
            .boxed()
        };
        (starts, start)
    }

    fn gaps(starts: &[Instant], runs_for: Duration) -> Vec<u64> {
        starts.windows(2).map(|w| (w[1] - w[0] - runs_for).as_secs()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_is_counted_and_started_again_after_a_doubling_pause() {
        let panics = Arc::new(Panics::default());
        let (starts, start) = flaky(8, Duration::ZERO);
        restarting("flaky", panics.clone(), CancellationToken::new(), start).await;
        assert_eq!(gaps(&starts.lock().unwrap(), Duration::ZERO), [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(panics.by_task(), BTreeMap::from([("flaky", 8)]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ran_a_long_while_before_it_panicked_starts_again_soon() {
        let panics = Arc::new(Panics::default());
        let (starts, start) = flaky(3, LONGEST_PAUSE);
        restarting("slow", panics.clone(), CancellationToken::new(), start).await;
        assert_eq!(gaps(&starts.lock().unwrap(), LONGEST_PAUSE), [1, 1, 1]);
        assert_eq!(panics.by_task(), BTreeMap::from([("slow", 3)]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_returns_is_not_started_again_and_is_listed_at_zero() {
        let panics = Arc::new(Panics::default());
        let (starts, start) = flaky(0, Duration::ZERO);
        let run = restarting("fine", panics.clone(), CancellationToken::new(), start);
        assert_eq!(panics.by_task(), BTreeMap::from([("fine", 0)]), "listed before it runs");
        run.await;
        assert_eq!(starts.lock().unwrap().len(), 1);
        assert_eq!(panics.by_task(), BTreeMap::from([("fine", 0)]));
    }

    /// The agent's embedded compactor panics in a cycle (a bug, as the store
    /// injects it); it is counted and started again, and its next cycles run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_agent_starts_its_compactor_again_after_a_panic() {
        use floe_broker::fault::{Fault, OpKind};

        let (agent, store) = crate::testing::agent_on_a_faulty_store(&["--compaction-interval-ms", "20"]).await;
        // Once open (which lists snapshots too): the next cycle's listing panics.
        store.inject(OpKind::List, "snapshots", Fault::Panic, Some(1));
        let caller = crate::auth::Caller::Unrestricted;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut cycles_at_panic = None;
        loop {
            let stats = agent.stats(&caller).await.unwrap();
            let compactor = stats.compactor.unwrap();
            if cycles_at_panic.is_none() && stats.background_panics.get("compactor") == Some(&1) {
                cycles_at_panic = Some(compactor.cycles);
            }
            // Two more cycles: the compactor started again runs.
            if cycles_at_panic.is_some_and(|at| compactor.cycles >= at + 2) {
                assert_eq!(stats.background_panics.get("compactor"), Some(&1));
                assert_eq!(compactor.failed_cycles, 0, "no cycle failed, before the panic or after it");
                let tasks: Vec<_> = stats.background_panics.keys().copied().collect();
                assert_eq!(tasks, ["compactor", "group_upkeep", "log_follower"]);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no cycle after the panic: {:?}, {compactor:?}",
                stats.background_panics
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_ends_the_pause() {
        let panics = Arc::new(Panics::default());
        let stop = CancellationToken::new();
        let (starts, start) = flaky(u32::MAX, Duration::ZERO);
        let run = restarting("always", panics.clone(), stop.clone(), start);
        let stopped = async {
            tokio::time::sleep(Duration::from_millis(3_500)).await;
            stop.cancel();
        };
        // Bounded on the paused clock: without the stop it would run on for good.
        let ended = tokio::time::timeout(Duration::from_secs(600), async { tokio::join!(run, stopped) }).await;
        assert!(ended.is_ok(), "the stop ended the pause");
        // Started at 0, 1 and 3 s; the pause of 4 s from 3 s was cut short.
        assert_eq!(starts.lock().unwrap().len(), 3);
        assert_eq!(panics.by_task(), BTreeMap::from([("always", 3)]));
    }

    /// A panic in making the task is caught as one in running it.
    #[tokio::test(start_paused = true)]
    async fn a_panic_in_starting_the_task_is_caught_too() {
        let panics = Arc::new(Panics::default());
        let mut calls = 0;
        let start = || {
            calls += 1;
            assert!(calls > 1, "a bug in making the task");
            async {}
        };
        restarting("made", panics.clone(), CancellationToken::new(), start).await;
        assert_eq!(panics.by_task(), BTreeMap::from([("made", 1)]));
    }
}
