//! The layer walker: carries the per-frame context (counters, fragment table, time, bytes the snaplen cut,
//! encapsulation depth) through the layers, and what a walk ends with.

use std::net::IpAddr;

use etherparse::IpNumber;
use tapedeck_model::Timestamp;

use super::defrag::Defrag;
use super::{DecodeStats, TcpSegment};

/// How many encapsulations (GRE, VXLAN, Geneve, IP-in-IP, MPLS pseudo-wires, bridged Ethernet) a frame may nest.
pub(crate) const MAX_DEPTH: u8 = 8;

/// What walking a frame's layers ended with.
pub(crate) enum Outcome<'p> {
    /// A TCP segment borrowed from the frame.
    Segment(TcpSegment<'p>),
    /// The frame completed a fragmented datagram; its payload is in the fragment table's output.
    Reassembled {
        /// Source address of the datagram.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
        /// The protocol after the IP header (or after the IPv6 fragment header).
        proto: IpNumber,
    },
    /// Nothing for reassembly (skipped or malformed; counted).
    Skip,
}

/// Per-frame decoding context.
pub(crate) struct Walker<'s> {
    pub(crate) stats: &'s mut DecodeStats,
    /// The fragment table; `None` while decoding inside an already reassembled datagram.
    pub(crate) defrag: Option<&'s mut Defrag>,
    pub(crate) ts: Timestamp,
    /// Bytes of the frame the snaplen cut (an upper bound for what any inner layer can be missing).
    pub(crate) wire_missing: u32,
    pub(crate) depth: u8,
}

impl Walker<'_> {
    /// Enters one more encapsulation; false (and counted) when too deep.
    pub(crate) fn deeper(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.stats.too_many_encapsulations += 1;
            return false;
        }
        true
    }
}

/// A big-endian `u16` at `at` (`b` holds `at + 2` bytes).
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
