//! `replayer run`: the replay pipeline put together. Options in, a [`Report`] out (printed, and written as JSON
//! with `--report`):
//!
//! ```text
//! paths ──select──▶ Vec<Exchange> ──Plan::build──▶ Plan ──Plan::pace──▶ Plan ──judge::replay_judged──▶ Report
//!                                                                   └── --dry-run: the plan, printed
//! ```
//!
//! [`judge::replay_judged`] decides the passes (the `--baseline` one first, then the target) and this module runs
//! each with `client::replay_with`: its own progress display (the baseline's labelled `baseline`), and HAR
//! entries (`--har`) from the target pass only. `--max-rate` applies to both passes.
//!
//! Checked at start, before anything is read or sent: the output files (`--report`, `--junit`, `--har`:
//! [`crate::outputs`]), where requests may go ([`crate::safety`]), the `--ca-cert` file, the `--token-file` files
//! and the `{{file.NAME}}` names that use them. An empty selection stops the run (exit 1) unless `--allow-empty`;
//! damaged input is replayed as far as it can be read, then the run fails saying how many exchanges were lost.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cli::RunOpts;
use crate::client::{ClientConfig, ForceProto, OutcomeSink, replay_with};
use crate::har::{HarStats, HarWriter, entry_from_replayed};
use crate::judge::{self, Pass};
use crate::pace::Pacing;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::report::Report;
use crate::select::select;
use crate::tls::{Tls, TlsOptions};
use crate::tokens::TokenFiles;
use crate::transform::{RuntimeVars, Target, Transform, TransformStats};

/// The target assumed by `--dry-run` without `--target`.
const DRY_RUN_TARGET: &str = "http://127.0.0.1:80";

/// Runs `replayer run`. Warnings go to standard error as they are found; the summary goes to `out`.
pub fn run(opts: &RunOpts, out: &mut dyn Write) -> anyhow::Result<Report> {
    crate::outputs::check_all(&[
        ("--report", opts.report.as_deref()),
        ("--junit", opts.judge.junit.as_deref()),
        ("--har", opts.har.as_deref().filter(|_| !opts.dry_run)),
    ])?;
    if let Some(t) = &opts.target {
        crate::safety::check_rewrites(t, &opts.rewrite_hosts, &opts.allow_hosts).map_err(anyhow::Error::msg)?;
    }
    let token_files = Arc::new(TokenFiles::load(&opts.token_files)?);
    let token_map = match &opts.token_map {
        Some(p) => Some(Arc::new(crate::token_map::TokenMap::load(p)?)),
        None => None,
    };
    for sh in &opts.set_headers {
        for name in sh.value.file_names() {
            if !token_files.has(name) {
                anyhow::bail!("--set-header {}: {{{{file.{name}}}}} needs --token-file {name}=PATH", sh.name);
            }
        }
    }
    let tls = match &opts.target {
        Some(t) => tls_for(t, opts)?,
        None => None,
    };
    let baseline_tls = match &opts.judge.baseline {
        Some(b) if !opts.dry_run => tls_for(b, opts)?,
        _ => None,
    };
    let selection = select(&opts.paths, &opts.filter.filter(), opts.filter.max_selection_bytes)?;
    for w in &selection.warnings {
        eprintln!("replayer: warning: {w}");
    }
    if selection.stats.selected == 0 {
        let mut why = opts.filter.empty_selection(&selection.stats);
        if let Some(loss) = selection.stats.loss() {
            why = format!("{why}; {loss}");
        }
        if !opts.allow_empty {
            anyhow::bail!("{why}; nothing to replay (--allow-empty runs anyway)");
        }
        eprintln!("replayer: {why}");
    }
    let loss = selection.stats.loss();
    let mut judge_setup = if opts.dry_run || opts.judge.no_judge {
        None
    } else {
        Some(judge::Setup::new(&opts.judge, &selection.exchanges).map_err(anyhow::Error::msg)?)
    };
    let mut plan = Plan::build_with(selection.exchanges, &mut |rest| {
        if let Some(setup) = judge_setup.as_mut() {
            setup.keep_response(rest);
        }
    });
    let pacing = Pacing { scale: opts.time_scale, max_gap: opts.max_gap };
    plan.pace(&pacing);
    let target = match &opts.target {
        Some(t) => t.clone(),
        None => DRY_RUN_TARGET.parse::<Target>().map_err(anyhow::Error::msg)?,
    };
    let transform = Transform {
        rewrite_hosts: opts.rewrite_hosts.clone(),
        rewrite_paths: opts.rewrite_paths.clone(),
        token_files: (!opts.token_files.is_empty()).then(|| Arc::clone(&token_files)),
        remove_headers: opts.remove_headers.clone(),
        set_headers: opts.set_headers.clone(),
        token_map,
    };
    // Masked credentials are never sent silently (crate::masked).
    let masked = crate::masked::scan(&plan, &transform);
    let mut masked_warnings: Vec<String> = Vec::new();
    if let Some(map) = &transform.token_map {
        let unused = map.unused();
        if !unused.is_empty() {
            let w = format!(
                "--token-map {}: {} of {} keys are in no selected request's header values or query: {}",
                map.path().display(),
                unused.len(),
                map.len(),
                unused.join(", ")
            );
            eprintln!("replayer: warning: {w}");
            masked_warnings.push(w);
        }
    }
    if !masked.is_empty() {
        let w = if opts.allow_masked {
            format!(
                "sending {} requests with masked credentials as recorded (--allow-masked):\n{}",
                masked.requests,
                masked.lines().join("\n")
            )
        } else if opts.dry_run {
            masked.message()
        } else {
            anyhow::bail!("{}; nothing was sent", masked.message());
        };
        eprintln!("replayer: warning: {w}");
        masked_warnings.push(w);
    }
    let force = match (opts.http1, opts.http2) {
        (true, _) => ForceProto::Http1,
        (_, true) => ForceProto::Http2,
        _ => ForceProto::Auto,
    };
    let mut report = Report {
        target: target.to_string(),
        time_scale: opts.time_scale.to_string(),
        planned_duration_s: plan.planned_span().as_secs_f64(),
        recorded_span_s: plan.recorded_span().as_secs_f64(),
        select: selection.stats,
        plan: plan.stats.clone(),
        warnings: selection.warnings,
        ..Default::default()
    };
    report.warnings.extend(masked_warnings);
    if opts.dry_run {
        report.transform = dry_run(&plan, &target, &transform, force, out)?;
    } else {
        let har = match &opts.har {
            Some(path) => Some(HarSink::create(path)?),
            None => None,
        };
        let cfg = ClientConfig {
            target,
            connect_timeout: opts.connect_timeout,
            request_timeout: opts.timeout,
            force,
            concurrency: opts.concurrency as usize,
            tls,
            max_rate: opts.max_rate,
            keep_detail: false,
            progress: None,
            hook: None,
        };
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(sender_threads(opts)).enable_all().build()?;
        let total = plan.request_count() as u64;
        let mut plan = Some(plan);
        // Each pass has its own progress display and counters; only the candidate pass writes HAR entries.
        let replay_pass = |pass: Pass<'_>, hook| {
            let mut cfg = ClientConfig { hook, ..cfg.clone() };
            let (phase, plan, sink) = match pass {
                Pass::Baseline(base) => {
                    cfg.target = base.clone();
                    cfg.tls = baseline_tls.clone();
                    (Some("baseline"), plan.clone(), None)
                }
                Pass::Candidate => {
                    cfg.keep_detail = har.is_some();
                    (None, plan.take(), har.as_ref().map(HarSink::sink))
                }
            };
            let Some(plan) = plan else { anyhow::bail!("internal: the plan was replayed already") };
            let progress = Progress::start_phase(opts.progress, total, phase);
            cfg.progress = Some(Arc::clone(&progress.counters));
            let result = runtime.block_on(replay_with(plan, cfg, transform.clone(), sink));
            progress.finish();
            Ok(result)
        };
        let (judge, result) = judge::replay_judged(judge_setup, &opts.judge, replay_pass)?;
        let mut sent = result.recorder_report;
        sent.target = report.target;
        sent.time_scale = report.time_scale;
        sent.planned_duration_s = report.planned_duration_s;
        sent.recorded_span_s = report.recorded_span_s;
        sent.select = report.select;
        sent.plan = report.plan;
        sent.warnings = report.warnings;
        sent.client = result.client;
        sent.transform = result.transform;
        sent.actual_duration_s = result.duration.as_secs_f64();
        if sent.actual_duration_s > 0.0 {
            sent.achieved_rps = sent.requests as f64 / sent.actual_duration_s;
        }
        sent.extra.token_files = token_files.stats();
        if let Some(h) = har {
            let (stats, errors, first_error) = h.finish();
            sent.extra.har = stats;
            sent.extra.har_write_errors = errors;
            if let Some(e) = first_error {
                eprintln!("replayer: warning: {e}");
                sent.warnings.push(e);
            }
        }
        report = sent;
        out.write_all(report.text().as_bytes())?;
        if let Some(line) = report.all_failed() {
            out.flush()?;
            eprintln!("replayer: {line}");
        }
        if let Some(judge) = judge {
            judge::finish(&judge, &opts.judge, &mut report, out)?;
        }
    }
    if let Some(path) = &opts.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).map_err(|e| anyhow::anyhow!("{}: writing the report: {e}", path.display()))?;
    }
    if let Some(loss) = loss {
        // Replayed what could be read, and said so; the run is still not the recording's.
        anyhow::bail!("{loss}");
    }
    Ok(report)
}

/// `--threads`, else half the CPUs and at least one. One worker is what a load test on one machine wants: the
/// target gets the other cores, and the sender's tasks never wake each other across threads (measured in
/// docs/replay-perf.md: the default two workers on two cores cost three times the context switches per request).
fn sender_threads(opts: &RunOpts) -> usize {
    match opts.threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get() / 2).max(1),
    }
}

/// The TLS connectors for `t` when it is an `https` target (`--insecure`, `--ca-cert`).
fn tls_for(t: &Target, opts: &RunOpts) -> anyhow::Result<Option<Tls>> {
    if t.scheme != "https" {
        return Ok(None);
    }
    Ok(Some(Tls::new(&TlsOptions { insecure: opts.insecure, ca_cert: opts.ca_cert.clone() })?))
}

/// Prints every request that would be sent (after transforms), and the totals.
fn dry_run(
    plan: &Plan,
    target: &Target,
    transform: &Transform,
    force: ForceProto,
    out: &mut dyn Write,
) -> anyhow::Result<TransformStats> {
    let mut stats = TransformStats::default();
    let vars = RuntimeVars { now: "{{now}}".into(), uuid: "{{uuid}}".into(), files: transform.token_files.clone() };
    let mut lines: Vec<(Duration, String)> = Vec::with_capacity(plan.request_count());
    for c in &plan.connections {
        let wire = match force {
            ForceProto::Http1 => "http/1.1",
            ForceProto::Http2 => "h2",
            ForceProto::Auto if c.proto == tapedeck_model::Protocol::H2 => "h2",
            ForceProto::Auto => "http/1.1",
        };
        for r in &c.requests {
            let o = transform.apply(&r.request, target, &vars, &mut stats);
            let wait = if r.wait_for_previous { " (after previous answer)" } else { "" };
            lines.push((
                r.planned,
                format!(
                    "+{:>9.3}s c{}#{} {wire} {} {}{} ({} headers){wait}",
                    r.planned.as_secs_f64(),
                    c.connection_id,
                    r.order,
                    String::from_utf8_lossy(&o.method),
                    o.authority,
                    String::from_utf8_lossy(&o.path),
                    o.headers.len() + 1,
                ),
            ));
        }
    }
    lines.sort_by_key(|(t, _)| *t);
    for (_, l) in &lines {
        writeln!(out, "{l}")?;
    }
    let h2 = plan.stats.connections_h2;
    writeln!(
        out,
        "dry run: {} requests on {} connections ({} HTTP/1.x, {h2} HTTP/2) to {target}; would take {:.3} s \
         (recorded span {:.3} s)",
        plan.request_count(),
        plan.connections.len(),
        plan.connections.len() as u64 - h2,
        plan.planned_span().as_secs_f64(),
        plan.recorded_span().as_secs_f64(),
    )?;
    Ok(stats)
}

/// `--har`: the HAR writer, fed by the recorder task with every outcome that carries details.
struct HarSink {
    inner: Arc<Mutex<HarState>>,
}

struct HarState {
    writer: Option<HarWriter<std::io::BufWriter<std::fs::File>>>,
    errors: u64,
    first_error: Option<String>,
    path: std::path::PathBuf,
}

impl HarState {
    fn fail(&mut self, e: &std::io::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{}: writing the HAR file: {e}", self.path.display()));
        }
    }
}

impl HarSink {
    fn create(path: &std::path::Path) -> anyhow::Result<HarSink> {
        let f = std::fs::File::create(path).map_err(|e| anyhow::anyhow!("--har {}: {e}", path.display()))?;
        let w = HarWriter::new(std::io::BufWriter::new(f), "replayed by tapedeck replayer")?;
        let state = HarState { writer: Some(w), errors: 0, first_error: None, path: path.to_path_buf() };
        Ok(HarSink { inner: Arc::new(Mutex::new(state)) })
    }

    fn sink(&self) -> OutcomeSink {
        let inner = Arc::clone(&self.inner);
        Box::new(move |o| {
            let Some(d) = &o.detail else { return };
            let mut st = inner.lock().unwrap_or_else(|p| p.into_inner());
            let entry = entry_from_replayed(d, o.masked_body);
            let res = match st.writer.as_mut() {
                Some(w) => w.entry(&entry),
                None => return,
            };
            if let Err(e) = res {
                st.fail(&e);
            }
        })
    }

    /// Closes the file: counters, write errors, the first error message.
    fn finish(self) -> (HarStats, u64, Option<String>) {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut stats = HarStats::default();
        if let Some(w) = st.writer.take() {
            match w.finish() {
                Ok((_, s)) => stats = s,
                Err(e) => st.fail(&e),
            }
        }
        (stats, st.errors, st.first_error.take())
    }
}
