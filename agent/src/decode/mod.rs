//! Link, network and transport decoding: a captured [`crate::source::Frame`] in, a [`TcpSegment`] out.
//!
//! In: a frame and its link type. Out: `Some(TcpSegment)` for a TCP packet, borrowed from the frame, or from the
//! decoder when IP fragments had to be reassembled. Dropped, each under a counter of [`DecodeStats`]: non-TCP
//! traffic (by kind) and every malformed or unsupported packet (a named anomaly). Never panics on input.
//!
//! Layers (one file each): [`link`](self) link types and EtherTypes (VLAN, QinQ, MPLS, PPPoE) → `ip` IPv4/IPv6,
//! fragments, TCP → `tunnel` GRE/ERSPAN, VXLAN, Geneve (back into link or ip). `defrag` holds incomplete
//! datagrams under the caps of [`DecodeConfig`]. Hot path: no allocation and no copy; only reassembly copies.

mod defrag;
mod ip;
mod link;
mod stats;
mod tunnel;
mod walk;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use tapedeck_model::Timestamp;

use crate::source::Frame;

pub use stats::DecodeStats;

use defrag::Defrag;
use walk::{Outcome, Walker};

/// TCP control bits of a segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// ACK.
    pub ack: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
}

/// A validated TCP segment: what reassembly needs from a packet.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful when `flags.ack`).
    pub ack: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// The payload bytes that were captured.
    pub payload: &'a [u8],
    /// Payload bytes that the IP header declares but the capture cut off (snaplen). The segment's payload covers
    /// `seq .. seq + payload.len() + missing` on the wire.
    pub missing: u32,
    /// The segment carries a TCP-MD5 signature (RFC 2385, option 19) or a TCP-AO MAC (RFC 5925, option 29). A
    /// host whose connection did not negotiate one drops such a segment unread: reassembly uses this to ignore
    /// an injected RST that the endpoints ignored too.
    pub auth_option: bool,
}

/// Caps of IP fragment reassembly.
#[derive(Clone, Copy, Debug)]
pub struct DecodeConfig {
    /// Bytes of incomplete datagrams held at most. Default 4 MiB.
    pub frag_max_bytes: usize,
    /// Incomplete datagrams held at most. Default 1024.
    pub frag_max_datagrams: usize,
    /// An incomplete datagram is dropped this long (capture time) after its first fragment. Default 30 s, as
    /// Linux's `ipfrag_time`.
    pub frag_timeout: Duration,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig { frag_max_bytes: 4 << 20, frag_max_datagrams: 1024, frag_timeout: Duration::from_secs(30) }
    }
}

/// Turns frames into TCP segments. One per capture source (fragment state is per source).
pub struct Decoder {
    stats: DecodeStats,
    defrag: Defrag,
}

impl Decoder {
    /// A decoder with the given caps.
    pub fn new(cfg: DecodeConfig) -> Self {
        let timeout = u64::try_from(cfg.frag_timeout.as_nanos()).unwrap_or(u64::MAX);
        Decoder {
            stats: DecodeStats::default(),
            defrag: Defrag::new(cfg.frag_max_bytes, cfg.frag_max_datagrams, timeout),
        }
    }

    /// Decodes one frame: `Some` for a TCP segment (possibly rebuilt from fragments), `None` otherwise (counted).
    pub fn decode<'a>(&'a mut self, frame: &Frame<'a>) -> Option<TcpSegment<'a>> {
        self.stats.frames += 1;
        let caplen = u32::try_from(frame.data.len()).unwrap_or(u32::MAX);
        let mut walker = Walker {
            stats: &mut self.stats,
            defrag: Some(&mut self.defrag),
            ts: frame.ts,
            wire_missing: frame.orig_len.saturating_sub(caplen),
            depth: 0,
        };
        let (src, dst, proto) = match walker.link(frame.link, frame.data) {
            Outcome::Segment(seg) => return Some(seg),
            Outcome::Skip => return None,
            Outcome::Reassembled { src, dst, proto } => (src, dst, proto),
        };
        let Decoder { stats, defrag } = self;
        let defrag: &'a Defrag = defrag;
        let mut walker = Walker { stats, defrag: None, ts: frame.ts, wire_missing: 0, depth: 1 };
        match walker.reassembled(src, dst, proto, defrag.output()) {
            Outcome::Segment(seg) => Some(seg),
            _ => None,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }
}
