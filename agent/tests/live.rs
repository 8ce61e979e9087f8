//! Live capture end to end: two network namespaces joined by a veth pair (created and removed by each test), a
//! real HTTP server (`python3 -m http.server`) in one, real clients (`curl`) and the agent binary on the veth in
//! the other. Checks that the segments hold exactly what the clients did, that /metrics counts it while running,
//! that SIGTERM finishes every segment and exits 0, and that rotation (by size and by age in a quiet period) and
//! retention (by total bytes) work on the live path.
//!
//! Needs root, `ip netns`, `python3` and `curl`; without them each test prints why and returns.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tapedeck_model::Timestamp;
use tapedeck_model::segment::list_segments;

#[test]
fn exchanges_written_are_what_the_clients_did() {
    let mut net = setup!();
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::write(www.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(www.join("b.json"), "{\"b\": 2}\n").unwrap();
    std::fs::write(www.join("sub/index.html"), "<p>sub</p>\n").unwrap();
    net.start_server(&www).unwrap();
    let out = tmp.path().join("segments");
    let log = tmp.path().join("agent.log");
    let mut agent = net.start_agent(&out, &[], &log);

    // What the clients do, and the status each must get.
    let plan: Vec<(&[&str], &str, u16, &str)> = vec![
        (&[], "/a.txt", 200, "GET"),
        (&[], "/b.json", 200, "GET"),
        (&[], "/missing", 404, "GET"),
        (&[], "/sub/", 200, "GET"),
        (&["-I"], "/a.txt", 200, "HEAD"),
        (&["-X", "POST", "-d", "x=1"], "/a.txt?q=1", 501, "POST"),
        (&[], "/a.txt?again", 200, "GET"),
    ];
    let mut expected = Vec::new();
    for (args, path, status, method) in &plan {
        assert_eq!(net.curl(args, path), *status, "curl {args:?} {path}");
        expected.push((method.to_string(), path.to_string(), *status));
    }
    let n = plan.len() as u64;

    // While running: the counters show the traffic (exchanges reach the counters within a tick).
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let (code, text) = net.fetch("/metrics");
        assert_eq!(code, 200);
        let exchanges: u64 = text
            .lines()
            .filter(|l| l.starts_with("tapedeck_exchanges_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        if exchanges == n {
            break text;
        }
        assert!(Instant::now() < deadline, "exchanges_total never reached {n}:\n{text}\n{}", log_text(&log));
        std::thread::sleep(Duration::from_millis(100));
    };
    let iface = &net.client_if;
    // Each exchange is at least a handshake, a request, a response and the closing: 7 packets and more.
    let packets = metric(&text, &format!("tapedeck_packets_total{{interface=\"{iface}\"}}")).unwrap();
    assert!(packets >= 7 * n, "packets {packets}\n{text}");
    assert!(metric(&text, &format!("tapedeck_bytes_total{{interface=\"{iface}\"}}")).unwrap() > 0);
    assert_eq!(metric(&text, &format!("tapedeck_queue_drops_total{{interface=\"{iface}\"}}")), Some(0));
    assert_eq!(metric(&text, &format!("tapedeck_kernel_drops_total{{interface=\"{iface}\"}}")), Some(0));
    assert_eq!(metric(&text, "tapedeck_flows_created_total"), Some(n), "one connection per curl\n{text}");
    assert_eq!(metric(&text, "tapedeck_gaps_total"), Some(0));
    assert_eq!(metric(&text, "tapedeck_parse_errors_total{protocol=\"http1\"}"), Some(0));
    assert_eq!(metric(&text, "tapedeck_flows_evicted_total"), Some(0));

    let started = Instant::now();
    let status = terminate(&mut agent, Duration::from_secs(5));
    assert!(status.success(), "exit {status:?}\n{}", log_text(&log));
    assert!(started.elapsed() < Duration::from_secs(5));
    no_tmp_left(&out);

    let exchanges = read_all(&out);
    let mut got: Vec<(String, String, u16)> = exchanges.iter().map(summary_of).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "agent log:\n{}", log_text(&log));
    for ex in &exchanges {
        assert_eq!(ex.client.ip().to_string(), CLIENT_IP);
        assert_eq!(ex.server.to_string(), format!("{SERVER_IP}:{PORT}"));
        assert!(ex.flags.names().is_empty(), "flags {:?} on {:?}", ex.flags.names(), summary_of(ex));
    }
    let body_of = |path: &str| {
        exchanges
            .iter()
            .find(|e| e.request.as_ref().is_some_and(|r| r.path == path.as_bytes() && r.method == b"GET"))
            .and_then(|e| e.response.as_ref())
            .map(|r| r.body.bytes.clone())
    };
    assert_eq!(body_of("/a.txt").as_deref(), Some(&b"alpha\n"[..]));
    assert_eq!(body_of("/b.json").as_deref(), Some(&b"{\"b\": 2}\n"[..]));
    // Timestamps are wall-clock capture times of this run.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    for ex in &exchanges {
        let t: Timestamp = ex.timing.request_first.expect("request time");
        assert!(t.0 <= now && now - t.0 < 120_000_000_000, "{t:?} vs now {now}");
    }
}

#[test]
fn size_rotation_and_retention_by_bytes_on_the_live_path() {
    let mut net = setup!();
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    // Incompressible bodies of 600 KB: every exchange fills most of a 1 MiB block by itself, so that blocks (and
    // with --segment-max-bytes 1, files) are cut about every two exchanges.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let body: Vec<u8> = (0..600_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(www.join("big.bin"), &body).unwrap();
    net.start_server(&www).unwrap();
    let out = tmp.path().join("segments");
    let log = tmp.path().join("agent.log");
    let retain: u64 = 2_500_000;
    // One worker: the test checks that the newest exchanges are kept in order, and workers interleave
    // connections in the files by when each hands its exchanges over.
    let mut agent = net.start_agent(
        &out,
        &["--segment-max-bytes", "1", "--retain-bytes", &retain.to_string(), "--workers", "1"],
        &log,
    );
    let n = 12;
    for i in 0..n {
        assert_eq!(net.curl(&[], &format!("/big.bin?{i}")), 200);
    }
    // Retention acts while running: wait for deletions to show in /metrics.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = net.fetch("/metrics");
        if metric(&text, "tapedeck_retention_deletions_total").is_some_and(|d| d > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "no retention deletion while running:\n{text}\n{}", log_text(&log));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, text) = net.fetch("/metrics");
    let status = terminate(&mut agent, Duration::from_secs(5));
    assert!(status.success(), "exit {status:?}\n{}", log_text(&log));
    no_tmp_left(&out);

    let files = list_segments(&out).unwrap();
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert!(total <= retain, "{total} bytes left over the {retain} limit in {files:?}");
    assert!(files.len() >= 2, "rotation by size made several files: {files:?}");
    // What is left is the newest: the exchanges of the last requests, in order, none missing between them.
    let mut paths: Vec<(u64, String)> = read_all(&out)
        .iter()
        .map(|e| (e.id, String::from_utf8_lossy(&e.request.as_ref().unwrap().path).into()))
        .collect();
    paths.sort();
    let kept = paths.len();
    assert!(kept >= 1 && kept < n, "kept {kept} of {n}");
    let want: Vec<String> = (n - kept..n).map(|i| format!("/big.bin?{i}")).collect();
    assert_eq!(paths.iter().map(|p| p.1.clone()).collect::<Vec<_>>(), want);
    // The counters agree with the directory: every file finished is either still there or was deleted.
    let deleted_while_running = metric(&text, "tapedeck_retention_deletions_total").unwrap();
    assert!(deleted_while_running >= 1);
    let stderr = log_text(&log);
    assert!(stderr.contains("retention"), "the summary reports retention:\n{stderr}");
    let finished = stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix("files_finished=")?.parse::<usize>().ok())
        .expect("files_finished in the summary");
    let deleted = stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix("deleted_by_size=")?.parse::<usize>().ok())
        .expect("deleted_by_size in the summary");
    eprintln!("{finished} files finished, {deleted} deleted, {} kept with {kept} of {n} exchanges", files.len());
    assert_eq!(finished, files.len() + deleted, "{stderr}");
}

#[test]
fn a_quiet_segment_is_finished_by_age_while_capturing() {
    let mut net = setup!();
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("a.txt"), "alpha\n").unwrap();
    net.start_server(&www).unwrap();
    let out = tmp.path().join("segments");
    let log = tmp.path().join("agent.log");
    let mut agent = net.start_agent(&out, &["--segment-max-age", "1s"], &log);
    assert_eq!(net.curl(&[], "/a.txt"), 200);
    // No traffic from now on: the file must still be finished (renamed to .seg) about a second later.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        if list_segments(&out).is_ok_and(|f| f.len() == 1) {
            break;
        }
        assert!(Instant::now() < deadline, "no finished segment after a quiet period\n{}", log_text(&log));
        std::thread::sleep(Duration::from_millis(100));
    }
    no_tmp_left(&out);
    assert_eq!(net.curl(&[], "/nope"), 404);
    let status = terminate(&mut agent, Duration::from_secs(5));
    assert!(status.success(), "exit {status:?}\n{}", log_text(&log));
    no_tmp_left(&out);
    let files = list_segments(&out).unwrap();
    assert_eq!(files.len(), 2, "one file per quiet-separated exchange: {files:?}");
    let got: Vec<(String, String, u16)> = read_all(&out).iter().map(summary_of).collect();
    assert_eq!(got, vec![("GET".into(), "/a.txt".into(), 200), ("GET".into(), "/nope".into(), 404)]);
}
