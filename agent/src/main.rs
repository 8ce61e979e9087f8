//! `agent`: parses the command line and runs the capture pipeline. See `agent --help`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc: exchanges are built on the capture thread and freed on the writer thread, a pattern glibc's malloc
/// serves poorly (arena locking, consolidation); mimalloc's per-thread free lists make it cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tapedeck_agent::cli::Args;
use tapedeck_agent::mask;
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
    let mut cfg = args.capture_config();
    cfg.masking = masker;
    let mut progress = TerminalProgress { enabled: std::io::stderr().is_terminal() && !args.quiet, shown: false };
    let summary = pipeline::run_files(&args.pcap, cfg, &mut progress)?;
    progress.clear();
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
    Ok(ExitCode::SUCCESS)
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
