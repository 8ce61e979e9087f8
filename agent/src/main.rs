//! `agent`: parses the command line and runs the capture pipeline on files or live interfaces. See `agent --help`.

use std::io::IsTerminal;
use std::process::ExitCode;

/// mimalloc: exchanges are built on the capture thread and freed on the writer thread, a pattern glibc's malloc
/// serves poorly (arena locking, consolidation); mimalloc's per-thread free lists make it cheap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tapedeck_agent::cli::Args;
use tapedeck_agent::cli::config::{self, FileConfig};
use tapedeck_agent::live;
use tapedeck_agent::logfile::LogFile;
use tapedeck_agent::mask;
use tapedeck_agent::metrics::{Metrics, MetricsServer};
use tapedeck_agent::pipeline::{self, Progress};
use tapedeck_agent::service::{ServiceMap, ServiceMapError};
use tapedeck_agent::signals;
use tapedeck_agent::summary;

fn main() -> ExitCode {
    let args = match config::load(std::env::args_os()) {
        Ok(a) => a,
        Err(e) => {
            e.print();
            return ExitCode::from(e.exit_code());
        }
    };
    if args.print_config {
        print!("{}", FileConfig::from_args(&args).to_toml());
        return ExitCode::SUCCESS;
    }
    let log_file = match init_logging(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("agent: {}", causes(&e));
            return ExitCode::from(1);
        }
    };
    match run(&args, log_file) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent: {}", causes(&e));
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args, log_file: Option<Arc<LogFile>>) -> anyhow::Result<ExitCode> {
    let masker = mask::setup(args.mask_policy.as_deref(), !args.no_default_masking, args.mask_key_file.as_deref())?;
    if args.print_masking {
        print!("{}", mask::describe(masker.as_ref()));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(origin) = masker.as_ref().and_then(|m| m.key_origin()) {
        if let (Some(key), Some(out)) = (origin.path(), &args.out) {
            mask::keyfile::check_outside(key, out)?;
        }
        if !args.quiet {
            eprintln!("agent: masking key: {origin}");
        }
    }
    let summary = if args.iface.is_empty() {
        let mut cfg = args.capture_config();
        cfg.masking = masker;
        if let Err(e) = load_service_map(&mut cfg) {
            eprintln!("agent: error: {e}");
            return Ok(ExitCode::from(2));
        }
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
        if let Err(e) = load_service_map(&mut opts.capture) {
            eprintln!("agent: error: {e}");
            return Ok(ExitCode::from(2));
        }
        run_live(args, opts, log_file)?
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

/// Live capture until SIGTERM/SIGINT, with metrics if asked, a watchdog bounding the shutdown, and reloads on
/// SIGHUP (masking policy, log file).
fn run_live(
    args: &Args,
    opts: live::LiveOptions,
    log_file: Option<Arc<LogFile>>,
) -> anyhow::Result<pipeline::RunSummary> {
    let signals = signals::install()?;
    let stop = Arc::clone(&signals.stop);
    let names: Vec<String> = opts.interfaces.iter().map(|i| i.interface.clone()).collect();
    let metrics = Arc::new(Metrics::with_workers(&names, opts.capture.workers));
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
    // Capabilities are per thread: this one never needs any (the capture thread drops its own once open).
    tapedeck_agent::privileges::spawn_unprivileged("shutdown-watchdog", move || {
        while !watched.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(grace);
        eprintln!("agent: shutdown took longer than {grace:?}; exiting without finishing");
        std::process::exit(1);
    })?;
    let (policy, default_masking, key_file) =
        (args.mask_policy.clone(), !args.no_default_masking, args.mask_key_file.clone());
    let on_reload: live::ReloadFn = Box::new(move || {
        if let Some(l) = &log_file {
            l.reopen().map_err(|e| format!("reopening the log file: {e}"))?;
        }
        let masking =
            mask::setup(policy.as_deref(), default_masking, key_file.as_deref()).map_err(|e| format!("{e:#}"))?;
        tracing::info!(
            fingerprint = masking.as_ref().map(|m| hex(&m.fingerprint())).unwrap_or_default(),
            "masking policy re-read"
        );
        Ok(live::Reloaded { masking })
    });
    let control = live::LiveControl { stop, reload: signals.reload, on_reload: Some(on_reload) };
    let summary = live::run_live(opts, control, metrics)?;
    drop(server);
    Ok(summary)
}

/// An error and its causes on one line, each cause once: most of the agent's errors already name their cause in
/// their message (`{path}: creating directory: {io error}`) and also return it as their source, so `{e:#}` would
/// repeat it; a cause whose text is already in the line is left out.
fn causes(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// Reads the --service-map file, when one is given.
fn load_service_map(cfg: &mut pipeline::CaptureConfig) -> Result<(), ServiceMapError> {
    if let Some(services) = &mut cfg.services
        && let Some(path) = &services.map_file
    {
        services.map = ServiceMap::load(path)?;
        tracing::info!(file = %path.display(), entries = services.map.entries().len(), "service map read");
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Logging on standard error, or to --log-file (returned, to be reopened on SIGHUP).
fn init_logging(args: &Args) -> anyhow::Result<Option<Arc<LogFile>>> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAPEDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let json = args.log_format == "json";
    match &args.log_file {
        Some(path) => {
            let file = LogFile::open(path).map_err(|e| anyhow::anyhow!("opening log file {}: {e}", path.display()))?;
            let f = Arc::clone(&file);
            let builder =
                tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(move || f.writer());
            if json {
                builder.json().init();
            } else {
                builder.with_target(false).init();
            }
            Ok(Some(file))
        }
        None => {
            // Colour only on a terminal (and not with NO_COLOR): a pipe or a file gets no escape codes.
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let builder =
                tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(std::io::stderr);
            if json {
                builder.json().init();
            } else {
                builder.without_time().with_target(false).init();
            }
            Ok(None)
        }
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
