//! `cargo xtask bench-ingest`: times whole processes on one capture: `agent --pcap` to segments (throughput, peak
//! RSS from its `--stats-json`, segment size against the pcap), and in the same run the references: tshark's HTTP
//! dissection on a slice of the file and tcpflow's reassembly of the whole file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::demo::{build_release, workspace_root};

/// Options of `bench-ingest`.
#[derive(Debug)]
pub struct IngestOptions {
    /// The capture to read.
    pub pcap: PathBuf,
    /// Megabytes of the capture that tshark reads (it is far slower than the agent).
    pub tshark_slice_mb: u64,
    /// Extra agent flags (e.g. `--zstd-level 3`).
    pub agent_args: Vec<String>,
    /// Runs of the agent (the best and the median are reported).
    pub runs: usize,
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()).unwrap_or(0)
}

/// Runs the benchmark and prints the figures as Markdown rows for BENCHMARKS.md.
pub fn bench_ingest(opts: &IngestOptions) -> Result<()> {
    let root = workspace_root();
    let bin = build_release(&root)?;
    let size = std::fs::metadata(&opts.pcap).with_context(|| format!("{}", opts.pcap.display()))?.len();
    let mb = size as f64 / 1e6;
    println!("capture: {} ({mb:.0} MB)", opts.pcap.display());

    let mut times = Vec::new();
    let mut last_stats = serde_json::Value::Null;
    let mut seg_bytes = 0;
    for run in 0..opts.runs.max(1) {
        let out = tempfile::tempdir()?;
        let stats = out.path().join("stats.json");
        let segs = out.path().join("segments");
        let started = Instant::now();
        let status = Command::new(bin.join("agent"))
            .arg("--pcap")
            .arg(&opts.pcap)
            .arg("--out")
            .arg(&segs)
            .arg("--stats-json")
            .arg(&stats)
            .arg("--quiet")
            .args(&opts.agent_args)
            .status()?;
        let secs = started.elapsed().as_secs_f64();
        if !status.success() {
            bail!("agent failed ({status})");
        }
        last_stats = serde_json::from_slice(&std::fs::read(&stats)?)?;
        seg_bytes = dir_bytes(&segs);
        println!("agent run {}: {secs:.2}s = {:.0} MB/s", run + 1, mb / secs);
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    let best = times[0];
    let median = times[times.len() / 2];
    let rss = last_stats["peak_rss_bytes"].as_u64().unwrap_or(0) as f64 / 1e6;
    let exchanges = last_stats["exchanges"]["total"].as_u64().unwrap_or(0);
    println!(
        "| agent --pcap | {:.0} MB/s best, {:.0} MB/s median ({} runs) | peak RSS {rss:.0} MB | {exchanges} exchanges | segments {:.1}% of pcap |",
        mb / best,
        mb / median,
        times.len(),
        100.0 * seg_bytes as f64 / size as f64
    );

    // tshark on a slice (the head of the file; tshark reports the cut-off last record, which is ignored).
    if which("tshark") {
        let slice = tempfile::NamedTempFile::new()?;
        let slice_bytes = (opts.tshark_slice_mb * 1_000_000).min(size);
        {
            use std::io::{Read, Write};
            let mut f = std::fs::File::open(&opts.pcap)?.take(slice_bytes);
            let mut w = std::fs::File::create(slice.path())?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n])?;
            }
        }
        let started = Instant::now();
        let output = Command::new("tshark")
            .arg("-r")
            .arg(slice.path())
            .args(["-Y", "http.request", "-T", "fields", "-e", "http.request.uri"])
            .stderr(Stdio::null())
            .output()?;
        let secs = started.elapsed().as_secs_f64();
        let lines = output.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
        println!(
            "| tshark -Y http.request (first {:.0} MB) | {:.1} MB/s | {lines} requests |",
            slice_bytes as f64 / 1e6,
            slice_bytes as f64 / 1e6 / secs
        );
    } else {
        println!("tshark not found (apt-get install tshark): reference skipped");
    }
    if which("tcpflow") {
        let out = tempfile::tempdir()?;
        let started = Instant::now();
        let status = Command::new("tcpflow")
            .arg("-r")
            .arg(&opts.pcap)
            .arg("-o")
            .arg(out.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        let secs = started.elapsed().as_secs_f64();
        println!("| tcpflow -r (whole file, {status}) | {:.0} MB/s |", mb / secs);
    } else {
        println!("tcpflow not found (apt-get install tcpflow): reference skipped");
    }
    Ok(())
}

fn which(program: &str) -> bool {
    crate::tools::find(program).is_some()
}
