//! Content codings of bodies: decoding gzip, deflate (zlib-wrapped or raw), br and zstd so that bodies can be
//! masked, under a cap on the decoded size (a small body may expand enormously), and encoding a masked body again.
//! A stream cut short (a body truncated at the capture cap) decodes to the bytes before the cut.

use std::io::{Read, Write};

/// A body's content coding, from its `Content-Encoding` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// None, or `identity`.
    Identity,
    /// `gzip` / `x-gzip`.
    Gzip,
    /// `deflate`: zlib-wrapped as the RFC says, or raw deflate as some servers send.
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
    /// Another coding, or several stacked: not decoded.
    Unknown,
}

impl Coding {
    /// The coding named by a `Content-Encoding` value.
    pub fn from_header(value: &[u8]) -> Coding {
        let v = value.trim_ascii();
        let is = |name: &str| v.eq_ignore_ascii_case(name.as_bytes());
        if v.is_empty() || is("identity") {
            Coding::Identity
        } else if is("gzip") || is("x-gzip") {
            Coding::Gzip
        } else if is("deflate") {
            Coding::Deflate
        } else if is("br") {
            Coding::Brotli
        } else if is("zstd") {
            Coding::Zstd
        } else {
            Coding::Unknown
        }
    }

    /// The name used in notes (`@response-body:re-encoded:gzip`).
    pub fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Unknown => "unknown",
        }
    }
}

/// The result of decoding a body.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The whole stream decoded.
    Whole(Vec<u8>),
    /// The stream ended early or broke: the bytes decoded before that.
    Partial(Vec<u8>),
    /// The decoded bytes passed the cap: the first `cap` of them.
    OverCap(Vec<u8>),
    /// Nothing could be decoded.
    Failed,
}

/// Whether a deflate body is zlib-wrapped, or raw; the raw form is what is encoded again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeflateForm {
    /// zlib header and Adler-32 trailer (RFC 9110).
    Zlib,
    /// Raw deflate.
    Raw,
}

fn read_capped(mut r: impl Read, cap: usize) -> Decoded {
    let mut out = Vec::new();
    let res = r.by_ref().take(cap as u64 + 1).read_to_end(&mut out);
    if out.len() > cap {
        out.truncate(cap);
        return Decoded::OverCap(out);
    }
    match res {
        Ok(_) => Decoded::Whole(out),
        Err(_) if out.is_empty() => Decoded::Failed,
        Err(_) => Decoded::Partial(out),
    }
}

/// Decodes `bytes` of `coding` into at most `cap` bytes. For deflate, also says which form it was.
pub fn decode(coding: Coding, bytes: &[u8], cap: usize) -> (Decoded, DeflateForm) {
    let d = match coding {
        Coding::Identity => Decoded::Whole(bytes.to_vec()),
        Coding::Gzip => read_capped(flate2::read::MultiGzDecoder::new(bytes), cap),
        Coding::Deflate => {
            // A zlib header is two bytes whose big-endian value is a multiple of 31, with method 8.
            let zlib =
                bytes.len() >= 2 && bytes[0] & 0x0F == 8 && (u16::from(bytes[0]) << 8 | u16::from(bytes[1])) % 31 == 0;
            if zlib {
                return (read_capped(flate2::read::ZlibDecoder::new(bytes), cap), DeflateForm::Zlib);
            }
            read_capped(flate2::read::DeflateDecoder::new(bytes), cap)
        }
        Coding::Brotli => read_capped(brotli::Decompressor::new(bytes, 4096), cap),
        Coding::Zstd => match zstd::stream::read::Decoder::new(bytes) {
            Ok(d) => read_capped(d, cap),
            Err(_) => Decoded::Failed,
        },
        Coding::Unknown => Decoded::Failed,
    };
    (d, DeflateForm::Raw)
}

/// Encodes `bytes` with `coding` (fast settings: the body is stored, not sent over a slow link).
pub fn encode(coding: Coding, form: DeflateForm, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let fast = flate2::Compression::fast();
    match coding {
        Coding::Identity => Ok(bytes.to_vec()),
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), fast);
            e.write_all(bytes)?;
            e.finish()
        }
        Coding::Deflate if form == DeflateForm::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), fast);
            e.write_all(bytes)?;
            e.finish()
        }
        Coding::Deflate => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), fast);
            e.write_all(bytes)?;
            e.finish()
        }
        Coding::Brotli => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 1, 22);
                w.write_all(bytes)?;
                w.flush()?;
            }
            Ok(out)
        }
        Coding::Zstd => zstd::stream::encode_all(bytes, 1),
        Coding::Unknown => Err(std::io::Error::other("unknown content coding")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"{\"password\":\"hunter2\",\"n\":1} and some more text to compress, text text text";

    #[test]
    fn every_coding_round_trips() {
        for c in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            for form in [DeflateForm::Zlib, DeflateForm::Raw] {
                let enc = encode(c, form, TEXT).unwrap();
                assert_ne!(&enc[..], TEXT, "{c:?}");
                let (dec, got_form) = decode(c, &enc, 1 << 20);
                assert_eq!(dec, Decoded::Whole(TEXT.to_vec()), "{c:?} {form:?}");
                if c == Coding::Deflate {
                    assert_eq!(got_form, form);
                }
            }
        }
    }

    #[test]
    fn independent_gzip_is_read() {
        // `printf 'hello\n' | gzip -n | xxd -i`
        let gz = [
            0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xe7, 0x02, 0x00,
            0x20, 0x30, 0x3a, 0x36, 0x06, 0x00, 0x00, 0x00,
        ];
        assert_eq!(decode(Coding::Gzip, &gz, 100).0, Decoded::Whole(b"hello\n".to_vec()));
    }

    #[test]
    fn cut_streams_decode_to_a_prefix_and_bombs_stop_at_the_cap() {
        let long: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_string().into_bytes()).collect();
        for c in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            let enc = encode(c, DeflateForm::Raw, &long).unwrap();
            match decode(c, &enc[..enc.len() / 2], 1 << 24).0 {
                Decoded::Partial(p) => {
                    assert!(!p.is_empty() && p.len() < long.len(), "{c:?}");
                    assert_eq!(&long[..p.len()], &p[..], "{c:?}");
                }
                other => panic!("{c:?}: {other:?}"),
            }
            match decode(c, &enc, 1000).0 {
                Decoded::OverCap(p) => assert_eq!(&p[..], &long[..1000], "{c:?}"),
                other => panic!("{c:?}: {other:?}"),
            }
        }
        assert_eq!(decode(Coding::Gzip, b"not gzip at all", 100).0, Decoded::Failed);
        assert_eq!(decode(Coding::Unknown, b"x", 100).0, Decoded::Failed);
    }

    #[test]
    fn header_names() {
        assert_eq!(Coding::from_header(b" GZIP "), Coding::Gzip);
        assert_eq!(Coding::from_header(b"x-gzip"), Coding::Gzip);
        assert_eq!(Coding::from_header(b"br"), Coding::Brotli);
        assert_eq!(Coding::from_header(b"gzip, br"), Coding::Unknown);
        assert_eq!(Coding::from_header(b""), Coding::Identity);
    }
}
