//! `agent`: parses the command line and runs the capture pipeline on files or live interfaces. See `agent --help`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc: exchanges are built on the capture thread and freed on the writer thread, a pattern glibc's malloc
/// serves poorly (arena locking, consolidation); mimalloc's per-thread free lists make it cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tapedeck_agent::cli::Args;
use tapedeck_agent::live;
use tapedeck_agent::mask;
use tapedeck_agent::metrics::{Metrics, MetricsServer};
use tapedeck_agent::pipeline::{self, Progress};
use tapedeck_agent::summary;

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(&args.log_format);
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let masker = mask::setup(args.mask_policy.as_deref(), !args.no_default_masking, args.mask_key_file.as_deref())?;
    if args.print_masking {
        print!("{}", mask::describe(masker.as_ref()));
        return Ok(ExitCode::SUCCESS);
    }
    let summary = if args.iface.is_empty() {
        let mut cfg = args.capture_config();
        cfg.masking = masker;
        let mut progress = TerminalProgress { enabled: std::io::stderr().is_terminal() && !args.quiet, shown: false };
        let summary = pipeline::run_files(&args.pcap, cfg, &mut progress)?;
        progress.clear();
        summary
    } else {
        let mut opts = match args.live_options() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("agent: error: {e}");
                return Ok(ExitCode::from(2));
            }
        };
        opts.capture.masking = masker;
        run_live(args, opts)?
    };
    if let Some(path) = &args.stats_json {
        let json = serde_json::to_vec_pretty(&summary)?;
        std::fs::write(path, json).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    if !args.quiet {
        eprint!("{}", summary::render(&summary));
    }
    if summary.some_input_unreadable() {
        return Ok(ExitCode::from(1));
    }
    if summary.writer.write_errors > 0 {
        // Segments could not all be written (disk full, ...): the run went on, but exchanges were lost.
        return Ok(ExitCode::from(1));
    }
    if summary.live.is_some() && summary.inputs.iter().any(|i| i.error.is_some()) {
        // An interface failed while capturing (it went away): what was captured is written, but say so.
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Live capture until SIGTERM/SIGINT, with metrics if asked, and a watchdog bounding the shutdown.
fn run_live(args: &Args, opts: live::LiveOptions) -> anyhow::Result<pipeline::RunSummary> {
    let stop = live::install_signal_handlers()?;
    let names: Vec<String> = opts.interfaces.iter().map(|i| i.interface.clone()).collect();
    let metrics = Arc::new(Metrics::new(&names));
    let server = match args.metrics_addr {
        Some(addr) => Some(
            MetricsServer::start(addr, Arc::clone(&metrics))
                .map_err(|e| anyhow::anyhow!("serving metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    if let Some(s) = &server {
        tracing::info!("metrics on http://{}/metrics", s.local_addr());
    }
    let grace = args.shutdown_timeout;
    let watched = Arc::clone(&stop);
    std::thread::Builder::new().name("shutdown-watchdog".into()).spawn(move || {
        while !watched.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(grace);
        eprintln!("agent: shutdown took longer than {grace:?}; exiting without finishing");
        std::process::exit(1);
    })?;
    let summary = live::run_live(opts, stop, metrics)?;
    drop(server);
    Ok(summary)
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAPEDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.without_time().with_target(false).init();
    }
}

/// A one-line progress display on a terminal.
struct TerminalProgress {
    enabled: bool,
    shown: bool,
}

impl Progress for TerminalProgress {
    fn update(&mut self, input: &str, bytes: u64, exchanges: u64) {
        if self.enabled {
            eprint!("\r{input}: {:.1} MB read, {exchanges} exchanges   ", bytes as f64 / 1e6);
            self.shown = true;
        }
    }
}

impl TerminalProgress {
    fn clear(&mut self) {
        if self.shown {
            eprint!("\r{:60}\r", "");
        }
    }
}
