//! The CRC32C of a concatenation, from the CRCs of its parts.
//!
//! Why: a batch's checksum covers its header and then its frames, and each
//! frame is compressed long before its batch exists. Checksummed at the
//! flush, the frames are read again, cold (2.4% of a produce's CPU on a
//! local directory; docs/benchmarks.md). Checksummed as each is compressed,
//! while hot, and combined here, they are not. This is zlib's newer
//! method (`crc32_combine` since 1.2.12): multiplying by x^(8·len) modulo
//! the polynomial, with x to the powers of two from a table. It costs 0.07
//! of a hot pass over a 78 KB frame; the `crc32c` crate's `crc32c_combine`,
//! which squares 32×32 bit matrices (`crc-fast`'s: 64×64), 4.7 times that
//! pass (`cargo run --release -p floe-broker --example crc_combine`).

/// CRC32C's polynomial, bit-reflected (the crate's and the format's).
const POLY: u32 = 0x82F6_3B78;

/// x^0 in the reflected representation.
const ONE: u32 = 1 << 31;

/// `a · b` modulo the polynomial (both reflected).
const fn mul(a: u32, mut b: u32) -> u32 {
    let (mut m, mut product) = (ONE, 0u32);
    while m != 0 {
        if a & m != 0 {
            product ^= b;
        }
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        m >>= 1;
    }
    product
}

/// `X_POW[k]` = x^(2^k) modulo the polynomial, for every bit of 8·len
/// with len a `u64`. Every entry is needed: zlib's table of 32 reused
/// (`k & 31`) relies on x^(2^32) = x for its own polynomial, and for this
/// one the period is 31.
const X_POW: [u32; 67] = {
    let mut table = [0u32; 67];
    table[0] = ONE >> 1; // x^1
    let mut k = 1;
    while k < table.len() {
        table[k] = mul(table[k - 1], table[k - 1]);
        k += 1;
    }
    table
};

/// x^(8·len) modulo the polynomial: what appending `len` bytes multiplies by.
fn x_pow_bytes(len: u64) -> u32 {
    // 8·len = len · 2^3: start three entries up the table.
    let (mut n, mut k, mut power) = (len, 3, ONE);
    while n != 0 {
        if n & 1 != 0 {
            power = mul(X_POW[k], power);
        }
        n >>= 1;
        k += 1;
    }
    power
}

/// The CRC32C of `a` followed by `b`, from `crc32c(a)`, `crc32c(b)` and
/// `b`'s length.
pub fn combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    mul(x_pow_bytes(len_b), crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_empty_second_part_leaves_the_first_crc() {
        assert_eq!(combine(0x1234_5678, crc32c::crc32c(b""), 0), 0x1234_5678);
        assert_eq!(combine(crc32c::crc32c(b""), crc32c::crc32c(b"abc"), 3), crc32c::crc32c(b"abc"));
    }

    #[test]
    fn agrees_with_the_crate_on_long_parts() {
        let a: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let b: Vec<u8> = (0..1_000_003u32).map(|i| (i * 13 + i / 97) as u8).collect();
        let whole = crc32c::crc32c_append(crc32c::crc32c(&a), &b);
        assert_eq!(combine(crc32c::crc32c(&a), crc32c::crc32c(&b), b.len() as u64), whole);
        // Lengths no buffer has, to reach the table's last entries.
        #[cfg(target_pointer_width = "64")]
        {
            let (ca, cb) = (crc32c::crc32c(&a), crc32c::crc32c(&b));
            for len in [1u64 << 40, u64::MAX] {
                assert_eq!(combine(ca, cb, len), crc32c::crc32c_combine(ca, cb, len as usize), "{len}");
            }
        }
    }

    proptest! {
        #[test]
        fn the_crc_of_a_concatenation(a in proptest::collection::vec(any::<u8>(), 0..300), b in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let whole = crc32c::crc32c(&[a.as_slice(), b.as_slice()].concat());
            prop_assert_eq!(combine(crc32c::crc32c(&a), crc32c::crc32c(&b), b.len() as u64), whole);
        }
    }
}
