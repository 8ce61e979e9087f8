//! The sender: a paced plan in, [`Outcome`]s out. Each planned connection gets its own connection to the target
//! (hyper 1.x client connections on tokio): HTTP/1.1 keep-alive with requests one after the other, or HTTP/2 with
//! prior knowledge (h2c) and streams multiplexed as recorded. `--http1` / `--http2` force one version.
//!
//! Timing: every request waits until `run start + planned offset` (an absolute deadline) and, when the plan says
//! so, until the previous request of its connection has been answered. Connections start at their first deadline
//! and run concurrently up to the concurrency limit.
//!
//! Failures never stop the run: a refused, reset or timed-out connection becomes an error outcome for the request
//! that met it; the next request of that connection connects again (counted in [`ClientStats::reconnects`]).
//! Response bodies are read to the end and only counted, never kept.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};

use crate::judge::{ConnKey, ReplayHook};
use crate::plan::{ConnPlan, Plan, PlannedRequest};
use crate::report::{ClientStats, ErrorKind, Outcome, Recorder, endpoint_key};
use crate::transform::{OutRequest, RuntimeVars, Target, Transform, TransformStats};
use tapedeck_model::Protocol;

/// Which HTTP version to speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForceProto {
    /// As recorded: h2c prior knowledge for HTTP/2 recordings, HTTP/1.1 otherwise.
    #[default]
    Auto,
    /// HTTP/1.1 for every connection (HTTP/2 streams are then sent one after the other).
    Http1,
    /// HTTP/2 (h2c prior knowledge) for every connection.
    Http2,
}

/// Sender settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Where to send.
    pub target: Target,
    /// Time allowed for TCP connect and the HTTP handshake.
    pub connect_timeout: Duration,
    /// Time allowed from sending a request to the end of its response body.
    pub request_timeout: Duration,
    /// HTTP version choice.
    pub force: ForceProto,
    /// Most connections open at once.
    pub concurrency: usize,
    /// The judge: rewrites requests (correlation) and sees every outcome with the live response.
    pub hook: Option<Arc<dyn ReplayHook>>,
}

/// What a replay run produced.
#[derive(Debug)]
pub struct RunResult {
    /// The outcomes, summarised.
    pub recorder_report: crate::report::Report,
    /// Sender counters.
    pub client: ClientStats,
    /// Transform counters.
    pub transform: TransformStats,
    /// Wall time from the run start to the last outcome.
    pub duration: Duration,
}

struct Shared {
    cfg: ClientConfig,
    transform: Transform,
    start: Instant,
    outcomes: mpsc::Sender<Outcome>,
    stats: Mutex<(ClientStats, TransformStats)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    H1,
    H2,
}

type Failure = (ErrorKind, String);
/// A response: status, latency, and the live response when a hook wants it.
type Answer = (u16, Duration, Option<tapedeck_model::Response>);

impl Shared {
    fn prepare(&self, conn: &ConnKey, req: &PlannedRequest) -> OutRequest {
        let vars = RuntimeVars::fresh();
        let mut out = {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            self.transform.apply(&req.request, &self.cfg.target, &vars, &mut stats.1)
        };
        if let Some(h) = &self.cfg.hook {
            h.rewrite(conn, req, &mut out);
        }
        out
    }

    fn client_stats(&self, f: impl FnOnce(&mut ClientStats)) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut stats.0);
    }

    async fn report(
        &self,
        conn: &ConnKey,
        req: &PlannedRequest,
        out: &OutRequest,
        actual: Duration,
        answer: Result<Answer, Failure>,
    ) {
        let (result, live) = match answer {
            Ok((status, latency, live)) => (Ok((status, latency)), live),
            Err(f) => (Err(f), None),
        };
        if let Some(h) = &self.cfg.hook {
            h.observe(conn, req, &result, live);
        }
        let o = Outcome {
            exchange_id: req.exchange_id,
            endpoint: endpoint_key(&out.method, &out.path),
            planned: req.planned,
            actual,
            result,
            recorded_status: req.recorded_status,
        };
        // The recorder lives until every sender is dropped, so this only fails if it panicked.
        let _ = self.outcomes.send(o).await;
    }

    async fn tcp(&self) -> Result<TcpStream, Failure> {
        let t = &self.cfg.target;
        let res = timeout(self.cfg.connect_timeout, TcpStream::connect((t.host.as_str(), t.port))).await;
        let out = match res {
            Err(_) => Err((
                ErrorKind::ConnectTimeout,
                format!("connecting to {t}: no answer within {:?}", self.cfg.connect_timeout),
            )),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Err((ErrorKind::ConnectRefused, format!("connecting to {t}: {e}")))
            }
            Ok(Err(e)) => Err((ErrorKind::ConnectError, format!("connecting to {t}: {e}"))),
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(s)
            }
        };
        self.client_stats(|c| match &out {
            Ok(_) => c.connections_opened += 1,
            Err(_) => c.connect_failures += 1,
        });
        out
    }

    async fn h1(&self) -> Result<http1::SendRequest<Full<Bytes>>, Failure> {
        let io = TokioIo::new(self.tcp().await?);
        let (sender, conn) = timeout(self.cfg.connect_timeout, http1::handshake(io))
            .await
            .map_err(|_| (ErrorKind::ConnectTimeout, "HTTP/1.1 handshake timed out".to_string()))?
            .map_err(|e| classify(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn h2(&self) -> Result<http2::SendRequest<Full<Bytes>>, Failure> {
        let io = TokioIo::new(self.tcp().await?);
        let (sender, conn) = timeout(self.cfg.connect_timeout, http2::handshake(TokioExecutor::new(), io))
            .await
            .map_err(|_| (ErrorKind::ConnectTimeout, "HTTP/2 handshake timed out".to_string()))?
            .map_err(|e| classify(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// Replays `plan` (already paced) and returns the summary. Never fails: every problem is an outcome.
pub async fn replay(plan: Plan, cfg: ClientConfig, transform: Transform) -> RunResult {
    let (tx, mut rx) = mpsc::channel::<Outcome>(1024);
    let recorder = tokio::spawn(async move {
        let mut rec = Recorder::default();
        let mut last = Instant::now();
        while let Some(o) = rx.recv().await {
            rec.record(&o);
            last = Instant::now();
        }
        (rec, last)
    });
    let limit = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let start = Instant::now();
    let shared = Arc::new(Shared { cfg, transform, start, outcomes: tx, stats: Mutex::new(Default::default()) });
    let mut conns = JoinSet::new();
    for conn in plan.connections {
        let shared = Arc::clone(&shared);
        let limit = Arc::clone(&limit);
        conns.spawn(async move {
            // Wait for the first deadline before taking a slot, so idle connections do not hold one.
            sleep_until(shared.start + conn.first_planned()).await;
            let _permit = limit.acquire_owned().await;
            let wire = match (shared.cfg.force, conn.proto) {
                (ForceProto::Http1, _) => Wire::H1,
                (ForceProto::Http2, _) => Wire::H2,
                (ForceProto::Auto, Protocol::H2) => Wire::H2,
                (ForceProto::Auto, _) => Wire::H1,
            };
            if (wire == Wire::H2) != (conn.proto == Protocol::H2) {
                shared.client_stats(|c| c.protocol_forced += conn.requests.len() as u64);
            }
            match wire {
                Wire::H1 => run_h1(&shared, conn).await,
                Wire::H2 => run_h2(&shared, conn).await,
            }
        });
    }
    while conns.join_next().await.is_some() {}
    let stats = shared.stats.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone());
    drop(shared);
    let (rec, last) = match recorder.await {
        Ok(v) => v,
        Err(_) => (Recorder::default(), Instant::now()),
    };
    RunResult {
        recorder_report: rec.finish(),
        client: stats.0,
        transform: stats.1,
        duration: last.saturating_duration_since(start),
    }
}

/// HTTP/1.1: one request at a time on a keep-alive connection, reconnecting when it closes.
async fn run_h1(shared: &Shared, conn: ConnPlan) {
    let key = ConnKey::of(&conn);
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    let mut opened = false;
    for req in &conn.requests {
        sleep_until(shared.start + req.planned).await;
        let actual = shared.start.elapsed();
        let out = shared.prepare(&key, req);
        let result = async {
            if sender.as_ref().is_none_or(|s| s.is_closed()) {
                sender = None;
                if opened {
                    shared.client_stats(|c| c.reconnects += 1);
                }
                opened = true;
                sender = Some(shared.h1().await?);
            }
            let Some(s) = sender.as_mut() else { return Err((ErrorKind::ConnectError, "no connection".into())) };
            s.ready().await.map_err(|e| classify(&e))?;
            let hreq = build(&out, Wire::H1, shared)?;
            let t0 = Instant::now();
            let cap = shared.cfg.hook.as_ref().map(|h| h.body_cap());
            let (status, bytes, live) =
                match timeout(shared.cfg.request_timeout, drive(s.send_request(hreq), cap)).await {
                    Ok(r) => r?,
                    Err(_) => return Err(timed_out(shared)),
                };
            shared.client_stats(|c| c.response_bytes += bytes);
            Ok((status, t0.elapsed(), live))
        }
        .await;
        if result.is_err() {
            // The connection's state is unknown after an error: start afresh for the next request.
            sender = None;
        }
        shared.report(&key, req, &out, actual, result).await;
    }
}

/// HTTP/2: streams opened in recorded order on one connection; a stream waits for the previous answer only when
/// the plan says so.
async fn run_h2(shared: &Arc<Shared>, conn: ConnPlan) {
    let key = ConnKey::of(&conn);
    let mut sender: Option<http2::SendRequest<Full<Bytes>>> = None;
    let mut opened = false;
    let mut prev_done: Option<watch::Receiver<bool>> = None;
    let mut streams = JoinSet::new();
    for req in conn.requests {
        if req.wait_for_previous
            && let Some(rx) = prev_done.as_mut()
        {
            let _ = rx.wait_for(|done| *done).await;
        }
        sleep_until(shared.start + req.planned).await;
        let (done_tx, done_rx) = watch::channel(false);
        prev_done = Some(done_rx);
        let actual = shared.start.elapsed();
        let out = shared.prepare(&key, &req);
        let started = async {
            if sender.as_ref().is_none_or(|s| s.is_closed()) {
                sender = None;
                if opened {
                    shared.client_stats(|c| c.reconnects += 1);
                }
                opened = true;
                sender = Some(shared.h2().await?);
            }
            let Some(s) = sender.as_mut() else { return Err((ErrorKind::ConnectError, "no connection".into())) };
            s.ready().await.map_err(|e| classify(&e))?;
            let hreq = build(&out, Wire::H2, shared)?;
            // send_request hands the request to the connection now, so streams open in this order.
            Ok((Instant::now(), s.send_request(hreq)))
        }
        .await;
        match started {
            Err(f) => {
                if f.0 != ErrorKind::InvalidRequest {
                    sender = None;
                }
                shared.report(&key, &req, &out, actual, Err(f)).await;
                let _ = done_tx.send(true);
            }
            Ok((t0, fut)) => {
                let shared = Arc::clone(shared);
                streams.spawn(async move {
                    let cap = shared.cfg.hook.as_ref().map(|h| h.body_cap());
                    let result = match timeout(shared.cfg.request_timeout, drive(fut, cap)).await {
                        Ok(Ok((status, bytes, live))) => {
                            shared.client_stats(|c| c.response_bytes += bytes);
                            Ok((status, t0.elapsed(), live))
                        }
                        Ok(Err(f)) => Err(f),
                        Err(_) => Err(timed_out(&shared)),
                    };
                    // Reported (and seen by the judge, whose correlation the next request may need) first.
                    shared.report(&key, &req, &out, actual, result).await;
                    let _ = done_tx.send(true);
                });
            }
        }
    }
    while streams.join_next().await.is_some() {}
}

fn timed_out(shared: &Shared) -> Failure {
    (ErrorKind::Timeout, format!("no complete response within {:?}", shared.cfg.request_timeout))
}

/// Awaits the response and reads its body to the end, counting bytes; with a `cap`, keeps the response (body up
/// to the cap, trailers) for the judge.
async fn drive(
    fut: impl Future<Output = hyper::Result<Response<Incoming>>>,
    cap: Option<usize>,
) -> Result<(u16, u64, Option<tapedeck_model::Response>), Failure> {
    let resp = fut.await.map_err(|e| classify(&e))?;
    let status = resp.status().as_u16();
    let mut live = cap.map(|_| crate::judge::live_head(status, resp.headers()));
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify(&e))?;
        if let Some(d) = frame.data_ref() {
            bytes += d.len() as u64;
            if let Some(l) = live.as_mut() {
                crate::judge::keep_body(l, d, cap.unwrap_or(0));
            }
        } else if let (Some(l), Some(t)) = (live.as_mut(), frame.trailers_ref()) {
            crate::judge::keep_trailers(l, t);
        }
    }
    Ok((status, bytes, live))
}

/// The hyper request for `out`: origin-form target and `Host` for HTTP/1.1, absolute URI (`:authority`) for
/// HTTP/2. Header fields that are not valid HTTP are dropped and counted.
fn build(out: &OutRequest, wire: Wire, shared: &Shared) -> Result<Request<Full<Bytes>>, Failure> {
    let invalid = |what: &str| (ErrorKind::InvalidRequest, what.to_string());
    let method = Method::from_bytes(&out.method).map_err(|e| invalid(&format!("method: {e}")))?;
    let path = String::from_utf8(out.path.clone()).map_err(|_| invalid("path is not UTF-8"))?;
    let (uri, version) = match wire {
        Wire::H1 => (path.parse::<Uri>().map_err(|e| invalid(&format!("path {path:?}: {e}")))?, Version::HTTP_11),
        Wire::H2 => (
            Uri::builder()
                .scheme("http")
                .authority(out.authority.as_str())
                .path_and_query(path.as_str())
                .build()
                .map_err(|e| invalid(&format!("{}{path}: {e}", out.authority)))?,
            Version::HTTP_2,
        ),
    };
    let mut req = Request::new(Full::new(Bytes::from(out.body.clone())));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    let headers = req.headers_mut();
    if wire == Wire::H1 {
        let host = HeaderValue::from_str(&out.authority).map_err(|e| invalid(&format!("host: {e}")))?;
        headers.insert(HOST, host);
    }
    let mut dropped = 0u64;
    for (n, v) in &out.headers {
        match (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => dropped += 1,
        }
    }
    if dropped > 0 {
        shared.client_stats(|c| c.headers_invalid_dropped += dropped);
    }
    Ok(req)
}

/// Sorts a hyper error into an [`ErrorKind`], looking at the io error underneath when there is one.
fn classify(e: &hyper::Error) -> Failure {
    let mut msg = e.to_string();
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut io_kind = None;
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        src = s.source();
    }
    use std::io::ErrorKind as Io;
    let kind = match io_kind {
        Some(Io::ConnectionReset | Io::BrokenPipe | Io::ConnectionAborted) => ErrorKind::Reset,
        Some(Io::UnexpectedEof) => ErrorKind::Closed,
        Some(Io::TimedOut) => ErrorKind::Timeout,
        _ if e.is_timeout() => ErrorKind::Timeout,
        _ if e.is_parse() || e.is_parse_status() => ErrorKind::Protocol,
        _ if e.is_incomplete_message() || e.is_canceled() || e.is_closed() => ErrorKind::Closed,
        _ if msg.to_ascii_lowercase().contains("reset") => ErrorKind::Reset,
        _ => ErrorKind::Protocol,
    };
    (kind, msg)
}
