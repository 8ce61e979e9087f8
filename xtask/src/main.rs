//! Developer tasks for tapedeck (`cargo xtask <command>`): the README's two commands (`demo`, `test`: both build
//! the agent without libpcap where libpcap-dev is missing, and say so), man pages and shell completions (`man`),
//! regenerating the golden captures in testdata/ and making large captures for benchmarks. The last two run real
//! programs (tcpdump, nginx, curl, nghttp2, tshark) inside a private network namespace they create and delete, so
//! they need root.

mod bench;
mod bench_live;
mod bench_masking;
mod bench_replay;
mod capture;
mod demo;
mod fuzz;
mod hostile;
mod ingest;
mod libpcap;
mod man;

mod netns;
mod oracle;
mod proc;
mod pyapps;
mod servers;
mod soak;
mod testdata;
mod tools;
mod workspace_test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tapedeck developer tasks.
#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about,
    long_about = None,
    after_help = "gen-testdata and bench-capture need root: they create (and delete) a network namespace and run tcpdump in it.\n`fuzz` needs the nightly toolchain and cargo-fuzz.\nRun `cargo xtask <command> --help` for what each does and which apt packages it needs."
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// The main job end to end on the bundled captures: builds the release binaries, records every capture in
    /// testdata/ into segments under target/demo/, and lists the exchanges with `replayer inspect`. Builds the
    /// agent without libpcap (no live capture through libpcap) when libpcap-dev is missing, and says so.
    Demo,
    /// The tests: `cargo test --workspace [ARGS]`. When libpcap does not link here (no libpcap-dev), says what is
    /// left out and how to add it, and tests the agent without its `libpcap` feature. ARGS after `--` go to cargo
    /// (`cargo xtask test -- -p tapedeck-model` tests only the model crate). The exit status is cargo's.
    Test {
        /// Arguments for `cargo test`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Man pages and shell completions (bash, zsh, fish) for agent and replayer, from their command-line
    /// definitions: DIR/man/man1/*.1 and DIR/completions/{bash,zsh,fish}/.
    Man {
        /// Output directory.
        #[arg(long, default_value_os_t = man::default_out())]
        out: PathBuf,
    },
    /// The throughput the default masking policy keeps: `agent --pcap` with masking off and with the default
    /// policy, alternately in pairs; the median of the pair ratios (issue 8's figure).
    BenchMasking {
        /// The capture to read (`cargo xtask bench-capture`).
        #[arg(long)]
        pcap: PathBuf,
        /// Pairs of runs.
        #[arg(long, default_value_t = 10)]
        pairs: usize,
    },
    /// Time `agent --pcap` on a capture (throughput, peak RSS, segment size), with tshark and tcpflow on the same
    /// file as references. Make the capture with `cargo xtask bench-capture`.
    BenchIngest {
        /// The capture to read.
        #[arg(long)]
        pcap: PathBuf,
        /// Megabytes of the capture for tshark (it is much slower than the agent).
        #[arg(long, default_value_t = 100)]
        tshark_slice_mb: u64,
        /// Runs of the agent.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Extra flags for the agent, after `--`.
        #[arg(last = true)]
        agent_args: Vec<String>,
    },
    /// Regenerate the golden captures in testdata/ (needs root).
    ///
    /// Creates a network namespace with a 1500-byte-MTU loopback, runs nginx (HTTP/1.x, IPv4 and IPv6) and
    /// nghttpd (h2c) on fixed ports in it, and for each capture starts tcpdump, runs real clients (curl,
    /// nghttp, a python3 socket client for pipelining), and stops tcpdump with SIGINT. Writes each capture,
    /// `<capture>.tshark.tsv` (tshark's reading of it: the golden expectations), and README.md with the exact
    /// commands, the nginx config and program versions. Needs: iproute2, procps, tcpdump, tshark,
    /// wireshark-common (editcap, capinfos), nginx, curl, nghttp2-client, nghttp2-server, microsocks, python3.
    /// Optional pip packages: hypercorn (h2c-upgrade.pcap; nghttpd does not answer `Upgrade: h2c`) and
    /// grpcio (grpc-unary-stream.pcap); without them those captures are skipped and the README says so.
    GenTestdata {
        /// Output directory.
        #[arg(long, default_value_os_t = testdata::default_out())]
        out: PathBuf,
        /// Make only this capture (repeatable), e.g. `--only masking-planted.pcap`; the other files in the
        /// output directory, README.md included, are left as they are.
        #[arg(long, value_name = "NAME")]
        only: Vec<String>,
    },
    /// Write the hostile captures of the memory-bounds test (no root needed): half-open connections, a SYN
    /// flood, an endless chunked body, a 10 MB header line, many HTTP/2 streams, HPACK table-size abuse and
    /// segments far ahead of the window, one `<scenario>.pcap` each. Deterministic for a seed.
    GenHostile {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// The smaller sizes `agent/tests/memory_bounds.rs` uses instead of the issue's.
        #[arg(long)]
        small: bool,
        /// Seed of the generators.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Make a large keep-alive capture for benchmarks (needs root).
    ///
    /// HTTP/1.1: wrk -t2 -c16 against nginx serving a 600-byte file. With --h2: h2load -t2 -c16 -m10 (h2c
    /// prior knowledge) against nghttpd. tcpdump (-s 0 -B 65536) writes --out until it reaches --size or
    /// --max-seconds pass; then prints the packet count and tcpdump's "dropped by kernel".
    BenchCapture {
        /// Target file size: bytes, or with a binary suffix K, M, G (e.g. 1G, 60M).
        #[arg(long, value_parser = bench::parse_size)]
        size: u64,
        /// Output capture file.
        #[arg(long)]
        out: PathBuf,
        /// Capture h2c (nghttpd + h2load) instead of HTTP/1.1 (nginx + wrk).
        #[arg(long)]
        h2: bool,
        /// Upper bound on the load phase, in seconds.
        #[arg(long, default_value_t = 900)]
        max_seconds: u64,
    },
    /// The live agent under wrk load on a veth pair, against `tcpdump -w` (needs root, nginx, wrk, tcpdump).
    ///
    /// Two network namespaces joined by a veth pair, nginx serving a 128-byte file in one, wrk (HTTP/1.1
    /// keep-alive) in the other, the release agent on the client's veth. Prints a markdown table: wrk's requests,
    /// exchanges written, kernel and queue drops, CPU seconds (utime + stime) and CPU per 10k requests/s, for the
    /// agent and for tcpdump.
    BenchLive {
        /// Seconds of load per capturer.
        #[arg(long, default_value_t = 15)]
        secs: u64,
        /// An extra flag for the agent (repeat: `--agent-arg=--workers --agent-arg=1`).
        #[arg(long = "agent-arg", allow_hyphen_values = true)]
        agent_arg: Vec<String>,
        /// Load two ports and give the agent `--filter 'tcp port P'` for the first.
        #[arg(long)]
        half_filter: bool,
        /// Use this agent binary instead of building the release one.
        #[arg(long)]
        agent_bin: Option<PathBuf>,
        /// wrk connections per port.
        #[arg(long, default_value_t = 32)]
        connections: u32,
    },
    /// Replayer speed against wrk, and its schedule lag at 1000 req/s (no root; needs nginx and wrk).
    ///
    /// Starts nginx on a free 127.0.0.1 port serving a 600-byte file; writes a segment of --requests GETs over 16
    /// recorded connections; runs `wrk -c16 -t2` for reference and `replayer run --time-scale max --concurrency 16`;
    /// then replays --rate-secs seconds of 1000 req/s at 1x and reports the schedule lag. Prints a markdown table.
    BenchReplay {
        /// Requests in the throughput segment.
        #[arg(long, default_value_t = 300_000)]
        requests: u64,
        /// Seconds of wrk.
        #[arg(long, default_value_t = 10)]
        wrk_secs: u64,
        /// Seconds of the 1000 req/s segment.
        #[arg(long, default_value_t = 10)]
        rate_secs: u64,
        /// The replayer binary (default: build and use target/release/replayer).
        #[arg(long)]
        replayer: Option<PathBuf>,
    },
    /// Fuzz every parser for a while (needs nightly and cargo-fuzz; no root).
    ///
    /// Regenerates the seed corpora under fuzz/corpus/ (git-ignored) from testdata/ and, if present, the shared
    /// capture corpus next to the checkout; builds the targets of fuzz/ (no sanitizer, debug assertions on) and
    /// runs each for --secs seconds. Fails listing the targets that crashed and their crash files under
    /// fuzz/artifacts/<target>/.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Run only this target (pcap_reader, decode, reassembly, http1, http2, grpc, segment_reader,
        /// segment_blocks, replayer_args).
        #[arg(long)]
        target: Option<String>,
        /// Capture directories to make seeds from (default: the shared corpus next to the checkout, if any).
        #[arg(long)]
        seeds_from: Vec<PathBuf>,
    },
    /// Soak test (needs root): the release agent on a veth under steady mixed HTTP/1.1 and h2c load (nginx,
    /// nghttpd, rate-limited curl and nghttp, a few hundred requests per second) with small rotation and retention by
    /// bytes; samples RSS, open fds and CPU every 10 s and prints a table with slopes and a verdict ("flat" when
    /// RSS grows under 5% after the first minute and fds do not grow); writes <out>/soak.json. Needs iproute2,
    /// nginx, nghttp2-server, nghttp2-client, curl.
    Soak {
        /// Minutes of load.
        #[arg(long, default_value_t = 15)]
        minutes: u64,
        /// Work directory (segments, logs, soak.json); default target/soak/<unix time>.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Agent binary to use instead of building target/release/agent.
        #[arg(long)]
        agent: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Test { args } => {
            return workspace_test::test(&args).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            });
        }
        Task::Man { out } => man::man(&out),
        Task::Demo => demo::demo(),
        Task::BenchIngest { pcap, tshark_slice_mb, runs, agent_args } => {
            ingest::bench_ingest(&ingest::IngestOptions { pcap, tshark_slice_mb, agent_args, runs })
        }
        Task::BenchMasking { pcap, pairs } => {
            bench_masking::bench_masking(&bench_masking::MaskingBenchOptions { pcap, pairs })
        }
        Task::GenTestdata { out, only } => testdata::gen_testdata(&out, &only),
        Task::GenHostile { out, small, seed } => hostile::gen_hostile(&out, small, seed),
        Task::BenchCapture { size, out, h2, max_seconds } => {
            bench::bench_capture(&bench::BenchOptions { size, out, h2, max_seconds })
        }
        Task::BenchLive { secs, agent_arg, half_filter, agent_bin, connections } => {
            bench_live::bench_live(&bench_live::LiveBenchOptions {
                secs,
                agent_args: agent_arg,
                half_filter,
                agent_bin,
                connections,
            })
        }
        Task::BenchReplay { requests, wrk_secs, rate_secs, replayer } => {
            bench_replay::bench_replay(&bench_replay::BenchReplayOptions { requests, wrk_secs, rate_secs, replayer })
        }
        Task::Fuzz { secs, target, seeds_from } => {
            fuzz::fuzz(&fuzz::FuzzOptions { secs, target, seed_dirs: seeds_from })
        }
        Task::Soak { minutes, out, agent } => soak::soak(&soak::SoakOptions { minutes, out, agent }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
