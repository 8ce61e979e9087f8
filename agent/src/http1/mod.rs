//! HTTP/1.0 and HTTP/1.1, passively: one TCP connection's two byte streams in, request/response exchanges out.
//!
//! What comes in: in-order bytes per side (client or server, roles already known), gaps, FINs, a reset, and the
//! final close, as pushed by the session. What goes out: [`Exchange`](tapedeck_model::Exchange)s appended to the
//! caller's vector as soon as each response is complete, and a [`Switch`] when the connection leaves HTTP/1
//! (101 Switching Protocols, CONNECT 2xx). What gets dropped, always counted in [`Http1Stats`]: bytes skipped
//! while resynchronising after gaps or garbage, body bytes past the body cap, heads over the head cap, requests
//! past the pipelining cap.
//!
//! Layout:
//! - `scan` recognises a request or status line start (protocol detection and resync).
//! - `head` parses request and response heads (httparse, with a lenient fallback).
//! - `body` decides body framing (RFC 9112 §6.3) and reads chunk-size lines.
//! - `reader` is one direction's message reader (heads, decoded body bytes, ends, resync).
//! - `conn` is the connection: pairs requests and responses in order, builds exchanges, handles gaps, ends and
//!   protocol switches.
//! - `stats` holds the counters.

mod body;
mod conn;
mod head;
mod reader;
mod scan;
mod stats;

#[cfg(test)]
mod tests;

use tapedeck_model::{Request, Timing};

pub use conn::Http1Conn;
pub use scan::{looks_like_request_start, looks_like_response_start};
pub use stats::Http1Stats;

/// Limits of the HTTP/1 parser; every buffer it keeps is bounded by these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Http1Config {
    /// Body bytes kept per message (the rest is counted, and the exchange flagged `truncated`). Default 1 MiB.
    pub max_body: usize,
    /// Largest head (start line and fields) accepted; a larger one is a parse error. Default 256 KiB.
    pub max_head_bytes: usize,
    /// Requests kept waiting for their responses; past this the oldest is flushed as unanswered. Default 1024.
    pub max_pipelined: usize,
}

impl Default for Http1Config {
    fn default() -> Self {
        Http1Config { max_body: 1 << 20, max_head_bytes: 256 << 10, max_pipelined: 1024 }
    }
}

/// The connection leaves HTTP/1 after this point (bytes after the switch are not HTTP/1).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "at most one per connection; the request travels by value to HTTP/2")]
pub enum Switch {
    /// A request with `Upgrade: h2c` was answered by 101: HTTP/2 takes over and answers the request on stream 1.
    /// The exchange for that request is not emitted by HTTP/1.
    H2cUpgrade {
        /// The upgraded request (HTTP/2 stream 1).
        request: Request,
        /// Its timing (request timestamps only).
        timing: Timing,
        /// Its position on the connection.
        order: u32,
        /// The decoded `HTTP2-Settings` header (base64url), when present and decodable.
        settings: Option<Vec<u8>>,
        /// Client bytes that followed the upgraded request (the HTTP/2 preface, usually).
        client_rest: Vec<u8>,
        /// Server bytes that followed the 101 response.
        server_rest: Vec<u8>,
    },
    /// CONNECT answered 2xx, WebSocket or another 101: the rest is a tunnel, no longer HTTP/1 of this
    /// connection (it may carry anything, HTTP included). The exchange was emitted, flagged `upgraded`.
    Tunnel {
        /// Client bytes that followed the request (already sent into the tunnel).
        client_rest: Vec<u8>,
        /// Server bytes that followed the response.
        server_rest: Vec<u8>,
    },
}
