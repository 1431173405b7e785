//! The batch cache: decoded batches in RAM (`moka`, weighed by record bytes),
//! and optionally their raw bytes on local NVMe as a second tier. Concurrent
//! misses on one batch share one load; a load reads the disk tier first, and
//! only then makes one ranged GET. Batches this agent wrote go in as they
//! were written, compressed, and are decoded by the first read of them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use floe_broker::Record;
use floe_broker::segment::{decode_batch, decode_batch_chunks};
use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};
use moka::policy::EvictionPolicy;
use ulid::Ulid;

/// A batch is named by its segment and byte position.
pub type BatchKey = (Ulid, u64);
pub type Batch = Arc<[Record]>;

/// What RAM holds for a batch.
#[derive(Clone)]
enum Entry {
    Records(Batch),
    /// A batch this agent wrote, as the chunks of its segment that hold it
    /// (compressed), until a read decodes it; or one read ahead (a copy of
    /// its bytes, `insert_read_ahead`). The writer lets go of a
    /// request's records once they are compressed (decision 0026): keeping
    /// them decoded for tail readers would make every produce hold them.
    Written(Arc<[Bytes]>),
}

#[derive(Clone)]
pub struct BatchCache {
    ram: Cache<BatchKey, Entry>,
    disk: Option<DiskTier>,
    counters: Arc<Counters>,
    /// Weight added since the last eviction pass (see `settle`).
    unsettled: Arc<AtomicU64>,
    /// Most weight added before an eviction pass is forced.
    settle_every: u64,
}

#[derive(Default)]
struct Counters {
    lookups: AtomicU64,
    loads: AtomicU64,
    disk_hits: AtomicU64,
    fetched_bytes: AtomicU64,
}

/// Raw batch bytes in files under `dir`, indexed (and evicted) by a moka cache
/// weighed by file size; an evicted entry deletes its file.
#[derive(Clone)]
struct DiskTier {
    dir: PathBuf,
    index: Cache<BatchKey, u32>,
}

impl DiskTier {
    /// Writes a batch's raw bytes to its file and indexes it; a failed
    /// write leaves it out (the disk tier is a cache).
    async fn keep(&self, key: BatchKey, raw: &[u8]) {
        if tokio::fs::write(file_of(&self.dir, &key), raw).await.is_ok() {
            self.index.insert(key, u32::try_from(raw.len()).unwrap_or(u32::MAX)).await;
        }
    }
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct CacheStats {
    /// Batches asked for.
    pub lookups: u64,
    /// Of those, not in RAM.
    pub loads: u64,
    /// Of the loads, served from the disk tier (the rest cost one ranged GET each).
    pub disk_hits: u64,
    /// Bytes read from the object store for loads.
    pub fetched_bytes: u64,
    pub entries: u64,
    pub bytes: u64,
    pub disk_entries: u64,
    pub disk_bytes: u64,
    /// GETs made for segment chunks (`chunks.rs`), and chunk bytes held in RAM.
    pub chunk_gets: u64,
    pub chunk_bytes: u64,
}

fn file_of(dir: &std::path::Path, key: &BatchKey) -> PathBuf {
    dir.join(format!("{}-{}", key.0, key.1))
}

impl BatchCache {
    /// `disk`: a directory and byte budget for the NVMe tier. The directory is
    /// emptied first: nothing in it outlives the process that wrote it.
    pub fn new(max_bytes: u64, disk: Option<(PathBuf, u64)>) -> std::io::Result<Self> {
        // LRU, not moka's default TinyLFU: TinyLFU may refuse to admit a new
        // batch, and a batch loaded by read-ahead and refused would be fetched
        // a second time by the read it was loaded for.
        let ram = Cache::builder()
            .eviction_policy(EvictionPolicy::lru())
            .max_capacity(max_bytes)
            .weigher(|_, entry: &Entry| u32::try_from(weight(entry)).unwrap_or(u32::MAX))
            .build();
        let disk = match disk {
            None => None,
            Some((dir, budget)) => {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)?;
                }
                std::fs::create_dir_all(&dir)?;
                let evict_dir = dir.clone();
                let index = Cache::builder()
                    .max_capacity(budget)
                    .weigher(|_, len: &u32| *len)
                    .eviction_listener(move |key: Arc<BatchKey>, _, _| {
                        let _ = std::fs::remove_file(file_of(&evict_dir, &key));
                    })
                    .build();
                Some(DiskTier { dir, index })
            }
        };
        Ok(Self { ram, disk, counters: Arc::default(), unsettled: Arc::default(), settle_every: max_bytes / 16 })
    }

    /// Decoded records come in through loads and decodes; tests put them directly.
    #[cfg(test)]
    async fn insert(&self, key: BatchKey, batch: Batch) {
        self.put(key, Entry::Records(batch)).await;
    }

    /// A batch as this agent wrote it: `chunks` hold exactly its bytes.
    pub async fn insert_written(&self, key: BatchKey, chunks: Arc<[Bytes]>) {
        self.put(key, Entry::Written(chunks)).await;
    }

    /// Whether either tier holds `key` (in RAM decoded or not).
    pub fn contains(&self, key: &BatchKey) -> bool {
        self.ram.contains_key(key) || self.disk.as_ref().is_some_and(|d| d.index.contains_key(key))
    }

    /// A batch read ahead, from `bytes` (which hold exactly it), unless RAM
    /// holds it already: a copy of its compressed bytes, which the read that
    /// wants it decodes in place, as a written batch's. Counted as a load
    /// from the store, and kept in the disk tier as a loaded batch is.
    pub async fn insert_read_ahead(&self, key: BatchKey, bytes: Bytes) {
        let copy = async { Entry::Written(Arc::from([Bytes::copy_from_slice(&bytes)])) };
        let inserted = self.ram.entry(key).or_insert_with(copy).await;
        if !inserted.is_fresh() {
            return;
        }
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        self.counters.fetched_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.settle(weight(inserted.value())).await;
        if let Some(d) = &self.disk {
            d.keep(key, &bytes).await;
        }
    }

    async fn put(&self, key: BatchKey, entry: Entry) {
        let weight = weight(&entry);
        self.ram.insert(key, entry).await;
        self.settle(weight).await;
    }

    /// moka evicts only in its maintenance, which runs after 64 writes or
    /// 300 ms: 64 batches of a few MiB each would sit over the budget, in
    /// RSS. A pass is run once a sixteenth of the budget has been added
    /// since the last one, so the cache holds at most that much over it
    /// (plus what callers add at the same moment).
    async fn settle(&self, added: u64) {
        let before = self.unsettled.fetch_add(added, Ordering::Relaxed);
        if before + added >= self.settle_every {
            self.unsettled.store(0, Ordering::Relaxed);
            self.ram.run_pending_tasks().await;
        }
    }

    pub async fn stats(&self) -> CacheStats {
        // moka counts entries lazily; settle it so the figures are exact.
        self.ram.run_pending_tasks().await;
        if let Some(d) = &self.disk {
            d.index.run_pending_tasks().await;
        }
        let c = &self.counters;
        CacheStats {
            lookups: c.lookups.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            disk_hits: c.disk_hits.load(Ordering::Relaxed),
            fetched_bytes: c.fetched_bytes.load(Ordering::Relaxed),
            entries: self.ram.entry_count(),
            bytes: self.ram.weighted_size(),
            disk_entries: self.disk.as_ref().map_or(0, |d| d.index.entry_count()),
            disk_bytes: self.disk.as_ref().map_or(0, |d| d.index.weighted_size()),
            chunk_gets: 0,
            chunk_bytes: 0,
        }
    }

    /// The batch from RAM, else the disk tier, else `fetch` (its raw bytes:
    /// one ranged GET), decoded. Concurrent callers share one load.
    pub async fn get_or_load<F>(&self, key: BatchKey, fetch: F) -> Result<Batch, Arc<floe_broker::Error>>
    where
        F: std::future::Future<Output = Result<Bytes, Arc<floe_broker::Error>>>,
    {
        self.counters.lookups.fetch_add(1, Ordering::Relaxed);
        let (counters, disk) = (self.counters.clone(), self.disk.clone());
        let load = async move {
            counters.loads.fetch_add(1, Ordering::Relaxed);
            let from_disk = match &disk {
                Some(d) if d.index.contains_key(&key) => tokio::fs::read(file_of(&d.dir, &key)).await.ok(),
                _ => None,
            };
            let raw = match from_disk {
                Some(raw) => {
                    counters.disk_hits.fetch_add(1, Ordering::Relaxed);
                    Bytes::from(raw)
                }
                None => {
                    let raw = fetch.await?;
                    counters.fetched_bytes.fetch_add(raw.len() as u64, Ordering::Relaxed);
                    if let Some(d) = &disk {
                        d.keep(key, &raw).await;
                    }
                    raw
                }
            };
            let records = tokio::task::spawn_blocking(move || decode_batch(&raw))
                .await
                .map_err(|e| floe_broker::Error::corrupt("batch", e))
                .and_then(|decoded| decoded)
                .map_err(Arc::new)?;
            Ok(Entry::Records(Batch::from(records)))
        };
        let loaded = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let marked = loaded.clone();
        let load = async move {
            let batch = load.await;
            marked.store(true, Ordering::Relaxed);
            batch
        };
        let entry =
            self.ram.try_get_with(key, load).await.map_err(|e: Arc<Arc<floe_broker::Error>>| Arc::clone(&*e))?;
        if loaded.load(Ordering::Relaxed) {
            self.settle(weight(&entry)).await;
        }
        match entry {
            Entry::Records(batch) => Ok(batch),
            Entry::Written(chunks) => match self.decode_written(key).await? {
                Some(batch) => Ok(batch),
                // Evicted meanwhile: what was read is decoded for this reader alone.
                None => decode_chunks(chunks).await,
            },
        }
    }

    /// Decodes the written batch at `key` in place, under the key's lock:
    /// tail readers woken together by one commit wait for one decode (and
    /// share its records) instead of each making a copy. `None` if the key
    /// is gone. A batch that does not decode is dropped from RAM, and the
    /// next read loads it from the store.
    async fn decode_written(&self, key: BatchKey) -> Result<Option<Batch>, Arc<floe_broker::Error>> {
        let mut failed = None;
        let computed = self
            .ram
            .entry(key)
            .and_compute_with(|current| {
                let written = match current.map(moka::Entry::into_value) {
                    Some(Entry::Written(chunks)) => Some(chunks),
                    _ => None,
                };
                let failed = &mut failed;
                async move {
                    let Some(chunks) = written else { return Op::Nop };
                    match decode_chunks(chunks).await {
                        Ok(batch) => Op::Put(Entry::Records(batch)),
                        Err(e) => {
                            *failed = Some(e);
                            Op::Remove
                        }
                    }
                }
            })
            .await;
        if let Some(e) = failed {
            return Err(e);
        }
        let decoded = matches!(computed, CompResult::ReplacedWith(_));
        match computed.into_entry().map(moka::Entry::into_value) {
            Some(Entry::Records(batch)) => {
                if decoded {
                    self.settle(weight(&Entry::Records(batch.clone()))).await;
                }
                Ok(Some(batch))
            }
            _ => Ok(None),
        }
    }
}

/// A written batch's records, decoded on a blocking thread.
async fn decode_chunks(chunks: Arc<[Bytes]>) -> Result<Batch, Arc<floe_broker::Error>> {
    tokio::task::spawn_blocking(move || decode_batch_chunks(&chunks))
        .await
        .map_err(|e| floe_broker::Error::corrupt("batch", e))
        .and_then(|decoded| decoded)
        .map(Batch::from)
        .map_err(Arc::new)
}

fn weight(entry: &Entry) -> u64 {
    match entry {
        Entry::Records(batch) => batch.iter().map(|r| r.held_bytes() as u64).sum(),
        Entry::Written(chunks) => chunks.iter().map(|c| c.len() as u64).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_broker::segment::SegmentBuilder;

    fn raw_batch() -> Bytes {
        let r = Record { key: None, value: Bytes::from_static(b"v"), timestamp: 1, headers: vec![] };
        let mut b = SegmentBuilder::new();
        let meta = b.add_batch("t", 0, &[r]).unwrap().clone();
        let (bytes, _) = b.finish().unwrap();
        bytes.slice(meta.pos as usize..(meta.pos + u64::from(meta.len)) as usize)
    }

    #[tokio::test]
    async fn the_cache_never_holds_much_more_than_its_budget() {
        let record = Record { key: None, value: Bytes::from(vec![7u8; 100_000]), timestamp: 1, headers: vec![] };
        let batch_weight = weight(&Entry::Records(Batch::from(vec![record.clone()])));
        let budget = 8 * batch_weight;
        let cache = BatchCache::new(budget, None).unwrap();
        let mut held = Vec::new();
        // Fewer inserts than moka's 64 before its own eviction pass.
        for pos in 0..40 {
            let batch = Batch::from(vec![record.clone()]);
            held.push(Arc::downgrade(&batch));
            cache.insert((Ulid::nil(), pos), batch).await;
        }
        // What is still alive is held by the cache (nothing else has it).
        let alive = held.iter().filter(|b| b.strong_count() > 0).count() as u64;
        assert!(alive * batch_weight <= budget + budget / 16 + batch_weight, "{alive} batches of 8 alive");
    }

    /// A batch put in as written (its header and frames, each a chunk of
    /// their own) is read without a load, as its records, and then held as
    /// them.
    #[tokio::test]
    async fn a_written_batch_is_read_without_a_load_and_kept_decoded() {
        let records: Vec<Record> = (0..3u8)
            .map(|i| Record { key: None, value: Bytes::from(vec![i; 1000]), timestamp: 1, headers: vec![] })
            .collect();
        let frame = floe_broker::segment::Frame::compress(&records[..2]).unwrap();
        let mut b = SegmentBuilder::new();
        b.add_batch_with_frames("t", 0, &records, &[(0, frame)]).unwrap();
        let built = b.finish_parts().unwrap();
        let chunks: Arc<[Bytes]> = built.chunks[built.batch_chunks[0].clone()].into();
        assert!(chunks.len() > 1, "header and frames apart: {} chunk(s)", chunks.len());
        let cache = BatchCache::new(1 << 20, None).unwrap();
        let key = (Ulid::nil(), built.index[0].pos);
        cache.insert_written(key, chunks.clone()).await;
        let no_load = || async { Err(Arc::new(floe_broker::Error::corrupt("test", "no load expected"))) };
        // Readers at once (as a commit wakes its tail readers) share one decode.
        let reads = futures::future::join_all((0..8).map(|_| cache.get_or_load(key, no_load()))).await;
        let read = reads[0].clone().unwrap();
        assert_eq!(&read[..], &records[..]);
        for other in &reads {
            assert!(Arc::ptr_eq(&read, other.as_ref().unwrap()), "decoded once");
        }
        let again = cache.get_or_load(key, no_load()).await.unwrap();
        assert!(Arc::ptr_eq(&read, &again), "then held decoded");
        let s = cache.stats().await;
        assert_eq!((s.lookups, s.loads, s.fetched_bytes), (9, 0, 0));
        assert_eq!(s.bytes, weight(&Entry::Records(read)));

        // A written batch that does not decode is dropped: the next read loads it.
        let broken: Vec<Bytes> =
            chunks.iter().map(|c| Bytes::from(c.iter().map(|b| b ^ 1).collect::<Vec<u8>>())).collect();
        let other = (Ulid::nil(), key.1 + 1);
        cache.insert_written(other, broken.into()).await;
        assert!(cache.get_or_load(other, no_load()).await.is_err());
        let whole: Bytes = chunks.concat().into();
        let loaded = cache.get_or_load(other, async { Ok(whole) }).await.unwrap();
        assert_eq!(&loaded[..], &records[..]);
    }

    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // tests
    async fn the_disk_tier_serves_what_ram_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let key = (Ulid::new(), 8);
        let raw = raw_batch();
        // RAM of 1 byte: nothing stays there, so the second read must come from disk.
        let cache = BatchCache::new(1, Some((dir.path().join("tier"), 1 << 20))).unwrap();
        let first = cache.get_or_load(key, async { Ok(raw.clone()) }).await.unwrap();
        cache.ram.run_pending_tasks().await;
        let second = cache
            .get_or_load(key, async { Err(Arc::new(floe_broker::Error::corrupt("test", "no GET expected"))) })
            .await
            .unwrap();
        assert_eq!(first, second);
        let s = cache.stats().await;
        assert_eq!((s.loads, s.disk_hits, s.fetched_bytes), (2, 1, raw.len() as u64));
    }
}
