//! One direction's message reader: turns a byte stream into heads, body bytes (transfer-decoded) and message
//! ends, one event per step, or resynchronises after garbage.
//!
//! The reader holds no bytes. [`Reader::step`] works on whatever slice it is given and says how much it consumed;
//! when it needs more (an incomplete head or chunk-size line) the caller keeps the rest and presents it again with
//! more appended, asking [`Reader::want`] how many new bytes are worth appending so that a head is parsed once,
//! when its end has arrived, not again for every packet. The body framing after a head is decided by the
//! connection (it depends on the request for a response) and set with [`Reader::set_framing`].

use tapedeck_model::Header;

use super::body::{self, Framing, MAX_CHUNK_LINE};
use super::head::{self, Parsed, RequestHead, ResponseHead};
use super::scan::{self, Found, Role};

/// A parsed head of either kind.
#[derive(Debug)]
pub(crate) enum Head {
    /// A request head (client side).
    Request(RequestHead),
    /// A response head (server side).
    Response(ResponseHead),
}

/// What one step produced.
#[derive(Debug)]
pub(crate) enum Ev<'a> {
    /// Nothing more can be done with these bytes; present the unconsumed rest again with more appended.
    NeedMore,
    /// Framing bytes were consumed; nothing to report.
    Progress,
    /// A head; the reader waits for [`Reader::set_framing`].
    Head(Head),
    /// Body bytes (after transfer decoding).
    Data(&'a [u8]),
    /// The message is complete, with its trailer fields.
    End(Vec<Header>),
    /// Resync skipped the consumed bytes.
    Skipped,
    /// Garbage (or an oversized head) where a head should be; the reader resyncs from the byte after its first.
    HeadError {
        /// The head exceeded the head size cap.
        too_large: bool,
        /// The bad head was a candidate found by resync (not counted as a new parse error).
        resynced: bool,
    },
    /// The chunked framing of the message in progress is broken; the reader resyncs from here.
    BodyError,
}

/// Where the reader is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Scanning for the next plausible message start.
    Resync,
    /// Expecting a head; `resynced` when resync put it here.
    Head { resynced: bool },
    /// A head was returned; the framing is not set yet.
    AwaitFraming,
    /// A body of known remaining length.
    Length(u64),
    /// A close-delimited body.
    Close,
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk, with its remaining length.
    ChunkData(u64),
    /// Expecting the line end after a chunk's data.
    ChunkEnd,
    /// Expecting trailer fields (or the empty line) after the last chunk.
    Trailers,
    /// The message is complete; the next step reports it.
    EndPending,
    /// Holding bytes until the connection says how to go on (after an upgrade request).
    Paused,
    /// No more messages (the direction ended or the connection switched protocols).
    Closed,
}

/// One direction's message reader.
#[derive(Debug)]
pub(crate) struct Reader {
    role: Role,
    /// Where the reader is.
    pub state: State,
    max_head: usize,
    /// In `Resync`: the first byte of the data is context only (already scanned).
    ctx: bool,
}

impl Reader {
    /// A reader for `role`, starting at a message boundary or (`resync`) by scanning for one.
    pub fn new(role: Role, max_head: usize, resync: bool) -> Self {
        let state = if resync { State::Resync } else { State::Head { resynced: false } };
        Reader { role, state, max_head, ctx: false }
    }

    /// In `Resync`, how many leading bytes of the held data are context only (already scanned): 0 or 1.
    pub fn context_bytes(&self) -> usize {
        usize::from(self.ctx)
    }

    /// Starts scanning for the next message start at the next byte (after a gap: no context).
    pub fn resync(&mut self) {
        self.state = State::Resync;
        self.ctx = false;
    }

    /// Sets the body framing after a head.
    pub fn set_framing(&mut self, f: Framing) {
        self.state = match f {
            Framing::Empty | Framing::Length(0) => State::EndPending,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
    }

    /// One step on `data`: how many bytes were consumed, and what came of them.
    pub fn step<'a>(&mut self, data: &'a [u8]) -> (usize, Ev<'a>) {
        match self.state {
            State::Resync => self.scan(data),
            State::Head { resynced } => self.head(data, resynced),
            State::AwaitFraming | State::Paused => (0, Ev::NeedMore),
            State::Closed => (data.len(), Ev::Skipped),
            State::EndPending => {
                self.state = State::Head { resynced: false };
                (0, Ev::End(Vec::new()))
            }
            State::Length(rem) => {
                if data.is_empty() {
                    return (0, Ev::NeedMore);
                }
                let n = clamp(rem, data.len());
                let left = rem - n as u64;
                self.state = if left == 0 { State::EndPending } else { State::Length(left) };
                (n, Ev::Data(&data[..n]))
            }
            State::Close => {
                if data.is_empty() {
                    return (0, Ev::NeedMore);
                }
                (data.len(), Ev::Data(data))
            }
            State::ChunkSize => {
                let window = &data[..data.len().min(MAX_CHUNK_LINE + 1)];
                match window.iter().position(|&b| b == b'\n') {
                    None if window.len() > MAX_CHUNK_LINE => self.body_error(),
                    None => (0, Ev::NeedMore),
                    Some(j) => match body::parse_chunk_size(&data[..j]) {
                        None => self.body_error(),
                        Some(0) => {
                            self.state = State::Trailers;
                            (j + 1, Ev::Progress)
                        }
                        Some(n) => {
                            self.state = State::ChunkData(n);
                            (j + 1, Ev::Progress)
                        }
                    },
                }
            }
            State::ChunkData(rem) => {
                if data.is_empty() {
                    return (0, Ev::NeedMore);
                }
                let n = clamp(rem, data.len());
                let left = rem - n as u64;
                self.state = if left == 0 { State::ChunkEnd } else { State::ChunkData(left) };
                (n, Ev::Data(&data[..n]))
            }
            State::ChunkEnd => match data {
                [] | [b'\r'] => (0, Ev::NeedMore),
                [b'\n', ..] => {
                    self.state = State::ChunkSize;
                    (1, Ev::Progress)
                }
                [b'\r', b'\n', ..] => {
                    self.state = State::ChunkSize;
                    (2, Ev::Progress)
                }
                _ => self.body_error(),
            },
            State::Trailers => match data {
                [] | [b'\r'] => (0, Ev::NeedMore),
                [b'\n', ..] => self.end(1, Vec::new()),
                [b'\r', b'\n', ..] => self.end(2, Vec::new()),
                _ => match head::find_head_end(data) {
                    Some(e) if e <= self.max_head => self.end(e, head::parse_fields(&data[..e]).0),
                    Some(_) => self.body_error(),
                    None if data.len() > self.max_head => self.body_error(),
                    None => (0, Ev::NeedMore),
                },
            },
        }
    }

    fn end<'a>(&mut self, n: usize, trailers: Vec<Header>) -> (usize, Ev<'a>) {
        self.state = State::Head { resynced: false };
        (n, Ev::End(trailers))
    }

    fn body_error<'a>(&mut self) -> (usize, Ev<'a>) {
        self.state = State::Resync;
        self.ctx = false;
        (0, Ev::BodyError)
    }

    fn scan<'a>(&mut self, data: &'a [u8]) -> (usize, Ev<'a>) {
        // With `ctx`, the first byte was scanned already and is kept only as the previous byte of the next one,
        // so that where the stream was cut into calls does not change what is found.
        let from = usize::from(self.ctx);
        if data.len() <= from {
            return (0, Ev::NeedMore);
        }
        let keep_from = match scan::find_start(data, from, self.role) {
            Found::At(p) => {
                self.state = State::Head { resynced: true };
                self.ctx = false;
                return (p, Ev::Skipped);
            }
            Found::Hold(0) => return (0, Ev::NeedMore),
            Found::Hold(p) => p - 1,
            Found::Nothing => data.len() - 1,
        };
        self.ctx = true;
        if keep_from == 0 { (0, Ev::NeedMore) } else { (keep_from, Ev::Skipped) }
    }

    fn head<'a>(&mut self, data: &'a [u8], resynced: bool) -> (usize, Ev<'a>) {
        let skip = data.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(data.len());
        let d = &data[skip..];
        if d.is_empty() {
            return (skip, Ev::NeedMore);
        }
        let parsed = match self.role {
            Role::Request => match head::parse_request(d) {
                Parsed::Complete(h, n) => Parsed::Complete(Head::Request(h), n),
                Parsed::Partial => Parsed::Partial,
                Parsed::Invalid => Parsed::Invalid,
            },
            Role::Response => match head::parse_response(d) {
                Parsed::Complete(h, n) => Parsed::Complete(Head::Response(h), n),
                Parsed::Partial => Parsed::Partial,
                Parsed::Invalid => Parsed::Invalid,
            },
        };
        match parsed {
            Parsed::Complete(h, n) if n <= self.max_head => {
                self.state = State::AwaitFraming;
                (skip + n, Ev::Head(h))
            }
            Parsed::Complete(..) => self.head_error(skip, true, resynced),
            Parsed::Partial if d.len() > self.max_head => self.head_error(skip, true, resynced),
            Parsed::Partial => (skip, Ev::NeedMore),
            Parsed::Invalid => self.head_error(skip, false, resynced),
        }
    }

    fn head_error<'a>(&mut self, skip: usize, too_large: bool, resynced: bool) -> (usize, Ev<'a>) {
        // Resync scans from the byte after the bad head's first, which stays as context.
        self.state = State::Resync;
        self.ctx = true;
        (skip, Ev::HeadError { too_large, resynced })
    }

    /// How many bytes of `input` are worth appending to `pending` (the unconsumed bytes the last step needed
    /// more for), and whether stepping again is worth it after that: through the end of the head or line being
    /// waited for when it is in `input` (ready), else all of `input` (not ready, unless the cap is reached), so
    /// that a head is parsed once its end has arrived, not again for every packet. At least 1 when `input` is not
    /// empty.
    pub fn want(&self, pending: &[u8], input: &[u8]) -> (usize, bool) {
        let (n, ready) = match self.state {
            State::Head { .. } | State::Trailers => match empty_line_end(pending, input) {
                Some(e) => (e, true),
                None => capped(pending, input, self.max_head),
            },
            State::ChunkSize => match input.iter().position(|&b| b == b'\n') {
                Some(j) => (j + 1, true),
                None => capped(pending, input, MAX_CHUNK_LINE),
            },
            State::ChunkEnd => (2usize.saturating_sub(pending.len()), true),
            State::Paused => (input.len(), false),
            _ => (input.len(), true),
        };
        (n.max(1).min(input.len()), ready)
    }
}

/// All of `input`, unless that takes `pending` past `cap`: then just past it, and ready (to fail).
fn capped(pending: &[u8], input: &[u8], cap: usize) -> (usize, bool) {
    let room = (cap + 1).saturating_sub(pending.len());
    if input.len() >= room { (room, true) } else { (input.len(), false) }
}

fn clamp(rem: u64, len: usize) -> usize {
    usize::try_from(rem).map_or(len, |r| r.min(len))
}

/// The index in `input` just past the first empty line, looking back into `pending` (which starts at a line
/// start) for the line ends before it. At worst an early match makes the reader ask again. A line of nothing but
/// CRs counts as empty.
fn empty_line_end(pending: &[u8], input: &[u8]) -> Option<usize> {
    let at = |k: isize| -> Option<u8> {
        if k >= 0 {
            input.get(k as usize).copied()
        } else {
            // `pending` starts at a line start: treat the byte before it as a line end.
            let i = pending.len() as isize + k;
            if i >= 0 { pending.get(i as usize).copied() } else { Some(b'\n') }
        }
    };
    let mut from = 0usize;
    while let Some(p) = input[from..].iter().position(|&b| b == b'\n') {
        let j = (from + p) as isize;
        // A line of nothing but CRs is empty too (as in `head::find_head_end`).
        let mut k = j - 1;
        while at(k) == Some(b'\r') {
            k -= 1;
        }
        if at(k) == Some(b'\n') {
            return Some(j as usize + 1);
        }
        from += p + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_line_across_the_boundary() {
        assert_eq!(empty_line_end(b"GET / HTTP/1.1\r\n", b"\r\nBODY"), Some(2));
        assert_eq!(empty_line_end(b"GET / HTTP/1.1\r\n\r", b"\nBODY"), Some(1));
        assert_eq!(empty_line_end(b"GET / HTTP/1.1\n", b"\nBODY"), Some(1));
        assert_eq!(empty_line_end(b"GET / HTTP/1.1", b"\r\nA: b\r\n\r\nX"), Some(10));
        assert_eq!(empty_line_end(b"GET / HTTP/1.1", b"\r\nA: b\r\n"), None);
        // An empty trailer section split after its CR.
        assert_eq!(empty_line_end(b"\r", b"\nHTTP"), Some(1));
    }

    #[test]
    fn chunked_steps() {
        let mut r = Reader::new(Role::Response, 1024, false);
        r.set_framing(Framing::Chunked);
        let data = b"3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nrest";
        let mut off = 0;
        let mut body = Vec::new();
        let mut trailers = None;
        while trailers.is_none() {
            let (n, ev) = r.step(&data[off..]);
            off += n;
            match ev {
                Ev::Data(d) => body.extend_from_slice(d),
                Ev::End(t) => trailers = Some(t),
                Ev::Progress => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(body, b"abc");
        assert_eq!(trailers, Some(vec![Header::new("T", "v")]));
        assert_eq!(&data[off..], b"rest");
        assert_eq!(r.state, State::Head { resynced: false });
    }

    #[test]
    fn bad_chunk_line_resyncs() {
        let mut r = Reader::new(Role::Response, 1024, false);
        r.set_framing(Framing::Chunked);
        let (n, ev) = r.step(b"zz\r\n");
        assert_eq!(n, 0);
        assert!(matches!(ev, Ev::BodyError));
        assert_eq!(r.state, State::Resync);
    }

    #[test]
    fn want_stops_at_the_end_of_the_head() {
        let r = Reader::new(Role::Request, 1024, false);
        assert_eq!(r.want(b"GET / HTTP/1.1\r\nA: b", b"\r\n\r\nBODY"), (4, true));
        assert_eq!(r.want(b"GET / HTT", b"P/1.1\r\n"), (7, false));
        let mut big = Reader::new(Role::Request, 10, false);
        assert_eq!(big.want(b"GET /aaaa", b"aaaaaaaaaa"), (2, true));
        big.state = State::ChunkSize;
        assert_eq!(big.want(b"1", b"0\r\nxxxx"), (3, true));
        assert_eq!(big.want(b"1", b"0"), (1, false));
        big.state = State::ChunkEnd;
        assert_eq!(big.want(b"\r", b"\nxx"), (1, true));
        big.state = State::Paused;
        assert_eq!(big.want(b"abc", b"def"), (3, false));
        big.state = State::Resync;
        assert_eq!(big.want(b"", b"abc"), (3, true));
    }
}
