//! Message heads: the request line or status line and the header fields of one HTTP/1 message.
//!
//! httparse handles the common case straight from the caller's bytes. Real peers also send things httparse
//! refuses: obs-fold continuation lines, spaces before the colon, a space inside the target, minor versions other
//! than 0 and 1, more fields than the fast path's array. Those heads go through a lenient line parser. It keeps
//! what it can, joins folded lines with one space (RFC 9112 §5.2), and counts the lines it had to drop. Neither
//! path invents anything.

use tapedeck_model::Header;

/// Header fields the fast path can hold; heads with more go through the lenient parser.
const FAST_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    /// The method token as sent.
    pub method: Vec<u8>,
    /// The request target as sent.
    pub target: Vec<u8>,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x).
    pub minor: u8,
    /// Header fields in order.
    pub headers: Vec<Header>,
    /// Whether the lenient parser was needed.
    pub lenient: bool,
    /// Header lines the lenient parser could not read and dropped.
    pub bad_lines: u32,
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    /// The minor version.
    pub minor: u8,
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: Vec<u8>,
    /// Header fields in order.
    pub headers: Vec<Header>,
    /// Whether the lenient parser was needed.
    pub lenient: bool,
    /// Header lines the lenient parser could not read and dropped.
    pub bad_lines: u32,
}

/// The result of parsing a head from the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<T> {
    /// A head, and the number of bytes it took (through its empty line).
    Complete(T, usize),
    /// Plausible so far; more bytes are needed.
    Partial,
    /// Not a head.
    Invalid,
}

fn config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_spaces_after_header_name_in_responses(true);
    c
}

fn fields(hs: &[httparse::Header<'_>]) -> Vec<Header> {
    hs.iter().map(|h| Header::new(h.name.as_bytes(), h.value)).collect()
}

/// Parses a request head at the start of `buf` (which must not start with empty lines).
pub(crate) fn parse_request(buf: &[u8]) -> Parsed<RequestHead> {
    let mut hs = [httparse::EMPTY_HEADER; FAST_HEADERS];
    let mut req = httparse::Request::new(&mut hs);
    match config().parse_request(&mut req, buf) {
        Ok(httparse::Status::Complete(n)) => {
            let (Some(method), Some(target)) = (req.method, req.path) else {
                return lenient_request(buf);
            };
            let head = RequestHead {
                method: method.as_bytes().to_vec(),
                target: target.as_bytes().to_vec(),
                minor: req.version.unwrap_or(1).min(1),
                headers: fields(req.headers),
                lenient: false,
                bad_lines: 0,
            };
            Parsed::Complete(head, n)
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => lenient_request(buf),
    }
}

/// Parses a response head at the start of `buf` (which must not start with empty lines).
pub(crate) fn parse_response(buf: &[u8]) -> Parsed<ResponseHead> {
    let mut hs = [httparse::EMPTY_HEADER; FAST_HEADERS];
    let mut resp = httparse::Response::new(&mut hs);
    match config().parse_response(&mut resp, buf) {
        Ok(httparse::Status::Complete(n)) => {
            let Some(status) = resp.code else {
                return lenient_response(buf);
            };
            let head = ResponseHead {
                minor: resp.version.unwrap_or(1).min(1),
                status,
                reason: resp.reason.unwrap_or("").as_bytes().to_vec(),
                headers: fields(resp.headers),
                lenient: false,
                bad_lines: 0,
            };
            Parsed::Complete(head, n)
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => lenient_response(buf),
    }
}

/// The index just past the first empty line of `buf` (the end of a head or trailer section), accepting CRLF and
/// bare LF line endings. `buf` must start at the beginning of a line that is not itself empty.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let j = i + p;
        if j >= 1 && buf[j - 1] == b'\n' {
            return Some(j + 1);
        }
        if j >= 2 && buf[j - 1] == b'\r' && buf[j - 2] == b'\n' {
            return Some(j + 1);
        }
        i = j + 1;
    }
    None
}

/// A token character (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ws(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ws(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `HTTP/1.d` → the minor version (capped at 1).
fn http1_version(v: &[u8]) -> Option<u8> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit() => Some((d - b'0').min(1)),
        _ => None,
    }
}

/// A lenient request line: method, target (may hold spaces), version.
fn request_line(line: &[u8]) -> Option<(&[u8], &[u8], u8)> {
    let line = trim(line);
    let m_end = line.iter().position(|&b| is_ws(b))?;
    let method = &line[..m_end];
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let v_start = line.iter().rposition(|&b| is_ws(b))? + 1;
    let minor = http1_version(&line[v_start..])?;
    if v_start <= m_end {
        return None;
    }
    let target = trim(&line[m_end..v_start]);
    if target.is_empty() || target.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return None;
    }
    Some((method, target, minor))
}

/// A lenient status line: version, three-digit status, optional reason.
fn status_line(line: &[u8]) -> Option<(u8, u16, &[u8])> {
    let minor = http1_version(line.get(..8)?)?;
    let rest = &line[8..];
    if !rest.first().is_some_and(|&b| is_ws(b)) {
        return None;
    }
    let rest = trim(rest);
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code.iter().fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let after = &rest[3..];
    if after.first().is_some_and(|&b| !is_ws(b)) {
        return None;
    }
    Some((minor, status, trim(after)))
}

/// Whether `buf` (no complete first line yet) could still become a request line.
fn plausible_request_prefix(buf: &[u8]) -> bool {
    let m_end = buf.iter().position(|&b| !is_tchar(b)).unwrap_or(buf.len());
    if m_end == 0 && !buf.is_empty() {
        return false;
    }
    buf[m_end..]
        .iter()
        .enumerate()
        .all(|(i, &b)| (i == 0 && is_ws(b)) || (i > 0 && (b >= 0x20 && b != 0x7f || b == b'\t' || b == b'\r')))
}

/// Whether `buf` (no complete first line yet) could still become a status line.
fn plausible_response_prefix(buf: &[u8]) -> bool {
    let n = buf.len().min(7);
    if buf[..n] != b"HTTP/1."[..n] {
        return false;
    }
    match buf.get(7) {
        None => true,
        Some(d) if d.is_ascii_digit() => buf[8..].iter().all(|&b| b >= 0x20 && b != 0x7f || b == b'\t' || b == b'\r'),
        Some(_) => false,
    }
}

/// Parses header lines (after the start line, through the empty line). Folded lines are joined to the previous
/// field with one space; lines without a colon or with an empty name are dropped and counted.
pub(crate) fn parse_fields(block: &[u8]) -> (Vec<Header>, u32) {
    let mut headers: Vec<Header> = Vec::new();
    let mut bad = 0u32;
    for raw in block.split(|&b| b == b'\n') {
        let line = strip_cr(raw);
        if line.is_empty() {
            continue;
        }
        if is_ws(line[0]) {
            let more = trim(line);
            match headers.last_mut() {
                Some(last) => {
                    if !more.is_empty() {
                        if !last.value.is_empty() {
                            last.value.push(b' ');
                        }
                        last.value.extend_from_slice(more);
                    }
                }
                None => bad += 1,
            }
            continue;
        }
        match line.iter().position(|&b| b == b':') {
            Some(c) => {
                let name = trim(&line[..c]);
                if name.is_empty() {
                    bad += 1;
                } else {
                    headers.push(Header::new(name, trim(&line[c + 1..])));
                }
            }
            None => bad += 1,
        }
    }
    (headers, bad)
}

fn lenient_request(buf: &[u8]) -> Parsed<RequestHead> {
    let Some(first_end) = buf.iter().position(|&b| b == b'\n') else {
        return if plausible_request_prefix(buf) { Parsed::Partial } else { Parsed::Invalid };
    };
    let Some((method, target, minor)) = request_line(strip_cr(&buf[..first_end])) else {
        return Parsed::Invalid;
    };
    let Some(end) = find_head_end(buf) else {
        return Parsed::Partial;
    };
    let (headers, bad_lines) = parse_fields(&buf[first_end + 1..end]);
    let head =
        RequestHead { method: method.to_vec(), target: target.to_vec(), minor, headers, lenient: true, bad_lines };
    Parsed::Complete(head, end)
}

fn lenient_response(buf: &[u8]) -> Parsed<ResponseHead> {
    let Some(first_end) = buf.iter().position(|&b| b == b'\n') else {
        return if plausible_response_prefix(buf) { Parsed::Partial } else { Parsed::Invalid };
    };
    let Some((minor, status, reason)) = status_line(strip_cr(&buf[..first_end])) else {
        return Parsed::Invalid;
    };
    let Some(end) = find_head_end(buf) else {
        return Parsed::Partial;
    };
    let (headers, bad_lines) = parse_fields(&buf[first_end + 1..end]);
    let head = ResponseHead { minor, status, reason: reason.to_vec(), headers, lenient: true, bad_lines };
    Parsed::Complete(head, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(buf: &[u8]) -> (RequestHead, usize) {
        match parse_request(buf) {
            Parsed::Complete(h, n) => (h, n),
            other => panic!("expected a head, got {other:?}"),
        }
    }

    fn resp(buf: &[u8]) -> (ResponseHead, usize) {
        match parse_response(buf) {
            Parsed::Complete(h, n) => (h, n),
            other => panic!("expected a head, got {other:?}"),
        }
    }

    #[test]
    fn fast_path_request() {
        let (h, n) = req(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nBODY");
        assert_eq!(n, 45);
        assert_eq!(h.method, b"GET");
        assert_eq!(h.target, b"/a?b=1");
        assert_eq!(h.minor, 1);
        assert_eq!(h.headers, vec![Header::new("Host", "x"), Header::new("Accept", "*/*")]);
        assert!(!h.lenient);
    }

    #[test]
    fn bare_lf_response() {
        let (h, n) = resp(b"HTTP/1.0 404 Not Found\nServer: s\n\nxyz");
        assert_eq!(n, 34);
        assert_eq!((h.minor, h.status), (0, 404));
        assert_eq!(h.reason, b"Not Found");
        assert_eq!(h.headers, vec![Header::new("Server", "s")]);
    }

    #[test]
    fn folded_request_header_is_joined() {
        let (h, n) = req(b"GET / HTTP/1.1\r\nX-Long: a\r\n  b\r\n\tc\r\nHost: h\r\n\r\n");
        assert_eq!(n, 47);
        assert!(h.lenient);
        assert_eq!(h.headers, vec![Header::new("X-Long", "a b c"), Header::new("Host", "h")]);
    }

    #[test]
    fn folded_response_header_is_joined() {
        let (h, _) = resp(b"HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n");
        assert_eq!(h.headers, vec![Header::new("X", "1 2")]);
    }

    #[test]
    fn lenient_spaces_and_bad_lines() {
        let (h, _) = req(b"GET /a b HTTP/1.1\r\nHost : h\r\nno colon here\r\n\r\n");
        assert_eq!(h.target, b"/a b");
        assert_eq!(h.headers, vec![Header::new("Host", "h")]);
        assert_eq!(h.bad_lines, 1);
    }

    #[test]
    fn odd_minor_version_and_no_reason() {
        let (h, _) = resp(b"HTTP/1.2 204\r\n\r\n");
        assert_eq!((h.minor, h.status), (1, 204));
        assert!(h.reason.is_empty());
    }

    #[test]
    fn partial_and_invalid() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial);
        assert_eq!(parse_request(b"GE"), Parsed::Partial);
        assert_eq!(parse_request(b"\x16\x03\x01\x02\x00"), Parsed::Invalid);
        assert_eq!(parse_request(b"GET / HTTP/2.0\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP/1.1 2"), Parsed::Partial);
        assert_eq!(parse_response(b"HTTX/1.1 200 OK\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP/1.1 abc\r\n\r\n"), Parsed::Invalid);
        // A folded line in an incomplete head waits for the end of the head.
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n"), Parsed::Partial);
    }

    #[test]
    fn many_headers_use_the_lenient_path() {
        let mut s = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            s.extend_from_slice(format!("H{i}: v{i}\r\n").as_bytes());
        }
        s.extend_from_slice(b"\r\n");
        let (h, n) = req(&s);
        assert_eq!(n, s.len());
        assert_eq!(h.headers.len(), 100);
        assert_eq!(h.headers[99], Header::new("H99", "v99"));
    }

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"A\r\nB: c\r\n\r\nx"), Some(11));
        assert_eq!(find_head_end(b"A\nB: c\n\nx"), Some(8));
        assert_eq!(find_head_end(b"A\r\nB: c\r\n"), None);
    }
}
