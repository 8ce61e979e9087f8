//! `replayer`: see `replayer --help`.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tapedeck_replayer::cli::{Cli, Command};
use tapedeck_replayer::inspect;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { paths, json } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            match inspect::inspect(&paths, json, &mut out) {
                Ok(outcome) => {
                    let _ = out.flush();
                    if outcome.problems > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
                }
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("replayer: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
