//! Passive HTTP/2 (RFC 9113) decoding of one connection whose client and server are known.
//!
//! In: the connection's in-order byte streams per [`Side`](crate::stream::Side), with gaps, FIN, reset and close
//! events (what [`crate::stream::StreamSink`] delivers, once roles are known). Out: one
//! [`Exchange`](tapedeck_model::Exchange) per HTTP/2 stream (`proto: H2`, `stream_id`, `order` by stream open
//! order). Dropped or unusable input (bytes skipped to find a frame boundary, malformed frames, header fields that
//! need an unknown HPACK table, streams evicted at the cap) is counted in [`H2Stats`] and flagged on exchanges.
//!
//! Layout:
//! - [`frame`]: the 9-byte frame header and per-type payload decoding, no connection state;
//! - [`hpack`]: header block decoding (RFC 7541), including a mode for an unknown dynamic table;
//! - [`conn`]: per-direction framing and HPACK state, streams turned into exchanges ([`H2Conn`]);
//! - [`stats`]: the counters.
//!
//! gRPC summaries are computed from finished exchanges by `tapedeck_model::grpc`.

pub mod conn;
pub mod frame;
pub mod hpack;
pub mod stats;

use tapedeck_model::{Request, Timing};

pub use conn::H2Conn;
pub use stats::H2Stats;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Limits of one connection's decoder. Memory per connection is bounded by these, never by input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct H2Config {
    /// Body bytes kept per message (the rest is counted, the exchange flagged TRUNCATED).
    pub max_body: usize,
    /// Open streams tracked per connection; opening one more evicts the oldest (counted, flagged EVICTED).
    pub max_streams: usize,
    /// Cap on a header block's compressed size and on its decoded list (RFC 9113 §6.5.2 accounting).
    pub max_header_list_bytes: usize,
    /// Largest non-DATA frame payload buffered (at least SETTINGS_MAX_FRAME_SIZE's default, 16 384); larger
    /// frames are skipped and counted. DATA payloads are never buffered.
    pub max_frame_bytes: usize,
}

impl Default for H2Config {
    fn default() -> Self {
        H2Config { max_body: 1 << 20, max_streams: 1024, max_header_list_bytes: 256 << 10, max_frame_bytes: 1 << 16 }
    }
}

/// How a connection's HTTP/2 begins.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(clippy::large_enum_variant, reason = "built once per connection; the signature is the contract")]
pub enum H2Start {
    /// Prior-knowledge h2c: the client sends the preface first.
    PriorKnowledge,
    /// h2c upgrade (RFC 7540 §3.2): the HTTP/1.1 request becomes stream 1, half-closed on the client side, and
    /// its response arrives on stream 1. The client preface still comes first from the client. The exchange is
    /// flagged UPGRADED.
    Upgrade {
        /// The HTTP/1.1 request that asked for the upgrade.
        request: Request,
        /// Its timestamps so far.
        timing: Timing,
        /// Its order on the connection; later streams follow it.
        order: u32,
        /// The decoded HTTP2-Settings header (a SETTINGS payload), if any.
        settings: Option<Vec<u8>>,
    },
    /// Joined mid-connection: no preface, frame boundaries and HPACK state unknown.
    MidStream,
}

#[cfg(test)]
mod tests;
