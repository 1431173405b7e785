//! Tasks the agent cannot write without: the writer's flusher and commit
//! loop, and the committer's. A panic in one (a bug) used to leave an agent
//! that still answered, health checks included, but could no longer write:
//! every produce got 503 `shutting_down` until someone restarted it by
//! hand. Now the process aborts instead, which the design already covers
//! as a crash: what the agent acknowledged is committed (or spooled, with
//! `acks=local`), and a restarted or fresh agent takes over.
//!
//! Background work the agent serves without (the embedded compactor, group
//! upkeep, following the log) does not abort: a panic that would recur on
//! the same data would make an agent that could serve crash again and
//! again. It is started again instead (`restarting`).
//! Applying a log entry aborts on a panic wherever it runs, as a state half
//! applied must not be served (`floe_broker::log`).

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// Runs `task`; if it panics, logs `name` and aborts the process.
pub async fn essential(name: &'static str, task: impl Future<Output = ()>) {
    on_panic(name, task, |name| floe_broker::abort::abort(&format!("{name} panicked"))).await;
}

/// Runs `task`, and `then` with `name` if it panicked. What the task held
/// across its awaits is dropped as the panic unwinds (before `then`), so
/// the requests it held are answered as a panic's (500 `internal`), not as
/// the agent stopping.
async fn on_panic(name: &'static str, task: impl Future<Output = ()>, then: impl FnOnce(&'static str)) {
    if panic_of(task).await.is_some() {
        then(name);
    }
}

/// Runs `task`; its panic's message if it panicked (`"?"` for a payload
/// that is not text).
pub(crate) async fn panic_of(task: impl Future<Output = ()>) -> Option<String> {
    let payload = AssertUnwindSafe(task).catch_unwind().await.err()?;
    let text =
        payload.downcast_ref::<&str>().map(|s| (*s).to_owned()).or_else(|| payload.downcast_ref::<String>().cloned());
    Some(text.unwrap_or_else(|| "?".to_owned()))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use floe_broker::testing::{in_child, rerun_in_child};

    use super::*;

    #[tokio::test]
    async fn a_panic_is_reported_with_the_task_s_name_and_a_return_is_not() {
        let seen = Mutex::new(Vec::new());
        on_panic("panics", async { panic!("a bug") }, |name| seen.lock().unwrap().push(name)).await;
        on_panic("returns", async {}, |name| seen.lock().unwrap().push(name)).await;
        assert_eq!(*seen.lock().unwrap(), ["panics"]);
    }

    /// What the task held across an await is dropped while the panic
    /// unwinds, before the abort: the writer's waiters rely on it to answer
    /// as a panic's, not as the agent stopping.
    #[tokio::test]
    async fn what_the_task_holds_is_dropped_as_the_panic_unwinds() {
        struct Held<'a>(&'a Mutex<Vec<(&'static str, bool)>>);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                self.0.lock().unwrap().push(("dropped", std::thread::panicking()));
            }
        }
        let seen = Mutex::new(Vec::new());
        let task = async {
            let _held = Held(&seen);
            tokio::task::yield_now().await;
            panic!("a bug");
        };
        on_panic("panics", task, |_| seen.lock().unwrap().push(("told", std::thread::panicking()))).await;
        assert_eq!(*seen.lock().unwrap(), [("dropped", true), ("told", false)]);
    }

    /// The real thing, in a child process: it dies of `SIGABRT`, saying why.
    #[test]
    fn a_panic_in_an_essential_task_aborts_the_process() {
        if in_child() {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(essential("the test's task", async { panic!("a bug") }));
            return;
        }
        let child = rerun_in_child("essential::tests::a_panic_in_an_essential_task_aborts_the_process");
        if cfg!(unix) {
            // SIGABRT is 6 on Linux and macOS.
            assert_eq!(child.signal, Some(6), "SIGABRT: {child:?}");
        }
        assert!(child.stderr.contains("floe: the test's task panicked: aborting"), "{child:?}");
    }
}
