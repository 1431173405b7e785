//! The decoded-batch cache (RAM, `moka`): one entry per committed batch,
//! weighed by record bytes. Concurrent misses on one batch share one GET.

use std::sync::Arc;

use floe_broker::Record;
use moka::future::Cache;
use ulid::Ulid;

/// A batch is named by its segment and byte position.
pub type BatchKey = (Ulid, u64);
pub type Batch = Arc<[Record]>;

#[derive(Clone)]
pub struct BatchCache(Cache<BatchKey, Batch>);

impl BatchCache {
    pub fn new(max_bytes: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_, batch: &Batch| {
                let bytes: usize = batch.iter().map(Record::size).sum();
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .build();
        Self(cache)
    }

    pub async fn insert(&self, key: BatchKey, batch: Batch) {
        self.0.insert(key, batch).await;
    }

    /// The cached batch, or the result of `load` (run once for concurrent callers).
    pub async fn get_or_load<F>(&self, key: BatchKey, load: F) -> Result<Batch, Arc<floe_broker::Error>>
    where
        F: std::future::Future<Output = Result<Batch, floe_broker::Error>>,
    {
        self.0.try_get_with(key, load).await
    }
}
