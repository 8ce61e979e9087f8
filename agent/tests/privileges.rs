//! Live capture gives up its privileges: the agent, started as root on a veth in a network namespace, must run
//! the threads that read and parse traffic (and the one that writes segments) with no capability at all and
//! no_new_privs set, and still record what the clients did. Needs root (skipped otherwise).

mod support;

use std::time::{Duration, Instant};

use support::*;

/// One thread's view in /proc: name, effective and permitted masks, no_new_privs.
#[derive(Debug)]
struct ThreadCaps {
    name: String,
    eff: u64,
    prm: u64,
    nnp: bool,
}

fn hex_field(status: &str, key: &str) -> u64 {
    let v = status.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("{key} missing"));
    u64::from_str_radix(v.trim(), 16).unwrap()
}

fn threads(pid: u32) -> Vec<ThreadCaps> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else { continue };
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string();
        let nnp = status.lines().any(|l| l.starts_with("NoNewPrivs:") && l.trim_end().ends_with('1'));
        out.push(ThreadCaps { name, eff: hex_field(&status, "CapEff:"), prm: hex_field(&status, "CapPrm:"), nnp });
    }
    out
}

#[test]
fn capture_and_writer_threads_hold_no_capability() {
    let mut net = setup!();
    let tmp = tempfile::tempdir().unwrap();
    net.serve_files(tmp.path(), &[("a.txt", "alpha\n")]);
    let out = tmp.path().join("segments");
    let log = tmp.path().join("agent.log");
    let mut agent = net.start_agent(&out, &[], &log);
    let pid = agent.0.id();
    assert_eq!(std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim(), "agent");

    // Started as root: the process had every capability before it opened the capture.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_ne!(hex_field(&status, "CapEff:"), 0, "the test runs with capabilities");

    // The capture and writer threads exist once /healthz answers; each holds nothing.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ts = loop {
        let ts = threads(pid);
        if ts.iter().any(|t| t.name.starts_with("capture-")) && ts.iter().any(|t| t.name == "segment-writer") {
            break ts;
        }
        assert!(Instant::now() < deadline, "threads: {ts:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("threads of the agent: {ts:?}");
    let main = ts.iter().find(|t| t.name == "agent").expect("the main thread");
    for t in ts.iter().filter(|t| t.name == "agent" || t.name.starts_with("capture-") || t.name == "segment-writer") {
        assert_eq!((t.eff, t.prm), (0, 0), "{t:?}");
        assert!(t.nnp, "{t:?}");
    }
    assert_eq!((main.eff, main.prm), (0, 0));
    // Threads started before the capture was opened (metrics server, shutdown watchdog) keep what they had:
    // the agent says so in its log.
    let early: Vec<&ThreadCaps> = ts.iter().filter(|t| t.eff != 0).collect();
    if !early.is_empty() {
        let text = log_text(&log);
        for t in &early {
            assert!(text.contains(&t.name), "{t:?} not reported in the log:\n{text}");
        }
    }

    // Still recording: a request made now is written.
    assert_eq!(net.curl(&[], "/a.txt"), 200);
    std::thread::sleep(Duration::from_millis(300));
    let status = terminate(&mut agent, Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", log_text(&log));
    let exs = read_all(&out);
    assert!(exs.iter().any(|e| summary_of(e) == ("GET".into(), "/a.txt".into(), 200)), "{exs:?}");
}
