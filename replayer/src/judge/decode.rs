//! Body decoding for comparison: undoes `Content-Encoding` (gzip, deflate, br, zstd, identity; several in a list
//! are undone last first) with the output capped, so a small compressed body cannot grow without bound.

use std::io::Read;

/// How decoding a body went.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The decoded bytes (the input itself when there was no encoding).
    Ok(Vec<u8>),
    /// The decoded body is longer than the cap: not compared.
    TooLarge,
    /// An encoding this module does not know, or bytes that do not decode.
    Failed(String),
}

/// The `Content-Encoding` values of a header list, in the order they were applied.
pub fn encodings(headers: &[tapedeck_model::Header]) -> Vec<String> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(b"content-encoding"))
        .flat_map(|h| {
            String::from_utf8_lossy(&h.value).split(',').map(|s| s.trim().to_ascii_lowercase()).collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty() && s != "identity")
        .collect()
}

/// Decodes `bytes` that were encoded with `encodings` (in order), keeping at most `cap` bytes of output.
pub fn decode(bytes: &[u8], encodings: &[String], cap: usize) -> Decoded {
    let mut cur = bytes.to_vec();
    for enc in encodings.iter().rev() {
        let res = match enc.as_str() {
            "gzip" | "x-gzip" => read_capped(flate2::read::MultiGzDecoder::new(&cur[..]), cap),
            "deflate" => {
                // RFC 9110 says zlib-wrapped; some servers send raw deflate.
                match read_capped(flate2::read::ZlibDecoder::new(&cur[..]), cap) {
                    Err(Some(_)) => read_capped(flate2::read::DeflateDecoder::new(&cur[..]), cap),
                    other => other,
                }
            }
            "br" => read_capped(brotli::Decompressor::new(&cur[..], 4096), cap),
            "zstd" => match zstd::stream::read::Decoder::new(&cur[..]) {
                Ok(d) => read_capped(d, cap),
                Err(e) => Err(Some(e.to_string())),
            },
            other => return Decoded::Failed(format!("unknown content-encoding '{other}'")),
        };
        cur = match res {
            Ok(v) => v,
            Err(None) => return Decoded::TooLarge,
            Err(Some(e)) => return Decoded::Failed(format!("{enc}: {e}")),
        };
    }
    if cur.len() > cap {
        return Decoded::TooLarge;
    }
    Decoded::Ok(cur)
}

/// Reads to the end or to `cap + 1` bytes; `Err(None)` when over the cap.
fn read_capped(r: impl Read, cap: usize) -> Result<Vec<u8>, Option<String>> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    r.take(limit).read_to_end(&mut out).map_err(|e| Some(e.to_string()))?;
    if out.len() > cap {
        return Err(None);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn enc(e: &str) -> Vec<String> {
        vec![e.to_string()]
    }

    #[test]
    fn every_codec_round_trips() {
        let plain = b"{\"hello\": \"world\", \"n\": [1,2,3]}".repeat(20);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(&plain).unwrap();
        let zl = zl.finish().unwrap();
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&plain).unwrap();
        let raw = raw.finish().unwrap();
        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22).write_all(&plain).unwrap();
        let zs = zstd::encode_all(&plain[..], 3).unwrap();
        for (name, bytes) in [("gzip", gz), ("deflate", zl), ("deflate", raw), ("br", br), ("zstd", zs)] {
            assert_eq!(decode(&bytes, &enc(name), 1 << 20), Decoded::Ok(plain.clone()), "{name}");
            assert_eq!(decode(&bytes, &enc(name), 100), Decoded::TooLarge, "{name} capped");
        }
        assert!(matches!(decode(b"not gzip", &enc("gzip"), 100), Decoded::Failed(_)));
        assert!(matches!(decode(b"x", &enc("compress"), 100), Decoded::Failed(e) if e.contains("compress")));
        assert_eq!(decode(b"abc", &[], 100), Decoded::Ok(b"abc".to_vec()));
    }

    #[test]
    fn encodings_are_listed_in_order() {
        let h = vec![
            tapedeck_model::Header::new("Content-Encoding", "gzip, identity"),
            tapedeck_model::Header::new("content-encoding", "br"),
        ];
        assert_eq!(encodings(&h), vec!["gzip", "br"]);
    }
}
