//! Segment reads in aligned chunks: a batch missing from the cache is read
//! with the `CHUNK_BYTES`-aligned range of its segment that holds it, so the
//! batches next to it (the other partitions of the same flush, the next
//! batches of a merged segment) come with the same GET. A catch-up reader
//! then makes about one GET per chunk of data instead of one per batch.
//! Concurrent misses on one chunk share its GET; chunks stay in RAM, within
//! their budget, until evicted (least recently used first).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use floe_broker::keys;
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use object_store::{ObjectStore, ObjectStoreExt};
use ulid::Ulid;

/// The unit of a segment read: about one flush at the default `--flush-bytes`.
pub const CHUNK_BYTES: u64 = 8 << 20;

type Error = Arc<floe_broker::Error>;

#[derive(Clone)]
pub struct Chunks {
    store: Arc<dyn ObjectStore>,
    ram: Cache<(Ulid, u64), Bytes>,
    chunk: u64,
    gets: Arc<AtomicU64>,
}

impl Chunks {
    /// Chunks of `chunk` bytes, at most `budget` bytes of them in RAM.
    pub fn new(store: Arc<dyn ObjectStore>, chunk: u64, budget: u64) -> Self {
        let ram = Cache::builder()
            .eviction_policy(EvictionPolicy::lru())
            .max_capacity(budget)
            .weigher(|_, chunk: &Bytes| u32::try_from(chunk.len()).unwrap_or(u32::MAX))
            .build();
        Self { store, ram, chunk: chunk.max(1), gets: Arc::default() }
    }

    /// The index of the chunk that holds byte `pos` of a segment.
    pub fn chunk_of(&self, pos: u64) -> u64 {
        pos / self.chunk
    }

    /// The index of the chunk that holds the last byte of `range` (of its
    /// first, if it is empty).
    pub fn chunk_of_end(&self, range: &Range<u64>) -> u64 {
        self.chunk_of(range.end.max(range.start + 1) - 1)
    }

    /// GETs made for chunks (and for batches larger than one).
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }

    /// Bytes of chunks held.
    pub async fn held_bytes(&self) -> u64 {
        self.ram.run_pending_tasks().await;
        self.ram.weighted_size()
    }

    /// The bytes at `range` of `segment`.
    ///
    /// # Cancel safety
    /// Cancel safe: a chunk load dropped by every waiter is made again by the next.
    pub async fn read(&self, segment: Ulid, range: Range<u64>) -> Result<Bytes, Error> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let (first, last) = (range.start / self.chunk, (range.end - 1) / self.chunk);
        // A batch larger than a chunk gains nothing from chunking.
        if last > first + 1 {
            self.gets.fetch_add(1, Ordering::Relaxed);
            let got = self.store.get_range(&keys::segment(segment), range.clone()).await;
            let got = got.map_err(|e| Arc::new(e.into()))?;
            return if got.len() as u64 == range.end - range.start { Ok(got) } else { Err(short(segment, &range)) };
        }
        let mut parts = Vec::with_capacity(2);
        for index in first..=last {
            let chunk = self.chunk(segment, index).await?;
            let start = index * self.chunk;
            let from = range.start.max(start) - start;
            let to = range.end.min(start + self.chunk) - start;
            if to > chunk.len() as u64 {
                return Err(short(segment, &range));
            }
            parts.push(chunk.slice(from as usize..to as usize));
        }
        match <[Bytes; 1]>::try_from(parts) {
            Ok([only]) => Ok(only),
            Err(parts) => {
                let mut joined = BytesMut::with_capacity((range.end - range.start) as usize);
                parts.iter().for_each(|p| joined.extend_from_slice(p));
                Ok(joined.freeze())
            }
        }
    }

    async fn chunk(&self, segment: Ulid, index: u64) -> Result<Bytes, Error> {
        let (store, gets) = (self.store.clone(), self.gets.clone());
        let range = index * self.chunk..(index + 1) * self.chunk;
        let load = async move {
            gets.fetch_add(1, Ordering::Relaxed);
            // The last chunk of a segment is shorter: the store returns what there is.
            store.get_range(&keys::segment(segment), range).await.map_err(floe_broker::Error::from)
        };
        self.ram.try_get_with((segment, index), load).await
    }
}

fn short(segment: Ulid, range: &Range<u64>) -> Error {
    Arc::new(floe_broker::Error::corrupt(
        format!("segment {segment}"),
        format!("bytes {}..{} asked for; the segment ends before", range.start, range.end),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_broker::metered::MeteredStore;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn neighbouring_reads_share_a_chunk_and_straddling_ones_join_two() {
        let store = Arc::new(MeteredStore::new(Arc::new(InMemory::new())));
        let segment = Ulid::from_parts(1, 1);
        let body: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
        store.put(&keys::segment(segment), Bytes::from(body.clone()).into()).await.unwrap();
        let chunks = Chunks::new(store.clone(), 100, 1 << 20);
        for range in [0..10, 10..60, 60..100, 95..130, 130..250, 240..250] {
            let got = chunks.read(segment, range.clone()).await.unwrap();
            assert_eq!(&got[..], &body[range.start as usize..range.end as usize], "{range:?}");
        }
        assert_eq!(store.stats().segments.get, 3, "one GET per 100-byte chunk");
        assert_eq!(chunks.gets(), 3);
        let past = chunks.read(segment, 240..260).await;
        assert!(past.is_err(), "a range past the segment's end is an error, not short bytes");
        assert!(chunks.read(segment, 0..350).await.is_err(), "read directly: past the end");
        assert_eq!(&chunks.read(segment, 0..250).await.unwrap()[..], &body[..], "larger than two chunks: one GET");
    }
}
