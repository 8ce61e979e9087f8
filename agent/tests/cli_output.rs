//! What the agent binary says about itself: `--version` (git revision, backends compiled in), the start line of a
//! live capture, error lines (each cause once, no colour codes when standard error is not a terminal), and what
//! `--iface` says in a build without libpcap.

use std::process::{Command, Output};

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agent"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_names_the_git_revision_and_the_capture_backends() {
    let o = agent().arg("--version").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
    // The revision as git itself gives it, independently of the build script.
    let rev = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let rev = std::env::var("TAPEDECK_GIT_REV").ok().filter(|r| !r.is_empty()).unwrap_or(rev);
    let prefix = format!("agent {} (git {rev}, ebpf: ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&prefix), "{line:?} does not start with {prefix:?}");
    let libpcap = if cfg!(feature = "libpcap") { "yes" } else { "no" };
    assert!(line.ends_with(&format!(", libpcap: {libpcap})")), "{line}");
    let ebpf = line[prefix.len()..].split(',').next().unwrap_or_default();
    assert!(ebpf == "yes" || ebpf == "no", "{line}");
}

#[test]
fn an_error_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let pcap = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/h1-curl-basic.pcap");
    // The output directory cannot be created: its parent is a regular file.
    let o = agent().arg("--pcap").arg(&pcap).arg("--out").arg(file.join("out")).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let line = err.lines().find(|l| l.contains("a-file/out")).unwrap_or_else(|| panic!("no line names the dir: {err}"));
    assert_eq!(line.matches("Not a directory").count(), 1, "{line}");
    assert_eq!(line.matches("a-file/out").count(), 1, "{line}");
}

#[test]
fn no_colour_codes_when_standard_error_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // An unreadable input is logged at ERROR level (the level is coloured on a terminal).
    let o = agent().args(["--pcap", "/nonexistent/x.pcap", "--out"]).arg(dir.path()).output().unwrap();
    let err = stderr(&o);
    assert!(err.contains("ERROR") && err.contains("/nonexistent/x.pcap"), "{err}");
    assert!(!err.contains('\u{1b}'), "escape codes in a pipe: {err:?}");
}

#[cfg(feature = "libpcap")]
#[test]
fn live_capture_starts_with_a_line_saying_what_it_listens_on() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    if !rustix::process::geteuid().is_root() {
        assert!(std::env::var("TAPEDECK_CI").as_deref() != Ok("1"), "TAPEDECK_CI=1: capturing on lo needs root");
        eprintln!("skipped: capturing on lo needs root (CAP_NET_RAW)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("segments");
    let mut child = agent()
        .args(["--iface", "lo", "--filter", "tcp port 9", "--backend", "pcap", "--workers", "1", "--out"])
        .arg(&out)
        .env("TAPEDECK_MASK_KEY_FILE", dir.path().join("mask.key"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let start = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.contains("listening on") => break l,
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("no start line within 20 s: {seen:?}");
            }
        }
    };
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        start,
        format!(
            "agent: listening on lo, link-type EN10MB (Ethernet) with libpcap, filter 'tcp port 9', snapshot length \
             262144 bytes; writing segments to {}",
            out.display()
        )
    );
    assert!(status.success(), "{status:?}");
}

#[cfg(not(feature = "libpcap"))]
#[test]
fn without_libpcap_iface_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = agent()
        .args(["--iface", "lo", "--out"])
        .arg(dir.path().join("o"))
        .env("TAPEDECK_MASK_KEY_FILE", dir.path().join("mask.key"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("lo: this agent was built without libpcap"), "{err}");
    assert!(err.contains("apt-get install libpcap-dev") && err.contains("--backend ebpf"), "{err}");
}
