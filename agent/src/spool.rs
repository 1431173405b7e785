//! The NVMe half of the write buffer: each sealed flush's segment, written
//! to a local directory and synced before it is uploaded, so that RAM is
//! free for new requests while the store is slow or away, and so that a
//! flush acknowledged with `acks=local` survives a crash of the agent.
//!
//! One file per flush, `{seq:020}.flush`, written as `{seq}.tmp`, synced,
//! renamed and the directory synced: a crash leaves at most a `.tmp` (a torn
//! tail, removed at start) and never a half-named file. Each file is framed
//! and checksummed:
//!
//! `FLOESPL1` | header length (u32 LE) | segment length (u64 LE) | header
//! (JSON: the flush's id and batches) | segment | CRC32C of all before (u32 LE)
//!
//! A file that fails its checks is moved to `corrupt/` and reported; the
//! others are replayed. The spool's id (`spool.id`) numbers its flushes in
//! the log, which remembers each spool's last committed flush.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use floe_broker::entry::FlushId;
use floe_broker::segment::BatchMeta;
use object_store::PutPayload;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use ulid::Ulid;

const MAGIC: &[u8; 8] = b"FLOESPL1";
const FRAME_HEAD: usize = 8 + 4 + 8;
const ID_FILE: &str = "spool.id";
const LOCK_FILE: &str = "spool.lock";
const CORRUPT_DIR: &str = "corrupt";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool directory {0} does not exist (create it, or leave --spool-dir unset)")]
    Missing(PathBuf),
    #[error("spool directory {dir} is not writable: {source}")]
    Unwritable { dir: PathBuf, source: io::Error },
    #[error("spool directory {dir} is full: {source}")]
    Full { dir: PathBuf, source: io::Error },
    #[error("spool directory {dir} cannot sync files to disk (fsync failed): {source}")]
    NoSync { dir: PathBuf, source: io::Error },
    #[error("spool directory {0} is in use by another agent (spool.lock is held)")]
    InUse(PathBuf),
    #[error("spool file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool id file {path} is damaged: {detail}")]
    BadId { path: PathBuf, detail: String },
    #[error("a flush of {0} bytes does not fit in a spool file")]
    TooLarge(usize),
    #[error("the spool is closed")]
    Closed,
}

/// The header of a spool file.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    flush: FlushId,
    batches: Vec<BatchMeta>,
}

/// A flush found in the spool at start: not known to be committed when the
/// agent stopped, so it is committed (at most once) before anything new.
#[derive(Debug)]
pub struct Recovered {
    pub flush: FlushId,
    pub batches: Vec<BatchMeta>,
    pub space: SpoolSpace,
}

/// Spool space held by one spooled flush; returned when it is dropped
/// (after its file is removed).
#[derive(Debug)]
pub struct SpoolSpace {
    _permit: Option<OwnedSemaphorePermit>,
}

pub struct Spool {
    dir: PathBuf,
    /// Each flush held, with when it was spooled (ms, the node's clock at
    /// write; for replayed ones, their file's modification time, so a
    /// restart does not make old flushes look new): how far behind the
    /// store is.
    held: std::sync::Mutex<std::collections::BTreeMap<u64, u64>>,
    id: Ulid,
    next: AtomicU64,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    /// Held for the agent's life: two agents must never share a spool.
    _lock: File,
}

impl Spool {
    /// Opens the spool in `dir` (which must exist): locks it, checks that it
    /// can be written and synced, removes torn writes, moves corrupt files
    /// aside, and returns the flushes left in it, oldest first.
    /// `new_id` names a new spool (the node's injected ULIDs).
    /// `now_ms` is the node's clock, for the age of what the spool holds.
    pub fn open(
        dir: &Path,
        budget_bytes: usize,
        new_id: impl FnOnce() -> Ulid,
        now_ms: u64,
    ) -> Result<(Self, Vec<Recovered>), SpoolError> {
        if !dir.is_dir() {
            return Err(SpoolError::Missing(dir.to_owned()));
        }
        let classify = |source: io::Error| match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                SpoolError::Full { dir: dir.to_owned(), source }
            }
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                SpoolError::Unwritable { dir: dir.to_owned(), source }
            }
            _ => SpoolError::Io { path: dir.to_owned(), source },
        };
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE));
        let lock = lock.map_err(classify)?;
        if lock.try_lock().is_err() {
            return Err(SpoolError::InUse(dir.to_owned()));
        }
        probe(dir).map_err(|e| match e {
            Probe::Write(source) => classify(source),
            Probe::Sync(source) => SpoolError::NoSync { dir: dir.to_owned(), source },
        })?;
        let id = spool_id(dir, new_id)?;
        let mut found = Vec::new();
        let entries = fs::read_dir(dir).map_err(classify)?;
        for entry in entries {
            let path = entry.map_err(classify)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if name.ends_with(".tmp") {
                tracing::warn!(file = %path.display(), "removing a spool file whose write did not finish (torn by a crash)");
                fs::remove_file(&path).map_err(|source| SpoolError::Io { path: path.clone(), source })?;
            } else if let Some(seq) = name.strip_suffix(".flush").and_then(|s| s.parse::<u64>().ok()) {
                found.push((seq, path));
            }
        }
        found.sort();
        let next = found.last().map_or(1, |(seq, _)| seq + 1);
        let mut recovered = Vec::new();
        let mut held = 0usize;
        for (seq, path) in found {
            match read_file(&path).and_then(|(header, _)| check_header(header, id, seq)) {
                Ok(header) => {
                    held += file_len(&path);
                    recovered.push((header, path));
                }
                Err(detail) => set_aside(dir, &path, &detail)?,
            }
        }
        // A spool larger than its budget (the budget was lowered) still replays whole.
        let budget_bytes = budget_bytes.max(held).min(Semaphore::MAX_PERMITS);
        let budget = Arc::new(Semaphore::new(budget_bytes));
        let mut held = std::collections::BTreeMap::new();
        let recovered: Vec<Recovered> = recovered
            .into_iter()
            .map(|(h, path)| {
                let bytes = u32::try_from(file_len(&path)).unwrap_or(u32::MAX);
                let permit = budget.clone().try_acquire_many_owned(bytes).ok();
                held.insert(h.flush.seq, written_ms(&path).unwrap_or(now_ms).min(now_ms));
                Recovered { flush: h.flush, batches: h.batches, space: SpoolSpace { _permit: permit } }
            })
            .collect();
        let spool = Self {
            dir: dir.to_owned(),
            held: std::sync::Mutex::new(held),
            id,
            next: AtomicU64::new(next),
            budget,
            budget_bytes,
            _lock: lock,
        };
        Ok((spool, recovered))
    }

    pub fn id(&self) -> Ulid {
        self.id
    }

    /// Numbers after the log's record of this spool: with an empty spool
    /// directory, the log is the only memory of the last number used.
    pub fn continue_after(&self, committed: u64) {
        self.next.fetch_max(committed + 1, Ordering::Relaxed);
    }

    /// Bytes of spool files held.
    pub fn held_bytes(&self) -> usize {
        self.budget_bytes.saturating_sub(self.budget.available_permits())
    }

    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// When the oldest flush the spool holds was spooled (ms), if any.
    pub fn oldest_ms(&self) -> Option<u64> {
        self.held().values().min().copied()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, u64>> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the spool has room for a flush of `segment_bytes`.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is held until it returns.
    pub async fn reserve(&self, segment_bytes: usize) -> Result<SpoolSpace, SpoolError> {
        let permits = self.permits(segment_bytes)?;
        let permit = self.budget.clone().acquire_many_owned(permits).await.map_err(|_| SpoolError::Closed)?;
        Ok(SpoolSpace { _permit: Some(permit) })
    }

    /// The room for a flush of `segment_bytes` if the spool has it now
    /// (and nobody waits ahead), `None` if `reserve` would wait.
    pub fn try_reserve(&self, segment_bytes: usize) -> Result<Option<SpoolSpace>, SpoolError> {
        let permits = self.permits(segment_bytes)?;
        match self.budget.clone().try_acquire_many_owned(permits) {
            Ok(permit) => Ok(Some(SpoolSpace { _permit: Some(permit) })),
            Err(tokio::sync::TryAcquireError::NoPermits) => Ok(None),
            Err(tokio::sync::TryAcquireError::Closed) => Err(SpoolError::Closed),
        }
    }

    /// A flush's share of the budget: its segment and its file's framing.
    fn permits(&self, segment_bytes: usize) -> Result<u32, SpoolError> {
        let bytes = segment_bytes.saturating_add(4096).min(self.budget_bytes);
        u32::try_from(bytes).map_err(|_| SpoolError::TooLarge(segment_bytes))
    }

    /// The next flush's id. Taken in seal order: the log commits a spool's
    /// flushes in the order of their numbers. (A number taken by a flush
    /// that never reaches the spool is simply skipped.)
    pub fn next_flush(&self) -> FlushId {
        FlushId { spool: self.id, seq: self.next.fetch_add(1, Ordering::Relaxed) }
    }

    /// Writes one flush and syncs it; `now_ms` (the node's clock) dates it.
    pub async fn write(
        self: &Arc<Self>,
        flush: FlushId,
        batches: Vec<BatchMeta>,
        segment: PutPayload,
        now_ms: u64,
    ) -> Result<(), SpoolError> {
        let spool = self.clone();
        let header = Header { flush, batches };
        let written = tokio::task::spawn_blocking(move || spool.write_file(&header, &segment)).await;
        written.map_err(|e| SpoolError::Io { path: self.dir.clone(), source: io::Error::other(e) })??;
        self.held().insert(flush.seq, now_ms);
        Ok(())
    }

    /// The segment's chunks are written as they are, after the frame's head.
    fn write_file(&self, header: &Header, segment: &PutPayload) -> Result<(), SpoolError> {
        let head =
            serde_json::to_vec(header).map_err(|e| SpoolError::Io { path: self.dir.clone(), source: e.into() })?;
        let head_len = u32::try_from(head.len()).map_err(|_| SpoolError::TooLarge(head.len()))?;
        let mut start = Vec::with_capacity(FRAME_HEAD + head.len());
        start.extend_from_slice(MAGIC);
        start.extend_from_slice(&head_len.to_le_bytes());
        start.extend_from_slice(&(segment.content_length() as u64).to_le_bytes());
        start.extend_from_slice(&head);
        let crc = segment.iter().fold(crc32c::crc32c(&start), |crc, chunk| crc32c::crc32c_append(crc, chunk));
        let seq = header.flush.seq;
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SpoolError::Io { path, source }
        };
        let mut file = io::BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
        let crc = crc.to_le_bytes();
        let chunks = std::iter::once(&start[..]).chain(segment.iter().map(|c| &c[..])).chain([&crc[..]]);
        for chunk in chunks {
            file.write_all(chunk).map_err(io(&tmp))?;
        }
        let file = file.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io(&tmp))?;
        let path = self.path(seq);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&self.dir).map_err(io(&self.dir))
    }

    /// The segment of a spooled flush, checked against its checksum.
    pub async fn read(self: &Arc<Self>, seq: u64) -> Result<Bytes, SpoolError> {
        let path = self.path(seq);
        let read = tokio::task::spawn_blocking(move || read_file(&path).map(|(_, segment)| segment)).await;
        let path = || self.path(seq);
        let read = read.map_err(|e| SpoolError::Io { path: path(), source: io::Error::other(e) })?;
        read.map_err(|detail| SpoolError::Io { path: path(), source: io::Error::other(detail) })
    }

    /// Removes a flush once it is committed (or known to be).
    pub async fn remove(self: &Arc<Self>, seq: u64) -> Result<(), SpoolError> {
        self.held().remove(&seq);
        let path = self.path(seq);
        let removed = tokio::task::spawn_blocking(move || fs::remove_file(&path)).await;
        let path = self.path(seq);
        removed.map_err(io::Error::other).and_then(|r| r).map_err(|source| SpoolError::Io { path, source })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.flush"))
    }
}

enum Probe {
    Write(io::Error),
    Sync(io::Error),
}

/// Writes, syncs and removes a scratch file: a start-up error beats
/// finding out at the first flush.
fn probe(dir: &Path) -> Result<(), Probe> {
    let path = dir.join("probe.tmp");
    let mut file = File::create(&path).map_err(Probe::Write)?;
    let written = file.write_all(&[0u8; 4096]).map_err(Probe::Write);
    let synced = written.and_then(|()| file.sync_all().map_err(Probe::Sync));
    let _ = fs::remove_file(&path);
    synced?;
    sync_dir(dir).map_err(Probe::Sync)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The spool's id: read, or made and synced on first use.
fn spool_id(dir: &Path, new_id: impl FnOnce() -> Ulid) -> Result<Ulid, SpoolError> {
    let path = dir.join(ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            text.trim().parse().map_err(|e: ulid::DecodeError| SpoolError::BadId { path, detail: e.to_string() })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = new_id();
            let tmp = dir.join(format!("{ID_FILE}.tmp"));
            let io = |source| SpoolError::Io { path: tmp.clone(), source };
            let mut file = File::create(&tmp).map_err(io)?;
            file.write_all(id.to_string().as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            fs::rename(&tmp, &path).map_err(io)?;
            sync_dir(dir).map_err(io)?;
            Ok(id)
        }
        Err(source) => Err(SpoolError::Io { path, source }),
    }
}

/// When the file at `path` was last written, in ms since the Unix epoch.
fn written_ms(path: &Path) -> Option<u64> {
    let modified = fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let since_epoch = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since_epoch.as_millis()).ok()
}

fn file_len(path: &Path) -> usize {
    fs::metadata(path).map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX))
}

/// Reads and checks one spool file.
fn read_file(path: &Path) -> Result<(Header, Bytes), String> {
    let data = fs::read(path).map_err(|e| e.to_string())?;
    if data.len() < FRAME_HEAD + 4 || &data[..8] != MAGIC {
        return Err("not a spool file (too short, or wrong magic)".into());
    }
    let (body, crc) = data.split_at(data.len() - 4);
    let crc = u32::from_le_bytes(crc.try_into().map_err(|_| "short checksum")?);
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".into());
    }
    let head_len = u32::from_le_bytes(body[8..12].try_into().map_err(|_| "short header")?) as usize;
    let seg_len = u64::from_le_bytes(body[12..20].try_into().map_err(|_| "short header")?);
    let seg_start = FRAME_HEAD.saturating_add(head_len);
    if u64::try_from(body.len() - seg_start.min(body.len())).ok() != Some(seg_len) || seg_start > body.len() {
        return Err("lengths do not match the file".into());
    }
    let header: Header = serde_json::from_slice(&body[FRAME_HEAD..seg_start]).map_err(|e| e.to_string())?;
    let data = Bytes::from(data);
    Ok((header, data.slice(seg_start..seg_start + seg_len as usize)))
}

fn check_header(header: Header, spool: Ulid, seq: u64) -> Result<Header, String> {
    if header.flush != (FlushId { spool, seq }) {
        return Err(format!("holds flush {:?}, not {seq} of spool {spool}", header.flush));
    }
    Ok(header)
}

fn set_aside(dir: &Path, path: &Path, detail: &str) -> Result<(), SpoolError> {
    let aside = dir.join(CORRUPT_DIR);
    let io = |source| SpoolError::Io { path: aside.clone(), source };
    fs::create_dir_all(&aside).map_err(io)?;
    let target = aside.join(path.file_name().unwrap_or_default());
    fs::rename(path, &target).map_err(io)?;
    tracing::error!(file = %path.display(), moved_to = %target.display(), detail, "a spool file is damaged; skipped (its records are not replayed)");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests
mod tests {
    use super::*;

    fn meta(records: u32) -> BatchMeta {
        BatchMeta {
            topic: "t".into(),
            partition: 0,
            pos: 8,
            len: 40,
            records,
            max_timestamp: 1,
            producer: None,
            topic_id: Some(1),
        }
    }

    #[tokio::test]
    async fn flushes_survive_a_restart_in_order_and_a_torn_or_corrupt_file_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, recovered) = Spool::open(dir.path(), 1 << 20, Ulid::new, 0).unwrap();
        assert!(recovered.is_empty());
        let spool = Arc::new(spool);
        let mut ids = Vec::new();
        for n in 1..=3u8 {
            let _space = spool.reserve(100).await.unwrap();
            let flush = spool.next_flush();
            // In two chunks, as a segment is built: the file holds them as one.
            let segment = PutPayload::from_iter([Bytes::from(vec![n; 40]), Bytes::from(vec![n; 60])]);
            spool.write(flush, vec![meta(u32::from(n))], segment, 7).await.unwrap();
            assert_eq!(spool.oldest_ms(), Some(7));
            ids.push(flush);
        }
        assert_eq!(ids.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(spool.read(2).await.unwrap(), Bytes::from(vec![2u8; 100]));
        let spool_id = spool.id();
        drop(spool);
        // A crash mid-write leaves a .tmp; a bad disk flips a byte of flush 2.
        fs::write(dir.path().join(format!("{:020}.tmp", 4)), b"FLOESPL1 torn").unwrap();
        let second = dir.path().join(format!("{:020}.flush", 2));
        let mut bytes = fs::read(&second).unwrap();
        let last = bytes.len() - 10;
        bytes[last] ^= 0xff;
        fs::write(&second, bytes).unwrap();

        let (spool, recovered) = Spool::open(dir.path(), 1 << 20, Ulid::new, 0).unwrap();
        assert_eq!(spool.id(), spool_id, "the spool keeps its id");
        let seqs: Vec<u64> = recovered.iter().map(|r| r.flush.seq).collect();
        assert_eq!(seqs, vec![1, 3], "the damaged flush is skipped, the good ones kept in order");
        assert_eq!(recovered[1].batches, vec![meta(3)]);
        assert!(!dir.path().join(format!("{:020}.tmp", 4)).exists(), "the torn write is removed");
        assert!(dir.path().join(CORRUPT_DIR).join(format!("{:020}.flush", 2)).exists(), "kept aside");
        assert!(spool.held_bytes() > 200, "replayed flushes hold their space");
        let spool = Arc::new(spool);
        assert_eq!(spool.next_flush().seq, 4, "numbers go on");
        spool.continue_after(10);
        assert_eq!(spool.next_flush().seq, 11, "after the log's last");
    }

    /// A flush replayed after a restart keeps its age (its file's time),
    /// so the age alert still sees how long the store has been behind.
    #[tokio::test]
    async fn a_replayed_flush_keeps_its_age() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 1 << 20, Ulid::new, 0).unwrap();
        let spool = Arc::new(spool);
        let _space = spool.reserve(100).await.unwrap();
        let flush = spool.next_flush();
        spool.write(flush, vec![meta(1)], PutPayload::from(Bytes::from(vec![1u8; 100])), 7).await.unwrap();
        drop(spool);
        let file = fs::File::options().write(true).open(dir.path().join(format!("{:020}.flush", flush.seq))).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000)).unwrap();
        let (spool, recovered) = Spool::open(dir.path(), 1 << 20, Ulid::new, 5_000_000).unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(spool.oldest_ms(), Some(1_000_000), "spooled when its file was written, not at the restart");
    }

    #[test]
    fn a_missing_or_shared_spool_directory_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(Spool::open(&missing, 1 << 20, Ulid::new, 0), Err(SpoolError::Missing(_))));
        let _first = Spool::open(dir.path(), 1 << 20, Ulid::new, 0).unwrap();
        assert!(matches!(Spool::open(dir.path(), 1 << 20, Ulid::new, 0), Err(SpoolError::InUse(_))));
    }

    #[tokio::test]
    async fn space_is_held_until_the_flush_is_done_with() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), 10_000, Ulid::new, 0).unwrap();
        let held = spool.reserve(5000).await.unwrap();
        assert!(spool.held_bytes() >= 5000);
        assert!(spool.reserve(5000).now_or_never().is_none(), "no room for a second one");
        drop(held);
        assert_eq!(spool.held_bytes(), 0);
    }

    use futures::FutureExt;
}
