//! Wall-clock time, injected: the log takes a [`Clock`] so tests, the chaos
//! checker and simulations can run a node with its clock off. Correctness
//! never rests on wall clocks (the log clock in `state` does that job); the
//! one place they matter — how far a node may push the log clock — is
//! guarded by [`SkewGuard`].

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::{ObjectStore, ObjectStoreExt};
use tokio::time::Instant;

use crate::components::Components;
use crate::{Error, Result, keys};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now_ms(&self) -> u64;
}

/// The machine's clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// The machine's clock shifted by an offset that can change while running:
/// for tests and the chaos checker (a node minutes fast, a clock that jumps).
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    pub fn new(offset_ms: i64) -> Self {
        Self { offset_ms: AtomicI64::new(offset_ms) }
    }

    pub fn set_offset_ms(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::Relaxed);
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        now_ms().saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }
}

pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// The system clock, for what has not been given an injected one yet
/// (record timestamps, retention, GC grace).
#[allow(clippy::disallowed_methods)] // the machine's clock, behind SystemClock
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How often a committing node measures its clock against the store's again.
/// Between measurements, a jump of the wall clock is seen at once by comparing
/// it with the monotonic clock; only slow drift waits for the next one.
pub const CLOCK_RECHECK: Duration = Duration::from_secs(600);

/// While a node refuses to commit, it measures again this often, so it
/// resumes soon after its clock is fixed (or a slow measurement is redone).
pub const CLOCK_RECHECK_WHILE_REFUSING: Duration = Duration::from_secs(5);

/// Keeps a node whose clock is off from committing. Commit ids carry the
/// committer's time and the log clock is their maximum, so one node running
/// a minute fast would make every other node's uploads look a minute old
/// (refused once past the commit window) and end leases early. The store's
/// own clock (the `Last-Modified` of an object this node just wrote) is the
/// reference every node shares; a node further from it than `bound_ms` stops
/// committing until it is back within.
#[derive(Debug)]
pub struct SkewGuard {
    node: Components,
    bound_ms: u64,
    last: Mutex<Option<Measurement>>,
}

#[derive(Clone, Copy, Debug)]
struct Measurement {
    /// This node's clock minus the store's, when measured …
    offset_ms: i64,
    /// … give or take this much (half the round trip, and half a second when
    /// the store reports whole seconds).
    uncertainty_ms: u64,
    wall_ms: u64,
    mono: Instant,
}

impl SkewGuard {
    pub fn new(node: Components, bound_ms: u64) -> Self {
        Self { node, bound_ms, last: Mutex::new(None) }
    }

    pub fn bound_ms(&self) -> u64 {
        self.bound_ms
    }

    /// This node's clock minus the store's, as last measured and corrected
    /// for any jump of the wall clock since (against the monotonic clock).
    pub fn offset_ms(&self) -> Option<i64> {
        let m = (*self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner))?;
        let wall = i64::try_from(self.node.now_ms()).unwrap_or(i64::MAX) - m.wall_ms as i64;
        let mono = i64::try_from(m.mono.elapsed().as_millis()).unwrap_or(i64::MAX);
        Some(m.offset_ms + (wall - mono))
    }

    /// The error committing would meet now, if any: only when the clock is
    /// off by more than the bound even at the near end of the measurement's
    /// uncertainty (a slow probe must not stop a healthy node).
    pub fn refusal(&self) -> Option<Error> {
        let uncertainty = (*self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner))?.uncertainty_ms;
        let offset_ms = self.offset_ms()?;
        let surely_off = offset_ms.unsigned_abs().saturating_sub(uncertainty) > self.bound_ms;
        surely_off.then_some(Error::ClockSkew { offset_ms, bound_ms: self.bound_ms })
    }

    /// Measures if there is no recent measurement, then refuses if the clock is off.
    pub async fn check(&self, store: &dyn ObjectStore) -> Result<()> {
        let age = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map(|m| m.mono.elapsed());
        let stale = match age {
            None => true,
            Some(age) if self.refusal().is_some() => age >= CLOCK_RECHECK_WHILE_REFUSING,
            Some(age) => age >= CLOCK_RECHECK,
        };
        if stale {
            self.measure(store).await?;
        }
        match self.refusal() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes a scratch object and reads its `Last-Modified`: the store's time
    /// between our two readings of ours (to S3's one-second resolution).
    pub async fn measure(&self, store: &dyn ObjectStore) -> Result<i64> {
        let key = keys::probe(self.node.ulid());
        let (before, mono) = (self.node.now_ms(), Instant::now());
        store.put(&key, bytes::Bytes::from_static(b"clock probe").into()).await?;
        let meta = store.head(&key).await;
        let after = self.node.now_ms();
        // The key is this node's alone; leaving it behind would only cost bytes.
        if let Err(e) = store.delete(&key).await {
            tracing::debug!(%key, error = %e, "could not delete clock probe");
        }
        let stored_ms = meta?.last_modified.timestamp_millis();
        // Whole seconds on S3: the true time lies in [stored, stored + 1 s).
        let whole_seconds = stored_ms % 1000 == 0;
        let stored_mid = if whole_seconds { stored_ms + 500 } else { stored_ms };
        let wall_ms = before / 2 + after / 2;
        let offset_ms = i64::try_from(wall_ms).unwrap_or(i64::MAX) - stored_mid;
        let uncertainty_ms = after.saturating_sub(before) / 2 + if whole_seconds { 500 } else { 0 };
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Measurement { offset_ms, uncertainty_ms, wall_ms, mono: mono + (Instant::now() - mono) / 2 });
        if self.refusal().is_some() {
            tracing::error!(
                offset_ms,
                bound_ms = self.bound_ms,
                "this node's clock is off from the object store's; it will not commit until fixed"
            );
        } else {
            tracing::debug!(offset_ms, "clock measured against the object store");
        }
        Ok(offset_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn a_skewed_or_jumping_clock_is_refused_and_a_fixed_one_resumes() {
        let store = InMemory::new();
        let clock = Arc::new(OffsetClock::new(0));
        let node = Components { clock: clock.clone(), ..Components::default() };
        let guard = SkewGuard::new(node, 2_000);
        guard.check(&store).await.unwrap();
        assert!(guard.offset_ms().unwrap().abs() < 1_000);
        // A jump of the wall clock is seen without measuring again.
        clock.set_offset_ms(60_000);
        assert!(matches!(guard.refusal(), Some(Error::ClockSkew { .. })));
        assert!(guard.check(&store).await.is_err());
        // Measured while 60 s slow: refused too.
        clock.set_offset_ms(-60_000);
        guard.measure(&store).await.unwrap();
        assert!((guard.offset_ms().unwrap() + 60_000).abs() < 1_000);
        assert!(guard.refusal().is_some());
        clock.set_offset_ms(0);
        assert!(guard.check(&store).await.is_ok(), "back within the bound");
    }
}
