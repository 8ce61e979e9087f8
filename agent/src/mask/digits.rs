//! The byte-level passes of the detectors' prefilters, which run over every header value and text body that
//! masking looks at: counting ASCII digits (the payment-card prefilter, see
//! [`super::detect::first_card_window`]) and looking for the bytes every JWT, bearer token and cloud key holds
//! ([`has_token_byte`]).
//!
//! On x86-64 bytes are counted with SSE2 (part of its baseline): 16 bytes per compare, the counts kept in byte
//! lanes and summed once by a sum of absolute differences. Elsewhere, and for pieces under 16 bytes, eight bytes
//! at a time in a machine word. Token bytes are looked for 32 bytes per compare with AVX2 where the processor has
//! it (checked once at run time), else 16 with SSE2, else a byte at a time.

/// Bytes in a block of [`count_block`].
pub const BLOCK: usize = 64;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// 1 in each byte of the word `w` that is an ASCII digit, 0 in every other byte. Exact per byte: after the xor a
/// digit byte is 0 to 9; every byte is lifted to at least 0x80 before 10 is taken off, so no borrow crosses bytes.
#[inline(always)]
fn digit_flags(w: u64) -> u64 {
    let x = w ^ (ONES * u64::from(b'0'));
    let at_least_ten = (x | HIGHS) - ONES * 10;
    (!at_least_ten & !x & HIGHS) >> 7
}

/// The sum of the bytes of `flags`, modulo 256 (one multiply instead of a loop over the bytes).
#[inline(always)]
fn byte_sum(flags: u64) -> u32 {
    (flags.wrapping_mul(ONES) >> 56) as u32
}

fn word(w: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*w)
}

/// ASCII digits in `c`, which must be shorter than 256 bytes (sums are kept in byte lanes).
#[inline]
pub fn count(c: &[u8]) -> u32 {
    debug_assert!(c.len() < 256);
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    return if c.len() >= 16 { count_sse2(c) } else { count_under_16(c) };
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    count_words(c)
}

/// [`count`] of fewer than 16 bytes without a loop: the first eight bytes and the last eight, less the bytes
/// both words hold.
#[cfg_attr(not(all(target_arch = "x86_64", target_feature = "sse2")), allow(dead_code))]
#[inline(never)]
fn count_under_16(c: &[u8]) -> u32 {
    debug_assert!(c.len() < 16);
    let flags = match (c.first_chunk::<8>(), c.last_chunk::<8>()) {
        (Some(first), Some(last)) => {
            let counted = 16 - c.len() as u32;
            digit_flags(word(first)) + digit_flags(word(last).checked_shr(8 * counted).unwrap_or(0))
        }
        _ => digit_flags(c.iter().rev().fold(0, |acc, &b| acc << 8 | u64::from(b))),
    };
    byte_sum(flags)
}

/// [`count`] a word at a time. The last partial word is read as the word that ends `c`, shifted so that only the
/// bytes not counted yet remain.
fn count_words(c: &[u8]) -> u32 {
    let (words, tail) = c.as_chunks::<8>();
    let mut flags = words.iter().fold(0, |acc, w| acc + digit_flags(word(w)));
    let k = tail.len();
    if k > 0 {
        let last = match c.last_chunk::<8>() {
            Some(w) => word(w) >> (8 * (8 - k)),
            None => tail.iter().rev().fold(0, |acc, &b| acc << 8 | u64::from(b)),
        };
        // The bytes shifted in are zero, which is not a digit.
        flags += digit_flags(last);
    }
    byte_sum(flags)
}

/// [`count`] of 16 to 255 bytes, 16 at a time; the last partial chunk is read as the 16 bytes that end `c`,
/// with the lanes counted already masked off.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
#[inline(never)]
fn count_sse2(c: &[u8]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpgt_epi8, _mm_cvtsi128_si32, _mm_extract_epi16, _mm_loadu_si128, _mm_sad_epu8,
        _mm_set1_epi8, _mm_setr_epi8, _mm_setzero_si128, _mm_sub_epi8,
    };
    let (chunks, tail) = c.as_chunks::<16>();
    let Some(last) = c.last_chunk::<16>() else { return count_words(c) };
    // SAFETY: SSE2 is enabled (the cfg above). The loads read 16-byte arrays borrowed from `c`.
    unsafe {
        let digits = |chunk: &[u8; 16]| -> __m128i { digit_mask(_mm_loadu_si128(chunk.as_ptr().cast())) };
        let mut lanes = _mm_setzero_si128();
        for chunk in chunks {
            lanes = _mm_sub_epi8(lanes, digits(chunk));
        }
        let k = tail.len();
        if k > 0 {
            // Lanes 16 - k to 15 of the last 16 bytes are the tail.
            let index = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let new = _mm_cmpgt_epi8(index, _mm_set1_epi8(15 - k as i8));
            lanes = _mm_sub_epi8(lanes, _mm_and_si128(digits(last), new));
        }
        let sums = _mm_sad_epu8(lanes, _mm_setzero_si128());
        (_mm_cvtsi128_si32(sums) + _mm_extract_epi16::<4>(sums)) as u32
    }
}

/// -1 in each lane of `v` that is an ASCII digit, 0 in the others. Adding 0x50 maps '0'..='9' to 0x80..=0x89,
/// the ten smallest signed bytes (-128 to -119), and every other byte above them: one add and one signed compare.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
#[inline(always)]
fn digit_mask(v: std::arch::x86_64::__m128i) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::{_mm_add_epi8, _mm_cmpgt_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is enabled (the cfg above); no memory is accessed.
    unsafe { _mm_cmpgt_epi8(_mm_set1_epi8(-118), _mm_add_epi8(v, _mm_set1_epi8(0x50))) }
}

/// ASCII digits in a block.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
pub fn count_block(b: &[u8; BLOCK]) -> u32 {
    use std::arch::x86_64::{
        _mm_cvtsi128_si32, _mm_extract_epi16, _mm_loadu_si128, _mm_sad_epu8, _mm_setzero_si128, _mm_sub_epi8,
    };
    // SAFETY: SSE2 is enabled (the cfg above; every x86-64 processor has it). The only memory access is
    // `_mm_loadu_si128` of one 16-byte chunk of `b`, through a pointer made from that chunk (unaligned loads
    // are allowed).
    unsafe {
        let mut lanes = _mm_setzero_si128();
        for chunk in b.as_chunks::<16>().0 {
            // The mask is -1 on digits: subtracting it counts one.
            lanes = _mm_sub_epi8(lanes, digit_mask(_mm_loadu_si128(chunk.as_ptr().cast())));
        }
        // Two sums of eight lanes each, in the low 16 bits of each half.
        let sums = _mm_sad_epu8(lanes, _mm_setzero_si128());
        (_mm_cvtsi128_si32(sums) + _mm_extract_epi16::<4>(sums)) as u32
    }
}

/// The coarse pass of the card prefilter over `blocks`: the index of the first block that holds, with the block
/// before it, at least 13 ASCII digits (`Ok`), else the digits in the last block (`Err`; 0 when there is none).
/// With AVX2 when the processor has it (32 bytes per compare), else [`count_block`].
pub fn first_block_pair(blocks: &[[u8; BLOCK]]) -> Result<usize, u32> {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if blocks.len() > 1 && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2 (checked just above).
        #[allow(unsafe_code)]
        return unsafe { first_block_pair_avx2(blocks) };
    }
    first_block_pair_with(blocks, count_block)
}

/// [`first_block_pair`] with `count` counting each block.
fn first_block_pair_with(blocks: &[[u8; BLOCK]], count: impl Fn(&[u8; BLOCK]) -> u32) -> Result<usize, u32> {
    let mut prev = 0u32;
    for (k, b) in blocks.iter().enumerate() {
        let n = count(b);
        if prev + n >= 13 {
            return Ok(k);
        }
        prev = n;
    }
    Err(prev)
}

/// [`first_block_pair`] with each block counted as two 32-byte vectors.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
#[target_feature(enable = "avx2")]
fn first_block_pair_avx2(blocks: &[[u8; BLOCK]]) -> Result<usize, u32> {
    use std::arch::x86_64::{
        __m256i, _mm_add_epi64, _mm_cvtsi128_si32, _mm_unpackhi_epi64, _mm256_add_epi8, _mm256_castsi256_si128,
        _mm256_cmpgt_epi8, _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_sad_epu8, _mm256_set1_epi8,
        _mm256_setzero_si256, _mm256_sub_epi8,
    };
    first_block_pair_with(blocks, |b| {
        // SAFETY: AVX2 is enabled for this function (its caller checks that the processor has it). The loads
        // read the two 32-byte halves of the array `b`.
        unsafe {
            // -1 on digits, as `digit_mask`: '0'..='9' + 0x50 are the ten smallest signed bytes.
            let digits = |p: *const u8| -> __m256i {
                let v = _mm256_add_epi8(_mm256_loadu_si256(p.cast()), _mm256_set1_epi8(0x50));
                _mm256_cmpgt_epi8(_mm256_set1_epi8(-118), v)
            };
            let lanes = _mm256_sub_epi8(
                _mm256_sub_epi8(_mm256_setzero_si256(), digits(b.as_ptr())),
                digits(b.as_ptr().add(32)),
            );
            // Four sums of eight lanes each, one in each 64-bit quarter.
            let sums = _mm256_sad_epu8(lanes, _mm256_setzero_si256());
            let halves = _mm_add_epi64(_mm256_castsi256_si128(sums), _mm256_extracti128_si256::<1>(sums));
            _mm_cvtsi128_si32(_mm_add_epi64(halves, _mm_unpackhi_epi64(halves, halves))) as u32
        }
    })
}

/// ASCII digits in a block.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub fn count_block(b: &[u8; BLOCK]) -> u32 {
    byte_sum(b.as_chunks::<8>().0.iter().fold(0, |acc, w| acc + digit_flags(word(w))))
}

/// Whether `text` holds a byte of the set every JWT, bearer token and cloud key holds one of: `J` (of `eyJ`),
/// `A` (of `AKIA`, `ASIA`, ... and `AIza`), `b` or `B` (of `bearer`), `k` or `K` (of `access_key`), and `j`
/// (which the folded compare below takes along). A necessary condition of those three detectors, one pass over
/// `text` for all three: ordinary text rarely holds any of these bytes.
#[inline]
pub fn has_token_byte(text: &[u8]) -> bool {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    if text.len() >= 16 {
        return token_byte_simd(text);
    }
    token_byte_loop(text)
}

/// The bytes of [`has_token_byte`], as a table.
static TOKEN_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let set = b"JjAbBkK";
    let mut i = 0;
    while i < set.len() {
        t[set[i] as usize] = true;
        i += 1;
    }
    t
};

/// [`has_token_byte`] a byte at a time (no branch per byte).
fn token_byte_loop(text: &[u8]) -> bool {
    text.iter().fold(false, |acc, &b| acc | TOKEN_BYTE[usize::from(b)])
}

/// [`has_token_byte`] of at least 16 bytes: AVX2 when the processor has it, else SSE2.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
#[inline(never)]
fn token_byte_simd(text: &[u8]) -> bool {
    if text.len() >= 32 && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor has AVX2 (checked just above).
        return unsafe { token_byte_avx2(text) };
    }
    token_byte_sse2(text)
}

/// [`has_token_byte`] 16 bytes per compare; the last partial chunk is read as the 16 bytes that end `text`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
fn token_byte_sse2(text: &[u8]) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    let (chunks, _) = text.as_chunks::<16>();
    let Some(last) = text.last_chunk::<16>() else { return token_byte_loop(text) };
    // SAFETY: SSE2 is enabled (the cfg above). The loads read 16-byte arrays borrowed from `text`.
    unsafe {
        // `v | 0x20` is `b` for `b` and `B`, and `j` or `k` (`0x6a` once the low bit is cleared) for `j`, `J`,
        // `k` and `K`; `A` is compared as it is.
        let hits = |chunk: &[u8; 16]| -> __m128i {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let t = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let b = _mm_cmpeq_epi8(t, _mm_set1_epi8(b'b' as i8));
            let jk = _mm_cmpeq_epi8(_mm_and_si128(t, _mm_set1_epi8(!1)), _mm_set1_epi8(0x6a));
            let a = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'A' as i8));
            _mm_or_si128(_mm_or_si128(b, jk), a)
        };
        let mut any = hits(last);
        for chunk in chunks {
            any = _mm_or_si128(any, hits(chunk));
        }
        _mm_movemask_epi8(_mm_cmpeq_epi8(any, _mm_setzero_si128())) != 0xffff
    }
}

/// [`has_token_byte`] of at least 32 bytes, 32 bytes per compare, 64 per test of the result; the last partial
/// chunk is read as the 32 bytes that end `text`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
#[target_feature(enable = "avx2")]
fn token_byte_avx2(text: &[u8]) -> bool {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_or_si256, _mm256_set1_epi8,
        _mm256_testz_si256,
    };
    let (pairs, rest) = text.as_chunks::<64>();
    let Some(last) = text.last_chunk::<32>() else { return token_byte_loop(text) };
    // SAFETY: AVX2 is enabled for this function (its callers check that the processor has it). The loads read
    // 32-byte ranges of arrays borrowed from `text`.
    unsafe {
        let hits = |p: *const u8| -> __m256i {
            let v = _mm256_loadu_si256(p.cast());
            let t = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
            let b = _mm256_cmpeq_epi8(t, _mm256_set1_epi8(b'b' as i8));
            let jk = _mm256_cmpeq_epi8(_mm256_and_si256(t, _mm256_set1_epi8(!1)), _mm256_set1_epi8(0x6a));
            let a = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'A' as i8));
            _mm256_or_si256(_mm256_or_si256(b, jk), a)
        };
        for pair in pairs {
            let any = _mm256_or_si256(hits(pair.as_ptr()), hits(pair.as_ptr().add(32)));
            if _mm256_testz_si256(any, any) == 0 {
                return true;
            }
        }
        let mut any = hits(last.as_ptr());
        if rest.len() > 32 {
            any = _mm256_or_si256(any, hits(rest.as_ptr()));
        }
        _mm256_testz_si256(any, any) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(c: &[u8]) -> u32 {
        c.iter().filter(|b| b.is_ascii_digit()).count() as u32
    }

    #[test]
    fn digit_flags_are_exact_per_byte() {
        // Every byte value at every position, beside neighbours that could borrow or carry into it.
        for fill in [0x00u8, 0xff, b'0', b'9', b'/', b':', 0x80, 0xb0, 0x7f] {
            for at in 0..8 {
                for b in 0..=255u8 {
                    let mut w = [fill; 8];
                    w[at] = b;
                    let flags = digit_flags(u64::from_le_bytes(w)).to_le_bytes();
                    for (i, &f) in flags.iter().enumerate() {
                        assert_eq!(f, u8::from(w[i].is_ascii_digit()), "{w:?} byte {i}");
                    }
                }
            }
        }
    }

    /// Every length up to 200 (every path: byte loop, SSE2, AVX2 pairs and tails), one byte of the set or one
    /// of its neighbours (`@`, `C`, `a`, `c`, `I`, `L`, `h`, `l`, `"`, 0xca, ...) planted at every position of
    /// filler without any, and each SIMD path on its own.
    #[test]
    fn token_bytes_are_found_at_every_position() {
        let set = b"JjAbBkK";
        let reference = |t: &[u8]| t.iter().any(|b| set.contains(b));
        let filler: Vec<u8> =
            b"lorem ipsum dolor sit amet, 0123 consectetur\n".iter().copied().cycle().take(200).collect();
        assert!(!reference(&filler));
        let mut planted = set.to_vec();
        planted.extend_from_slice(b"@CaciILhl\"\xca\xc1\xe2\xeb\x8a\x4c\x6c\x41\x42");
        for len in 0..200 {
            let text = &filler[..len];
            assert!(!has_token_byte(text), "{len}");
            for at in 0..len {
                for &b in &planted {
                    let mut t = text.to_vec();
                    t[at] = b;
                    let want = reference(&t);
                    assert_eq!(has_token_byte(&t), want, "{len} {at} {b:#x}");
                    assert_eq!(token_byte_loop(&t), want, "{len} {at} {b:#x}");
                    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
                    if len >= 16 {
                        assert_eq!(token_byte_sse2(&t), want, "{len} {at} {b:#x}");
                        if len >= 32 && std::is_x86_feature_detected!("avx2") {
                            // SAFETY: the processor has AVX2.
                            #[allow(unsafe_code)]
                            let got = unsafe { token_byte_avx2(&t) };
                            assert_eq!(got, want, "{len} {at} {b:#x}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn counts_match_a_byte_loop() {
        // Digits, letters, separators and bytes one off the digit range on either side ('/', ':', 0xb0, 0xb9).
        let alphabet = [b'7', b'x', b'0', b' ', b'9', b'/', b':', 0xb0, 0xb9];
        let text: Vec<u8> = (0..600u32).map(|i| alphabet[(i * i % 11 % 9) as usize]).collect();
        for start in 0..9 {
            for end in start..start + 255 {
                assert_eq!(count(&text[start..end]), reference(&text[start..end]), "{start}..{end}");
                assert_eq!(count_words(&text[start..end]), reference(&text[start..end]), "{start}..{end}");
                if end - start < 16 {
                    assert_eq!(count_under_16(&text[start..end]), reference(&text[start..end]), "{start}..{end}");
                }
            }
            for block in text[start..].as_chunks::<BLOCK>().0 {
                assert_eq!(count_block(block), reference(block));
            }
        }
        assert_eq!(count_block(&[b'5'; BLOCK]), 64);
        // The coarse pass (AVX2 here when the processor has it) against the per-block counts of the reference.
        for len in 0..text.len() / BLOCK {
            for start in 0..9 {
                let blocks = text[start..].as_chunks::<BLOCK>().0;
                let blocks = &blocks[..len.min(blocks.len())];
                let want = first_block_pair_with(blocks, |b| reference(b));
                assert_eq!(first_block_pair(blocks), want, "{len} {start}");
            }
        }
        let mut sparse = [[b'x'; BLOCK]; 6];
        for (k, d) in [(0, 6), (1, 6), (2, 7), (3, 6), (4, 7)] {
            sparse[k][..d].fill(b'3');
        }
        assert_eq!(first_block_pair(&sparse[..2]), Err(6));
        assert_eq!(first_block_pair(&sparse), Ok(2));
        sparse[5] = [b'9'; BLOCK];
        assert_eq!(first_block_pair(&sparse[5..]), Ok(0));
        assert_eq!(first_block_pair(&sparse[4..5]), Err(7));
        assert_eq!(count_block(&[0xb5; BLOCK]), 0);
        assert_eq!(count(&[b'5'; 255]), 255);
    }
}
