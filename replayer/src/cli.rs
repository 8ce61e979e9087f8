//! The replayer's command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// tapedeck replayer: reads recorded HTTP exchanges from segment files written by `agent`.
#[derive(Debug, Parser)]
#[command(name = "replayer", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the exchanges in segment files or directories of them.
    ///
    /// Damaged or unfinished segments (a writer that died) are read up to what is intact; a line on standard
    /// error names the file and says what was recovered. Exit status: 0 when everything was read, 1 when some
    /// file or block could not be, 2 for bad flags.
    Inspect {
        /// Segment files, or directories holding them (including unfinished `.seg.tmp` files).
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
        /// One JSON object per exchange per line (proto, request, response, flags, timing, addresses).
        #[arg(long)]
        json: bool,
    },
}
