//! The agent's command line: flags as the user types them ([`Args`]), checked and turned into the pipeline's
//! configuration ([`Args::capture_config`]). No I/O happens here.

pub mod config;
pub mod units;

use std::path::PathBuf;

use clap::Parser;
use tapedeck_model::segment::SegmentWriterConfig;

use crate::live::LiveOptions;
use crate::pipeline::{CaptureConfig, ServicesConfig};
use crate::retention::RetentionConfig;
use crate::service::ServiceMap;
use crate::source::capture::{Backend, BackendOptions};
use crate::source::live::LiveConfig;

/// What `agent --version` prints after the name: the package version, the git revision it was built from
/// (build-support/git_rev.rs) and the capture backends compiled in, e.g. `0.1.0 (git 567f71f, ebpf: yes,
/// libpcap: yes)`.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let yes = |b: bool| if b { "yes" } else { "no" };
    VERSION.get_or_init(|| {
        format!(
            "{} (git {}, ebpf: {}, libpcap: {})",
            env!("CARGO_PKG_VERSION"),
            env!("TAPEDECK_GIT_REV"),
            yes(crate::source::ebpf::built_in()),
            yes(crate::source::live::built_in())
        )
    })
}

/// tapedeck agent: records HTTP/1.x and HTTP/2 exchanges from packet captures or live interfaces into segment files.
///
/// Reads pcap or pcapng files (or a pipe from `tcpdump -w -`, or network interfaces), reassembles TCP, recognises HTTP by content on any
/// port, and writes every request/response exchange to zstd-compressed segment files in --out. Nothing is ever
/// dropped silently: a summary of packets, flows, exchanges, gaps, parse errors and truncations is printed at the
/// end (and written as JSON with --stats-json).
///
/// Examples:
///   agent --pcap capture.pcap --out segments/
///   tcpdump -i eth0 -U -w - 'tcp port 80' | agent --pcap - --out segments/
///   agent --pcap capture.pcap --filter 'tcp port 80' --out segments/
///   agent --iface eth0 --filter 'tcp port 80' --out segments/ --metrics-addr 0.0.0.0:9090
///
/// Live capture (--iface) starts with a line on standard error naming the interfaces and their link types, the
/// backend, the filter and --out (not with --quiet or --log-format json), and runs until SIGTERM or SIGINT: it
/// then stops capturing, writes what is in flight, finishes every segment and exits 0 (within --shutdown-timeout;
/// a second signal exits at once with 130).
///
/// Configuration: every flag below (except --config and --print-*) is also a key of the --config file (TOML, the
/// flag's name without dashes: `iface = ["eth0"]`, `max-body = "64KiB"`, `quiet = true`) and an environment
/// variable (TAPEDECK_ and the name in capitals: TAPEDECK_OUT, TAPEDECK_IFACE=eth0,eth1). A flag wins over the
/// environment, which wins over the file, which wins over the default. `--print-config` shows the result.
///
/// Signals: SIGHUP re-reads the masking policy file and the --service-map file (and reopens --log-file).
///
/// Exit status: 0 when every input was read (even in part: damage is reported and what came before it is kept),
/// 1 when an input could not be read at all (missing, not a capture, an interface that cannot be opened) or
/// segments could not be written, 2 for bad flags.
#[derive(Debug, Parser)]
#[command(name = "agent", version = version(), verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("input").required(true).multiple(true).args(["pcap", "iface", "print_masking", "print_config"])))]
pub struct Args {
    /// A pcap or pcapng file to read; `-` reads standard input. Repeat for several files: they are read in the
    /// order given as one continuous capture (give rotated files in capture order: a file that starts before the
    /// end of the files given before it is warned about). Either --pcap or --iface.
    #[arg(long = "pcap", value_name = "FILE", env = "TAPEDECK_PCAP", conflicts_with = "iface")]
    pub pcap: Vec<PathBuf>,

    /// Capture live from this network interface (libpcap; needs CAP_NET_RAW). Repeat for several interfaces, or
    /// give `any` for all of them. Either --pcap or --iface.
    #[arg(long = "iface", value_name = "NAME", env = "TAPEDECK_IFACE", value_delimiter = ',')]
    pub iface: Vec<String>,

    /// A BPF filter expression, e.g. 'tcp port 80 or tcp port 8080': packets that do not match are not read.
    /// Live capture: run by libpcap in the kernel (or by the eBPF program, see --backend). --pcap files and
    /// pipes: run on every packet as `tcpdump -r FILE EXPR` would (rejected packets are counted as
    /// `filtered_out`); a build without libpcap understands only 'tcp port N' terms joined by 'or' there.
    #[arg(long, value_name = "EXPR", value_parser = crate::source::filter::check_expression, env = "TAPEDECK_FILTER")]
    pub filter: Option<String>,

    /// Live capture: bytes kept of each packet (longer packets are cut; the loss is counted as gaps).
    #[arg(long, value_name = "SIZE", default_value = "262144", value_parser = units::parse_size, conflicts_with = "pcap", env = "TAPEDECK_SNAPLEN")]
    pub snaplen: u64,

    /// Live capture: the kernel's capture buffer per interface; larger absorbs longer bursts before the kernel
    /// drops packets (counted in tapedeck_kernel_drops_total).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = units::parse_size, conflicts_with = "pcap", env = "TAPEDECK_BUFFER_SIZE")]
    pub buffer_size: u64,

    /// Live capture: the capture backend. `pcap`: libpcap. `ebpf`: tapedeck's own TC eBPF program with a ring
    /// buffer (TCP only; needs root or CAP_BPF with CAP_NET_ADMIN; filters: --ebpf-port, --ebpf-cidr, or
    /// --filter 'tcp port N [or tcp port M ...]'). `auto`: eBPF when the agent, kernel and privileges allow it,
    /// else libpcap (one log line says which and why). See docs/ebpf.md. `agent --version` says which of the two
    /// this build has (libpcap is the cargo feature `libpcap`, default; eBPF needs the BPF toolchain at build time).
    #[arg(
        long,
        value_enum,
        value_name = "BACKEND",
        default_value = "pcap",
        conflicts_with = "pcap",
        env = "TAPEDECK_BACKEND"
    )]
    pub backend: Backend,

    /// Live capture: keep only TCP packets from or to this port (repeatable); checked in the kernel by the eBPF
    /// backend, turned into a BPF filter for libpcap.
    #[arg(
        long = "ebpf-port",
        value_name = "PORT",
        conflicts_with = "pcap",
        env = "TAPEDECK_EBPF_PORT",
        value_delimiter = ','
    )]
    pub ebpf_port: Vec<u16>,

    /// Live capture: keep only TCP packets from or to this address range, e.g. 10.0.0.0/8 or fd00::/8
    /// (repeatable; with --ebpf-port both must match).
    #[arg(
        long = "ebpf-cidr",
        value_name = "PREFIX",
        conflicts_with = "pcap",
        env = "TAPEDECK_EBPF_CIDR",
        value_delimiter = ','
    )]
    pub ebpf_cidr: Vec<String>,

    /// Live capture, eBPF backend: the ring buffer per interface (a power of two; default 16MiB). Packets that
    /// find it full are lost and counted (tapedeck_ebpf_reserve_failures_total).
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size, conflicts_with = "pcap", env = "TAPEDECK_EBPF_RING_SIZE")]
    pub ebpf_ring_size: Option<u64>,

    /// Live capture, eBPF backend: wake the reader once this many bytes wait in the ring (default a quarter of
    /// the ring, at most 256KiB; smaller batches are read every 10 ms).
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size, conflicts_with = "pcap", env = "TAPEDECK_EBPF_WAKEUP_BYTES")]
    pub ebpf_wakeup_bytes: Option<u64>,

    /// Live capture: serve Prometheus metrics on /metrics and a health check on /healthz at this address,
    /// e.g. 0.0.0.0:9090.
    #[arg(long, value_name = "ADDR", conflicts_with = "pcap", env = "TAPEDECK_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Live capture: delete finished segment files in --out (and its service directories) older than this
    /// (e.g. 24h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = units::parse_duration, conflicts_with = "pcap", env = "TAPEDECK_RETAIN_AGE")]
    pub retain_age: Option<std::time::Duration>,

    /// Live capture: delete the oldest finished segment files in --out (and its service directories) while all
    /// of them together are larger than this (e.g. 10GiB).
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size, conflicts_with = "pcap", env = "TAPEDECK_RETAIN_BYTES")]
    pub retain_bytes: Option<u64>,

    /// Live capture: after SIGTERM or SIGINT, exit with status 1 if finishing takes longer than this.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = units::parse_duration, env = "TAPEDECK_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: std::time::Duration,

    /// Directory for segment files (created with mode 0700 if missing).
    #[arg(long, value_name = "DIR", required_unless_present_any = ["print_masking", "print_config"], env = "TAPEDECK_OUT")]
    pub out: Option<PathBuf>,

    /// A masking policy file (TOML): `mode = "extend"` (default: its rules are added to the default policy, a
    /// rule named like a default rule replaces it) or `"replace"`, and `[[rule]]` tables. Unknown keys are errors.
    /// See `--print-masking` for the effective rules.
    #[arg(long, value_name = "FILE", env = "TAPEDECK_MASK_POLICY")]
    pub mask_policy: Option<PathBuf>,

    /// Turn the default masking policy off (credential headers, cookie values, token-like JSON keys, form fields
    /// and query parameters, JWTs, bearer tokens and cloud keys anywhere: keyed `tdk_` tokens; passwords and card
    /// numbers: `[REDACTED]`). Without --mask-policy, nothing is masked.
    #[arg(long, env = "TAPEDECK_NO_DEFAULT_MASKING")]
    pub no_default_masking: bool,

    /// The key of `hash` masking rules (HMAC-SHA256; at least 16 bytes; one trailing newline ignored); created
    /// with a random key (mode 0600) if missing. Without it: TAPEDECK_MASK_KEY, else the installation's key file,
    /// created on first start: $STATE_DIRECTORY/mask.key, $XDG_STATE_HOME/tapedeck/mask.key, for root
    /// /etc/tapedeck/mask.key, else ~/.local/state/tapedeck/mask.key. Its path is shown at start; the key is
    /// never written to segments, and a key file inside --out is refused.
    #[arg(long, value_name = "FILE", env = "TAPEDECK_MASK_KEY_FILE")]
    pub mask_key_file: Option<PathBuf>,

    /// Print the effective masking rules (as a policy file) and their fingerprint, then exit.
    #[arg(long)]
    pub print_masking: bool,

    /// Bytes of each request and response body to keep; longer bodies are cut, keep their full length and are
    /// flagged `truncated`. Accepts units: 64KiB, 1MiB, 1000000.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = units::parse_size, env = "TAPEDECK_MAX_BODY")]
    pub max_body: u64,

    /// Write the run summary as JSON to this file.
    #[arg(long, value_name = "FILE", env = "TAPEDECK_STATS_JSON")]
    pub stats_json: Option<PathBuf>,

    /// Start a new segment file when the current one passes this size.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = units::parse_size, env = "TAPEDECK_SEGMENT_MAX_BYTES")]
    pub segment_max_bytes: u64,

    /// Start a new segment file when the exchanges in the current one span more than this capture time
    /// (e.g. 30s, 10m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = units::parse_duration, env = "TAPEDECK_SEGMENT_MAX_AGE")]
    pub segment_max_age: std::time::Duration,

    /// Write the segments of each service in a subdirectory of --out of its own (created 0700), named by the
    /// server's address and port (`10.0.0.5_8080`, IPv6 `fd00--1_443`) or by a --service-map label. Rotation,
    /// retention and `replayer` work across them. See docs/services.md.
    #[arg(long, env = "TAPEDECK_SPLIT_BY_SERVICE")]
    pub split_by_service: bool,

    /// A service map (TOML): `[[service]]` tables with a `label` and an `addr = "10.0.0.5:8080"` or a
    /// `cidr = "10.1.0.0/16"` with an optional `port`; the first match names the service's directory, endpoints
    /// matching none are named by address and port. Implies --split-by-service. Re-read on SIGHUP.
    #[arg(long, value_name = "FILE", env = "TAPEDECK_SERVICE_MAP")]
    pub service_map: Option<PathBuf>,

    /// With --split-by-service: segment writers open at once, at most (each holds up to about two segment blocks
    /// and a zstd context); past it the least recently used one is finished (counted).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096), env = "TAPEDECK_MAX_OPEN_SERVICES")]
    pub max_open_services: u32,

    /// zstd compression level of segment blocks (1 fastest ... 19 smallest).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=19), env = "TAPEDECK_ZSTD_LEVEL")]
    pub zstd_level: i32,

    /// Maximum TCP connections tracked at once; beyond it the least recently active is evicted (counted, and its
    /// open exchanges flagged `evicted`).
    #[arg(long, value_name = "N", default_value_t = 262_144, env = "TAPEDECK_MAX_FLOWS")]
    pub max_flows: usize,

    /// Out-of-order bytes buffered per connection direction before the missing bytes are declared a gap.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = units::parse_size, env = "TAPEDECK_MAX_FLOW_BUFFER")]
    pub max_flow_buffer: u64,

    /// Out-of-order bytes buffered over all connections (the reassembly memory cap).
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = units::parse_size, env = "TAPEDECK_MAX_BUFFERED")]
    pub max_buffered: u64,

    /// Close a connection after this long without a packet (capture time).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = units::parse_duration, env = "TAPEDECK_IDLE_TIMEOUT")]
    pub idle_timeout: std::time::Duration,

    /// A label added to every exchange, as NAME=VALUE (repeatable), e.g. --label node=worker-3.
    #[arg(long = "label", value_name = "NAME=VALUE", value_parser = units::parse_label, env = "TAPEDECK_LABEL")]
    pub labels: Vec<(String, String)>,

    /// Do not print the summary at the end.
    #[arg(long, short, env = "TAPEDECK_QUIET")]
    pub quiet: bool,

    /// Log format on standard error (or --log-file).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"], env = "TAPEDECK_LOG_FORMAT")]
    pub log_format: String,

    /// Write logs to this file (appending) instead of standard error; SIGHUP reopens it (for log rotation).
    #[arg(long, value_name = "FILE", env = "TAPEDECK_LOG_FILE")]
    pub log_file: Option<PathBuf>,

    /// Worker threads that reassemble and parse; connections are spread over them by address pair. Default: the
    /// cores available. The --max-flows and --max-buffered caps are shared out among them.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024), env = "TAPEDECK_WORKERS")]
    pub workers: Option<u32>,

    /// Live capture and streaming --pcap inputs (`-`, FIFOs): flush the open segment block to disk this often
    /// while exchanges trickle in, so that a kill loses at most about this much however quiet the traffic.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = units::parse_duration, env = "TAPEDECK_FLUSH_INTERVAL")]
    pub flush_interval: std::time::Duration,

    /// Read settings from this TOML file (keys are the flag names; unknown keys are errors). Flags and
    /// environment variables override it.
    #[arg(long, value_name = "FILE", env = "TAPEDECK_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (flags, environment, --config file, defaults) as a TOML file that
    /// --config accepts, then exit.
    #[arg(long)]
    pub print_config: bool,
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
        cfg.workers = self.workers();
        cfg.flush_interval = Some(self.flush_interval);
        cfg.filter = self.filter.clone();
        if self.split_by_service || self.service_map.is_some() {
            // The map itself is read by the caller (no I/O here): ServiceMap::load(map_file).
            cfg.services = Some(ServicesConfig {
                map: ServiceMap::default(),
                map_file: self.service_map.clone(),
                max_open: self.max_open_services as usize,
            });
        }
        cfg
    }

    /// Worker threads: --workers, or the cores available.
    pub fn workers(&self) -> usize {
        self.workers.map_or_else(crate::shard::default_workers, |n| n as usize).max(1)
    }

    /// The live run these flags describe, or why they do not make sense together.
    pub fn live_options(&self) -> Result<LiveOptions, String> {
        if self.iface.len() > 1 && self.iface.iter().any(|i| i == "any") {
            return Err("--iface any already captures every interface; give it alone".into());
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.iface.iter().find(|i| !seen.insert(i.as_str())) {
            return Err(format!("--iface {dup} is given twice"));
        }
        let snaplen = u32::try_from(self.snaplen)
            .ok()
            .filter(|s| (64..=262_144).contains(s))
            .ok_or_else(|| format!("--snaplen {} must be between 64 and 262144", self.snaplen))?;
        let buffer_size = u32::try_from(self.buffer_size)
            .ok()
            .filter(|b| *b >= 64 << 10 && *b <= i32::MAX as u32)
            .ok_or_else(|| format!("--buffer-size {} must be between 64KiB and 2GiB", self.buffer_size))?;
        let (backend, filter) = BackendOptions::from_flags(
            self.backend,
            &self.ebpf_port,
            &self.ebpf_cidr,
            self.ebpf_ring_size,
            self.ebpf_wakeup_bytes,
            self.filter.as_deref(),
        )?;
        let interfaces = self
            .iface
            .iter()
            .map(|name| LiveConfig { filter: filter.clone(), snaplen, buffer_size, ..LiveConfig::new(name.clone()) })
            .collect();
        let mut opts = LiveOptions::new(interfaces, self.capture_config());
        opts.flush_interval = self.flush_interval;
        opts.retention = RetentionConfig { max_age: self.retain_age, max_bytes: self.retain_bytes };
        opts.backend = backend;
        opts.announce = !self.quiet && self.log_format != "json";
        Ok(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))
    }

    #[test]
    fn pcap_and_iface_are_exclusive_and_one_is_required() {
        let e = parse(&["--pcap", "a.pcap", "--iface", "eth0", "--out", "o"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(e.to_string().contains("--iface"), "{e}");
        let e = parse(&["--out", "o"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let msg = e.to_string();
        assert!(msg.contains("--pcap") && msg.contains("--iface"), "{msg}");
        // Live-only flags do not go with --pcap.
        for flag in [&["--retain-bytes", "1GiB"][..], &["--metrics-addr", "127.0.0.1:1"]] {
            let mut args = vec!["--pcap", "a.pcap", "--out", "o"];
            args.extend_from_slice(flag);
            let e = parse(&args).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict, "{flag:?}: {e}");
        }
    }

    #[test]
    fn live_flags_become_live_options() {
        let a = parse(&[
            "--iface",
            "eth0",
            "--iface",
            "eth1",
            "--out",
            "o",
            "--filter",
            "tcp port 80",
            "--buffer-size",
            "4MiB",
            "--retain-bytes",
            "10GiB",
            "--retain-age",
            "2h",
            "--metrics-addr",
            "127.0.0.1:9090",
        ])
        .unwrap();
        let o = a.live_options().unwrap();
        let names: Vec<&str> = o.interfaces.iter().map(|i| i.interface.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1"]);
        assert!(o.interfaces.iter().all(|i| i.snaplen == 262_144 && i.buffer_size == 4 << 20));
        assert!(o.interfaces.iter().all(|i| i.filter.as_deref() == Some("tcp port 80")));
        assert_eq!(o.retention.max_bytes, Some(10 << 30));
        assert_eq!(o.retention.max_age, Some(std::time::Duration::from_secs(7200)));
        assert_eq!(a.metrics_addr, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(o.capture.writer.dir, PathBuf::from("o"));
    }

    #[test]
    fn service_flags_become_the_services_config() {
        let plain = parse(&["--pcap", "a.pcap", "--out", "o"]).unwrap();
        assert!(plain.capture_config().services.is_none());
        let split = parse(&["--pcap", "a.pcap", "--out", "o", "--split-by-service"]).unwrap();
        let s = split.capture_config().services.unwrap();
        assert_eq!((s.max_open, s.map_file), (64, None));
        // A map implies splitting.
        let mapped =
            parse(&["--pcap", "a.pcap", "--out", "o", "--service-map", "m.toml", "--max-open-services", "3"]).unwrap();
        let s = mapped.capture_config().services.unwrap();
        assert_eq!((s.max_open, s.map_file), (3, Some(PathBuf::from("m.toml"))));
        let e = parse(&["--pcap", "a.pcap", "--out", "o", "--max-open-services", "0"]).unwrap_err();
        assert!(e.to_string().contains("max-open-services"), "{e}");
    }

    #[test]
    fn nonsense_live_combinations_are_refused() {
        let any = parse(&["--iface", "any", "--iface", "eth0", "--out", "o"]).unwrap();
        assert!(any.live_options().unwrap_err().contains("any"));
        let twice = parse(&["--iface", "eth0", "--iface", "eth0", "--out", "o"]).unwrap();
        assert!(twice.live_options().unwrap_err().contains("twice"));
        let snap = parse(&["--iface", "eth0", "--out", "o", "--snaplen", "10"]).unwrap();
        assert!(snap.live_options().unwrap_err().contains("--snaplen"));
        let snap = parse(&["--iface", "eth0", "--out", "o", "--snaplen", "1MiB"]).unwrap();
        assert!(snap.live_options().unwrap_err().contains("--snaplen"));
    }
}
