//! Segment format v1: one flush of one agent, holding batches of many partitions.
//!
//! ```text
//! segment  = header batch* index trailer
//! header   = "FLOESEG1" (8 bytes)
//! batch    = payload_len u32 | crc32c u32 | record_count u32 | codec u8 | 0u8 x3
//!            | uncompressed_len u32 | max_timestamp i64 | payload
//!            (crc32c covers everything after the crc field, payload included)
//! payload  = zstd frame+, whose contents together are record*
//! record   = timestamp i64 | key_len i32 (-1 = null) | key | value_len u32 | value
//!            | header_count u32 | (name_len u32 | name | value_len u32 | value)*
//! index    = (topic_len u16 | topic | partition u32 | pos u64 | len u32
//!            | record_count u32 | max_timestamp i64)*
//! trailer  = index_len u32 | batch_count u32 | crc32c(index) u32 | "FSIX"
//! ```
//! All integers are little-endian. A payload of several frames is what a
//! zstd stream decoder reads as one: writers compress large runs of a batch's
//! records ahead of the batch (see [`Frame`]), and may put skippable frames
//! between them ([`SegmentBuilder::aligned`]). A batch is self-describing and checked, so a
//! reader can fetch just its byte range. Offsets are not stored: they are
//! assigned when the log entry that references the batch is applied.
//! Frozen by `tests/golden.rs`; any change needs a new version.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::LocalKey;

use bytes::{Buf, BufMut, Bytes};
use serde::{Deserialize, Serialize};

use crate::record::Record;
use crate::{Error, Result};
use crate::{aligned, cpu_time, crc};

pub const MAGIC: &[u8; 8] = b"FLOESEG1";
const INDEX_MAGIC: &[u8; 4] = b"FSIX";
pub const BATCH_HEADER_LEN: usize = 28;
pub const TRAILER_LEN: usize = 16;
const CODEC_ZSTD: u8 = 1;
/// Level 1: the cheapest zstd level; log payloads are CPU-bound long before
/// they are bandwidth-bound.
const ZSTD_LEVEL: i32 = 1;

/// Where one batch lives in a segment, and what it holds. This is also what a
/// log entry records for each batch it commits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMeta {
    pub topic: String,
    pub partition: u32,
    /// Byte position of the batch header in the segment.
    pub pos: u64,
    /// Bytes of the whole batch, header included.
    pub len: u32,
    pub records: u32,
    pub max_timestamp: i64,
    /// Set when the batch comes from an idempotent producer; checked on apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<ProducerStamp>,
    /// The topic incarnation (`state::Topic::id`) the records were accepted
    /// for: they never land in a topic deleted and created again since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<u64>,
}

/// An idempotent producer's claim on a batch: its records carry sequences
/// `sequence ..` in this partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProducerStamp {
    pub id: u64,
    pub epoch: u32,
    pub sequence: u64,
}

impl BatchMeta {
    pub fn range(&self) -> Range<u64> {
        self.pos..self.pos + u64::from(self.len)
    }
}

/// Builds one segment in memory, as the chunks it is made of (the header,
/// each batch, the index): they are uploaded as they are, so the segment is
/// never copied into one buffer (nor grown by doubling on the way).
pub struct SegmentBuilder {
    chunks: Vec<Bytes>,
    len: usize,
    index: Vec<BatchMeta>,
    /// Which of `chunks` each batch of `index` is.
    batch_chunks: Vec<Range<usize>>,
    /// Frames at block boundaries ([`Self::aligned`]).
    aligned: bool,
}

/// A finished segment: the chunks it is made of, in order, and its batches.
pub struct Finished {
    pub chunks: Vec<Bytes>,
    pub index: Vec<BatchMeta>,
    /// For each batch of `index`, the chunks that hold exactly its bytes:
    /// what a reader of the batch would fetch, without a copy.
    pub batch_chunks: Vec<Range<usize>>,
}

/// One run of a batch's records, in order: compressed ahead as a frame of
/// its own, or records to compress when the batch is added.
#[derive(Clone, Copy, Debug)]
pub enum Run<'a> {
    Frame(&'a Frame),
    Records(&'a [Record]),
}

impl Default for SegmentBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentBuilder {
    pub fn new() -> Self {
        Self {
            chunks: vec![Bytes::from_static(MAGIC)],
            len: MAGIC.len(),
            index: Vec::new(),
            batch_chunks: Vec::new(),
            aligned: false,
        }
    }

    /// A builder whose batches keep each frame of [`aligned::MIN_FRAME`]
    /// or more that lies in aligned memory (those [`Frame::compress`] made
    /// from up to about 1 MiB of records) at an [`aligned::BLOCK`] boundary of the segment,
    /// a skippable frame before it where needed, so that a store writing
    /// past the page cache writes them from where they lie
    /// ([`crate::direct`]). The same format: about 0.3% more bytes for
    /// frames of ~100 KB, and a chunk of its own for each batch header.
    pub fn aligned() -> Self {
        Self { aligned: true, ..Self::new() }
    }

    /// Appends one batch; `records` must not be empty.
    pub fn add_batch(&mut self, topic: &str, partition: u32, records: &[Record]) -> Result<&BatchMeta> {
        let batch = encode_batch(records)?;
        let len = batch.len();
        self.push_batch(topic, partition, (records.len(), max_timestamp(records)), vec![Bytes::from(batch)], len)
    }

    /// Appends one batch of `records`, some runs of which are compressed
    /// already: each `(start, frame)` holds `records[start..start +
    /// frame.records()]`, in order. The runs between them are compressed
    /// here, each as a frame of its own.
    pub fn add_batch_with_frames(
        &mut self,
        topic: &str,
        partition: u32,
        records: &[Record],
        frames: &[(usize, Frame)],
    ) -> Result<&BatchMeta> {
        let mut runs = Vec::with_capacity(frames.len() * 2 + 1);
        let mut done = 0;
        for (start, frame) in frames {
            let end = start
                .checked_add(frame.records)
                .filter(|end| *start >= done && *end <= records.len())
                .ok_or_else(|| Error::encode("batch", "frames out of order or beyond the batch's records"))?;
            runs.push(Run::Records(&records[done..*start]));
            debug_assert_eq!(frame.raw_len, encoded_records_len(&records[*start..end]), "a frame of other records");
            runs.push(Run::Frame(frame));
            done = end;
        }
        runs.push(Run::Records(&records[done..]));
        self.add_batch_runs(topic, partition, &runs)
    }

    /// Appends one batch made of `runs`, in order (not all empty). Frames
    /// become the segment's chunks as they are: nothing is copied; each run
    /// of records is compressed here as a frame of its own.
    pub fn add_batch_runs(&mut self, topic: &str, partition: u32, runs: &[Run<'_>]) -> Result<&BatchMeta> {
        let mut records = runs.iter().filter(|run| !matches!(run, Run::Records([])));
        if let (Some(Run::Records(records)), None, false) = (records.next(), records.next(), self.aligned) {
            // Header and payload in one piece.
            return self.add_batch(topic, partition, records);
        }
        let mut payload: Vec<Frame> = Vec::with_capacity(runs.len());
        for run in runs {
            match run {
                Run::Frame(frame) => payload.push((*frame).clone()),
                Run::Records([]) => {}
                Run::Records(records) => payload.push(Frame::compress(records)?),
            }
        }
        if payload.is_empty() {
            return Err(Error::encode("segment", "empty batch"));
        }
        let raw_len = payload.iter().map(|f| f.raw_len).sum();
        let count = payload.iter().map(|f| f.records).sum();
        let max_ts = payload.iter().map(|f| f.max_timestamp).max().unwrap_or(i64::MIN);
        // The payload's pieces, each with its CRC: the frames, and before
        // each, when aligned, the filler that puts it at a block boundary.
        let mut pieces: Vec<(Bytes, u32)> = Vec::with_capacity(payload.len() * (1 + usize::from(self.aligned)));
        let mut pos = self.len + BATCH_HEADER_LEN;
        for frame in payload {
            let worth = self.aligned && frame.len() >= aligned::MIN_FRAME && aligned::is_aligned(&frame.bytes);
            if let Some(filler) = worth.then(|| aligned::filler_before(pos)).flatten() {
                pos += filler.len();
                let crc = crc32c::crc32c(&filler);
                pieces.push((Bytes::from(filler), crc));
            }
            pos += frame.len();
            pieces.push((frame.bytes, frame.crc));
        }
        let payload_len = pos - (self.len + BATCH_HEADER_LEN);
        let mut header = vec![0; BATCH_HEADER_LEN];
        write_header(&mut header, payload_len, count, max_ts, raw_len)?;
        // The frames are not read again for the batch's CRC: theirs were taken as they were made.
        debug_assert!(pieces.iter().all(|(b, crc)| *crc == crc32c::crc32c(b)), "a frame's CRC is not its bytes'");
        let batch_crc =
            pieces.iter().fold(crc32c::crc32c(&header[8..]), |acc, (b, crc)| crc::combine(acc, *crc, b.len() as u64));
        header[4..8].copy_from_slice(&batch_crc.to_le_bytes());
        let mut chunks = Vec::with_capacity(pieces.len() + 1);
        chunks.push(Bytes::from(header));
        chunks.extend(pieces.into_iter().map(|(b, _)| b));
        self.push_batch(topic, partition, (count, max_ts), chunks, BATCH_HEADER_LEN + payload_len)
    }

    /// `records`: how many the batch holds, and their latest timestamp.
    fn push_batch(
        &mut self,
        topic: &str,
        partition: u32,
        (count, max_timestamp): (usize, i64),
        chunks: Vec<Bytes>,
        len: usize,
    ) -> Result<&BatchMeta> {
        let meta = BatchMeta {
            topic: topic.to_owned(),
            partition,
            pos: self.len as u64,
            len: to_u32(len, "batch")?,
            records: to_u32(count, "record count")?,
            max_timestamp,
            producer: None,
            topic_id: None,
        };
        self.len += len;
        let first = self.chunks.len();
        self.chunks.extend(chunks);
        self.batch_chunks.push(first..self.chunks.len());
        self.index.push(meta);
        Ok(self.index.last().unwrap_or_else(|| unreachable!("just pushed")))
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Writes the index and trailer; returns the segment's chunks, in order,
    /// and its batches. `PutPayload::from_iter(chunks)` uploads them.
    pub fn finish_chunks(self) -> Result<(Vec<Bytes>, Vec<BatchMeta>)> {
        let Finished { chunks, index, .. } = self.finish_parts()?;
        Ok((chunks, index))
    }

    /// Like [`Self::finish_chunks`], with the chunks of each batch.
    pub fn finish_parts(mut self) -> Result<Finished> {
        let mut tail = Vec::with_capacity(self.index.iter().map(|b| b.topic.len() + 34).sum::<usize>() + TRAILER_LEN);
        for b in &self.index {
            let topic = b.topic.as_bytes();
            tail.put_u16_le(u16::try_from(topic.len()).map_err(|_| Error::encode("segment", "topic name too long"))?);
            tail.put_slice(topic);
            tail.put_u32_le(b.partition);
            tail.put_u64_le(b.pos);
            tail.put_u32_le(b.len);
            tail.put_u32_le(b.records);
            tail.put_i64_le(b.max_timestamp);
        }
        let index_len = to_u32(tail.len(), "index")?;
        let crc = crc32c::crc32c(&tail);
        tail.put_u32_le(index_len);
        tail.put_u32_le(to_u32(self.index.len(), "batch count")?);
        tail.put_u32_le(crc);
        tail.put_slice(INDEX_MAGIC);
        self.chunks.push(Bytes::from(tail));
        Ok(Finished { chunks: self.chunks, index: self.index, batch_chunks: self.batch_chunks })
    }

    /// Like [`Self::finish_chunks`], with the segment in one buffer.
    pub fn finish(self) -> Result<(Bytes, Vec<BatchMeta>)> {
        let (chunks, index) = self.finish_chunks()?;
        Ok((Bytes::from(chunks.concat()), index))
    }
}

fn to_u32(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::encode("segment", format!("{what} exceeds 4 GiB")))
}

thread_local! {
    /// One compression context per thread, kept: making one per batch
    /// allocates (and faults in) its tables every time.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    /// Records encoded before compression, per thread.
    static ENCODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A batch or frame compressed, per thread, before it is copied out at
    /// its size.
    static PACKED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch buffers are kept up to this size each (two per thread that
/// compresses, beside its compression context); larger work gets buffers
/// of its own. A request's records are encoded and compressed in buffers
/// that are hot and already mapped: fresh ones of ~100 KiB cost page
/// faults, cold cache lines and a reallocation to shrink each time (in the
/// agent under a produce load, a third of what compressing a frame cost
/// beyond zstd itself; docs/benchmarks.md).
const SCRATCH_MAX_BYTES: usize = 1 << 20;

/// Runs `f` with `slot`'s buffer, empty and with room for `capacity`, or
/// with a fresh one when `capacity` is beyond [`SCRATCH_MAX_BYTES`].
fn with_scratch<R>(slot: &'static LocalKey<RefCell<Vec<u8>>>, capacity: usize, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    if capacity > SCRATCH_MAX_BYTES {
        return f(&mut Vec::with_capacity(capacity));
    }
    slot.with_borrow_mut(|buf| {
        buf.clear();
        // Exact: doubling could keep more than the bound.
        buf.reserve_exact(capacity);
        f(buf)
    })
}

/// What `fill` writes into an empty buffer of `capacity`, in a buffer of
/// its own size (held until its commit): copied out of the thread's
/// scratch, or, beyond [`SCRATCH_MAX_BYTES`], the fresh buffer itself,
/// shrunk in place.
fn packed(capacity: usize, fill: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<Vec<u8>> {
    if capacity > SCRATCH_MAX_BYTES {
        let mut out = Vec::with_capacity(capacity);
        fill(&mut out)?;
        out.shrink_to_fit();
        return Ok(out);
    }
    with_scratch(&PACKED, capacity, |out| {
        fill(out)?;
        Ok(out.to_vec())
    })
}

/// As [`packed`], but copied out of the scratch, when it is at least
/// [`aligned::MIN_FRAME`] long, into memory that starts at an
/// [`aligned::BLOCK`] boundary, so that a store writing past the page cache
/// can write it from there ([`SegmentBuilder::aligned`]). Beyond the
/// scratch's size it is not moved: such a frame is copied by the store.
fn packed_aligned(capacity: usize, fill: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<Bytes> {
    if capacity > SCRATCH_MAX_BYTES {
        return packed(capacity, fill).map(Bytes::from);
    }
    with_scratch(&PACKED, capacity, |out| {
        fill(out)?;
        Ok(if out.len() >= aligned::MIN_FRAME { aligned::copy(out) } else { Bytes::copy_from_slice(out) })
    })
}

/// Records compressed ahead of the batch they will be part of, as one zstd
/// frame. A writer compresses a large run of records (a request's, for one
/// partition) while they are fresh in the cache of the thread that parsed
/// them, as a Kafka producer compresses its batches, instead of all of a
/// flush's records at once, long after.
#[derive(Clone, Debug)]
pub struct Frame {
    bytes: Bytes,
    /// CRC32C of `bytes`, taken while they were hot (see [`crate::crc`]).
    crc: u32,
    raw_len: usize,
    records: usize,
    max_timestamp: i64,
}

impl Frame {
    /// Compresses `records` (not empty) into one frame.
    pub fn compress(records: &[Record]) -> Result<Self> {
        if records.is_empty() {
            return Err(Error::encode("segment", "empty frame"));
        }
        let raw_len = encoded_records_len(records);
        let mut crc = 0;
        let bytes = with_scratch(&ENCODED, raw_len, |raw| {
            encode_records(records, raw)?;
            packed_aligned(zstd::zstd_safe::compress_bound(raw_len), |out| {
                debug_assert!(out.is_empty(), "the CRC below covers all of `out`");
                compress_into(raw, out)?;
                crc = crc32c::crc32c(out);
                Ok(())
            })
        })?;
        Ok(Self { bytes, crc, raw_len, records: records.len(), max_timestamp: max_timestamp(records) })
    }

    /// Compressed bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// How many records it holds.
    pub fn records(&self) -> usize {
        self.records
    }
}

/// Bytes of `records` before compression, as a batch's payload holds them.
pub fn encoded_records_len(records: &[Record]) -> usize {
    records.iter().map(encoded_len).sum()
}

/// Appends `records`, encoded, to `raw` (which has room for them: a buffer
/// one record short would double, and copy, at its end).
fn encode_records(records: &[Record], raw: &mut Vec<u8>) -> Result<()> {
    let start = raw.len();
    for r in records {
        raw.put_i64_le(r.timestamp);
        match &r.key {
            Some(k) => {
                raw.put_i32_le(i32::try_from(k.len()).map_err(|_| Error::encode("record", "key too large"))?);
                raw.put_slice(k);
            }
            None => raw.put_i32_le(-1),
        }
        raw.put_u32_le(to_u32(r.value.len(), "value")?);
        raw.put_slice(&r.value);
        raw.put_u32_le(to_u32(r.headers.len(), "header count")?);
        for (name, value) in &r.headers {
            raw.put_u32_le(to_u32(name.len(), "header name")?);
            raw.put_slice(name.as_bytes());
            raw.put_u32_le(to_u32(value.len(), "header value")?);
            raw.put_slice(value);
        }
    }
    debug_assert_eq!(raw.len() - start, encoded_records_len(records));
    Ok(())
}

/// One compression in this many, on each thread, is timed on the
/// thread's CPU clock (a system call, ~0.75 µs on this VM) and counted this
/// many times: timing every one would cost ~0.4% of a loaded agent's CPU.
const COMPRESSION_TIMED_EVERY: u64 = 8;
static COMPRESSION_CPU_NS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's compressions so far, and its estimated CPU time in them.
    static THREAD_COMPRESSIONS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// CPU time this process has spent in zstd compressing record batches and
/// frames (not snapshots), in microseconds, estimated from one compression
/// in [`COMPRESSION_TIMED_EVERY`] on each thread. Against the process's CPU
/// time it is the share compression takes (docs/benchmarks.md). `None`
/// where a thread's CPU time cannot be read (not Linux).
pub fn compression_cpu_micros() -> Option<u64> {
    cfg!(target_os = "linux").then(|| COMPRESSION_CPU_NS.load(Ordering::Relaxed) / 1000)
}

/// The same, for this thread's compressions only.
pub fn thread_compression_cpu_micros() -> Option<u64> {
    cfg!(target_os = "linux").then(|| THREAD_COMPRESSIONS.get().1 / 1000)
}

/// Appends `raw`, compressed as one frame, to `out` (which has room for it).
fn compress_into(raw: &[u8], out: &mut Vec<u8>) -> Result<usize> {
    let (calls, spent) = THREAD_COMPRESSIONS.get();
    let start = if calls.is_multiple_of(COMPRESSION_TIMED_EVERY) { cpu_time::thread_ns() } else { None };
    let written = compress_frame(raw, out);
    let counted =
        start.zip(cpu_time::thread_ns()).map_or(0, |(start, end)| end.saturating_sub(start) * COMPRESSION_TIMED_EVERY);
    THREAD_COMPRESSIONS.set((calls + 1, spent + counted));
    if counted > 0 {
        COMPRESSION_CPU_NS.fetch_add(counted, Ordering::Relaxed);
    }
    written
}

fn compress_frame(raw: &[u8], out: &mut Vec<u8>) -> Result<usize> {
    let mut cursor = std::io::Cursor::new(out);
    cursor.set_position(cursor.get_ref().len() as u64);
    COMPRESSOR
        .with_borrow_mut(|c| match c {
            Some(c) => c.compress_to_buffer(raw, &mut cursor),
            None => zstd::bulk::Compressor::new(ZSTD_LEVEL).and_then(|mut fresh| {
                let written = fresh.compress_to_buffer(raw, &mut cursor);
                *c = Some(fresh);
                written
            }),
        })
        .map_err(|e| Error::encode("batch", e))
}

/// Fills a batch header, all but its CRC.
fn write_header(mut header: &mut [u8], payload_len: usize, count: usize, max_ts: i64, raw_len: usize) -> Result<()> {
    header.put_u32_le(to_u32(payload_len, "payload")?);
    header.put_u32_le(0); // crc, filled by the caller
    header.put_u32_le(to_u32(count, "record count")?);
    header.put_slice(&[CODEC_ZSTD, 0, 0, 0]);
    header.put_u32_le(to_u32(raw_len, "batch")?);
    header.put_i64_le(max_ts);
    Ok(())
}

fn max_timestamp(records: &[Record]) -> i64 {
    records.iter().map(|r| r.timestamp).max().unwrap_or(i64::MIN)
}

fn encode_batch(records: &[Record]) -> Result<Vec<u8>> {
    if records.is_empty() {
        return Err(Error::encode("segment", "empty batch"));
    }
    let raw_len = encoded_records_len(records);
    with_scratch(&ENCODED, raw_len, |raw| {
        encode_records(records, raw)?;
        // Compressed after room for the header, so header and payload are
        // checksummed and kept in one piece.
        packed(BATCH_HEADER_LEN + zstd::zstd_safe::compress_bound(raw_len), |out| {
            out.resize(BATCH_HEADER_LEN, 0);
            let payload_len = compress_into(raw, out)?;
            debug_assert_eq!(out.len(), BATCH_HEADER_LEN + payload_len);
            write_header(&mut out[..BATCH_HEADER_LEN], payload_len, records.len(), max_timestamp(records), raw_len)?;
            let crc = crc32c::crc32c(&out[8..]);
            out[4..8].copy_from_slice(&crc.to_le_bytes());
            Ok(())
        })
    })
}

/// Bytes `encode_batch` writes for `r` before compression.
fn encoded_len(r: &Record) -> usize {
    let headers: usize = r.headers.iter().map(|(name, value)| 8 + name.len() + value.len()).sum();
    8 + 4 + r.key.as_ref().map_or(0, Bytes::len) + 4 + r.value.len() + 4 + headers
}

/// How many zstd frames of records the payload of `batch` (exactly its
/// byte range) is made of: one as the compactor writes it, more where an
/// agent compressed large requests as they arrived. Skippable frames
/// (fillers) are not counted; the checksum is not checked.
pub fn batch_frames(batch: &[u8]) -> Result<usize> {
    frame_positions(batch).map(|at| at.len())
}

/// Where in `batch` (exactly its byte range) each of its zstd frames of
/// records starts, fillers passed over.
pub fn frame_positions(batch: &[u8]) -> Result<Vec<usize>> {
    let mut payload =
        batch.get(BATCH_HEADER_LEN..).ok_or_else(|| Error::corrupt("batch", "shorter than its header"))?;
    let (mut positions, mut at) = (Vec::new(), BATCH_HEADER_LEN);
    while !payload.is_empty() {
        let len = zstd::zstd_safe::find_frame_compressed_size(payload).map_err(|e| Error::corrupt("batch", e))?;
        if !aligned::is_skippable(payload) {
            positions.push(at);
        }
        payload = &payload[len..];
        at += len;
    }
    Ok(positions)
}

/// Decodes one batch from exactly its byte range (as fetched by a ranged GET).
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Record>> {
    let bad = |reason: &str| Error::corrupt("batch", reason);
    if bytes.len() < BATCH_HEADER_LEN {
        return Err(bad("shorter than its header"));
    }
    let mut h = &bytes[..BATCH_HEADER_LEN];
    let payload_len = h.get_u32_le() as usize;
    let crc = h.get_u32_le();
    let count = h.get_u32_le();
    let codec = h.get_u8();
    h.advance(3);
    let raw_len = h.get_u32_le() as usize;
    if bytes.len() != BATCH_HEADER_LEN + payload_len {
        return Err(bad("length does not match its header"));
    }
    if crc32c::crc32c(&bytes[8..]) != crc {
        return Err(bad("CRC32C mismatch"));
    }
    if codec != CODEC_ZSTD {
        return Err(bad("unknown codec"));
    }
    // Lengths in the header are checked against what the bytes can hold
    // before anything is allocated for them: a header that passes its CRC
    // can still lie (a bug, or a hostile writer), and must not make the
    // reader reserve gigabytes.
    if count as usize > raw_len / MIN_RECORD_LEN {
        return Err(bad("more records than the uncompressed length can hold"));
    }
    let raw = decompress(&bytes[BATCH_HEADER_LEN..], raw_len)?;
    if raw.len() != raw_len {
        return Err(bad("uncompressed length does not match its header"));
    }
    let raw = Bytes::from(raw);
    let mut cur = raw.clone();
    let mut records = Vec::with_capacity(count as usize);
    for _ in 0..count {
        records.push(decode_record(&raw, &mut cur).ok_or_else(|| bad("truncated record"))?);
    }
    if cur.has_remaining() {
        return Err(bad("trailing bytes after the last record"));
    }
    Ok(records)
}

/// Decodes one batch from the chunks that hold exactly its bytes, in order
/// (as [`Finished::batch_chunks`] names them).
pub fn decode_batch_chunks(chunks: &[Bytes]) -> Result<Vec<Record>> {
    match chunks {
        [one] => decode_batch(one),
        many => decode_batch(&many.concat()),
    }
}

/// The smallest encoded record: timestamp, key length, value length and
/// header count, with every field empty.
const MIN_RECORD_LEN: usize = 20;

/// The smallest index entry: an empty topic name and the fixed fields.
const MIN_INDEX_ENTRY_LEN: usize = 30;

/// Decompresses at most `limit` bytes (one more, to tell an overlong payload),
/// growing the buffer with the output rather than reserving `limit` up front.
fn decompress(payload: &[u8], limit: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let decoder = zstd::stream::read::Decoder::with_buffer(payload).map_err(|e| Error::corrupt("batch", e))?;
    let mut raw = Vec::with_capacity(limit.min(payload.len().saturating_mul(8)));
    decoder.take(limit as u64 + 1).read_to_end(&mut raw).map_err(|e| Error::corrupt("batch", e))?;
    // Records slice this buffer for as long as they are cached, and the
    // cache weighs them by their length: hold no more than that.
    raw.shrink_to_fit();
    Ok(raw)
}

/// Reads one record from `cur`, slicing byte fields out of `raw` without copying.
fn decode_record(raw: &Bytes, cur: &mut Bytes) -> Option<Record> {
    fn take(raw: &Bytes, cur: &mut Bytes, len: usize) -> Option<Bytes> {
        if cur.remaining() < len {
            return None;
        }
        let start = raw.len() - cur.remaining();
        cur.advance(len);
        Some(raw.slice(start..start + len))
    }
    fn u32_len(cur: &mut Bytes) -> Option<usize> {
        (cur.remaining() >= 4).then(|| cur.get_u32_le() as usize)
    }
    if cur.remaining() < 12 {
        return None;
    }
    let timestamp = cur.get_i64_le();
    let key_len = cur.get_i32_le();
    let key = if key_len < 0 { None } else { Some(take(raw, cur, key_len as usize)?) };
    let value_len = u32_len(cur)?;
    let value = take(raw, cur, value_len)?;
    let header_count = u32_len(cur)?;
    let mut headers = Vec::with_capacity(header_count.min(1024));
    for _ in 0..header_count {
        let name_len = u32_len(cur)?;
        let name = String::from_utf8(take(raw, cur, name_len)?.to_vec()).ok()?;
        let value_len = u32_len(cur)?;
        headers.push((name, take(raw, cur, value_len)?));
    }
    Some(Record { key, value, timestamp, headers })
}

/// Reads the index of a whole segment (for the compactor and for recovery tools).
pub fn read_index(segment: &[u8]) -> Result<Vec<BatchMeta>> {
    let bad = |reason: &str| Error::corrupt("segment", reason);
    if segment.len() < MAGIC.len() + TRAILER_LEN || &segment[..MAGIC.len()] != MAGIC {
        return Err(bad("missing FLOESEG1 header"));
    }
    let mut t = &segment[segment.len() - TRAILER_LEN..];
    let index_len = t.get_u32_le() as usize;
    let count = t.get_u32_le();
    let crc = t.get_u32_le();
    if t != INDEX_MAGIC {
        return Err(bad("missing index trailer"));
    }
    let index_end = segment.len() - TRAILER_LEN;
    let index_start = index_end
        .checked_sub(index_len)
        .filter(|s| *s >= MAGIC.len())
        .ok_or_else(|| bad("index length out of bounds"))?;
    let mut idx = &segment[index_start..index_end];
    if crc32c::crc32c(idx) != crc {
        return Err(bad("index CRC32C mismatch"));
    }
    if count as usize > idx.len() / MIN_INDEX_ENTRY_LEN {
        return Err(bad("more batches than the index can hold"));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        if idx.remaining() < 2 {
            return Err(bad("truncated index"));
        }
        let topic_len = idx.get_u16_le() as usize;
        if idx.remaining() < topic_len + 28 {
            return Err(bad("truncated index"));
        }
        let topic = std::str::from_utf8(&idx[..topic_len]).map_err(|_| bad("topic is not UTF-8"))?.to_owned();
        idx.advance(topic_len);
        out.push(BatchMeta {
            topic,
            partition: idx.get_u32_le(),
            pos: idx.get_u64_le(),
            len: idx.get_u32_le(),
            records: idx.get_u32_le(),
            max_timestamp: idx.get_i64_le(),
            producer: None,
            topic_id: None,
        });
    }
    if idx.has_remaining() {
        return Err(bad("trailing bytes in index"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)),
            proptest::collection::vec(any::<u8>(), 0..256),
            any::<i64>(),
            proptest::collection::vec(("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..16)), 0..4),
        )
            .prop_map(|(key, value, timestamp, headers)| Record {
                key: key.map(Bytes::from),
                value: Bytes::from(value),
                timestamp,
                headers: headers.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect(),
            })
    }

    proptest! {
        #[test]
        fn segment_round_trips(batches in proptest::collection::vec(
            ("[a-z]{1,12}", any::<u32>(), proptest::collection::vec(arb_record(), 1..20)), 1..6)) {
            let mut b = SegmentBuilder::new();
            for (topic, partition, records) in &batches {
                b.add_batch(topic, *partition, records).unwrap();
            }
            let (bytes, metas) = b.finish().unwrap();
            prop_assert_eq!(read_index(&bytes).unwrap(), metas.clone());
            for ((topic, partition, records), meta) in batches.iter().zip(&metas) {
                prop_assert_eq!(&meta.topic, topic);
                prop_assert_eq!(meta.partition, *partition);
                prop_assert_eq!(meta.records as usize, records.len());
                let r = meta.range();
                let decoded = decode_batch(&bytes[r.start as usize..r.end as usize]).unwrap();
                prop_assert_eq!(&decoded, records);
            }
        }

        /// A batch of which some runs were compressed ahead, as their own
        /// frames, reads back as the same records as one compressed at once.
        #[test]
        fn a_batch_of_frames_reads_back_whole(
            records in proptest::collection::vec(arb_record(), 1..40),
            cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..6),
        ) {
            let mut cuts: Vec<(usize, bool)> = cuts.into_iter().map(|(i, ahead)| (i.index(records.len() + 1), ahead)).collect();
            cuts.sort();
            let mut frames = Vec::new();
            let mut start = 0;
            for (end, ahead) in cuts.into_iter().chain([(records.len(), true)]) {
                if ahead && end > start {
                    frames.push((start, Frame::compress(&records[start..end]).unwrap()));
                }
                start = start.max(end);
            }
            let mut b = SegmentBuilder::new();
            b.add_batch_with_frames("t", 3, &records, &frames).unwrap();
            let Finished { chunks, index: metas, batch_chunks } = b.finish_parts().unwrap();
            let bytes = chunks.concat();
            prop_assert_eq!(read_index(&bytes).unwrap(), metas.clone());
            prop_assert_eq!(metas[0].records as usize, records.len());
            prop_assert_eq!(metas[0].max_timestamp, max_timestamp(&records));
            let r = metas[0].range();
            let batch = &bytes[r.start as usize..r.end as usize];
            prop_assert_eq!(decode_batch(batch).unwrap(), records.clone());
            // Every frame given is in the payload as it was.
            prop_assert!(frames.len() <= batch_frames(batch).unwrap());
            // The batch's own chunks are exactly its bytes.
            prop_assert_eq!(decode_batch_chunks(&chunks[batch_chunks[0].clone()]).unwrap(), records.clone());
        }

        /// Runs given as frames and records, empty runs among them, make
        /// the batch their records make in order, chunk by chunk.
        #[test]
        fn a_batch_of_runs_holds_its_runs_in_order(
            runs in proptest::collection::vec((proptest::collection::vec(arb_record(), 0..8), any::<bool>()), 1..6),
        ) {
            let records: Vec<Record> = runs.iter().flat_map(|(r, _)| r.clone()).collect();
            prop_assume!(!records.is_empty());
            let frames: Vec<Option<Frame>> =
                runs.iter().map(|(r, ahead)| (*ahead && !r.is_empty()).then(|| Frame::compress(r).unwrap())).collect();
            let given: Vec<Run<'_>> = runs
                .iter()
                .zip(&frames)
                .map(|((r, _), frame)| frame.as_ref().map_or(Run::Records(r), Run::Frame))
                .collect();
            let mut b = SegmentBuilder::new();
            b.add_batch("before", 0, &records[..1]).unwrap();
            b.add_batch_runs("t", 1, &given).unwrap();
            let Finished { chunks, index, batch_chunks } = b.finish_parts().unwrap();
            prop_assert_eq!(index.len(), 2);
            prop_assert_eq!(index[1].records as usize, records.len());
            prop_assert_eq!(index[1].max_timestamp, max_timestamp(&records));
            let bytes = chunks.concat();
            for (meta, range) in index.iter().zip(&batch_chunks) {
                let own: Vec<u8> = chunks[range.clone()].concat();
                prop_assert_eq!(&own[..], &bytes[meta.range().start as usize..meta.range().end as usize]);
            }
            prop_assert_eq!(decode_batch_chunks(&chunks[batch_chunks[1].clone()]).unwrap(), records);
        }

        /// An aligned builder's segment holds the same batches, read back
        /// the same, with every frame at a block boundary of the segment
        /// and of memory, so that a direct write can take it in place.
        #[test]
        fn an_aligned_segment_reads_back_the_same_with_its_frames_at_block_boundaries(
            batches in proptest::collection::vec(
                proptest::collection::vec((proptest::collection::vec(arb_record(), 0..8), any::<bool>(), any::<bool>()), 1..4), 1..4),
        ) {
            // Runs of small records, each followed (or not) by one large
            // enough to be placed, compressed ahead or at the build.
            let big = crate::testing::letter_records(5, 12, 1024);
            let batches: Vec<Vec<(Vec<Record>, bool)>> = batches.into_iter().map(|runs| runs.into_iter()
                .flat_map(|(r, ahead, large)| {
                    let large = large.then(|| (big.clone(), ahead));
                    std::iter::once((r, ahead)).chain(large)
                }).collect()).collect();
            let frames: Vec<Vec<Option<Frame>>> = batches.iter().map(|runs| runs.iter()
                .map(|(r, ahead)| (*ahead && !r.is_empty()).then(|| Frame::compress(r).unwrap())).collect()).collect();
            let build = |mut b: SegmentBuilder| {
                for (i, (runs, frames)) in batches.iter().zip(&frames).enumerate() {
                    let given: Vec<Run<'_>> = runs.iter().zip(frames)
                        .map(|((r, _), frame)| frame.as_ref().map_or(Run::Records(r), Run::Frame)).collect();
                    if runs.iter().any(|(r, _)| !r.is_empty()) {
                        b.add_batch_runs("t", i as u32, &given).unwrap();
                    }
                }
                b.finish_parts().unwrap()
            };
            let (plain, aligned) = (build(SegmentBuilder::new()), build(SegmentBuilder::aligned()));
            let (plain_bytes, aligned_bytes) = (plain.chunks.concat(), aligned.chunks.concat());
            prop_assert_eq!(read_index(&aligned_bytes).unwrap(), aligned.index.clone());
            prop_assert_eq!(plain.index.len(), aligned.index.len());
            for (p, a) in plain.index.iter().zip(&aligned.index) {
                prop_assert_eq!((&p.topic, p.partition, p.records, p.max_timestamp), (&a.topic, a.partition, a.records, a.max_timestamp));
                let batch = |bytes: &[u8], m: &BatchMeta| bytes[m.range().start as usize..m.range().end as usize].to_vec();
                let (p, a) = (batch(&plain_bytes, p), batch(&aligned_bytes, a));
                prop_assert_eq!(decode_batch(&a).unwrap(), decode_batch(&p).unwrap());
                prop_assert_eq!(batch_frames(&a).unwrap(), batch_frames(&p).unwrap());
            }
            let (mut pos, mut placed) = (0, 0);
            for chunk in &aligned.chunks {
                if chunk.len() >= aligned::MIN_FRAME && chunk.starts_with(&zstd::zstd_safe::MAGICNUMBER.to_le_bytes()) {
                    prop_assert_eq!(pos % aligned::BLOCK, 0, "a frame at {}", pos);
                    prop_assert!(aligned::is_aligned(chunk), "a frame's memory is not aligned");
                    placed += 1;
                }
                pos += chunk.len();
            }
            let large_runs = batches.iter().flatten().filter(|(r, _)| r.len() == big.len() && r == &big).count();
            prop_assert!(placed >= large_runs, "{} frames placed, {} large runs", placed, large_runs);
        }

        #[test]
        fn any_flipped_bit_is_detected(flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let rec = Record { key: Some(Bytes::from_static(b"k")), value: Bytes::from_static(b"hello world"), timestamp: 1, headers: vec![] };
            let mut b = SegmentBuilder::new();
            b.add_batch("t", 0, &[rec]).unwrap();
            let (bytes, metas) = b.finish().unwrap();
            let r = metas[0].range();
            let mut batch = bytes[r.start as usize..r.end as usize].to_vec();
            let i = flip.index(batch.len());
            batch[i] ^= 1 << bit;
            prop_assert!(decode_batch(&batch).is_err());
        }
    }

    /// Frames of a few KiB and more go to block boundaries; smaller ones
    /// stay where they fall, with no filler before them.
    #[test]
    fn only_frames_worth_it_are_moved_to_block_boundaries() {
        let records = |n: usize, len: usize| crate::testing::letter_records(n as u64, n, len);
        let (big, tiny, more) = (records(100, 1024), records(1, 10), records(30, 1000));
        let (big_frame, tiny_frame) = (Frame::compress(&big).unwrap(), Frame::compress(&tiny).unwrap());
        let mut b = SegmentBuilder::aligned();
        b.add_batch_runs("t", 0, &[Run::Frame(&tiny_frame), Run::Frame(&big_frame), Run::Records(&more)]).unwrap();
        b.add_batch_runs("t", 1, &[Run::Records(&tiny)]).unwrap();
        b.add_batch_runs("t", 2, &[Run::Frame(&big_frame)]).unwrap();
        let Finished { chunks, index, .. } = b.finish_parts().unwrap();
        let bytes = chunks.concat();
        let (mut pos, mut moved, mut fillers) = (0, 0, 0);
        for (i, chunk) in chunks.iter().enumerate() {
            if aligned::is_skippable(chunk) {
                assert!(
                    chunks[i + 1].len() >= aligned::MIN_FRAME,
                    "a filler before a frame of {}",
                    chunks[i + 1].len()
                );
                fillers += 1;
            } else if chunk.starts_with(&zstd::zstd_safe::MAGICNUMBER.to_le_bytes())
                && chunk.len() >= aligned::MIN_FRAME
            {
                assert_eq!(pos % aligned::BLOCK, 0, "a frame of {} bytes at {pos}", chunk.len());
                assert!(aligned::is_aligned(chunk));
                moved += 1;
            }
            pos += chunk.len();
        }
        // The big frame twice and the 30 KB run: a filler before each at most, none before the tiny ones.
        assert_eq!(moved, 3);
        assert!(fillers <= 3, "{fillers} fillers");
        let batch = |i: usize| &bytes[index[i].range().start as usize..index[i].range().end as usize];
        assert_eq!(decode_batch(batch(0)).unwrap(), [&tiny[..], &big, &more].concat());
        assert_eq!(decode_batch(batch(1)).unwrap(), tiny);
        assert_eq!(decode_batch(batch(2)).unwrap(), big);
        assert_eq!(batch_frames(batch(0)).unwrap(), 3);
    }

    /// Compression's CPU time is counted, from a sample of compressions,
    /// where a thread's CPU clock can be read.
    #[test]
    fn compressing_counts_its_cpu_time() {
        let before = compression_cpu_micros();
        assert_eq!(before.is_some(), cfg!(target_os = "linux"));
        let records: Vec<Record> = (0..64)
            .map(|i| Record {
                key: None,
                value: Bytes::from(vec![b'a' + (i % 26) as u8; 4096]),
                timestamp: 1,
                headers: vec![],
            })
            .collect();
        // Enough that several are timed (one in eight on this thread).
        for _ in 0..COMPRESSION_TIMED_EVERY * 8 {
            Frame::compress(&records).unwrap();
        }
        if let (Some(before), Some(after)) = (before, compression_cpu_micros()) {
            assert!(after > before, "{before} -> {after}");
        }
        // This thread's own count: all of it here, none of another thread's.
        let mine = thread_compression_cpu_micros();
        assert_eq!(mine.is_some_and(|us| us > 0), cfg!(target_os = "linux"));
        let other = std::thread::spawn(thread_compression_cpu_micros).join().unwrap();
        assert_eq!(other, cfg!(target_os = "linux").then_some(0));
    }

    /// The thread's scratch buffers are reused: what a larger batch left in
    /// them never reaches a smaller one, and work beyond their size gets
    /// buffers of its own and leaves them as they were.
    #[test]
    fn batches_and_frames_after_larger_ones_hold_only_their_own_records() {
        let record =
            |n: usize, fill: u8| Record { key: None, value: Bytes::from(vec![fill; n]), timestamp: 7, headers: vec![] };
        let huge = vec![record(SCRATCH_MAX_BYTES + 1, b'h')];
        let large: Vec<Record> = (0..150).map(|i| record(4096, b'a' + (i % 26) as u8)).collect();
        // Larger than `large` (over half the bound), by less than twice: a
        // buffer grown by doubling would go beyond the bound.
        let larger: Vec<Record> = (0..175).map(|i| record(4096, b'A' + (i % 26) as u8)).collect();
        let small = vec![record(3, b's')];
        let kept = || (ENCODED.with_borrow(Vec::capacity), PACKED.with_borrow(Vec::capacity));
        let mut b = SegmentBuilder::new();
        let mut add = |records: &Vec<Record>| {
            b.add_batch("t", 0, records).unwrap();
            let frame = Frame::compress(records).unwrap();
            b.add_batch_with_frames("t", 1, records, &[(0, frame)]).unwrap();
        };
        add(&large);
        add(&small);
        let after_large = kept();
        let encoded = encoded_records_len(&large);
        let kept_enough = after_large.0 >= encoded && after_large.1 >= zstd::zstd_safe::compress_bound(encoded);
        assert!(kept_enough, "both kept for reuse: {after_large:?}");
        add(&huge);
        assert_eq!(kept(), after_large, "work beyond the bound leaves the scratch alone");
        add(&small);
        add(&larger);
        let (encoded, packed) = kept();
        assert!(encoded.max(packed) <= SCRATCH_MAX_BYTES, "scratch kept {encoded} and {packed} bytes");
        let (bytes, metas) = b.finish().unwrap();
        let expected = [&large, &large, &small, &small, &huge, &huge, &small, &small, &larger, &larger];
        assert_eq!(metas.len(), expected.len());
        for (meta, records) in metas.iter().zip(expected) {
            let r = meta.range();
            assert_eq!(&decode_batch(&bytes[r.start as usize..r.end as usize]).unwrap(), records);
        }
    }

    #[test]
    fn frames_out_of_order_are_refused() {
        let rec = Record { key: None, value: Bytes::from_static(b"v"), timestamp: 0, headers: vec![] };
        let records = vec![rec; 4];
        let frame = Frame::compress(&records[..2]).unwrap();
        let mut b = SegmentBuilder::new();
        assert!(b.add_batch_with_frames("t", 0, &records, &[(1, frame.clone()), (0, frame.clone())]).is_err());
        assert!(b.add_batch_with_frames("t", 0, &records, &[(3, frame)]).is_err());
        assert!(b.is_empty());
    }

    #[test]
    fn empty_batch_is_refused() {
        assert!(SegmentBuilder::new().add_batch("t", 0, &[]).is_err());
        let mut b = SegmentBuilder::new();
        assert!(b.add_batch_runs("t", 0, &[]).is_err());
        assert!(b.add_batch_runs("t", 0, &[Run::Records(&[]), Run::Records(&[])]).is_err());
        assert!(b.is_empty());
    }

    /// Found by `cargo fuzz` (segment_batch): a batch whose header claims
    /// 2.5 billion records, with a matching CRC, made the reader reserve
    /// memory for all of them.
    #[test]
    fn fuzz_a_record_count_the_payload_cannot_hold_is_refused_before_allocating() {
        let mut batch: Vec<u8> = vec![
            82, 10, 108, 108, 108, 36, 108, 108, 108, 151, 151, 151, 1, 0, 0, 0, 10, 108, 105, 108, 108, 108, 108, 108,
            255, 108, 108, 108, 1, 0, 0, 0, 108,
        ];
        let payload_len = (batch.len() - BATCH_HEADER_LEN) as u32;
        batch[0..4].copy_from_slice(&payload_len.to_le_bytes());
        reseal(&mut batch);
        let e = decode_batch(&batch).unwrap_err().to_string();
        assert!(e.contains("more records than the uncompressed length can hold"), "{e}");
    }

    /// A header that claims a 4 GiB payload behind a few bytes of zstd is
    /// refused (that nothing near 4 GiB is reserved for it is what the fuzz
    /// target's malloc limit checks).
    #[test]
    fn a_lying_uncompressed_length_is_refused() {
        let mut batch = one_batch();
        batch[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut batch);
        assert!(matches!(decode_batch(&batch), Err(Error::Corrupt { .. })));
    }

    /// The index's batch count is checked against the index's length.
    #[test]
    fn an_index_count_the_index_cannot_hold_is_refused() {
        let mut segment = MAGIC.to_vec();
        segment.extend_from_slice(&0u32.to_le_bytes());
        segment.extend_from_slice(&u32::MAX.to_le_bytes());
        segment.extend_from_slice(&crc32c::crc32c(&[]).to_le_bytes());
        segment.extend_from_slice(INDEX_MAGIC);
        let e = read_index(&segment).unwrap_err().to_string();
        assert!(e.contains("more batches than the index can hold"), "{e}");
    }

    #[test]
    fn truncated_batch_is_refused() {
        let batch = one_batch();
        assert!(decode_batch(&batch[..batch.len() - 1]).is_err());
    }

    /// The bytes of a batch of one small record, as a ranged GET returns them.
    fn one_batch() -> Vec<u8> {
        let rec = Record { key: None, value: Bytes::from_static(b"v"), timestamp: 0, headers: vec![] };
        let mut b = SegmentBuilder::new();
        b.add_batch("t", 0, &[rec]).unwrap();
        let (bytes, metas) = b.finish().unwrap();
        let r = metas[0].range();
        bytes[r.start as usize..r.end as usize].to_vec()
    }

    /// Sets a batch's CRC32C to match its (altered) bytes, as a writer that
    /// lies would.
    fn reseal(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[8..]);
        batch[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}
