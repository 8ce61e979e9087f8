//! `bench-replay`: how fast the replayer sends, against wrk as the reference, and how well it keeps a schedule.
//! No root needed: nginx runs on 127.0.0.1 on a free port, serving a 600-byte file.
//!
//! Part 1 (throughput): a segment of `--requests` GETs spread over 16 recorded HTTP/1.1 connections, written
//! with tapedeck-model's segment writer; `wrk -c16 -t2 -d<wrk-secs>s` for reference, then
//! `replayer run SEG --time-scale max --concurrency 16 --no-judge` (a load test: answers are not judged), and the
//! same with judging (the default of `replayer run`: every answer is compared with the recorded one, which is what
//! nginx serves, so every exchange passes). Reports the rates and their ratios to wrk's (target: 90% or more).
//!
//! Part 2 (pacing): `--rate-secs` seconds of 1000 requests/s (one every 1 ms, round-robin over 16 connections)
//! replayed at 1x; reports the schedule lag p50/p99/max from the report JSON (target: p99 under 2 ms).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tapedeck_model::segment::{SegmentWriter, SegmentWriterConfig};
use tapedeck_model::{Exchange, Flags, Header, Protocol, Request, Response, Timestamp, Timing};

use crate::proc::{self, Daemon};
use crate::servers;
use crate::tools;

/// Options of `bench-replay`.
pub struct BenchReplayOptions {
    /// Requests in the throughput segment.
    pub requests: u64,
    /// Seconds of wrk.
    pub wrk_secs: u64,
    /// Seconds of the 1000 req/s segment.
    pub rate_secs: u64,
    /// The replayer binary; built with `cargo build --release -p replayer` when not given.
    pub replayer: Option<PathBuf>,
}

const CONNECTIONS: u64 = 16;
const FILE_LEN: usize = 600;
const BASE_NS: u64 = 1_700_000_000_000_000_000;

/// Runs both parts and prints the markdown table.
pub fn bench_replay(o: &BenchReplayOptions) -> Result<()> {
    tools::require(&[tools::NGINX, tools::WRK])?;
    let replayer = match &o.replayer {
        Some(p) => p.clone(),
        None => {
            eprintln!("bench-replay: cargo build --release -p replayer");
            proc::run_ok(
                Command::new(env!("CARGO")).args(["build", "--release", "--locked", "-p", "replayer"]),
                Duration::from_secs(3600),
            )?;
            workspace_root().join("target/release/replayer")
        }
    };
    let work = tempfile::Builder::new().prefix("tapedeck-bench-replay-").tempdir()?;
    let port = free_port()?;
    let _nginx = start_nginx(work.path(), port)?;
    let url = format!("http://127.0.0.1:{port}");

    // Part 1: throughput.
    let seg1 = work.path().join("max");
    write_segment(&seg1, o.requests, Duration::from_micros(10))?;
    eprintln!("bench-replay: wrk -c16 -t2 -d{}s {url}/small.txt", o.wrk_secs);
    let wrk = proc::run_ok(
        Command::new("wrk").args(["-c16", "-t2", &format!("-d{}s", o.wrk_secs), &format!("{url}/small.txt")]),
        Duration::from_secs(o.wrk_secs + 60),
    )?;
    let wrk_rps = parse_wrk_rps(&String::from_utf8_lossy(&wrk.stdout))?;
    let max = run_replayer(
        &replayer,
        &seg1,
        &url,
        &["--time-scale", "max", "--concurrency", "16", "--no-judge"],
        work.path(),
    )?;
    let replay_rps = max["achieved_rps"].as_f64().unwrap_or(0.0);
    let errors = max["errors"].as_u64().unwrap_or(0);
    let judged = run_replayer(&replayer, &seg1, &url, &["--time-scale", "max", "--concurrency", "16"], work.path())?;
    let judged_rps = judged["achieved_rps"].as_f64().unwrap_or(0.0);
    let judged_errors = judged["errors"].as_u64().unwrap_or(0);
    let passed = judged["judge"]["passed"].as_u64().unwrap_or(0);

    // Part 2: a 1000 req/s schedule at 1x.
    let seg2 = work.path().join("paced");
    write_segment(&seg2, o.rate_secs * 1000, Duration::from_millis(1))?;
    let paced = run_replayer(&replayer, &seg2, &url, &["--time-scale", "1x", "--concurrency", "16"], work.path())?;
    let lag = &paced["schedule_lag"];
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);

    println!("| measure | value | target |");
    println!("|---|---|---|");
    println!("| wrk -c16 -t2 -d{}s, req/s | {wrk_rps:.0} | reference |", o.wrk_secs);
    println!(
        "| replayer --time-scale max --concurrency 16 --no-judge, req/s ({} requests, {errors} errors) | {replay_rps:.0} | |",
        o.requests
    );
    println!("| replayer / wrk | {:.0}% | >= 90% |", 100.0 * replay_rps / wrk_rps.max(1e-9));
    println!(
        "| replayer --time-scale max --concurrency 16 (judged: {passed} passed), req/s ({} requests, {judged_errors} errors) | {judged_rps:.0} | |",
        o.requests
    );
    println!("| judged replayer / wrk | {:.0}% | >= 90% |", 100.0 * judged_rps / wrk_rps.max(1e-9));
    println!(
        "| 1000 req/s for {} s at 1x: schedule lag p50 / p99 / max, ms | {:.3} / {:.3} / {:.3} | p99 < 2 ms |",
        o.rate_secs,
        f(&lag["p50_ms"]),
        f(&lag["p99_ms"]),
        f(&lag["max_ms"])
    );
    println!(
        "| 1000 req/s at 1x: duration, s (planned) | {:.3} ({:.3}) | |",
        f(&paced["actual_duration_s"]),
        f(&paced["planned_duration_s"])
    );
    Ok(())
}

/// The served file: `FILE_LEN` bytes of text in lines of 60.
fn file_body() -> Vec<u8> {
    (0..FILE_LEN).map(|i| if i % 60 == 59 { b'\n' } else { b'a' + (i % 26) as u8 }).collect()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn start_nginx(work: &Path, port: u16) -> Result<Daemon> {
    let www = work.join("www");
    fs::create_dir_all(&www)?;
    fs::create_dir_all(work.join("nginx-tmp"))?;
    fs::write(www.join("small.txt"), file_body())?;
    let www = www.display();
    let conf = servers::nginx_foreground_conf(
        work,
        "notice",
        &format!(
            r#"    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location / {{ }}
    }}
"#
        ),
    );
    let conf_path = work.join("nginx.conf");
    fs::write(&conf_path, conf)?;
    let mut cmd = Command::new(tools::find("nginx").context("nginx not found")?);
    cmd.arg("-c").arg(&conf_path).arg("-p").arg(work);
    let mut daemon = Daemon::spawn("nginx", &mut cmd, "QUIT", work)?;
    proc::wait_until("nginx to listen", Duration::from_secs(15), || {
        daemon.ensure_running()?;
        Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    })?;
    Ok(daemon)
}

/// `n` GETs of /small.txt, one every `spacing`, round-robin over 16 recorded connections; each answered 100 µs
/// after it was sent (every connection sequential) with what nginx serves (200, `text/plain`, the file).
fn write_segment(dir: &Path, n: u64, spacing: Duration) -> Result<()> {
    fs::create_dir_all(dir)?;
    let mut w = SegmentWriter::create(SegmentWriterConfig::new(dir))?;
    let step = u64::try_from(spacing.as_nanos()).unwrap_or(u64::MAX);
    let body = file_body();
    for i in 0..n {
        let conn = i % CONNECTIONS;
        let at = BASE_NS + i * step;
        let t = |ns: u64| Some(Timestamp(ns));
        w.write(&Exchange {
            id: i,
            connection_id: conn,
            order: u32::try_from(i / CONNECTIONS).unwrap_or(u32::MAX),
            stream_id: None,
            proto: Protocol::Http11,
            client: format!("10.0.0.1:{}", 40_000 + conn).parse()?,
            server: "10.0.0.2:80".parse()?,
            timing: Timing {
                request_first: t(at),
                request_last: t(at),
                response_first: t(at + 100_000),
                response_last: t(at + 100_000),
            },
            request: Some(Request {
                method: b"GET".to_vec(),
                scheme: vec![],
                authority: b"bench".to_vec(),
                path: b"/small.txt".to_vec(),
                headers: vec![Header::new("user-agent", "bench-replay")],
                ..Default::default()
            }),
            response: Some(Response {
                status: 200,
                headers: vec![Header::new("content-type", "text/plain")],
                body: tapedeck_model::Body { bytes: body.clone(), full_len: body.len() as u64 },
                ..Default::default()
            }),
            flags: Flags::NONE,
            labels: vec![],
            masked_by: vec![],
        })?;
    }
    w.finish()?;
    Ok(())
}

fn run_replayer(bin: &Path, seg: &Path, url: &str, args: &[&str], work: &Path) -> Result<serde_json::Value> {
    let report = work.join("report.json");
    let mut cmd = Command::new(bin);
    cmd.arg("run").arg(seg).args(["--target", url, "--progress", "off", "--report"]).arg(&report).args(args);
    eprintln!("bench-replay: {}", proc::describe(&cmd));
    let out = proc::run_ok(&mut cmd, Duration::from_secs(3600))?;
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(serde_json::from_slice(&fs::read(&report)?)?)
}

fn parse_wrk_rps(out: &str) -> Result<f64> {
    for line in out.lines() {
        if let Some(v) = line.trim().strip_prefix("Requests/sec:") {
            return v.trim().parse().with_context(|| format!("wrk's rate {v:?}"));
        }
    }
    bail!("no Requests/sec line in wrk's output: {out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_rate() {
        let out = "Running 2s test @ http://127.0.0.1:1/\n  2 threads and 16 connections\nRequests/sec:  41234.56\n";
        assert!((parse_wrk_rps(out).unwrap() - 41234.56).abs() < 1e-6);
        assert!(parse_wrk_rps("nothing").is_err());
    }
}
