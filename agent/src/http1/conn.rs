//! The per-connection state machine: pairs requests and responses in order and builds exchanges.
//!
//! Requests wait in a FIFO (pipelining) until a response is assigned to them, in order; a response head with no
//! request waiting becomes an exchange without request. An exchange is emitted as soon as both its request and its
//! final response are complete. Interim (1xx) responses are kept with the exchange they precede. A request asking
//! for a protocol switch (an `Upgrade` field, or CONNECT) makes the client's following bytes wait until its answer
//! says whether they are still HTTP/1; a 101, or a 2xx to CONNECT, ends HTTP/1 on the connection ([`Switch`]).
//!
//! Bytes are parsed straight from the caller's slice; only what a step could not finish (an incomplete head,
//! chunk-size line or resync candidate, or bytes held during an upgrade) is copied, and each later call appends
//! only as much as that piece needs.

use std::collections::VecDeque;
use std::mem;

use tapedeck_model::{Exchange, Flags, Header, Interim, Protocol, Request, Response, Timestamp, Timing};

use crate::body::BodyBuf;
use crate::stream::{ConnInfo, Side};

use super::body::{self, Decision, Framing};
use super::head::{self, RequestHead, ResponseHead};
use super::reader::{Ev, Head, Reader, State};
use super::scan::Role;
use super::{Http1Config, Http1Stats, Switch};

/// Interim responses kept per exchange.
const MAX_INTERIM: usize = 16;

/// A response being received or received.
#[derive(Debug)]
struct RespBuild {
    minor: u8,
    status: u16,
    reason: Vec<u8>,
    headers: Vec<Header>,
    trailers: Vec<Header>,
    body: BodyBuf,
    flags: Flags,
    first: Timestamp,
    last: Option<Timestamp>,
}

/// The response side of a waiting request.
#[derive(Debug)]
enum RespSlot {
    /// No response yet.
    None,
    /// Its response is being received.
    Receiving(RespBuild),
    /// Its response is complete.
    Done(RespBuild),
}

/// A request seen on the connection, waiting for its response (or for its own end).
#[derive(Debug)]
struct ReqEntry {
    order: u32,
    request: Request,
    body: BodyBuf,
    /// The request is complete.
    done: bool,
    minor: u8,
    is_head: bool,
    is_connect: bool,
    /// Asks for a protocol switch: the client's next bytes wait for the answer.
    holds: bool,
    /// Asks for an h2c upgrade.
    h2c: bool,
    timing: Timing,
    flags: Flags,
    interims: Vec<Interim>,
    resp: RespSlot,
}

/// What the server side is receiving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RespCur {
    Nothing,
    Interim,
    /// The response of the request with this order.
    Entry(u32),
    /// A response without request.
    Orphan,
}

/// One direction: its reader and the bytes a step could not finish.
#[derive(Debug)]
struct Dir {
    reader: Reader,
    /// Unconsumed bytes (from `off`).
    pend: Vec<u8>,
    off: usize,
    /// When the oldest pending byte arrived.
    pend_ts: Timestamp,
    /// The pending bytes were stepped on and need more before the next step.
    stalled: bool,
    /// Flags for the next message of this direction (a gap or garbage came before it).
    carry: Flags,
    last_ts: Option<Timestamp>,
    ended: bool,
}

impl Dir {
    fn new(role: Role, cfg: &Http1Config, mid_stream: bool) -> Self {
        Dir {
            reader: Reader::new(role, cfg.max_head_bytes, mid_stream),
            pend: Vec::new(),
            off: 0,
            pend_ts: Timestamp::default(),
            stalled: false,
            carry: if mid_stream { Flags::MID_STREAM } else { Flags::NONE },
            last_ts: None,
            ended: false,
        }
    }

    fn pending(&self) -> &[u8] {
        self.pend.get(self.off..).unwrap_or_default()
    }

    fn clear(&mut self) {
        self.pend.clear();
        self.off = 0;
        self.stalled = false;
    }
}

/// What a server head decided about a protocol switch.
#[allow(clippy::large_enum_variant, reason = "at most one per connection")]
enum SwitchKind {
    Tunnel,
    H2c { request: Request, timing: Timing, order: u32, settings: Option<Vec<u8>> },
}

/// An HTTP/1 connection being parsed.
#[derive(Debug)]
pub struct Http1Conn {
    cfg: Http1Config,
    info: ConnInfo,
    client: Dir,
    server: Dir,
    queue: VecDeque<ReqEntry>,
    /// The request whose head was seen and whose end was not.
    req_cur: Option<u32>,
    resp_cur: RespCur,
    orphan: Option<RespBuild>,
    orphan_interims: Vec<Interim>,
    /// The request whose answer the client's held bytes wait for.
    held_for: Option<u32>,
    next_order: u32,
    server_ended: bool,
    switched: bool,
    closed: bool,
    stats: Http1Stats,
}

// ===== impl Http1Conn =====

impl Http1Conn {
    /// A parser for the connection `info`; a `mid_stream` connection starts by resynchronising both sides.
    pub fn new(cfg: &Http1Config, info: ConnInfo) -> Self {
        let mut stats = Http1Stats::default();
        if info.mid_stream {
            stats.resyncs += 2;
        }
        Http1Conn {
            cfg: *cfg,
            info,
            client: Dir::new(Role::Request, cfg, info.mid_stream),
            server: Dir::new(Role::Response, cfg, info.mid_stream),
            queue: VecDeque::new(),
            req_cur: None,
            resp_cur: RespCur::Nothing,
            orphan: None,
            orphan_interims: Vec::new(),
            held_for: None,
            next_order: 0,
            server_ended: false,
            switched: false,
            closed: false,
            stats,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &Http1Stats {
        &self.stats
    }

    /// In-order bytes from `side`, the first of them captured at `ts`. Completed exchanges are appended to `out`.
    /// Returns a [`Switch`] when the connection leaves HTTP/1 (only on server bytes); later calls are ignored.
    pub fn data(&mut self, side: Side, bytes: &[u8], ts: Timestamp, out: &mut Vec<Exchange>) -> Option<Switch> {
        if self.switched || self.closed || self.dir(side).ended {
            self.stats.ignored_bytes += bytes.len() as u64;
            return None;
        }
        self.dir_mut(side).last_ts = Some(ts);
        self.feed(side, bytes, ts, out)
    }

    /// `len` bytes of `side` were never captured.
    pub fn gap(&mut self, side: Side, len: u64, ts: Timestamp, out: &mut Vec<Exchange>) {
        if self.switched || self.closed || self.dir(side).ended {
            return;
        }
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        if side == Side::Client {
            self.held_for = None;
        }
        let state = self.dir(side).reader.state;
        match state {
            State::Length(rem) => {
                self.body_gap(side, len.min(rem));
                if len < rem {
                    self.dir_mut(side).reader.state = State::Length(rem - len);
                    return;
                }
                self.dir_mut(side).reader.state = State::Head { resynced: false };
                self.end_message(side, Vec::new(), ts, out);
                if len == rem {
                    return;
                }
            }
            State::ChunkData(rem) if len <= rem => {
                self.body_gap(side, len);
                let next = if len == rem { State::ChunkEnd } else { State::ChunkData(rem - len) };
                self.dir_mut(side).reader.state = next;
                return;
            }
            State::Close => {
                // A close-delimited body ends only with the connection: count the hole and keep going.
                self.body_gap(side, len);
                return;
            }
            State::ChunkData(_) | State::ChunkSize | State::ChunkEnd | State::Trailers => {
                self.dir_mut(side).reader.resync();
                self.broken_message(side, Flags::GAP | Flags::INCOMPLETE, ts, out);
            }
            State::Head { .. } => {
                if has_content(self.dir(side).pending()) {
                    self.stats.incomplete_heads += 1;
                    self.salvage_head(side, 0, ts, out);
                }
            }
            // Scanning held a request line that the gap cut inside its version.
            State::Resync if side == Side::Client => {
                let skip = self.dir(side).reader.context_bytes();
                if self.dir(side).pending().get(skip..).and_then(head::cut_request_line).is_some() {
                    self.stats.incomplete_heads += 1;
                    self.salvage_head(side, skip, ts, out);
                }
            }
            State::Resync | State::Paused | State::AwaitFraming | State::EndPending | State::Closed => {}
        }
        let d = self.dir_mut(side);
        let dropped = d.pending().len() as u64;
        d.clear();
        d.carry |= Flags::GAP;
        let was_resync = state == State::Resync;
        d.reader.resync();
        self.stats.resync_skipped_bytes += dropped;
        if !was_resync {
            self.stats.resyncs += 1;
        }
    }

    /// A gap cut a head short (typically a snaplen that cut the packet): what was captured up to the last whole
    /// line is still a message start, its line and the headers before the cut. It is recorded as such, flagged
    /// `gap` and `incomplete` (its body, if any, is unknown), instead of losing the whole message. Never invents a
    /// header: the line the cut went through is dropped (a request line cut inside its version is completed, see
    /// [`head::cut_request_line`]).
    /// The first `skip` held bytes are scanning context, not part of the head.
    fn salvage_head(&mut self, side: Side, skip: usize, ts: Timestamp, out: &mut Vec<Exchange>) {
        let pending = self.dir(side).pending().get(skip..).unwrap_or_default();
        let mut head = match pending.iter().rposition(|&c| c == b'\n') {
            Some(last_nl) => pending[..=last_nl].to_vec(),
            // No whole line: only a request line cut inside its version still says what was asked.
            None if side == Side::Client => match head::cut_request_line(pending) {
                Some(line) => line,
                None => return,
            },
            None => return,
        };
        // Upgrades and tunnels cannot be followed without their whole head: leave those to the resync.
        let switching =
            head.len() >= 12 && (head.starts_with(b"CONNECT ") || &head[..5] == b"HTTP/" && &head[8..12] == b" 101");
        if switching {
            return;
        }
        head.extend_from_slice(b"\r\n");
        self.stats.salvaged_heads += 1;
        let d = self.dir_mut(side);
        d.clear();
        d.carry |= Flags::GAP | Flags::INCOMPLETE;
        let _ = self.feed(side, &head, ts, out);
        if !matches!(self.dir(side).reader.state, State::Head { .. } | State::Resync) {
            // The head announced a body: it was lost in the gap.
            self.broken_message(side, Flags::GAP | Flags::INCOMPLETE, ts, out);
        }
    }

    /// `side` sent its FIN: a close-delimited response ends here, anything else open on that side is incomplete.
    pub fn fin(&mut self, side: Side, ts: Timestamp, out: &mut Vec<Exchange>) {
        if self.switched || self.closed || self.dir(side).ended {
            return;
        }
        if side == Side::Client {
            self.release_hold(out);
        }
        let last = self.dir(side).last_ts.unwrap_or(ts);
        self.end_direction(side, Flags::INCOMPLETE, Flags::NONE, last, out);
        if side == Side::Server {
            self.server_ended = true;
            self.release_hold(out);
            self.drain_ready(out);
        }
    }

    /// The connection was reset: everything open is emitted, flagged `reset`.
    pub fn reset(&mut self, ts: Timestamp, out: &mut Vec<Exchange>) {
        self.shutdown(Flags::RESET, ts, out);
    }

    /// The connection's state is dropped: everything open is emitted, flagged (`incomplete`, `no_response`).
    pub fn close(&mut self, ts: Timestamp, out: &mut Vec<Exchange>) {
        self.shutdown(Flags::NONE, ts, out);
    }

    // ----- driving the readers -----

    fn dir(&self, side: Side) -> &Dir {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    fn dir_mut(&mut self, side: Side) -> &mut Dir {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Runs `side`'s reader over its pending bytes, then over `input`, until it needs more.
    fn feed(&mut self, side: Side, mut input: &[u8], ts: Timestamp, out: &mut Vec<Exchange>) -> Option<Switch> {
        loop {
            let d = self.dir_mut(side);
            if d.off < d.pend.len() {
                if d.stalled {
                    // The pending bytes were stepped on already: append before stepping again.
                    if input.is_empty() {
                        break;
                    }
                    if d.off > 0 {
                        d.pend.drain(..d.off);
                        d.off = 0;
                    }
                    let (k, ready) = d.reader.want(&d.pend, input);
                    d.pend.extend_from_slice(&input[..k]);
                    input = &input[k..];
                    d.stalled = !ready;
                    self.check_hold(side);
                    continue;
                }
                let pend = mem::take(&mut d.pend);
                let off = d.off;
                let first_ts = d.pend_ts;
                let (n, ev) = d.reader.step(&pend[off..]);
                let need_more = matches!(ev, Ev::NeedMore);
                let switch = self.handle(side, n, ev, first_ts, ts, out);
                let d = self.dir_mut(side);
                d.pend = pend;
                d.off = off + n;
                if let Some(kind) = switch {
                    let mut rest = d.pending().to_vec();
                    rest.extend_from_slice(input);
                    d.clear();
                    return Some(self.finish_switch(kind, rest));
                }
                if d.off >= d.pend.len() {
                    d.clear();
                } else if need_more {
                    d.stalled = true;
                }
                continue;
            }
            let (n, ev) = d.reader.step(input);
            let need_more = matches!(ev, Ev::NeedMore);
            let switch = self.handle(side, n, ev, ts, ts, out);
            input = &input[n..];
            if let Some(kind) = switch {
                return Some(self.finish_switch(kind, input.to_vec()));
            }
            if need_more {
                if input.is_empty() {
                    break;
                }
                let d = self.dir_mut(side);
                d.pend_ts = ts;
                d.pend.extend_from_slice(input);
                d.stalled = true;
                input = &[];
                if !self.check_hold(side) {
                    break;
                }
            }
        }
        None
    }

    /// Client bytes held while an upgrade is pending are bounded by the head cap: past it they are parsed as
    /// HTTP/1 after all. Returns whether that happened.
    fn check_hold(&mut self, side: Side) -> bool {
        let max_head = self.cfg.max_head_bytes;
        let d = self.dir_mut(side);
        if d.reader.state == State::Paused && d.pending().len() > max_head {
            d.reader.state = State::Head { resynced: false };
            d.stalled = false;
            self.held_for = None;
            self.stats.upgrade_hold_overflows += 1;
            return true;
        }
        false
    }

    /// Lets the client's held bytes be parsed as HTTP/1 (the upgrade did not happen, or cannot any more).
    fn release_hold(&mut self, out: &mut Vec<Exchange>) {
        self.held_for = None;
        if self.client.reader.state != State::Paused {
            return;
        }
        self.client.reader.state = State::Head { resynced: false };
        self.client.stalled = false;
        let ts = self.client.last_ts.unwrap_or_default();
        // Client bytes never switch protocols, so there is no switch to return.
        let _ = self.feed(Side::Client, &[], ts, out);
    }

    fn handle(
        &mut self,
        side: Side,
        n: usize,
        ev: Ev<'_>,
        first_ts: Timestamp,
        now_ts: Timestamp,
        out: &mut Vec<Exchange>,
    ) -> Option<SwitchKind> {
        match ev {
            Ev::NeedMore | Ev::Progress => {}
            Ev::Skipped => self.stats.resync_skipped_bytes += n as u64,
            Ev::HeadError { too_large, resynced } => {
                if !resynced {
                    self.stats.parse_errors += 1;
                    self.stats.resyncs += 1;
                    self.dir_mut(side).carry |= Flags::PARSE_ERROR;
                } else if too_large {
                    self.stats.parse_errors += 1;
                }
                if too_large {
                    self.stats.oversized_heads += 1;
                }
            }
            Ev::BodyError => {
                self.stats.parse_errors += 1;
                self.stats.resyncs += 1;
                self.broken_message(side, Flags::PARSE_ERROR | Flags::INCOMPLETE, now_ts, out);
            }
            Ev::Head(Head::Request(h)) => self.on_request(h, first_ts, out),
            Ev::Head(Head::Response(h)) => return self.on_response(h, first_ts, out),
            Ev::Data(bytes) => {
                if let Some(b) = self.body_mut(side) {
                    b.push(bytes);
                }
            }
            Ev::End(trailers) => self.end_message(side, trailers, now_ts, out),
        }
        None
    }

    // ----- requests -----

    /// The waiting request with this order. The client's request in progress is the last one and the server's
    /// target is near the front, so each side searches from its end.
    fn entry_mut(&mut self, order: u32) -> Option<&mut ReqEntry> {
        if self.req_cur == Some(order) {
            self.queue.iter_mut().rev().find(|e| e.order == order)
        } else {
            self.queue.iter_mut().find(|e| e.order == order)
        }
    }

    /// The flags a new message starts with: those carried from before it (gap, mid-stream), plus `parse_error`
    /// for a malformed start line or a framing anomaly, each counted.
    fn head_flags(&mut self, carry: Flags, malformed: bool, anomaly: bool) -> Flags {
        let mut flags = carry;
        if malformed {
            flags |= Flags::PARSE_ERROR;
            self.stats.malformed_start_lines += 1;
        }
        if anomaly {
            flags |= Flags::PARSE_ERROR;
            self.stats.framing_anomalies += 1;
        }
        flags
    }

    fn on_request(&mut self, h: RequestHead, first_ts: Timestamp, out: &mut Vec<Exchange>) {
        self.stats.requests += 1;
        if h.lenient {
            self.stats.lenient_heads += 1;
        }
        self.stats.dropped_header_lines += u64::from(h.bad_lines);
        let Decision { framing, anomaly } = body::request_framing(&h.headers);
        let carry = mem::take(&mut self.client.carry);
        let flags = self.head_flags(carry, h.malformed, anomaly);
        let is_head = h.method == b"HEAD";
        let is_connect = h.method == b"CONNECT";
        let upgrade = body::values(&h.headers, "upgrade").next().is_some();
        let h2c = body::list(&h.headers, "upgrade").any(|t| t.eq_ignore_ascii_case(b"h2c"));
        let (scheme, authority) = authority_of(&h);

        if self.queue.len() >= self.cfg.max_pipelined.max(1) {
            let evict = self.queue.iter().position(|e| e.done && matches!(e.resp, RespSlot::None));
            if let Some(e) = evict.and_then(|i| self.queue.remove(i)) {
                self.stats.pipeline_overflows += 1;
                self.emit(e, Flags::NONE, out);
            }
        }

        let order = self.take_order();
        let request = Request {
            method: h.method,
            scheme,
            authority,
            path: h.target,
            headers: h.headers,
            body: Default::default(),
            trailers: Vec::new(),
        };
        self.queue.push_back(ReqEntry {
            order,
            request,
            body: BodyBuf::new(self.cfg.max_body),
            done: false,
            minor: h.minor,
            is_head,
            is_connect,
            holds: upgrade || is_connect,
            h2c,
            timing: Timing { request_first: Some(first_ts), ..Timing::default() },
            flags,
            interims: Vec::new(),
            resp: RespSlot::None,
        });
        self.req_cur = Some(order);
        self.client.reader.set_framing(framing);
    }

    fn take_order(&mut self) -> u32 {
        let o = self.next_order;
        self.next_order = self.next_order.saturating_add(1);
        o
    }

    fn end_request(&mut self, trailers: Vec<Header>, ts: Timestamp, out: &mut Vec<Exchange>) {
        let Some(order) = self.req_cur.take() else {
            return;
        };
        let server_ended = self.server_ended;
        let normal_end = matches!(self.client.reader.state, State::Head { .. });
        let Some(e) = self.entry_mut(order) else {
            return;
        };
        e.request.trailers = trailers;
        e.timing.request_last = Some(ts);
        e.done = true;
        let hold = e.holds && matches!(e.resp, RespSlot::None) && !server_ended && normal_end;
        if hold {
            self.client.reader.state = State::Paused;
            self.held_for = Some(order);
        }
        self.drain_ready(out);
    }

    // ----- responses -----

    /// The index of the first request without a response.
    fn target_index(&self) -> Option<usize> {
        self.queue.iter().position(|e| matches!(e.resp, RespSlot::None))
    }

    fn on_response(&mut self, h: ResponseHead, first_ts: Timestamp, out: &mut Vec<Exchange>) -> Option<SwitchKind> {
        if h.lenient {
            self.stats.lenient_heads += 1;
        }
        self.stats.dropped_header_lines += u64::from(h.bad_lines);
        let status = h.status;
        let target = self.target_index();
        if (100..200).contains(&status) && status != 101 {
            self.stats.interim += 1;
            let interim = Interim { status, headers: h.headers, at: Some(first_ts) };
            let list = match target {
                Some(i) => &mut self.queue[i].interims,
                None => &mut self.orphan_interims,
            };
            if list.len() < MAX_INTERIM {
                list.push(interim);
            } else {
                self.stats.dropped_interim += 1;
            }
            self.resp_cur = RespCur::Interim;
            self.server.reader.set_framing(Framing::Empty);
            return None;
        }
        self.stats.responses += 1;
        let (answers_head, is_connect, h2c, order) = match target.map(|i| &self.queue[i]) {
            Some(e) => (e.is_head, e.is_connect, e.h2c, Some(e.order)),
            None => (false, false, false, None),
        };
        let upgrade = status == 101 || (is_connect && (200..300).contains(&status));
        let Decision { framing, anomaly } = if upgrade {
            Decision { framing: Framing::Empty, anomaly: false }
        } else {
            body::response_framing(status, &h.headers, answers_head)
        };
        let carry = mem::take(&mut self.server.carry);
        let flags = self.head_flags(carry, h.malformed, anomaly);
        let build = RespBuild {
            minor: h.minor,
            status,
            reason: h.reason,
            headers: h.headers,
            trailers: Vec::new(),
            body: BodyBuf::new(self.cfg.max_body),
            flags,
            first: first_ts,
            last: None,
        };
        if upgrade {
            return Some(self.switch_now(target, build, h2c && status == 101, first_ts, out));
        }
        match (target, order) {
            (Some(i), Some(order)) => {
                self.queue[i].resp = RespSlot::Receiving(build);
                self.resp_cur = RespCur::Entry(order);
                if self.held_for == Some(order) {
                    self.release_hold(out);
                }
            }
            _ => {
                self.orphan = Some(build);
                self.resp_cur = RespCur::Orphan;
            }
        }
        self.server.reader.set_framing(framing);
        None
    }

    fn end_response(&mut self, trailers: Vec<Header>, ts: Timestamp, out: &mut Vec<Exchange>) {
        match mem::replace(&mut self.resp_cur, RespCur::Nothing) {
            RespCur::Nothing | RespCur::Interim => {}
            RespCur::Entry(order) => {
                if let Some(e) = self.entry_mut(order)
                    && let RespSlot::Receiving(mut b) = mem::replace(&mut e.resp, RespSlot::None)
                {
                    b.trailers = trailers;
                    b.last = Some(ts);
                    e.resp = RespSlot::Done(b);
                }
                self.drain_ready(out);
            }
            RespCur::Orphan => {
                if let Some(mut b) = self.orphan.take() {
                    b.trailers = trailers;
                    b.last = Some(ts);
                    self.emit_orphan(b, Flags::NONE, out);
                }
            }
        }
    }

    fn end_message(&mut self, side: Side, trailers: Vec<Header>, ts: Timestamp, out: &mut Vec<Exchange>) {
        match side {
            Side::Client => self.end_request(trailers, ts, out),
            Side::Server => self.end_response(trailers, ts, out),
        }
    }

    /// Ends the message in progress on `side` early, with `flags`.
    fn broken_message(&mut self, side: Side, flags: Flags, ts: Timestamp, out: &mut Vec<Exchange>) {
        let found = match side {
            Side::Client => match self.req_cur {
                Some(o) => self.entry_mut(o).map(|e| e.flags |= flags).is_some(),
                None => false,
            },
            Side::Server => match self.resp_cur {
                RespCur::Entry(o) => match self.entry_mut(o).map(|e| &mut e.resp) {
                    Some(RespSlot::Receiving(b)) => {
                        b.flags |= flags;
                        true
                    }
                    _ => false,
                },
                RespCur::Orphan => self.orphan.as_mut().map(|b| b.flags |= flags).is_some(),
                RespCur::Nothing | RespCur::Interim => false,
            },
        };
        if found && flags.contains(Flags::INCOMPLETE) {
            self.stats.incomplete_messages += 1;
        }
        self.end_message(side, Vec::new(), ts, out);
    }

    fn body_mut(&mut self, side: Side) -> Option<&mut BodyBuf> {
        match side {
            Side::Client => {
                let o = self.req_cur?;
                self.entry_mut(o).map(|e| &mut e.body)
            }
            Side::Server => match self.resp_cur {
                RespCur::Entry(o) => match self.entry_mut(o).map(|e| &mut e.resp) {
                    Some(RespSlot::Receiving(b)) => Some(&mut b.body),
                    _ => None,
                },
                RespCur::Orphan => self.orphan.as_mut().map(|b| &mut b.body),
                RespCur::Nothing | RespCur::Interim => None,
            },
        }
    }

    fn body_gap(&mut self, side: Side, len: u64) {
        if let Some(b) = self.body_mut(side) {
            b.gap(len);
        }
    }

    // ----- switching protocols -----

    fn switch_now(
        &mut self,
        target: Option<usize>,
        mut build: RespBuild,
        h2c: bool,
        ts: Timestamp,
        out: &mut Vec<Exchange>,
    ) -> SwitchKind {
        self.stats.upgrades += 1;
        self.switched = true;
        self.held_for = None;
        self.client.reader.state = State::Closed;
        self.server.reader.state = State::Closed;
        build.last = Some(ts);
        build.flags |= Flags::UPGRADED;
        let kind = match target {
            Some(i) if h2c => match self.queue.remove(i) {
                Some(e) => {
                    self.stats.h2c_upgrades += 1;
                    if self.req_cur == Some(e.order) {
                        self.req_cur = None;
                    }
                    let (body, _) = e.body.finish();
                    let mut request = e.request;
                    request.body = body;
                    let settings = body::values(&request.headers, "http2-settings").next().and_then(base64_lenient);
                    SwitchKind::H2c { request, timing: e.timing, order: e.order, settings }
                }
                None => SwitchKind::Tunnel,
            },
            Some(i) => {
                self.queue[i].resp = RespSlot::Done(build);
                SwitchKind::Tunnel
            }
            None => {
                self.emit_orphan(build, Flags::NONE, out);
                SwitchKind::Tunnel
            }
        };
        self.flush_all(Flags::NONE, ts, out);
        self.closed = true;
        kind
    }

    fn finish_switch(&mut self, kind: SwitchKind, server_rest: Vec<u8>) -> Switch {
        match kind {
            SwitchKind::Tunnel => {
                let client_rest = self.client.pending().to_vec();
                self.client.clear();
                Switch::Tunnel { client_rest, server_rest }
            }
            SwitchKind::H2c { request, timing, order, settings } => {
                let client_rest = self.client.pending().to_vec();
                self.client.clear();
                Switch::H2cUpgrade { request, timing, order, settings, client_rest, server_rest }
            }
        }
    }

    // ----- ends -----

    /// Ends `side`'s reader: a close-delimited body gets `close_flags`, any other message in progress
    /// `broken | INCOMPLETE`.
    fn end_direction(&mut self, side: Side, broken: Flags, close_flags: Flags, ts: Timestamp, out: &mut Vec<Exchange>) {
        let state = self.dir(side).reader.state;
        match state {
            State::Close => {
                if !close_flags.is_empty() {
                    self.broken_message(side, close_flags, ts, out);
                } else {
                    self.end_message(side, Vec::new(), ts, out);
                }
            }
            State::Length(_) | State::ChunkSize | State::ChunkData(_) | State::ChunkEnd | State::Trailers => {
                self.dir_mut(side).reader.state = State::Closed;
                self.broken_message(side, broken | Flags::INCOMPLETE, ts, out);
            }
            State::EndPending => self.end_message(side, Vec::new(), ts, out),
            State::Head { .. } => {
                if has_content(self.dir(side).pending()) {
                    self.stats.incomplete_heads += 1;
                }
            }
            State::Resync => self.stats.resync_skipped_bytes += self.dir(side).pending().len() as u64,
            State::Paused | State::AwaitFraming | State::Closed => {}
        }
        let d = self.dir_mut(side);
        d.clear();
        d.reader.state = State::Closed;
        d.ended = true;
    }

    fn shutdown(&mut self, kind: Flags, ts: Timestamp, out: &mut Vec<Exchange>) {
        if self.switched || self.closed {
            return;
        }
        self.release_hold(out);
        for side in [Side::Client, Side::Server] {
            if self.dir(side).ended {
                continue;
            }
            let last = self.dir(side).last_ts.unwrap_or(ts);
            // A close-delimited body ends only with a FIN: cut by a reset (or by the state being dropped), it is
            // incomplete.
            self.end_direction(side, kind, kind | Flags::INCOMPLETE, last, out);
        }
        self.server_ended = true;
        self.flush_all(kind, ts, out);
        self.closed = true;
    }

    /// Emits every exchange still open; unanswered requests also get `unanswered`.
    fn flush_all(&mut self, unanswered: Flags, ts: Timestamp, out: &mut Vec<Exchange>) {
        if let Some(o) = self.req_cur.take()
            && let Some(e) = self.entry_mut(o)
        {
            e.flags |= Flags::INCOMPLETE;
            e.timing.request_last = Some(ts);
            e.done = true;
            self.stats.incomplete_messages += 1;
        }
        match mem::replace(&mut self.resp_cur, RespCur::Nothing) {
            RespCur::Orphan => {
                if let Some(b) = self.orphan.take() {
                    self.stats.incomplete_messages += 1;
                    self.emit_orphan(b, Flags::INCOMPLETE, out);
                }
            }
            RespCur::Entry(_) => self.stats.incomplete_messages += 1,
            RespCur::Nothing | RespCur::Interim => {}
        }
        while let Some(e) = self.queue.pop_front() {
            let extra = match e.resp {
                RespSlot::None => unanswered,
                RespSlot::Receiving(_) => Flags::INCOMPLETE,
                RespSlot::Done(_) => Flags::NONE,
            };
            self.emit(e, extra, out);
        }
        self.stats.dropped_interim += self.orphan_interims.len() as u64;
        self.orphan_interims.clear();
    }

    /// Emits the exchanges at the front of the queue that are complete (or can no longer be answered).
    fn drain_ready(&mut self, out: &mut Vec<Exchange>) {
        while let Some(front) = self.queue.front() {
            let ready = front.done
                && match front.resp {
                    RespSlot::Done(_) => true,
                    RespSlot::None => self.server_ended,
                    RespSlot::Receiving(_) => false,
                };
            if !ready {
                break;
            }
            if let Some(e) = self.queue.pop_front() {
                self.emit(e, Flags::NONE, out);
            }
        }
    }

    // ----- building exchanges -----

    fn finish_body(&mut self, b: BodyBuf, flags: &mut Flags) -> tapedeck_model::Body {
        let (body, f) = b.finish();
        if f.contains(Flags::TRUNCATED) {
            self.stats.truncated_bodies += 1;
        }
        *flags |= f;
        body
    }

    fn response_of(&mut self, b: RespBuild, interim: Vec<Interim>, flags: &mut Flags, timing: &mut Timing) -> Response {
        *flags |= b.flags;
        timing.response_first = Some(b.first);
        timing.response_last = Some(b.last.unwrap_or(b.first));
        let body = self.finish_body(b.body, flags);
        Response { status: b.status, reason: b.reason, headers: b.headers, body, trailers: b.trailers, interim }
    }

    fn emit(&mut self, e: ReqEntry, extra: Flags, out: &mut Vec<Exchange>) {
        let mut flags = e.flags | extra;
        let mut timing = e.timing;
        let mut request = e.request;
        request.body = self.finish_body(e.body, &mut flags);
        if timing.request_last.is_none() {
            timing.request_last = timing.request_first;
        }
        let response = match e.resp {
            RespSlot::Done(b) | RespSlot::Receiving(b) => {
                Some(self.response_of(b, e.interims, &mut flags, &mut timing))
            }
            RespSlot::None => {
                flags |= Flags::NO_RESPONSE;
                self.stats.unanswered_requests += 1;
                self.stats.dropped_interim += e.interims.len() as u64;
                None
            }
        };
        self.push(e.order, proto(e.minor), timing, Some(request), response, flags, out);
    }

    fn emit_orphan(&mut self, b: RespBuild, extra: Flags, out: &mut Vec<Exchange>) {
        self.stats.unmatched_responses += 1;
        let mut flags = extra | Flags::NO_REQUEST;
        let mut timing = Timing::default();
        let minor = b.minor;
        let interim = mem::take(&mut self.orphan_interims);
        let response = self.response_of(b, interim, &mut flags, &mut timing);
        let order = self.take_order();
        self.push(order, proto(minor), timing, None, Some(response), flags, out);
    }

    #[allow(clippy::too_many_arguments, reason = "one place builds every exchange from its parts")]
    fn push(
        &mut self,
        order: u32,
        proto: Protocol,
        timing: Timing,
        request: Option<Request>,
        response: Option<Response>,
        flags: Flags,
        out: &mut Vec<Exchange>,
    ) {
        self.stats.exchanges += 1;
        out.push(Exchange {
            id: 0,
            connection_id: self.info.id,
            order,
            stream_id: None,
            proto,
            client: self.info.client,
            server: self.info.server,
            timing,
            request,
            response,
            flags,
            labels: Vec::new(),
            masked_by: Vec::new(),
        });
    }
}

fn proto(minor: u8) -> Protocol {
    if minor == 0 { Protocol::Http10 } else { Protocol::Http11 }
}

/// Whether held bytes are more than the empty lines allowed between messages.
fn has_content(b: &[u8]) -> bool {
    b.iter().any(|&c| c != b'\r' && c != b'\n')
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) { Some(&s[prefix.len()..]) } else { None }
}

/// The scheme (absolute-form targets only) and the authority: Host, else the authority of an absolute-form
/// target, else a CONNECT authority-form target.
fn authority_of(h: &RequestHead) -> (Vec<u8>, Vec<u8>) {
    let host = body::values(&h.headers, "host").next().map(|v| v.trim_ascii()).filter(|v| !v.is_empty());
    let absolute = [(b"http://".as_slice(), b"http".as_slice()), (b"https://", b"https")]
        .into_iter()
        .find_map(|(prefix, scheme)| strip_prefix_ci(&h.target, prefix).map(|rest| (scheme, rest)));
    let scheme = absolute.map(|(s, _)| s.to_vec()).unwrap_or_default();
    let authority = match (host, absolute) {
        (Some(host), _) => host.to_vec(),
        (None, Some((_, rest))) => {
            let end = rest.iter().position(|&b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
            rest[..end].to_vec()
        }
        (None, None) if h.method == b"CONNECT" => h.target.clone(),
        (None, None) => Vec::new(),
    };
    (scheme, authority)
}

/// Decodes base64url (RFC 4648 §5) leniently: the standard alphabet's `+` and `/` are accepted too, padding and
/// whitespace are ignored, trailing partial bits are dropped. `None` on any other byte.
fn base64_lenient(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in v {
        let x = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' | b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(x);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn base64url_is_lenient() {
        assert_eq!(base64_lenient(b"AAMAAABkAAQAAP__"), Some(vec![0, 3, 0, 0, 0, 100, 0, 4, 0, 0, 255, 255]));
        assert_eq!(base64_lenient(b"AAMAAABkAAQAAP//"), Some(vec![0, 3, 0, 0, 0, 100, 0, 4, 0, 0, 255, 255]));
        assert_eq!(base64_lenient(b"aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64_lenient(b"aGk"), Some(b"hi".to_vec()));
        assert_eq!(base64_lenient(b"a*b"), None);
    }
}
