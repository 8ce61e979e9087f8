//! One HTTP/2 connection whose client and server are known: per-direction framing and HPACK state, and the streams
//! of the connection turned into exchanges.
//!
//! In: in-order bytes per side, gaps, FIN, reset, close (the [`crate::stream::StreamSink`] events, by [`Side`]).
//! Out: one [`Exchange`] per stream, appended to `out` when both sides ended the stream, on RST_STREAM (`RESET`),
//! at GOAWAY for streams above its last-stream-id (`REFUSED`), when evicted (`EVICTED`), or when the connection
//! ends (`NO_RESPONSE` / `INCOMPLETE`).
//!
//! Per direction the reader is a small state machine:
//! ```text
//!   Preface ──24 bytes match──▶ Header ──9 bytes──▶ Payload (non-DATA, buffered up to max_frame_bytes) ──▶ Header
//!      │ mismatch                  │  ▲       └────▶ Data (streamed into the stream's body, never buffered) ──┘
//!      ▼                           │  │       └────▶ Skip (oversized non-DATA payload, counted) ─────────────┘
//!   Resync ◀── gap / mid-stream ───┘  └── plausible frame header confirmed by the next one
//! ```
//! A gap that falls inside a DATA payload keeps the direction in sync; any other gap loses framing and the
//! direction's HPACK table, which is then decoded in "unknown table" mode (fields that need no table only).

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use tapedeck_model::{Body, Exchange, Flags, Header, Interim, Protocol, Request, Response, Timestamp, Timing};

use super::frame::{self, FrameHeader, HEADER_LEN};
use super::hpack;
use super::stats::H2Stats;
use super::{H2Config, H2Start, PREFACE};
use crate::body::BodyBuf;
use crate::stream::{ConnInfo, Side};

/// Stream ids remembered after their exchange was emitted, so that late frames do not reopen them mid-stream.
const RECENTLY_CLOSED: usize = 256;
/// RFC 7541 §4.1 per-field overhead, also used for SETTINGS_MAX_HEADER_LIST_SIZE accounting (RFC 9113 §6.5.2).
const FIELD_OVERHEAD: usize = 32;

fn idx(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

/// Where a direction's reader is.
#[derive(Debug, Clone, Copy)]
enum ReadState {
    /// Matching the client connection preface; `usize` bytes of it matched so far.
    Preface(usize),
    /// Collecting a 9-byte frame header (in `buf` when split).
    Header,
    /// Buffering the payload of a non-DATA frame.
    Payload(FrameHeader),
    /// Passing a DATA payload through. `left` payload bytes remain; `pad` is the pad length once read.
    Data { h: FrameHeader, left: usize, pad: Option<usize> },
    /// Discarding `left` bytes of an oversized frame.
    Skip { left: usize },
    /// Looking for a frame boundary.
    Resync,
}

/// A header block being assembled from HEADERS / PUSH_PROMISE and CONTINUATION frames.
#[derive(Debug, Clone, Copy)]
struct PendingBlock {
    /// The stream the frames are on.
    stream: u32,
    /// PUSH_PROMISE: the promised stream.
    promised: Option<u32>,
    /// The HEADERS frame carried END_STREAM.
    end_stream: bool,
    /// When the block's first frame started.
    ts: Timestamp,
    /// The block grew past the cap: its bytes are dropped and it will not be decoded.
    dropped: bool,
}

/// One direction of the connection.
#[derive(Debug)]
struct Dir {
    state: ReadState,
    /// Partial frame header, buffered payload, or resync window.
    buf: Vec<u8>,
    /// When the current frame's first byte arrived.
    frame_ts: Timestamp,
    hpack: hpack::Decoder,
    block: Option<PendingBlock>,
    block_buf: Vec<u8>,
    /// Largest frame the peer said it accepts from this direction (SETTINGS_MAX_FRAME_SIZE); `None` when unknown
    /// (joined mid-stream: the SETTINGS that may have raised it were missed).
    peer_max_frame: Option<usize>,
    /// FIN seen.
    ended: bool,
    /// Framing was recovered by scanning: an implausible frame header afterwards means the boundary was wrong.
    recovered: bool,
}

impl Dir {
    fn new(state: ReadState) -> Self {
        Dir {
            state,
            buf: Vec::new(),
            frame_ts: Timestamp::default(),
            hpack: hpack::Decoder::new(),
            block: None,
            block_buf: Vec::new(),
            peer_max_frame: Some(frame::DEFAULT_MAX_FRAME),
            ended: false,
            recovered: false,
        }
    }
}

/// One side of a stream: the message being received.
#[derive(Debug)]
struct Half {
    /// Any frame of this side was seen for the stream.
    seen: bool,
    /// The (final) header block was seen.
    headers_seen: bool,
    /// END_STREAM (or an equivalent end) was seen.
    ended: bool,
    headers: Vec<Header>,
    trailers: Vec<Header>,
    body: BodyBuf,
}

impl Half {
    fn new(cap: usize) -> Self {
        Half {
            seen: false,
            headers_seen: false,
            ended: false,
            headers: Vec::new(),
            trailers: Vec::new(),
            body: BodyBuf::new(cap),
        }
    }
}

/// One stream being assembled into an exchange.
#[derive(Debug)]
struct Stream {
    order: u32,
    flags: Flags,
    timing: Timing,
    method: Vec<u8>,
    scheme: Vec<u8>,
    authority: Vec<u8>,
    path: Vec<u8>,
    status: u16,
    interim: Vec<Interim>,
    req: Half,
    resp: Half,
    /// The body of an h2c upgrade request, as the HTTP/1 parser stored it.
    upgraded_body: Option<Body>,
}

/// Frames to wait, after a RST_STREAM from one side, for the other side's frames already in flight.
pub(crate) const RESET_GRACE_FRAMES: u64 = 64;

/// A passive HTTP/2 decoder for one connection. See the module documentation.
#[derive(Debug)]
pub struct H2Conn {
    cfg: H2Config,
    info: ConnInfo,
    dirs: [Dir; 2],
    streams: FxHashMap<u32, Stream>,
    /// `(order, id)` of streams in the order they were opened, oldest first, so that eviction finds the oldest
    /// stream without scanning them all. Entries of streams emitted since are stale and skipped (and compacted
    /// away when they outnumber the live ones).
    open_order: VecDeque<(u32, u32)>,
    recently_closed: VecDeque<u32>,
    /// Streams reset by one side whose other side may still answer (frames already in flight when the
    /// RST_STREAM was sent): emitted when that side ends too, or after [`RESET_GRACE_FRAMES`] more frames.
    reset_pending: VecDeque<(u32, u64)>,
    /// Frames handled on the connection so far (the clock of `reset_pending`).
    frames_handled: u64,
    /// Highest stream id opened by each side (odd: client, even: server pushes).
    max_opened: [u32; 2],
    next_order: u32,
    /// Last-stream-id of a GOAWAY sent by each side.
    goaway: [Option<u32>; 2],
    /// The connection was joined mid-stream: every exchange is flagged MID_STREAM.
    mid_stream: bool,
    stats: H2Stats,
}

impl H2Conn {
    /// A decoder for a connection described by `info`, starting as `start` says.
    pub fn new(cfg: &H2Config, info: ConnInfo, start: H2Start) -> Self {
        let mut c = H2Conn {
            cfg: cfg.clone(),
            info,
            dirs: [Dir::new(ReadState::Preface(0)), Dir::new(ReadState::Header)],
            streams: FxHashMap::default(),
            open_order: VecDeque::new(),
            recently_closed: VecDeque::new(),
            reset_pending: VecDeque::new(),
            frames_handled: 0,
            max_opened: [0, 0],
            next_order: 0,
            goaway: [None, None],
            mid_stream: false,
            stats: H2Stats::default(),
        };
        match start {
            H2Start::PriorKnowledge => {}
            H2Start::MidStream => {
                c.mid_stream = true;
                for d in &mut c.dirs {
                    d.state = ReadState::Resync;
                    d.hpack.set_unknown();
                    d.peer_max_frame = None;
                }
            }
            H2Start::Upgrade { request, timing, order, settings } => {
                // RFC 9113 §3.2 (and RFC 7540 §3.2): the upgrade request is stream 1, half-closed (local) for the
                // client; HTTP2-Settings carries the client's SETTINGS payload.
                if let Some(s) = settings {
                    c.apply_settings(Side::Client, &s);
                }
                c.next_order = order;
                c.max_opened[0] = 1;
                let mut st = c.new_stream(Flags::UPGRADED);
                st.timing = timing;
                st.method = request.method;
                st.scheme = request.scheme;
                st.authority = request.authority;
                st.path = request.path;
                st.req.seen = true;
                st.req.headers_seen = true;
                st.req.ended = true;
                st.req.headers = request.headers;
                st.req.trailers = request.trailers;
                st.upgraded_body = Some(request.body);
                c.stats.streams_opened += 1;
                c.insert_stream(1, st);
            }
        }
        c
    }

    /// The counters so far.
    pub fn stats(&self) -> &H2Stats {
        &self.stats
    }

    /// In-order bytes from `side`, `ts` being the capture time of the packet that carried the first of them.
    pub fn data(&mut self, side: Side, bytes: &[u8], ts: Timestamp, out: &mut Vec<Exchange>) {
        self.stats.bytes += bytes.len() as u64;
        self.feed(side, bytes, ts, out);
    }

    /// `len` bytes from `side` were never captured.
    pub fn gap(&mut self, side: Side, len: u64, ts: Timestamp, out: &mut Vec<Exchange>) {
        self.stats.gap_bytes += len;
        let d = &mut self.dirs[idx(side)];
        if let ReadState::Data { h, left, pad: Some(pad) } = d.state {
            // The gap ends inside this DATA frame's data (before its padding): framing and HPACK stay in sync.
            if len <= left.saturating_sub(pad) as u64 {
                let left = left - len as usize;
                d.state = ReadState::Data { h, left, pad: Some(pad) };
                self.stats.gaps_in_data += 1;
                if let Some(st) = self.streams.get_mut(&h.stream) {
                    half_mut(st, side).body.gap(len);
                }
                if left == 0 {
                    self.dirs[idx(side)].state = ReadState::Header;
                    self.end_data_frame(side, h, ts, out);
                }
                return;
            }
        }
        self.lose_sync(side);
    }

    /// `side` sent FIN: nothing more comes that way.
    pub fn fin(&mut self, side: Side, ts: Timestamp, out: &mut Vec<Exchange>) {
        self.finish_input(side, ts, out);
        self.dirs[idx(side)].ended = true;
        if self.dirs.iter().all(|d| d.ended) {
            self.flush_all(Flags::NONE, out);
            return;
        }
        // Streams this side had not finished can never finish now.
        let ids: Vec<u32> = self.streams.iter().filter(|(_, st)| !half(st, side).ended).map(|(&id, _)| id).collect();
        for id in ids {
            let Some(st) = self.streams.get_mut(&id) else {
                continue;
            };
            half_mut(st, side).ended = true;
            st.flags |= Flags::INCOMPLETE;
            if st.req.ended && st.resp.ended {
                self.stats.streams_incomplete += 1;
                self.emit(id, Flags::NONE, out);
            }
        }
    }

    /// The TCP connection was reset: every open stream is emitted flagged RESET.
    pub fn reset(&mut self, ts: Timestamp, out: &mut Vec<Exchange>) {
        for side in [Side::Client, Side::Server] {
            self.finish_input(side, ts, out);
        }
        self.flush_all(Flags::RESET, out);
    }

    /// The connection's state is being dropped: every open stream is emitted, flagged as incomplete.
    pub fn close(&mut self, ts: Timestamp, out: &mut Vec<Exchange>) {
        for side in [Side::Client, Side::Server] {
            self.finish_input(side, ts, out);
        }
        self.flush_all(Flags::NONE, out);
    }

    // ===== reading =====

    /// Feeds bytes through the direction's reader. Bytes recovered from a resync window are replayed before the
    /// rest of the input, iteratively (no recursion, whatever the input).
    fn feed(&mut self, side: Side, input: &[u8], ts: Timestamp, out: &mut Vec<Exchange>) {
        let mut input = input;
        let mut replay: Vec<u8> = Vec::new();
        let mut rpos = 0;
        loop {
            let from_replay = rpos < replay.len();
            let chunk: &[u8] = if from_replay { &replay[rpos..] } else { input };
            if chunk.is_empty() {
                break;
            }
            let (used, tail) = self.step(side, chunk, ts, out);
            if from_replay {
                rpos += used;
            } else {
                input = &input[used..];
            }
            if let Some(mut tail) = tail {
                // A boundary was found in the resync window: its bytes from the boundary on come first.
                tail.extend_from_slice(&replay[rpos.min(replay.len())..]);
                replay = tail;
                rpos = 0;
            }
        }
    }

    /// One step of the reader on `input` (not empty): returns the bytes consumed and, when a resync found a frame
    /// boundary, the window bytes from that boundary on, to be read before the rest.
    fn step(&mut self, side: Side, input: &[u8], ts: Timestamp, out: &mut Vec<Exchange>) -> (usize, Option<Vec<u8>>) {
        let i = idx(side);
        let total = input.len();
        let mut input = input;
        {
            match self.dirs[i].state {
                ReadState::Preface(n) => {
                    let want = &PREFACE[n..];
                    let take = want.len().min(input.len());
                    if input[..take] != want[..take] {
                        self.stats.preface_errors += 1;
                        self.dirs[i].state = ReadState::Resync;
                        self.dirs[i].hpack.set_unknown();
                        return (total - input.len(), None);
                    }
                    input = &input[take..];
                    self.dirs[i].state =
                        if n + take == PREFACE.len() { ReadState::Header } else { ReadState::Preface(n + take) };
                }
                ReadState::Header => {
                    let d = &mut self.dirs[i];
                    if d.buf.is_empty() {
                        d.frame_ts = ts;
                        if let Some(h) = FrameHeader::parse(input) {
                            input = &input[HEADER_LEN..];
                            self.begin_frame(side, h, ts, out);
                            return (total - input.len(), None);
                        }
                    }
                    let take = (HEADER_LEN - d.buf.len()).min(input.len());
                    d.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if let Some(h) = FrameHeader::parse(&d.buf) {
                        d.buf.clear();
                        self.begin_frame(side, h, ts, out);
                    }
                }
                ReadState::Payload(h) => {
                    let len = h.len as usize;
                    let d = &mut self.dirs[i];
                    if d.buf.is_empty() && input.len() >= len {
                        let (payload, rest) = input.split_at(len);
                        input = rest;
                        d.state = ReadState::Header;
                        self.handle_frame(side, h, payload, ts, out);
                        return (total - input.len(), None);
                    }
                    let take = (len - d.buf.len()).min(input.len());
                    d.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if d.buf.len() == len {
                        let payload = std::mem::take(&mut d.buf);
                        d.state = ReadState::Header;
                        self.handle_frame(side, h, &payload, ts, out);
                        let mut payload = payload;
                        payload.clear();
                        self.dirs[i].buf = payload;
                    }
                }
                ReadState::Data { h, left, pad } => {
                    let mut left = left;
                    let pad = match pad {
                        Some(p) => p,
                        None => {
                            // First payload byte of a padded DATA frame: the pad length.
                            let p = usize::from(input[0]);
                            input = &input[1..];
                            left -= 1;
                            if p > left {
                                self.malformed(h.stream);
                                self.dirs[i].state = ReadState::Data { h, left, pad: Some(left) };
                            } else {
                                self.dirs[i].state = ReadState::Data { h, left, pad: Some(p) };
                            }
                            if left == 0 {
                                self.dirs[i].state = ReadState::Header;
                                self.end_data_frame(side, h, ts, out);
                            }
                            return (total - input.len(), None);
                        }
                    };
                    let take = left.min(input.len());
                    let data_left = left - pad.min(left);
                    let data = &input[..take.min(data_left)];
                    if !data.is_empty()
                        && let Some(st) = self.streams.get_mut(&h.stream)
                    {
                        let hf = half_mut(st, side);
                        hf.body.push(data);
                    }
                    input = &input[take..];
                    left -= take;
                    if left == 0 {
                        self.dirs[i].state = ReadState::Header;
                        self.end_data_frame(side, h, ts, out);
                    } else {
                        self.dirs[i].state = ReadState::Data { h, left, pad: Some(pad) };
                    }
                }
                ReadState::Skip { left } => {
                    let take = left.min(input.len());
                    input = &input[take..];
                    self.dirs[i].state =
                        if take == left { ReadState::Header } else { ReadState::Skip { left: left - take } };
                }
                ReadState::Resync => {
                    let window = self.resync_window();
                    let d = &mut self.dirs[i];
                    let room = window.saturating_sub(d.buf.len()).max(1);
                    let take = room.min(input.len());
                    d.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let tail = self.scan(side, false);
                    return (total - input.len(), tail);
                }
            }
        }
        (total - input.len(), None)
    }

    /// The largest frame accepted when scanning for a boundary, and the resync window that can confirm it.
    fn max_scan_frame(&self) -> usize {
        self.cfg.max_frame_bytes.max(frame::DEFAULT_MAX_FRAME)
    }

    fn resync_window(&self) -> usize {
        2 * self.max_scan_frame() + 3 * HEADER_LEN
    }

    /// Looks for a frame boundary in the resync window of `side`. A candidate is a plausible frame header whose
    /// successor (right after its payload) is plausible too; at the end of input, a candidate whose payload ends
    /// exactly at the end of the window is accepted. A candidate's own frame must fit in the window: a longer
    /// DATA frame (up to 2^24-1 bytes) is found through the frame before it, and random bytes, where any length
    /// passes for DATA, do not hold the window open.
    fn scan(&mut self, side: Side, at_end: bool) -> Option<Vec<u8>> {
        let i = idx(side);
        let max = self.max_scan_frame();
        let buf = std::mem::take(&mut self.dirs[i].buf);
        let mut pos = 0;
        let mut found = None;
        // The first candidate that could still be confirmed by more bytes: the window is kept from there.
        let mut pending: Option<usize> = None;
        let full = buf.len() >= self.resync_window();
        while pos + HEADER_LEN <= buf.len() {
            if let Some((n, exact)) = chain(&buf, pos, max, self.resync_window()) {
                // Three frames in a row, or two ending exactly where the bytes end, are a boundary; with no more
                // bytes to come (end of input, or a full window) the evidence at hand must do. A confirmed
                // candidate wins over an earlier one still waiting for bytes (which may be a false header whose
                // length swallows real frames).
                if n >= 3 || (exact && n >= 2) || (at_end && exact) || (full && n >= 2) {
                    found = Some(pos);
                    break;
                }
                if !at_end && !full && pending.is_none() {
                    pending = Some(pos);
                }
            }
            pos += 1;
        }
        if found.is_none()
            && let Some(p) = pending
        {
            pos = p;
        }
        match found {
            Some(p) => {
                self.stats.bytes_skipped += p as u64;
                self.stats.mid_stream_recoveries += 1;
                self.dirs[i].state = ReadState::Header;
                self.dirs[i].recovered = true;
                let mut tail = buf;
                tail.drain(..p);
                Some(tail)
            }
            None => {
                let mut keep = buf;
                // Bytes before `pos` cannot start a frame; from `pos` on there is either a candidate waiting for
                // confirmation (its frame fits in the window) or less than a header.
                let drop = if at_end { keep.len() } else { pos.min(keep.len()) };
                self.stats.bytes_skipped += drop as u64;
                keep.drain(..drop);
                self.dirs[i].buf = keep;
                None
            }
        }
    }

    /// Ends the input of `side`: a resync window gets a last look, a partial frame is counted.
    fn finish_input(&mut self, side: Side, ts: Timestamp, out: &mut Vec<Exchange>) {
        let i = idx(side);
        // Each replay consumes at least one frame header, so this ends; `scan` counts what it drops.
        while matches!(self.dirs[i].state, ReadState::Resync)
            && !self.dirs[i].buf.is_empty()
            && let Some(tail) = self.scan(side, true)
        {
            self.feed(side, &tail, ts, out);
        }
        let d = &mut self.dirs[i];
        let partial = match d.state {
            ReadState::Header => !d.buf.is_empty(),
            ReadState::Payload(_) | ReadState::Skip { .. } => true,
            ReadState::Data { h, .. } => {
                if let Some(st) = self.streams.get_mut(&h.stream) {
                    st.flags |= Flags::INCOMPLETE;
                }
                true
            }
            ReadState::Preface(n) => n > 0,
            ReadState::Resync => false,
        };
        if partial {
            self.stats.truncated_frames += 1;
        }
        let d = &mut self.dirs[i];
        d.buf.clear();
        d.state = ReadState::Resync;
        if d.block.take().is_some() {
            self.stats.truncated_frames += 1;
        }
    }

    /// Framing of `side` is lost (a gap outside a DATA payload): drop partial state, forget the HPACK table, flag
    /// the streams the gap may touch, and look for the next frame boundary.
    fn lose_sync(&mut self, side: Side) {
        let d = &mut self.dirs[idx(side)];
        d.state = ReadState::Resync;
        d.buf.clear();
        d.block = None;
        d.block_buf.clear();
        d.hpack.set_unknown();
        for st in self.streams.values_mut() {
            let hf = half_mut(st, side);
            if !hf.ended {
                hf.body.gap(0);
                st.flags |= Flags::GAP;
            }
        }
    }

    fn begin_frame(&mut self, side: Side, h: FrameHeader, ts: Timestamp, out: &mut Vec<Exchange>) {
        let i = idx(side);
        if self.dirs[i].recovered && !h.plausible_or_extension(self.max_scan_frame()) {
            // The recovered boundary was a false one (or an extension frame): look again.
            self.stats.protocol_errors += 1;
            self.lose_sync(side);
            return;
        }
        self.stats.count_frame(h.ty);
        let len = h.len as usize;
        // RFC 9113 §6.10: a header block in progress admits only CONTINUATION frames of its stream.
        if let Some(b) = self.dirs[i].block
            && (h.ty != frame::CONTINUATION || h.stream != b.stream)
        {
            self.stats.protocol_errors += 1;
            self.abandon_block(side, true);
        }
        if h.ty == frame::DATA {
            if self.dirs[i].peer_max_frame.is_some_and(|m| len > m.max(self.cfg.max_frame_bytes)) {
                self.stats.oversized_frames += 1;
            }
            self.start_data(side, h, ts, out);
            if len == 0 {
                self.end_data_frame(side, h, ts, out);
            } else {
                let pad = if h.has(frame::FLAG_PADDED) { None } else { Some(0) };
                self.dirs[i].state = ReadState::Data { h, left: len, pad };
            }
            return;
        }
        if len > self.cfg.max_frame_bytes.max(frame::DEFAULT_MAX_FRAME) {
            self.stats.oversized_frames += 1;
            self.dirs[i].state = ReadState::Skip { left: len };
            match h.ty {
                frame::HEADERS | frame::PUSH_PROMISE | frame::CONTINUATION => {
                    self.dirs[i].hpack.set_unknown();
                    self.abandon_block(side, false);
                    self.malformed(h.stream);
                    if h.ty == frame::HEADERS && h.has(frame::FLAG_END_STREAM) {
                        self.end_side(side, h.stream, ts, out);
                    }
                }
                _ => self.malformed(0),
            }
            return;
        }
        if len == 0 {
            self.dirs[i].state = ReadState::Header;
            self.handle_frame(side, h, &[], ts, out);
        } else {
            self.dirs[i].state = ReadState::Payload(h);
        }
    }

    // ===== frames =====

    fn handle_frame(&mut self, side: Side, h: FrameHeader, payload: &[u8], ts: Timestamp, out: &mut Vec<Exchange>) {
        self.frames_handled += 1;
        while let Some(&(id, deadline)) = self.reset_pending.front() {
            if deadline > self.frames_handled {
                break;
            }
            self.reset_pending.pop_front();
            self.emit(id, Flags::RESET, out);
        }
        let i = idx(side);
        let frame_ts = self.dirs[i].frame_ts;
        match h.ty {
            frame::HEADERS => match frame::headers_fragment(&h, payload) {
                Ok(frag) => {
                    let b = PendingBlock {
                        stream: h.stream,
                        promised: None,
                        end_stream: h.has(frame::FLAG_END_STREAM),
                        ts: frame_ts,
                        dropped: false,
                    };
                    self.block_fragment(side, b, frag, h.has(frame::FLAG_END_HEADERS), ts, out);
                }
                Err(_) => {
                    self.malformed(h.stream);
                    self.dirs[i].hpack.set_unknown();
                    if h.has(frame::FLAG_END_STREAM) {
                        self.end_side(side, h.stream, ts, out);
                    }
                }
            },
            frame::CONTINUATION => match self.dirs[i].block {
                Some(b) if b.stream == h.stream => {
                    self.block_fragment(side, b, payload, h.has(frame::FLAG_END_HEADERS), ts, out)
                }
                _ => {
                    // A CONTINUATION without its HEADERS: expected right after a resync, else a protocol error.
                    if !self.dirs[i].hpack.is_known() {
                        self.stats.frames_on_closed_streams += 1;
                    } else {
                        self.stats.protocol_errors += 1;
                    }
                }
            },
            frame::PUSH_PROMISE => match frame::push_promise(&h, payload) {
                Ok((promised, frag)) => {
                    self.stats.push_promises += 1;
                    let b = PendingBlock {
                        stream: h.stream,
                        promised: Some(promised),
                        end_stream: false,
                        ts: frame_ts,
                        dropped: false,
                    };
                    self.block_fragment(side, b, frag, h.has(frame::FLAG_END_HEADERS), ts, out);
                }
                Err(_) => {
                    self.malformed(h.stream);
                    self.dirs[i].hpack.set_unknown();
                }
            },
            frame::RST_STREAM => match frame::rst_stream(&h, payload) {
                Ok(_code) => {
                    if let Some(st) = self.streams.get_mut(&h.stream) {
                        self.stats.streams_reset += 1;
                        st.flags |= Flags::RESET;
                        half_mut(st, side).ended = true;
                        // The other side may have answered before it saw the reset: its frames are still on the
                        // wire. Wait a little for them rather than dropping a response that was sent.
                        if half(st, side.other()).ended {
                            self.emit(h.stream, Flags::RESET, out);
                        } else {
                            self.reset_pending.push_back((h.stream, self.frames_handled + RESET_GRACE_FRAMES));
                        }
                    } else {
                        self.stats.frames_on_closed_streams += 1;
                    }
                }
                Err(_) => self.malformed(h.stream),
            },
            frame::SETTINGS => {
                if !h.has(frame::FLAG_ACK) {
                    if frame::settings(&h, payload).is_ok() {
                        self.apply_settings(side, payload);
                    } else {
                        self.malformed(0);
                    }
                } else if !payload.is_empty() {
                    self.malformed(0);
                }
            }
            frame::GOAWAY => match frame::goaway(&h, payload) {
                Ok((last, _code)) => {
                    self.stats.goaways += 1;
                    self.goaway[i] = Some(last);
                    // Streams initiated by the receiver of the GOAWAY above last-stream-id were not processed.
                    let refused_parity = if side == Side::Server { 1 } else { 0 };
                    let mut ids: Vec<u32> =
                        self.streams.keys().copied().filter(|&id| id > last && id % 2 == refused_parity).collect();
                    ids.sort_unstable();
                    for id in ids {
                        self.stats.streams_refused += 1;
                        self.emit(id, Flags::REFUSED, out);
                    }
                }
                Err(_) => self.malformed(0),
            },
            frame::PRIORITY if frame::fixed(&h, payload, 5).is_err() => self.malformed(h.stream),
            frame::PING if frame::fixed(&h, payload, 8).is_err() => self.malformed(0),
            frame::WINDOW_UPDATE if frame::window_update(&h, payload).is_err() => self.malformed(h.stream),
            // Well-formed PRIORITY, PING, WINDOW_UPDATE carry nothing an exchange records; RFC 9113 §4.1: unknown
            // frame types are ignored (counted in begin_frame).
            _ => {}
        }
    }

    /// Applies a SETTINGS payload sent by `side`: it limits what the *other* direction may send.
    fn apply_settings(&mut self, side: Side, payload: &[u8]) {
        let other = idx(side.other());
        for c in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([c[0], c[1]]);
            let v = u32::from_be_bytes([c[2], c[3], c[4], c[5]]) as usize;
            match id {
                frame::SETTINGS_HEADER_TABLE_SIZE => self.dirs[other].hpack.set_max_allowed(v),
                frame::SETTINGS_MAX_FRAME_SIZE => self.dirs[other].peer_max_frame = Some(v),
                _ => {}
            }
        }
    }

    /// Appends a header block fragment; decodes the block when it is complete.
    fn block_fragment(
        &mut self,
        side: Side,
        mut b: PendingBlock,
        frag: &[u8],
        end_headers: bool,
        ts: Timestamp,
        out: &mut Vec<Exchange>,
    ) {
        let i = idx(side);
        let d = &mut self.dirs[i];
        if d.block.is_none() {
            d.block_buf.clear();
        }
        if !b.dropped && d.block_buf.len() + frag.len() > self.cfg.max_header_list_bytes {
            self.stats.header_blocks_oversized += 1;
            b.dropped = true;
            d.block_buf.clear();
            d.hpack.set_unknown();
        }
        if !b.dropped {
            d.block_buf.extend_from_slice(frag);
        }
        if !end_headers {
            d.block = Some(b);
            return;
        }
        d.block = None;
        let block = std::mem::take(&mut d.block_buf);
        self.finish_block(side, b, &block, ts, out);
        let mut block = block;
        block.clear();
        self.dirs[i].block_buf = block;
    }

    /// Drops a header block in progress (its CONTINUATIONs never came): the table state is lost with it.
    fn abandon_block(&mut self, side: Side, flag: bool) {
        let d = &mut self.dirs[idx(side)];
        if let Some(b) = d.block.take() {
            d.block_buf.clear();
            d.hpack.set_unknown();
            if flag {
                self.malformed(b.stream);
            }
        }
    }

    /// Decodes a complete header block and applies it to its stream.
    fn finish_block(&mut self, side: Side, b: PendingBlock, block: &[u8], ts: Timestamp, out: &mut Vec<Exchange>) {
        let i = idx(side);
        let cap = self.cfg.max_header_list_bytes;
        let mut fields: Vec<Header> = Vec::new();
        let mut flags = Flags::NONE;
        if b.dropped {
            flags |= Flags::PARSE_ERROR | Flags::HPACK_UNKNOWN;
        } else {
            let mut total = 0usize;
            let mut cut = false;
            let res = self.dirs[i].hpack.decode(block, &mut |n, v| {
                total = total.saturating_add(n.len() + v.len() + FIELD_OVERHEAD);
                if total > cap {
                    cut = true;
                } else {
                    fields.push(Header::new(n, v));
                }
            });
            if cut {
                self.stats.header_lists_truncated += 1;
                flags |= Flags::TRUNCATED;
            }
            match res {
                Ok(info) => {
                    if info.was_unknown {
                        self.stats.header_blocks_unknown_table += 1;
                        flags |= Flags::HPACK_UNKNOWN;
                    }
                    self.stats.header_fields_skipped += u64::from(info.skipped);
                }
                Err(_) => {
                    self.stats.hpack_errors += 1;
                    flags |= Flags::PARSE_ERROR | Flags::HPACK_UNKNOWN;
                }
            }
        }
        match (side, b.promised) {
            (Side::Server, Some(promised)) => self.push_promise(b, promised, fields, flags, out),
            (Side::Client, Some(_)) => {
                // Clients cannot push (RFC 9113 §8.4).
                self.stats.protocol_errors += 1;
            }
            (Side::Client, None) => self.request_block(b, fields, flags, ts, out),
            (Side::Server, None) => self.response_block(b, fields, flags, ts, out),
        }
    }

    fn request_block(
        &mut self,
        b: PendingBlock,
        fields: Vec<Header>,
        flags: Flags,
        ts: Timestamp,
        out: &mut Vec<Exchange>,
    ) {
        let Some(st) = self.stream_for(Side::Client, b.stream, true, b.ts, out) else {
            return;
        };
        st.flags |= flags;
        touch(st, Side::Client, ts);
        if st.req.headers_seen {
            // Trailers (RFC 9113 §8.1): a second HEADERS, which must end the stream.
            st.req.trailers.extend(fields);
            if !b.end_stream {
                self.stats.protocol_errors += 1;
            }
        } else {
            st.req.headers_seen = true;
            if st.timing.request_first.is_none() {
                st.timing.request_first = Some(b.ts);
            }
            for f in fields {
                match f.name.as_slice() {
                    b":method" if st.method.is_empty() => st.method = f.value,
                    b":scheme" if st.scheme.is_empty() => st.scheme = f.value,
                    b":authority" if st.authority.is_empty() => st.authority = f.value,
                    b":path" if st.path.is_empty() => st.path = f.value,
                    _ => st.req.headers.push(f),
                }
            }
        }
        if b.end_stream {
            self.end_side(Side::Client, b.stream, ts, out);
        }
    }

    fn response_block(
        &mut self,
        b: PendingBlock,
        fields: Vec<Header>,
        flags: Flags,
        ts: Timestamp,
        out: &mut Vec<Exchange>,
    ) {
        let Some(st) = self.stream_for(Side::Server, b.stream, false, b.ts, out) else {
            return;
        };
        st.flags |= flags;
        touch(st, Side::Server, ts);
        let has_status = fields.iter().any(|f| f.name == b":status");
        // Trailers follow the final response; a block without :status that ends the stream is taken as trailers
        // too (mid-stream, the response headers may have been missed).
        if st.resp.headers_seen || (!has_status && b.end_stream) {
            if !st.resp.headers_seen && !st.flags.contains(Flags::HPACK_UNKNOWN) {
                st.flags |= Flags::PARSE_ERROR;
            }
            st.resp.trailers.extend(fields);
        } else {
            let mut status: Option<u16> = None;
            let mut headers = Vec::with_capacity(fields.len());
            for f in fields {
                if f.name == b":status" && status.is_none() {
                    status = Some(parse_status(&f.value).unwrap_or_else(|| {
                        st.flags |= Flags::PARSE_ERROR;
                        0
                    }));
                } else {
                    headers.push(f);
                }
            }
            match status {
                Some(s @ 100..=199) => {
                    st.interim.push(Interim { status: s, headers, at: Some(b.ts) });
                }
                s => {
                    // A missing :status is kept as 0 (never invented); with a known table it is malformed.
                    if s.is_none() && !st.flags.contains(Flags::HPACK_UNKNOWN) {
                        st.flags |= Flags::PARSE_ERROR;
                    }
                    st.status = s.unwrap_or(0);
                    st.resp.headers = headers;
                    st.resp.headers_seen = true;
                    st.timing.response_first = Some(b.ts);
                }
            }
        }
        if b.end_stream {
            self.end_side(Side::Server, b.stream, ts, out);
        }
    }

    fn push_promise(
        &mut self,
        b: PendingBlock,
        promised: u32,
        fields: Vec<Header>,
        flags: Flags,
        out: &mut Vec<Exchange>,
    ) {
        if self.streams.contains_key(&promised) || !promised.is_multiple_of(2) || promised == 0 {
            self.stats.protocol_errors += 1;
            return;
        }
        self.make_room(out);
        let mut st = self.new_stream(Flags::PUSHED | flags);
        st.timing.request_first = Some(b.ts);
        st.timing.request_last = Some(b.ts);
        st.req.seen = true;
        st.req.headers_seen = true;
        st.req.ended = true;
        for f in fields {
            match f.name.as_slice() {
                b":method" if st.method.is_empty() => st.method = f.value,
                b":scheme" if st.scheme.is_empty() => st.scheme = f.value,
                b":authority" if st.authority.is_empty() => st.authority = f.value,
                b":path" if st.path.is_empty() => st.path = f.value,
                _ => st.req.headers.push(f),
            }
        }
        self.stats.streams_opened += 1;
        self.max_opened[1] = self.max_opened[1].max(promised);
        self.insert_stream(promised, st);
    }

    fn start_data(&mut self, side: Side, h: FrameHeader, ts: Timestamp, out: &mut Vec<Exchange>) {
        if let Some(st) = self.stream_for(side, h.stream, false, ts, out) {
            touch(st, side, ts);
        }
    }

    fn end_data_frame(&mut self, side: Side, h: FrameHeader, ts: Timestamp, out: &mut Vec<Exchange>) {
        if let Some(st) = self.streams.get_mut(&h.stream) {
            touch(st, side, ts);
        }
        if h.has(frame::FLAG_END_STREAM) {
            self.end_side(side, h.stream, ts, out);
        }
    }

    // ===== streams =====

    fn new_stream(&mut self, flags: Flags) -> Stream {
        let order = self.next_order;
        self.next_order = self.next_order.wrapping_add(1);
        let mut flags = flags;
        if self.mid_stream {
            flags |= Flags::MID_STREAM;
        }
        Stream {
            order,
            flags,
            timing: Timing::default(),
            method: Vec::new(),
            scheme: Vec::new(),
            authority: Vec::new(),
            path: Vec::new(),
            status: 0,
            interim: Vec::new(),
            req: Half::new(self.cfg.max_body),
            resp: Half::new(self.cfg.max_body),
            upgraded_body: None,
        }
    }

    /// The stream `id` for a frame from `side`, opening it when that is legitimate: a client HEADERS with a new
    /// id, or any frame of a stream whose start was missed (after a resync). Frames of finished, evicted or
    /// never-opened streams are counted and dropped (`None`).
    fn stream_for(
        &mut self,
        side: Side,
        id: u32,
        opening: bool,
        ts: Timestamp,
        out: &mut Vec<Exchange>,
    ) -> Option<&mut Stream> {
        if self.streams.contains_key(&id) {
            return self.streams.get_mut(&id);
        }
        let client_initiated = id % 2 == 1;
        let initiator = if client_initiated { 0 } else { 1 };
        let fresh = id > self.max_opened[initiator];
        let start_missed = !self.dirs[idx(side)].hpack.is_known() || self.mid_stream;
        let legit_open = opening && side == Side::Client && client_initiated && fresh;
        // Mid-stream, streams opened before we joined may have any id: only those we closed ourselves are known
        // to be finished.
        let late_join = start_missed && !self.recently_closed.contains(&id);
        if id == 0 || !(legit_open || late_join) {
            if opening && side == Side::Client && client_initiated && !fresh {
                self.stats.protocol_errors += 1;
            }
            self.stats.frames_on_closed_streams += 1;
            return None;
        }
        self.make_room(out);
        let mut flags = Flags::NONE;
        if !legit_open {
            // We did not see how this stream started.
            flags |= Flags::MID_STREAM | Flags::HPACK_UNKNOWN;
        }
        if let Some(last) = self.goaway[idx(Side::Server)]
            && client_initiated
            && id > last
        {
            flags |= Flags::REFUSED;
        }
        let mut st = self.new_stream(flags);
        st.timing.request_first = if side == Side::Client { Some(ts) } else { None };
        self.stats.streams_opened += 1;
        self.max_opened[initiator] = self.max_opened[initiator].max(id);
        self.insert_stream(id, st);
        self.streams.get_mut(&id)
    }

    /// Tracks a newly opened stream (orders grow with every stream, so `open_order` stays sorted).
    fn insert_stream(&mut self, id: u32, st: Stream) {
        self.open_order.push_back((st.order, id));
        self.streams.insert(id, st);
        if self.open_order.len() > 2 * self.streams.len() + 64 {
            let streams = &self.streams;
            self.open_order.retain(|(order, id)| streams.get(id).is_some_and(|st| st.order == *order));
        }
    }

    /// Evicts the oldest stream when the open-stream cap is reached.
    fn make_room(&mut self, out: &mut Vec<Exchange>) {
        while self.streams.len() >= self.cfg.max_streams.max(1) {
            let oldest = match self.open_order.pop_front() {
                Some((order, id)) if self.streams.get(&id).is_some_and(|st| st.order == order) => id,
                Some(_) => continue,
                // Not reached (every open stream has an entry); kept so that a miss cannot loop forever.
                None => match self.streams.iter().min_by_key(|(_, st)| st.order) {
                    Some((&id, _)) => id,
                    None => break,
                },
            };
            self.stats.streams_evicted += 1;
            self.emit(oldest, Flags::EVICTED, out);
        }
    }

    /// `side` ended stream `id` (END_STREAM): emits the exchange when both sides ended.
    fn end_side(&mut self, side: Side, id: u32, ts: Timestamp, out: &mut Vec<Exchange>) {
        let Some(st) = self.streams.get_mut(&id) else {
            return;
        };
        let hf = half_mut(st, side);
        hf.ended = true;
        touch(st, side, ts);
        if st.req.ended && st.resp.ended {
            self.stats.streams_closed += 1;
            self.emit(id, Flags::NONE, out);
        }
    }

    /// Emits every open stream, in stream order, with `flags` on those not finished.
    fn flush_all(&mut self, flags: Flags, out: &mut Vec<Exchange>) {
        let mut ids: Vec<(u32, u32)> = self.streams.iter().map(|(&id, st)| (st.order, id)).collect();
        ids.sort_unstable();
        for (_, id) in ids {
            self.stats.streams_incomplete += 1;
            self.emit(id, flags, out);
        }
    }

    /// Flags every open stream (and the one a malformed frame was on) PARSE_ERROR.
    fn malformed(&mut self, _stream: u32) {
        self.stats.malformed_frames += 1;
        for st in self.streams.values_mut() {
            st.flags |= Flags::PARSE_ERROR;
        }
    }

    /// Removes stream `id` and appends its exchange to `out`.
    fn emit(&mut self, id: u32, extra: Flags, out: &mut Vec<Exchange>) {
        let Some(st) = self.streams.remove(&id) else {
            return;
        };
        if self.recently_closed.len() >= RECENTLY_CLOSED {
            self.recently_closed.pop_front();
        }
        self.recently_closed.push_back(id);
        self.stats.exchanges += 1;
        let mut flags = st.flags | extra;
        let (mut req_body, f) = st.req.body.finish();
        flags |= f;
        if let Some(b) = st.upgraded_body {
            if b.full_len > b.bytes.len() as u64 {
                flags |= Flags::TRUNCATED;
            }
            req_body = b;
        }
        let (resp_body, f) = st.resp.body.finish();
        flags |= f;
        let request = if st.req.seen {
            Some(Request {
                method: st.method,
                scheme: st.scheme,
                authority: st.authority,
                path: st.path,
                headers: st.req.headers,
                body: req_body,
                trailers: st.req.trailers,
            })
        } else {
            flags |= Flags::NO_REQUEST;
            None
        };
        let response = if st.resp.seen {
            Some(Response {
                status: st.status,
                reason: Vec::new(),
                headers: st.resp.headers,
                body: resp_body,
                trailers: st.resp.trailers,
                interim: st.interim,
            })
        } else {
            flags |= Flags::NO_RESPONSE;
            None
        };
        if (st.req.seen && !st.req.ended) || (st.resp.seen && !st.resp.ended) {
            flags |= Flags::INCOMPLETE;
        }
        out.push(Exchange {
            id: 0,
            connection_id: self.info.id,
            order: st.order,
            stream_id: Some(id),
            proto: Protocol::H2,
            client: self.info.client,
            server: self.info.server,
            timing: st.timing,
            request,
            response,
            flags,
            labels: Vec::new(),
            masked_by: Vec::new(),
        });
    }
}

fn half(st: &Stream, side: Side) -> &Half {
    match side {
        Side::Client => &st.req,
        Side::Server => &st.resp,
    }
}

fn half_mut(st: &mut Stream, side: Side) -> &mut Half {
    match side {
        Side::Client => &mut st.req,
        Side::Server => &mut st.resp,
    }
}

/// Records that `side` sent something for the stream at `ts` (the last-byte timestamps).
fn touch(st: &mut Stream, side: Side, ts: Timestamp) {
    match side {
        Side::Client => {
            st.req.seen = true;
            st.timing.request_last = Some(ts);
        }
        Side::Server => {
            st.resp.seen = true;
            st.timing.response_last = Some(ts);
        }
    }
}

/// Follows frame lengths from `pos` through the resync window (a real boundary chains through every frame):
/// `None` when a header in the chain is implausible or the first frame is longer than `window`, else how many
/// plausible headers were found and whether the last frame ends exactly at the end of the window.
fn chain(buf: &[u8], pos: usize, max: usize, window: usize) -> Option<(usize, bool)> {
    let mut q = pos;
    let mut n = 0;
    loop {
        let Some(h) = FrameHeader::parse(buf.get(q..).unwrap_or(&[])) else {
            return Some((n, false));
        };
        // The candidate itself must be a known frame type; extension frames may follow it.
        let ok = if n == 0 {
            h.plausible(max) && HEADER_LEN + h.len as usize <= window
        } else {
            h.plausible_or_extension(max)
        };
        if !ok {
            return None;
        }
        n += 1;
        q += HEADER_LEN + h.len as usize;
        if q >= buf.len() {
            return Some((n, q == buf.len()));
        }
    }
}

fn parse_status(v: &[u8]) -> Option<u16> {
    if v.len() != 3 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0')))
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    fn header(len: u32, ty: u8, stream: u32) -> Vec<u8> {
        let mut h = len.to_be_bytes()[1..].to_vec();
        h.extend_from_slice(&[ty, 0]);
        h.extend_from_slice(&stream.to_be_bytes());
        h
    }

    #[test]
    fn a_candidate_frame_must_fit_the_window_the_frames_after_it_need_not() {
        // A DATA header whose frame is longer than the window: not a candidate (random bytes pass for such
        // headers one time in about 32 768), so it cannot hold the window open.
        let mut alone = header(5000, frame::DATA, 1);
        alone.resize(600, 7);
        assert_eq!(chain(&alone, 0, 16_384, 1000), None);
        // The same frame after a plausible WINDOW_UPDATE: the chain goes on through it.
        let mut after = header(4, frame::WINDOW_UPDATE, 0);
        after.extend_from_slice(&[0, 0, 0, 1]);
        after.extend(header(5000, frame::DATA, 1));
        after.resize(600, 7);
        assert_eq!(chain(&after, 0, 16_384, 1000), Some((2, false)));
    }
}
