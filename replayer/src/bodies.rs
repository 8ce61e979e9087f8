//! Recorded bodies made readable for `inspect --bodies`: the content-encoding undone with the judge's codecs
//! ([`crate::judge::decode`]: gzip, br, deflate, zstd), then shown as text when the bytes are text, else as their
//! length and a hex prefix. gRPC bodies are shown message by message, each decompressed by `grpc-encoding` and
//! read as protobuf without a schema ([`tapedeck_model::protobuf`], the judge's reader) in `protoc --decode_raw`
//! form.

use std::borrow::Cow;

use tapedeck_model::grpc::{decode_web_text, grpc_content_type, split_messages};
use tapedeck_model::protobuf::{self, Strings};
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

/// Most bytes of text shown for one gRPC message.
pub const MAX_MESSAGE_TEXT: usize = 64 << 10;

/// The lines showing a gRPC body (`headers` are its side's: content-type, grpc-encoding), or `None` when the
/// content-type is not gRPC: per message `message[N]: LEN bytes` (`, gzip decoded: LEN bytes`), then its fields indented as
/// `protoc --decode_raw` writes them (strings as UTF-8), or a note when it is not protobuf; a gRPC-Web trailer
/// frame's lines after `trailers:`; `(cut: ...)` when the stored body ends inside a message.
pub fn grpc_lines(body: &Body, headers: &[Header]) -> Option<Vec<String>> {
    let value = |name: &str| {
        headers.iter().find(|h| h.name.eq_ignore_ascii_case(name.as_bytes())).map(|h| String::from_utf8_lossy(&h.value))
    };
    let (web, text) = grpc_content_type(value("content-type")?.as_bytes())?;
    let json = value("content-type").is_some_and(|c| c.split(';').next().unwrap_or("").trim().ends_with("+json"));
    let encoding = value("grpc-encoding").map(|e| e.trim().to_ascii_lowercase());
    let cut = body.full_len > body.bytes.len() as u64;
    let bytes = if text { Cow::Owned(decode_web_text(&body.bytes)) } else { Cow::Borrowed(&body.bytes[..]) };
    let (msgs, trailer) = split_messages(&bytes, cut, web);
    let mut lines = Vec::new();
    for (i, m) in msgs.messages.iter().enumerate() {
        let end = m.offset.saturating_add(m.len as usize).min(bytes.len());
        let raw = bytes.get(m.offset..end).unwrap_or(&[]);
        if !m.complete {
            lines.push(format!("message[{i}]: {} bytes (cut: {} stored)", m.len, raw.len()));
            continue;
        }
        let mut head = format!("message[{i}]: {} bytes", m.len);
        let payload = match (m.compressed, encoding.as_deref()) {
            (false, _) | (true, Some("identity")) => Cow::Borrowed(raw),
            (true, enc) => {
                let enc = enc.unwrap_or("(no grpc-encoding)").to_string();
                match decode(raw, std::slice::from_ref(&enc), MAX_DECODED) {
                    Decoded::Ok(v) => {
                        head.push_str(&format!(", {enc} decoded: {} bytes", v.len()));
                        Cow::Owned(v)
                    }
                    Decoded::TooLarge => {
                        head.push_str(&format!(", not decoded: {enc} past {MAX_DECODED} bytes"));
                        Cow::Borrowed(raw)
                    }
                    Decoded::Failed(e) => {
                        head.push_str(&format!(", not decoded: {e}"));
                        Cow::Borrowed(raw)
                    }
                }
            }
        };
        lines.push(head);
        let fields = if json { None } else { protobuf::decode_readable(&payload) };
        match fields {
            Some(f) => {
                let mut t = String::new();
                protobuf::to_text(&f, Strings::Utf8, "  ", MAX_MESSAGE_TEXT, &mut t);
                lines.extend(t.lines().map(str::to_string));
            }
            None if is_text(&payload) => {
                lines.extend(String::from_utf8_lossy(&payload).lines().map(|l| format!("  {l}")))
            }
            None => lines.push(format!("  (not protobuf: {})", binary_summary(&payload))),
        }
    }
    if let Some(t) = trailer {
        lines.push("trailers:".into());
        lines.extend(String::from_utf8_lossy(t).lines().map(|l| format!("  {}", l.trim_end())));
    }
    if msgs.malformed {
        lines.push("(the body ends inside a message)".into());
    }
    Some(lines)
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

    fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn grpc_messages_are_shown_decoded() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"\x08\x02\x12\x06h\xc3\xa9llo").unwrap();
        let mut b = frame(0, b"\x0a\x05hello\x1a\x02\x08\x01");
        b.extend(frame(1, &gz.finish().unwrap()));
        b.extend(frame(0, b"\xff\xff"));
        let headers = [Header::new("content-type", "application/grpc+proto"), Header::new("grpc-encoding", "gzip")];
        let lines = grpc_lines(&body(&b), &headers).unwrap();
        let want = ["message[0]: 11 bytes", "  1: \"hello\"", "  3 {", "    1: 1", "  }"];
        assert_eq!(lines[..5], want);
        assert!(
            lines[5].starts_with("message[1]: ") && lines[5].ends_with(" bytes, gzip decoded: 10 bytes"),
            "{lines:?}"
        );
        assert_eq!(
            lines[6..],
            ["  1: 2", "  2: \"h\u{e9}llo\"", "message[2]: 2 bytes", "  (not protobuf: 2 bytes of binary: ffff)"]
        );

        // gRPC-Web: the trailer frame; a cut body says so.
        let mut w = frame(0, b"\x08\x01");
        w.extend(frame(0x80, b"grpc-status: 0\r\n"));
        let lines = grpc_lines(&body(&w), &[Header::new("Content-Type", "application/grpc-web")]).unwrap();
        assert_eq!(lines, ["message[0]: 2 bytes", "  1: 1", "trailers:", "  grpc-status: 0"]);
        let cut = Body { bytes: frame(0, b"\x08\x01\x10")[..7].to_vec(), full_len: 8 };
        let lines = grpc_lines(&cut, &[Header::new("content-type", "application/grpc")]).unwrap();
        assert_eq!(lines, ["message[0]: 3 bytes (cut: 2 stored)"]);
        assert_eq!(grpc_lines(&body(b"x"), &[Header::new("content-type", "application/json")]), None);
    }
}
