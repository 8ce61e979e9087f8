//! The JSON view of an exchange, one object per line: what `replayer inspect --json` and `export --jsonl` print.
//!
//! Bytes from the wire are shown as UTF-8 text with invalid sequences replaced (U+FFFD); bodies are summarised
//! (length, stored length, and the stored bytes as text when they are valid UTF-8, else base64 is left to `export`).
//! Timestamps are nanoseconds since the Unix epoch.

use serde::Serialize;
use tapedeck_model::grpc::{GrpcSummary, grpc_summary};
use tapedeck_model::{Body, Exchange, Header, Timing};

/// One exchange as JSON.
#[derive(Debug, Serialize)]
pub struct ExchangeView<'a> {
    /// Exchange id.
    pub id: u64,
    /// Connection id.
    pub connection_id: u64,
    /// Order on the connection.
    pub order: u32,
    /// HTTP/2 stream id.
    pub stream_id: Option<u32>,
    /// `http/1.0`, `http/1.1` or `h2`.
    pub proto: &'static str,
    /// Client address.
    pub client: String,
    /// Server address.
    pub server: String,
    /// The four timestamps, in nanoseconds since the epoch.
    pub timing: &'a Timing,
    /// The request, or null.
    pub request: Option<RequestView>,
    /// The final response, or null.
    pub response: Option<ResponseView>,
    /// Flag names.
    pub flags: Vec<String>,
    /// Labels.
    pub labels: std::collections::BTreeMap<&'a str, &'a str>,
    /// gRPC details, when the exchange is gRPC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcSummary>,
}

/// A request as JSON.
#[derive(Debug, Serialize)]
pub struct RequestView {
    /// Method.
    pub method: String,
    /// Scheme, when known.
    pub scheme: String,
    /// Authority.
    pub authority: String,
    /// Path (request target).
    pub path: String,
    /// Headers in order, as `[name, value]` pairs.
    pub headers: Vec<(String, String)>,
    /// Body summary.
    pub body: BodyView,
    /// Trailers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trailers: Vec<(String, String)>,
}

/// A response as JSON.
#[derive(Debug, Serialize)]
pub struct ResponseView {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body summary.
    pub body: BodyView,
    /// Trailers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trailers: Vec<(String, String)>,
    /// Interim (1xx) status codes before the final response.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interim: Vec<u16>,
}

/// A body as JSON.
#[derive(Debug, Serialize)]
pub struct BodyView {
    /// Length seen on the wire.
    pub length: u64,
    /// Bytes stored.
    pub stored: usize,
}

/// Text of wire bytes, invalid UTF-8 replaced.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn headers(h: &[Header]) -> Vec<(String, String)> {
    h.iter().map(|h| (text(&h.name), text(&h.value))).collect()
}

fn body(b: &Body) -> BodyView {
    BodyView { length: b.full_len, stored: b.bytes.len() }
}

impl<'a> ExchangeView<'a> {
    /// The view of `ex`.
    pub fn new(ex: &'a Exchange) -> Self {
        ExchangeView {
            id: ex.id,
            connection_id: ex.connection_id,
            order: ex.order,
            stream_id: ex.stream_id,
            proto: ex.proto.as_str(),
            client: ex.client.to_string(),
            server: ex.server.to_string(),
            timing: &ex.timing,
            request: ex.request.as_ref().map(|r| RequestView {
                method: text(&r.method),
                scheme: text(&r.scheme),
                authority: text(&r.authority),
                path: text(&r.path),
                headers: headers(&r.headers),
                body: body(&r.body),
                trailers: headers(&r.trailers),
            }),
            response: ex.response.as_ref().map(|r| ResponseView {
                status: r.status,
                reason: text(&r.reason),
                headers: headers(&r.headers),
                body: body(&r.body),
                trailers: headers(&r.trailers),
                interim: r.interim.iter().map(|i| i.status).collect(),
            }),
            flags: ex.flags.names(),
            labels: ex.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            grpc: grpc_summary(ex),
        }
    }
}
