//! Message heads: the request line or status line and the header fields of one HTTP/1 message.
//!
//! httparse handles the common case straight from the caller's bytes. Real peers also send things httparse
//! refuses: obs-fold continuation lines, spaces before the colon, a space inside the target, minor versions other
//! than 0 and 1, more fields than the fast path's array. Those heads go through a lenient line parser. It keeps
//! what it can, joins folded lines with one space (RFC 9112 §5.2), and counts the lines it had to drop. Neither
//! path invents anything.

use tapedeck_model::Header;

use super::scan::is_known_method;

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
    /// The request line is malformed (no target, no version or a version that is not `HTTP/1.x`) and was read
    /// leniently; only known methods are read that way.
    pub malformed: bool,
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
    /// The status line is malformed (a version that is not `HTTP/1.x`, a status that is not three digits) and was
    /// read leniently.
    pub malformed: bool,
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
                malformed: false,
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
                malformed: false,
            };
            Parsed::Complete(head, n)
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => lenient_response(buf),
    }
}

/// The index just past the first empty line of `buf` (the end of a head or trailer section), accepting CRLF and
/// bare LF line endings. A line of nothing but CRs counts as empty (`LF CR CR LF` ends a head for browsers too).
/// `buf` must start at the beginning of a line that is not itself empty.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let j = i + p;
        let crs = buf[..j].iter().rev().take_while(|&&b| b == b'\r').count();
        if j > crs && buf[j - crs - 1] == b'\n' {
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

fn strip_cr(mut line: &[u8]) -> &[u8] {
    while let Some(l) = line.strip_suffix(b"\r") {
        line = l;
    }
    line
}

/// `HTTP/1.d` → the minor version (capped at 1).
fn http1_version(v: &[u8]) -> Option<u8> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', d] if d.is_ascii_digit() => Some((d - b'0').min(1)),
        _ => None,
    }
}

/// The minor version a malformed version token (`HTTP/` and anything: `HTTP/2.0`, `HTTP/1.`, `HTTP/1.01`) is
/// framed as: 0 for what starts like 1.0 or 0.x, otherwise 1 (HTTP/1.1).
fn odd_version(v: &[u8]) -> u8 {
    if v.starts_with(b"HTTP/1.0") || v.starts_with(b"HTTP/0.") { 0 } else { 1 }
}

/// A lenient request line: method, target (may hold spaces), minor version, and whether it is malformed.
///
/// Besides `METHOD target HTTP/1.x`, a known method may come with a version token that is not `HTTP/1.x`
/// (`GET / HTTP/1.`), without a version (`GET /path`, the HTTP/0.9 form), without a target (`GET HTTP/1.1`) or
/// alone (`OPTIONS`): real clients send those, servers answer them (400 mostly), and tshark counts them as
/// requests.
fn request_line(line: &[u8]) -> Option<(&[u8], &[u8], u8, bool)> {
    let line = trim(line);
    if line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return None;
    }
    let m_end = line.iter().position(|&b| is_ws(b)).unwrap_or(line.len());
    let method = &line[..m_end];
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let known = is_known_method(method);
    if m_end == line.len() {
        // The method alone.
        return known.then_some((method, &line[m_end..], 0, true));
    }
    let v_start = line.iter().rposition(|&b| is_ws(b))? + 1;
    let last = &line[v_start..];
    let middle = trim(&line[m_end..v_start]);
    if v_start <= m_end + 1 || middle.is_empty() {
        // Two tokens: the method and a target or a version.
        if !known {
            return None;
        }
        return Some(if last.starts_with(b"HTTP/") {
            (method, &line[line.len()..], http1_version(last).unwrap_or(odd_version(last)), true)
        } else {
            (method, last, 0, true)
        });
    }
    match http1_version(last) {
        Some(minor) => Some((method, middle, minor, false)),
        None if known && last.starts_with(b"HTTP/") => Some((method, middle, odd_version(last), true)),
        None => None,
    }
}

/// A lenient status line: minor version, status, reason, and whether it is malformed.
///
/// Any line starting with `HTTP/` where a response head is expected is a status line for tshark and for browsers.
/// The version token runs to the first space (`HTTP/2.0`, `HTTP/0.9`, `HTTP/1.01` are framed as HTTP/1.1, what
/// starts like `HTTP/1.0` as HTTP/1.0); the status is the run of digits after the spaces (`2000` is 2000, `0204`
/// is 204, `2xx` is 2) and the reason what follows it. Without a status digit after the version and a space it is
/// not a status line.
fn status_line(line: &[u8]) -> Option<(u8, u16, &[u8], bool)> {
    if !line.starts_with(b"HTTP/") {
        return None;
    }
    let v_end = line.iter().position(|&b| is_ws(b))?;
    let version = &line[..v_end];
    let rest = trim(&line[v_end..]);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        // No status code at all (`HTTP/1.1`, `HTTP/1.1 abc`, `HTTP/1.1foobar`): not a status line.
        return None;
    }
    let status = rest[..digits].iter().fold(0u16, |acc, d| acc.saturating_mul(10).saturating_add(u16::from(d - b'0')));
    let after = &rest[digits..];
    let (minor, odd_v) = match http1_version(version) {
        Some(m) => (m, false),
        None => (odd_version(version), true),
    };
    let malformed = odd_v || digits != 3 || after.first().is_some_and(|&b| !is_ws(b));
    Some((minor, status, trim(after), malformed))
}

/// Whether `buf` (no complete first line yet) could still become a request line.
fn plausible_request_prefix(buf: &[u8]) -> bool {
    let m_end = buf.iter().position(|&b| !is_tchar(b)).unwrap_or(buf.len());
    if m_end == 0 && !buf.is_empty() {
        return false;
    }
    buf[m_end..].iter().enumerate().all(|(i, &b)| {
        // A CR right after the method: a method alone on its line (read when the method is known).
        (i == 0 && (is_ws(b) || b == b'\r')) || (i > 0 && (b >= 0x20 && b != 0x7f || b == b'\t' || b == b'\r'))
    })
}

/// A request line a cut (snaplen, lost segment) went through inside its version, as in `GET /a.gif HTT`: method
/// and target are whole (a space followed the target), so the line is completed and returned with its CRLF. The
/// version is kept when all of it was captured and taken as HTTP/1.1 otherwise. `None` for anything else.
pub(crate) fn cut_request_line(buf: &[u8]) -> Option<Vec<u8>> {
    let last_sp = buf.iter().rposition(|&b| b == b' ')?;
    let (line, version) = (&buf[..last_sp], &buf[last_sp + 1..]);
    let method_end = line.iter().position(|&b| b == b' ')?;
    let (method, target) = (&line[..method_end], &line[method_end + 1..]);
    let whole = |b: &[u8]| !b.is_empty() && !b.iter().any(|&c| c <= b' ' || c == 0x7f);
    let is_version_prefix = b"HTTP/1.1".starts_with(version) || b"HTTP/1.0".starts_with(version);
    if version.is_empty()
        || !is_version_prefix
        || !method.iter().all(|&b| is_tchar(b))
        || !whole(method)
        || !whole(target)
    {
        return None;
    }
    let version: &[u8] = if version.len() == 8 { version } else { b"HTTP/1.1" };
    Some([line, b" ", version, b"\r\n"].concat())
}

/// Whether `buf` (no complete first line yet) could still become a status line: it starts with `HTTP/` (or a
/// prefix of it).
fn plausible_response_prefix(buf: &[u8]) -> bool {
    let n = buf.len().min(5);
    buf[..n] == b"HTTP/"[..n]
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
    let Some((method, target, minor, malformed)) = request_line(strip_cr(&buf[..first_end])) else {
        return Parsed::Invalid;
    };
    let Some(end) = find_head_end(buf) else {
        return Parsed::Partial;
    };
    let (headers, bad_lines) = parse_fields(&buf[first_end + 1..end]);
    let head = RequestHead {
        method: method.to_vec(),
        target: target.to_vec(),
        minor,
        headers,
        lenient: true,
        bad_lines,
        malformed,
    };
    Parsed::Complete(head, end)
}

fn lenient_response(buf: &[u8]) -> Parsed<ResponseHead> {
    let Some(first_end) = buf.iter().position(|&b| b == b'\n') else {
        return if plausible_response_prefix(buf) { Parsed::Partial } else { Parsed::Invalid };
    };
    let Some((minor, status, reason, malformed)) = status_line(strip_cr(&buf[..first_end])) else {
        return Parsed::Invalid;
    };
    let Some(end) = find_head_end(buf) else {
        return Parsed::Partial;
    };
    let (headers, bad_lines) = parse_fields(&buf[first_end + 1..end]);
    let head = ResponseHead { minor, status, reason: reason.to_vec(), headers, lenient: true, bad_lines, malformed };
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
    fn request_line_cut_inside_its_version() {
        let cut = |s: &[u8]| cut_request_line(s).map(|l| String::from_utf8(l).unwrap());
        assert_eq!(cut(b"GET /images/sf.net_box.gif HTT").as_deref(), Some("GET /images/sf.net_box.gif HTTP/1.1\r\n"));
        assert_eq!(cut(b"POST /x H").as_deref(), Some("POST /x HTTP/1.1\r\n"));
        assert_eq!(cut(b"GET /x HTTP/1.0").as_deref(), Some("GET /x HTTP/1.0\r\n"));
        // The target itself was cut, or there is nothing of the version, or it is not HTTP/1.
        assert_eq!(cut(b"GET /images/sf.ne"), None);
        assert_eq!(cut(b"GET /x "), None);
        assert_eq!(cut(b"GET /x HTTP/2"), None);
        assert_eq!(cut(b"GET  HTT"), None);
        assert_eq!(cut(b"G\x00T /x HTT"), None);
        assert_eq!(cut(b"HTT"), None);
    }

    #[test]
    fn partial_and_invalid() {
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial);
        assert_eq!(parse_request(b"GE"), Parsed::Partial);
        assert_eq!(parse_request(b"\x16\x03\x01\x02\x00"), Parsed::Invalid);
        // The HTTP/2 preface: PRI is not a known method, so its odd version is not read leniently.
        assert_eq!(parse_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_request(b"FOO /x\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_request(b"GET/ HTTP/1.1\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP/1.1 2"), Parsed::Partial);
        assert_eq!(parse_response(b"HTTX/1.1 200 OK\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTX/1.1 200 OK\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP"), Parsed::Partial);
        assert_eq!(parse_response(b"HTTPS 200\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP/1.1 abc\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP/1.1foobar\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP/1.1\r\nA: b\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse_response(b"HTTP/1.1\x00200\x00ok\r\n\r\n"), Parsed::Invalid);
        // A folded line in an incomplete head waits for the end of the head.
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n"), Parsed::Partial);
    }

    #[test]
    fn odd_status_lines_are_responses() {
        // (line, minor, status, reason)
        let cases: &[(&[u8], u8, u16, &[u8])] = &[
            (b"HTTP/2.0 200 ok", 1, 200, b"ok"),
            (b"HTTP/0.9 200 ok", 0, 200, b"ok"),
            (b"HTTP/1.01 200 ok", 0, 200, b"ok"),
            (b"HTTP/1.10 200 ok", 1, 200, b"ok"),
            (b"HTTP/1..1 200 ok", 1, 200, b"ok"),
            (b"HTTP/1.1\x00 200 ok", 1, 200, b"ok"),
            (b"HTTP/1.0 2XX OK", 0, 2, b"XX OK"),
            (b"HTTP/1.1 2000 ok", 1, 2000, b"ok"),
            (b"HTTP/1.1 0204 ok", 1, 204, b"ok"),
            (b"HTTP/1.1 200Transfer-Encoding:chunked", 1, 200, b"Transfer-Encoding:chunked"),
            (b"HTTP/1.1\r 200 ok", 1, 200, b"ok"),
        ];
        for &(line, minor, status, reason) in cases {
            let mut buf = line.to_vec();
            buf.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
            let (h, n) = resp(&buf);
            let what = String::from_utf8_lossy(line);
            assert_eq!((h.minor, h.status), (minor, status), "{what}");
            assert_eq!(h.reason, reason, "{what}");
            assert!(h.malformed, "{what}");
            assert_eq!(h.headers, vec![Header::new("Content-Length", "2")], "{what}");
            assert_eq!(n, buf.len() - 2, "{what}");
        }
        let (h, _) = resp(b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(!h.malformed);
    }

    #[test]
    fn malformed_request_lines_with_known_methods() {
        // (line, method, target, minor)
        type Case = (&'static [u8], &'static [u8], &'static [u8], u8);
        let cases: &[Case] = &[
            (b"GET / HTTP/1.", b"GET", b"/", 1),
            (b"GET / HTTP/2.0", b"GET", b"/", 1),
            (b"GET /HTTP/1.1", b"GET", b"/HTTP/1.1", 0),
            (b"GET HTTP/1.1", b"GET", b"", 1),
            (b"OPTIONS HTTP/1.1", b"OPTIONS", b"", 1),
            (b"OPTIONS", b"OPTIONS", b"", 0),
            (b"CCM_POST / HTTP/1.", b"CCM_POST", b"/", 1),
        ];
        for &(line, method, target, minor) in cases {
            let mut buf = line.to_vec();
            buf.extend_from_slice(b"\r\nHost: h\r\n\r\n");
            let (h, n) = req(&buf);
            let what = String::from_utf8_lossy(line);
            assert_eq!(h.method, method, "{what}");
            assert_eq!(h.target, target, "{what}");
            assert_eq!(h.minor, minor, "{what}");
            assert!(h.malformed, "{what}");
            assert_eq!(h.headers, vec![Header::new("Host", "h")], "{what}");
            assert_eq!(n, buf.len(), "{what}");
        }
        // Unknown methods, a method glued to its target, non-token methods: not requests.
        for bad in [
            &b"FOO / HTTP/1.\r\n\r\n"[..],
            b"FOO /x\r\n\r\n",
            b"FOO\r\n\r\n",
            b"GET/ HTTP/1.1\r\n\r\n",
            b"GET/HTTP/1.1\r\n\r\n",
            b"\xc3\x83\xc3\x82 / HTTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.\r\n\r\n",
        ] {
            assert_eq!(parse_request(bad), Parsed::Invalid, "{bad:?}");
        }
        // The usual form with an extension method is fine, and not malformed.
        let (h, _) = req(b"WEIRD / HTTP/1.1\r\n\r\n");
        assert_eq!(h.method, b"WEIRD");
        assert!(!h.malformed);
    }

    #[test]
    fn a_line_of_crs_ends_the_head() {
        let buf = b"HTTP/1.1 200 ok\r\nContent-length: 2\n\r\r\nokNEXT";
        let (h, n) = resp(buf);
        assert_eq!(h.headers, vec![Header::new("Content-length", "2")]);
        assert_eq!(&buf[n..], b"okNEXT");
        assert_eq!(find_head_end(b"A\n\r\r\r\nx"), Some(6));
        assert_eq!(find_head_end(b"A\r\nB\r\r\nx"), None);
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
