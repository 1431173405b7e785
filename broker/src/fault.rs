//! A fault-injecting `ObjectStore` wrapper for tests: errors, latency, a PUT
//! that lands but reports a failure, a store that ignores create-only, and
//! a panic in the caller.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Put,
    Get,
    List,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail without touching the store (a 5xx or a refused connection).
    Fail,
    /// Perform the operation, then report a failure (a timeout after the write landed).
    LandThenFail,
    /// Wait, then perform the operation.
    Delay(Duration),
    /// Turn a create-only PUT into an overwrite (a store that ignores `If-None-Match`).
    IgnoreCreateMode,
    /// Report a failure at once, and perform the PUT this much later (a
    /// request that lands after its writer gave up or retried).
    LandLate(Duration),
    /// Panic in the caller's task, as a bug there would: for tests of what
    /// a panic does.
    Panic,
}

/// What random faults look like.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomFaults {
    /// Probability that an operation on `log/` or `segments/` is faulted.
    pub rate: f64,
    /// Besides failing (a PUT half of the time after it landed), faults may
    /// delay an operation or land a PUT late, by up to this long.
    pub max_delay: Option<Duration>,
}

struct Rule {
    op: OpKind,
    key_prefix: String,
    fault: Fault,
    /// `None`: forever.
    remaining: Option<u64>,
}

pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    rules: Mutex<Vec<Rule>>,
    random: Mutex<Option<(RandomFaults, StdRng)>>,
    /// The store's own clock, reported as `last_modified` (else the inner store's).
    clock: Option<Arc<dyn crate::clock::Clock>>,
    /// `[from, to)` in ms of the store's clock: every operation fails.
    outage: Mutex<Option<(u64, u64)>>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner, rules: Mutex::new(Vec::new()), random: Mutex::new(None), clock: None, outage: Mutex::new(None) }
    }

    /// Adds random faults at `rate` (0..1), reproducible from `seed`: each
    /// operation on `log/` or `segments/` fails with this probability (a PUT
    /// half of the time after it landed).
    pub fn with_random_faults(self, rate: f64, seed: u64) -> Self {
        self.with_faults(RandomFaults { rate, max_delay: None }, seed)
    }

    /// Random faults as `faults` describes, reproducible from `seed` (when
    /// operations run in a reproducible order, as in the simulation).
    pub fn with_faults(self, faults: RandomFaults, seed: u64) -> Self {
        *self.random.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((faults, StdRng::seed_from_u64(seed)));
        self
    }

    /// Reports `clock`'s time as every object's `last_modified`: a store with
    /// a clock of its own, for simulated time. (The time of the read, not of
    /// the write: right for a probe read just after its write.)
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Applies `fault` to the next `times` operations of kind `op` on keys
    /// starting with `key_prefix` (`None`: to all of them).
    pub fn inject(&self, op: OpKind, key_prefix: &str, fault: Fault, times: Option<u64>) {
        self.lock().push(Rule { op, key_prefix: key_prefix.to_owned(), fault, remaining: times });
    }

    /// A whole-store outage: from `from_ms` until `to_ms` (the store's clock,
    /// else the machine's) every operation fails without touching the store,
    /// as a store that is down or unreachable. Replaces an earlier one.
    pub fn unavailable_between(&self, from_ms: u64, to_ms: u64) {
        *self.outage.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((from_ms, to_ms));
    }

    fn in_outage(&self) -> bool {
        let Some((from, to)) = *self.outage.lock().unwrap_or_else(std::sync::PoisonError::into_inner) else {
            return false;
        };
        let now = self.clock.as_ref().map_or_else(crate::clock::now_ms, |c| c.now_ms());
        (from..to).contains(&now)
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self, op: OpKind, key: &str) -> Option<Fault> {
        if self.in_outage() {
            return Some(Fault::Fail);
        }
        let fault = self.take_rule(op, key).or_else(|| self.take_random(op, key));
        if fault == Some(Fault::Panic) {
            panic!("injected fault: a panic in a {op:?} of {key:?}");
        }
        fault
    }

    fn take_random(&self, op: OpKind, key: &str) -> Option<Fault> {
        if !(key.starts_with("log/") || key.starts_with("segments/")) || op == OpKind::Delete {
            return None;
        }
        let mut random = self.random.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (faults, rng) = random.as_mut()?;
        if !rng.random_bool(faults.rate.clamp(0.0, 1.0)) {
            return None;
        }
        if let Some(max) = faults.max_delay
            && rng.random_bool(0.5)
        {
            let d = max.mul_f64(rng.random());
            return Some(if op == OpKind::Put && rng.random_bool(0.5) { Fault::LandLate(d) } else { Fault::Delay(d) });
        }
        Some(if op == OpKind::Put && rng.random_bool(0.5) { Fault::LandThenFail } else { Fault::Fail })
    }

    fn take_rule(&self, op: OpKind, key: &str) -> Option<Fault> {
        let mut rules = self.lock();
        let i = rules.iter().position(|r| r.op == op && key.starts_with(&r.key_prefix) && r.remaining != Some(0))?;
        let rule = &mut rules[i];
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        Some(rule.fault)
    }
}

impl FaultyStore {
    async fn get_faulted(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        match self.take(OpKind::Get, location.as_ref()) {
            Some(Fault::Fail) => Err(injected("get failed")),
            Some(Fault::LandThenFail) => {
                self.inner.get_opts(location, options).await?;
                Err(injected("get timed out"))
            }
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                self.inner.get_opts(location, options).await
            }
            None | Some(Fault::IgnoreCreateMode | Fault::LandLate(_) | Fault::Panic) => {
                self.inner.get_opts(location, options).await
            }
        }
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic { store: "FaultyStore", source: format!("injected fault: {what}").into() }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, mut opts: PutOptions) -> Result<PutResult> {
        match self.take(OpKind::Put, location.as_ref()) {
            None | Some(Fault::Panic) => self.inner.put_opts(location, payload, opts).await,
            Some(Fault::Fail) => Err(injected("put failed")),
            Some(Fault::LandThenFail) => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(injected("put landed, then timed out"))
            }
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                self.inner.put_opts(location, payload, opts).await
            }
            Some(Fault::IgnoreCreateMode) => {
                if opts.mode == PutMode::Create {
                    opts.mode = PutMode::Overwrite;
                }
                self.inner.put_opts(location, payload, opts).await
            }
            Some(Fault::LandLate(d)) => {
                let (inner, location) = (self.inner.clone(), location.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = inner.put_opts(&location, payload, opts).await;
                });
                Err(injected("put timed out (it will land later)"))
            }
        }
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        if self.in_outage() {
            return Err(injected("store unavailable"));
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut got = self.get_faulted(location, options).await?;
        if let Some(clock) = &self.clock {
            let ms = i64::try_from(clock.now_ms()).unwrap_or(i64::MAX);
            got.meta.last_modified = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
        }
        Ok(got)
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        match self.take(OpKind::Delete, "") {
            Some(Fault::Fail) => stream::once(async { Err(injected("delete failed")) }).boxed(),
            _ => self.inner.delete_stream(locations),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.take(OpKind::List, prefix.map_or("", |p| p.as_ref())) {
            Some(Fault::Fail) => stream::once(async { Err(injected("list failed")) }).boxed(),
            _ => self.inner.list(prefix),
        }
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.take(OpKind::List, prefix.map_or("", |p| p.as_ref())) {
            Some(Fault::Fail) => stream::once(async { Err(injected("list failed")) }).boxed(),
            _ => self.inner.list_with_offset(prefix, offset),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        if let Some(Fault::Fail) = self.take(OpKind::List, prefix.map_or("", |p| p.as_ref())) {
            return Err(injected("list failed"));
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if self.in_outage() {
            return Err(injected("store unavailable"));
        }
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::path::Path;

    use super::*;
    use crate::clock::{Clock, OffsetClock};

    /// Inside the window every kind of operation fails and nothing lands;
    /// before and after it the store works.
    #[tokio::test]
    async fn an_outage_fails_every_operation_within_its_window_only() {
        let clock = Arc::new(OffsetClock::new(0));
        let store = FaultyStore::new(Arc::new(object_store::memory::InMemory::new())).with_clock(clock.clone());
        let now = clock.now_ms();
        store.unavailable_between(now + 10_000, now + 20_000);
        let (a, b) = (Path::from("snapshots/a"), Path::from("log/b"));
        store.put(&a, "before".into()).await.unwrap();
        clock.set_offset_ms(15_000);
        assert!(store.put(&b, "during".into()).await.is_err());
        assert!(store.get(&a).await.is_err());
        assert!(store.delete(&a).await.is_err());
        assert!(futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None)).await.is_err());
        clock.set_offset_ms(25_000);
        assert!(
            matches!(store.get(&b).await, Err(object_store::Error::NotFound { .. })),
            "the PUT in the outage did not land"
        );
        assert_eq!(store.get(&a).await.unwrap().bytes().await.unwrap(), "before");
    }
}
