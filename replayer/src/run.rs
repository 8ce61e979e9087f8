//! `replayer run`: the replay pipeline put together. Options in, a [`Report`] out (printed, and written as JSON
//! with `--report`):
//!
//! ```text
//! paths ──select──▶ Vec<Exchange> ──Plan::build──▶ Plan ──Plan::pace──▶ Plan ──client::replay──▶ Report
//!                                                                   └── --dry-run: the plan, printed
//! ```

use std::io::Write;
use std::time::Duration;

use crate::cli::RunOpts;
use crate::client::{ClientConfig, ForceProto};
use crate::judge;
use crate::pace::Pacing;
use crate::plan::Plan;
use crate::report::Report;
use crate::select::{Filter, select};
use crate::transform::{RuntimeVars, Target, Transform, TransformStats};

/// The target assumed by `--dry-run` without `--target`.
const DRY_RUN_TARGET: &str = "http://127.0.0.1:80";

/// Runs `replayer run`. Warnings go to standard error as they are found; the summary goes to `out`.
pub fn run(opts: &RunOpts, out: &mut dyn Write) -> anyhow::Result<Report> {
    let filter = Filter {
        methods: opts.methods.clone(),
        hosts: opts.hosts.clone(),
        path_prefixes: opts.path_prefixes.clone(),
        path_regex: opts.path_regex.clone(),
        statuses: opts.statuses.clone(),
        protocols: opts.protocols.iter().flatten().copied().collect(),
        from: opts.from,
        to: opts.to,
        limit: opts.limit,
    };
    let selection = select(&opts.paths, &filter)?;
    for w in &selection.warnings {
        eprintln!("replayer: warning: {w}");
    }
    let judge_setup = if opts.dry_run {
        None
    } else {
        Some(judge::Setup::new(&opts.judge, &selection.exchanges).map_err(anyhow::Error::msg)?)
    };
    let mut plan = Plan::build(selection.exchanges);
    let pacing = Pacing { scale: opts.time_scale, max_gap: opts.max_gap };
    plan.pace(&pacing);
    let target = match &opts.target {
        Some(t) => t.clone(),
        None => DRY_RUN_TARGET.parse::<Target>().map_err(anyhow::Error::msg)?,
    };
    let transform = Transform {
        rewrite_hosts: opts.rewrite_hosts.clone(),
        remove_headers: opts.remove_headers.clone(),
        set_headers: opts.set_headers.clone(),
    };
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
    if opts.dry_run {
        report.transform = dry_run(&plan, &target, &transform, force, out)?;
    } else {
        let cfg = ClientConfig {
            target,
            connect_timeout: opts.connect_timeout,
            request_timeout: opts.timeout,
            force,
            concurrency: opts.concurrency as usize,
            hook: None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let (judge, result) = judge::replay_judged(&runtime, judge_setup, &opts.judge, plan, cfg, transform)?;
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
        report = sent;
        out.write_all(report.text().as_bytes())?;
        if let Some(judge) = judge {
            judge::finish(&judge, &opts.judge, &mut report, out)?;
        }
    }
    if let Some(path) = &opts.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).map_err(|e| anyhow::anyhow!("{}: writing the report: {e}", path.display()))?;
    }
    Ok(report)
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
    let vars = RuntimeVars { now: "{{now}}".into(), uuid: "{{uuid}}".into() };
    let mut lines: Vec<(Duration, String)> = Vec::with_capacity(plan.request_count());
    for (i, c) in plan.connections.iter().enumerate() {
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
                    "+{:>9.3}s conn {i} {wire} {} {}{} ({} headers){wait}",
                    r.planned.as_secs_f64(),
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
