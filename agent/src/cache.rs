//! The decoded-batch cache (RAM, `moka`): one entry per committed batch,
//! weighed by record bytes. Concurrent misses on one batch share one GET.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use floe_broker::Record;
use moka::future::Cache;
use ulid::Ulid;

/// A batch is named by its segment and byte position.
pub type BatchKey = (Ulid, u64);
pub type Batch = Arc<[Record]>;

#[derive(Clone)]
pub struct BatchCache {
    cache: Cache<BatchKey, Batch>,
    lookups: Arc<AtomicU64>,
    loads: Arc<AtomicU64>,
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct CacheStats {
    /// Batches asked for.
    pub lookups: u64,
    /// Of those, loaded from the store (one ranged GET each).
    pub loads: u64,
    pub entries: u64,
    pub bytes: u64,
}

impl BatchCache {
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, batch: &Batch| {
                let bytes: usize = batch.iter().map(Record::size).sum();
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .build();
        Self { cache, lookups: Arc::default(), loads: Arc::default() }
    }

    pub async fn insert(&self, key: BatchKey, batch: Batch) {
        self.cache.insert(key, batch).await;
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            lookups: self.lookups.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
        }
    }

    /// The cached batch, or the result of `load` (run once for concurrent callers).
    pub async fn get_or_load<F>(&self, key: BatchKey, load: F) -> Result<Batch, Arc<floe_broker::Error>>
    where
        F: std::future::Future<Output = Result<Batch, floe_broker::Error>>,
    {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let loads = self.loads.clone();
        let counted = async move {
            loads.fetch_add(1, Ordering::Relaxed);
            load.await
        };
        self.cache.try_get_with(key, counted).await
    }
}
