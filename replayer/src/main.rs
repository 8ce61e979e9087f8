//! `replayer`: see `replayer --help`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tapedeck_replayer::cli::{Cli, Command};
use tapedeck_replayer::export::{ExportTargets, export};
use tapedeck_replayer::{inspect, run};

/// mimalloc: the send path allocates and frees small buffers per request on the runtime's threads; mimalloc's
/// per-thread free lists are cheaper there than glibc's malloc (measured: docs/replay-perf.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = match cli.command {
        Command::Inspect(opts) => match inspect::inspect(&opts, &mut out) {
            Ok(outcome) => {
                if outcome.problems > 0 {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                let _ = out.flush();
                eprintln!("replayer: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Run(opts) => match run::run(&opts, &mut out) {
            Ok(r) if r.judge.as_ref().is_some_and(|j| j.gates_failed()) => ExitCode::from(3),
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = out.flush();
                eprintln!("replayer: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Export(opts) => {
            let to = ExportTargets { har: opts.har, jsonl: opts.jsonl };
            let mut warn = |w: &str| eprintln!("replayer: warning: {w}");
            match export(&opts.paths, &to, &mut out, &mut warn) {
                Ok(stats) => {
                    let _ = out.flush();
                    eprintln!(
                        "replayer: exported {} exchanges from {} files ({} HAR entries, {} JSON lines)",
                        stats.exchanges, stats.files, stats.har.entries, stats.jsonl_lines
                    );
                    if stats.problems() > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
                }
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("replayer: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Mock(opts) => {
            let _ = out.flush();
            match tapedeck_replayer::mock::run(&opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("replayer: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    };
    let _ = out.flush();
    code
}
