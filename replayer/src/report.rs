//! The run report: outcomes of sent requests in, a summary out (terminal text and JSON): counts by status class and
//! error kind, latency p50/p90/p99/max overall and per endpoint, schedule lag (actual minus planned send time)
//! p50/p99/max, and the run's duration against the planned one.
//!
//! Histograms are hdrhistogram in microseconds (3 significant digits, up to one hour; larger values are clamped
//! and counted). Endpoints (method and path without query) are capped at [`MAX_ENDPOINTS`]; the rest is pooled
//! under `(other)` and counted, so memory does not grow with the capture.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::plan::PlanStats;
use crate::select::SelectStats;
use crate::transform::TransformStats;

/// Most distinct endpoints tracked one by one.
pub const MAX_ENDPOINTS: usize = 1000;
/// Most error messages kept as samples in the report.
pub const MAX_ERROR_SAMPLES: usize = 20;
const MAX_MICROS: u64 = 3_600_000_000;

/// Why a request got no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The target refused the connection.
    ConnectRefused,
    /// Connecting took longer than the connect timeout.
    ConnectTimeout,
    /// Connecting failed otherwise (DNS, unreachable, handshake).
    ConnectError,
    /// No complete response within the request timeout.
    Timeout,
    /// The connection was reset.
    Reset,
    /// The connection closed before the response was complete.
    Closed,
    /// The target answered with something that is not valid HTTP, or an HTTP/2 stream error.
    Protocol,
    /// The recorded request cannot be expressed as a valid request (bad method, path or header).
    InvalidRequest,
    /// The TLS handshake failed (untrusted or invalid certificate, no common protocol or ALPN).
    Tls,
}

impl ErrorKind {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::ConnectError => "connect_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::Protocol => "protocol",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Tls => "tls",
        }
    }
}

/// What happened to one request.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The recorded exchange id.
    pub exchange_id: u64,
    /// Endpoint key: method and path without query.
    pub endpoint: String,
    /// Planned send offset from the run start.
    pub planned: Duration,
    /// Actual send offset from the run start (when sending was attempted).
    pub actual: Duration,
    /// The response status and latency (send to end of body), or the error.
    pub result: Result<(u16, Duration), (ErrorKind, String)>,
    /// The status the recording had.
    pub recorded_status: Option<u16>,
    /// The recorded request had body fields masked: what was sent is not what the client sent.
    pub masked_body: bool,
    /// What was sent and received, when an output needs it (`--har`).
    pub detail: Option<Box<crate::replayed::Replayed>>,
}

/// Counters of the sender.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClientStats {
    /// Connections opened to the target.
    pub connections_opened: u64,
    /// Connections opened again after the previous one closed or failed.
    pub reconnects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Response body bytes received.
    pub response_bytes: u64,
    /// Requests sent with an HTTP version other than recorded (`--http1` / `--http2`).
    pub protocol_forced: u64,
    /// Recorded header fields that are not valid HTTP (name or value) and were not sent.
    pub headers_invalid_dropped: u64,
    /// TLS handshakes that failed.
    pub tls_failures: u64,
}

/// Latency or lag percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Latency of one endpoint.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointReport {
    /// Method and path.
    pub endpoint: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed without a response.
    pub errors: u64,
    /// Latency of the responses.
    pub latency: Percentiles,
}

/// The whole report, as written by `--report FILE.json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Target.
    pub target: String,
    /// Time scale.
    pub time_scale: String,
    /// Requests attempted.
    pub requests: u64,
    /// Responses received.
    pub responses: u64,
    /// Requests that got no response.
    pub errors: u64,
    /// Responses by status class (`2xx`, ...).
    pub status_classes: BTreeMap<String, u64>,
    /// Responses by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Responses whose status differs from the recorded one.
    pub status_changed: u64,
    /// Errors by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Up to [`MAX_ERROR_SAMPLES`] error messages.
    pub error_samples: Vec<String>,
    /// Latency overall.
    pub latency: Percentiles,
    /// Latency per endpoint, busiest first.
    pub endpoints: Vec<EndpointReport>,
    /// Endpoints pooled under `(other)` past [`MAX_ENDPOINTS`].
    pub endpoints_pooled: u64,
    /// Schedule lag: actual minus planned send time.
    pub schedule_lag: Percentiles,
    /// Planned duration (last planned send), seconds.
    pub planned_duration_s: f64,
    /// Actual duration of the run, seconds.
    pub actual_duration_s: f64,
    /// Recorded span of the selection (first to last request), seconds.
    pub recorded_span_s: f64,
    /// Values clamped to the histogram range (over an hour).
    pub histogram_clamped: u64,
    /// Selection counters.
    pub select: SelectStats,
    /// Plan counters.
    pub plan: PlanStats,
    /// Transform counters.
    pub transform: TransformStats,
    /// Sender counters.
    pub client: ClientStats,
    /// Warnings (damaged files, ...).
    pub warnings: Vec<String>,
    /// Requests replayed with masked body fields: their recorded bodies had values replaced by the capture's
    /// masking, so the target got markers, not the original values.
    pub masked_bodies: u64,
    /// Requests per second achieved (requests / actual duration).
    pub achieved_rps: f64,
    /// Extra counters of the run (TLS, token files, HAR output).
    pub extra: RunExtra,
    /// The judgement of the responses (validation, noise, correlation, gates); absent on a dry run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<crate::judge::results::JudgeReport>,
}

/// Counters of the run's optional parts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunExtra {
    /// Token file counters (`--token-file`).
    pub token_files: crate::tokens::TokenStats,
    /// HAR output counters (`--har`).
    pub har: crate::har::HarStats,
    /// HAR entries that could not be written (I/O error); the first error is in the warnings.
    pub har_write_errors: u64,
}

struct Endpoint {
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
}

/// Accumulates outcomes.
pub struct Recorder {
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    endpoints: BTreeMap<String, Endpoint>,
    pooled: u64,
    clamped: u64,
    report: Report,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant histogram bounds are valid")
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency: histogram(),
            lag: histogram(),
            endpoints: BTreeMap::new(),
            pooled: 0,
            clamped: 0,
            report: Report::default(),
        }
    }
}

impl Recorder {
    fn micros(&mut self, d: Duration) -> u64 {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if us > MAX_MICROS {
            self.clamped += 1;
        }
        us.clamp(1, MAX_MICROS)
    }

    /// Adds one outcome.
    pub fn record(&mut self, o: &Outcome) {
        let r = &mut self.report;
        r.requests += 1;
        if o.masked_body {
            r.masked_bodies += 1;
        }
        let lag = self.micros(crate::pace::lag(o.planned, o.actual));
        let _ = self.lag.record(lag);
        let latency = match &o.result {
            Ok((_, l)) => Some(self.micros(*l)),
            Err(_) => None,
        };
        let r = &mut self.report;
        // Endpoints already seen (nearly every outcome): two lookups, no allocation.
        let known = self.endpoints.contains_key(o.endpoint.as_str());
        let key: &str = if known || self.endpoints.len() < MAX_ENDPOINTS {
            &o.endpoint
        } else {
            self.pooled += 1;
            "(other)"
        };
        if !known && !self.endpoints.contains_key(key) {
            self.endpoints.insert(key.to_string(), Endpoint { requests: 0, errors: 0, latency: histogram() });
        }
        let Some(ep) = self.endpoints.get_mut(key) else { return };
        ep.requests += 1;
        match &o.result {
            Ok((status, _)) => {
                r.responses += 1;
                bump(&mut r.status_classes, &status_class(*status));
                *r.statuses.entry(*status).or_default() += 1;
                if o.recorded_status.is_some_and(|s| s != *status) {
                    r.status_changed += 1;
                }
                if let Some(us) = latency {
                    let _ = self.latency.record(us);
                    let _ = ep.latency.record(us);
                }
            }
            Err((kind, msg)) => {
                r.errors += 1;
                ep.errors += 1;
                *r.error_kinds.entry(kind.as_str().to_string()).or_default() += 1;
                if r.error_samples.len() < MAX_ERROR_SAMPLES {
                    r.error_samples.push(format!("exchange {}: {}: {msg}", o.exchange_id, kind.as_str()));
                }
            }
        }
    }

    /// The report; the caller fills in the context fields (target, stats, durations, warnings).
    pub fn finish(mut self) -> Report {
        self.report.latency = percentiles(&self.latency);
        self.report.schedule_lag = percentiles(&self.lag);
        let mut eps: Vec<EndpointReport> = self
            .endpoints
            .into_iter()
            .map(|(endpoint, e)| EndpointReport {
                endpoint,
                requests: e.requests,
                errors: e.errors,
                latency: percentiles(&e.latency),
            })
            .collect();
        eps.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.endpoint.cmp(&b.endpoint)));
        self.report.endpoints = eps;
        self.report.endpoints_pooled = self.pooled;
        self.report.histogram_clamped = self.clamped;
        self.report
    }
}

/// Adds one to `key`'s count, allocating the key only the first time.
fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

/// `2xx` for 200..=299, and so on.
fn status_class(status: u16) -> Cow<'static, str> {
    const CLASSES: [&str; 10] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx"];
    match CLASSES.get(usize::from(status / 100)) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(format!("{}xx", status / 100)),
    }
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

/// The endpoint key of a request: method and path without the query.
pub fn endpoint_key(method: &[u8], path: &[u8]) -> String {
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (method, path) = (String::from_utf8_lossy(method), String::from_utf8_lossy(path));
    let mut key = String::with_capacity(method.len() + 1 + path.len());
    key.push_str(&method);
    key.push(' ');
    key.push_str(&path);
    key
}

impl Report {
    /// `all 40 requests failed; first: ...` when every request sent got no response (a target refusing or down),
    /// else `None`.
    pub fn all_failed(&self) -> Option<String> {
        if self.requests == 0 || self.errors < self.requests {
            return None;
        }
        let first = self.error_samples.first().map_or("(no sample kept)", String::as_str);
        Some(format!("all {} requests failed; first: {first}", self.requests))
    }

    /// The terminal summary.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let p = |p: &Percentiles| {
            if p.count == 0 {
                return "n/a".to_string();
            }
            format!("p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms", p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms)
        };
        let _ = writeln!(s, "replayed {} requests to {} at {}", self.requests, self.target, self.time_scale);
        let classes: Vec<String> = self.status_classes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        if classes.is_empty() {
            let _ = writeln!(s, "  responses {}", self.responses);
        } else {
            let _ = writeln!(s, "  responses {}  ({})", self.responses, classes.join(", "));
        }
        if self.status_changed > 0 {
            let _ = writeln!(s, "  status differs from the recording: {}", self.status_changed);
        }
        if self.errors > 0 {
            let kinds: Vec<String> = self.error_kinds.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = writeln!(s, "  errors {}  ({})", self.errors, kinds.join(", "));
        }
        let _ = writeln!(s, "  latency       {}", p(&self.latency));
        let lag = &self.schedule_lag;
        let lag = if lag.count == 0 {
            "n/a".to_string()
        } else {
            format!("p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms", lag.p50_ms, lag.p99_ms, lag.max_ms)
        };
        let _ = writeln!(s, "  schedule lag  {lag}");
        let rps = if self.requests == 0 { "n/a".to_string() } else { format!("{:.1}", self.achieved_rps) };
        let _ = writeln!(
            s,
            "  duration {:.3} s (planned {:.3} s; recorded span {:.3} s); {rps} req/s",
            self.actual_duration_s, self.planned_duration_s, self.recorded_span_s
        );
        if self.masked_bodies > 0 {
            let _ = writeln!(
                s,
                "  replayed with masked body fields: {} (the target got masking markers, not the recorded values)",
                self.masked_bodies
            );
        }
        let shown = self.endpoints.len().min(10);
        if shown > 0 {
            let _ = writeln!(s, "  endpoints (top {shown} of {}):", self.endpoints.len());
            for e in &self.endpoints[..shown] {
                let errors = if e.errors > 0 { format!("  ({} errors)", e.errors) } else { String::new() };
                let _ = writeln!(s, "    {:>6} {:<40} {}{errors}", e.requests, e.endpoint, p(&e.latency));
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(endpoint: &str, planned: u64, actual: u64, result: Result<(u16, u64), ErrorKind>) -> Outcome {
        Outcome {
            exchange_id: 1,
            endpoint: endpoint.into(),
            planned: Duration::from_millis(planned),
            actual: Duration::from_millis(actual),
            result: result.map(|(s, l)| (s, Duration::from_millis(l))).map_err(|k| (k, "boom".into())),
            recorded_status: Some(200),
            masked_body: false,
            detail: None,
        }
    }

    #[test]
    fn counts_classes_errors_and_percentiles() {
        let mut r = Recorder::default();
        for i in 1..=100u64 {
            r.record(&out("GET /a", 0, i, Ok((200, i))));
        }
        r.record(&out("POST /b", 10, 5, Ok((503, 1))));
        r.record(&out("POST /b", 0, 0, Err(ErrorKind::ConnectRefused)));
        r.record(&out("POST /b", 0, 0, Err(ErrorKind::Timeout)));
        let rep = r.finish();
        assert_eq!((rep.requests, rep.responses, rep.errors), (103, 101, 2));
        assert_eq!(rep.status_classes.get("2xx"), Some(&100));
        assert_eq!(rep.status_classes.get("5xx"), Some(&1));
        assert_eq!(rep.status_changed, 1);
        assert_eq!(rep.error_kinds.get("connect_refused"), Some(&1));
        assert_eq!(rep.error_kinds.get("timeout"), Some(&1));
        // Latencies 1..=100 ms and 1 ms: p50 ~ 50 ms, max 100 ms (3 significant digits).
        assert!((rep.latency.p50_ms - 50.0).abs() < 1.0, "{:?}", rep.latency);
        assert!((rep.latency.max_ms - 100.0).abs() < 0.2, "{:?}", rep.latency);
        assert_eq!(rep.endpoints[0].endpoint, "GET /a");
        assert_eq!((rep.endpoints[1].requests, rep.endpoints[1].errors), (3, 2));
        // Lag: 1..=100 ms for /a; early sends count as zero lag.
        assert!((rep.schedule_lag.max_ms - 100.0).abs() < 0.2, "{:?}", rep.schedule_lag);
        assert!(rep.text().contains("connect_refused: 1"));
        assert_eq!(rep.all_failed(), None, "some were answered");
    }

    #[test]
    fn figures_without_data_are_na_and_all_failures_are_one_line() {
        let empty = Recorder::default().finish();
        let text = empty.text();
        assert!(text.contains("  latency       n/a\n") && text.contains("  responses 0\n"), "{text}");
        assert!(text.contains("  schedule lag  n/a\n") && text.contains("; n/a req/s"), "{text}");
        assert!(!text.contains("0.0 ms"), "{text}");
        assert_eq!(empty.all_failed(), None, "nothing sent, nothing failed");

        let mut r = Recorder::default();
        r.record(&out("GET /a", 0, 0, Err(ErrorKind::ConnectRefused)));
        r.record(&out("GET /b", 0, 0, Err(ErrorKind::Timeout)));
        let rep = r.finish();
        assert_eq!(
            rep.all_failed().as_deref(),
            Some("all 2 requests failed; first: exchange 1: connect_refused: boom")
        );
        assert!(rep.text().contains("  latency       n/a\n"), "no response, no latency: {}", rep.text());
    }

    #[test]
    fn endpoints_are_capped() {
        let mut r = Recorder::default();
        for i in 0..MAX_ENDPOINTS + 5 {
            r.record(&out(&format!("GET /{i}"), 0, 0, Ok((200, 1))));
        }
        let rep = r.finish();
        assert_eq!(rep.endpoints.len(), MAX_ENDPOINTS + 1);
        assert_eq!(rep.endpoints_pooled, 5);
    }

    #[test]
    fn endpoint_key_drops_the_query() {
        assert_eq!(endpoint_key(b"GET", b"/a/b?x=1"), "GET /a/b");
        assert_eq!(endpoint_key(b"PUT", b"/"), "PUT /");
    }
}
