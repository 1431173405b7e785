//! Catching a panic (a bug) and saying what it was, for the tasks that go
//! on after one or abort on purpose: the agent's essential and restarted
//! tasks, the compactor's merge runs.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// Runs `task`: its output, or its panic's message if it panicked.
pub async fn caught<T>(task: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(task).catch_unwind().await.map_err(|payload| message(&*payload))
}

/// What a panic said: the text `panic!` was given, or `"?"` for a payload
/// of another type (`std::panic::panic_any`).
pub fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_caught_with_its_message_and_a_return_passes_through() {
        assert_eq!(caught(async { 7 }).await, Ok(7));
        assert_eq!(caught(async { panic!("a literal") }).await, Err::<(), _>("a literal".to_owned()));
        let n = 3;
        assert_eq!(caught(async { panic!("formatted {n}") }).await, Err::<(), _>("formatted 3".to_owned()));
        assert_eq!(caught(async { std::panic::panic_any(42) }).await, Err::<(), _>("?".to_owned()));
    }
}
