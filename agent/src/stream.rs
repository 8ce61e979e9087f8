//! The arrow between TCP reassembly and the protocol parsers: a push interface for ordered byte streams.
//!
//! Reassembly calls a [`StreamSink`] per connection with in-order bytes for each direction, with gaps (bytes that
//! were never captured) as events rather than errors, and with the end of each direction. Sinks append the
//! exchanges they complete to the `out` vector they are given.

use std::net::SocketAddr;

use tapedeck_model::{Exchange, Timestamp};

/// Which way bytes flow on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the connection's originator (the SYN sender, or the first sender seen) to the other side.
    ToResponder,
    /// From the responder back to the originator.
    ToOriginator,
}

impl Direction {
    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ToResponder => Direction::ToOriginator,
            Direction::ToOriginator => Direction::ToResponder,
        }
    }
    /// 0 for `ToResponder`, 1 for `ToOriginator`: an index into per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Direction::ToResponder => 0,
            Direction::ToOriginator => 1,
        }
    }
}

/// What reassembly knows about a connection when it creates its sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnMeta {
    /// Unique id of the connection within the run.
    pub id: u64,
    /// The originator: the SYN sender when `handshake_seen`, else the sender of the first packet seen.
    pub originator: SocketAddr,
    /// The other side.
    pub responder: SocketAddr,
    /// Whether the SYN was seen, so that `originator` is known to be the client. When false, a sink may decide
    /// from content which side is the client (the side that sends a request line or the HTTP/2 preface).
    pub handshake_seen: bool,
    /// When the first packet of the connection was seen.
    pub first_seen: Timestamp,
}

/// Why a connection's stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both directions finished (FIN) or the connection was reset.
    Closed,
    /// No packet for longer than the idle timeout.
    Idle,
    /// Evicted to respect the flow or memory cap.
    Evicted,
    /// The input ended (end of the pcap file).
    EndOfInput,
}

/// Receives one connection's reassembled byte streams, in order.
pub trait StreamSink {
    /// In-order bytes for `dir`, `ts` being the capture time of the packet that carried the first of them.
    fn data(&mut self, dir: Direction, bytes: &[u8], ts: Timestamp, out: &mut Vec<Exchange>);
    /// `len` bytes of `dir` were never captured (lost, or skipped to respect a cap). Later data follows the gap.
    fn gap(&mut self, dir: Direction, len: u64, ts: Timestamp, out: &mut Vec<Exchange>);
    /// `dir` was closed by a FIN: no more data will come that way.
    fn fin(&mut self, dir: Direction, ts: Timestamp, out: &mut Vec<Exchange>);
    /// The connection was reset (RST).
    fn reset(&mut self, ts: Timestamp, out: &mut Vec<Exchange>);
    /// The connection's state is being dropped: flush every exchange still open, flagged as incomplete.
    fn close(&mut self, reason: CloseReason, ts: Timestamp, out: &mut Vec<Exchange>);
}

/// Creates a sink for every new connection.
pub trait SinkFactory {
    /// The sink type.
    type Sink: StreamSink;
    /// A sink for the connection described by `meta`.
    fn new_sink(&mut self, meta: &ConnMeta) -> Self::Sink;
}

/// A side of a connection once its roles are known (by the handshake, or by content).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that sends requests.
    Client,
    /// The side that answers.
    Server,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// What a protocol parser knows about its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// The connection id (from [`ConnMeta::id`]).
    pub id: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// The server's address.
    pub server: SocketAddr,
    /// The connection was joined after its start: the first bytes may be in the middle of a message.
    pub mid_stream: bool,
}
