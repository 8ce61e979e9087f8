//! Recognising where an HTTP/1 message starts, by content: for protocol detection (`looks_like_*`) and for
//! resynchronising after a gap or garbage (scan forward for the next plausible request or status line).
//!
//! A request line start is a method token, a space, a target without controls (spaces inside it are taken, as
//! the lenient head parser takes them), a space, `HTTP/1.` and a digit, then the end of the line. Resync accepts only known methods; detection accepts any upper-case token. A
//! status line start is `HTTP/`, a digit, `.` and a digit (tshark and browsers take `HTTP/2.0 200` or `HTTP/0.9
//! 200` on an HTTP/1 connection for a status line; it is framed as HTTP/1.1), spaces, three digits, then a space
//! or the end of the line. Both reject binary bytes at the first byte that cannot belong.

use super::head::is_tchar;

/// Methods resync accepts, and the only ones a malformed request line may carry (RFC 9110, WebDAV, DeltaV, CalDAV,
/// UPnP, and the extensions tshark also recognises).
const KNOWN_METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"PUT",
    b"DELETE",
    b"HEAD",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"TRACE",
    b"QUERY",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
    b"MKCALENDAR",
    b"MKACTIVITY",
    b"CHECKOUT",
    b"MERGE",
    b"PURGE",
    b"LINK",
    b"UNLINK",
    b"NOTIFY",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"M-SEARCH",
    b"CCM_POST",
    b"POLL",
    b"BCOPY",
    b"BMOVE",
    b"BDELETE",
    b"BPROPFIND",
    b"BPROPPATCH",
    b"LABEL",
    b"UPDATE",
    b"CHECKIN",
    b"UNCHECKOUT",
    b"MKWORKSPACE",
    b"VERSION-CONTROL",
    b"BASELINE-CONTROL",
    b"RPC_IN_DATA",
    b"RPC_OUT_DATA",
];

/// Whether `m` is one of the known methods.
pub(crate) fn is_known_method(m: &[u8]) -> bool {
    KNOWN_METHODS.contains(&m)
}

/// Longest method token considered.
const MAX_METHOD: usize = 24;
/// Longest request target considered when scanning (a longer line is not taken for a request start).
pub(crate) const MAX_TARGET: usize = 16 * 1024;
/// Longest run of spaces accepted between request-line or status-line parts.
const MAX_SPACES: usize = 16;

/// Whether bytes at a position start a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Match {
    /// They do.
    Yes,
    /// They cannot.
    No,
    /// They might: the bytes end before it can be told.
    More,
}

/// Which kind of message start to look for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Request lines (client side).
    Request,
    /// Status lines (server side).
    Response,
}

fn is_method_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'-' || b == b'_'
}

fn is_target_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// Skips up to `MAX_SPACES` spaces from `i`; `None` when there are too many.
fn spaces(b: &[u8], mut i: usize) -> Option<usize> {
    let start = i;
    while i < b.len() && b[i] == b' ' {
        i += 1;
        if i - start > MAX_SPACES {
            return None;
        }
    }
    Some(i)
}

/// `HTTP/1.` and a digit at `i` (with `any_major`, `HTTP/`, a digit, `.` and a digit); returns the index after it.
fn version_at(b: &[u8], i: usize, any_major: bool) -> Result<usize, Match> {
    const V: &[u8] = b"HTTP/1.";
    for (k, want) in V.iter().enumerate() {
        let ok = |c: u8| c == *want || (any_major && k == 5 && c.is_ascii_digit());
        match b.get(i + k) {
            None => return Err(Match::More),
            Some(&c) if ok(c) => {}
            Some(_) => return Err(Match::No),
        }
    }
    match b.get(i + V.len()) {
        None => Err(Match::More),
        Some(d) if d.is_ascii_digit() => Ok(i + V.len() + 1),
        Some(_) => Err(Match::No),
    }
}

/// Whether `b` starts with a request line.
pub(crate) fn request_line_at(b: &[u8], known_only: bool) -> Match {
    let mut i = 0;
    while i < b.len() && is_method_char(b[i]) {
        i += 1;
        if i > MAX_METHOD {
            return Match::No;
        }
    }
    let method = &b[..i];
    if i == b.len() {
        let possible = !known_only || KNOWN_METHODS.iter().any(|m| m.starts_with(method));
        return if possible { Match::More } else { Match::No };
    }
    if method.is_empty() || b[i] != b' ' || (known_only && !KNOWN_METHODS.contains(&method)) {
        return Match::No;
    }
    let Some(t0) = spaces(b, i) else {
        return Match::No;
    };
    i = t0;
    // The target runs to the space before the version; it may hold spaces itself (clients do send them).
    loop {
        while i < b.len() && is_target_byte(b[i]) {
            i += 1;
            if i - t0 > MAX_TARGET {
                return Match::No;
            }
        }
        if i == b.len() {
            return Match::More;
        }
        if method == b"GET" && i > t0 && b[t0] == b'/' && (b[i] == b'\r' || b[i] == b'\n') {
            // An HTTP/0.9 simple request (RFC 1945 §4.1): `GET /path` and the line end, no version.
            break;
        }
        if i == t0 || b[i] != b' ' {
            return Match::No;
        }
        let Some(v) = spaces(b, i) else {
            return Match::No;
        };
        match version_at(b, v, false) {
            Ok(after) => {
                i = after;
                break;
            }
            Err(Match::No) if b.get(v).is_some_and(|&c| is_target_byte(c)) => i = v,
            Err(m) => return m,
        }
    }
    let Some(i) = spaces(b, i) else {
        return Match::No;
    };
    match (b.get(i), b.get(i + 1)) {
        (None, _) => Match::More,
        (Some(b'\n'), _) => Match::Yes,
        (Some(b'\r'), None) => Match::More,
        (Some(b'\r'), Some(b'\n')) => Match::Yes,
        _ => Match::No,
    }
}

/// Whether `b` starts with a status line.
pub(crate) fn status_line_at(b: &[u8]) -> Match {
    let mut i = match version_at(b, 0, true) {
        Ok(i) => i,
        Err(m) => return m,
    };
    match b.get(i) {
        None => return Match::More,
        Some(b' ') => {}
        Some(_) => return Match::No,
    }
    i = match spaces(b, i) {
        Some(i) => i,
        None => return Match::No,
    };
    for k in 0..3 {
        match b.get(i + k) {
            None => return Match::More,
            Some(d) if d.is_ascii_digit() => {}
            Some(_) => return Match::No,
        }
    }
    match b.get(i + 3) {
        None => Match::More,
        Some(b' ' | b'\r' | b'\n') => Match::Yes,
        Some(_) => Match::No,
    }
}

/// Where the next plausible message start is in a buffer being scanned during resync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A message starts here.
    At(usize),
    /// A message might start here; keep the bytes from here and look again with more.
    Hold(usize),
    /// Nothing in the buffer can start a message.
    Nothing,
}

/// Scans `b` from `from` for the first message start of `role`. A candidate must begin the buffer or follow a
/// byte that is not a token character (so that `XGET` or `AHTTP/1.1` do not count); bytes before `from` are only
/// that context.
pub(crate) fn find_start(b: &[u8], from: usize, role: Role) -> Found {
    for i in from..b.len() {
        let c = b[i];
        let first = match role {
            Role::Request => c.is_ascii_uppercase(),
            Role::Response => c == b'H',
        };
        if !first || (i > 0 && is_tchar(b[i - 1])) {
            continue;
        }
        let m = match role {
            Role::Request => request_line_at(&b[i..], true),
            Role::Response => status_line_at(&b[i..]),
        };
        match m {
            Match::Yes => return Found::At(i),
            Match::More => return Found::Hold(i),
            Match::No => {}
        }
    }
    Found::Nothing
}

/// Leading empty lines are allowed before a message; returns the bytes after them, or `None` if all are CR/LF.
fn after_empty_lines(b: &[u8]) -> Option<&[u8]> {
    let n = b.iter().position(|&c| c != b'\r' && c != b'\n')?;
    Some(&b[n..])
}

/// Whether `b` (the first bytes a client sent) starts with an HTTP/1 request line: `Some(true)` yes,
/// `Some(false)` no, `None` when more bytes are needed to tell. Any upper-case method token is accepted, the rest
/// of the line must be a target and `HTTP/1.x`. Binary bytes are rejected at the first byte that cannot belong.
pub fn looks_like_request_start(b: &[u8]) -> Option<bool> {
    let b = after_empty_lines(b)?;
    match request_line_at(b, false) {
        Match::Yes => Some(true),
        Match::No => Some(false),
        Match::More => None,
    }
}

/// Whether `b` (the first bytes a server sent) starts with an HTTP/1 status line (`HTTP/1.x NNN`): `Some(true)`
/// yes, `Some(false)` no, `None` when more bytes are needed to tell.
pub fn looks_like_response_start(b: &[u8]) -> Option<bool> {
    let b = after_empty_lines(b)?;
    match status_line_at(b) {
        Match::Yes => Some(true),
        Match::No => Some(false),
        Match::More => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_starts() {
        assert_eq!(looks_like_request_start(b"GET / HTTP/1.1\r\n"), Some(true));
        assert_eq!(looks_like_request_start(b"\r\nPOST /x?y HTTP/1.0\n"), Some(true));
        assert_eq!(looks_like_request_start(b"BREW /pot HTTP/1.1\r\n"), Some(true));
        assert_eq!(looks_like_request_start(b"GET / HTTP/1.1"), None);
        assert_eq!(looks_like_request_start(b"GE"), None);
        assert_eq!(looks_like_request_start(b""), None);
        assert_eq!(looks_like_request_start(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Some(false));
        assert_eq!(looks_like_request_start(b"\x16\x03\x01\x00\xa5\x01"), Some(false));
        assert_eq!(looks_like_request_start(b"get / HTTP/1.1\r\n"), Some(false));
        assert_eq!(looks_like_request_start(b"GET /\x00 HTTP/1.1\r\n"), Some(false));
        assert_eq!(looks_like_request_start(b"GET / HTTP/1.1x\r\n"), Some(false));
        assert_eq!(looks_like_request_start(b"HTTP/1.1 200 OK\r\n"), Some(false));
        // HTTP/0.9 simple requests: GET with an absolute path and nothing else.
        assert_eq!(looks_like_request_start(b"GET /\r\n\r\n"), Some(true));
        assert_eq!(looks_like_request_start(b"GET /index.html\n"), Some(true));
        assert_eq!(looks_like_request_start(b"POST /\r\n"), Some(false));
        assert_eq!(looks_like_request_start(b"GET x\r\n"), Some(false));
    }

    #[test]
    fn response_starts() {
        assert_eq!(looks_like_response_start(b"HTTP/1.1 200 OK\r\n"), Some(true));
        assert_eq!(looks_like_response_start(b"HTTP/1.0 404\r\n"), Some(true));
        assert_eq!(looks_like_response_start(b"HTTP/1.1 20"), None);
        assert_eq!(looks_like_response_start(b"HTT"), None);
        assert_eq!(looks_like_response_start(b"HTTP/2 200\r\n"), Some(false));
        assert_eq!(looks_like_response_start(b"HTTP/2.0 200 ok\r\n"), Some(true));
        assert_eq!(looks_like_response_start(b"HTTP/0.9 200 ok\r\n"), Some(true));
        assert_eq!(looks_like_response_start(b"HTTP/x.1 200\r\n"), Some(false));
        assert_eq!(looks_like_response_start(b"HTTP/1.1 2000\r\n"), Some(false));
        assert_eq!(looks_like_response_start(b"\x00\x00\x12\x04\x00"), Some(false));
        assert_eq!(looks_like_response_start(b"GET / HTTP/1.1\r\n"), Some(false));
    }

    #[test]
    fn find_in_garbage() {
        assert_eq!(find_start(b"xx\x00\x01GET /a HTTP/1.1\r\n", 0, Role::Request), Found::At(4));
        // Inside a word does not count; an unknown method does not count for resync.
        assert_eq!(find_start(b"XGET /a HTTP/1.1\r\nFOO / HTTP/1.1\r\n", 0, Role::Request), Found::Nothing);
        assert_eq!(find_start(b"abc\nPUT /a HTT", 0, Role::Request), Found::Hold(4));
        assert_eq!(find_start(b"abc\nPU", 0, Role::Request), Found::Hold(4));
        assert_eq!(find_start(b"body HTTP/1.1 200 OK\r\n", 0, Role::Response), Found::At(5));
        assert_eq!(find_start(b"HTTP/1.1 OK\r\nzz H", 0, Role::Response), Found::Hold(16));
        assert_eq!(find_start(b"GET / HTTP/1.1\r\n", 0, Role::Response), Found::Nothing);
        // A context byte before `from` counts as the previous byte.
        assert_eq!(find_start(b"xHTTP/1.1 200 OK\r\n", 1, Role::Response), Found::Nothing);
        assert_eq!(find_start(b" HTTP/1.1 200 OK\r\n", 1, Role::Response), Found::At(1));
    }
}
