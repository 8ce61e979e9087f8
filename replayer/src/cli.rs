//! The replayer's command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::pace::{TimeScale, parse_duration};
use crate::progress::ProgressMode;
use crate::tokens::TokenFileArg;
use crate::transform::{HostRewrite, PathRewrite, SetHeader, Target};

/// tapedeck replayer: reads recorded HTTP exchanges from segment files written by `agent`.
#[derive(Debug, Parser)]
#[command(name = "replayer", version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("TAPEDECK_GIT_REV"), ")"))]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the exchanges in segment files or directories of them, in time order across files (first byte
    /// first), with the filters of `run`.
    ///
    /// A line: time (UTC, `Z`), connection and order on it (`c<connection id>#<order>`, the id `run --dry-run`
    /// shows), stream, protocol, client -> server, request => status (body length), flags. Damaged or unfinished
    /// segments (a writer that died) are read up to what is intact; a line on standard error names the file and
    /// says what was lost. Exit status: 0 when everything was read, 1 when some file or block could not be, 2 for
    /// bad flags.
    Inspect(Box<InspectOpts>),
    /// Replay recorded requests against a target, paced as recorded (scaled), judge the answers against the
    /// recorded ones, and summarise the results.
    ///
    /// Each recorded connection is replayed on its own connection, its requests in recorded order. Errors from
    /// the target (refused, reset, timeout) are counted per request and never stop the run. Every answer is
    /// compared with the recorded one (status, chosen headers, body by content type; see --rules and
    /// docs/regression.md). Output files (--report, --junit, --har) are checked before anything is read or sent.
    /// Exit status: 0 when the run completed and no --fail-if gate failed (whatever the target answered; when
    /// every request failed, a line on standard error says so with the first cause), 1 when the run could not be
    /// done or not in full (input unreadable or damaged: what could be read is replayed, then the number of
    /// exchanges lost is given; nothing selected, unless --allow-empty; rules file bad; an output file not
    /// writable), 2 for bad flags, 3 when a --fail-if gate failed.
    Run(Box<RunOpts>),
    /// Write recorded exchanges as HAR 1.2 (browser dev tools, HAR viewers) and/or JSON lines (log pipelines).
    ///
    /// Damaged segments are read up to what is intact, with one warning per file saying how many exchanges were
    /// lost. Exit status: 0 when everything was read, 1 when some file or block could not be (what could be read
    /// is still written), 2 for bad flags.
    Export(ExportOpts),
    /// Serve recorded responses to the service under test (a mock of its dependencies).
    ///
    /// Requests are matched on method, path, query and body (--match), falling back from the exact match to
    /// without body, without query, and method and path; repeated calls get the recorded answers in order, then
    /// the last one again. Unmatched requests get 502 with 'x-tapedeck-mock: unmatched; reason=...'. Prometheus
    /// metrics at /metrics (unless the recording has requests to /metrics: those are mocked) and always at
    /// /__tapedeck/metrics; a stats line on SIGINT/SIGTERM (match rate n/a before any request). Exit status: 0
    /// after a signal, 1 when the input could not be read or the address not bound, or after a signal when the
    /// input was damaged (what could be read is served; a warning at start says how many exchanges were lost), 2
    /// for bad flags.
    Mock(Box<crate::mock::MockOpts>),
}

/// Options of `replayer inspect`.
#[derive(Debug, Args)]
pub struct InspectOpts {
    /// Segment files, or directories holding them (including unfinished `.seg.tmp` files).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// One JSON object per exchange per line (proto, request, response, flags, timing, addresses).
    #[arg(long)]
    pub json: bool,
    /// Show bodies: text decoded from its content-encoding (gzip, br, deflate, zstd), binary as its length and a
    /// hex prefix. With --json: `body.text` (UTF-8) or `body.base64`, `body.encoding` saying which.
    #[arg(long)]
    pub bodies: bool,
    /// Which exchanges (the same flags as `run`); exchanges without a request are listed when no method, host,
    /// path, status or protocol filter is given.
    #[command(flatten)]
    pub filter: crate::filter_args::FilterArgs,
}

/// Options of `replayer export`.
#[derive(Debug, Args)]
pub struct ExportOpts {
    /// Segment files, or directories holding them.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Write a HAR 1.2 file.
    #[arg(long, value_name = "FILE.har", required_unless_present = "jsonl")]
    pub har: Option<PathBuf>,
    /// Write one JSON object per exchange per line; `-` for standard output.
    #[arg(long, value_name = "FILE.jsonl")]
    pub jsonl: Option<PathBuf>,
}

/// Options of `replayer run`.
#[derive(Debug, Args)]
pub struct RunOpts {
    /// Segment files, or directories holding them.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Where to send: http://HOST[:PORT] (scheme, host and port of every request).
    #[arg(long, value_name = "URL", value_parser = parse_target, required_unless_present = "dry_run")]
    pub target: Option<Target>,
    /// Speed: 1x as recorded, 10x ten times faster, 0.5x half speed, max as fast as possible.
    #[arg(long, value_name = "SCALE", default_value = "1x", value_parser = parse_scale)]
    pub time_scale: TimeScale,
    /// Cap idle gaps between requests to this long (before scaling), e.g. 2s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_gap: Option<Duration>,
    /// Most connections open at once.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Sender threads. Default: half the CPUs, at least one (the target often shares the machine in a load test;
    /// one thread sends tens of thousands of requests per second).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Map an authority or host to another: OLD=NEW (repeatable; Host / :authority).
    #[arg(long = "rewrite-host", value_name = "OLD=NEW", value_parser = parse_rewrite)]
    pub rewrite_hosts: Vec<HostRewrite>,
    /// Set a header, replacing recorded ones: 'Name: value' with ${ENV}, {{env.NAME}}, {{now}}, {{uuid}}.
    #[arg(long = "set-header", value_name = "HEADER", value_parser = parse_set_header)]
    pub set_headers: Vec<SetHeader>,
    /// Remove a header (repeatable).
    #[arg(long = "remove-header", value_name = "NAME")]
    pub remove_headers: Vec<String>,
    /// Speak HTTP/1.1 on every connection.
    #[arg(long, conflicts_with = "http2")]
    pub http1: bool,
    /// Speak HTTP/2 (h2c prior knowledge) on every connection.
    #[arg(long)]
    pub http2: bool,
    /// Time allowed to connect (TCP and HTTP handshake).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Time allowed for a whole response.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Write the full report as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Print what would be sent, on how many connections, and how long the run would take; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Map a path prefix to another: /OLD=/NEW (repeatable; whole segments: /v1 matches /v1/x, not /v10).
    #[arg(long = "rewrite-path", value_name = "/OLD=/NEW", value_parser = parse_path_rewrite)]
    pub rewrite_paths: Vec<PathRewrite>,
    /// Live values for masked recorded ones: TOML with one [tokens] table, each key a recorded value or token as
    /// `inspect` shows it ("tdk_0123456789abcdef"), each value what to send in its place, inside every recorded
    /// header value and query string that holds it (so each recorded session gets its own credential).
    #[arg(long = "token-map", value_name = "FILE")]
    pub token_map: Option<PathBuf>,
    /// Send recorded header values and query parameters that hold masked credentials ([REDACTED], tdk_ tokens) as
    /// they are. Without
    /// it (or --set-header / --token-map covering them), such a run stops before sending anything.
    #[arg(long)]
    pub allow_masked: bool,
    /// A file whose content (trimmed) is {{file.NAME}} in --set-header; re-read when it changes (repeatable).
    #[arg(long = "token-file", value_name = "NAME=PATH", value_parser = parse_token_file)]
    pub token_files: Vec<TokenFileArg>,
    /// Another host that --rewrite-host may name (repeatable). The target's host is always allowed.
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_hosts: Vec<String>,
    /// Ceiling on requests per second, whatever the time scale (token bucket).
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub max_rate: Option<f64>,
    /// https targets: accept any certificate.
    #[arg(long)]
    pub insecure: bool,
    /// https targets: also trust the certificates of this PEM file.
    #[arg(long, value_name = "FILE.pem")]
    pub ca_cert: Option<PathBuf>,
    /// Write the replayed exchanges (request sent, response received, timings) as HAR 1.2.
    #[arg(long, value_name = "FILE.har")]
    pub har: Option<PathBuf>,
    /// Progress on standard error: a bar on a terminal, a line every 5 s otherwise (auto), or bar, lines, off.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub progress: ProgressMode,
    /// Run even when nothing is selected (an empty directory, filters that match nothing): exit 0, not 1.
    #[arg(long)]
    pub allow_empty: bool,
    /// Which recorded requests to replay.
    #[command(flatten)]
    pub filter: crate::filter_args::FilterArgs,
    /// Validation, gates, noise learning and correlation.
    #[command(flatten)]
    pub judge: crate::judge::args::JudgeOpts,
}

fn parse_target(s: &str) -> Result<Target, String> {
    s.parse()
}

fn parse_scale(s: &str) -> Result<TimeScale, String> {
    s.parse()
}

fn parse_rewrite(s: &str) -> Result<HostRewrite, String> {
    s.parse()
}

fn parse_set_header(s: &str) -> Result<SetHeader, String> {
    SetHeader::parse(s, &|name| std::env::var(name).ok())
}

fn parse_path_rewrite(s: &str) -> Result<PathRewrite, String> {
    s.parse()
}

fn parse_token_file(s: &str) -> Result<TokenFileArg, String> {
    s.parse()
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("'{s}' is not a rate: expected a positive number of requests per second, e.g. 500 or 0.5")),
    }
}
