//! The flow table: finds (or creates) the flow of each segment, keeps flows in least-recently-seen order for the
//! idle timeout and the flow cap, and closes flows (FIN, RST, idle, eviction, end of input).
//!
//! Flows live in a slab (`Vec` of slots reused through a free list) linked into an intrusive doubly linked list in
//! the order they were last seen; the table clock is the highest capture time seen, so the list is also ordered by
//! last-seen time. Touching a flow, expiring the oldest and evicting the oldest are O(1): no per-packet allocation
//! and no scan.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use tapedeck_model::{Exchange, Timestamp};

use super::config::ReassemblyConfig;
use super::flow::{Flow, FlowKey, SegmentOutcome, roles};
use super::stats::ReassemblyStats;
use super::stream::Ctx;
use super::tombstone::{Tomb, Tombstones};
use crate::decode::TcpSegment;
use crate::stream::{CloseReason, ConnMeta, Direction, SinkFactory};

/// End of the intrusive list.
const NIL: u32 = u32::MAX;

/// Why the table ends a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// Both FINs delivered.
    Finished,
    /// RST.
    Reset,
    /// A SYN with a new ISN took over the 4-tuple.
    Replaced,
    Idle,
    Evicted,
    EndOfInput,
}

impl Ending {
    fn reason(self) -> CloseReason {
        match self {
            Ending::Finished | Ending::Reset | Ending::Replaced => CloseReason::Closed,
            Ending::Idle => CloseReason::Idle,
            Ending::Evicted => CloseReason::Evicted,
            Ending::EndOfInput => CloseReason::EndOfInput,
        }
    }
}

struct Slot<S> {
    flow: Option<(FlowKey, Flow<S>)>,
    /// Towards the most recently seen flow.
    prev: u32,
    /// Towards the least recently seen flow.
    next: u32,
}

/// TCP reassembly for every connection of a capture: segments in, sink calls out.
pub struct FlowTable<F: SinkFactory> {
    cfg: ReassemblyConfig,
    factory: F,
    index: FxHashMap<FlowKey, u32>,
    slots: Vec<Slot<F::Sink>>,
    free: Vec<u32>,
    /// Most recently seen flow.
    head: u32,
    /// Least recently seen flow.
    tail: u32,
    open: usize,
    tombstones: Tombstones,
    stats: ReassemblyStats,
    buffered: usize,
    /// Highest capture time seen (nanoseconds).
    now: u64,
    /// The id of the next connection opened; ids go up by `id_step` (see [`FlowTable::with_connection_ids`]).
    next_id: u64,
    id_step: u64,
    /// Flows with acknowledged-but-unseen bytes waiting for their grace: (deadline, slot, connection id), about
    /// in deadline order, at most one entry per flow and at most the flow cap in all.
    acked_holes: VecDeque<(u64, u32, u64)>,
}

impl<F: SinkFactory> FlowTable<F> {
    /// An empty table that makes a sink with `factory` for every new connection.
    pub fn new(cfg: ReassemblyConfig, factory: F) -> Self {
        FlowTable {
            cfg,
            factory,
            index: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            open: 0,
            tombstones: Tombstones::default(),
            stats: ReassemblyStats::default(),
            buffered: 0,
            now: 0,
            next_id: 1,
            id_step: 1,
            acked_holes: VecDeque::new(),
        }
    }

    /// Numbers connections `first`, `first + step`, `first + 2 * step` ... instead of 1, 2, 3 ... (`step` 0 is taken
    /// as 1). Worker `w` of `n` tables uses `(w + 1, n)`, so that the connection ids of a run are unique across the
    /// workers, and the same for the same input and worker count.
    pub fn with_connection_ids(mut self, first: u64, step: u64) -> Self {
        self.next_id = first;
        self.id_step = step.max(1);
        self
    }

    /// Processes one segment; exchanges completed by the sinks are appended to `out`.
    pub fn process(&mut self, seg: &TcpSegment<'_>, out: &mut Vec<Exchange>) {
        self.stats.packets += 1;
        self.stats.payload_bytes += seg.payload.len() as u64;
        if seg.missing > 0 {
            self.stats.snaplen_truncated_segments += 1;
            self.stats.snaplen_missing_bytes += u64::from(seg.missing);
        }
        if seg.flags.rst {
            self.stats.resets += 1;
        }
        self.now = self.now.max(seg.ts.as_nanos());
        self.settle_acked_holes(out);
        self.expire_idle(out);

        let key = FlowKey::new(seg.src, seg.dst);
        let mut slot = self.index.get(&key).copied();
        if let Some(s) = slot
            && self.flow(s).is_some_and(|f| f.is_new_connection(seg))
        {
            self.end(s, Ending::Replaced, seg.ts, out);
            slot = None;
        }
        let s = match slot {
            Some(s) => s,
            None => {
                self.tombstones.expire(self.now);
                if !self.tombstones.admit(&key, seg, self.now) {
                    self.stats.late_segments_after_close += 1;
                    return;
                }
                if seg.flags.rst {
                    self.stats.resets_without_flow += 1;
                    return;
                }
                self.open_flow(key, seg, out)
            }
        };
        self.touch(s);
        let FlowTable { cfg, slots, stats, buffered, .. } = self;
        let Some((_, flow)) = slots[s as usize].flow.as_mut() else {
            return;
        };
        let mut ctx = Ctx { cfg, stats, buffered_total: buffered, out: &mut *out };
        match flow.on_segment(seg, &mut ctx) {
            SegmentOutcome::Open => {
                if !flow.ack_queued
                    && let Some(since) = flow.acked_pending_since()
                {
                    flow.ack_queued = true;
                    let entry = (since.saturating_add(self.cfg.acked_gap_grace_nanos), s, flow.meta.id);
                    self.queue_acked_hole(entry, out);
                }
            }
            SegmentOutcome::BothFinished => self.end(s, Ending::Finished, seg.ts, out),
            SegmentOutcome::Reset => self.end(s, Ending::Reset, seg.ts, out),
        }
    }

    /// End of input: closes every flow with `close(EndOfInput)`, in connection id order.
    pub fn flush_all(&mut self, ts: Timestamp, out: &mut Vec<Exchange>) {
        let mut live: Vec<(u64, u32)> = Vec::with_capacity(self.open);
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some((_, flow)) = &slot.flow {
                live.push((flow.meta.id, i as u32));
            }
        }
        live.sort_unstable();
        for (_, s) in live {
            self.end(s, Ending::EndOfInput, ts, out);
        }
        self.tombstones.clear();
    }

    /// Moves the table clock to `ts` (if later) without a packet: flows idle for longer than the idle timeout are
    /// closed (`close(Idle)`) and old tombstones forgotten. Live capture calls it on a timer while the interface
    /// is quiet (`ts` from the wall clock); sharded pipelines call it with the capture time other workers saw.
    pub fn advance(&mut self, ts: Timestamp, out: &mut Vec<Exchange>) {
        self.now = self.now.max(ts.as_nanos());
        self.settle_acked_holes(out);
        self.expire_idle(out);
        self.tombstones.expire(self.now);
    }

    /// Counters so far.
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// The sink factory (for example to read what it gathered).
    pub fn factory_mut(&mut self) -> &mut F {
        &mut self.factory
    }

    /// Flows currently tracked.
    pub fn open_flows(&self) -> usize {
        self.open
    }

    /// Captured bytes currently buffered out of order, over all flows.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Closed 4-tuples currently remembered.
    pub fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    fn flow(&self, s: u32) -> Option<&Flow<F::Sink>> {
        self.slots.get(s as usize).and_then(|slot| slot.flow.as_ref()).map(|(_, f)| f)
    }

    fn open_flow(&mut self, key: FlowKey, seg: &TcpSegment<'_>, out: &mut Vec<Exchange>) -> u32 {
        let cap = self.cfg.flow_cap().min(NIL as usize - 1);
        while self.open >= cap && self.tail != NIL {
            self.end(self.tail, Ending::Evicted, seg.ts, out);
        }
        let (originator, responder, handshake_seen) = roles(seg);
        let meta = ConnMeta { id: self.next_id, originator, responder, handshake_seen, first_seen: seg.ts };
        self.next_id = self.next_id.saturating_add(self.id_step);
        let sink = self.factory.new_sink(&meta);
        let flow = Flow::new(meta, sink, self.now);
        let s = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize].flow = Some((key, flow));
                s
            }
            None => {
                self.slots.push(Slot { flow: Some((key, flow)), prev: NIL, next: NIL });
                (self.slots.len() - 1) as u32
            }
        };
        self.link_front(s);
        self.index.insert(key, s);
        self.open += 1;
        self.stats.flows_created += 1;
        s
    }

    /// Queues a flow's acknowledged hole; a full queue (as many entries as flows may be open) settles its oldest
    /// entry at once, grace or not.
    fn queue_acked_hole(&mut self, entry: (u64, u32, u64), out: &mut Vec<Exchange>) {
        if self.acked_holes.len() >= self.cfg.flow_cap()
            && let Some(oldest) = self.acked_holes.pop_front()
        {
            self.settle_acked_hole(oldest, true, out);
        }
        self.acked_holes.push_back(entry);
    }

    /// Acknowledged holes whose grace has passed by the table clock become gaps, for flows that saw no packet
    /// since (their own acknowledgements settle them otherwise).
    fn settle_acked_holes(&mut self, out: &mut Vec<Exchange>) {
        while let Some(&(deadline, _, _)) = self.acked_holes.front() {
            if deadline > self.now {
                break;
            }
            if let Some(entry) = self.acked_holes.pop_front() {
                self.settle_acked_hole(entry, false, out);
            }
        }
    }

    fn settle_acked_hole(&mut self, (_, s, id): (u64, u32, u64), force: bool, out: &mut Vec<Exchange>) {
        let now = self.now;
        let FlowTable { cfg, slots, stats, buffered, .. } = self;
        let Some((_, flow)) = slots.get_mut(s as usize).and_then(|slot| slot.flow.as_mut()) else { return };
        if flow.meta.id != id {
            return;
        }
        flow.ack_queued = false;
        let mut ctx = Ctx { cfg, stats, buffered_total: buffered, out: &mut *out };
        let outcome = flow.settle_acked(now, force, &mut ctx);
        // Still waiting (a newer acknowledgement started its grace later): queue it again.
        let requeue = flow.acked_pending_since().map(|since| (since.saturating_add(cfg.acked_gap_grace_nanos), s, id));
        if let Some(entry) = requeue {
            flow.ack_queued = true;
            self.acked_holes.push_back(entry);
        }
        if outcome == SegmentOutcome::BothFinished {
            self.end(s, Ending::Finished, Timestamp(now), out);
        }
    }

    /// Closes flows whose last segment is older than the idle timeout.
    fn expire_idle(&mut self, out: &mut Vec<Exchange>) {
        while self.tail != NIL {
            let Some(last_seen) = self.flow(self.tail).map(|f| f.last_seen) else {
                break;
            };
            if self.now.saturating_sub(last_seen) <= self.cfg.idle_timeout_nanos {
                break;
            }
            let at = Timestamp(last_seen.saturating_add(self.cfg.idle_timeout_nanos));
            self.end(self.tail, Ending::Idle, at, out);
        }
    }

    /// Removes a flow from the table and closes it.
    fn end(&mut self, s: u32, ending: Ending, ts: Timestamp, out: &mut Vec<Exchange>) {
        let Some((key, mut flow)) = self.slots.get_mut(s as usize).and_then(|slot| slot.flow.take()) else {
            return;
        };
        self.unlink(s);
        self.free.push(s);
        self.index.remove(&key);
        self.open -= 1;
        let mut ctx = Ctx { cfg: &self.cfg, stats: &mut self.stats, buffered_total: &mut self.buffered, out };
        flow.finish(ending.reason(), ending == Ending::Reset, ts, &mut ctx);
        match ending {
            Ending::Finished | Ending::Reset => self.stats.flows_closed += 1,
            Ending::Replaced => self.stats.flows_replaced += 1,
            Ending::Idle => self.stats.flows_expired_idle += 1,
            Ending::Evicted => self.stats.flows_evicted += 1,
            Ending::EndOfInput => self.stats.flows_end_of_input += 1,
        }
        if matches!(ending, Ending::Finished | Ending::Reset | Ending::Idle) {
            let resume = (ending == Ending::Idle).then(|| {
                [
                    flow.dirs[Direction::ToResponder.index()].next_seq(),
                    flow.dirs[Direction::ToOriginator.index()].next_seq(),
                ]
            });
            let tomb = Tomb {
                expires: self.now.saturating_add(self.cfg.tombstone_nanos),
                originator: flow.meta.originator,
                responder: flow.meta.responder,
                isn: [flow.isn[Direction::ToResponder.index()], flow.isn[Direction::ToOriginator.index()]],
                resume,
            };
            self.tombstones.insert(key, tomb, self.cfg.max_tombstones);
        }
    }

    /// Marks a flow as just seen: clock update and move to the front of the list.
    fn touch(&mut self, s: u32) {
        if let Some(slot) = self.slots.get_mut(s as usize)
            && let Some((_, flow)) = slot.flow.as_mut()
        {
            flow.last_seen = self.now;
        }
        if self.head != s {
            self.unlink(s);
            self.link_front(s);
        }
    }

    fn link_front(&mut self, s: u32) {
        let old_head = self.head;
        {
            let slot = &mut self.slots[s as usize];
            slot.prev = NIL;
            slot.next = old_head;
        }
        if old_head != NIL {
            self.slots[old_head as usize].prev = s;
        } else {
            self.tail = s;
        }
        self.head = s;
    }

    fn unlink(&mut self, s: u32) {
        let (prev, next) = {
            let slot = &self.slots[s as usize];
            (slot.prev, slot.next)
        };
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else if self.head == s {
            self.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else if self.tail == s {
            self.tail = prev;
        }
        let slot = &mut self.slots[s as usize];
        slot.prev = NIL;
        slot.next = NIL;
    }
}
