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

use floe_broker::panics::caught;

/// Runs `task`; if it panics, logs `name` and aborts the process.
pub async fn essential(name: &'static str, task: impl Future<Output = ()>) {
    on_panic(name, task, |name| floe_broker::abort::abort(&format!("{name} panicked"))).await;
}

/// Runs `task`, and `then` with `name` if it panicked. What the task held
/// across its awaits is dropped as the panic unwinds (before `then`), so
/// the requests it held are answered as a panic's (500 `internal`), not as
/// the agent stopping.
async fn on_panic(name: &'static str, task: impl Future<Output = ()>, then: impl FnOnce(&'static str)) {
    if caught(task).await.is_err() {
        then(name);
    }
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
        child.assert_aborted("the test's task panicked");
    }

    /// In a child process: an agent with `args` on a store that panics at
    /// the first PUT under `prefix` once a topic exists, and one produce.
    /// Returns only if nothing aborted.
    fn produce_through_a_panic(args: &[&str], prefix: &str) {
        use floe_broker::fault::{Fault, OpKind};

        use crate::auth::Caller;
        use crate::service::{Acks, NewRecord, NewTopic};

        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let acks = if args.contains(&"--spool-dir") { Acks::Local } else { Acks::Committed };
            let (agent, store) = crate::testing::agent_on_a_faulty_store(args).await;
            let topic = NewTopic { name: "t".into(), partitions: 1, retention_ms: None, retention_bytes: None };
            agent.create_topic(&Caller::Unrestricted, topic).await.unwrap();
            store.inject(OpKind::Put, prefix, Fault::Panic, None);
            let record =
                NewRecord { key: None, value: "x".into(), partition: None, headers: Vec::new(), timestamp: None };
            let _ = agent.produce(&Caller::Unrestricted, "t", vec![record], None, acks, || {}).await;
            // With a spool the answer comes before the upload: wait for it.
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        });
    }

    /// Wired in: a panic in committing a flush (a bug, here injected by the
    /// store as the log entry is written) aborts a real agent.
    #[test]
    fn a_panic_in_the_committer_aborts_the_agent() {
        if in_child() {
            return produce_through_a_panic(&["--compactor", "off"], "log/");
        }
        let child = rerun_in_child("essential::tests::a_panic_in_the_committer_aborts_the_agent");
        child.assert_aborted("the committer panicked");
    }

    /// Wired in: with a spool, a panic in a flush's upload aborts a real
    /// agent (the commit loop raises it again), where without one it
    /// answers the flush's requests 500 `internal`
    /// (`api::records::tests::a_panic_in_an_upload_answers_500_internal_and_the_agent_goes_on`).
    #[test]
    fn with_a_spool_a_panic_in_an_upload_aborts_the_agent() {
        if in_child() {
            let spool = tempfile::tempdir().unwrap();
            let dir = spool.path().to_str().unwrap();
            return produce_through_a_panic(&["--compactor", "off", "--spool-dir", dir], "segments/");
        }
        let child = rerun_in_child("essential::tests::with_a_spool_a_panic_in_an_upload_aborts_the_agent");
        child.assert_aborted("the writer's commits panicked");
    }
}
