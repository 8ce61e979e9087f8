//! One direction of a flow: turns segments (in any order, duplicated, overlapping, cut by snaplen) into in-order
//! `data`, `gap` and `fin` calls on the flow's sink.
//!
//! Positions are kept as 64-bit offsets from the direction's initial sequence number (the SYN's ISN + 1, or the
//! first data segment seen when the SYN was missed), so streams longer than 4 GiB and sequence wrap-around need no
//! special case: a segment's offset is the next expected offset plus its signed 32-bit distance from the next
//! expected sequence number.
//!
//! A segment that starts at or before the next expected byte is delivered straight from the packet (no copy),
//! minus what was already delivered; one that starts beyond it is copied into the [`OooBuffer`]. A hole is declared
//! a gap when the other side acknowledges past it (once the acknowledgement is older than
//! [`ReassemblyConfig::acked_gap_grace_nanos`], because a capture may show an ACK before the data it acknowledges),
//! when a buffering cap would be exceeded, or when the flow closes.

use tapedeck_model::{Exchange, Timestamp};

use super::config::ReassemblyConfig;
use super::ooo::{OooBuffer, Span, captured_differs};
use super::seq::SeqNumber;
use super::stats::ReassemblyStats;
use crate::stream::{Direction, StreamSink};

/// The table-wide state a direction needs while it works.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a ReassemblyConfig,
    pub stats: &'a mut ReassemblyStats,
    /// Captured bytes buffered out of order over all flows.
    pub buffered_total: &'a mut usize,
    pub out: &'a mut Vec<Exchange>,
}

/// Why a gap is declared (for the per-cause counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GapCause {
    AckedUnseen,
    Cap,
    AtClose,
    Snaplen,
}

/// Where a direction's sink calls go.
pub(crate) struct Target<'s, S> {
    pub sink: &'s mut S,
    pub dir: Direction,
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub(crate) struct HalfStream {
    /// Sequence number of stream offset 0, once known.
    base: Option<SeqNumber>,
    /// Offset of the next byte to deliver: everything before it was delivered or declared a gap.
    next: u64,
    /// Offset of the FIN, once seen.
    fin_at: Option<u64>,
    /// `sink.fin` was called.
    fin_sent: bool,
    ooo: OooBuffer,
    /// The other side acknowledged up to this offset, beyond `next`, first at this capture time (nanoseconds): the
    /// bytes in between become a gap once the grace has passed, unless they are captured meanwhile.
    acked_ahead: Option<(u64, u64)>,
}

impl HalfStream {
    /// Sets the sequence number of offset 0 if it is not known yet.
    pub fn set_base(&mut self, seq: SeqNumber) {
        if self.base.is_none() {
            self.base = Some(seq);
        }
    }
    /// Sequence number of offset 0, once known.
    pub fn base(&self) -> Option<SeqNumber> {
        self.base
    }
    /// Sequence number of the next byte to deliver, once the base is known.
    pub fn next_seq(&self) -> Option<SeqNumber> {
        self.base.map(|b| b + self.next as u32)
    }
    /// `sink.fin` was called for this direction.
    pub fn finished(&self) -> bool {
        self.fin_sent
    }

    /// The other side acknowledged up to `ack`: bytes before it that were never captured are a gap.
    pub fn on_ack<S: StreamSink>(&mut self, ack: SeqNumber, ts: Timestamp, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        let Some(base) = self.base else { return };
        if self.fin_sent {
            return;
        }
        let ahead = i64::from(ack - (base + self.next));
        if ahead <= 0 || ahead > ctx.cfg.ahead_window() {
            if ahead <= 0 {
                self.acked_ahead = None;
            }
            return;
        }
        let acked = self.next + ahead as u64;
        let now = ts.as_nanos();
        let since = match self.acked_ahead {
            Some((end, since)) => {
                self.acked_ahead = Some((end.max(acked), since));
                since
            }
            None => {
                self.acked_ahead = Some((acked, now));
                now
            }
        };
        // The FIN acknowledged too: the connection is ending and no later acknowledgement may come to end the
        // grace, so the bytes are lost now.
        let fin_acked = self.fin_at.is_some_and(|fin| acked > fin);
        if fin_acked || now.saturating_sub(since) >= ctx.cfg.acked_gap_grace_nanos {
            self.declare_acked_gap(ts, t, ctx);
        }
    }

    /// Capture time (nanoseconds) of the first acknowledgement of bytes not captured yet, while they wait for their
    /// grace.
    pub fn acked_pending_since(&self) -> Option<u64> {
        self.acked_ahead.map(|(_, since)| since)
    }

    /// The clock reached `now` without an acknowledgement of this flow: acknowledged bytes whose grace has passed
    /// (or all of them, with `force`) become a gap.
    pub fn settle_acked<S: StreamSink>(&mut self, now: u64, force: bool, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        let Some(since) = self.acked_pending_since() else { return };
        if force || now.saturating_sub(since) >= ctx.cfg.acked_gap_grace_nanos {
            self.declare_acked_gap(Timestamp(now.max(since)), t, ctx);
        }
    }

    /// Declares the acknowledged but uncaptured bytes a gap, up to the first buffered piece or the FIN.
    fn declare_acked_gap<S: StreamSink>(&mut self, ts: Timestamp, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        let Some((mut end, _)) = self.acked_ahead.take() else { return };
        if let Some(first) = self.ooo.first_start() {
            end = end.min(first);
        }
        if let Some(fin) = self.fin_at {
            end = end.min(fin);
        }
        if end > self.next {
            self.gap(end - self.next, GapCause::AckedUnseen, ts, t, ctx);
            self.drain(t, ctx);
            self.check_fin(ts, t, ctx);
        }
    }

    /// A segment of this direction: payload starting at `start` (the SYN's own sequence number excluded), then
    /// `missing` uncaptured bytes, then a FIN if `fin`.
    #[expect(clippy::too_many_arguments, reason = "one segment's fields, passed apart to avoid a copy type")]
    pub fn on_segment<S: StreamSink>(
        &mut self,
        start: SeqNumber,
        payload: &[u8],
        missing: u32,
        fin: bool,
        ts: Timestamp,
        t: &mut Target<'_, S>,
        ctx: &mut Ctx<'_>,
    ) {
        if payload.is_empty() && missing == 0 && !fin {
            return;
        }
        let base = *self.base.get_or_insert(start);
        let ahead = i64::from(start - (base + self.next));
        if ahead > ctx.cfg.ahead_window() {
            ctx.stats.out_of_window_segments += 1;
            ctx.stats.out_of_window_bytes += payload.len() as u64;
            return;
        }
        let rel = self.next as i64 + ahead;
        let mut span = Span { start: 0, data: payload, missing, ts };
        if rel < 0 {
            // Before the stream's first byte: only the part from offset 0 on is kept.
            let skip = rel.unsigned_abs();
            if skip >= span.len() {
                ctx.stats.out_of_window_segments += 1;
                ctx.stats.out_of_window_bytes += payload.len() as u64;
                return;
            }
            ctx.stats.out_of_window_bytes += span.trim_front(skip);
            span.start = 0;
        } else {
            span.start = rel as u64;
        }
        if fin {
            self.note_fin(span.end(), ctx);
        }
        if let Some(fin_at) = self.fin_at
            && span.end() > fin_at
        {
            // Bytes after the FIN cannot belong to this stream.
            if span.start >= fin_at {
                ctx.stats.out_of_window_segments += 1;
                ctx.stats.out_of_window_bytes += span.data.len() as u64;
                self.check_fin(ts, t, ctx);
                return;
            }
            ctx.stats.out_of_window_bytes += span.truncate(fin_at - span.start);
        }
        if span.len() > 0 {
            self.accept(span, t, ctx);
        }
        self.check_fin(ts, t, ctx);
    }

    /// The flow is closing: every hole becomes a gap, buffered data is delivered, a seen FIN is delivered.
    pub fn flush<S: StreamSink>(&mut self, ts: Timestamp, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        // Acknowledged bytes still within their grace: the flow ends, they will not come.
        self.declare_acked_gap(ts, t, ctx);
        while !self.ooo.is_empty() {
            self.skip_hole(GapCause::AtClose, ts, t, ctx);
        }
        if let Some(fin_at) = self.fin_at
            && fin_at > self.next
        {
            self.gap(fin_at - self.next, GapCause::AtClose, ts, t, ctx);
        }
        self.check_fin(ts, t, ctx);
    }

    fn note_fin(&mut self, at: u64, ctx: &mut Ctx<'_>) {
        if self.fin_at.is_some() || self.fin_sent {
            return;
        }
        if at < self.next {
            // A FIN before bytes already delivered contradicts the stream: ignored, counted.
            ctx.stats.out_of_window_segments += 1;
            return;
        }
        self.fin_at = Some(at);
        ctx.stats.out_of_window_bytes += self.ooo.truncate_from(at, ctx.buffered_total);
    }

    /// Delivers or buffers a span that lies within the window.
    fn accept<S: StreamSink>(&mut self, span: Span<'_>, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        loop {
            if span.end() <= self.next {
                ctx.stats.retransmitted_segments += 1;
                ctx.stats.retransmitted_bytes += span.len();
                return;
            }
            if span.start <= self.next {
                self.deliver_in_order(span, t, ctx);
                return;
            }
            // Ahead of the next expected byte: buffer it, unless a cap says to give up on the hole instead.
            let need = span.data.len();
            let cfg = ctx.cfg;
            let over_dir = self.ooo.bytes() + need > cfg.max_ooo_bytes_per_direction;
            let over_segments = self.ooo.len() >= cfg.max_ooo_segments_per_direction;
            let over_total = *ctx.buffered_total + need > cfg.max_buffered_bytes_total;
            if !(over_dir || over_segments || over_total) {
                let outcome = self.ooo.insert(&span, ctx.buffered_total);
                ctx.stats.ooo_segments_buffered += outcome.pieces_added;
                ctx.stats.retransmitted_bytes += outcome.duplicate_bytes;
                ctx.stats.overlap_conflicts += outcome.conflicts;
                if outcome.pieces_added == 0 {
                    ctx.stats.retransmitted_segments += 1;
                }
                ctx.stats.peak_buffered_bytes = ctx.stats.peak_buffered_bytes.max(*ctx.buffered_total as u64);
                // Filling between pieces may split one segment into several: enforce the count again.
                while self.ooo.len() > cfg.max_ooo_segments_per_direction {
                    ctx.stats.cap_hits_direction_segments += 1;
                    self.skip_hole(GapCause::Cap, span.ts, t, ctx);
                }
                return;
            }
            ctx.stats.cap_hits_direction_bytes += u64::from(over_dir);
            ctx.stats.cap_hits_direction_segments += u64::from(over_segments);
            ctx.stats.cap_hits_total_bytes += u64::from(over_total);
            if self.ooo.is_empty() {
                // Nothing to make room with: skip the hole up to this span, which is then in order.
                self.gap(span.start - self.next, GapCause::Cap, span.ts, t, ctx);
            } else {
                self.skip_hole(GapCause::Cap, span.ts, t, ctx);
            }
        }
    }

    /// Delivers a span that starts at or before `next`, merged with buffered pieces it reaches (the buffered,
    /// earlier copy wins where both cover a byte), then everything buffered that became contiguous.
    fn deliver_in_order<S: StreamSink>(&mut self, span: Span<'_>, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        ctx.stats.retransmitted_bytes += self.next.saturating_sub(span.start);
        let end = span.end();
        while self.next < end {
            match self.ooo.first_start() {
                Some(first) if first < end => {
                    if first > self.next {
                        self.emit(&span, first, t, ctx);
                    }
                    let Some((ps, piece)) = self.ooo.pop_first(ctx.buffered_total) else {
                        break;
                    };
                    let buffered = piece.span(ps);
                    let from = ps.max(self.next);
                    let overlap_end = buffered.end().min(end);
                    ctx.stats.retransmitted_bytes += overlap_end.saturating_sub(from);
                    if captured_differs(&span, &buffered, from, overlap_end) {
                        ctx.stats.overlap_conflicts += 1;
                    }
                    if buffered.end() > self.next {
                        self.emit(&buffered, buffered.end(), t, ctx);
                    }
                }
                _ => self.emit(&span, end, t, ctx),
            }
        }
        self.drain(t, ctx);
    }

    /// Delivers buffered pieces that start at or before `next`.
    fn drain<S: StreamSink>(&mut self, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        while let Some(first) = self.ooo.first_start()
            && first <= self.next
        {
            let Some((ps, piece)) = self.ooo.pop_first(ctx.buffered_total) else {
                break;
            };
            let buffered = piece.span(ps);
            if buffered.end() > self.next {
                self.emit(&buffered, buffered.end(), t, ctx);
            } else {
                ctx.stats.retransmitted_bytes += buffered.len();
            }
        }
    }

    /// Declares the hole before the first buffered piece a gap and delivers what became contiguous.
    fn skip_hole<S: StreamSink>(&mut self, cause: GapCause, ts: Timestamp, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        if let Some(first) = self.ooo.first_start()
            && first > self.next
        {
            self.gap(first - self.next, cause, ts, t, ctx);
        }
        self.drain(t, ctx);
    }

    /// Delivers `[next, to)` out of `span` (`span.start <= next`, `to <= span.end()`): captured bytes as data, the
    /// uncaptured rest as a snaplen gap.
    fn emit<S: StreamSink>(&mut self, span: &Span<'_>, to: u64, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        let cap_end = span.captured_end().min(to);
        if self.next < cap_end && self.next >= span.start {
            let bytes = &span.data[(self.next - span.start) as usize..(cap_end - span.start) as usize];
            t.sink.data(t.dir, bytes, span.ts, ctx.out);
            ctx.stats.delivered_bytes += bytes.len() as u64;
            self.next = cap_end;
        }
        if to > self.next {
            self.gap(to - self.next, GapCause::Snaplen, span.ts, t, ctx);
        }
    }

    fn gap<S: StreamSink>(
        &mut self,
        len: u64,
        cause: GapCause,
        ts: Timestamp,
        t: &mut Target<'_, S>,
        ctx: &mut Ctx<'_>,
    ) {
        if len == 0 {
            return;
        }
        let stats = &mut *ctx.stats;
        stats.gaps += 1;
        stats.gap_bytes += len;
        match cause {
            GapCause::AckedUnseen => stats.gaps_acked_unseen += 1,
            GapCause::Cap => stats.gaps_cap += 1,
            GapCause::AtClose => stats.gaps_at_close += 1,
            GapCause::Snaplen => stats.gaps_snaplen += 1,
        }
        t.sink.gap(t.dir, len, ts, ctx.out);
        self.next += len;
    }

    fn check_fin<S: StreamSink>(&mut self, ts: Timestamp, t: &mut Target<'_, S>, ctx: &mut Ctx<'_>) {
        if !self.fin_sent
            && let Some(fin_at) = self.fin_at
            && self.next >= fin_at
        {
            self.fin_sent = true;
            ctx.stats.fins += 1;
            t.sink.fin(t.dir, ts, ctx.out);
        }
    }
}
