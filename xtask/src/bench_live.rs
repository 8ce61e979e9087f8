//! `cargo xtask bench-live`: the live agent under load, against tcpdump as the reference (needs root).
//!
//! Two network namespaces joined by a veth pair; nginx in the server namespace serves a small file on two ports;
//! wrk (HTTP/1.1 keep-alive) in the client namespace loads them for --secs; the release agent captures on the
//! client's veth. Reported per capturer: wrk's request count, exchanges written, kernel drops, queue drops, CPU
//! seconds (utime + stime from /proc/PID/stat, read just before the capturer is stopped) and CPU per 10k
//! requests/s. Then the same load with `tcpdump -i VETH -w FILE` (its drops from its own closing lines).
//! `--half-filter` loads both ports and gives the agent `--filter 'tcp port P'` for one, so the cost of traffic
//! the filter keeps out can be compared.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::demo::{build_release, workspace_root};
use crate::proc::{self, Daemon};
use crate::tools;

const SERVER_IP: &str = "10.77.0.1";
const CLIENT_IP: &str = "10.77.0.2";
const PORTS: [u16; 2] = [8081, 8082];
const METRICS: &str = "127.0.0.1:9465";

/// What to run.
#[derive(Debug)]
pub struct LiveBenchOptions {
    /// Seconds of load per capturer.
    pub secs: u64,
    /// Extra flags for the agent.
    pub agent_args: Vec<String>,
    /// Load both ports, filter one in the agent.
    pub half_filter: bool,
    /// The agent binary (default: build the release one).
    pub agent_bin: Option<PathBuf>,
    /// wrk connections per port.
    pub connections: u32,
}

/// Two namespaces and a veth pair between them, deleted on drop.
struct Pair {
    server: String,
    client: String,
    client_if: String,
}

impl Pair {
    fn create() -> Result<Pair> {
        let id = std::process::id();
        let p = Pair {
            server: format!("tapedeck-bl-s-{id}"),
            client: format!("tapedeck-bl-c-{id}"),
            client_if: format!("tdbc{}", id % 100_000),
        };
        let server_if = format!("tdbs{}", id % 100_000);
        let ip = |args: &[&str]| -> Result<()> {
            proc::run_ok(Command::new("ip").args(args), Duration::from_secs(10)).map(|_| ())
        };
        ip(&["netns", "add", &p.server])?;
        ip(&["netns", "add", &p.client])?;
        ip(&["link", "add", &server_if, "type", "veth", "peer", "name", &p.client_if])?;
        ip(&["link", "set", &server_if, "netns", &p.server])?;
        ip(&["link", "set", &p.client_if, "netns", &p.client])?;
        for (ns, dev, addr) in [(&p.server, &server_if, SERVER_IP), (&p.client, &p.client_if, CLIENT_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(p)
    }

    fn command(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = proc::run(Command::new("ip").args(["netns", "del", ns]), Duration::from_secs(10));
        }
    }
}

fn nginx_conf(work: &Path, www: &Path) -> String {
    let w = work.display();
    let listen: String = PORTS.iter().map(|p| format!("        listen {SERVER_IP}:{p};\n")).collect();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {w}/nginx-error.log notice;\n\
         pid {w}/nginx.pid;\nevents {{ worker_connections 4096; }}\nhttp {{\n    access_log off;\n\
         client_body_temp_path {w}/tmp/client_body;\n    proxy_temp_path {w}/tmp/proxy;\n\
         fastcgi_temp_path {w}/tmp/fastcgi;\n    uwsgi_temp_path {w}/tmp/uwsgi;\n    scgi_temp_path {w}/tmp/scgi;\n\
         keepalive_requests 10000000;\n    keepalive_timeout 60s;\n    server {{\n{listen}        root {};\n\
         location / {{ }}\n    }}\n}}\n",
        www.display()
    )
}

/// One capturer's figures.
#[derive(Debug, Default)]
struct Row {
    name: String,
    requests: u64,
    requests_filtered_port: u64,
    secs: f64,
    exchanges: Option<u64>,
    kernel_drops: Option<u64>,
    queue_drops: Option<u64>,
    cpu_secs: f64,
}

/// Runs the benchmark and prints a markdown table.
pub fn bench_live(opts: &LiveBenchOptions) -> Result<()> {
    tools::require_root()?;
    tools::require(&[tools::IP, tools::NGINX, tools::WRK, tools::TCPDUMP, tools::KILL])?;
    let root = workspace_root();
    let agent = match &opts.agent_bin {
        Some(p) => p.clone(),
        None => build_release(&root)?.join("agent"),
    };
    let work = root.join("target/bench-live");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("www"))?;
    std::fs::create_dir_all(work.join("tmp"))?;
    std::fs::write(work.join("www/small.txt"), "x".repeat(128))?;
    let conf = work.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&work, &work.join("www")))?;

    let pair = Pair::create()?;
    let mut nginx_cmd = pair.command(&pair.server, "nginx");
    nginx_cmd.arg("-c").arg(&conf).arg("-p").arg(&work);
    let mut nginx = Daemon::spawn("nginx", &mut nginx_cmd, "QUIT", &work)?;
    proc::wait_until("nginx", Duration::from_secs(10), || {
        nginx.ensure_running()?;
        let out = proc::run(
            pair.command(&pair.client, "curl")
                .args(["-s", "-o", "/dev/null", "--max-time", "1"])
                .arg(format!("http://{SERVER_IP}:{}/small.txt", PORTS[0])),
            Duration::from_secs(5),
        )?;
        Ok(out.status.success())
    })?;

    let ports: &[u16] = if opts.half_filter { &PORTS } else { &PORTS[..1] };
    let mut rows = Vec::new();
    let mut agent_args = opts.agent_args.clone();
    if opts.half_filter {
        agent_args.extend(["--filter".to_string(), format!("tcp port {}", PORTS[0])]);
    }
    rows.push(run_agent(&pair, &agent, &agent_args, &work, opts, ports)?);
    rows.push(run_tcpdump(&pair, &work, opts, ports)?);
    let _ = nginx.stop(Duration::from_secs(5));

    println!(
        "\nbench-live: {}s of wrk -c{} per port on {:?}, agent flags {:?}\n",
        opts.secs, opts.connections, ports, agent_args
    );
    println!(
        "| capturer | wrk requests | req/s | exchanges written | kernel drops | queue drops | CPU s | CPU cores per 10k req/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let rps = r.requests as f64 / r.secs.max(1e-9);
        let per10k = if rps > 0.0 { (r.cpu_secs / r.secs) / (rps / 10_000.0) } else { 0.0 };
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let requests = if opts.half_filter {
            format!("{} ({} on port {})", r.requests, r.requests_filtered_port, PORTS[0])
        } else {
            r.requests.to_string()
        };
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {:.2} | {:.3} |",
            r.name,
            requests,
            rps,
            opt(r.exchanges),
            opt(r.kernel_drops),
            opt(r.queue_drops),
            r.cpu_secs,
            per10k
        );
    }
    Ok(())
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = proc::run(Command::new("getconf").arg("CLK_TCK"), Duration::from_secs(5))
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().ok())
        .unwrap_or(100);
    Ok(ticks as f64 / hz as f64)
}

/// Runs wrk on each port at once for `secs`; returns the requests per port.
fn load(pair: &Pair, work: &Path, opts: &LiveBenchOptions, ports: &[u16], tag: &str) -> Result<(Vec<u64>, f64)> {
    let started = Instant::now();
    let mut runs = Vec::new();
    for p in ports {
        let mut cmd = pair.command(&pair.client, "wrk");
        cmd.args(["-t1", &format!("-c{}", opts.connections), &format!("-d{}s", opts.secs)])
            .arg(format!("http://{SERVER_IP}:{p}/small.txt"));
        runs.push(Daemon::spawn(&format!("wrk-{tag}-{p}"), &mut cmd, "INT", work)?);
    }
    let mut counts = Vec::new();
    for mut r in runs {
        let deadline = Instant::now() + Duration::from_secs(opts.secs + 30);
        while r.is_running() {
            if Instant::now() > deadline {
                bail!("wrk did not finish");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = r.stdout_text();
        let n = text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.trim().parse::<u64>().ok()))
            .with_context(|| format!("no request count in wrk's output: {text}"))?;
        counts.push(n);
    }
    Ok((counts, started.elapsed().as_secs_f64()))
}

fn run_agent(
    pair: &Pair,
    agent: &Path,
    args: &[String],
    work: &Path,
    opts: &LiveBenchOptions,
    ports: &[u16],
) -> Result<Row> {
    let out = work.join("segments");
    let stats = work.join("agent-stats.json");
    let mut cmd = pair.command(&pair.client, agent.to_str().context("agent path is not UTF-8")?);
    cmd.args(["--iface", &pair.client_if, "--metrics-addr", METRICS, "--quiet", "--out"])
        .arg(&out)
        .arg("--stats-json")
        .arg(&stats)
        .args(args);
    let mut d = Daemon::spawn("agent", &mut cmd, "TERM", work)?;
    proc::wait_until("the agent's /healthz", Duration::from_secs(15), || {
        d.ensure_running()?;
        let o = proc::run(
            pair.command(&pair.client, "curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1"])
                .arg(format!("http://{METRICS}/healthz")),
            Duration::from_secs(5),
        )?;
        Ok(String::from_utf8_lossy(&o.stdout).trim() == "200")
    })?;
    let pid = agent_pid(&pair.client, agent)?;
    let (counts, secs) = load(pair, work, opts, ports, "agent")?;
    // Let the last packets through before reading the CPU time and stopping.
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_seconds(pid)?;
    let status = d.stop(Duration::from_secs(60))?;
    if !status.success() {
        bail!("the agent exited with {status}: {}", d.stderr_text());
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).context("reading the agent's stats")?)?;
    let ifaces = v["live"]["interfaces"].as_array().cloned().unwrap_or_default();
    Ok(Row {
        name: "agent".into(),
        requests: counts.iter().sum(),
        requests_filtered_port: counts.first().copied().unwrap_or(0),
        secs,
        exchanges: v["writer"]["exchanges"].as_u64(),
        kernel_drops: Some(ifaces.iter().filter_map(|i| i["kernel"]["dropped"].as_u64()).sum()),
        queue_drops: Some(ifaces.iter().filter_map(|i| i["queue_drops"].as_u64()).sum()),
        cpu_secs: cpu,
    })
}

/// The pid of the agent process (ip netns exec replaces itself with it, but look it up to be sure).
fn agent_pid(_ns: &str, agent: &Path) -> Result<u32> {
    let out = proc::run(Command::new("pgrep").arg("-nf").arg(agent), Duration::from_secs(5))?;
    String::from_utf8_lossy(&out.stdout).trim().parse().context("finding the agent's pid")
}

fn run_tcpdump(pair: &Pair, work: &Path, opts: &LiveBenchOptions, ports: &[u16]) -> Result<Row> {
    let file = work.join("tcpdump.pcap");
    let mut cmd = pair.command(&pair.client, "tcpdump");
    cmd.args(["-i", &pair.client_if, "-s", "262144", "-B", "16384", "-U", "-w"]).arg(&file);
    let mut d = Daemon::spawn("tcpdump", &mut cmd, "INT", work)?;
    proc::wait_until("tcpdump", Duration::from_secs(10), || {
        d.ensure_running()?;
        Ok(d.stderr_text().contains("listening on"))
    })?;
    let out = proc::run(Command::new("pgrep").arg("-nf").arg(&file), Duration::from_secs(5))?;
    let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().context("finding tcpdump's pid")?;
    let (counts, secs) = load(pair, work, opts, ports, "tcpdump")?;
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_seconds(pid)?;
    d.stop(Duration::from_secs(30))?;
    let err = d.stderr_text();
    let drops = err
        .lines()
        .find_map(|l| l.strip_suffix(" packets dropped by kernel").and_then(|n| n.trim().parse::<u64>().ok()));
    Ok(Row {
        name: "tcpdump -w".into(),
        requests: counts.iter().sum(),
        requests_filtered_port: counts.first().copied().unwrap_or(0),
        secs,
        exchanges: None,
        kernel_drops: drops,
        queue_drops: None,
        cpu_secs: cpu,
    })
}
