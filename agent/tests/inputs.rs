//! The agent binary on capture files and pipes: connection ids stay unique whatever `--workers`, a quiet pipe
//! reaches the disk within `--flush-interval` (a SIGKILL then loses nothing older), and `--filter` selects
//! packets of files and pipes as `tcpdump -r FILE EXPR` does.
//!
//! Inputs are generated here (`traffic/`, testgen), so the expected exchanges are known from their content.

mod traffic;

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tapedeck_model::Exchange;
use tapedeck_model::segment::{SegmentReader, list_segments, list_segments_with_tmp};
use tapedeck_testgen::tcp::{Capture, Conn, Endpoint};
use traffic::{capture_file, write_exchanges};

fn agent(out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agent"));
    c.arg("--out").arg(out).args(["--no-default-masking", "--quiet"]);
    c
}

/// Every exchange readable in `files` (finished or `.seg.tmp`), stopping at the first damaged block.
fn exchanges_in(files: &[PathBuf]) -> Vec<Exchange> {
    let mut out = Vec::new();
    for f in files {
        let mut r = SegmentReader::open(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        out.extend(r.exchanges().map_while(Result::ok));
    }
    out
}

fn run_ok(c: &mut Command) {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn paths(exchanges: &[Exchange]) -> BTreeSet<String> {
    exchanges
        .iter()
        .map(|e| String::from_utf8_lossy(&e.request.as_ref().expect("a request").path).into_owned())
        .collect()
}

#[test]
fn connection_ids_are_unique_across_workers() {
    const N: u32 = 300;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    // Exchange i is a connection of its own, from a client address of its own.
    capture_file(&pcap, 0..N);
    for workers in ["4", "1"] {
        let out = dir.path().join(format!("w{workers}"));
        run_ok(agent(&out).arg("--pcap").arg(&pcap).args(["--workers", workers]));
        let all = exchanges_in(&list_segments(&out).unwrap());
        assert_eq!(all.len(), N as usize, "--workers {workers}");
        let mut tuple_of: HashMap<u64, (SocketAddr, SocketAddr)> = HashMap::new();
        for e in &all {
            let prev = tuple_of.insert(e.connection_id, (e.client, e.server));
            assert!(
                prev.is_none_or(|p| p == (e.client, e.server)),
                "--workers {workers}: connection id {} names {:?} and {:?}",
                e.connection_id,
                prev,
                (e.client, e.server)
            );
        }
        assert_eq!(tuple_of.len(), N as usize, "--workers {workers}: one id per connection");
        if workers == "1" {
            let ids: BTreeSet<u64> = tuple_of.keys().copied().collect();
            assert_eq!(ids, (1..=u64::from(N)).collect(), "one worker numbers 1, 2, 3 ...");
        }
    }
}

#[test]
fn a_quiet_pipe_is_on_disk_within_the_flush_interval_so_sigkill_loses_nothing_older() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let capture = |range| {
        let mut cap = Capture::new(Vec::new()).unwrap();
        write_exchanges(&mut cap, range).unwrap();
        cap.finish().unwrap()
    };
    let all = capture(0..20);
    // The second half's bytes: the same capture without the first half's records and the file header.
    let first = capture(0..10);
    let (first, second) = (&all[..first.len()], &all[first.len()..]);
    let mut child = agent(&out)
        .args(["--pcap", "-", "--workers", "2", "--flush-interval", "1s"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The pipe stays open throughout: far below a block's size, nothing but the timer writes.
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(first).unwrap();
    pipe.flush().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    pipe.write_all(second).unwrap();
    pipe.flush().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(pipe);
    let files = list_segments_with_tmp(&out).unwrap_or_default();
    assert!(files.iter().all(|f| f.to_string_lossy().ends_with(".seg.tmp")), "{files:?}");
    let got = exchanges_in(&files);
    let want: BTreeSet<String> = (0..20).map(|i| format!("/item/{i}")).collect();
    assert_eq!(paths(&got), want);
    assert_eq!(got.len(), 20);
}

/// A capture of 6 connections to port 80 and 4 to port 8080 (one `GET /p<port>/<i>` each), and the number of
/// frames of the port-8080 connections.
fn two_services(path: &Path) -> u64 {
    let mut cap = Capture::new(std::io::BufWriter::new(std::fs::File::create(path).unwrap())).unwrap();
    let mut frames_8080 = 0;
    for i in 0..10u16 {
        let port = if i % 5 < 3 { 80 } else { 8080 };
        let before = cap.frames();
        let client = Endpoint { ip: [10, 1, 0, 1 + i as u8], port: 40_000 + i };
        let server = Endpoint { ip: [10, 0, 0, 1], port };
        let mut c = Conn::new(client, server, 1000 * u32::from(i), 7);
        c.handshake(&mut cap).unwrap();
        c.client_data(&mut cap, format!("GET /p{port}/{i} HTTP/1.1\r\nHost: s\r\n\r\n").as_bytes()).unwrap();
        c.server_data(&mut cap, b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        c.close(&mut cap).unwrap();
        if port == 8080 {
            frames_8080 += cap.frames() - before;
        }
    }
    cap.finish().unwrap().flush().unwrap();
    frames_8080
}

#[test]
fn filter_selects_packets_of_files_and_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("two.pcap");
    let frames_8080 = two_services(&pcap);
    let on_80: BTreeSet<String> = [0, 1, 2, 5, 6, 7].iter().map(|i| format!("/p80/{i}")).collect();
    for (n, filter, want) in
        [(0, "tcp port 80", on_80.clone()), (1, "port 80 or tcp port 1", on_80), (2, "tcp port 9", BTreeSet::new())]
    {
        for stdin in [false, true] {
            let out = dir.path().join(format!("f{n}-{stdin}"));
            let stats = dir.path().join(format!("f{n}-{stdin}.json"));
            let mut c = agent(&out);
            c.args(["--filter", filter, "--workers", "2"]).arg("--stats-json").arg(&stats);
            if stdin {
                c.args(["--pcap", "-"]).stdin(std::fs::File::open(&pcap).unwrap());
            } else {
                c.arg("--pcap").arg(&pcap);
            }
            run_ok(&mut c);
            let got = exchanges_in(&list_segments(&out).unwrap_or_default());
            assert_eq!(paths(&got), want, "--filter {filter:?}, stdin {stdin}");
            let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
            let filtered = s["source"]["filtered_out"].as_u64().unwrap();
            let frames = s["source"]["frames"].as_u64().unwrap();
            if want.is_empty() {
                assert_eq!(filtered, frames, "--filter {filter:?}: every packet filtered out");
            } else {
                assert_eq!(filtered, frames_8080, "--filter {filter:?}: the port-8080 packets");
            }
        }
    }
    // A filter libpcap cannot compile is a bad flag, named.
    let o = agent(&dir.path().join("bad")).args(["--pcap"]).arg(&pcap).args(["--filter", "tcp port"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--filter"), "{}", String::from_utf8_lossy(&o.stderr));
}
