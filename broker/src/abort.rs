//! Stopping the process at once, as a crash, where going on would serve
//! from state that may be wrong. DESIGN.md's failure model covers a crash:
//! what was acknowledged is in the log (or an agent's spool), and the state
//! is folded from the log again at the next start.

/// Logs `what` happened and aborts the process.
pub fn abort(what: &str) -> ! {
    tracing::error!("{what}: aborting, as a crash");
    // Also straight to stderr: a log writer may buffer.
    eprintln!("floe: {what}: aborting, as a crash");
    std::process::abort()
}

/// Aborts the process (see [`abort`]) if dropped while a panic unwinds
/// through the scope that holds it: for work that must not be left half
/// done in memory that others go on reading.
pub struct AbortIfUnwinding(pub &'static str);

impl Drop for AbortIfUnwinding {
    fn drop(&mut self) {
        if std::thread::panicking() {
            abort(self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{in_child, rerun_in_child};

    #[test]
    fn a_panic_through_the_guard_aborts_the_process_and_says_why() {
        if in_child() {
            let _whole = AbortIfUnwinding("a panic in the test's work");
            panic!("a bug");
        }
        let child = rerun_in_child("abort::tests::a_panic_through_the_guard_aborts_the_process_and_says_why");
        child.assert_aborted("a panic in the test's work");
    }

    #[test]
    fn the_guard_dropped_without_a_panic_does_nothing() {
        drop(AbortIfUnwinding("nothing"));
    }
}
