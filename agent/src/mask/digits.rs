//! Counting ASCII digits, the primitive of the payment-card prefilter (see [`super::detect::first_card_window`]),
//! which runs over every header value and text body that masking looks at.
//!
//! On x86-64 bytes are counted with SSE2 (part of its baseline): 16 bytes per compare, the counts kept in byte
//! lanes and summed once by a sum of absolute differences. Elsewhere, and for pieces under 16 bytes, eight bytes
//! at a time in a machine word.

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

/// ASCII digits in a block.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
pub fn count_block(b: &[u8; BLOCK]) -> u32 {
    byte_sum(b.as_chunks::<8>().0.iter().fold(0, |acc, w| acc + digit_flags(word(w))))
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
        assert_eq!(count_block(&[0xb5; BLOCK]), 0);
        assert_eq!(count(&[b'5'; 255]), 255);
    }
}
