//! Decoding of HPACK Huffman-coded strings (RFC 7541 §5.2, Appendix B) without allocation beyond the output.
//!
//! The HPACK code is canonical: the codes of one bit length are consecutive integers, and the first code of length
//! `L + 1` is `(last code of length L + 1) << 1`. Decoding therefore needs, per length, the first code, the number
//! of codes and where its symbols start in a list sorted by code; that index is built once from the RFC table.

use std::sync::OnceLock;

use super::table_huffman::CODES;

/// The longest code (EOS), in bits.
const MAX_LEN: usize = 30;

/// Why a Huffman string could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol appeared inside the string (RFC 7541 §5.2: a decoding error).
    Eos,
    /// More than 7 bits of padding, or padding that is not the most significant bits of EOS (all ones).
    Padding,
}

/// Per-length index of the canonical code.
struct Canonical {
    /// First code of each length (index = length).
    first: [u32; MAX_LEN + 1],
    /// Number of codes of each length.
    count: [u32; MAX_LEN + 1],
    /// Where the symbols of each length start in `symbols`.
    offset: [u32; MAX_LEN + 1],
    /// Symbols sorted by (length, code).
    symbols: [u16; 257],
}

fn canonical() -> &'static Canonical {
    static TABLE: OnceLock<Canonical> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut order: Vec<u16> = (0..257u16).collect();
        order.sort_by_key(|&s| {
            let (code, len) = CODES[usize::from(s)];
            (len, code)
        });
        let mut c =
            Canonical { first: [0; MAX_LEN + 1], count: [0; MAX_LEN + 1], offset: [0; MAX_LEN + 1], symbols: [0; 257] };
        for (i, &s) in order.iter().enumerate() {
            let (code, len) = CODES[usize::from(s)];
            let len = usize::from(len).min(MAX_LEN);
            if c.count[len] == 0 {
                c.first[len] = code;
                c.offset[len] = i as u32;
            }
            c.count[len] += 1;
            c.symbols[i] = s;
        }
        c
    })
}

/// Decodes `src` (a whole Huffman-coded string) and appends the octets to `dst`.
pub fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let t = canonical();
    dst.reserve(src.len() + src.len() / 2);
    let mut code: u32 = 0;
    let mut len: usize = 0;
    for &byte in src {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            if len > MAX_LEN {
                // Cannot happen with a complete canonical code; treat as bad padding rather than loop forever.
                return Err(HuffmanError::Padding);
            }
            let n = t.count[len];
            if n != 0 {
                let delta = code.wrapping_sub(t.first[len]);
                if delta < n {
                    let sym = t.symbols[(t.offset[len] + delta) as usize];
                    if sym == 256 {
                        return Err(HuffmanError::Eos);
                    }
                    dst.push(sym as u8);
                    code = 0;
                    len = 0;
                }
            }
        }
    }
    // RFC 7541 §5.2: at most 7 bits of padding, all ones (the most significant bits of EOS).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HuffmanError::Padding);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes with the RFC table (test-only encoder, written independently of the decoder's index).
    fn encode(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut acc: u64 = 0;
        let mut bits = 0u32;
        for &b in s {
            let (code, len) = CODES[usize::from(b)];
            acc = (acc << len) | u64::from(code);
            bits += u32::from(len);
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            let pad = 8 - bits;
            out.push(((acc << pad) as u8) | ((1u8 << pad) - 1));
        }
        out
    }

    #[test]
    fn code_is_canonical() {
        let t = canonical();
        let mut next: u32 = 0;
        let mut prev_len = 0usize;
        for len in 1..=MAX_LEN {
            next <<= len - prev_len;
            prev_len = len;
            if t.count[len] == 0 {
                continue;
            }
            assert_eq!(t.first[len], next, "length {len}");
            next += t.count[len];
        }
        assert_eq!(t.count.iter().sum::<u32>(), 257);
    }

    #[test]
    fn known_codes_from_rfc() {
        // A few rows of RFC 7541 Appendix B, typed from the RFC.
        assert_eq!(CODES[usize::from(b' ')], (0x14, 6));
        assert_eq!(CODES[usize::from(b'0')], (0x0, 5));
        assert_eq!(CODES[usize::from(b'a')], (0x3, 5));
        assert_eq!(CODES[usize::from(b'z')], (0x7b, 7));
        assert_eq!(CODES[256], (0x3fffffff, 30));
    }

    #[test]
    fn rfc_c4_strings() {
        // RFC 7541 C.4.1: "www.example.com".
        let mut out = Vec::new();
        decode(&[0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff], &mut out).unwrap();
        assert_eq!(out, b"www.example.com");
        out.clear();
        // C.4.2: "no-cache".
        decode(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf], &mut out).unwrap();
        assert_eq!(out, b"no-cache");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut out = Vec::new();
        decode(&encode(&all), &mut out).unwrap();
        assert_eq!(out, all);
    }

    #[test]
    fn bad_padding_and_eos_are_errors() {
        let mut out = Vec::new();
        // 'a' is 00011 (5 bits); pad with zeros instead of ones.
        assert_eq!(decode(&[0b0001_1000], &mut out), Err(HuffmanError::Padding));
        // 8 bits of ones after a full symbol byte: padding too long.
        out.clear();
        assert_eq!(decode(&[0b0001_1111, 0xff], &mut out), Err(HuffmanError::Padding));
        // EOS itself (30 ones) followed by padding.
        out.clear();
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff], &mut out), Err(HuffmanError::Eos));
    }
}
