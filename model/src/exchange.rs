//! The exchange: one request and its response (either may be missing), with where and when they were seen and
//! flags that say what is incomplete and why.
//!
//! Header names and values, methods and paths are kept as raw bytes: the wire may carry anything, and a recording
//! must not "fix" what it saw. Views that need text (JSON, terminal) convert lossily at the edge.

use std::fmt;
use std::net::SocketAddr;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// A capture timestamp in nanoseconds since the Unix epoch, taken from the capture (never from the clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, Serialize, Deserialize)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Builds a timestamp from seconds and nanoseconds since the epoch.
    pub fn from_secs_nanos(secs: u64, nanos: u32) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(u64::from(nanos)))
    }
    /// Nanoseconds since the epoch.
    pub fn as_nanos(self) -> u64 {
        self.0
    }
    /// Seconds since the epoch, as a float (for display).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

/// The application protocol of an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
pub enum Protocol {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
    /// HTTP/2 (h2c prior knowledge, h2c upgrade, or h2 seen in clear text).
    H2,
}

impl Protocol {
    /// The name used in JSON output: `http/1.0`, `http/1.1` or `h2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http10 => "http/1.0",
            Protocol::Http11 => "http/1.1",
            Protocol::H2 => "h2",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field, name and value as they were on the wire (HTTP/2 names are lower case by the protocol).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Header {
    /// The field name.
    pub name: Vec<u8>,
    /// The field value.
    pub value: Vec<u8>,
}

impl Header {
    /// Builds a header from anything byte-like.
    pub fn new(name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Header { name: name.into(), value: value.into() }
    }
}

/// A message body as stored: the first bytes up to the configured cap, and the full length that was seen.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Body {
    /// The stored bytes (decoded from chunked transfer coding, but content-encoding kept as sent).
    pub bytes: Vec<u8>,
    /// The body length seen on the wire after transfer decoding; larger than `bytes.len()` when the body was cut
    /// at the cap (the exchange then carries [`Flag::TRUNCATED`]) or bytes were lost in a gap.
    pub full_len: u64,
}

/// The four timestamps of an exchange: first and last byte of the request and of the response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Timing {
    /// First byte of the request.
    pub request_first: Option<Timestamp>,
    /// Last byte of the request.
    pub request_last: Option<Timestamp>,
    /// First byte of the (final) response.
    pub response_first: Option<Timestamp>,
    /// Last byte of the response.
    pub response_last: Option<Timestamp>,
}

impl Timing {
    /// The earliest timestamp known for the exchange.
    pub fn start(&self) -> Option<Timestamp> {
        [self.request_first, self.request_last, self.response_first, self.response_last].into_iter().flatten().min()
    }
}

/// A request as seen on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Request {
    /// The method (`GET`, ...).
    pub method: Vec<u8>,
    /// `http` or `https` when known (HTTP/2 `:scheme`), empty otherwise.
    pub scheme: Vec<u8>,
    /// The authority: HTTP/2 `:authority`, else the Host header, else the authority of an absolute-form target.
    pub authority: Vec<u8>,
    /// The request target as sent (origin-form path and query for most requests).
    pub path: Vec<u8>,
    /// Header fields in the order they were sent (HTTP/2 pseudo-headers excluded).
    pub headers: Vec<Header>,
    /// The body.
    pub body: Body,
    /// Trailer fields (chunked trailers, HTTP/2 trailers).
    pub trailers: Vec<Header>,
}

/// An interim (1xx) response kept inside the exchange it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Interim {
    /// The status code (100, 101, 102, 103).
    pub status: u16,
    /// Header fields of the interim response.
    pub headers: Vec<Header>,
    /// When it was seen.
    pub at: Option<Timestamp>,
}

/// The final response to a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase (HTTP/1 only).
    pub reason: Vec<u8>,
    /// Header fields in order (HTTP/2 pseudo-headers excluded).
    pub headers: Vec<Header>,
    /// The body.
    pub body: Body,
    /// Trailer fields.
    pub trailers: Vec<Header>,
    /// Interim responses that came before this one (100-continue, 103 early hints, ...).
    pub interim: Vec<Interim>,
}

/// Flags that say what is incomplete or special about an exchange. A set of bits; see the associated constants.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
pub struct Flags(pub u32);

/// One named flag bit.
pub type Flag = Flags;

macro_rules! flags {
    ($( $(#[$doc:meta])* $name:ident = $bit:expr, $text:literal; )*) => {
        impl Flags {
            $( $(#[$doc])* pub const $name: Flags = Flags(1 << $bit); )*
            /// Every flag with its name, in bit order.
            pub const ALL: &'static [(Flags, &'static str)] = &[ $( (Flags::$name, $text), )* ];
        }
    };
}

flags! {
    /// Bytes of the request or response were lost in the capture (a TCP gap).
    GAP = 0, "gap";
    /// The connection was picked up after its start (no handshake, or HTTP/2 without its preface).
    MID_STREAM = 1, "mid_stream";
    /// A request whose response was never seen.
    NO_RESPONSE = 2, "no_response";
    /// A response whose request was not seen.
    NO_REQUEST = 3, "no_request";
    /// A body was cut at the body cap (`Body::full_len` has the real length).
    TRUNCATED = 4, "truncated";
    /// The message could not be parsed; what was recovered is kept.
    PARSE_ERROR = 5, "parse_error";
    /// The exchange switched protocols (HTTP/1.1 Upgrade, CONNECT, h2c upgrade).
    UPGRADED = 6, "upgraded";
    /// The connection was reset (TCP RST or HTTP/2 RST_STREAM) before the exchange completed.
    RESET = 7, "reset";
    /// The message ended before its declared length (connection closed or input ended).
    INCOMPLETE = 8, "incomplete";
    /// Packets were cut by the capture's snaplen, so bytes are missing.
    SNAPLEN = 9, "snaplen";
    /// The connection's flow state was evicted (memory cap or idle timeout) while the exchange was open.
    EVICTED = 10, "evicted";
    /// HPACK state could not be trusted (mid-stream HTTP/2): some headers may be missing.
    HPACK_UNKNOWN = 11, "hpack_unknown";
    /// Masking rules changed this exchange.
    MASKED = 12, "masked";
    /// The message was sent after a connection-level error (GOAWAY) or on a stream the peer refused.
    REFUSED = 13, "refused";
    /// A server push (HTTP/2 PUSH_PROMISE).
    PUSHED = 14, "pushed";
}

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    /// Sets the bits of `other`.
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }
    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The names of the set flags, in bit order; unknown bits are named `bitN`.
    pub fn names(self) -> Vec<String> {
        let mut out = Vec::new();
        for bit in 0..32 {
            let f = Flags(1 << bit);
            if self.0 & f.0 == 0 {
                continue;
            }
            match Flags::ALL.iter().find(|(g, _)| *g == f) {
                Some((_, name)) => out.push((*name).to_string()),
                None => out.push(format!("bit{bit}")),
            }
        }
        out
    }
    /// Looks a flag up by its name.
    pub fn from_name(name: &str) -> Option<Flags> {
        Flags::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flags({})", self.names().join("|"))
    }
}

/// One request/response exchange as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Exchange {
    /// Unique within the capture run that wrote it.
    pub id: u64,
    /// The TCP connection it was seen on (unique within the run).
    pub connection_id: u64,
    /// Position on the connection: 0 for the first exchange, in request order.
    pub order: u32,
    /// The HTTP/2 stream id, if any.
    pub stream_id: Option<u32>,
    /// The protocol.
    pub proto: Protocol,
    /// The client's address and port.
    pub client: SocketAddr,
    /// The server's address and port.
    pub server: SocketAddr,
    /// The four timestamps.
    pub timing: Timing,
    /// The request, if it was seen.
    pub request: Option<Request>,
    /// The final response, if it was seen.
    pub response: Option<Response>,
    /// What is incomplete or special.
    pub flags: Flags,
    /// Free-form labels (node, interface, service), name then value.
    pub labels: Vec<(String, String)>,
    /// Names of the masking rules that changed this exchange, sorted, each once (never the values they masked);
    /// empty when masking did not touch it. Entries starting with `@` are notes from the masking engine rather
    /// than rule names (a body stored decoded or re-encoded, say).
    pub masked_by: Vec<String>,
}

impl Exchange {
    /// Bytes this exchange holds, roughly: the struct, bodies, header names and values (48 bytes of overhead per
    /// field), the request line's parts, labels and masking notes. It errs low only by per-allocation overhead.
    /// The agent cuts batches by it; the replayer bounds its selection by it.
    pub fn approx_bytes(&self) -> usize {
        fn headers(h: &[Header]) -> usize {
            h.iter().map(|f| f.name.len() + f.value.len() + 48).sum()
        }
        let req = self.request.as_ref().map_or(0, |r| {
            r.method.len()
                + r.scheme.len()
                + r.authority.len()
                + r.path.len()
                + r.body.bytes.len()
                + headers(&r.headers)
                + headers(&r.trailers)
        });
        let resp = self.response.as_ref().map_or(0, |r| {
            r.reason.len()
                + r.body.bytes.len()
                + headers(&r.headers)
                + headers(&r.trailers)
                + r.interim.iter().map(|i| headers(&i.headers)).sum::<usize>()
        });
        let notes: usize = self.labels.iter().map(|(n, v)| n.len() + v.len() + 48).sum::<usize>()
            + self.masked_by.iter().map(|m| m.len() + 24).sum::<usize>();
        std::mem::size_of::<Exchange>() + req + resp + notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names_round_trip() {
        for (flag, name) in Flags::ALL {
            assert_eq!(Flags::from_name(name), Some(*flag));
            assert_eq!(flag.names(), vec![name.to_string()]);
        }
        let both = Flags::GAP | Flags::TRUNCATED;
        assert_eq!(both.names(), vec!["gap", "truncated"]);
        assert!(both.contains(Flags::GAP));
        assert!(!both.contains(Flags::RESET));
        assert_eq!(Flags(1 << 31).names(), vec!["bit31"]);
    }

    #[test]
    fn flag_bits_are_distinct() {
        let mut seen = 0u32;
        for (flag, _) in Flags::ALL {
            assert_eq!(flag.0.count_ones(), 1);
            assert_eq!(seen & flag.0, 0, "bit used twice");
            seen |= flag.0;
        }
    }
}
