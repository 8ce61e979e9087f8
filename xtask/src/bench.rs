//! `bench-capture`: a large keep-alive capture for throughput benchmarks. Load (wrk for HTTP/1.1, h2load for
//! h2c) runs against a small file on loopback inside a private namespace while tcpdump writes; load stops when
//! the file reaches the requested size (or the time bound), and tcpdump's counters are printed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::capture::{CaptureSpec, Tcpdump};
use crate::netns::Netns;
use crate::proc::Daemon;
use crate::servers::{self, NGHTTPD_PORT, NGINX_PORT};
use crate::tools;

/// Options of `bench-capture`.
#[derive(Debug)]
pub struct BenchOptions {
    /// Stop once the capture file holds this many bytes.
    pub size: u64,
    /// Where tcpdump writes.
    pub out: PathBuf,
    /// h2c (nghttpd + h2load) instead of HTTP/1.1 (nginx + wrk).
    pub h2: bool,
    /// Upper bound on the load phase.
    pub max_seconds: u64,
}

/// Parses a byte size: a number with an optional binary suffix K, M or G (`50M` = 50 MiB).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => bail!("unknown size suffix in {s:?} (use K, M or G)"),
            };
            (&s[..i], mult)
        }
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().with_context(|| format!("not a size: {s:?}"))?;
    n.checked_mul(mult).with_context(|| format!("size too large: {s:?}"))
}

/// Entry point of `cargo xtask bench-capture`.
pub fn bench_capture(opts: &BenchOptions) -> Result<()> {
    let mut needed = vec![tools::IP, tools::KILL, tools::TCPDUMP, tools::CURL];
    needed.extend(if opts.h2 { [tools::NGHTTPD, tools::H2LOAD] } else { [tools::NGINX, tools::WRK] });
    tools::require(&needed)?;
    tools::require_root()?;
    crate::netns::check_supported()?;
    let out = std::path::absolute(&opts.out).context("resolving --out")?;
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = tempfile::Builder::new().prefix("tapedeck-bench-").tempdir()?;
    let work = tmp.path();
    let www = servers::www_dir(work);
    servers::write_site(&www)?;
    let ns = Netns::create(true)?;
    let (port, mut server) = if opts.h2 {
        (NGHTTPD_PORT, servers::start_nghttpd(&ns, work, &www)?.0)
    } else {
        let conf = work.join("nginx.conf");
        std::fs::write(&conf, servers::nginx_conf(work, &www, false))?;
        (NGINX_PORT, servers::start_nginx(&ns, work, &conf)?.0)
    };
    let spec = CaptureSpec {
        iface: "lo",
        snaplen: Some(0),
        nano: false,
        linktype: None,
        buffer_kib: Some(65536),
        immediate: false,
        filter: format!("tcp port {port}"),
    };
    let tcpdump = Tcpdump::start(&ns, &spec, &out, work, "bench")?;
    eprintln!("{}", tcpdump.shown);
    let url = format!("http://127.0.0.1:{port}/small.txt");
    let secs = opts.max_seconds.to_string();
    let mut cmd = if opts.h2 {
        let mut c = ns.command("h2load");
        c.args(["-t2", "-c16", "-m10", "-D", &secs, &url]);
        c
    } else {
        let mut c = ns.command("wrk");
        c.args(["-t2", "-c16", &format!("-d{secs}s"), "--timeout", "5s", &url]);
        c
    };
    eprintln!("{}", ns.show(&cmd));
    let mut load = Daemon::spawn("load", &mut cmd, "INT", work)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(opts.max_seconds + 5);
    let reason = loop {
        let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        if len >= opts.size {
            break "size reached";
        }
        if !load.is_running() {
            break "load generator exited";
        }
        if Instant::now() >= deadline {
            break "time bound reached";
        }
        server.ensure_running()?;
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    let _ = load.stop(Duration::from_secs(15));
    let stats = tcpdump.stop(Duration::from_millis(200), Duration::from_secs(60))?;
    let _ = server.stop(Duration::from_secs(10));
    let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let summary: Vec<String> = load
        .stdout_text()
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("Requests/sec")
                || l.contains("requests in")
                || l.starts_with("requests:")
                || l.starts_with("finished in")
                || l.starts_with("Socket errors")
        })
        .map(|l| l.trim().to_string())
        .collect();
    println!("stopped: {reason} after {:.1} s", elapsed.as_secs_f64());
    println!("file: {} ({len} bytes, {:.1} MiB)", out.display(), len as f64 / (1u64 << 20) as f64);
    println!("packets captured: {}", stats.captured);
    println!("packets received by filter: {}", stats.received_by_filter);
    println!("packets dropped by kernel: {}", stats.dropped_by_kernel);
    for l in summary {
        println!("load: {l}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G").ok(), Some(1 << 30));
        assert_eq!(parse_size("50M").ok(), Some(50 << 20));
        assert_eq!(parse_size("12k").ok(), Some(12 << 10));
        assert_eq!(parse_size("999").ok(), Some(999));
        assert!(parse_size("5T").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
