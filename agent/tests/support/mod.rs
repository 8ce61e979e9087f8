//! Test support for live-capture tests: two network namespaces joined by a veth pair (created by each test and
//! removed on drop), a real HTTP server (`python3 -m http.server`) in one, `curl` and the agent binary in the other,
//! plus small readers of metrics and segments. Each test binary uses a part of it, hence the `dead_code` allowance.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tapedeck_model::Exchange;
use tapedeck_model::segment::{SegmentReader, list_segments, list_segments_with_tmp};

pub const AGENT: &str = env!("CARGO_BIN_EXE_agent");
pub const SERVER_IP: &str = "10.213.0.1";
pub const CLIENT_IP: &str = "10.213.0.2";
pub const PORT: u16 = 8000;
pub const METRICS: &str = "127.0.0.1:9464";

pub fn run(cmd: &[&str]) -> Result<Output, String> {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().map_err(|e| format!("{}: {e}", cmd.join(" ")))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", cmd.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out)
}

/// Why this machine cannot run the tests, if it cannot.
pub fn unsupported() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("not root: network namespaces and packet capture need it".into());
    }
    for tool in [&["ip", "netns", "list"][..], &["python3", "--version"], &["curl", "--version"]] {
        if let Err(e) = run(tool) {
            return Some(format!("{} unavailable: {e}", tool[0]));
        }
    }
    None
}

/// Two namespaces and a veth pair between them; removed on drop (with everything running inside killed first).
pub struct Net {
    pub server_ns: String,
    pub client_ns: String,
    /// The client side's veth, where the agent captures.
    pub client_if: String,
    pub children: Vec<Child>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Net {
    pub fn new() -> Result<Net, String> {
        let tag = format!("{}{}", std::process::id() % 100_000, SEQ.fetch_add(1, Ordering::Relaxed));
        let net = Net {
            server_ns: format!("tds{tag}"),
            client_ns: format!("tdc{tag}"),
            client_if: format!("tdc{tag}"),
            children: Vec::new(),
        };
        let server_if = format!("tds{tag}");
        run(&["ip", "netns", "add", &net.server_ns])?;
        run(&["ip", "netns", "add", &net.client_ns])?;
        run(&[
            "ip",
            "link",
            "add",
            &server_if,
            "netns",
            &net.server_ns,
            "type",
            "veth",
            "peer",
            "name",
            &net.client_if,
            "netns",
            &net.client_ns,
        ])?;
        for (ns, ifname, ip) in [(&net.server_ns, &server_if, SERVER_IP), (&net.client_ns, &net.client_if, CLIENT_IP)] {
            run(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", ifname])?;
            run(&["ip", "-n", ns, "link", "set", ifname, "up"])?;
            run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    pub fn in_ns(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }

    /// Writes `files` (name, content) into `root/www` and serves that directory (see [`Net::start_server`]).
    #[allow(dead_code, reason = "not every test binary serves files this way")]
    pub fn serve_files(&mut self, root: &Path, files: &[(&str, &str)]) -> PathBuf {
        let www = root.join("www");
        std::fs::create_dir_all(&www).unwrap();
        for (name, content) in files {
            std::fs::write(www.join(name), content).unwrap();
        }
        self.start_server(&www).unwrap();
        www
    }

    /// Starts `python3 -m http.server` serving `dir` and waits until it answers.
    pub fn start_server(&mut self, dir: &Path) -> Result<(), String> {
        let port = PORT.to_string();
        let dir = dir.to_str().ok_or("non-UTF-8 temp dir")?;
        let child = self
            .in_ns(&self.server_ns, &["python3", "-m", "http.server", &port, "--bind", SERVER_IP, "--directory", dir])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the server: {e}"))?;
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // Probed from the server's own namespace, so that the client side (and the agent) sees nothing.
            let ok = self
                .in_ns(&self.server_ns, &["curl", "-s", "-o", "/dev/null", "--max-time", "1"])
                .arg(format!("http://{SERVER_IP}:{PORT}/"))
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("the HTTP server did not answer within 10 s".into())
    }

    /// One curl from the client namespace; returns the status code curl saw.
    pub fn curl(&self, args: &[&str], path: &str) -> u16 {
        let out = self
            .in_ns(&self.client_ns, &["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"])
            .args(args)
            .arg(format!("http://{SERVER_IP}:{PORT}{path}"))
            .output()
            .expect("running curl");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
    }

    /// GET on the agent's metrics listener (inside the client namespace).
    pub fn fetch(&self, path: &str) -> (u16, String) {
        let out = self
            .in_ns(&self.client_ns, &["curl", "-s", "--max-time", "2", "-w", "\n%{http_code}"])
            .arg(format!("http://{METRICS}{path}"))
            .output()
            .expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Starts the agent on the client veth with extra flags; waits until /healthz says it captures.
    pub fn start_agent(&self, out: &Path, extra: &[&str], log: &Path) -> Agent {
        let log = std::fs::File::create(log).unwrap();
        let child = self
            .in_ns(&self.client_ns, &[AGENT, "--iface", &self.client_if, "--metrics-addr", METRICS, "--out"])
            .arg(out)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting the agent");
        let agent = Agent(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.fetch("/healthz").0 == 200 {
                return agent;
            }
            assert!(Instant::now() < deadline, "the agent did not become ready within 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Net {
    /// GET on a metrics listener at `addr` inside the client namespace (for several agents at once).
    pub fn fetch_at(&self, addr: &str, path: &str) -> (u16, String) {
        let out = self
            .in_ns(&self.client_ns, &["curl", "-s", "--max-time", "2", "-w", "\n%{http_code}"])
            .arg(format!("http://{addr}{path}"))
            .output()
            .expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// [`Net::start_agent`] with its metrics on `metrics` (so that several agents can run on the same veth).
    pub fn start_agent_at(&self, metrics: &str, out: &Path, extra: &[&str], log: &Path) -> Agent {
        let log_file = std::fs::File::create(log).unwrap();
        let child = self
            .in_ns(&self.client_ns, &[AGENT, "--iface", &self.client_if, "--metrics-addr", metrics, "--out"])
            .arg(out)
            .args(extra)
            .env("TAPEDECK_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("starting the agent");
        let mut agent = Agent(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.fetch_at(metrics, "/healthz").0 == 200 {
                return agent;
            }
            if let Some(status) = agent.0.try_wait().unwrap() {
                panic!("the agent exited with {status:?}:\n{}", log_text(log));
            }
            assert!(Instant::now() < deadline, "the agent did not become ready within 10 s:\n{}", log_text(log));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a program in the server namespace (killed with the namespaces).
    pub fn spawn_in_server(&mut self, args: &[&str]) -> Result<(), String> {
        let child = self
            .in_ns(&self.server_ns, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", args.join(" ")))?;
        self.children.push(child);
        Ok(())
    }
}

/// The agent process, killed on drop if a test fails before it exits.
pub struct Agent(pub Child);

impl Drop for Agent {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        let _ = run(&["ip", "netns", "del", &self.server_ns]);
        let _ = run(&["ip", "netns", "del", &self.client_ns]);
    }
}

/// Sends SIGTERM and waits (bounded) for the exit status.
pub fn terminate(agent: &mut Agent, within: Duration) -> std::process::ExitStatus {
    run(&["kill", "-TERM", &agent.0.id().to_string()]).unwrap();
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the agent did not exit within {within:?} of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A metric's value from Prometheus text (the full series name with labels, as printed).
pub fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

pub fn read_all(dir: &Path) -> Vec<Exchange> {
    let mut out = Vec::new();
    for f in list_segments(dir).unwrap() {
        let mut r = SegmentReader::open(&f).unwrap();
        for ex in r.exchanges() {
            out.push(ex.unwrap());
        }
    }
    out
}

pub fn summary_of(ex: &Exchange) -> (String, String, u16) {
    let req = ex.request.as_ref().expect("a request");
    (
        String::from_utf8_lossy(&req.method).into_owned(),
        String::from_utf8_lossy(&req.path).into_owned(),
        ex.response.as_ref().map_or(0, |r| r.status),
    )
}

pub fn log_text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

pub fn no_tmp_left(dir: &Path) {
    let all: Vec<PathBuf> = list_segments_with_tmp(dir).unwrap();
    let tmp: Vec<&PathBuf> = all.iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).collect();
    assert!(tmp.is_empty(), "left behind: {tmp:?}");
}

#[macro_export]
macro_rules! setup {
    () => {{
        if let Some(why) = $crate::support::unsupported() {
            eprintln!("skipped: {why}");
            return;
        }
        $crate::support::Net::new().expect("creating the namespaces")
    }};
}

/// Runs the capture pipeline (library, default configuration) on one capture and reads back what was written.
pub fn record_file(capture: &Path) -> (tapedeck_agent::pipeline::RunSummary, Vec<Exchange>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = tapedeck_agent::pipeline::CaptureConfig::default();
    cfg.writer.dir = dir.path().to_path_buf();
    let summary = tapedeck_agent::pipeline::run_files(&[capture.to_path_buf()], cfg, &mut ()).expect("pipeline runs");
    let mut all = Vec::new();
    for file in list_segments(dir.path()).unwrap() {
        let mut r = SegmentReader::open(&file).unwrap();
        for ex in r.exchanges() {
            all.push(ex.expect("segment reads back cleanly"));
        }
    }
    (summary, all)
}
