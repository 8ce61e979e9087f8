//! Body framing: how the length of a message body is decided (RFC 9112 §6.3) and how chunk-size lines of the
//! chunked transfer coding are read.
//!
//! Decisions are lenient the way servers and tshark are: identical repeated Content-Length values are fine,
//! conflicting ones keep the first and are reported as an anomaly; a Transfer-Encoding whose final coding is not
//! `chunked` makes a response close-delimited and a request bodiless (the server would answer 400 and close).

use tapedeck_model::Header;

/// How a message body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the connection closes (responses only).
    Close,
}

/// A framing decision and whether the headers behind it were anomalous (conflicting or invalid lengths or
/// codings): the message is then flagged `PARSE_ERROR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The framing.
    pub framing: Framing,
    /// Whether the framing headers were anomalous.
    pub anomaly: bool,
}

/// Values of every field named `name` (case-insensitive), in order.
pub(crate) fn values<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name.as_bytes())).map(|h| h.value.as_slice())
}

/// The comma-separated list elements of every field named `name`, trimmed, empty ones skipped.
pub(crate) fn list<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    values(headers, name).flat_map(|v| v.split(|&b| b == b',')).map(|e| e.trim_ascii()).filter(|e| !e.is_empty())
}

#[derive(Debug, PartialEq, Eq)]
enum TransferCoding {
    Absent,
    ChunkedLast,
    Other,
}

fn transfer_coding(headers: &[Header]) -> TransferCoding {
    let mut last: Option<&[u8]> = None;
    let mut only_identity = true;
    for coding in list(headers, "transfer-encoding") {
        // A coding may carry parameters (`gzip;q=1` is not valid here, but be lenient).
        let name = coding.split(|&b| b == b';').next().unwrap_or(coding).trim_ascii();
        if !name.eq_ignore_ascii_case(b"identity") {
            only_identity = false;
        }
        last = Some(name);
    }
    match last {
        None => TransferCoding::Absent,
        Some(_) if only_identity => TransferCoding::Absent,
        Some(c) if c.eq_ignore_ascii_case(b"chunked") => TransferCoding::ChunkedLast,
        Some(_) => TransferCoding::Other,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ContentLength {
    Absent,
    /// The first value, and whether other values disagree with it.
    Valid(u64, bool),
    Invalid,
}

/// Largest Content-Length taken as valid: 2^63 - 1, what servers store lengths in (off_t, int64). A larger value is
/// refused by them (400), and tshark does not read it either: it is invalid here, and a request with it has no body.
const MAX_CONTENT_LENGTH: u64 = i64::MAX as u64;

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter()
        .try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .filter(|&n| n <= MAX_CONTENT_LENGTH)
}

fn content_length(headers: &[Header]) -> ContentLength {
    let mut first: Option<u64> = None;
    let mut conflict = false;
    let mut seen = false;
    for v in list(headers, "content-length") {
        seen = true;
        match parse_decimal(v) {
            Some(n) => match first {
                None => first = Some(n),
                Some(f) if f != n => conflict = true,
                Some(_) => {}
            },
            None => return ContentLength::Invalid,
        }
    }
    match first {
        Some(n) => ContentLength::Valid(n, conflict),
        None if seen => ContentLength::Invalid,
        None => ContentLength::Absent,
    }
}

fn by_length(n: u64) -> Framing {
    if n == 0 { Framing::Empty } else { Framing::Length(n) }
}

/// How the body of a request with these headers is framed.
pub(crate) fn request_framing(headers: &[Header]) -> Decision {
    match transfer_coding(headers) {
        TransferCoding::ChunkedLast => {
            return Decision { framing: Framing::Chunked, anomaly: false };
        }
        TransferCoding::Other => {
            return Decision { framing: Framing::Empty, anomaly: true };
        }
        TransferCoding::Absent => {}
    }
    match content_length(headers) {
        ContentLength::Absent => Decision { framing: Framing::Empty, anomaly: false },
        ContentLength::Valid(n, conflict) => Decision { framing: by_length(n), anomaly: conflict },
        ContentLength::Invalid => Decision { framing: Framing::Empty, anomaly: true },
    }
}

/// How the body of a response with this status and these headers is framed, given whether it answers a HEAD
/// request.
pub(crate) fn response_framing(status: u16, headers: &[Header], answers_head: bool) -> Decision {
    if answers_head || (100..200).contains(&status) || status == 204 || status == 304 {
        return Decision { framing: Framing::Empty, anomaly: false };
    }
    match transfer_coding(headers) {
        TransferCoding::ChunkedLast => {
            return Decision { framing: Framing::Chunked, anomaly: false };
        }
        TransferCoding::Other => {
            return Decision { framing: Framing::Close, anomaly: false };
        }
        TransferCoding::Absent => {}
    }
    match content_length(headers) {
        ContentLength::Absent => Decision { framing: Framing::Close, anomaly: false },
        ContentLength::Valid(n, conflict) => Decision { framing: by_length(n), anomaly: conflict },
        ContentLength::Invalid => Decision { framing: Framing::Close, anomaly: true },
    }
}

/// Longest chunk-size line accepted (size plus extensions).
pub(crate) const MAX_CHUNK_LINE: usize = 4096;

/// Reads a chunk-size line (without its `\n`; a trailing `\r` is allowed): hex size, optional whitespace,
/// optional `;extensions` (ignored). `None` when it is not one.
pub(crate) fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.trim_ascii_start();
    let digits = line.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(line.len());
    if digits == 0 || digits > 16 {
        return None;
    }
    let rest = line[digits..].trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return None;
    }
    line[..digits].iter().try_fold(0u64, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<Header> {
        pairs.iter().map(|(n, v)| Header::new(*n, *v)).collect()
    }

    fn req(pairs: &[(&str, &str)]) -> Decision {
        request_framing(&h(pairs))
    }

    fn resp(status: u16, pairs: &[(&str, &str)]) -> Decision {
        response_framing(status, &h(pairs), false)
    }

    const fn ok(framing: Framing) -> Decision {
        Decision { framing, anomaly: false }
    }

    #[test]
    fn request_rules() {
        assert_eq!(req(&[]), ok(Framing::Empty));
        assert_eq!(req(&[("Content-Length", "12")]), ok(Framing::Length(12)));
        assert_eq!(req(&[("content-length", "0")]), ok(Framing::Empty));
        assert_eq!(req(&[("Transfer-Encoding", "gzip, chunked"), ("Content-Length", "3")]), ok(Framing::Chunked));
        assert_eq!(req(&[("Transfer-Encoding", "lalala")]), Decision { framing: Framing::Empty, anomaly: true });
        assert_eq!(req(&[("Content-Length", "5, 5"), ("Content-Length", "5")]), ok(Framing::Length(5)));
        assert_eq!(
            req(&[("Content-Length", "5"), ("Content-Length", "7")]),
            Decision { framing: Framing::Length(5), anomaly: true }
        );
        assert_eq!(req(&[("Content-Length", "-1")]), Decision { framing: Framing::Empty, anomaly: true });
        assert_eq!(req(&[("Transfer-Encoding", "identity"), ("Content-Length", "2")]), ok(Framing::Length(2)));
    }

    #[test]
    fn response_rules() {
        assert_eq!(resp(200, &[]), ok(Framing::Close));
        assert_eq!(resp(200, &[("Content-Length", "4")]), ok(Framing::Length(4)));
        assert_eq!(resp(204, &[("Content-Length", "4")]), ok(Framing::Empty));
        assert_eq!(resp(304, &[("Transfer-Encoding", "chunked")]), ok(Framing::Empty));
        assert_eq!(resp(100, &[]), ok(Framing::Empty));
        assert_eq!(response_framing(200, &h(&[("Content-Length", "9")]), true), ok(Framing::Empty));
        assert_eq!(resp(200, &[("Transfer-Encoding", "chunked")]), ok(Framing::Chunked));
        assert_eq!(resp(200, &[("Transfer-Encoding", "lalala"), ("Content-Length", "3")]), ok(Framing::Close));
        assert_eq!(resp(200, &[("Transfer-Encoding", "chunked, gzip")]), ok(Framing::Close));
        assert_eq!(resp(200, &[("Content-Length", "x")]), Decision { framing: Framing::Close, anomaly: true });
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a\r"), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"FF ; name=value; x\r"), Some(255));
        assert_eq!(parse_chunk_size(b"10;ext"), Some(16));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"xyz\r"), None);
        assert_eq!(parse_chunk_size(b"12 34\r"), None);
        assert_eq!(parse_chunk_size(b"11111111111111111\r"), None);
        assert_eq!(parse_chunk_size(b"ffffffffffffffff"), Some(u64::MAX));
    }
}
