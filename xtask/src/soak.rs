//! `cargo xtask soak`: the agent under steady mixed load for N minutes, watching for leaks. Needs root.
//!
//! Two network namespaces joined by a veth pair (`10.214.0.1` server side, `10.214.0.2` client side, removed at
//! the end); nginx (HTTP/1.1) and nghttpd (h2c) in the server namespace; the agent (release build, or `--agent`)
//! capturing the client side's veth with a small rotation size and age and retention by bytes; load from the
//! client namespace: rate-limited curl processes for HTTP/1.1 (keep-alive, connection per request, gzip, a large
//! file) and nghttp runs for h2c (40 multiplexed requests on a new connection twice a second), a few hundred
//! requests per second in all, each bounded by a request count or the duration and a time limit, and never aimed
//! anywhere but the server address.
//!
//! Every 10 s it samples the agent's RSS (`/proc/PID/status` VmRSS), open fds (`/proc/PID/fd`) and CPU time
//! (utime + stime of `/proc/PID/stat`), plus exchanges from its `/metrics` and the bytes in its segment
//! directory. At the end it prints a markdown table (first, last, min, max, and the least-squares slope per
//! minute from the baseline on), writes everything to `<out>/soak.json`, and gives a verdict: "flat" when RSS grew less than 5% from
//! the baseline (the first sample one minute in, or half-way for shorter runs) to the end and the fd count did
//! not grow; else "growing".

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::proc::{self, Daemon};
use crate::servers;
use crate::tools::{self, CURL, IP, KILL, NGHTTP, NGHTTPD, NGINX};

const SERVER_IP: &str = "10.214.0.1";
const CLIENT_IP: &str = "10.214.0.2";
const HTTP_PORT: u16 = 18080;
const H2C_PORT: u16 = 18082;
const METRICS: &str = "127.0.0.1:9465";
/// Seconds between samples.
const SAMPLE_SECS: u64 = 10;

/// What `cargo xtask soak` was asked to do.
#[derive(Debug)]
pub struct SoakOptions {
    /// Minutes of load.
    pub minutes: u64,
    /// Work directory (segments, logs, soak.json); default `target/soak/<unix time>`.
    pub out: Option<PathBuf>,
    /// The agent binary; default: `cargo build --release -p agent` and `target/release/agent`.
    pub agent: Option<PathBuf>,
}

/// The two namespaces and the veth pair; deleted on drop (deleting a namespace deletes its veth end).
struct Net {
    server: String,
    client: String,
    client_if: String,
}

impl Net {
    fn create() -> Result<Net> {
        let id = std::process::id();
        let net = Net {
            server: format!("tapedeck-soak-s-{id}"),
            client: format!("tapedeck-soak-c-{id}"),
            client_if: format!("tdkc{}", id % 100_000),
        };
        let server_if = format!("tdks{}", id % 100_000);
        let ip = |args: &[&str]| -> Result<()> {
            proc::run_ok(Command::new("ip").args(args), Duration::from_secs(10)).map(|_| ())
        };
        ip(&["netns", "add", &net.server])?;
        ip(&["netns", "add", &net.client])?;
        ip(&["link", "add", &server_if, "netns", &net.server, "type", "veth", "peer", "name", &net.client_if])?;
        ip(&["link", "set", &net.client_if, "netns", &net.client])?;
        for (ns, ifname, addr) in [(&net.server, &server_if, SERVER_IP), (&net.client, &net.client_if, CLIENT_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", ifname])?;
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn command(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            let _ = proc::run(Command::new("ip").args(["netns", "del", ns]), Duration::from_secs(10));
        }
    }
}

/// Load processes (killed on drop) and the h2c loop thread (stopped on drop).
struct Load {
    children: Vec<Child>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    h2: Option<std::thread::JoinHandle<u64>>,
}

impl Load {
    /// Stops the h2c loop; returns how many nghttp runs failed.
    fn stop_h2(&mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.h2.take().map_or(0, |h| h.join().unwrap_or(0))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop_h2();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One sample of the agent.
#[derive(Clone, Debug)]
struct Sample {
    /// Seconds since the load started.
    t: f64,
    /// Resident memory, KiB.
    rss_kib: u64,
    /// The parts of `rss_kib` (KiB): anonymous memory (the heap), file mappings, shared memory (the capture ring
    /// of a packet socket counts here or in file). A leak shows in the first.
    rss_parts: [u64; 3],
    /// Flows the agent had open (from /metrics), if it answered.
    flows_open: Option<u64>,
    /// Open file descriptors.
    fds: u64,
    /// CPU seconds used so far (user + system).
    cpu_secs: f64,
    /// Exchanges recorded so far (from /metrics), if it answered.
    exchanges: Option<u64>,
    /// Bytes of files in the segment directory.
    segment_bytes: u64,
}

impl Sample {
    fn to_json(&self) -> serde_json::Value {
        json!({ "t": self.t, "rss_kib": self.rss_kib, "rss_anon_kib": self.rss_parts[0],
                "rss_file_kib": self.rss_parts[1], "rss_shmem_kib": self.rss_parts[2], "fds": self.fds,
                "cpu_secs": self.cpu_secs, "exchanges": self.exchanges, "flows_open": self.flows_open,
                "segment_bytes": self.segment_bytes })
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Runs the soak test.
pub fn soak(opts: &SoakOptions) -> Result<()> {
    tools::require_root()?;
    tools::require(&[IP, KILL, NGINX, NGHTTPD, NGHTTP, CURL])?;
    if opts.minutes == 0 {
        bail!("--minutes must be at least 1");
    }
    let root = repo_root();
    let agent = match &opts.agent {
        Some(a) => a.clone(),
        None => {
            let st = Command::new("cargo")
                .current_dir(&root)
                .args(["build", "--release", "--locked", "-p", "agent"])
                .status()
                .context("cargo build --release -p agent")?;
            if !st.success() {
                bail!("building the release agent failed ({st})");
            }
            root.join("target/release/agent")
        }
    };
    let agent = fs::canonicalize(&agent).with_context(|| format!("agent binary {}", agent.display()))?;
    let out = match &opts.out {
        Some(o) => o.clone(),
        None => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            root.join("target/soak").join(now.as_secs().to_string())
        }
    };
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = fs::canonicalize(&out)?;
    let www = out.join("www");
    servers::write_site(&www)?;
    let segments = out.join("segments");

    let net = Net::create()?;
    eprintln!("soak: namespaces {} / {}, agent {}, out {}", net.server, net.client, agent.display(), out.display());
    let conf = out.join("nginx.conf");
    fs::write(&conf, nginx_conf(&out, &www))?;
    fs::create_dir_all(out.join("nginx-tmp"))?;
    let mut nginx_cmd = Net::command(&net.server, "nginx");
    nginx_cmd.arg("-c").arg(&conf).arg("-p").arg(&out);
    let mut nginx = Daemon::spawn("nginx", &mut nginx_cmd, "QUIT", &out)?;
    let mut h2_cmd = Net::command(&net.server, "nghttpd");
    h2_cmd.args(["--no-tls", "-a", SERVER_IP, "-d"]).arg(&www).arg(H2C_PORT.to_string());
    let mut nghttpd = Daemon::spawn("nghttpd", &mut h2_cmd, "TERM", &out)?;
    // Probed from the server's own namespace, so that the agent sees none of it.
    for (url, h2) in [
        (format!("http://{SERVER_IP}:{HTTP_PORT}/hello.txt"), false),
        (format!("http://{SERVER_IP}:{H2C_PORT}/hello.txt"), true),
    ] {
        proc::wait_until(&format!("{url} to answer"), Duration::from_secs(15), || {
            nginx.ensure_running()?;
            nghttpd.ensure_running()?;
            let mut c = Net::command(&net.server, "curl");
            c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2"]);
            if h2 {
                c.arg("--http2-prior-knowledge");
            }
            Ok(proc::run(c.arg(&url), Duration::from_secs(5))?.stdout == b"200")
        })?;
    }

    let stats_json = out.join("agent-stats.json");
    let mut agent_cmd = Net::command(&net.client, agent.to_str().context("non-UTF-8 agent path")?);
    agent_cmd
        .args(["--iface", &net.client_if, "--filter", &format!("tcp port {HTTP_PORT} or tcp port {H2C_PORT}")])
        .arg("--out")
        .arg(&segments)
        .args(["--segment-max-bytes", "1MiB", "--segment-max-age", "20s", "--retain-bytes", "6MiB"])
        .args(["--metrics-addr", METRICS, "--quiet", "--stats-json"])
        .arg(&stats_json);
    let log = fs::File::create(out.join("agent.err"))?;
    let mut agent_proc = AgentProc(Some(agent_cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn()?));
    let pid = agent_proc.pid()?;
    proc::wait_until("the agent to serve /healthz", Duration::from_secs(20), || {
        agent_proc.ensure_running()?;
        Ok(scrape(&net.client, "/healthz").is_some())
    })?;

    let secs = opts.minutes * 60;
    let load = start_load(&net.client, secs)?;
    eprintln!("soak: load running for {} min; sampling agent pid {pid} every {SAMPLE_SECS} s", opts.minutes);
    let clk_tck = clock_ticks();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut next = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(secs) {
        if started.elapsed() >= next {
            agent_proc.ensure_running()?;
            let s = sample(pid, clk_tck, started.elapsed().as_secs_f64(), &net.client, &segments)?;
            eprintln!(
                "soak: t={:>5.0}s rss={} KiB (anon {} file {} shmem {}) fds={} cpu={:.1}s exchanges={} flows={} segments={} B",
                s.t,
                s.rss_kib,
                s.rss_parts[0],
                s.rss_parts[1],
                s.rss_parts[2],
                s.fds,
                s.cpu_secs,
                s.exchanges.map_or("?".into(), |e| e.to_string()),
                s.flows_open.map_or("?".into(), |e| e.to_string()),
                s.segment_bytes
            );
            samples.push(s);
            next += Duration::from_secs(SAMPLE_SECS);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    agent_proc.ensure_running()?;
    samples.push(sample(pid, clk_tck, started.elapsed().as_secs_f64(), &net.client, &segments)?);
    let load_failures = load_exit_report(load);

    let exit = agent_proc.stop(Duration::from_secs(30));
    let agent_exit = match &exit {
        Ok(st) => st.to_string(),
        Err(e) => format!("{e:#}"),
    };
    let _ = nghttpd.stop(Duration::from_secs(5));
    let _ = nginx.stop(Duration::from_secs(5));
    drop(net);
    let agent_summary: serde_json::Value =
        fs::read(&stats_json).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();

    let report = Report::new(&samples);
    let table = report.markdown(&samples, clk_tck);
    println!("{table}");
    println!("agent exit: {agent_exit}; segment dir at the end: {} bytes", dir_bytes(&segments));
    if !load_failures.is_empty() {
        println!("load processes that failed: {}", load_failures.join("; "));
    }
    let doc = json!({
        "minutes": opts.minutes,
        "sample_every_secs": SAMPLE_SECS,
        "samples": samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
        "summary": report.json(),
        "verdict": report.verdict(),
        "agent_exit": agent_exit,
        "agent_summary": agent_summary,
        "load_failures": load_failures,
    });
    let json_path = out.join("soak.json");
    fs::write(&json_path, serde_json::to_vec_pretty(&doc)?)?;
    println!("verdict: {} (details in {})", report.verdict(), json_path.display());
    exit.map(|_| ())
}

/// The agent, killed on drop unless stopped.
struct AgentProc(Option<Child>);

impl AgentProc {
    /// Fails if the agent has exited.
    fn ensure_running(&mut self) -> Result<()> {
        match self.0.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(st))) => bail!("the agent exited ({st}); see agent.err"),
            Some(Err(e)) => Err(e.into()),
            None => bail!("the agent was stopped"),
        }
    }

    /// The agent's pid: `ip netns exec` execs the agent in place, so the child's pid is the agent's once the
    /// exec happened (its `comm` says `agent`).
    fn pid(&mut self) -> Result<u32> {
        let pid = self.0.as_ref().map(Child::id).context("no agent")?;
        proc::wait_until("the agent to start", Duration::from_secs(30), || {
            self.ensure_running()?;
            Ok(fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "agent"))
        })?;
        Ok(pid)
    }

    /// SIGTERM, then waits up to `timeout` for the exit.
    fn stop(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let mut child = self.0.take().context("no agent")?;
        proc::signal(child.id(), "TERM")?;
        match proc::wait_timeout(&mut child, timeout)? {
            Some(st) => Ok(st),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the agent did not exit within {timeout:?} of SIGTERM; killed")
            }
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn nginx_conf(work: &Path, www: &Path) -> String {
    let www = www.display();
    servers::nginx_foreground_conf(
        work,
        "warn",
        &format!(
            r#"    access_log off;
    keepalive_requests 1000000;
    server {{
        listen {SERVER_IP}:{HTTP_PORT};
        root {www};
        location / {{ }}
        location /gz/ {{ gzip on; gzip_types text/plain application/json; gzip_min_length 0; }}
        location /ssi/ {{ ssi on; }}
    }}
"#
        ),
    )
}

/// The load: rate-limited curl processes in the client namespace for HTTP/1.1, each bounded by its request count
/// (rate x duration) and `--max-time`, and a thread running `nghttp -m 40` (40 multiplexed h2c requests on a new
/// connection) every 500 ms until the duration is over. About 300 requests per second in all.
fn start_load(client_ns: &str, secs: u64) -> Result<Load> {
    let h1 = format!("http://{SERVER_IP}:{HTTP_PORT}");
    let h2 = format!("http://{SERVER_IP}:{H2C_PORT}");
    // (label, requests per second, extra curl flags, URL pattern with {N} for the request range)
    let flows: [(&str, u64, &[&str], String); 4] = [
        ("h1 keep-alive mix", 120, &[], format!("{h1}/{{hello.txt,data.json,ssi/page.shtml}}?n=[1-{{N}}]")),
        ("h1 gzip", 40, &["--compressed"], format!("{h1}/gz/lorem.txt?n=[1-{{N}}]")),
        ("h1 connection per request", 60, &["-H", "Connection: close"], format!("{h1}/data.json?c=[1-{{N}}]")),
        ("h1 200 KB file", 2, &[], format!("{h1}/big.bin?b=[1-{{N}}]")),
    ];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Load { children: Vec::new(), stop: std::sync::Arc::clone(&stop), h2: None };
    let (ns, url) = (client_ns.to_string(), format!("{h2}/data.json"));
    load.h2 = Some(std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut failures = 0;
        while Instant::now() < end && !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            let mut c = Net::command(&ns, "nghttp");
            c.args(["-n", "-m", "40", "-t", "5"]).arg(&url);
            if !proc::run(&mut c, Duration::from_secs(10)).is_ok_and(|o| o.status.success()) {
                failures += 1;
            }
            std::thread::sleep(Duration::from_millis(500).saturating_sub(t.elapsed()));
        }
        failures
    }));
    for (label, rate, extra, url) in flows {
        // A {a,b,c} glob multiplies the range: divide it back so that the count matches the rate.
        let per = if url.contains(",data.json,") { 3 } else { 1 };
        let url = url.replace("{N}", &(rate * secs / per).max(1).to_string());
        let child = Net::command(client_ns, "curl")
            .args(["-s", "-o", "/dev/null", "--rate", &format!("{rate}/s"), "--max-time", "10"])
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting load `{label}`"))?;
        load.children.push(child);
    }
    Ok(load)
}

/// Stops the load and names the curl processes that had failed before the end (a failing load would make a
/// quiet agent look flat).
fn load_exit_report(mut load: Load) -> Vec<String> {
    let mut failed = Vec::new();
    let h2_failures = load.stop_h2();
    if h2_failures > 0 {
        failed.push(format!("{h2_failures} nghttp run(s) failed"));
    }
    for (i, c) in load.children.iter_mut().enumerate() {
        if let Ok(Some(st)) = c.try_wait()
            && !st.success()
        {
            failed.push(format!("load process {i} exited early: {st}"));
        }
    }
    drop(load);
    failed
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn sample(pid: u32, clk_tck: f64, t: f64, client_ns: &str, segments: &Path) -> Result<Sample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).context("reading the agent's status")?;
    let kib = |key: &str| {
        status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    let rss_kib = kib("VmRSS:").context("no VmRSS")?;
    let rss_parts = [kib("RssAnon:"), kib("RssFile:"), kib("RssShmem:")].map(|v| v.unwrap_or(0));
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).context("listing the agent's fds")?.count() as u64;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).context("reading the agent's stat")?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let cpu_secs = (ticks(11) + ticks(12)) as f64 / clk_tck;
    let metrics = scrape(client_ns, "/metrics");
    let metric_sum = |name: &str| {
        metrics.as_ref().map(|m| {
            m.lines()
                .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(['{', ' '])))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
                .sum()
        })
    };
    let exchanges = metric_sum("tapedeck_exchanges_total");
    let flows_open = metric_sum("tapedeck_flows_open");
    Ok(Sample { t, rss_kib, rss_parts, fds, cpu_secs, exchanges, flows_open, segment_bytes: dir_bytes(segments) })
}

/// GETs `path` from the agent's metrics listener (inside the client namespace's loopback, which the agent does
/// not capture).
fn scrape(client_ns: &str, path: &str) -> Option<String> {
    let mut c = Net::command(client_ns, "curl");
    c.args(["-sf", "--max-time", "2"]).arg(format!("http://{METRICS}{path}"));
    let out = proc::run(&mut c, Duration::from_secs(5)).ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Least-squares slope of `ys` against `ts` (seconds), per minute.
fn slope_per_minute(ts: &[f64], ys: &[f64]) -> f64 {
    let n = ts.len() as f64;
    if ts.len() < 2 {
        return 0.0;
    }
    let (mt, my) = (ts.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = ts.iter().zip(ys).map(|(t, y)| (t - mt) * (y - my)).sum();
    let var: f64 = ts.iter().map(|t| (t - mt) * (t - mt)).sum();
    if var == 0.0 { 0.0 } else { cov / var * 60.0 }
}

/// The summary of the samples.
struct Report {
    baseline: Sample,
    last: Sample,
    rss_growth: f64,
    rss_slope: f64,
    fd_slope: f64,
}

impl Report {
    fn new(samples: &[Sample]) -> Report {
        let end = samples.last().map_or(0.0, |s| s.t);
        let from = end.min(120.0) / 2.0;
        let from = if end >= 120.0 { 60.0 } else { from };
        let baseline = samples.iter().find(|s| s.t >= from).or(samples.first()).cloned().unwrap_or(Sample {
            t: 0.0,
            rss_kib: 0,
            rss_parts: [0; 3],
            flows_open: None,
            fds: 0,
            cpu_secs: 0.0,
            exchanges: None,
            segment_bytes: 0,
        });
        let last = samples.last().cloned().unwrap_or_else(|| baseline.clone());
        // Slopes from the baseline on: the first minute's warm-up (buffers, tables filling) is not a trend.
        let steady: Vec<&Sample> = samples.iter().filter(|s| s.t >= baseline.t).collect();
        let ts: Vec<f64> = steady.iter().map(|s| s.t).collect();
        let rss: Vec<f64> = steady.iter().map(|s| s.rss_kib as f64).collect();
        let fds: Vec<f64> = steady.iter().map(|s| s.fds as f64).collect();
        let rss_growth = if baseline.rss_kib == 0 { 0.0 } else { last.rss_kib as f64 / baseline.rss_kib as f64 - 1.0 };
        Report {
            rss_slope: slope_per_minute(&ts, &rss),
            fd_slope: slope_per_minute(&ts, &fds),
            baseline,
            last,
            rss_growth,
        }
    }

    fn verdict(&self) -> &'static str {
        if self.rss_growth < 0.05 && self.last.fds <= self.baseline.fds { "flat" } else { "growing" }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "baseline_t": self.baseline.t,
            "rss_kib": { "baseline": self.baseline.rss_kib, "last": self.last.rss_kib, "growth": self.rss_growth,
                          "slope_per_min": self.rss_slope },
            "fds": { "baseline": self.baseline.fds, "last": self.last.fds, "slope_per_min": self.fd_slope },
        })
    }

    fn markdown(&self, samples: &[Sample], _clk: f64) -> String {
        let stat = |get: &dyn Fn(&Sample) -> f64| {
            let v: Vec<f64> = samples.iter().map(get).collect();
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (v.first().copied().unwrap_or(0.0), v.last().copied().unwrap_or(0.0), min, max)
        };
        let mut out = String::from(
            "| metric | first | last | min | max | slope/min (from baseline) |\n|---|---|---|---|---|---|\n",
        );
        let (f, l, mn, mx) = stat(&|s| s.rss_kib as f64);
        out.push_str(&format!("| RSS (KiB) | {f:.0} | {l:.0} | {mn:.0} | {mx:.0} | {:+.1} |\n", self.rss_slope));
        let (f, l, mn, mx) = stat(&|s| s.fds as f64);
        out.push_str(&format!("| open fds | {f:.0} | {l:.0} | {mn:.0} | {mx:.0} | {:+.2} |\n", self.fd_slope));
        let cpu: Vec<f64> = samples
            .windows(2)
            .map(|w| 100.0 * (w[1].cpu_secs - w[0].cpu_secs) / (w[1].t - w[0].t).max(0.001))
            .collect();
        if !cpu.is_empty() {
            let min = cpu.iter().copied().fold(f64::INFINITY, f64::min);
            let max = cpu.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out.push_str(&format!(
                "| CPU (% of a core, per interval) | {:.1} | {:.1} | {min:.1} | {max:.1} | |\n",
                cpu[0],
                cpu[cpu.len() - 1]
            ));
        }
        let (f, l, mn, mx) = stat(&|s| s.segment_bytes as f64);
        out.push_str(&format!("| segment dir (bytes) | {f:.0} | {l:.0} | {mn:.0} | {mx:.0} | |\n"));
        let ex: Vec<(f64, u64)> = samples.iter().filter_map(|s| Some((s.t, s.exchanges?))).collect();
        if let (Some(a), Some(b)) = (ex.first(), ex.last())
            && b.0 > a.0
        {
            out.push_str(&format!(
                "| exchanges | {} | {} | | | {:.0} |\n",
                a.1,
                b.1,
                (b.1 - a.1.min(b.1)) as f64 / (b.0 - a.0) * 60.0
            ));
        }
        out.push_str(&format!(
            "\nRSS growth from t={:.0}s to the end: {:+.1}%; fds {} -> {}. Verdict: **{}**.\n",
            self.baseline.t,
            self.rss_growth * 100.0,
            self.baseline.fds,
            self.last.fds,
            self.verdict()
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_is_its_gradient_per_minute() {
        // y = 3 per second -> 180 per minute.
        let ts = [0.0, 10.0, 20.0, 30.0];
        let ys = [5.0, 35.0, 65.0, 95.0];
        assert!((slope_per_minute(&ts, &ys) - 180.0).abs() < 1e-9);
        assert_eq!(slope_per_minute(&[1.0], &[2.0]), 0.0);
    }

    fn s(t: f64, rss: u64, fds: u64) -> Sample {
        Sample {
            t,
            rss_kib: rss,
            rss_parts: [rss, 0, 0],
            fds,
            cpu_secs: 0.0,
            exchanges: None,
            flows_open: None,
            segment_bytes: 0,
        }
    }

    #[test]
    fn verdict_compares_the_end_with_the_first_sample_a_minute_in() {
        // Growth during the first minute (warm-up) does not count; 4% after it is flat.
        let flat: Vec<Sample> =
            (0..=18).map(|i| s(i as f64 * 10.0, if i < 6 { 1000 + i * 500 } else { 4000 + i * 8 }, 9)).collect();
        let r = Report::new(&flat);
        assert_eq!(r.baseline.t, 60.0);
        assert_eq!(r.verdict(), "flat", "growth {}", r.rss_growth);
        let mut grow = flat.clone();
        grow.last_mut().unwrap().rss_kib = 4300;
        assert_eq!(Report::new(&grow).verdict(), "growing");
        let mut fds = flat;
        fds.last_mut().unwrap().fds = 10;
        assert_eq!(Report::new(&fds).verdict(), "growing");
    }
}
