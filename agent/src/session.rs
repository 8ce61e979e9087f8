//! Protocol detection and dispatch for one connection: the [`StreamSink`] that reassembly drives.
//!
//! A connection starts in detection: its first bytes (in arrival order, both directions, up to a cap) are held
//! until content decides what it is — never the port:
//! - the HTTP/2 client preface from one side: HTTP/2 with prior knowledge, that side is the client;
//! - an HTTP/1 request line from one side (that side is the client) or a status line (that side is the server);
//! - a connection joined mid-stream (no handshake, or a gap first) is searched for the next HTTP/1 message start,
//!   or recognised as HTTP/2 by a run of plausible frame headers;
//! - TLS, SSH and anything else still undecided at the cap: ignored and counted (its bytes are not parsed).
//!
//! Once decided, the held bytes are replayed into the parser in arrival order and later bytes go straight to it.
//! An HTTP/1.1 `Upgrade: h2c` answered by `101` hands the connection over to HTTP/2 (the upgraded request becomes
//! stream 1); other upgrades and CONNECT tunnels are recorded as one exchange and the rest of the connection is
//! counted, not parsed.

use std::cell::RefCell;
use std::rc::Rc;

use tapedeck_model::{Exchange, Timestamp};

use crate::http1::{self, Http1Config, Http1Conn, Switch};
use crate::http2::{self, H2Config, H2Conn, H2Start};
use crate::socks;
use crate::stats::{Merge, SessionStats};
use crate::stream::{CloseReason, ConnInfo, ConnMeta, Direction, Side, SinkFactory, StreamSink};

/// Configuration of protocol detection and of the parsers behind it.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// HTTP/1 parser settings.
    pub http1: Http1Config,
    /// HTTP/2 parser settings.
    pub h2: H2Config,
    /// Bytes held per connection while its protocol is undecided; past this it is ignored as not HTTP.
    pub max_detect_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig { http1: Http1Config::default(), h2: H2Config::default(), max_detect_bytes: 16 * 1024 }
    }
}

/// Creates a [`Session`] per connection and gathers the counters of the sessions it made.
#[derive(Debug)]
pub struct SessionFactory {
    cfg: Rc<SessionConfig>,
    totals: Rc<RefCell<SessionStats>>,
}

impl SessionFactory {
    /// A factory for sessions with this configuration.
    pub fn new(cfg: SessionConfig) -> Self {
        SessionFactory { cfg: Rc::new(cfg), totals: Rc::default() }
    }
    /// Counters of every session closed so far (call after the flow table was flushed for a full picture).
    pub fn stats(&self) -> SessionStats {
        self.totals.borrow().clone()
    }
}

impl SinkFactory for SessionFactory {
    type Sink = Session;
    fn new_sink(&mut self, meta: &ConnMeta) -> Session {
        Session {
            meta: *meta,
            cfg: Rc::clone(&self.cfg),
            totals: Rc::clone(&self.totals),
            state: State::Detecting(Detect::default()),
        }
    }
}

/// Bytes held while the protocol is undecided.
#[derive(Debug, Default)]
struct Detect {
    /// Events in arrival order, to be replayed into the parser once it is chosen.
    events: Vec<Held>,
    /// Bytes held per direction (indexed by [`Direction::index`]); each direction has its own cap so that a long
    /// body on one side cannot keep the other side's message start from being seen.
    held: [usize; 2],
    /// Bytes past the cap per direction, not held: replayed as a gap.
    dropped: [u64; 2],
    /// A gap came before any decision: the connection is joined mid-stream.
    gap_seen: bool,
}

/// One held stream event.
#[derive(Debug)]
enum Held {
    Data(Direction, Vec<u8>, Timestamp),
    Gap(Direction, u64, Timestamp),
    Fin(Direction, Timestamp),
}

impl Detect {
    /// All held bytes of one direction, joined.
    fn bytes_of(&self, dir: Direction) -> Vec<u8> {
        let mut v = Vec::new();
        for e in &self.events {
            if let Held::Data(d, b, _) = e
                && *d == dir
            {
                v.extend_from_slice(b);
            }
        }
        v
    }
    fn total_held(&self) -> usize {
        self.held[0] + self.held[1]
    }
    /// Holds bytes of `dir` up to the cap and returns how many were held; the caller decides what becomes of
    /// the rest (delivered if this call decides the protocol, else [`Detect::drop_past_cap`]).
    fn hold(&mut self, dir: Direction, bytes: &[u8], ts: Timestamp, cap: usize) -> usize {
        let i = dir.index();
        let take = bytes.len().min(cap.saturating_sub(self.held[i]));
        if take > 0 {
            self.events.push(Held::Data(dir, bytes[..take].to_vec(), ts));
            self.held[i] += take;
        }
        take
    }
    /// Bytes past the cap while still undecided: not held, replayed as a gap.
    fn drop_past_cap(&mut self, dir: Direction, len: u64, ts: Timestamp) {
        self.add_gap(dir, len, ts);
        self.dropped[dir.index()] += len;
    }
    fn add_gap(&mut self, dir: Direction, len: u64, ts: Timestamp) {
        if let Some(Held::Gap(d, n, _)) = self.events.last_mut()
            && *d == dir
        {
            *n += len;
            return;
        }
        self.events.push(Held::Gap(dir, len, ts));
    }
    /// Whether both directions reached the cap (or one did and the other sent nothing at all).
    fn full(&self, cap: usize) -> bool {
        let full = |i: usize| self.held[i] >= cap;
        (full(0) || self.held[0] == 0 && full(1)) && (full(1) || self.held[1] == 0 && full(0))
    }
}

/// What a connection turned out to be.
#[derive(Debug)]
enum State {
    Detecting(Detect),
    Http1 {
        conn: Box<Http1Conn>,
        client_dir: Direction,
    },
    H2 {
        conn: Box<H2Conn>,
        client_dir: Direction,
    },
    /// Not HTTP, or a tunnel after CONNECT/Upgrade: bytes are counted and dropped.
    Ignored,
    /// Closed: its counters were added to the totals.
    Done,
}

/// The outcome of looking at the held bytes.
enum Decision {
    NeedMore,
    /// HTTP/1, after a SOCKS handshake of these lengths when `socks` is set.
    Http1 {
        client_dir: Direction,
        mid_stream: bool,
        socks: Option<socks::Handshake>,
    },
    H2 {
        client_dir: Direction,
        start_mid_stream: bool,
    },
    Ignore(IgnoreReason),
}

/// Why a connection is not parsed.
#[derive(Clone, Copy, Debug)]
enum IgnoreReason {
    Tls,
    Ssh,
    Unknown,
}

/// One connection: detection, then the HTTP/1 or HTTP/2 parser.
#[derive(Debug)]
pub struct Session {
    meta: ConnMeta,
    cfg: Rc<SessionConfig>,
    totals: Rc<RefCell<SessionStats>>,
    state: State,
}

impl Session {
    fn info(&self, client_dir: Direction, mid_stream: bool) -> ConnInfo {
        let (client, server) = match client_dir {
            Direction::ToResponder => (self.meta.originator, self.meta.responder),
            Direction::ToOriginator => (self.meta.responder, self.meta.originator),
        };
        ConnInfo { id: self.meta.id, client, server, mid_stream }
    }

    /// Looks at the held bytes and decides, if it can.
    fn decide(&self, d: &Detect) -> Decision {
        if self.meta.handshake_seen && !d.gap_seen {
            match self.after_socks(d) {
                Decision::Ignore(IgnoreReason::Unknown) => {}
                decision => return decision,
            }
        }
        let mut undecided = false;
        for dir in [Direction::ToResponder, Direction::ToOriginator] {
            let b = d.bytes_of(dir);
            if b.is_empty() {
                continue;
            }
            if d.gap_seen || !self.meta.handshake_seen {
                // Joined mid-stream: the first byte may be in the middle of anything.
                if let Some(dec) = self.decide_mid_stream(dir, &b) {
                    return dec;
                }
                undecided = true;
                continue;
            }
            match classify_start(&b) {
                Start::H2Preface => return Decision::H2 { client_dir: dir, start_mid_stream: false },
                Start::Request => return Decision::Http1 { client_dir: dir, mid_stream: false, socks: None },
                Start::Response => {
                    return Decision::Http1 { client_dir: dir.reverse(), mid_stream: false, socks: None };
                }
                Start::Tls => return Decision::Ignore(IgnoreReason::Tls),
                Start::Ssh => return Decision::Ignore(IgnoreReason::Ssh),
                Start::NeedMore => undecided = true,
                Start::Other => {
                    // A connection that starts with something else may still carry HTTP/1 after a preamble (a
                    // SOCKS or PROXY header): look for a message start in what is held. HTTP/2 frames here are
                    // not a mid-stream join (the handshake was seen): they are a server preface sent before the
                    // client's, so wait for the client's preface on the other side.
                    if let Some(is_request) = find_http1_start(&b) {
                        let client_dir = if is_request { dir } else { dir.reverse() };
                        return Decision::Http1 { client_dir, mid_stream: true, socks: None };
                    }
                    undecided = true;
                }
            }
        }
        if undecided || d.total_held() == 0 { Decision::NeedMore } else { Decision::Ignore(IgnoreReason::Unknown) }
    }

    /// A SOCKS handshake from the originator, then HTTP/1 (or TLS) through the proxy. `Ignore(Unknown)` when the
    /// connection does not start with a SOCKS handshake, or what it tunnels is something else.
    fn after_socks(&self, d: &Detect) -> Decision {
        let client = d.bytes_of(Direction::ToResponder);
        if client.is_empty() {
            // Nothing from the originator yet: whatever the other side sent decides (a SYN-ACK may carry data).
            return Decision::Ignore(IgnoreReason::Unknown);
        }
        let server = d.bytes_of(Direction::ToOriginator);
        let h = match socks::handshake(&client, &server) {
            socks::Verdict::Done(h) => h,
            socks::Verdict::NeedMore => return Decision::NeedMore,
            socks::Verdict::No => return Decision::Ignore(IgnoreReason::Unknown),
        };
        match classify_start(&client[h.client..]) {
            Start::Request => Decision::Http1 { client_dir: Direction::ToResponder, mid_stream: false, socks: Some(h) },
            Start::Tls => Decision::Ignore(IgnoreReason::Tls),
            Start::NeedMore => Decision::NeedMore,
            _ => Decision::Ignore(IgnoreReason::Unknown),
        }
    }

    /// Decision for bytes that may start in the middle of a message.
    fn decide_mid_stream(&self, dir: Direction, b: &[u8]) -> Option<Decision> {
        match classify_start(b) {
            Start::H2Preface => return Some(Decision::H2 { client_dir: dir, start_mid_stream: false }),
            Start::Tls => return Some(Decision::Ignore(IgnoreReason::Tls)),
            Start::Ssh => return Some(Decision::Ignore(IgnoreReason::Ssh)),
            _ => {}
        }
        if let Some(is_request) = find_http1_start(b) {
            let client_dir = if is_request { dir } else { dir.reverse() };
            return Some(Decision::Http1 { client_dir, mid_stream: true, socks: None });
        }
        if plausible_h2_frames(b) {
            return Some(Decision::H2 { client_dir: self.guess_client_dir(), start_mid_stream: true });
        }
        None
    }

    /// Without a handshake or a request line, the best guess of which side is the client: the originator,
    /// unless only the other side uses a well-known (below 1024) or registered port while the originator uses an
    /// ephemeral one. This only orients a connection already recognised by content.
    fn guess_client_dir(&self) -> Direction {
        let (o, r) = (self.meta.originator.port(), self.meta.responder.port());
        if o < r && o < 32768 && r >= 32768 { Direction::ToOriginator } else { Direction::ToResponder }
    }

    /// Switches from detection to a parser and replays the held bytes into it.
    fn start(&mut self, decision: Decision, d: Detect, out: &mut Vec<Exchange>) {
        match decision {
            Decision::NeedMore => {
                self.state = State::Detecting(d);
                return;
            }
            Decision::Ignore(reason) => {
                let mut t = self.totals.borrow_mut();
                match reason {
                    IgnoreReason::Tls => t.flows_tls += 1,
                    IgnoreReason::Ssh => t.flows_ssh += 1,
                    IgnoreReason::Unknown => t.flows_not_http += 1,
                }
                t.ignored_bytes += d.total_held() as u64 + d.dropped[0] + d.dropped[1];
                self.state = State::Ignored;
                return;
            }
            Decision::Http1 { client_dir, mid_stream, socks } => {
                self.totals.borrow_mut().flows_http1 += 1;
                let conn = Http1Conn::new(&self.cfg.http1, self.info(client_dir, mid_stream));
                self.state = State::Http1 { conn: Box::new(conn), client_dir };
                if let Some(h) = socks {
                    self.replay_after(d, [h.client, h.server], out);
                    return;
                }
            }
            Decision::H2 { client_dir, start_mid_stream } => {
                self.totals.borrow_mut().flows_h2 += 1;
                let start = if start_mid_stream { H2Start::MidStream } else { H2Start::PriorKnowledge };
                let conn = H2Conn::new(&self.cfg.h2, self.info(client_dir, start_mid_stream), start);
                self.state = State::H2 { conn: Box::new(conn), client_dir };
            }
        }
        for event in d.events {
            match event {
                Held::Data(dir, bytes, ts) => self.deliver(dir, &bytes, ts, out),
                Held::Gap(dir, len, ts) => self.gap(dir, len, ts, out),
                Held::Fin(dir, ts) => self.fin(dir, ts, out),
            }
        }
    }

    /// Replays the held events without the first `skip` bytes of each direction (client's, server's), which are
    /// counted as ignored: a SOCKS handshake before the tunnelled HTTP.
    fn replay_after(&mut self, d: Detect, mut skip: [usize; 2], out: &mut Vec<Exchange>) {
        {
            let mut t = self.totals.borrow_mut();
            t.socks_handshakes += 1;
            t.ignored_bytes += (skip[0] + skip[1]) as u64;
        }
        for event in d.events {
            match event {
                Held::Data(dir, bytes, ts) => {
                    let left = &mut skip[usize::from(dir == Direction::ToOriginator)];
                    let n = (*left).min(bytes.len());
                    *left -= n;
                    if n < bytes.len() {
                        self.deliver(dir, &bytes[n..], ts, out);
                    }
                }
                Held::Gap(dir, len, ts) => self.gap(dir, len, ts, out),
                Held::Fin(dir, ts) => self.fin(dir, ts, out),
            }
        }
    }

    /// Hands bytes to the decided parser.
    fn deliver(&mut self, dir: Direction, bytes: &[u8], ts: Timestamp, out: &mut Vec<Exchange>) {
        match &mut self.state {
            State::Http1 { conn, client_dir } => {
                let side = side_of(dir, *client_dir);
                if let Some(switch) = conn.data(side, bytes, ts, out) {
                    let client_dir = *client_dir;
                    self.switch(switch, client_dir, ts, out);
                }
            }
            State::H2 { conn, client_dir } => conn.data(side_of(dir, *client_dir), bytes, ts, out),
            State::Ignored => self.totals.borrow_mut().ignored_bytes += bytes.len() as u64,
            State::Detecting(_) | State::Done => {}
        }
    }

    /// Leaves HTTP/1 after an upgrade or a tunnel.
    fn switch(&mut self, switch: Switch, client_dir: Direction, ts: Timestamp, out: &mut Vec<Exchange>) {
        let old = std::mem::replace(&mut self.state, State::Done);
        if let State::Http1 { mut conn, .. } = old {
            conn.close(ts, out);
            self.totals.borrow_mut().http1.merge(conn.stats());
        }
        match switch {
            Switch::H2cUpgrade { request, timing, order, settings, client_rest, server_rest } => {
                self.totals.borrow_mut().h2c_upgrades += 1;
                let start = H2Start::Upgrade { request, timing, order, settings };
                let conn = H2Conn::new(&self.cfg.h2, self.info(client_dir, false), start);
                let mut conn = Box::new(conn);
                if !client_rest.is_empty() {
                    conn.data(Side::Client, &client_rest, ts, out);
                }
                if !server_rest.is_empty() {
                    conn.data(Side::Server, &server_rest, ts, out);
                }
                self.state = State::H2 { conn, client_dir };
            }
            Switch::Tunnel { client_rest, server_rest } => {
                // A tunnel (CONNECT, WebSocket, other upgrades) may carry anything, HTTP included (a proxy's
                // CONNECT to a plain-HTTP origin): detect again on the tunnelled bytes, as on a new connection.
                self.totals.borrow_mut().tunnels += 1;
                self.state = State::Detecting(Detect::default());
                let server_dir = client_dir.reverse();
                if !client_rest.is_empty() {
                    self.data(client_dir, &client_rest, ts, out);
                }
                if !server_rest.is_empty() {
                    self.data(server_dir, &server_rest, ts, out);
                }
            }
        }
    }

    /// Closes the parser and adds its counters to the totals.
    fn finish(&mut self, ts: Timestamp, out: &mut Vec<Exchange>) {
        let old = std::mem::replace(&mut self.state, State::Done);
        let mut t = self.totals.borrow_mut();
        match old {
            State::Http1 { mut conn, .. } => {
                conn.close(ts, out);
                t.http1.merge(conn.stats());
            }
            State::H2 { mut conn, .. } => {
                conn.close(ts, out);
                t.h2.merge(conn.stats());
            }
            State::Detecting(d) => {
                if d.total_held() > 0 {
                    t.flows_undecided += 1;
                    t.ignored_bytes += d.total_held() as u64;
                }
            }
            State::Ignored | State::Done => {}
        }
    }
}

fn side_of(dir: Direction, client_dir: Direction) -> Side {
    if dir == client_dir { Side::Client } else { Side::Server }
}

impl StreamSink for Session {
    fn data(&mut self, dir: Direction, bytes: &[u8], ts: Timestamp, out: &mut Vec<Exchange>) {
        if let State::Detecting(d) = &mut self.state {
            let cap = self.cfg.max_detect_bytes;
            let held = d.hold(dir, bytes, ts, cap);
            let rest = &bytes[held..];
            let full = d.full(cap);
            let State::Detecting(mut d) = std::mem::replace(&mut self.state, State::Done) else { unreachable!() };
            let mut decision = self.decide(&d);
            if matches!(decision, Decision::NeedMore) {
                if full {
                    decision = Decision::Ignore(IgnoreReason::Unknown);
                } else if !rest.is_empty() {
                    d.drop_past_cap(dir, rest.len() as u64, ts);
                }
            }
            let decided = !matches!(decision, Decision::NeedMore);
            self.start(decision, d, out);
            if decided && !rest.is_empty() {
                self.deliver(dir, rest, ts, out);
            }
            return;
        }
        self.deliver(dir, bytes, ts, out);
    }

    fn gap(&mut self, dir: Direction, len: u64, ts: Timestamp, out: &mut Vec<Exchange>) {
        match &mut self.state {
            State::Detecting(d) => {
                d.gap_seen = true;
                d.add_gap(dir, len, ts);
            }
            State::Http1 { conn, client_dir } => conn.gap(side_of(dir, *client_dir), len, ts, out),
            State::H2 { conn, client_dir } => conn.gap(side_of(dir, *client_dir), len, ts, out),
            State::Ignored | State::Done => {}
        }
    }

    fn fin(&mut self, dir: Direction, ts: Timestamp, out: &mut Vec<Exchange>) {
        match &mut self.state {
            State::Detecting(d) => d.events.push(Held::Fin(dir, ts)),
            State::Http1 { conn, client_dir } => conn.fin(side_of(dir, *client_dir), ts, out),
            State::H2 { conn, client_dir } => conn.fin(side_of(dir, *client_dir), ts, out),
            State::Ignored | State::Done => {}
        }
    }

    fn reset(&mut self, ts: Timestamp, out: &mut Vec<Exchange>) {
        match &mut self.state {
            State::Http1 { conn, .. } => conn.reset(ts, out),
            State::H2 { conn, .. } => conn.reset(ts, out),
            State::Detecting(_) | State::Ignored | State::Done => {}
        }
    }

    fn close(&mut self, _reason: CloseReason, ts: Timestamp, out: &mut Vec<Exchange>) {
        if let State::Detecting(d) = &self.state {
            // The connection ends undecided: decide on what there is (a lone short request is still HTTP).
            if d.total_held() > 0 {
                let State::Detecting(d) = std::mem::replace(&mut self.state, State::Done) else { unreachable!() };
                let decision = match self.decide(&d) {
                    Decision::NeedMore => Decision::Ignore(IgnoreReason::Unknown),
                    other => other,
                };
                self.start(decision, d, out);
            }
        }
        self.finish(ts, out);
    }
}

/// What the first bytes of a direction look like.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    H2Preface,
    Request,
    Response,
    Tls,
    Ssh,
    NeedMore,
    Other,
}

fn classify_start(b: &[u8]) -> Start {
    let p = http2::PREFACE;
    let n = b.len().min(p.len());
    if b[..n] == p[..n] {
        return if n == p.len() { Start::H2Preface } else { Start::NeedMore };
    }
    if b.len() >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04 {
        return Start::Tls;
    }
    if b.starts_with(b"SSH-") {
        return Start::Ssh;
    }
    match (http1::looks_like_request_start(b), http1::looks_like_response_start(b)) {
        (Some(true), _) => Start::Request,
        (_, Some(true)) => Start::Response,
        (None, _) | (_, None) => Start::NeedMore,
        _ => Start::Other,
    }
}

/// Finds where an HTTP/1 message plausibly begins in `b`: at a line start, or after a binary preamble on the
/// same line (a SOCKS or PROXY handshake before the request). `Some(true)` for a request.
fn find_http1_start(b: &[u8]) -> Option<bool> {
    let mut line = 0;
    while line < b.len() {
        let end = memchr::memchr(b'\n', &b[line..]).map_or(b.len(), |i| line + i + 1);
        // Every position of the line where a message could start: its beginning, and each position after a
        // non-text byte (a preamble is binary; text before a request line would be part of something else).
        let mut at = line;
        while at < end {
            let rest = &b[at..];
            if http1::looks_like_request_start(rest) == Some(true) {
                return Some(true);
            }
            if http1::looks_like_response_start(rest) == Some(true) {
                return Some(false);
            }
            match b[at..end].iter().position(|&c| !(c == b'\t' || (0x20..0x7f).contains(&c))) {
                Some(i) => at += i + 1,
                None => break,
            }
        }
        line = end;
    }
    None
}

/// Whether `b` starts with at least two consecutive, plausible HTTP/2 frame headers (RFC 9113 §4.1): a known
/// type, a length within the default maximum frame size (DATA: any, up to the 2^24-1 that peers may allow with
/// SETTINGS_MAX_FRAME_SIZE), the reserved bit clear, and a stream id that fits the type. Used only to recognise
/// HTTP/2 on a connection joined after its preface.
fn plausible_h2_frames(b: &[u8]) -> bool {
    let mut at = 0;
    let mut frames = 0;
    while at + 9 <= b.len() {
        let h = &b[at..at + 9];
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let kind = h[3];
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        let connection_level = matches!(kind, 0x4 | 0x6 | 0x7);
        let stream_level = matches!(kind, 0x0 | 0x1 | 0x2 | 0x3 | 0x5 | 0x9);
        let ok = (len <= 16_384 || kind == 0x0)
            && (kind != 0x0 || h[4] & !0x09 == 0)
            && stream & 0x8000_0000 == 0
            && (connection_level && stream == 0 || stream_level && stream != 0 || kind == 0x8)
            && (kind != 0x4 || len % 6 == 0)
            && (kind != 0x6 || len == 8)
            && (kind != 0x8 || len == 4)
            && (kind != 0x3 || len == 4);
        if !ok {
            return false;
        }
        frames += 1;
        if frames >= 2 {
            return true;
        }
        at += 9 + len;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_known_starts() {
        assert_eq!(classify_start(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Start::H2Preface);
        assert_eq!(classify_start(b"PRI * HT"), Start::NeedMore);
        assert_eq!(classify_start(b"GET / HTTP/1.1\r\n"), Start::Request);
        assert_eq!(classify_start(b"HTTP/1.1 200 OK\r\n"), Start::Response);
        assert_eq!(classify_start(&[0x16, 0x03, 0x01, 0x02, 0x00]), Start::Tls);
        assert_eq!(classify_start(b"SSH-2.0-OpenSSH_9.2\r\n"), Start::Ssh);
        assert_eq!(classify_start(&[0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9]), Start::Other);
    }

    #[test]
    fn finds_a_message_start_after_junk() {
        assert_eq!(find_http1_start(b"tail of a body\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"), Some(true));
        assert_eq!(find_http1_start(b"}\nHTTP/1.1 404 Not Found\r\n\r\n"), Some(false));
        assert_eq!(find_http1_start(b"no http here\r\nat all\r\n"), None);
        // A SOCKS4 CONNECT and its reply before the tunnelled request, on the same "line".
        assert_eq!(find_http1_start(b"\x04\x01\x00\x50\xc0\x96\xbb\x0c\x00GET / HTTP/1.1\r\n"), Some(true));
        assert_eq!(find_http1_start(b"\x00\x5a\x00\x00\x00\x00\x00\x00HTTP/1.1 200 OK\r\n"), Some(false));
        // Text before a method on the same line is not a preamble.
        assert_eq!(find_http1_start(b"xGET / HTTP/1.1 but not at a start"), None);
    }

    use tapedeck_model::Flags;

    fn session() -> (SessionFactory, Session) {
        let mut f = SessionFactory::new(SessionConfig::default());
        let meta = ConnMeta {
            id: 1,
            originator: "10.0.0.1:40000".parse().unwrap(),
            responder: "10.0.0.2:3128".parse().unwrap(),
            handshake_seen: true,
            first_seen: Timestamp(1),
        };
        let s = f.new_sink(&meta);
        (f, s)
    }

    #[test]
    fn http_inside_a_connect_tunnel_is_recorded() {
        let (f, mut s) = session();
        let mut out = Vec::new();
        let (c, sv) = (Direction::ToResponder, Direction::ToOriginator);
        s.data(c, b"CONNECT origin:80 HTTP/1.1\r\nHost: origin:80\r\n\r\n", Timestamp(2), &mut out);
        s.data(sv, b"HTTP/1.1 200 Connection established\r\n\r\n", Timestamp(3), &mut out);
        s.data(c, b"GET /inside HTTP/1.1\r\nHost: origin\r\n\r\n", Timestamp(4), &mut out);
        s.data(sv, b"HTTP/1.1 204 No Content\r\n\r\n", Timestamp(5), &mut out);
        s.close(CloseReason::Closed, Timestamp(6), &mut out);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert_eq!(out[0].request.as_ref().unwrap().method, b"CONNECT");
        assert!(out[0].flags.contains(Flags::UPGRADED));
        assert_eq!(out[1].request.as_ref().unwrap().path, b"/inside");
        assert_eq!(out[1].response.as_ref().unwrap().status, 204);
        assert_eq!(f.stats().tunnels, 1);
    }

    #[test]
    fn tls_inside_a_connect_tunnel_is_counted_not_parsed() {
        let (f, mut s) = session();
        let mut out = Vec::new();
        let (c, sv) = (Direction::ToResponder, Direction::ToOriginator);
        s.data(c, b"CONNECT origin:443 HTTP/1.1\r\nHost: origin:443\r\n\r\n", Timestamp(2), &mut out);
        s.data(sv, b"HTTP/1.1 200 Connection established\r\n\r\n", Timestamp(3), &mut out);
        s.data(c, &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5], Timestamp(4), &mut out);
        s.close(CloseReason::Closed, Timestamp(6), &mut out);
        assert_eq!(out.len(), 1);
        let st = f.stats();
        assert_eq!((st.tunnels, st.flows_tls), (1, 1));
    }

    #[test]
    fn data_from_the_responder_alone_is_still_detected() {
        // A SYN-ACK that carries a request (zeek's payload-synack.pcap): nothing ever comes from the originator,
        // which must not leave detection waiting for a SOCKS greeting.
        let (f, mut s) = session();
        let mut out = Vec::new();
        s.data(Direction::ToOriginator, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", Timestamp(2), &mut out);
        s.close(CloseReason::Closed, Timestamp(3), &mut out);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].request.as_ref().unwrap().path, b"/x");
        assert_eq!(f.stats().flows_http1, 1);
    }

    #[test]
    fn socks5_handshake_then_http() {
        let (f, mut s) = session();
        let mut out = Vec::new();
        let (c, sv) = (Direction::ToResponder, Direction::ToOriginator);
        s.data(c, &[5, 1, 0], Timestamp(2), &mut out);
        s.data(sv, &[5, 0], Timestamp(3), &mut out);
        s.data(c, &[5, 1, 0, 1, 10, 0, 0, 9, 0, 80], Timestamp(4), &mut out);
        s.data(sv, &[5, 0, 0, 1, 10, 0, 0, 9, 0, 80], Timestamp(5), &mut out);
        s.data(c, b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n", Timestamp(6), &mut out);
        s.data(sv, b"HTTP/1.1 204 No Content\r\n\r\n", Timestamp(7), &mut out);
        s.close(CloseReason::Closed, Timestamp(8), &mut out);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].request.as_ref().unwrap().path, b"/first");
        assert!(out[0].flags.is_empty(), "{:?}", out[0].flags);
        assert_eq!((f.stats().socks_handshakes, f.stats().ignored_bytes), (1, 25));
    }

    #[test]
    fn server_settings_before_the_client_preface_is_not_a_mid_stream_join() {
        // grpcio servers send their SETTINGS as soon as the connection is accepted, before the client's preface.
        let (f, mut s) = session();
        let mut out = Vec::new();
        let mut server_preface = vec![0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        server_preface.extend_from_slice(&[0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        s.data(Direction::ToOriginator, &server_preface, Timestamp(2), &mut out);
        let mut client = http2::PREFACE.to_vec();
        client.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        // HEADERS on stream 1, END_STREAM|END_HEADERS: :method GET, :scheme http, :path /, :authority a.
        client.extend_from_slice(&[0, 0, 6, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 0x01, b'a']);
        s.data(Direction::ToResponder, &client, Timestamp(3), &mut out);
        s.close(CloseReason::Closed, Timestamp(4), &mut out);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert!(!out[0].flags.contains(Flags::MID_STREAM), "{:?}", out[0].flags);
        assert_eq!(out[0].request.as_ref().unwrap().authority, b"a");
        assert_eq!(f.stats().flows_h2, 1);
    }

    #[test]
    fn recognises_h2_frames_without_preface() {
        // SETTINGS (empty, stream 0) then HEADERS on stream 1 with 3 bytes of block.
        let mut b = vec![0, 0, 0, 4, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0, 0, 3, 1, 4, 0, 0, 0, 1, 0x82, 0x86, 0x84]);
        assert!(plausible_h2_frames(&b));
        // A SETTINGS frame claiming stream 1 is not HTTP/2.
        let mut bad = b.clone();
        bad[8] = 1;
        assert!(!plausible_h2_frames(&bad));
        assert!(!plausible_h2_frames(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    }

    #[test]
    fn recognises_h2_frames_with_a_data_frame_above_16k() {
        // WINDOW_UPDATE on stream 0, then a 131 060-byte DATA frame on stream 1 (a peer that raised
        // SETTINGS_MAX_FRAME_SIZE, as gRPC C core does): HTTP/2, though the DATA payload is not all here.
        let mut b = vec![0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0];
        b.extend_from_slice(&[0x01, 0xff, 0xf4, 0, 0, 0, 0, 0, 1]);
        b.extend_from_slice(&[0; 100]);
        assert!(plausible_h2_frames(&b));
        // The same DATA frame with a flag DATA does not define is not HTTP/2.
        let mut bad = b.clone();
        bad[13 + 4] = 0x20;
        assert!(!plausible_h2_frames(&bad));
    }
}
