//! Counts object-store requests and bytes by operation and by kind of key,
//! so agents can report what they cost (requests per GiB, metadata PUTs per
//! second) without guessing.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, Result,
};
use serde::{Deserialize, Serialize};

/// Request counts for one kind of key.
#[derive(Debug, Default)]
struct Counters {
    put: AtomicU64,
    get: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    put_bytes: AtomicU64,
    get_bytes: AtomicU64,
    /// Create-only PUTs that found the key taken (a lost race, or a retry of one that landed).
    put_exists: AtomicU64,
    /// GETs of keys that do not exist.
    get_missing: AtomicU64,
    /// Requests that failed otherwise (timeouts, 5xx, refused credentials).
    failed: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CounterSnapshot {
    pub put: u64,
    pub get: u64,
    pub list: u64,
    pub delete: u64,
    pub put_bytes: u64,
    pub get_bytes: u64,
    pub put_exists: u64,
    pub get_missing: u64,
    pub failed: u64,
}

impl CounterSnapshot {
    /// Combines two snapshots counter by counter (sums, differences).
    pub fn zip(self, o: Self, f: impl Fn(u64, u64) -> u64) -> Self {
        Self {
            put: f(self.put, o.put),
            get: f(self.get, o.get),
            list: f(self.list, o.list),
            delete: f(self.delete, o.delete),
            put_bytes: f(self.put_bytes, o.put_bytes),
            get_bytes: f(self.get_bytes, o.get_bytes),
            put_exists: f(self.put_exists, o.put_exists),
            get_missing: f(self.get_missing, o.get_missing),
            failed: f(self.failed, o.failed),
        }
    }
}

impl Counters {
    fn snapshot(&self) -> CounterSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            put: l(&self.put),
            get: l(&self.get),
            list: l(&self.list),
            delete: l(&self.delete),
            put_bytes: l(&self.put_bytes),
            get_bytes: l(&self.get_bytes),
            put_exists: l(&self.put_exists),
            get_missing: l(&self.get_missing),
            failed: l(&self.failed),
        }
    }
}

/// Counters by kind of key: `log/`, `segments/`, `snapshots/`, everything else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreStats {
    pub log: CounterSnapshot,
    pub segments: CounterSnapshot,
    pub snapshots: CounterSnapshot,
    pub other: CounterSnapshot,
}

#[derive(Default)]
struct ByKind {
    log: Counters,
    segments: Counters,
    snapshots: Counters,
    other: Counters,
}

impl ByKind {
    fn of(&self, key: &str) -> &Counters {
        match key.split('/').next() {
            Some("log") => &self.log,
            Some("segments") => &self.segments,
            Some("snapshots") => &self.snapshots,
            _ => &self.other,
        }
    }
}

pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<ByKind>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner, counts: Arc::new(ByKind::default()) }
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            log: self.counts.log.snapshot(),
            segments: self.counts.segments.snapshot(),
            snapshots: self.counts.snapshots.snapshot(),
            other: self.counts.other.snapshot(),
        }
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeteredStore({})", self.inner)
    }
}

impl fmt::Debug for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeteredStore({:?})", self.inner)
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let c = self.counts.of(location.as_ref());
        add(&c.put, 1);
        add(&c.put_bytes, payload.content_length() as u64);
        let put = self.inner.put_opts(location, payload, opts).await;
        match &put {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                add(&c.put_exists, 1);
            }
            Err(_) => add(&c.failed, 1),
        }
        put
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        add(&self.counts.of(location.as_ref()).put, 1);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let c = self.counts.of(location.as_ref());
        add(&c.get, 1);
        let got = match self.inner.get_opts(location, options).await {
            Ok(got) => got,
            Err(e) => {
                add(if matches!(e, object_store::Error::NotFound { .. }) { &c.get_missing } else { &c.failed }, 1);
                return Err(e);
            }
        };
        add(&c.get_bytes, got.range.end - got.range.start);
        Ok(got)
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let counts = self.counts.clone();
        let counted = locations
            .map(move |l| {
                if let Ok(p) = &l {
                    add(&counts.of(p.as_ref()).delete, 1);
                }
                l
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        add(&self.counts.of(prefix.map_or("", |p| p.as_ref())).list, 1);
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        add(&self.counts.of(prefix.map_or("", |p| p.as_ref())).list, 1);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        add(&self.counts.of(prefix.map_or("", |p| p.as_ref())).list, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn counts_requests_by_kind_of_key() {
        let m = MeteredStore::new(Arc::new(InMemory::new()));
        m.put(&Path::from("log/00000000000000000001"), bytes::Bytes::from_static(b"abc").into()).await.unwrap();
        m.put(&Path::from("segments/x.seg"), bytes::Bytes::from_static(b"12345").into()).await.unwrap();
        m.get_range(&Path::from("segments/x.seg"), 1..3).await.unwrap();
        assert!(m.get(&Path::from("log/00000000000000000002")).await.is_err());
        let s = m.stats();
        assert_eq!((s.log.put, s.log.put_bytes, s.log.get), (1, 3, 1));
        assert_eq!((s.segments.put, s.segments.get, s.segments.get_bytes), (1, 1, 2));
        assert_eq!(s.snapshots, CounterSnapshot::default());
    }
}
