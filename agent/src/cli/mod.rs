//! The agent's command line: flags as the user types them ([`Args`]), checked and turned into the pipeline's
//! configuration ([`Args::capture_config`]). No I/O happens here.

pub mod units;

use std::path::PathBuf;

use clap::Parser;
use tapedeck_model::segment::SegmentWriterConfig;

use crate::pipeline::CaptureConfig;

/// tapedeck agent: records HTTP/1.x and HTTP/2 exchanges from packet captures into segment files.
///
/// Reads pcap or pcapng files (or a pipe from `tcpdump -w -`), reassembles TCP, recognises HTTP by content on any
/// port, and writes every request/response exchange to zstd-compressed segment files in --out. Nothing is ever
/// dropped silently: a summary of packets, flows, exchanges, gaps, parse errors and truncations is printed at the
/// end (and written as JSON with --stats-json).
///
/// Examples:
///   agent --pcap capture.pcap --out segments/
///   tcpdump -i eth0 -w - 'tcp port 80' | agent --pcap - --out segments/
///
/// Exit status: 0 when every input was read (even in part: damage is reported and what came before it is kept),
/// 1 when an input could not be read at all (missing, not a capture) or segments could not be written, 2 for bad
/// flags.
#[derive(Debug, Parser)]
#[command(name = "agent", version, verbatim_doc_comment)]
pub struct Args {
    /// A pcap or pcapng file to read; `-` reads standard input. Repeat for several files: they are read in the
    /// order given as one continuous capture.
    #[arg(long = "pcap", value_name = "FILE", required_unless_present = "print_masking")]
    pub pcap: Vec<PathBuf>,

    /// Directory for segment files (created with mode 0700 if missing).
    #[arg(long, value_name = "DIR", required_unless_present = "print_masking")]
    pub out: Option<PathBuf>,

    /// A masking policy file (TOML): `mode = "extend"` (default: its rules are added to the default policy, a
    /// rule named like a default rule replaces it) or `"replace"`, and `[[rule]]` tables. Unknown keys are errors.
    /// See `--print-masking` for the effective rules.
    #[arg(long, value_name = "FILE")]
    pub mask_policy: Option<PathBuf>,

    /// Turn the default masking policy off (credentials in headers and cookies, secret-like JSON keys, form
    /// fields and query parameters, payment card numbers). Without --mask-policy, nothing is masked.
    #[arg(long)]
    pub no_default_masking: bool,

    /// The key of `hash` masking rules (HMAC-SHA256; at least 16 bytes; one trailing newline ignored). Without
    /// it, the TAPEDECK_MASK_KEY environment variable is used. The key is never written to segments.
    #[arg(long, value_name = "FILE")]
    pub mask_key_file: Option<PathBuf>,

    /// Print the effective masking rules (as a policy file) and their fingerprint, then exit.
    #[arg(long)]
    pub print_masking: bool,

    /// Bytes of each request and response body to keep; longer bodies are cut, keep their full length and are
    /// flagged `truncated`. Accepts units: 64KiB, 1MiB, 1000000.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = units::parse_size)]
    pub max_body: u64,

    /// Write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,

    /// Start a new segment file when the current one passes this size.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = units::parse_size)]
    pub segment_max_bytes: u64,

    /// Start a new segment file when the exchanges in the current one span more than this capture time
    /// (e.g. 30s, 10m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = units::parse_duration)]
    pub segment_max_age: std::time::Duration,

    /// zstd compression level of segment blocks (1 fastest ... 19 smallest).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,

    /// Maximum TCP connections tracked at once; beyond it the least recently active is evicted (counted, and its
    /// open exchanges flagged `evicted`).
    #[arg(long, value_name = "N", default_value_t = 262_144)]
    pub max_flows: usize,

    /// Out-of-order bytes buffered per connection direction before the missing bytes are declared a gap.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = units::parse_size)]
    pub max_flow_buffer: u64,

    /// Out-of-order bytes buffered over all connections (the reassembly memory cap).
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = units::parse_size)]
    pub max_buffered: u64,

    /// Close a connection after this long without a packet (capture time).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = units::parse_duration)]
    pub idle_timeout: std::time::Duration,

    /// A label added to every exchange, as NAME=VALUE (repeatable), e.g. --label node=worker-3.
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = units::parse_label)]
    pub labels: Vec<(String, String)>,

    /// Do not print the summary at the end.
    #[arg(long, short)]
    pub quiet: bool,

    /// Log format on standard error.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Args {
    /// The pipeline configuration these flags describe.
    pub fn capture_config(&self) -> CaptureConfig {
        let mut cfg = CaptureConfig::default();
        let max_body = usize::try_from(self.max_body).unwrap_or(usize::MAX);
        cfg.session.http1.max_body = max_body;
        cfg.session.h2.max_body = max_body;
        cfg.reassembly.max_flows = self.max_flows.max(1);
        cfg.reassembly.max_ooo_bytes_per_direction = usize::try_from(self.max_flow_buffer).unwrap_or(usize::MAX);
        cfg.reassembly.max_buffered_bytes_total = usize::try_from(self.max_buffered).unwrap_or(usize::MAX);
        cfg.reassembly.idle_timeout_nanos = u64::try_from(self.idle_timeout.as_nanos()).unwrap_or(u64::MAX);
        cfg.writer = SegmentWriterConfig {
            dir: self.out.clone().unwrap_or_default(),
            max_file_bytes: self.segment_max_bytes,
            max_file_age: self.segment_max_age,
            zstd_level: self.zstd_level,
            labels: self.labels.clone(),
            ..SegmentWriterConfig::default()
        };
        cfg.labels = self.labels.clone();
        cfg
    }
}
