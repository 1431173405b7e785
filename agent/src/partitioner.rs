//! Choosing a partition for a record: explicit, by key hash, or sticky.

use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's murmur2 (as in `org.apache.kafka.common.utils.Utils.murmur2`), so a
/// key lands on the same partition number as with Kafka's default partitioner.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's default partition for a keyed record (0 for a topic without partitions).
pub fn for_key(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fff_ffff) as u32).checked_rem(partitions).unwrap_or(0)
}

/// Sticky round-robin for records with neither key nor partition: every such
/// record of one request goes to one partition, and the next request moves on.
#[derive(Default)]
pub struct Sticky(AtomicU32);

impl Sticky {
    pub fn next(&self, partitions: u32) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed).checked_rem(partitions).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hole 8: a topic without partitions (only an old log can hold one) must not panic the partitioner.
    #[test]
    fn hole8_no_partitions_does_not_divide_by_zero() {
        assert_eq!(for_key(b"k", 0), 0);
        assert_eq!(Sticky::default().next(0), 0);
    }

    #[test]
    fn matches_kafka_murmur2() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input), expected, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn sticky_rotates_per_call() {
        let s = Sticky::default();
        let got: Vec<u32> = (0..4).map(|_| s.next(3)).collect();
        assert_eq!(got, vec![0, 1, 2, 0]);
    }

    #[test]
    fn key_partition_is_stable_and_in_range() {
        for n in 1..20 {
            assert!(for_key(b"user-42", n) < n);
            assert_eq!(for_key(b"user-42", n), for_key(b"user-42", n));
        }
    }
}
