//! Recently closed 4-tuples. After both FINs or a RST, trailing ACKs and late retransmissions still arrive; without
//! a memory of the closed flow they would open a new mid-stream flow with guessed (often reversed) roles. A bounded,
//! time-limited set drops them (counted) while a SYN with a new ISN still opens a new connection.
//!
//! Flows closed for idleness are remembered too, with where each direction had got to: a connection that resumes
//! after an idle close sends new bytes (at or past that point) and opens a new flow as before, while late copies of
//! bytes already delivered (retransmissions, duplicated packets, or a capture whose clock jumped) are dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;

use rustc_hash::FxHashMap;

use super::flow::FlowKey;
use super::seq::SeqNumber;
use crate::decode::TcpSegment;

/// What is remembered of a closed flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tomb {
    /// Capture time (table clock) after which it is forgotten.
    pub expires: u64,
    pub originator: SocketAddr,
    pub responder: SocketAddr,
    /// ISN of the originator's SYN and of the responder's SYN+ACK, when seen.
    pub isn: [Option<SeqNumber>; 2],
    /// For a flow closed for idleness: the next sequence number each direction (originator's, responder's) expected.
    /// `None` for a flow that ended (FIN, RST).
    pub resume: Option<[Option<SeqNumber>; 2]>,
}

/// A bounded set of tombstones, oldest forgotten first.
#[derive(Debug, Default)]
pub(crate) struct Tombstones {
    map: FxHashMap<FlowKey, Tomb>,
    /// Insertion order with each entry's expiry; stale entries (key re-inserted since) are skipped on removal.
    order: VecDeque<(FlowKey, u64)>,
}

impl Tombstones {
    /// Tombstones held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Remembers a closed flow, forgetting the oldest one when `cap` is reached.
    pub fn insert(&mut self, key: FlowKey, tomb: Tomb, cap: usize) {
        if cap == 0 {
            return;
        }
        while self.order.len() >= cap {
            self.pop_oldest();
        }
        self.order.push_back((key, tomb.expires));
        self.map.insert(key, tomb);
    }

    /// Forgets tombstones that expired by `now`.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(_, expires)) = self.order.front()
            && expires <= now
        {
            self.pop_oldest();
        }
    }

    /// Whether `seg`, which matches no open flow, may open one. `false` means it belongs to the closed flow.
    pub fn admit(&mut self, key: &FlowKey, seg: &TcpSegment<'_>, now: u64) -> bool {
        let Some(tomb) = self.map.get(key) else {
            return true;
        };
        let seq = Some(SeqNumber(seg.seq));
        let belongs_to_old = if tomb.expires <= now {
            false
        } else {
            match (seg.flags.syn, seg.flags.ack, tomb.resume) {
                (true, false, _) => seg.src == tomb.originator && tomb.isn[0] == seq,
                (true, true, _) => seg.src == tomb.responder && tomb.isn[1] == seq,
                (false, _, None) => true,
                (false, _, Some(next)) => {
                    // Only what lies entirely before where that direction had got to is old.
                    let i = usize::from(seg.src != tomb.originator);
                    let end = SeqNumber(seg.seq) + seg.payload.len() as u32 + seg.missing + u32::from(seg.flags.fin);
                    next[i].is_some_and(|n| (n - end) >= 0)
                }
            }
        };
        if !belongs_to_old {
            self.map.remove(key);
        }
        !belongs_to_old
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    fn pop_oldest(&mut self) {
        if let Some((key, expires)) = self.order.pop_front()
            && self.map.get(&key).is_some_and(|t| t.expires == expires)
        {
            self.map.remove(&key);
        }
    }
}
