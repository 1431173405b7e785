//! Tasks the agent cannot write without: the writer's flusher and commit
//! loop, and the committer's. A panic in one (a bug) used to leave an agent
//! that still answered, health checks included, but could no longer write:
//! every produce got 503 `shutting_down` until someone restarted it by
//! hand. Now the process aborts instead, which the design already covers
//! as a crash: what the agent acknowledged is committed (or spooled, with
//! `acks=local`), and a restarted or fresh agent takes over.
//!
//! Background work the agent serves without (the embedded compactor, group
//! expiry, following the log) is not wrapped: a panic that would recur on
//! the same data would make an agent that could serve crash again and again.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// Runs `task`; if it panics, logs `name` and aborts the process.
pub async fn essential(name: &'static str, task: impl Future<Output = ()>) {
    on_panic(name, task, abort).await;
}

/// Runs `task`, and `then` with `name` if it panicked.
async fn on_panic(name: &'static str, task: impl Future<Output = ()>, then: impl FnOnce(&'static str)) {
    if AssertUnwindSafe(task).catch_unwind().await.is_err() {
        then(name);
    }
}

fn abort(name: &'static str) {
    tracing::error!(task = name, "a task the agent cannot write without panicked (a bug): aborting, as a crash");
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn a_panic_is_reported_with_the_task_s_name_and_a_return_is_not() {
        let seen = Mutex::new(Vec::new());
        on_panic("panics", async { panic!("a bug") }, |name| seen.lock().unwrap().push(name)).await;
        on_panic("returns", async {}, |name| seen.lock().unwrap().push(name)).await;
        assert_eq!(*seen.lock().unwrap(), ["panics"]);
    }

    /// The real thing, in a child process (this test binary, running only
    /// this test): it dies of `SIGABRT`.
    #[cfg(unix)]
    #[test]
    fn a_panic_in_an_essential_task_aborts_the_process() {
        use std::os::unix::process::ExitStatusExt;
        const CHILD: &str = "FLOE_TEST_ESSENTIAL_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(essential("the test's task", async { panic!("a bug") }));
            return;
        }
        let this = "essential::tests::a_panic_in_an_essential_task_aborts_the_process";
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", this, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        // SIGABRT is 6 on Linux and macOS.
        assert_eq!(child.status.signal(), Some(6), "{child:?}");
    }
}
