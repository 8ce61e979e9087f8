//! What was sent and received for one replayed request (request as sent, response head and body, phase
//! timings), kept only when an output needs it (`replayer run --har`), so a plain run carries none of it.
//! Response bodies are kept up to [`BODY_KEEP_CAP`]; the full length is always known.

use std::time::{Duration, SystemTime};

use crate::transform::OutRequest;

/// Most response body bytes kept per request.
pub const BODY_KEEP_CAP: usize = 64 * 1024;

/// The response as received.
#[derive(Clone, Debug, Default)]
pub struct ReplayedResponse {
    /// Status code.
    pub status: u16,
    /// Canonical reason phrase of the status (hyper does not keep the one sent).
    pub reason: String,
    /// Header fields in order (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// The first [`BODY_KEEP_CAP`] bytes of the body.
    pub body: Vec<u8>,
    /// The body length received.
    pub body_len: u64,
}

/// Phase timings of one request (HAR `timings`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseTimings {
    /// TCP connect, when this request opened the connection.
    pub connect: Option<Duration>,
    /// TLS handshake, when this request opened a TLS connection.
    pub tls: Option<Duration>,
    /// Sent to the response head.
    pub wait: Duration,
    /// Response head to the end of the body.
    pub receive: Duration,
}

/// One replayed request with its response.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// Wall-clock time the request was sent (or attempted).
    pub started: SystemTime,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `HTTP/1.1` or `HTTP/2`.
    pub version: &'static str,
    /// The request as sent.
    pub request: OutRequest,
    /// The response, if one came.
    pub response: Option<ReplayedResponse>,
    /// Phase timings.
    pub timings: PhaseTimings,
    /// The error, when no response came.
    pub error: Option<String>,
}
