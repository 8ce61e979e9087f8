//! The judge: replay that checks what the target answered. Each live response is compared with the recorded one
//! under the rules ([`rules`], [`compare`], gRPC in [`grpc`]); differences the baseline also showed are noise
//! ([`noise`]); values created during the replay are followed by the [`crate::correlate`] module; verdicts become
//! results ([`results`]), JUnit ([`junit`]) and quality gates ([`gates`]).
//!
//! ```text
//! recorded exchanges ──Judge::new──▶ Judge (rules, recorded responses by connection and order)
//! client ──rewrite (correlation)──▶ request ──▶ target ──▶ live response ──observe──▶ compare ──▶ Results
//! --baseline: the same plan replayed to the baseline first with a learning Judge ──▶ Noise ──▶ candidate Judge
//! ```
//! The client calls the judge through [`ReplayHook`], so it knows nothing of rules or verdicts.

pub mod args;
pub mod compare;
pub mod decode;
pub mod diff;
pub mod gates;
pub mod grpc;
pub mod json_diff;
pub mod jsonpath;
pub mod junit;
pub mod noise;
pub mod results;
pub mod rules;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tapedeck_model::{Exchange, Response};

use std::io::Write;

use crate::client::RunResult;
use crate::correlate::Correlator;
use crate::plan::{ConnPlan, PlannedRequest};
use crate::report::Report;
use crate::report::{ErrorKind, endpoint_key};
use crate::transform::{OutRequest, Target};
use args::JudgeOpts;
use compare::{CompareStats, Limits, compare};
use noise::Noise;
use results::Paint;
use results::{JudgeReport, Results, Verdict};
use rules::Rules;

/// Largest decoded body compared.
pub const DECODE_CAP: usize = 16 << 20;
/// Most differences kept per exchange (learning keeps more).
pub const MAX_DIFFS: usize = 50;
const MAX_DIFFS_LEARNING: usize = 1000;

/// A recorded connection, as the plan names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// Recorded connection id.
    pub connection_id: u64,
    /// Recorded client.
    pub client: SocketAddr,
    /// Recorded server.
    pub server: SocketAddr,
}

impl ConnKey {
    /// The key of a planned connection.
    pub fn of(c: &ConnPlan) -> ConnKey {
        ConnKey { connection_id: c.connection_id, client: c.client, server: c.server }
    }
}

/// What the client calls around each request.
pub trait ReplayHook: Send + Sync + std::fmt::Debug {
    /// Most bytes of a live body to keep for [`ReplayHook::observe`].
    fn body_cap(&self) -> usize;
    /// Changes a request before it is sent (correlation).
    fn rewrite(&self, conn: &ConnKey, req: &PlannedRequest, out: &mut OutRequest);
    /// Sees the outcome: the status and latency or the error, and the live response (body up to the cap; its
    /// `full_len` says how long it was).
    fn observe(
        &self,
        conn: &ConnKey,
        req: &PlannedRequest,
        result: &Result<(u16, Duration), (ErrorKind, String)>,
        live: Option<Response>,
    );
}

#[derive(Clone)]
struct Recorded {
    method: String,
    path: String,
    endpoint: String,
    response: Option<Response>,
    latency: Option<Duration>,
    at: u64,
}

/// Looked up once per replayed request: FxHash, not SipHash (the keys are ours, not an attacker's).
type Index = HashMap<(ConnKey, u32, u64), Recorded, rustc_hash::FxBuildHasher>;

/// A recorded exchange's key in the [`Index`]: its connection, its order on it, its id.
fn index_key(ex: &Exchange) -> (ConnKey, u32, u64) {
    (ConnKey { connection_id: ex.connection_id, client: ex.client, server: ex.server }, ex.order, ex.id)
}

/// What every judge of a run shares: rules, recorded responses, settings.
pub struct Setup {
    rules: Arc<Rules>,
    recorded: Arc<Index>,
    limits: Limits,
    body_cap: usize,
    correlate: bool,
    extracts: Vec<crate::correlate::Extract>,
    usage: Arc<crate::correlate::Usage>,
}

impl Setup {
    /// Reads the rules and indexes the recorded exchanges (before they are planned). Their responses are not
    /// copied: [`Setup::keep_response`] moves each in once planning is done with its exchange.
    pub fn new<E: std::borrow::Borrow<Exchange>>(opts: &JudgeOpts, exchanges: &[E]) -> Result<Setup, String> {
        let mut rules = match &opts.rules {
            Some(p) => Rules::from_file(p)?,
            None => Rules::default(),
        };
        rules.add_shortcuts(&opts.headers, &opts.ignore_headers, &opts.ignore_json)?;
        let mut recorded = Index::with_capacity_and_hasher(exchanges.len(), Default::default());
        for ex in exchanges.iter().map(std::borrow::Borrow::borrow) {
            let Some(req) = &ex.request else { continue };
            let latency = match (ex.timing.request_first.or(ex.timing.request_last), ex.timing.response_last) {
                (Some(a), Some(b)) if b >= a => Some(Duration::from_nanos(b.0 - a.0)),
                _ => None,
            };
            let path = String::from_utf8_lossy(&req.path);
            let method = String::from_utf8_lossy(&req.method).into_owned();
            let path = path.split('?').next().unwrap_or("").to_string();
            let endpoint = rules.endpoint_name(&method, &path);
            recorded.insert(
                index_key(ex),
                Recorded { method, path, endpoint, response: None, latency, at: crate::correlate::request_time(ex) },
            );
        }
        Ok(Setup {
            rules: Arc::new(rules),
            recorded: Arc::new(recorded),
            limits: Limits { decode_cap: DECODE_CAP, max_diffs: MAX_DIFFS },
            body_cap: opts.body_cap,
            correlate: !opts.no_correlate,
            extracts: opts.extract.clone(),
            usage: Arc::new(if opts.no_correlate {
                Default::default()
            } else {
                crate::correlate::Usage::index(exchanges)
            }),
        })
    }

    /// Moves the recorded response of `ex` into the index (called by planning with what is left of each exchange,
    /// so that a judged run never holds two copies of the recorded responses).
    pub fn keep_response(&mut self, ex: &mut Exchange) {
        // Unique until judges are made, so this does not copy.
        if let Some(rec) = Arc::make_mut(&mut self.recorded).get_mut(&index_key(ex)) {
            rec.response = ex.response.take();
        }
    }

    /// A judge that learns noise from a baseline's answers.
    pub fn learner(&self) -> Judge {
        self.judge(Mode::Learn)
    }

    /// A judge of the candidate, excusing `noise` (learned from a baseline).
    pub fn candidate(&self, noise: Option<Noise>) -> Judge {
        self.judge(Mode::Judge(noise.unwrap_or_default()))
    }

    fn judge(&self, mode: Mode) -> Judge {
        let correlator = (self.correlate || !self.extracts.is_empty())
            .then(|| Correlator::new(self.correlate, self.extracts.clone(), Arc::clone(&self.usage)));
        let mut limits = self.limits;
        if matches!(mode, Mode::Learn) {
            limits.max_diffs = MAX_DIFFS_LEARNING;
        }
        Judge {
            rules: Arc::clone(&self.rules),
            recorded: Arc::clone(&self.recorded),
            limits,
            body_cap: self.body_cap,
            correlator,
            mode,
            state: Mutex::new(State::default()),
        }
    }
}

enum Mode {
    Learn,
    Judge(Noise),
}

#[derive(Default)]
struct State {
    results: Results,
    stats: CompareStats,
    learned: Noise,
}

/// One replay's judge (see the module docs).
pub struct Judge {
    rules: Arc<Rules>,
    recorded: Arc<Index>,
    limits: Limits,
    body_cap: usize,
    correlator: Option<Correlator>,
    mode: Mode,
    state: Mutex<State>,
}

impl std::fmt::Debug for Judge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Judge").field("recorded", &self.recorded.len()).field("body_cap", &self.body_cap).finish()
    }
}

impl Judge {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The noise learned (learning judges).
    pub fn take_noise(&self) -> Noise {
        std::mem::take(&mut self.lock().learned)
    }

    /// The judgement so far (gates are evaluated by the caller).
    pub fn take_report(&self) -> JudgeReport {
        let st = std::mem::take(&mut *self.lock());
        let mut r = st.results.finish();
        r.compare = st.stats;
        if let Mode::Judge(noise) = &self.mode {
            r.noise = noise.learned();
            r.noise_stats = noise.stats.clone();
        }
        if let Some(c) = &self.correlator {
            r.correlation = c.report();
        }
        r
    }
}

impl ReplayHook for Judge {
    fn body_cap(&self) -> usize {
        self.body_cap
    }

    fn rewrite(&self, conn: &ConnKey, _req: &PlannedRequest, out: &mut OutRequest) {
        if let Some(c) = &self.correlator {
            c.rewrite(conn.client.ip(), out);
        }
    }

    fn observe(
        &self,
        conn: &ConnKey,
        req: &PlannedRequest,
        result: &Result<(u16, Duration), (ErrorKind, String)>,
        live: Option<Response>,
    ) {
        let rec = self.recorded.get(&(*conn, req.order, req.exchange_id));
        let endpoint = rec.map_or_else(|| endpoint_key(&req.request.method, &req.request.path), |r| r.endpoint.clone());
        let session = conn.client.ip();
        let (status, latency, live) = match (result, live) {
            (Ok((s, l)), Some(live)) => (*s, *l, live),
            (Ok(_), None) => {
                self.lock().results.unjudged();
                return;
            }
            (Err((kind, msg)), _) => {
                let mut st = self.lock();
                match self.mode {
                    Mode::Learn => st.learned.stats.baseline_errors += 1,
                    Mode::Judge(_) => st.results.add(
                        Verdict {
                            exchange_id: req.exchange_id,
                            endpoint,
                            passed: false,
                            status: None,
                            recorded_status: req.recorded_status,
                            error: Some(format!("{}: {msg}", kind.as_str())),
                            diffs: vec![],
                            excused: 0,
                        },
                        None,
                    ),
                }
                return;
            }
        };
        let recorded_resp = rec.and_then(|r| r.response.as_ref());
        if let Some(c) = &self.correlator {
            c.learn(session, rec.map_or(0, |r| r.at), recorded_resp, &live);
        }
        let (Some(rec), Some(rresp)) = (rec, recorded_resp) else {
            let mut st = self.lock();
            st.results.status(status);
            st.results.unjudged();
            return;
        };
        let rules = self.rules.for_request(&rec.method, &rec.path);
        let mut stats = CompareStats::default();
        let diffs = compare(rresp, &live, &rules, self.limits, &mut stats);
        let mut st = self.lock();
        add_stats(&mut st.stats, &stats);
        let noise = match &self.mode {
            Mode::Learn => {
                st.learned.learn(&endpoint, &diffs);
                return;
            }
            Mode::Judge(n) => n,
        };
        st.results.status(status);
        let (mut kept, mut by_noise, mut by_corr) = (Vec::new(), 0u64, 0u64);
        for d in diffs {
            if noise.is_noise(&endpoint, &d.field) {
                by_noise += 1;
            } else if let (Some(c), Some(r), Some(l)) = (&self.correlator, &d.recorded, &d.live)
                && c.equivalent(session, r, l)
            {
                by_corr += 1;
            } else {
                kept.push(d);
            }
        }
        st.results.excused(by_noise, by_corr);
        let v = Verdict {
            exchange_id: req.exchange_id,
            endpoint,
            passed: kept.is_empty(),
            status: Some(status),
            recorded_status: Some(rresp.status),
            error: None,
            diffs: kept,
            excused: u32::try_from(by_noise + by_corr).unwrap_or(u32::MAX),
        };
        st.results.add(v, rec.latency.map(|r| (latency, r)));
    }
}

fn add_stats(a: &mut CompareStats, b: &CompareStats) {
    a.bodies_json += b.bodies_json;
    a.bodies_text += b.bodies_text;
    a.bodies_grpc += b.bodies_grpc;
    a.bodies_binary += b.bodies_binary;
    a.grpc_messages_not_protobuf += b.grpc_messages_not_protobuf;
    a.bodies_skipped_truncated += b.bodies_skipped_truncated;
    a.bodies_skipped_too_large += b.bodies_skipped_too_large;
    a.decode_failed += b.decode_failed;
    a.json_invalid += b.json_invalid;
    a.diffs_capped += b.diffs_capped;
}

/// A replay pass of [`replay_judged`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass<'a> {
    /// To the `--baseline` target, learning noise. Not the run's result: the caller keeps it out of its outputs
    /// (HAR, progress counts).
    Baseline(&'a Target),
    /// To the target: the run.
    Candidate,
}

/// Judged replay: to the baseline first when `--baseline` is given (learning noise), then to the target. The
/// caller runs each pass with `replay_pass(pass, hook)`, sending the plan where `pass` says with `hook` as the
/// [`ClientConfig::hook`](crate::client::ClientConfig::hook) (its own outputs, `--har` and progress, are its
/// business). Without a setup (no judging), one plain pass with no hook.
pub fn replay_judged(
    setup: Option<Setup>,
    opts: &JudgeOpts,
    mut replay_pass: impl FnMut(Pass<'_>, Option<Arc<dyn ReplayHook>>) -> anyhow::Result<RunResult>,
) -> anyhow::Result<(Option<Arc<Judge>>, RunResult)> {
    let Some(setup) = setup else { return Ok((None, replay_pass(Pass::Candidate, None)?)) };
    let mut noise = None;
    if let Some(base) = &opts.baseline {
        let learner = Arc::new(setup.learner());
        let hook: Arc<dyn ReplayHook> = learner.clone();
        let b = replay_pass(Pass::Baseline(base), Some(hook))?;
        eprintln!(
            "replayer: baseline {base}: {} requests, {} errors; learning noise",
            b.recorder_report.requests, b.recorder_report.errors
        );
        noise = Some(learner.take_noise());
    }
    let judge = Arc::new(setup.candidate(noise));
    let hook: Arc<dyn ReplayHook> = judge.clone();
    let result = replay_pass(Pass::Candidate, Some(hook))?;
    Ok((Some(judge), result))
}

/// Finishes the judgement: gates, the terminal summary to `out`, JUnit; stores it in `report`.
pub fn finish(judge: &Judge, opts: &JudgeOpts, report: &mut Report, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut j = judge.take_report();
    evaluate_gates(opts, &mut j, report.requests);
    out.write_all(j.text(Paint::stdout(), opts.show_diffs).as_bytes())?;
    if let Some(p) = &opts.junit {
        let took = Duration::from_secs_f64(report.actual_duration_s.max(0.0));
        junit::write_junit(p, &j, &report.target, took).map_err(anyhow::Error::msg)?;
    }
    report.judge = Some(j);
    Ok(())
}

/// Evaluates the gates of `opts` on `report` and stores the outcomes in it.
pub fn evaluate_gates(opts: &JudgeOpts, report: &mut JudgeReport, requests: u64) {
    let r: &JudgeReport = report;
    let outcomes = gates::evaluate(&opts.fail_if, &|m| r.metric(m, requests));
    report.gates = outcomes;
}

/// The live response as the judge sees it, started from the status and headers; the client adds the body with
/// [`keep_body`] and the trailers with [`keep_trailers`].
pub fn live_head(status: u16, headers: &hyper::HeaderMap) -> Response {
    Response { status, headers: to_headers(headers), ..Default::default() }
}

/// Appends body bytes up to `cap` (the full length is counted in `full_len` whatever the cap).
pub fn keep_body(r: &mut Response, data: &[u8], cap: usize) {
    let room = cap.saturating_sub(r.body.bytes.len());
    r.body.bytes.extend_from_slice(&data[..data.len().min(room)]);
    r.body.full_len += data.len() as u64;
}

/// Adds trailer fields.
pub fn keep_trailers(r: &mut Response, t: &hyper::HeaderMap) {
    r.trailers.extend(to_headers(t));
}

fn to_headers(h: &hyper::HeaderMap) -> Vec<tapedeck_model::Header> {
    h.iter().map(|(n, v)| tapedeck_model::Header::new(n.as_str(), v.as_bytes())).collect()
}
