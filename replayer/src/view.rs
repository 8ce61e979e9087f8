//! The JSON view of an exchange, one object per line: what `replayer inspect --json` and `export --jsonl` print.
//!
//! Bytes from the wire are shown as UTF-8 text with invalid sequences replaced (U+FFFD); bodies are summarised
//! (length, stored length) and, with [`ExchangeView::with_bodies`] (`inspect --json --bodies`), carried: their
//! content-encoding undone ([`crate::bodies`]), as `text` when UTF-8, else as `base64`, `encoding` saying which.
//! Timestamps are nanoseconds since the Unix epoch; `time` is the start as RFC 3339 in UTC (`...Z`).

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
    /// The start of the exchange (its earliest timestamp), RFC 3339 in UTC with microseconds.
    pub time: Option<String>,
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
    /// With bodies: `utf-8` (the body is in `text`) or `base64` (in `base64`); absent for an empty body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// With bodies: the body as text, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// With bodies: the body in base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// With bodies: the content-encodings undone before the body was shown (`gzip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded_from: Option<String>,
    /// With bodies: why the content-encoding could not be undone (the stored bytes are shown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_decoded: Option<String>,
}

/// Text of wire bytes, invalid UTF-8 replaced.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn headers(h: &[Header]) -> Vec<(String, String)> {
    h.iter().map(|h| (text(&h.name), text(&h.value))).collect()
}

fn body(b: &Body, headers: &[Header], with_bytes: bool) -> BodyView {
    let mut v = BodyView {
        length: b.full_len,
        stored: b.bytes.len(),
        encoding: None,
        text: None,
        base64: None,
        decoded_from: None,
        not_decoded: None,
    };
    if !with_bytes || b.bytes.is_empty() {
        return v;
    }
    let shown = crate::bodies::shown(b, headers);
    match std::str::from_utf8(&shown.bytes) {
        Ok(t) => (v.encoding, v.text) = (Some("utf-8"), Some(t.to_string())),
        Err(_) => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&shown.bytes);
            (v.encoding, v.base64) = (Some("base64"), Some(b64));
        }
    }
    (v.decoded_from, v.not_decoded) = (shown.undone, shown.not_decoded);
    v
}

/// The start of `ex` as RFC 3339 in UTC with microseconds (`2026-11-21T19:33:00.500000Z`).
pub fn start_time(ex: &Exchange) -> Option<String> {
    let t = ex.timing.start()?;
    Some(humantime::format_rfc3339_micros(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(t.0)).to_string())
}

impl<'a> ExchangeView<'a> {
    /// The view of `ex`, bodies summarised.
    pub fn new(ex: &'a Exchange) -> Self {
        Self::build(ex, false)
    }

    /// The view of `ex` with the bodies' bytes (see the module docs).
    pub fn with_bodies(ex: &'a Exchange) -> Self {
        Self::build(ex, true)
    }

    fn build(ex: &'a Exchange, bodies: bool) -> Self {
        ExchangeView {
            id: ex.id,
            connection_id: ex.connection_id,
            order: ex.order,
            stream_id: ex.stream_id,
            proto: ex.proto.as_str(),
            client: ex.client.to_string(),
            server: ex.server.to_string(),
            time: start_time(ex),
            timing: &ex.timing,
            request: ex.request.as_ref().map(|r| RequestView {
                method: text(&r.method),
                scheme: text(&r.scheme),
                authority: text(&r.authority),
                path: text(&r.path),
                headers: headers(&r.headers),
                body: body(&r.body, &r.headers, bodies),
                trailers: headers(&r.trailers),
            }),
            response: ex.response.as_ref().map(|r| ResponseView {
                status: r.status,
                reason: text(&r.reason),
                headers: headers(&r.headers),
                body: body(&r.body, &r.headers, bodies),
                trailers: headers(&r.trailers),
                interim: r.interim.iter().map(|i| i.status).collect(),
            }),
            flags: ex.flags.names(),
            labels: ex.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            grpc: grpc_summary(ex),
        }
    }
}
