//! Segments split by service (`agent --split-by-service`: one subdirectory of the output directory per service)
//! are found by `replayer inspect` and `replayer run` given the output directory, and by each given one service
//! directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use tapedeck_agent::pipeline::{CaptureConfig, ServicesConfig, run_files};

/// Records three bundled captures (three servers) split by service; returns the output directory.
fn record_split() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("segments");
    let mut cfg = CaptureConfig::default();
    cfg.writer.dir = out.clone();
    cfg.services = Some(ServicesConfig { max_open: 8, ..ServicesConfig::default() });
    let inputs: Vec<PathBuf> = ["h1-curl-basic.pcap", "h1-ipv6.pcap", "h2c-nginx.pcap"]
        .iter()
        .map(|f| Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(f))
        .collect();
    let summary = run_files(&inputs, cfg, &mut ()).unwrap();
    assert_eq!(summary.writer.exchanges, 17);
    (dir, out)
}

fn replayer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_replayer"))
}

#[test]
fn inspect_reads_every_service_directory() {
    let (_dir, out) = record_split();
    assert!(std::fs::read_dir(&out).unwrap().all(|e| e.unwrap().file_type().unwrap().is_dir()), "only dirs");
    let o = replayer().arg("inspect").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    // tshark sees 11 + 3 + 3 requests in the three captures.
    assert_eq!(text.lines().count(), 17, "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("[::1]:18086")).count(), 3, "{text}");
    // One service directory alone.
    let o = replayer().arg("inspect").arg(out.join("127.0.0.1_18083")).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn run_plans_the_exchanges_of_every_service_directory() {
    let (_dir, out) = record_split();
    let o = replayer().arg("run").arg(&out).arg("--dry-run").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("dry run: 17 requests"), "{text}");
}
