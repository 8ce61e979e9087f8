//! One connection: its direction-independent key, its roles (originator and responder), its sink and the two
//! [`HalfStream`]s. Decides which direction a segment belongs to and what SYN, ACK, FIN and RST mean for it.

use std::net::SocketAddr;

use tapedeck_model::Timestamp;

use super::seq::SeqNumber;
use super::stream::{Ctx, HalfStream, Target};
use crate::decode::TcpSegment;
use crate::stream::{CloseReason, ConnMeta, Direction, StreamSink};

/// A 4-tuple with its two endpoints in a fixed order, so both directions of a connection share one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FlowKey {
    lo: SocketAddr,
    hi: SocketAddr,
}

impl FlowKey {
    /// The key of the connection between `a` and `b`, whichever sent the packet.
    pub fn new(a: SocketAddr, b: SocketAddr) -> FlowKey {
        if a <= b { FlowKey { lo: a, hi: b } } else { FlowKey { lo: b, hi: a } }
    }
}

/// Roles of a new flow decided from its first segment: `(originator, responder, handshake_seen)`.
pub(crate) fn roles(seg: &TcpSegment<'_>) -> (SocketAddr, SocketAddr, bool) {
    match (seg.flags.syn, seg.flags.ack) {
        // SYN: the sender opens the connection.
        (true, false) => (seg.src, seg.dst, true),
        // SYN+ACK first (the SYN was not captured): the receiver opened it.
        (true, true) => (seg.dst, seg.src, true),
        // Joined mid-stream: the first sender seen, which content may contradict later.
        _ => (seg.src, seg.dst, false),
    }
}

/// What a segment did to its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegmentOutcome {
    /// The flow stays open.
    Open,
    /// Both directions delivered their FIN.
    BothFinished,
    /// The segment was a RST.
    Reset,
}

/// A tracked connection.
pub(crate) struct Flow<S> {
    pub meta: ConnMeta,
    pub sink: S,
    /// Indexed by [`Direction::index`].
    pub dirs: [HalfStream; 2],
    /// ISN of each direction's SYN, when seen (indexed by [`Direction::index`]).
    pub isn: [Option<SeqNumber>; 2],
    /// Capture time (the table's clock) of the last segment.
    pub last_seen: u64,
    /// A SYN of this flow carried a TCP-MD5 or TCP-AO option (the endpoints sign their segments).
    pub signed: bool,
    /// The table's queue of acknowledged holes holds an entry for this flow.
    pub ack_queued: bool,
}

impl<S: StreamSink> Flow<S> {
    /// A flow with no segment processed yet.
    pub fn new(meta: ConnMeta, sink: S, now: u64) -> Flow<S> {
        Flow { meta, sink, dirs: Default::default(), isn: [None; 2], last_seen: now, signed: false, ack_queued: false }
    }

    /// The direction of a segment sent by `src`.
    pub fn direction_of(&self, src: SocketAddr) -> Direction {
        if src == self.meta.originator { Direction::ToResponder } else { Direction::ToOriginator }
    }

    /// Whether `seg` is a SYN opening a new connection on this 4-tuple rather than a retransmitted SYN.
    pub fn is_new_connection(&self, seg: &TcpSegment<'_>) -> bool {
        if !seg.flags.syn || seg.flags.ack || seg.flags.rst {
            return false;
        }
        if seg.src != self.meta.originator {
            return true;
        }
        let isn = SeqNumber(seg.seq);
        match self.isn[Direction::ToResponder.index()] {
            Some(known) => known != isn,
            // SYN+ACK was seen first and set this direction's start from its ACK: a late SYN matches it.
            None => self.dirs[Direction::ToResponder.index()].base() != Some(isn + 1u32),
        }
    }

    /// Processes one segment of this flow.
    pub fn on_segment(&mut self, seg: &TcpSegment<'_>, ctx: &mut Ctx<'_>) -> SegmentOutcome {
        if seg.flags.rst {
            // RFC 2385 / RFC 5925: a host whose connection does not sign its segments discards one carrying a
            // signature unread, so an RST with one on a connection whose handshake we saw unsigned is an
            // injection the endpoints ignored (suricata-verify security-4710): the connection goes on.
            if seg.auth_option && !self.signed && self.isn.iter().any(Option::is_some) {
                ctx.stats.resets_ignored_signed += 1;
                return SegmentOutcome::Open;
            }
            return SegmentOutcome::Reset;
        }
        let dir = self.direction_of(seg.src);
        let (i, r) = (dir.index(), dir.reverse().index());
        let Flow { sink, dirs, isn, signed, .. } = self;
        if seg.flags.syn {
            *signed |= seg.auth_option;
            let seq = SeqNumber(seg.seq);
            isn[i].get_or_insert(seq);
            dirs[i].set_base(seq + 1u32);
            if seg.flags.ack {
                dirs[r].set_base(SeqNumber(seg.ack));
            }
        }
        if seg.flags.ack {
            let mut t = Target { sink: &mut *sink, dir: dir.reverse() };
            dirs[r].on_ack(SeqNumber(seg.ack), seg.ts, &mut t, ctx);
        }
        let start = SeqNumber(seg.seq) + u32::from(seg.flags.syn);
        let mut t = Target { sink: &mut *sink, dir };
        dirs[i].on_segment(start, seg.payload, seg.missing, seg.flags.fin, seg.ts, &mut t, ctx);
        if dirs[0].finished() && dirs[1].finished() { SegmentOutcome::BothFinished } else { SegmentOutcome::Open }
    }

    /// The earliest capture time at which a direction's acknowledged-but-unseen bytes started their grace.
    pub fn acked_pending_since(&self) -> Option<u64> {
        self.dirs.iter().filter_map(HalfStream::acked_pending_since).min()
    }

    /// The clock reached `now`: acknowledged holes past their grace (all of them with `force`) become gaps.
    pub fn settle_acked(&mut self, now: u64, force: bool, ctx: &mut Ctx<'_>) -> SegmentOutcome {
        let Flow { sink, dirs, .. } = self;
        for dir in [Direction::ToResponder, Direction::ToOriginator] {
            let mut t = Target { sink: &mut *sink, dir };
            dirs[dir.index()].settle_acked(now, force, &mut t, ctx);
        }
        if dirs[0].finished() && dirs[1].finished() { SegmentOutcome::BothFinished } else { SegmentOutcome::Open }
    }

    /// Ends the flow: holes become gaps, buffered data and seen FINs are delivered, then `reset` (if `reset`) and
    /// `close(reason)`.
    pub fn finish(&mut self, reason: CloseReason, reset: bool, ts: Timestamp, ctx: &mut Ctx<'_>) {
        let Flow { sink, dirs, .. } = self;
        for dir in [Direction::ToResponder, Direction::ToOriginator] {
            let mut t = Target { sink: &mut *sink, dir };
            dirs[dir.index()].flush(ts, &mut t, ctx);
        }
        if reset {
            sink.reset(ts, ctx.out);
        }
        sink.close(reason, ts, ctx.out);
    }
}
