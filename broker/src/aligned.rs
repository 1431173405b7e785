//! Bytes laid out for a store that writes past the page cache (`O_DIRECT`,
//! [`crate::direct`]): such a write must start at a block boundary of the
//! file, from memory aligned to one, and cover whole blocks. A segment built
//! with [`crate::segment::SegmentBuilder::aligned`] holds its frames in
//! memory that starts at a [`BLOCK`] boundary, each at a file offset that is
//! one, so the store writes them from where they lie instead of copying
//! every byte of the segment into a buffer of its own first.
//!
//! The filler that moves a frame to its boundary is a zstd skippable frame
//! (RFC 8878, 3.1.2): a payload is a sequence of zstd frames, and every zstd
//! decoder passes over skippable ones, so readers of the format need no
//! change.

use bytes::Bytes;
use zstd::zstd_safe::{MAGIC_SKIPPABLE_MASK, MAGIC_SKIPPABLE_START};

/// The block size and memory alignment frames are placed at: the logical
/// block size and DMA alignment of nearly every disk (NVMe, virtio, SATA).
/// Where a device needs more (4 KiB-sector disks), the store copies instead.
pub const BLOCK: usize = 512;

/// Frames shorter than this are left where they fall: a filler (up to a
/// block and 7 bytes) and the spare room of an aligned copy (up to a block)
/// would cost up to a quarter of one this size, for little written in place.
pub const MIN_FRAME: usize = 4096;

/// A skippable frame's bytes before its content: its magic number and the
/// content's length.
const SKIPPABLE_HEADER_LEN: usize = 8;

/// `bytes`, copied into memory that starts at a [`BLOCK`] boundary.
pub fn copy(bytes: &[u8]) -> Bytes {
    let mut buffer = Vec::<u8>::with_capacity(bytes.len() + BLOCK - 1);
    // `align_offset` may decline (`usize::MAX`); then the copy is just not aligned.
    let skip = buffer.as_ptr().align_offset(BLOCK).min(BLOCK - 1);
    buffer.resize(skip, 0);
    buffer.extend_from_slice(bytes);
    Bytes::from(buffer).slice(skip..)
}

/// Whether `bytes` start at a [`BLOCK`] boundary in memory.
pub fn is_aligned(bytes: &[u8]) -> bool {
    bytes.as_ptr().align_offset(BLOCK) == 0
}

/// The skippable frame that moves what follows it from segment offset `pos`
/// to the next [`BLOCK`] boundary (`None` when `pos` is one). It is at
/// least its header long, so it may reach the boundary after that.
pub fn filler_before(pos: usize) -> Option<Vec<u8>> {
    let gap = (BLOCK - pos % BLOCK) % BLOCK;
    if gap == 0 {
        return None;
    }
    let len = if gap < SKIPPABLE_HEADER_LEN { gap + BLOCK } else { gap };
    let mut filler = vec![0; len];
    filler[..4].copy_from_slice(&MAGIC_SKIPPABLE_START.to_le_bytes());
    let content = u32::try_from(len - SKIPPABLE_HEADER_LEN).unwrap_or_else(|_| unreachable!("under two blocks"));
    filler[4..8].copy_from_slice(&content.to_le_bytes());
    Some(filler)
}

/// Whether the zstd frame at the start of `frame` is a skippable one.
pub fn is_skippable(frame: &[u8]) -> bool {
    frame.get(..4).is_some_and(|magic| {
        u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]) & MAGIC_SKIPPABLE_MASK == MAGIC_SKIPPABLE_START
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_starts_at_a_block_boundary_and_holds_the_bytes() {
        for len in [0, 1, 511, 512, 513, 100_000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let copied = copy(&bytes);
            assert!(is_aligned(&copied), "{len} bytes");
            assert_eq!(&copied[..], &bytes[..]);
        }
    }

    #[test]
    fn a_filler_reaches_the_next_boundary_and_zstd_skips_it() {
        let frame = zstd::bulk::compress(b"hello, hello, hello", 1).unwrap();
        for pos in [0, 1, 28, 36, 505, 506, 510, 511, 512, 1000] {
            let filler = filler_before(pos).unwrap_or_default();
            assert_eq!((pos + filler.len()) % BLOCK, 0, "at {pos}");
            assert!(filler.is_empty() || (is_skippable(&filler) && filler.len() >= SKIPPABLE_HEADER_LEN));
            let payload = [&filler[..], &frame, &filler, &frame].concat();
            assert_eq!(zstd::stream::decode_all(&payload[..]).unwrap(), b"hello, hello, hellohello, hello, hello");
        }
        assert!(!is_skippable(&frame));
    }
}
