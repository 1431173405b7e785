//! The local directory store, with large objects (segments) written past
//! the page cache (`O_DIRECT`).
//!
//! Why: Floe reads segments through its own cache, so a segment copied into
//! the page cache as well is held twice and mostly never read from there.
//! The copy was the largest cost of a produce beyond the CPU floor on a
//! local directory (docs/benchmarks.md, "2026-12-06"), and on a VM whose
//! host backs memory on first touch each fresh page-cache page also faults
//! on the host. Written directly, the bytes go from one reused buffer to the
//! disk, and the `fsync` before the PUT returns has no dirty pages to write.
//!
//! The publish protocol is `LocalFileSystem`'s own, so the two interoperate
//! on one directory: the bytes go to a staging file `<key>#<n>` (which its
//! listing skips), are synced, and are published with `link(2)`, which fails
//! if the key exists (create-only), or `rename(2)` (overwrite), followed by
//! a sync of the directory. Everything else (small objects, conditional
//! updates, reads, lists, deletes) is
//! `LocalFileSystem`'s. Where the file system refuses `O_DIRECT` (tmpfs on
//! older kernels, some FUSE file systems) every PUT goes to it too.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, IoSlice};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::aligned;
use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Offsets, lengths and buffer addresses of direct writes are multiples of
/// this: every logical block size Linux file systems use divides it.
const ALIGN: usize = 4096;
/// Bytes per write: a segment of 8 MiB is four `write` calls.
const CHUNK: usize = 2 << 20;
/// Objects smaller than this (log entries, snapshots' small parts) go
/// through the page cache: a direct write of a few hundred bytes would
/// still cost a whole block and a wait for the disk.
const DIRECT_MIN_BYTES: usize = 64 * 1024;
/// Write buffers kept for reuse (more exist only while more PUTs run at once).
const KEPT_BUFFERS: usize = 4;

pub struct DirectLocal {
    inner: Arc<LocalFileSystem>,
    shared: Arc<Shared>,
}

struct Shared {
    min_bytes: usize,
    /// `O_DIRECT` (tests make it one the kernel refuses).
    open_flags: i32,
    /// Tests: the write buffer starts one byte off alignment.
    #[cfg(test)]
    misaligned: bool,
    /// Tests: the device refuses writes from where parts lie (EINVAL).
    #[cfg(test)]
    refuse_in_place: bool,
    /// Cleared for good the first time the file system refuses `O_DIRECT`.
    supported: AtomicBool,
    /// PUTs written directly, for tests and `Debug`.
    direct_puts: AtomicU64,
    /// Whether parts at block boundaries are written from where they lie:
    /// unknown until the first staging file's direct I/O alignment is read
    /// (`statx`), and off for good where it is more than a block or
    /// unknown, or the first time the device refuses such a write.
    in_place: AtomicU8,
    /// Bytes written from where they lay, for tests and `Debug`.
    in_place_bytes: AtomicU64,
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl DirectLocal {
    /// `inner` must sync what it writes (`with_fsync(true)`): the objects it
    /// writes are acknowledged the same way as the direct ones.
    pub fn new(inner: LocalFileSystem) -> Self {
        Self::with_min_bytes(inner, DIRECT_MIN_BYTES)
    }

    /// Objects of at least `min_bytes` are written directly (0: all of them).
    pub fn with_min_bytes(inner: LocalFileSystem, min_bytes: usize) -> Self {
        let shared = Shared {
            min_bytes,
            open_flags: libc::O_DIRECT,
            #[cfg(test)]
            misaligned: false,
            #[cfg(test)]
            refuse_in_place: false,
            supported: AtomicBool::new(true),
            direct_puts: AtomicU64::new(0),
            in_place: AtomicU8::new(IN_PLACE_UNKNOWN),
            in_place_bytes: AtomicU64::new(0),
            buffers: Mutex::new(Vec::new()),
        };
        Self { inner: Arc::new(inner), shared: Arc::new(shared) }
    }

    /// How many PUTs were written past the page cache.
    pub fn direct_puts(&self) -> u64 {
        self.shared.direct_puts.load(Ordering::Relaxed)
    }
}

impl fmt::Display for DirectLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl fmt::Debug for DirectLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectLocal")
            .field("inner", &self.inner)
            .field("min_bytes", &self.shared.min_bytes)
            .field("supported", &self.shared.supported.load(Ordering::Relaxed))
            .field("direct_puts", &self.direct_puts())
            .field("in_place", &self.shared.in_place.load(Ordering::Relaxed))
            .field("in_place_bytes", &self.shared.in_place_bytes.load(Ordering::Relaxed))
            .finish()
    }
}

/// What a direct PUT came to.
enum Outcome {
    Done(Result<PutResult>),
    /// Not written (the key's directory does not exist yet, or the file
    /// system refuses `O_DIRECT`): `LocalFileSystem` writes it.
    Declined,
}

impl Shared {
    fn put(&self, dest: &FsPath, payload: &PutPayload, create_only: bool) -> Outcome {
        let (file, staging) = match open_staging(dest, self.open_flags) {
            Ok(opened) => opened,
            // LocalFileSystem makes (and syncs) missing directories.
            Err(e) if e.kind() == ErrorKind::NotFound => return Outcome::Declined,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return self.refused(),
            Err(e) => return Outcome::Done(Err(generic(e))),
        };
        self.learn_alignment(&file);
        let written = self.write(&file, payload).and_then(|()| file.sync_all()).and_then(|()| file.metadata());
        // Checked, as LocalFileSystem does: network file systems report lost writes here.
        let closed = nix::unistd::close(file).map_err(io::Error::from);
        let metadata = match written.and_then(|m| closed.map(|()| m)) {
            Ok(metadata) => metadata,
            Err(e) => {
                // Not published, and its name is ours alone (made with O_EXCL).
                let _ = std::fs::remove_file(&staging);
                // The file system refuses direct I/O (or its alignment).
                return if e.raw_os_error() == Some(libc::EINVAL) {
                    self.refused()
                } else {
                    Outcome::Done(Err(generic(e)))
                };
            }
        };
        // Never declined from here: the object may exist already.
        Outcome::Done(match publish(&staging, dest, create_only) {
            Ok(()) => {
                self.direct_puts.fetch_add(1, Ordering::Relaxed);
                Ok(PutResult { e_tag: Some(e_tag(&metadata)), version: None, extensions: Default::default() })
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                Err(object_store::Error::AlreadyExists { path: dest.display().to_string(), source: Box::new(e) })
            }
            Err(e) => Err(generic(e)),
        })
    }

    /// Direct writes off for good: the file system will not take them.
    fn refused(&self) -> Outcome {
        self.supported.store(false, Ordering::Relaxed);
        Outcome::Declined
    }

    /// Writes `payload` at the start of `file` (opened `O_DIRECT`): its
    /// parts that lie in memory at a block boundary, at a block boundary of
    /// the file, from where they lie (their whole blocks), the rest through
    /// an aligned buffer. Where the device refuses blocks of
    /// [`aligned::BLOCK`], everything goes through the buffer from then on.
    fn write(&self, file: &File, payload: &PutPayload) -> io::Result<()> {
        let mut held = self.buffer(payload.content_length());
        let written = match self.in_place.load(Ordering::Relaxed) == IN_PLACE_ON {
            true => match self.write_pieces(file, &mut held, payload, true) {
                // The device wants more than a block's alignment: through the buffer, now and from now on.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.in_place.store(IN_PLACE_OFF, Ordering::Relaxed);
                    file.set_len(0).and_then(|()| self.write_pieces(file, &mut held, payload, false))
                }
                written => written,
            },
            false => self.write_pieces(file, &mut held, payload, false),
        };
        self.give_back(held);
        written
    }

    /// Reads, once, whether the file system takes direct writes of
    /// [`aligned::BLOCK`]-aligned memory at block offsets (ext4 and XFS on
    /// most disks do; btrfs wants 4 KiB, and below that quietly goes
    /// through the page cache instead of refusing).
    fn learn_alignment(&self, file: &File) {
        if self.in_place.load(Ordering::Relaxed) != IN_PLACE_UNKNOWN {
            return;
        }
        use rustix::fs::{AtFlags, StatxFlags, statx};
        let fits = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).is_ok_and(|s| {
            let known = StatxFlags::from_bits_retain(s.stx_mask).contains(StatxFlags::DIOALIGN);
            let fits = |align: u32| (1..=aligned::BLOCK as u32).contains(&align);
            known && fits(s.stx_dio_mem_align) && fits(s.stx_dio_offset_align)
        });
        let state = if fits { IN_PLACE_ON } else { IN_PLACE_OFF };
        let _ = self.in_place.compare_exchange(IN_PLACE_UNKNOWN, state, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// [`Self::write`], with parts written in place or not; the last block
    /// is padded, then cut back.
    fn write_pieces(&self, file: &File, held: &mut [u8], payload: &PutPayload, in_place: bool) -> io::Result<()> {
        let room = held.len() - ALIGN;
        let start = (ALIGN - held.as_ptr() as usize % ALIGN) % ALIGN;
        #[cfg(test)]
        let start = match (self.misaligned, start) {
            (false, start) => start,
            (true, 0) => 1,
            (true, start) => start - 1,
        };
        let buf = &mut held[start..start + room];
        let mut out = Pieces { list: Vec::new(), offset: 0, in_place: 0 };
        // `buf[region..filled]`: copied bytes that follow the listed pieces.
        let (mut region, mut filled) = (0, 0);
        for part in payload.iter() {
            let mut part = &part[..];
            if in_place
                && (filled - region) % aligned::BLOCK == 0
                && part.len() >= aligned::BLOCK
                && aligned::is_aligned(part)
            {
                #[cfg(test)]
                if self.refuse_in_place {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                }
                if filled > region {
                    out.list.push(Piece::Copied(region..filled));
                    region = filled;
                }
                let whole = part.len() - part.len() % aligned::BLOCK;
                out.list.push(Piece::InPlace(&part[..whole]));
                part = &part[whole..];
                if out.list.len() >= MAX_PIECES {
                    out.write(file, buf)?;
                    (region, filled) = (0, 0);
                }
            }
            while !part.is_empty() {
                let n = part.len().min(room - filled);
                buf[filled..filled + n].copy_from_slice(&part[..n]);
                (filled, part) = (filled + n, &part[n..]);
                if filled == room {
                    out.list.push(Piece::Copied(region..filled));
                    out.write(file, buf)?;
                    (region, filled) = (0, 0);
                }
            }
        }
        if filled > region {
            // Whole blocks from `region` (a block boundary of the buffer).
            let padded = region + (filled - region).next_multiple_of(if in_place { aligned::BLOCK } else { ALIGN });
            buf[filled..padded].fill(0);
            out.list.push(Piece::Copied(region..padded));
            let end = out.offset + out.len(buf) as u64 - (padded - filled) as u64;
            out.write(file, buf)?;
            if padded > filled {
                file.set_len(end)?;
            }
        }
        out.write(file, buf)?;
        self.in_place_bytes.fetch_add(out.in_place, Ordering::Relaxed);
        Ok(())
    }

    /// A kept buffer, or else a new one with room for `len` aligned bytes
    /// (at most `CHUNK`), and `ALIGN` to spare.
    fn buffer(&self, len: usize) -> Vec<u8> {
        let kept = self.buffers.lock().ok().and_then(|mut b| b.pop());
        kept.unwrap_or_else(|| vec![0; len.next_multiple_of(ALIGN).min(CHUNK) + ALIGN])
    }

    fn give_back(&self, buffer: Vec<u8>) {
        if buffer.len() == CHUNK + ALIGN
            && let Ok(mut kept) = self.buffers.lock()
            && kept.len() < KEPT_BUFFERS
        {
            kept.push(buffer);
        }
    }
}

/// A stretch of a direct write: bytes copied into the write buffer (a range
/// of it), or a part of the payload written from where it lies.
enum Piece<'a> {
    Copied(std::ops::Range<usize>),
    InPlace(&'a [u8]),
}

/// Stretches not written yet, and the file offset of the first.
struct Pieces<'a> {
    list: Vec<Piece<'a>>,
    offset: u64,
    /// Bytes written from where they lay so far.
    in_place: u64,
}

impl Piece<'_> {
    fn bytes<'b>(&'b self, buf: &'b [u8]) -> &'b [u8] {
        match self {
            Piece::Copied(range) => &buf[range.clone()],
            Piece::InPlace(bytes) => bytes,
        }
    }
}

impl Pieces<'_> {
    fn len(&self, buf: &[u8]) -> usize {
        self.list.iter().map(|piece| piece.bytes(buf).len()).sum()
    }

    /// Writes them all with as few system calls as the kernel allows (one
    /// `pwritev` of up to [`MAX_PIECES`]).
    fn write(&mut self, file: &File, buf: &[u8]) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = self.list.iter().map(|piece| IoSlice::new(piece.bytes(buf))).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let offset = libc::off_t::try_from(self.offset).map_err(io::Error::other)?;
            let n = match nix::sys::uio::pwritev(file, rest, offset) {
                Err(nix::errno::Errno::EINTR) => continue,
                written => written.map_err(io::Error::from)?,
            };
            if n == 0 {
                return Err(ErrorKind::WriteZero.into());
            }
            self.offset += n as u64;
            IoSlice::advance_slices(&mut rest, n);
        }
        drop(slices);
        for piece in self.list.drain(..) {
            if let Piece::InPlace(bytes) = piece {
                self.in_place += bytes.len() as u64;
            }
        }
        Ok(())
    }
}

/// [`Shared::in_place`]'s states.
const IN_PLACE_UNKNOWN: u8 = 0;
const IN_PLACE_ON: u8 = 1;
const IN_PLACE_OFF: u8 = 2;

/// Stretches per `pwritev`, under the kernel's `IOV_MAX` (1024).
const MAX_PIECES: usize = 512;

/// A new staging file for `dest`, named as `LocalFileSystem` names its own.
fn open_staging(dest: &FsPath, flags: i32) -> io::Result<(File, PathBuf)> {
    for n in 1u64.. {
        let mut name = dest.as_os_str().to_owned();
        name.push(format!("#{n}"));
        let staging = PathBuf::from(name);
        match OpenOptions::new().write(true).create_new(true).custom_flags(flags).open(&staging) {
            Ok(file) => return Ok((file, staging)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free staging name"))
}

/// Publishes the synced `staging` file as `dest` (with `create_only`,
/// unless `dest` exists), durably: the directory entry is synced too. The
/// staging name is gone either way: once published it is never removed by
/// name again, since another PUT of the key may have taken it.
fn publish(staging: &FsPath, dest: &FsPath, create_only: bool) -> io::Result<()> {
    let published = if create_only { std::fs::hard_link(staging, dest) } else { std::fs::rename(staging, dest) };
    if published.is_err() || create_only {
        let _ = std::fs::remove_file(staging);
    }
    published?;
    match dest.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// `LocalFileSystem`'s ETag for the file, so a later HEAD agrees with the PUT.
fn e_tag(metadata: &std::fs::Metadata) -> String {
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{:x}-{mtime:x}-{:x}\"", metadata.ino(), metadata.len())
}

fn generic(e: io::Error) -> object_store::Error {
    object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(e) }
}

#[async_trait]
impl ObjectStore for DirectLocal {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let create_only = match opts.mode {
            PutMode::Create => true,
            PutMode::Overwrite => false,
            PutMode::Update(_) => return self.inner.put_opts(location, payload, opts).await,
        };
        let direct = opts.attributes.is_empty()
            && payload.content_length() >= self.shared.min_bytes
            && self.shared.supported.load(Ordering::Relaxed);
        if !direct {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let dest = self.inner.path_to_filesystem(location)?;
        let (shared, bytes) = (self.shared.clone(), payload.clone());
        let outcome = tokio::task::spawn_blocking(move || shared.put(&dest, &bytes, create_only))
            .await
            .map_err(|e| generic(io::Error::other(e)))?;
        match outcome {
            Outcome::Done(result) => result,
            Outcome::Declined => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;

    use super::*;

    /// A directory on the repository's file system (a temporary directory
    /// may be a tmpfs), and whether that file system takes `O_DIRECT`.
    fn dir() -> (tempfile::TempDir, bool) {
        let (dir, direct, _) = dir_and_alignment();
        (dir, direct)
    }

    /// Whether a file system of `alignment` (offsets, memory) takes direct
    /// writes of 512-byte blocks, by the kernel's documented `statx` fields.
    fn takes_blocks(&(offsets, memory): &(u32, u32), direct: bool) -> bool {
        direct && offsets > 0 && offsets <= 512 && memory > 0 && memory <= 512
    }

    /// [`dir`], and the file system's direct I/O alignment (offsets,
    /// memory) as `statx` tells it (0 where it does not).
    fn dir_and_alignment() -> (tempfile::TempDir, bool, (u32, u32)) {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let probe = dir.path().join("probe");
        let opened = OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_DIRECT).open(&probe);
        let alignment = opened.as_ref().ok().and_then(|file| {
            use rustix::fs::{AtFlags, StatxFlags, statx};
            let s = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
            Some((s.stx_dio_offset_align, s.stx_dio_mem_align))
        });
        let direct = opened.is_ok();
        let _ = std::fs::remove_file(probe);
        (dir, direct, alignment.unwrap_or_default())
    }

    fn store(dir: &FsPath, min_bytes: usize) -> DirectLocal {
        DirectLocal::with_min_bytes(LocalFileSystem::new_with_prefix(dir).unwrap().with_fsync(true), min_bytes)
    }

    /// `len` bytes that differ from one position (and one object) to the next, in uneven parts.
    fn payload(len: usize, seed: u8) -> (PutPayload, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ seed).collect();
        let parts = bytes.chunks(100_003).map(Bytes::copy_from_slice);
        (parts.collect(), bytes)
    }

    fn staging_files(dir: &FsPath) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path);
                } else if path.to_string_lossy().contains('#') {
                    found.push(path);
                }
            }
        }
        found
    }

    #[tokio::test]
    async fn large_objects_are_written_past_the_page_cache_byte_for_byte() {
        let (dir, direct) = dir();
        let store = store(dir.path(), DIRECT_MIN_BYTES);
        // Made by LocalFileSystem: the key's directory does not exist yet.
        store
            .put_opts(&Path::from("segments/first"), payload(DIRECT_MIN_BYTES, 9).0, PutMode::Create.into())
            .await
            .unwrap();
        let sizes = [DIRECT_MIN_BYTES, 70_001, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 12_345];
        for (i, len) in sizes.into_iter().enumerate() {
            let key = Path::from(format!("segments/{i}"));
            let (put, bytes) = payload(len, i as u8);
            let put = store.put_opts(&key, put, PutMode::Create.into()).await.unwrap();
            let got = store.get(&key).await.unwrap();
            assert_eq!(got.meta.e_tag, put.e_tag, "a HEAD agrees with the PUT");
            assert_eq!(got.meta.size, len as u64, "{len}");
            assert!(got.bytes().await.unwrap() == bytes, "{len} bytes read back differ");
        }
        assert_eq!(store.direct_puts(), if direct { sizes.len() as u64 } else { 0 }, "{store:?}");
        let listed: Vec<_> = store.list(Some(&Path::from("segments"))).try_collect().await.unwrap();
        assert_eq!(listed.len(), sizes.len() + 1);
        assert!(staging_files(dir.path()).is_empty());
    }

    /// A segment as an agent builds it: large frames of barely
    /// compressible records, each at a block boundary.
    fn aligned_segment() -> Vec<Bytes> {
        let mut b = crate::segment::SegmentBuilder::aligned();
        for partition in 0..4 {
            let records = crate::testing::letter_records(u64::from(partition) + 1, 100, 1024);
            let frames = [(0, crate::segment::Frame::compress(&records).unwrap())];
            b.add_batch_with_frames("t", partition, &records, &frames).unwrap();
        }
        b.finish_chunks().unwrap().0
    }

    #[tokio::test]
    async fn frames_at_block_boundaries_are_written_from_where_they_lie() {
        let (dir, direct, alignment) = dir_and_alignment();
        let takes_blocks = takes_blocks(&alignment, direct);
        let store = store(dir.path(), 0);
        store.put(&Path::from("segments/made"), payload(1, 0).0).await.unwrap();
        let chunks = aligned_segment();
        let bytes = chunks.concat();
        let key = Path::from("segments/a");
        store.put_opts(&key, chunks.into_iter().collect(), PutMode::Create.into()).await.unwrap();
        assert!(store.get(&key).await.unwrap().bytes().await.unwrap() == bytes);
        let in_place = store.shared.in_place_bytes.load(Ordering::Relaxed);
        if takes_blocks {
            // All but each frame's last partial block, the headers and the index.
            assert!(in_place as f64 >= 0.95 * bytes.len() as f64, "{in_place} of {} bytes: {store:?}", bytes.len());
        } else {
            // btrfs (4 KiB) would take such writes through the page cache: never tried.
            assert_eq!(in_place, 0, "{store:?}");
        }
        assert!(staging_files(dir.path()).is_empty());
    }

    /// Parts in aligned memory or not, of every awkward length, at block
    /// offsets of the file or not, more of them than one `pwritev` takes,
    /// and beyond the write buffer: written byte for byte at their length.
    #[tokio::test]
    async fn any_mix_of_parts_in_place_and_copied_is_written_byte_for_byte() {
        let (dir, direct, alignment) = dir_and_alignment();
        let store = store(dir.path(), 0);
        store.put(&Path::from("segments/made"), payload(1, 0).0).await.unwrap();
        let lens = [0, 1, 7, 511, 512, 513, 1024, 4096, 4097, 100_000, CHUNK + 777];
        let mixes: Vec<Vec<(usize, bool)>> = vec![
            lens.iter().map(|len| (*len, true)).collect(),
            lens.iter().flat_map(|len| [(*len, true), (3, false)]).collect(),
            lens.iter().rev().flat_map(|len| [(*len, false), (*len, true)]).collect(),
            vec![(512, true); 3 * MAX_PIECES + 5],
            vec![(1024, true); 8],
        ];
        for (i, mix) in mixes.into_iter().enumerate() {
            let mut bytes = Vec::new();
            let parts: Vec<Bytes> = mix
                .iter()
                .enumerate()
                .map(|(j, (len, aligned))| {
                    let part: Vec<u8> = (0..*len).map(|k| (k % 253) as u8 ^ j as u8).collect();
                    bytes.extend_from_slice(&part);
                    if *aligned { crate::aligned::copy(&part) } else { Bytes::from(part) }
                })
                .collect();
            let key = Path::from(format!("segments/{i}"));
            store.put_opts(&key, parts.into_iter().collect(), PutMode::Create.into()).await.unwrap();
            let got = store.get(&key).await.unwrap();
            assert_eq!(got.meta.size, bytes.len() as u64, "mix {i}");
            assert!(got.bytes().await.unwrap() == bytes, "mix {i} read back differs");
        }
        assert_eq!(store.direct_puts(), if direct { 5 } else { 0 });
        let in_place = store.shared.in_place_bytes.load(Ordering::Relaxed);
        assert_eq!(in_place > 0, takes_blocks(&alignment, direct), "{store:?}");
        assert!(staging_files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_device_that_refuses_blocks_in_place_gets_them_copied() {
        let (dir, direct, alignment) = dir_and_alignment();
        let mut store = store(dir.path(), 0);
        Arc::get_mut(&mut store.shared).unwrap().refuse_in_place = true;
        store.put(&Path::from("segments/made"), payload(1, 0).0).await.unwrap();
        // Direct (the directory exists now), with nothing to write in place.
        store.put(&Path::from("segments/small"), payload(1, 0).0).await.unwrap();
        // Where the file system takes blocks, writing in place was on until refused.
        let before = store.shared.in_place.load(Ordering::Relaxed);
        assert_eq!(before == IN_PLACE_ON, takes_blocks(&alignment, direct), "{store:?}");
        for i in 0..2 {
            let chunks = aligned_segment();
            let bytes = chunks.concat();
            let key = Path::from(format!("segments/{i}"));
            store.put_opts(&key, chunks.into_iter().collect(), PutMode::Create.into()).await.unwrap();
            assert!(store.get(&key).await.unwrap().bytes().await.unwrap() == bytes);
        }
        let state = store.shared.in_place.load(Ordering::Relaxed);
        assert!(!direct || state == IN_PLACE_OFF, "{store:?}");
        assert_eq!(store.direct_puts(), if direct { 3 } else { 0 }, "still direct, through the buffer");
        assert_eq!(store.shared.in_place_bytes.load(Ordering::Relaxed), 0);
        assert!(staging_files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_direct_put_never_replaces_an_object() {
        let (dir, direct) = dir();
        let store = store(dir.path(), 0);
        store.put(&Path::from("segments/made"), payload(1, 0).0).await.unwrap();
        let key = Path::from("segments/a");
        let (first, bytes) = payload(5000, 1);
        store.put_opts(&key, first, PutMode::Create.into()).await.unwrap();
        assert_eq!(store.direct_puts(), u64::from(direct));
        let again = store.put_opts(&key, payload(9000, 2).0, PutMode::Create.into()).await;
        assert!(matches!(again, Err(object_store::Error::AlreadyExists { .. })), "{again:?}");
        assert!(store.get(&key).await.unwrap().bytes().await.unwrap() == bytes);
        assert!(staging_files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn racing_direct_puts_have_exactly_one_winner() {
        let (dir, direct) = dir();
        let store = Arc::new(store(dir.path(), 0));
        // The race's keys share a directory: made before, so every PUT is direct.
        store.put(&crate::keys::probe(ulid::Ulid::nil()), Bytes::from_static(b"x").into()).await.unwrap();
        let report = crate::conformance::race_create_only(store.clone(), 20, 8).await;
        assert!(report.safe(), "{report:?}");
        // One winner a round, each written directly.
        assert_eq!(store.direct_puts(), if direct { 20 } else { 0 }, "{store:?}");
        assert!(staging_files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn where_the_file_system_refuses_direct_writes_the_page_cache_is_used() {
        let (dir, _) = dir();
        let mut store = store(dir.path(), 0);
        // Refused as O_DIRECT is on a file system without it: EINVAL.
        Arc::get_mut(&mut store.shared).unwrap().open_flags = libc::O_DIRECT | libc::O_TMPFILE;
        store.put(&Path::from("segments/a"), payload(10, 0).0).await.unwrap();
        for i in 0..3 {
            let (put, bytes) = payload(300_000, i);
            let key = Path::from(format!("segments/{i}"));
            store.put_opts(&key, put, PutMode::Create.into()).await.unwrap();
            assert!(store.get(&key).await.unwrap().bytes().await.unwrap() == bytes);
        }
        let again = store.put_opts(&Path::from("segments/0"), payload(10, 0).0, PutMode::Create.into()).await;
        assert!(matches!(again, Err(object_store::Error::AlreadyExists { .. })), "{again:?}");
        assert!(!store.shared.supported.load(Ordering::Relaxed));
        assert_eq!(store.direct_puts(), 0);
        assert!(staging_files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn a_direct_write_the_kernel_refuses_is_written_through_the_page_cache() {
        let (dir, _) = dir();
        let mut store = store(dir.path(), 0);
        Arc::get_mut(&mut store.shared).unwrap().misaligned = true;
        store.put(&Path::from("segments/made"), payload(1, 0).0).await.unwrap();
        let (put, bytes) = payload(CHUNK + 3, 7);
        store.put_opts(&Path::from("segments/a"), put, PutMode::Create.into()).await.unwrap();
        assert!(store.get(&Path::from("segments/a")).await.unwrap().bytes().await.unwrap() == bytes);
        assert!(!store.shared.supported.load(Ordering::Relaxed), "{store:?}");
        assert_eq!(store.direct_puts(), 0);
        assert!(staging_files(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn an_overwrite_replaces_the_object_whole_and_small_objects_are_not_direct() {
        let (dir, direct) = dir();
        let store = store(dir.path(), DIRECT_MIN_BYTES);
        store.put(&Path::from("segments/x"), payload(100, 0).0).await.unwrap();
        assert_eq!(store.direct_puts(), 0);
        let key = Path::from("segments/y");
        store.put(&key, payload(CHUNK + 5, 0).0).await.unwrap();
        store.put(&key, payload(DIRECT_MIN_BYTES, 1).0).await.unwrap();
        assert_eq!(store.direct_puts(), if direct { 2 } else { 0 });
        let got = store.get(&key).await.unwrap();
        assert_eq!(got.meta.size, DIRECT_MIN_BYTES as u64);
        assert!(got.bytes().await.unwrap() == payload(DIRECT_MIN_BYTES, 1).1);
        assert!(staging_files(dir.path()).is_empty());
    }
}
