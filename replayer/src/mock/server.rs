//! The mock's HTTP side: a hyper server with protocol detection (HTTP/1.1 and h2c prior knowledge, through
//! hyper-util's `auto` builder) answering from the [`Index`], the metrics page, and the counters.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tapedeck_model::Header;

use super::index::{Incoming, Index, IndexStats, LEVELS};

/// The metrics page: always here, a path no real service uses.
pub const METRICS_PATH: &str = "/__tapedeck/metrics";
/// The metrics page here too, unless the recording has requests to this path (then the mocked service's own
/// answers are served: the recording wins).
pub const PLAIN_METRICS_PATH: &str = "/metrics";

/// Counters of the mock (atomics: requests are served concurrently).
#[derive(Debug, Default)]
pub struct MockStats {
    /// Requests received (the metrics page not counted).
    pub requests: AtomicU64,
    /// Requests answered from the recording, by level (see [`LEVELS`]).
    pub matched: [AtomicU64; 4],
    /// Requests nothing matched.
    pub unmatched: AtomicU64,
    /// Unmatched requests not logged one by one (past `--log-unmatched`).
    pub unmatched_not_logged: AtomicU64,
    /// Request bodies over `--max-body` (matched without their body).
    pub bodies_too_large: AtomicU64,
    /// Requests whose body could not be read (connection error): matched without it.
    pub body_errors: AtomicU64,
    /// Recorded header fields not valid HTTP, not served.
    pub headers_invalid_dropped: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Accept errors.
    pub accept_errors: AtomicU64,
}

impl MockStats {
    fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    /// Requests matched at any level.
    pub fn matched_total(&self) -> u64 {
        self.matched.iter().map(Self::get).sum()
    }

    /// matched / requests (1 without requests).
    pub fn match_rate(&self) -> f64 {
        let r = Self::get(&self.requests);
        if r == 0 { 1.0 } else { self.matched_total() as f64 / r as f64 }
    }

    /// The stats line printed on exit.
    pub fn line(&self) -> String {
        let levels: Vec<String> =
            LEVELS.iter().zip(&self.matched).map(|(n, c)| format!("{n} {}", Self::get(c))).collect();
        let rate = match Self::get(&self.requests) {
            0 => "n/a".to_string(),
            _ => format!("{:.2}%", self.match_rate() * 100.0),
        };
        format!(
            "mock: {} requests, {} matched ({}), {} unmatched, match rate {rate}",
            Self::get(&self.requests),
            self.matched_total(),
            levels.join(", "),
            Self::get(&self.unmatched),
        )
    }

    /// Prometheus text exposition.
    pub fn prometheus(&self, index: &IndexStats) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "# HELP tapedeck_mock_requests_total Requests received by the mock, by result.");
        let _ = writeln!(s, "# TYPE tapedeck_mock_requests_total counter");
        let _ = writeln!(s, "tapedeck_mock_requests_total{{result=\"matched\"}} {}", self.matched_total());
        let _ = writeln!(s, "tapedeck_mock_requests_total{{result=\"unmatched\"}} {}", Self::get(&self.unmatched));
        let _ = writeln!(s, "# HELP tapedeck_mock_matched_total Matched requests by match level.");
        let _ = writeln!(s, "# TYPE tapedeck_mock_matched_total counter");
        for (n, c) in LEVELS.iter().zip(&self.matched) {
            let _ = writeln!(s, "tapedeck_mock_matched_total{{level=\"{n}\"}} {}", Self::get(c));
        }
        let _ = writeln!(s, "# HELP tapedeck_mock_match_ratio Matched requests over all requests.");
        let _ = writeln!(s, "# TYPE tapedeck_mock_match_ratio gauge");
        let _ = writeln!(s, "tapedeck_mock_match_ratio {}", self.match_rate());
        for (name, help, v) in [
            ("tapedeck_mock_recorded_responses", "Recorded responses the mock can serve.", index.indexed),
            (
                "tapedeck_mock_recorded_incomplete",
                "Recorded exchanges without request or response.",
                index.skipped_incomplete,
            ),
            (
                "tapedeck_mock_recorded_interim_status",
                "Recorded exchanges with a 1xx final status.",
                index.skipped_interim_status,
            ),
            (
                "tapedeck_mock_recorded_request_body_truncated",
                "Recorded requests with a cut body (no body match).",
                index.body_truncated,
            ),
            (
                "tapedeck_mock_recorded_response_truncated",
                "Recorded responses with a cut body (served cut).",
                index.response_truncated,
            ),
            ("tapedeck_mock_connections_total", "Connections accepted.", Self::get(&self.connections)),
            (
                "tapedeck_mock_request_bodies_too_large_total",
                "Request bodies over the cap.",
                Self::get(&self.bodies_too_large),
            ),
            (
                "tapedeck_mock_request_body_errors_total",
                "Request bodies that could not be read.",
                Self::get(&self.body_errors),
            ),
            (
                "tapedeck_mock_headers_invalid_dropped_total",
                "Recorded header fields not served.",
                Self::get(&self.headers_invalid_dropped),
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} {}", if name.ends_with("_total") { "counter" } else { "gauge" });
            let _ = writeln!(s, "{name} {v}");
        }
        s
    }
}

/// The mock: the index and its counters.
pub struct Mock {
    index: Index,
    unmatched_status: u16,
    log_unmatched: u64,
    max_body: usize,
    stats: Arc<MockStats>,
    /// Whether [`PLAIN_METRICS_PATH`] is the metrics page (the recording has no request to it).
    plain_metrics: bool,
}

impl Mock {
    /// A mock answering from `index`.
    pub fn new(index: Index, unmatched_status: u16, log_unmatched: u64, max_body: usize) -> Mock {
        let plain_metrics = !index.has_path(PLAIN_METRICS_PATH.as_bytes());
        Mock { index, unmatched_status, log_unmatched, max_body, stats: Arc::default(), plain_metrics }
    }

    /// Where the metrics page is served (one path or two).
    pub fn metrics_paths(&self) -> String {
        if self.plain_metrics {
            format!("{PLAIN_METRICS_PATH} and {METRICS_PATH}")
        } else {
            format!("{METRICS_PATH} ({PLAIN_METRICS_PATH} is in the recording and served from it)")
        }
    }

    /// The counters (shared).
    pub fn stats(&self) -> Arc<MockStats> {
        Arc::clone(&self.stats)
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<MockBody> {
        let path = req.uri().path();
        if path == METRICS_PATH || (self.plain_metrics && path == PLAIN_METRICS_PATH) {
            let mut r = Response::new(MockBody::new(self.stats.prometheus(&self.index.stats).into(), None));
            r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; version=0.0.4"));
            return r;
        }
        let st = &self.stats;
        st.requests.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, self.max_body).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    st.bodies_too_large.fetch_add(1, Ordering::Relaxed);
                } else {
                    st.body_errors.fetch_add(1, Ordering::Relaxed);
                }
                Bytes::new()
            }
        };
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().as_bytes().to_vec())
            .or_else(|| parts.headers.get("host").map(|h| h.as_bytes().to_vec()))
            .unwrap_or_default();
        let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let inc = Incoming {
            method: parts.method.as_str().as_bytes(),
            authority: &authority,
            target: target.as_bytes(),
            body: &body,
        };
        match self.index.lookup(&inc) {
            Ok((level, id, resp)) => {
                st.matched[level].fetch_add(1, Ordering::Relaxed);
                let mut headers = HeaderMap::new();
                let mut dropped = 0u64;
                add_headers(&mut headers, &resp.headers, &mut dropped);
                let trailers = if resp.trailers.is_empty() {
                    None
                } else {
                    let mut t = HeaderMap::new();
                    add_headers(&mut t, &resp.trailers, &mut dropped);
                    Some(t)
                };
                if dropped > 0 {
                    st.headers_invalid_dropped.fetch_add(dropped, Ordering::Relaxed);
                }
                let mut r = Response::new(MockBody::new(Bytes::from(resp.body.bytes.clone()), trailers));
                *r.status_mut() = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
                *r.headers_mut() = headers;
                if let Ok(v) = HeaderValue::from_str(&format!("matched; level={}; exchange={id}", LEVELS[level])) {
                    r.headers_mut().insert("x-tapedeck-mock", v);
                }
                r
            }
            Err(reason) => {
                let n = st.unmatched.fetch_add(1, Ordering::Relaxed);
                if n < self.log_unmatched {
                    eprintln!("mock: unmatched {} {target} ({reason})", parts.method);
                } else {
                    st.unmatched_not_logged.fetch_add(1, Ordering::Relaxed);
                }
                let text = format!("tapedeck mock: no recorded answer for {} {target} ({reason})\n", parts.method);
                let mut r = Response::new(MockBody::new(text.into(), None));
                *r.status_mut() = StatusCode::from_u16(self.unmatched_status).unwrap_or(StatusCode::BAD_GATEWAY);
                if let Ok(v) = HeaderValue::from_str(&format!("unmatched; reason={reason}")) {
                    r.headers_mut().insert("x-tapedeck-mock", v);
                }
                r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain"));
                r
            }
        }
    }
}

/// Header fields that describe the recorded connection or framing, not the answer: never replayed.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
];

fn add_headers(map: &mut HeaderMap, headers: &[Header], dropped: &mut u64) {
    for h in headers {
        let Ok(name) = HeaderName::from_bytes(&h.name) else {
            *dropped += 1;
            continue;
        };
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        match HeaderValue::from_bytes(&h.value) {
            Ok(v) => {
                map.append(name, v);
            }
            Err(_) => *dropped += 1,
        }
    }
}

/// A body of one data frame and optional trailers (gRPC status travels in trailers).
pub struct MockBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl MockBody {
    fn new(data: Bytes, trailers: Option<HeaderMap>) -> MockBody {
        MockBody { data: (!data.is_empty()).then_some(data), trailers }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(d) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        if let Some(t) = this.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let n = self.data.as_ref().map_or(0, |d| d.len() as u64);
        if self.trailers.is_none() {
            SizeHint::with_exact(n)
        } else {
            let mut h = SizeHint::new();
            h.set_lower(n);
            h
        }
    }
}

/// Accepts connections until `stop` completes.
pub async fn serve(listener: tokio::net::TcpListener, mock: Mock, stop: impl Future<Output = ()>) {
    let mock = Arc::new(mock);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(_) => {
                mock.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        mock.stats.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let mock = Arc::clone(&mock);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let mock = Arc::clone(&mock);
                async move { Ok::<_, Infallible>(mock.handle(req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
