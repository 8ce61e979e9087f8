//! IPv4 and IPv6 fragment reassembly under caps: a table of incomplete datagrams, each rebuilt by etherparse's
//! `IpDefragBuf` (range bookkeeping, overlap merge, end checks). etherparse's own `IpDefragPool` is not used
//! because it has no bound on memory and needs a strict `SlicedPacket`.
//!
//! Bounds: at most `max_datagrams` incomplete datagrams and `max_bytes` of their data (each datagram is at most
//! 64 KiB by the IP length fields); the oldest datagram is evicted first; a datagram whose first fragment is
//! older than `timeout` (capture time) is dropped; a datagram of more than [`MAX_FRAGMENTS`] fragments is dropped.
//! Every drop is counted. Reassembly copies; the completed datagram stays in [`Defrag::output`] until the next
//! completion.

use std::collections::HashMap;
use std::net::IpAddr;

use etherparse::IpFragOffset;
use etherparse::IpNumber;
use etherparse::defrag::{IpDefragBuf, IpFragRange};

use super::DecodeStats;

/// Fragments one datagram may have (Linux allows 64 KiB / 8 in theory; real datagrams have a handful).
pub(crate) const MAX_FRAGMENTS: u32 = 256;
/// Recycled buffers kept for reuse.
const SPARE_BUFFERS: usize = 8;

/// What identifies the fragments of one datagram (RFC 791 §3.2, RFC 8200 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FragKey {
    pub(crate) src: IpAddr,
    pub(crate) dst: IpAddr,
    pub(crate) id: u32,
    pub(crate) proto: u8,
}

/// One fragment's place in its datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fragment<'p> {
    pub(crate) key: FragKey,
    pub(crate) offset: IpFragOffset,
    pub(crate) more: bool,
    pub(crate) data: &'p [u8],
}

struct Pending {
    buf: IpDefragBuf,
    first_seen: u64,
    /// Bytes charged against the byte cap.
    charged: usize,
    fragments: u32,
}

/// The reassembly table. See the module documentation.
pub(crate) struct Defrag {
    max_bytes: usize,
    max_datagrams: usize,
    timeout_ns: u64,
    table: HashMap<FragKey, Pending>,
    bytes: usize,
    spare_data: Vec<Vec<u8>>,
    spare_ranges: Vec<Vec<IpFragRange>>,
    output: Vec<u8>,
    next_sweep: u64,
}

impl Defrag {
    pub(crate) fn new(max_bytes: usize, max_datagrams: usize, timeout_ns: u64) -> Self {
        Defrag {
            max_bytes,
            max_datagrams: max_datagrams.max(1),
            timeout_ns,
            table: HashMap::new(),
            bytes: 0,
            spare_data: Vec::new(),
            spare_ranges: Vec::new(),
            output: Vec::new(),
            next_sweep: 0,
        }
    }

    /// The last completed datagram's payload (the bytes after the IP header and the fragment header).
    pub(crate) fn output(&self) -> &[u8] {
        &self.output
    }

    /// Incomplete datagrams held.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.table.len()
    }

    /// Bytes of incomplete datagrams held.
    #[cfg(test)]
    pub(crate) fn pending_bytes(&self) -> usize {
        self.bytes
    }

    /// Adds a fragment at capture time `now` (ns). `Some(protocol)` when it completes its datagram, whose
    /// payload is then in [`Defrag::output`].
    pub(crate) fn add(&mut self, frag: Fragment<'_>, now: u64, stats: &mut DecodeStats) -> Option<IpNumber> {
        self.sweep(now, stats);
        let end = usize::from(frag.offset.byte_offset()) + frag.data.len();
        let key = frag.key;

        let (charged, count) = match self.table.get(&key) {
            Some(p) => (p.charged, p.fragments),
            None => {
                while self.table.len() >= self.max_datagrams {
                    self.evict_oldest(None);
                    stats.fragment_evicted_count_cap += 1;
                }
                (0, 0)
            }
        };
        if count + 1 > MAX_FRAGMENTS {
            self.remove(&key);
            stats.fragment_too_many += 1;
            return None;
        }
        let wanted = charged.max(end);
        if wanted > self.max_bytes {
            // This datagram alone is over the cap.
            self.remove(&key);
            stats.fragment_evicted_byte_cap += 1;
            return None;
        }
        while self.bytes - charged + wanted > self.max_bytes {
            if !self.evict_oldest(Some(&key)) {
                break;
            }
            stats.fragment_evicted_byte_cap += 1;
        }

        let spare_data = &mut self.spare_data;
        let spare_ranges = &mut self.spare_ranges;
        let pending = self.table.entry(key).or_insert_with(|| Pending {
            buf: IpDefragBuf::new(
                IpNumber(key.proto),
                spare_data.pop().unwrap_or_default(),
                spare_ranges.pop().unwrap_or_default(),
            ),
            first_seen: now,
            charged: 0,
            fragments: 0,
        });
        pending.fragments += 1;
        if pending.buf.add(frag.offset, frag.more, frag.data).is_err() {
            self.remove(&key);
            stats.fragment_errors += 1;
            return None;
        }
        let len = pending.buf.data().len();
        self.bytes = self.bytes - pending.charged + len;
        pending.charged = len;
        if !pending.buf.is_complete() {
            return None;
        }
        let done = self.table.remove(&key)?;
        self.bytes -= done.charged;
        let (data, ranges) = done.buf.take_bufs();
        let old = std::mem::replace(&mut self.output, data);
        self.recycle(old, ranges);
        stats.fragments_reassembled += 1;
        Some(IpNumber(key.proto))
    }

    /// Drops datagrams whose first fragment is older than the timeout; runs at most every quarter timeout.
    fn sweep(&mut self, now: u64, stats: &mut DecodeStats) {
        if now < self.next_sweep || self.table.is_empty() {
            return;
        }
        self.next_sweep = now.saturating_add(self.timeout_ns / 4);
        let cutoff = now.saturating_sub(self.timeout_ns);
        let expired: Vec<FragKey> = self.table.iter().filter(|(_, p)| p.first_seen < cutoff).map(|(k, _)| *k).collect();
        for key in expired {
            self.remove(&key);
            stats.fragment_timeouts += 1;
        }
    }

    /// Evicts the oldest datagram other than `keep`; false when there is none.
    fn evict_oldest(&mut self, keep: Option<&FragKey>) -> bool {
        let oldest =
            self.table.iter().filter(|(k, _)| Some(*k) != keep).min_by_key(|(_, p)| p.first_seen).map(|(k, _)| *k);
        match oldest {
            Some(key) => {
                self.remove(&key);
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, key: &FragKey) {
        if let Some(p) = self.table.remove(key) {
            self.bytes -= p.charged;
            let (data, ranges) = p.buf.take_bufs();
            self.recycle(data, ranges);
        }
    }

    fn recycle(&mut self, mut data: Vec<u8>, mut ranges: Vec<IpFragRange>) {
        if self.spare_data.len() < SPARE_BUFFERS {
            data.clear();
            self.spare_data.push(data);
        }
        if self.spare_ranges.len() < SPARE_BUFFERS {
            ranges.clear();
            self.spare_ranges.push(ranges);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> FragKey {
        FragKey { src: IpAddr::from([10, 0, 0, 1]), dst: IpAddr::from([10, 0, 0, 2]), id, proto: 6 }
    }

    fn frag(id: u32, offset: u16, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment { key: key(id), offset: IpFragOffset::try_new(offset / 8).unwrap(), more, data }
    }

    #[test]
    fn out_of_order_and_duplicate_fragments() {
        let mut d = Defrag::new(1 << 20, 16, 30_000_000_000);
        let mut s = DecodeStats::default();
        let a = [1u8; 16];
        let b = [2u8; 8];
        let c = [3u8; 5];
        assert_eq!(d.add(frag(7, 24, false, &c), 0, &mut s), None);
        assert_eq!(d.add(frag(7, 0, true, &a), 1, &mut s), None);
        assert_eq!(d.add(frag(7, 0, true, &a), 1, &mut s), None);
        assert_eq!(d.add(frag(7, 16, true, &b), 2, &mut s), Some(IpNumber::TCP));
        let mut want = vec![1u8; 16];
        want.extend_from_slice(&[2; 8]);
        want.extend_from_slice(&[3; 5]);
        assert_eq!(d.output(), &want[..]);
        assert_eq!(s.fragments_reassembled, 1);
        assert_eq!((d.pending(), d.pending_bytes()), (0, 0));
    }

    #[test]
    fn count_cap_evicts_oldest() {
        let mut d = Defrag::new(1 << 20, 2, 30_000_000_000);
        let mut s = DecodeStats::default();
        let a = [0u8; 8];
        d.add(frag(1, 0, true, &a), 10, &mut s);
        d.add(frag(2, 0, true, &a), 20, &mut s);
        d.add(frag(3, 0, true, &a), 30, &mut s);
        assert_eq!(s.fragment_evicted_count_cap, 1);
        assert_eq!(d.pending(), 2);
        // Datagram 1 was the oldest and is gone: its last fragment starts a new datagram (evicting 2) and
        // completes nothing.
        assert_eq!(d.add(frag(1, 8, false, &a), 40, &mut s), None);
        assert_eq!(s.fragment_evicted_count_cap, 2);
        assert_eq!(d.add(frag(3, 8, false, &a), 50, &mut s), Some(IpNumber::TCP));
    }

    #[test]
    fn byte_cap_and_timeout() {
        let mut d = Defrag::new(64, 16, 1_000);
        let mut s = DecodeStats::default();
        let big = [0u8; 48];
        d.add(frag(1, 0, true, &big), 0, &mut s);
        d.add(frag(2, 0, true, &big), 1, &mut s);
        assert_eq!(s.fragment_evicted_byte_cap, 1);
        assert!(d.pending_bytes() <= 64);
        // One datagram alone over the cap is refused.
        d.add(frag(3, 64, true, &big), 2, &mut s);
        assert_eq!(s.fragment_evicted_byte_cap, 2);
        // Capture time passes beyond the timeout: the pending datagram is dropped.
        d.add(frag(4, 0, true, &[0; 8]), 5_000, &mut s);
        assert_eq!(s.fragment_timeouts, 1);
        assert_eq!(d.pending(), 1);
    }

    #[test]
    fn conflicting_fragments_drop_the_datagram() {
        let mut d = Defrag::new(1 << 20, 16, 30_000_000_000);
        let mut s = DecodeStats::default();
        d.add(frag(9, 0, true, &[0; 16]), 0, &mut s);
        // An unaligned middle fragment is an error.
        d.add(frag(9, 16, true, &[0; 5]), 1, &mut s);
        assert_eq!(s.fragment_errors, 1);
        assert_eq!(d.pending(), 0);
    }
}
