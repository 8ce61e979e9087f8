//! Link, network and transport decoding: a captured [`crate::source::Frame`] in, a [`TcpSegment`] out.
//! (Being written.)

use std::net::SocketAddr;

use tapedeck_model::Timestamp;

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
}
