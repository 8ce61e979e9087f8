//! Recorded bodies made readable for `inspect --bodies`: the content-encoding undone with the judge's codecs
//! ([`crate::judge::decode`]: gzip, br, deflate, zstd), then shown as text when the bytes are text, else as their
//! length and a hex prefix.

use std::borrow::Cow;

use tapedeck_model::{Body, Header};

use crate::judge::decode::{Decoded, decode, encodings};

/// Most bytes a decoded body may grow to; past it the stored bytes are shown as they are.
const MAX_DECODED: usize = 64 << 20;

/// Bytes of a binary body shown in hex.
pub const HEX_PREFIX: usize = 32;

/// A body ready to show.
#[derive(Debug, PartialEq, Eq)]
pub struct Shown<'a> {
    /// The bytes: decoded when the content-encoding could be undone, else as stored.
    pub bytes: Cow<'a, [u8]>,
    /// The content-encodings undone (`gzip`), when there were some and decoding worked.
    pub undone: Option<String>,
    /// Why the content-encoding could not be undone (a body cut at the capture's cap, an unknown coding).
    pub not_decoded: Option<String>,
}

/// The stored bytes of `body`, its content-encoding (from `headers`) undone when possible.
pub fn shown<'a>(body: &'a Body, headers: &[Header]) -> Shown<'a> {
    let codings = encodings(headers);
    if codings.is_empty() || body.bytes.is_empty() {
        return Shown { bytes: Cow::Borrowed(&body.bytes), undone: None, not_decoded: None };
    }
    let not = |why: String| Shown { bytes: Cow::Borrowed(&body.bytes), undone: None, not_decoded: Some(why) };
    match decode(&body.bytes, &codings, MAX_DECODED) {
        Decoded::Ok(v) => Shown { bytes: Cow::Owned(v), undone: Some(codings.join(", ")), not_decoded: None },
        Decoded::TooLarge => not(format!("decoded it would pass {MAX_DECODED} bytes")),
        Decoded::Failed(e) => not(e),
    }
}

/// Whether `b` reads as text: UTF-8 without control characters other than tab, line feed and carriage return.
pub fn is_text(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(s) => !s.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')),
        Err(_) => false,
    }
}

/// `1234 bytes of binary: 89504e47...`: the length and the first [`HEX_PREFIX`] bytes in hex.
pub fn binary_summary(b: &[u8]) -> String {
    let hex: String = b.iter().take(HEX_PREFIX).map(|x| format!("{x:02x}")).collect();
    let more = if b.len() > HEX_PREFIX { "..." } else { "" };
    format!("{} bytes of binary: {hex}{more}", b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn body(b: &[u8]) -> Body {
        Body { bytes: b.to_vec(), full_len: b.len() as u64 }
    }

    #[test]
    fn encoded_bodies_are_decoded_and_binary_is_summarised() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"{\"name\":\"ada\"}").unwrap();
        let gz = body(&gz.finish().unwrap());
        let headers = [Header::new("Content-Encoding", "gzip")];
        let s = shown(&gz, &headers);
        assert_eq!((&*s.bytes, s.undone.as_deref()), (&b"{\"name\":\"ada\"}"[..], Some("gzip")));
        let zs = body(&zstd::encode_all(&b"plain words"[..], 3).unwrap());
        assert_eq!(&*shown(&zs, &[Header::new("content-encoding", "zstd")]).bytes, b"plain words");

        let cut = body(&gz.bytes[..gz.bytes.len() / 2]);
        let s = shown(&cut, &headers);
        assert!(s.undone.is_none() && s.not_decoded.is_some() && *s.bytes == cut.bytes[..], "{s:?}");
        assert!(
            shown(&body(b"x"), &[Header::new("content-encoding", "snappy")]).not_decoded.unwrap().contains("snappy")
        );

        assert!(is_text("héllo\r\n\tworld".as_bytes()));
        assert!(!is_text(b"\x89PNG\r\n\x1a\n") && !is_text(b"a\0b") && !is_text(&[0xff, 0xfe]));
        assert_eq!(binary_summary(&[0x89, 0x50]), "2 bytes of binary: 8950");
        let long = binary_summary(&[0xab; 40]);
        assert!(long.starts_with("40 bytes of binary: abab") && long.ends_with("...") && long.len() == 20 + 64 + 3);
    }
}
