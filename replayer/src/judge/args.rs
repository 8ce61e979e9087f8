//! The judge's options of `replayer run`, flattened into `RunOpts`.

use std::path::PathBuf;

use clap::Args;

use super::gates::Gate;
use super::jsonpath::PathPattern;
use crate::correlate::Extract;
use crate::transform::Target;

/// Validation, gates, noise learning and correlation options.
#[derive(Debug, Args)]
#[command(next_help_heading = "Judging the responses")]
pub struct JudgeOpts {
    /// Comparison rules (TOML): compared and ignored headers, ignored JSON paths, matchers, per endpoint.
    #[arg(long, value_name = "FILE.toml")]
    pub rules: Option<PathBuf>,
    /// Also compare this response header, and the trailer of that name (repeatable; '*' for all; content-type is
    /// compared by default; gRPC's grpc-status and grpc-message always).
    #[arg(long = "header", value_name = "NAME")]
    pub headers: Vec<String>,
    /// Do not compare this response header or trailer (repeatable).
    #[arg(long = "ignore-header", value_name = "NAME")]
    pub ignore_headers: Vec<String>,
    /// Do not compare this JSON path, e.g. '$.id' or '$.items[*].updatedAt'; gRPC message fields by number, e.g.
    /// '$.message[*].#2' (repeatable).
    #[arg(long = "ignore-json", value_name = "PATH", value_parser = parse_json_path)]
    pub ignore_json: Vec<String>,
    /// Replay every request to this baseline (the old build) first: fields where its answers differ from the
    /// recording are learned as noise and not held against the target.
    #[arg(long, value_name = "URL", value_parser = parse_target)]
    pub baseline: Option<Target>,
    /// Fail (exit 3) if this holds, e.g. 'pass_rate < 0.99', 'p95_latency_delta > 10%', 'errors > 0',
    /// 'status_5xx > 0' (repeatable). Metrics: pass_rate failed errors status_5xx status_4xx requests
    /// p50_latency_delta p95_latency_delta p99_latency_delta p95_latency_ms noise_ignored; operators < <= > >= == !=.
    #[arg(long = "fail-if", value_name = "EXPR", value_parser = parse_gate)]
    pub fail_if: Vec<Gate>,
    /// Write JUnit XML: one test case per endpoint (failures carry the diffs) and one per gate.
    #[arg(long, value_name = "FILE.xml")]
    pub junit: Option<PathBuf>,
    /// Take NAME from each live response at this JSON path; '{{NAME}}' in later requests of the session becomes
    /// the value, and the recorded value at that path is replaced by the live one (repeatable).
    #[arg(long = "extract", value_name = "NAME=$.PATH", value_parser = parse_extract)]
    pub extract: Vec<Extract>,
    /// Do not detect and substitute values created during the replay (ids from earlier responses).
    #[arg(long)]
    pub no_correlate: bool,
    /// Only replay, as a load test: do not compare the answers with the recorded ones (no diffs, gates, JUnit,
    /// baseline or correlation).
    #[arg(long, conflicts_with_all = ["fail_if", "junit", "baseline", "rules", "extract"])]
    pub no_judge: bool,
    /// Keep at most this many bytes of each live response body for comparison (bodies cut are not compared).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub body_cap: usize,
    /// Failing exchanges whose differences are printed.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub show_diffs: usize,
}

fn parse_json_path(s: &str) -> Result<String, String> {
    PathPattern::parse(s).map(|_| s.to_string())
}

fn parse_target(s: &str) -> Result<Target, String> {
    s.parse()
}

fn parse_gate(s: &str) -> Result<Gate, String> {
    s.parse()
}

fn parse_extract(s: &str) -> Result<Extract, String> {
    s.parse()
}
