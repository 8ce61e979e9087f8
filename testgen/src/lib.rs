//! Generators of hostile packet captures for tapedeck's memory-bound tests (`agent/tests/memory_bounds.rs`) and
//! for `cargo xtask gen-hostile`.
//!
//! - [`pcap`]: a classic pcap writer over any `Write`.
//! - [`tcp`]: Ethernet/IPv4/TCP frames (etherparse's `PacketBuilder`) and one connection's sequence numbers.
//! - [`h2`]: HTTP/2 frames and HPACK fields, just enough for the scenarios.
//! - [`hostile`]: one generator per scenario.
//! - [`inject`]: edits of real captures (a forged, signed RST).
//! - [`Scenario`]: the scenarios by name, with the sizes the issue asks for ([`Sizes::full`]) or scaled down
//!   for a test ([`Sizes::test`]).
//!
//! Every generator streams: memory does not grow with the capture, so 100k connections or 200 MB bodies cost
//! only disk. Output is deterministic for a seed.

pub mod h2;
pub mod hostile;
pub mod inject;
pub mod pcap;
pub mod tcp;

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::Path;

pub use hostile::Written;

/// How big each scenario is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Half-open connections.
    pub half_open_conns: u32,
    /// SYNs of the flood.
    pub syn_flood_syns: u32,
    /// Chunk data bytes of the endless chunked body.
    pub chunked_body_bytes: u64,
    /// Bytes of the one huge header line.
    pub header_line_bytes: usize,
    /// HTTP/2 connections with many streams.
    pub h2_conns: u32,
    /// Streams opened on each of them.
    pub h2_streams_per_conn: u32,
    /// Connections abusing HPACK table sizes.
    pub hpack_conns: u32,
    /// Header blocks on each of them.
    pub hpack_blocks_per_conn: u32,
    /// Flows sending out-of-order segments far ahead.
    pub ooo_flows: u32,
    /// Segments per such flow.
    pub ooo_segs_per_flow: u32,
}

impl Sizes {
    /// The sizes named in the issue: 100k half-open connections, a 200 MB chunked body, a 10 MB header line.
    pub fn full() -> Self {
        Sizes {
            half_open_conns: 100_000,
            syn_flood_syns: 500_000,
            chunked_body_bytes: 200 << 20,
            header_line_bytes: 10 << 20,
            h2_conns: 16,
            h2_streams_per_conn: 50_000,
            hpack_conns: 256,
            hpack_blocks_per_conn: 400,
            ooo_flows: 256,
            ooo_segs_per_flow: 2000,
        }
    }

    /// Sizes for a test in a debug build (a few seconds each). Each scenario still crosses every cap it aims at,
    /// and is large enough that holding it whole would break the test's RSS bound: so the 96 MiB body and the
    /// 64 MiB header line are larger than the "endless" 50 MB and 10 MB would need to be.
    pub fn test() -> Self {
        Sizes {
            half_open_conns: 100_000,
            syn_flood_syns: 200_000,
            chunked_body_bytes: 96 << 20,
            header_line_bytes: 64 << 20,
            h2_conns: 8,
            h2_streams_per_conn: 20_000,
            hpack_conns: 96,
            hpack_blocks_per_conn: 100,
            ooo_flows: 64,
            ooo_segs_per_flow: 1000,
        }
    }
}

/// A hostile scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// [`hostile::half_open`].
    HalfOpen,
    /// [`hostile::syn_flood`].
    SynFlood,
    /// [`hostile::endless_chunked`].
    EndlessChunked,
    /// [`hostile::huge_header_line`].
    HugeHeaderLine,
    /// [`hostile::h2_streams`].
    H2Streams,
    /// [`hostile::hpack_abuse`].
    HpackAbuse,
    /// [`hostile::ooo_far_ahead`].
    OooFarAhead,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 7] = [
        Scenario::HalfOpen,
        Scenario::SynFlood,
        Scenario::EndlessChunked,
        Scenario::HugeHeaderLine,
        Scenario::H2Streams,
        Scenario::HpackAbuse,
        Scenario::OooFarAhead,
    ];

    /// A file-name-friendly name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::HalfOpen => "half-open",
            Scenario::SynFlood => "syn-flood",
            Scenario::EndlessChunked => "endless-chunked",
            Scenario::HugeHeaderLine => "huge-header-line",
            Scenario::H2Streams => "h2-streams",
            Scenario::HpackAbuse => "hpack-abuse",
            Scenario::OooFarAhead => "ooo-far-ahead",
        }
    }

    /// Writes this scenario to `out` at `sizes`, seeded with `seed`.
    pub fn write<W: io::Write>(self, out: W, sizes: &Sizes, seed: u64) -> io::Result<Written> {
        match self {
            Scenario::HalfOpen => hostile::half_open(out, sizes.half_open_conns, seed),
            Scenario::SynFlood => hostile::syn_flood(out, sizes.syn_flood_syns, seed),
            Scenario::EndlessChunked => hostile::endless_chunked(out, sizes.chunked_body_bytes, seed),
            Scenario::HugeHeaderLine => hostile::huge_header_line(out, sizes.header_line_bytes, seed),
            Scenario::H2Streams => hostile::h2_streams(out, sizes.h2_conns, sizes.h2_streams_per_conn, seed),
            Scenario::HpackAbuse => hostile::hpack_abuse(out, sizes.hpack_conns, sizes.hpack_blocks_per_conn, seed),
            Scenario::OooFarAhead => hostile::ooo_far_ahead(out, sizes.ooo_flows, sizes.ooo_segs_per_flow, seed),
        }
    }

    /// Writes this scenario to the file `path` (created or truncated), buffered.
    pub fn write_file(self, path: &Path, sizes: &Sizes, seed: u64) -> io::Result<Written> {
        self.write(BufWriter::with_capacity(1 << 16, File::create(path)?), sizes, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Sizes {
        Sizes {
            half_open_conns: 50,
            syn_flood_syns: 50,
            chunked_body_bytes: 100_000,
            header_line_bytes: 20_000,
            h2_conns: 2,
            h2_streams_per_conn: 50,
            hpack_conns: 2,
            hpack_blocks_per_conn: 5,
            ooo_flows: 3,
            ooo_segs_per_flow: 20,
        }
    }

    /// Walks the pcap records of `file` and parses each frame with etherparse.
    fn frames(file: &[u8]) -> Vec<etherparse::SlicedPacket<'_>> {
        let mut out = Vec::new();
        let mut at = 24;
        while at < file.len() {
            let len = u32::from_le_bytes(file[at + 8..at + 12].try_into().unwrap()) as usize;
            let frame = &file[at + 16..at + 16 + len];
            out.push(etherparse::SlicedPacket::from_ethernet(frame).unwrap());
            at += 16 + len;
        }
        assert_eq!(at, file.len());
        out
    }

    #[test]
    fn every_scenario_is_deterministic_and_every_frame_is_valid_tcp() {
        for s in Scenario::ALL {
            let a = s.write(Vec::new(), &tiny(), 3).unwrap();
            let mut x = Vec::new();
            let w = s.write(&mut x, &tiny(), 3).unwrap();
            assert_eq!(a, w);
            let mut y = Vec::new();
            s.write(&mut y, &tiny(), 3).unwrap();
            assert_eq!(x, y, "{}: same seed, same bytes", s.name());
            assert_eq!(x.len() as u64, w.bytes);
            let fs = frames(&x);
            assert_eq!(fs.len() as u64, w.frames, "{}", s.name());
            assert!(fs.iter().all(|f| matches!(f.transport, Some(etherparse::TransportSlice::Tcp(_)))));
        }
    }

    #[test]
    fn half_open_connections_are_distinct_and_never_close() {
        let mut x = Vec::new();
        hostile::half_open(&mut x, 300, 1).unwrap();
        let mut tuples = std::collections::HashSet::new();
        for f in frames(&x) {
            let Some(etherparse::TransportSlice::Tcp(t)) = f.transport else { panic!() };
            assert!(!t.fin() && !t.rst());
            let Some(etherparse::NetSlice::Ipv4(ip)) = f.net else { panic!() };
            if t.syn() && !t.ack() {
                tuples.insert((ip.header().source(), t.source_port()));
            }
        }
        assert_eq!(tuples.len(), 300);
    }
}
