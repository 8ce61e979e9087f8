//! The sender: a paced plan in, [`Outcome`]s out. Each planned connection gets its own connection to the target
//! (hyper 1.x client connections on tokio): HTTP/1.1 keep-alive with requests one after the other, or HTTP/2 with
//! prior knowledge (h2c) and streams multiplexed as recorded. `--http1` / `--http2` force one version.
//!
//! Timing: every request waits until `run start + planned offset` (an absolute deadline, kept by
//! [`PreciseTimer`] rather than tokio's 1 ms timer wheel) and, when the plan says
//! so, until the previous request of its connection has been answered. Connections start at their first deadline
//! and run concurrently up to the concurrency limit.
//!
//! Failures never stop the run: a refused, reset or timed-out connection becomes an error outcome for the request
//! that met it; the next request of that connection connects again (counted in [`ClientStats::reconnects`]).
//! Response bodies are read to the end and counted; they are kept only when asked, in one read for both keepers:
//! up to [`crate::replayed::BODY_KEEP_CAP`] for the details of `--har`, and up to [`ReplayHook::body_cap`] (with
//! the trailers) for the hook.
//!
//! The hook ([`ClientConfig::hook`], the judge) rewrites each request after the transform (correlation) and sees
//! each outcome with the live response. On HTTP/2 the outcome is reported before a request that waits for it is
//! let go, so that correlation has the answer first.
//!
//! `https://` targets: TLS from [`crate::tls`] after the TCP connect, ALPN offering the version the connection
//! speaks. `--max-rate`: every send first takes a token from the shared [`RateLimiter`].

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
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use crate::judge::{ConnKey, ReplayHook};
use crate::plan::{ConnPlan, Plan, PlannedRequest};
use crate::precise::PreciseTimer;
use crate::progress::Counters;
use crate::ratelimit::RateLimiter;
use crate::replayed::{BODY_KEEP_CAP, PhaseTimings, Replayed, ReplayedResponse};
use crate::report::{ClientStats, ErrorKind, Outcome, Recorder, endpoint_key};
use crate::tls::Tls;
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
    /// TLS connectors, for `https` targets.
    pub tls: Option<Tls>,
    /// `--max-rate`: requests per second ceiling.
    pub max_rate: Option<f64>,
    /// Keep what was sent and received per request ([`Outcome::detail`]), for `--har`.
    pub keep_detail: bool,
    /// Progress counters to bump.
    pub progress: Option<Arc<Counters>>,
    /// The judge: rewrites requests (correlation) and sees every outcome with the live response.
    pub hook: Option<Arc<dyn ReplayHook>>,
}

impl ClientConfig {
    /// Settings with the defaults of `replayer run` for `target`.
    pub fn new(target: Target) -> ClientConfig {
        ClientConfig {
            target,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            force: ForceProto::Auto,
            concurrency: 64,
            tls: None,
            max_rate: None,
            keep_detail: false,
            progress: None,
            hook: None,
        }
    }
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
    outcomes: mpsc::Sender<Vec<Outcome>>,
    stats: Mutex<(ClientStats, TransformStats)>,
    rate: Option<RateLimiter>,
    wall_start: std::time::SystemTime,
    timer: PreciseTimer,
    /// Response bytes (an atomic: bumped per response, off the stats lock).
    response_bytes: std::sync::atomic::AtomicU64,
}

/// A connected byte stream: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Box<dyn Stream>;

/// A response as `drive` read it.
struct Answer {
    status: u16,
    bytes: u64,
    head_at: Instant,
    /// The HAR details (`keep_detail`).
    response: Option<ReplayedResponse>,
    /// The live response for the hook.
    live: Option<tapedeck_model::Response>,
}

/// What one request produced: its result, the details (`keep_detail`) and the live response (a hook).
struct Done {
    result: Result<(u16, Duration), Failure>,
    detail: Option<Box<Replayed>>,
    live: Option<tapedeck_model::Response>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    H1,
    H2,
}

type Failure = (ErrorKind, String);

/// Outcomes of an HTTP/1 connection go to the recorder in batches of this many: one channel message and at most
/// one wakeup of the recorder task per batch rather than per request.
const OUTCOME_BATCH: usize = 64;

impl Shared {
    /// The request to send: `ready` (transformed before the run, see [`transform_ahead`]) or the transform now
    /// (its counters go to the connection's own `stats`, merged at its end, so that connections do not contend
    /// for a lock per request), then the hook's rewrite (correlation).
    fn prepare(
        &self,
        conn: &ConnKey,
        req: &PlannedRequest,
        ready: Option<OutRequest>,
        stats: &mut TransformStats,
    ) -> OutRequest {
        let mut out = match ready {
            Some(out) => out,
            None => {
                let vars = RuntimeVars::for_transform(&self.transform);
                self.transform.apply(&req.request, &self.cfg.target, &vars, stats)
            }
        };
        if let Some(h) = &self.cfg.hook {
            h.rewrite(conn, req, &mut out);
        }
        out
    }

    fn merge_transform_stats(&self, local: &TransformStats) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.1.merge(local);
    }

    fn client_stats(&self, f: impl FnOnce(&mut ClientStats)) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut stats.0);
    }

    /// Waits for the planned time (an absolute deadline) and a `--max-rate` token; returns the actual send
    /// offset.
    async fn wait_turn(&self, req: &PlannedRequest) -> Duration {
        self.timer.sleep_until(self.start + req.planned).await;
        if let Some(rate) = &self.rate {
            rate.acquire().await;
        }
        if let Some(p) = &self.cfg.progress {
            p.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.start.elapsed()
    }

    /// Hands the outcome to the progress counters and the hook (with the live response) at once, and to the
    /// recorder through `batch` (sent when it holds [`OUTCOME_BATCH`] outcomes; the caller sends the rest with
    /// [`Shared::flush`]).
    async fn report(
        &self,
        conn: &ConnKey,
        req: &PlannedRequest,
        out: &OutRequest,
        actual: Duration,
        done: Done,
        batch: &mut Vec<Outcome>,
    ) {
        let Done { result, detail, live } = done;
        if let Some(p) = &self.cfg.progress {
            p.finished(result.is_ok(), crate::pace::lag(req.planned, actual));
        }
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
            masked_body: req.masked_body,
            detail,
        };
        batch.push(o);
        if batch.len() >= OUTCOME_BATCH {
            self.flush(batch).await;
        }
    }

    /// Sends the outcomes of `batch` to the recorder.
    async fn flush(&self, batch: &mut Vec<Outcome>) {
        if batch.is_empty() {
            return;
        }
        let full = std::mem::replace(batch, Vec::with_capacity(OUTCOME_BATCH));
        // The recorder lives until every sender is dropped, so this only fails if it panicked.
        let _ = self.outcomes.send(full).await;
    }

    /// TCP connect, then the TLS handshake for `https` targets (ALPN `h2` when `h2`). Returns the stream and how
    /// long each step took.
    async fn connect(&self, h2: bool) -> Result<(BoxStream, PhaseTimings), Failure> {
        let t = &self.cfg.target;
        let t0 = Instant::now();
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
        let tcp = out?;
        let mut timings = PhaseTimings { connect: Some(t0.elapsed()), ..Default::default() };
        let Some(tls) = &self.cfg.tls else { return Ok((Box::new(tcp), timings)) };
        let t1 = Instant::now();
        let res = timeout(self.cfg.connect_timeout, tls.connect(&t.host, tcp, h2)).await;
        let stream = match res {
            Err(_) => Err((ErrorKind::ConnectTimeout, format!("TLS handshake with {t}: no answer in time"))),
            Ok(Err(e)) if crate::tls::is_tls_error(&e) => Err((ErrorKind::Tls, format!("TLS handshake with {t}: {e}"))),
            Ok(Err(e)) => Err((ErrorKind::ConnectError, format!("TLS handshake with {t}: {e}"))),
            Ok(Ok(s)) => Ok(s),
        };
        if stream.is_err() {
            self.client_stats(|c| c.tls_failures += 1);
        }
        let stream = stream?;
        timings.tls = Some(t1.elapsed());
        Ok((Box::new(stream), timings))
    }

    async fn h1(&self) -> Result<(http1::SendRequest<Full<Bytes>>, PhaseTimings), Failure> {
        let (stream, timings) = self.connect(false).await?;
        let io = TokioIo::new(stream);
        let (sender, conn) = timeout(self.cfg.connect_timeout, http1::handshake(io))
            .await
            .map_err(|_| (ErrorKind::ConnectTimeout, "HTTP/1.1 handshake timed out".to_string()))?
            .map_err(|e| classify(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((sender, timings))
    }

    async fn h2(&self) -> Result<(http2::SendRequest<Full<Bytes>>, PhaseTimings), Failure> {
        let (stream, timings) = self.connect(true).await?;
        let io = TokioIo::new(stream);
        let (sender, conn) = timeout(self.cfg.connect_timeout, http2::handshake(TokioExecutor::new(), io))
            .await
            .map_err(|_| (ErrorKind::ConnectTimeout, "HTTP/2 handshake timed out".to_string()))?
            .map_err(|e| classify(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((sender, timings))
    }

    /// The details of one request, when kept.
    fn detail(
        &self,
        out: &OutRequest,
        wire: Wire,
        actual: Duration,
        timings: PhaseTimings,
        response: Option<ReplayedResponse>,
        failure: Option<&Failure>,
    ) -> Option<Box<Replayed>> {
        if !self.cfg.keep_detail {
            return None;
        }
        let error = failure.map(|(kind, msg)| format!("{}: {msg}", kind.as_str()));
        Some(Box::new(Replayed {
            started: self.wall_start + actual,
            scheme: if self.cfg.tls.is_some() { "https" } else { "http" },
            version: if wire == Wire::H2 { "HTTP/2" } else { "HTTP/1.1" },
            request: out.clone(),
            response,
            timings,
            error,
        }))
    }
}

/// Something that sees every outcome as it comes (the HAR writer of `--har`), on the recorder task.
pub type OutcomeSink = Box<dyn FnMut(&Outcome) + Send>;

/// Replays `plan` (already paced) and returns the summary. Never fails: every problem is an outcome.
pub async fn replay(plan: Plan, cfg: ClientConfig, transform: Transform) -> RunResult {
    replay_with(plan, cfg, transform, None).await
}

/// [`replay`], handing every outcome to `sink` too.
pub async fn replay_with(
    mut plan: Plan,
    cfg: ClientConfig,
    transform: Transform,
    sink: Option<OutcomeSink>,
) -> RunResult {
    let (tx, mut rx) = mpsc::channel::<Vec<Outcome>>(1024);
    let recorder = tokio::spawn(async move {
        let mut rec = Recorder::default();
        let mut sink = sink;
        let mut last = Instant::now();
        while let Some(batch) = rx.recv().await {
            for o in &batch {
                rec.record(o);
                if let Some(s) = sink.as_mut() {
                    s(o);
                }
            }
            last = Instant::now();
        }
        (rec, last)
    });
    let limit = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut ahead_stats = TransformStats::default();
    let ahead = transform_ahead(&mut plan, &transform, &cfg.target, &mut ahead_stats);
    let start = Instant::now();
    let rate = cfg.max_rate.map(RateLimiter::new);
    let wall_start = std::time::SystemTime::now();
    let shared = Arc::new(Shared {
        cfg,
        transform,
        start,
        outcomes: tx,
        stats: Mutex::new((ClientStats::default(), ahead_stats)),
        rate,
        wall_start,
        timer: PreciseTimer::new(),
        response_bytes: Default::default(),
    });
    let mut conns = JoinSet::new();
    for (conn, ready) in plan.connections.into_iter().zip(ahead) {
        let shared = Arc::clone(&shared);
        let limit = Arc::clone(&limit);
        conns.spawn(async move {
            // Wait for the first deadline before taking a slot, so idle connections do not hold one.
            shared.timer.sleep_until(shared.start + conn.first_planned()).await;
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
                Wire::H1 => run_h1(&shared, conn, ready).await,
                Wire::H2 => run_h2(&shared, conn, ready).await,
            }
        });
    }
    while conns.join_next().await.is_some() {}
    let mut stats = shared.stats.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone());
    stats.0.response_bytes = shared.response_bytes.load(std::sync::atomic::Ordering::Relaxed);
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

/// Transforms every request before the clock starts when the transform gives the same result whenever it runs
/// ([`Transform::is_static`]): sending then only applies the hook's rewrite. One list per connection of `plan`
/// (empty when the transform must run at send time). The recorded headers and body of each request are released
/// once transformed (what is sent is the transformed copy; the judge reads only the method and path), so the
/// memory held does not double.
fn transform_ahead(
    plan: &mut Plan,
    transform: &Transform,
    target: &Target,
    stats: &mut TransformStats,
) -> Vec<std::vec::IntoIter<OutRequest>> {
    if !transform.is_static() {
        return plan.connections.iter().map(|_| Vec::new().into_iter()).collect();
    }
    let vars = RuntimeVars::for_transform(transform);
    plan.connections
        .iter_mut()
        .map(|c| {
            let ready: Vec<OutRequest> = c
                .requests
                .iter_mut()
                .map(|r| {
                    let out = transform.apply(&r.request, target, &vars, stats);
                    r.request.headers = Vec::new();
                    r.request.body = Default::default();
                    r.request.trailers = Vec::new();
                    out
                })
                .collect();
            ready.into_iter()
        })
        .collect()
}

/// HTTP/1.1: one request at a time on a keep-alive connection, reconnecting when it closes.
async fn run_h1(shared: &Shared, conn: ConnPlan, mut ready: std::vec::IntoIter<OutRequest>) {
    let key = ConnKey::of(&conn);
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    let mut opened = false;
    let mut tstats = TransformStats::default();
    let mut batch = Vec::with_capacity(OUTCOME_BATCH);
    for req in &conn.requests {
        let actual = shared.wait_turn(req).await;
        let out = shared.prepare(&key, req, ready.next(), &mut tstats);
        let mut timings = PhaseTimings::default();
        let result = async {
            if sender.as_ref().is_none_or(|s| s.is_closed()) {
                sender = None;
                if opened {
                    shared.client_stats(|c| c.reconnects += 1);
                }
                opened = true;
                let (s, t) = shared.h1().await?;
                sender = Some(s);
                timings = t;
            }
            let Some(s) = sender.as_mut() else { return Err((ErrorKind::ConnectError, "no connection".into())) };
            s.ready().await.map_err(|e| classify(&e))?;
            let hreq = build(&out, Wire::H1, shared)?;
            let t0 = Instant::now();
            let keep = Keep::of(&shared.cfg);
            match timeout(shared.cfg.request_timeout, drive(s.send_request(hreq), keep)).await {
                Ok(r) => r.map(|a| (t0, a)),
                Err(_) => Err(timed_out(shared)),
            }
        }
        .await;
        if result.is_err() {
            // The connection's state is unknown after an error: start afresh for the next request.
            sender = None;
        }
        let done = finish(shared, &out, Wire::H1, actual, timings, result);
        shared.report(&key, req, &out, actual, done, &mut batch).await;
    }
    shared.flush(&mut batch).await;
    shared.merge_transform_stats(&tstats);
}

/// The result of one request from what `drive` returned; counts the bytes, hands the kept parts on (the details
/// to the outcome, the live response to the hook).
fn finish(
    shared: &Shared,
    out: &OutRequest,
    wire: Wire,
    actual: Duration,
    mut timings: PhaseTimings,
    result: Result<(Instant, Answer), Failure>,
) -> Done {
    let end = Instant::now();
    match result {
        Ok((t0, a)) => {
            timings.wait = a.head_at.saturating_duration_since(t0);
            timings.receive = end.saturating_duration_since(a.head_at);
            shared.response_bytes.fetch_add(a.bytes, std::sync::atomic::Ordering::Relaxed);
            let detail = shared.detail(out, wire, actual, timings, a.response, None);
            Done { result: Ok((a.status, end.saturating_duration_since(t0))), detail, live: a.live }
        }
        Err(f) => {
            let detail = shared.detail(out, wire, actual, timings, None, Some(&f));
            Done { result: Err(f), detail, live: None }
        }
    }
}

/// HTTP/2: streams opened in recorded order on one connection; a stream waits for the previous answer only when
/// the plan says so.
async fn run_h2(shared: &Arc<Shared>, conn: ConnPlan, mut ready: std::vec::IntoIter<OutRequest>) {
    let key = ConnKey::of(&conn);
    let mut sender: Option<http2::SendRequest<Full<Bytes>>> = None;
    let mut opened = false;
    let mut prev_done: Option<watch::Receiver<bool>> = None;
    let mut tstats = TransformStats::default();
    let mut streams = JoinSet::new();
    for req in conn.requests {
        if req.wait_for_previous
            && let Some(rx) = prev_done.as_mut()
        {
            let _ = rx.wait_for(|done| *done).await;
        }
        let actual = shared.wait_turn(&req).await;
        let (done_tx, done_rx) = watch::channel(false);
        prev_done = Some(done_rx);
        let out = shared.prepare(&key, &req, ready.next(), &mut tstats);
        let mut timings = PhaseTimings::default();
        let started = async {
            if sender.as_ref().is_none_or(|s| s.is_closed()) {
                sender = None;
                if opened {
                    shared.client_stats(|c| c.reconnects += 1);
                }
                opened = true;
                let (s, t) = shared.h2().await?;
                sender = Some(s);
                timings = t;
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
                let done = finish(shared, &out, Wire::H2, actual, timings, Err(f));
                let mut one = Vec::with_capacity(1);
                shared.report(&key, &req, &out, actual, done, &mut one).await;
                shared.flush(&mut one).await;
                let _ = done_tx.send(true);
            }
            Ok((t0, fut)) => {
                let shared = Arc::clone(shared);
                streams.spawn(async move {
                    let keep = Keep::of(&shared.cfg);
                    let result = match timeout(shared.cfg.request_timeout, drive(fut, keep)).await {
                        Ok(r) => r.map(|a| (t0, a)),
                        Err(_) => Err(timed_out(&shared)),
                    };
                    // Reported (and seen by the judge, whose correlation the next request may need) before the
                    // next request of the connection is let go.
                    let done = finish(&shared, &out, Wire::H2, actual, timings, result);
                    let mut one = Vec::with_capacity(1);
                    shared.report(&key, &req, &out, actual, done, &mut one).await;
                    shared.flush(&mut one).await;
                    let _ = done_tx.send(true);
                });
            }
        }
    }
    shared.merge_transform_stats(&tstats);
    while streams.join_next().await.is_some() {}
}

fn timed_out(shared: &Shared) -> Failure {
    (ErrorKind::Timeout, format!("no complete response within {:?}", shared.cfg.request_timeout))
}

/// What `drive` keeps of a response besides its status and length: the HAR details (`--har`, head and the first
/// [`BODY_KEEP_CAP`] bytes) and the judge's live response (body up to the hook's cap, trailers). Either, both or
/// neither; the body is read once for both.
#[derive(Clone, Copy, Debug, Default)]
struct Keep {
    detail: bool,
    live_cap: Option<usize>,
}

impl Keep {
    fn of(cfg: &ClientConfig) -> Keep {
        Keep { detail: cfg.keep_detail, live_cap: cfg.hook.as_ref().map(|h| h.body_cap()) }
    }
}

/// Awaits the response and reads its body to the end, counting bytes and keeping what `keep` asks for.
async fn drive(fut: impl Future<Output = hyper::Result<Response<Incoming>>>, keep: Keep) -> Result<Answer, Failure> {
    let resp = fut.await.map_err(|e| classify(&e))?;
    let head_at = Instant::now();
    let status = resp.status();
    let mut kept = keep.detail.then(|| ReplayedResponse {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or_default().to_string(),
        headers: resp
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        ..Default::default()
    });
    let mut live = keep.live_cap.map(|_| crate::judge::live_head(status.as_u16(), resp.headers()));
    let live_cap = keep.live_cap.unwrap_or(0);
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify(&e))?;
        if let Some(d) = frame.data_ref() {
            bytes += d.len() as u64;
            if let Some(k) = kept.as_mut() {
                let room = BODY_KEEP_CAP.saturating_sub(k.body.len());
                k.body.extend_from_slice(&d[..d.len().min(room)]);
            }
            if let Some(l) = live.as_mut() {
                crate::judge::keep_body(l, d, live_cap);
            }
        } else if let (Some(l), Some(t)) = (live.as_mut(), frame.trailers_ref()) {
            crate::judge::keep_trailers(l, t);
        }
    }
    if let Some(k) = kept.as_mut() {
        k.body_len = bytes;
    }
    Ok(Answer { status: status.as_u16(), bytes, head_at, response: kept, live })
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
                .scheme(if shared.cfg.tls.is_some() { "https" } else { "http" })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::SetHeader;
    use tapedeck_model::{Body, Exchange, Header, Request, Timestamp, Timing};

    fn plan() -> Plan {
        let ex = |conn: u64, order: u32| Exchange {
            id: conn * 10 + u64::from(order),
            connection_id: conn,
            order,
            stream_id: None,
            proto: Protocol::Http11,
            client: format!("10.0.0.1:{}", 40000 + conn).parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            timing: Timing {
                request_first: Some(Timestamp(1_000_000 * (conn * 10 + u64::from(order) + 1))),
                ..Default::default()
            },
            request: Some(Request {
                method: b"POST".to_vec(),
                authority: b"shop".to_vec(),
                path: format!("/c{conn}/{order}").into_bytes(),
                headers: vec![Header::new("x-a", "1"), Header::new("connection", "close")],
                body: Body { bytes: b"abc".to_vec(), full_len: 3 },
                ..Default::default()
            }),
            response: None,
            flags: tapedeck_model::Flags::NONE,
            labels: vec![],
            masked_by: vec![],
        };
        Plan::build(vec![ex(1, 0), ex(2, 0), ex(1, 1)])
    }

    fn env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn static_transforms_run_before_the_clock_and_release_the_recorded_copies() {
        let target: Target = "http://127.0.0.1:9000".parse().unwrap();
        let transform =
            Transform { set_headers: vec![SetHeader::parse("X-Set: yes", &env).unwrap()], ..Default::default() };
        let mut plan = plan();
        let expected: Vec<Vec<OutRequest>> = plan
            .connections
            .iter()
            .map(|c| {
                let vars = RuntimeVars::for_transform(&transform);
                c.requests
                    .iter()
                    .map(|r| transform.apply(&r.request, &target, &vars, &mut TransformStats::default()))
                    .collect()
            })
            .collect();
        let mut stats = TransformStats::default();
        let ready: Vec<Vec<OutRequest>> =
            transform_ahead(&mut plan, &transform, &target, &mut stats).into_iter().map(Iterator::collect).collect();
        assert_eq!(ready, expected, "one list per connection, in the order of its requests");
        assert_eq!(ready[0].len(), 2);
        assert_eq!(ready[0][1].path, b"/c1/1");
        assert_eq!(ready[0][1].body, b"abc");
        assert_eq!((stats.headers_set, stats.hop_by_hop_removed), (3, 3), "counted once per request");
        for r in plan.connections.iter().flat_map(|c| &c.requests) {
            assert!(r.request.headers.is_empty() && r.request.body.bytes.is_empty(), "recorded copies released");
            assert!(r.request.path.starts_with(b"/c"), "method and path stay for the judge");
        }
    }

    #[test]
    fn transforms_that_depend_on_the_send_time_run_at_send_time() {
        let target: Target = "http://127.0.0.1:9000".parse().unwrap();
        let transform =
            Transform { set_headers: vec![SetHeader::parse("X-Id: {{uuid}}", &env).unwrap()], ..Default::default() };
        let mut plan = plan();
        let mut stats = TransformStats::default();
        let ready = transform_ahead(&mut plan, &transform, &target, &mut stats);
        assert_eq!(ready.len(), 2);
        assert!(ready.into_iter().all(|mut r| r.next().is_none()));
        assert_eq!(stats.headers_set, 0);
        assert_eq!(plan.connections[0].requests[0].request.headers.len(), 2, "recorded request kept");
    }
}
