//! Live capture end to end: two network namespaces joined by a veth pair (created and removed by each test), a
//! real HTTP server (`python3 -m http.server`) in one, real clients (`curl`) and the agent binary on the veth in
//! the other. Checks that the segments hold exactly what the clients did, that /metrics counts it while running,
//! that SIGTERM finishes every segment and exits 0, and that rotation (by size and by age in a quiet period) and
//! retention (by total bytes) work on the live path; that SIGHUP re-reads the masking policy and the service
//! map (`--service-map`: later exchanges go to the labelled service directory), that idle
//! connections expire and quiet blocks reach disk while no packet arrives, and that a second SIGTERM exits at once.
//!
//! Needs root, `ip netns`, `python3` and `curl`; without them each test prints why and returns.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tapedeck_model::Timestamp;
use tapedeck_model::segment::{SegmentReader, list_segments, list_segments_with_tmp};

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
    net.serve_files(tmp.path(), &[("a.txt", "alpha\n")]);
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

/// Waits until `series` in /metrics reaches `at_least`.
fn wait_metric(net: &Net, series: &str, at_least: u64, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = net.fetch("/metrics");
        if metric(&text, series).is_some_and(|v| v >= at_least) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} did not reach {at_least}:\n{text}\n{}", log_text(log));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn header<'a>(ex: &'a tapedeck_model::Exchange, name: &str) -> Option<&'a [u8]> {
    let req = ex.request.as_ref()?;
    req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name.as_bytes())).map(|h| h.value.as_slice())
}

#[test]
fn sighup_rereads_the_masking_policy() {
    let mut net = setup!();
    let tmp = tempfile::tempdir().unwrap();
    net.serve_files(tmp.path(), &[("a.txt", "alpha\n")]);
    let policy = tmp.path().join("policy.toml");
    let rule = |header: &str| {
        format!(
            "mode = \"extend\"\n\n[[rule]]\nname = \"plan\"\ntarget = \"header\"\nnames = [\"{header}\"]\naction = \"redact\"\n"
        )
    };
    std::fs::write(&policy, rule("x-other")).unwrap();
    let out = tmp.path().join("segments");
    let log = tmp.path().join("agent.log");
    let mut agent = net.start_agent(&out, &["--mask-policy", policy.to_str().unwrap()], &log);
    assert_eq!(net.curl(&["-H", "X-Plan: gold"], "/a.txt?before"), 200);
    wait_metric(&net, "tapedeck_segment_exchanges_written_total", 1, &log);

    // The policy now masks X-Plan; SIGHUP makes the agent read it again.
    std::fs::write(&policy, rule("x-plan")).unwrap();
    run(&["kill", "-HUP", &agent.0.id().to_string()]).unwrap();
    wait_metric(&net, "tapedeck_reloads_total", 1, &log);
    assert_eq!(net.curl(&["-H", "X-Plan: gold"], "/a.txt?after"), 200);
    // A broken policy is refused and the last good one stays.
    std::fs::write(&policy, "mode = \"sideways\"\n").unwrap();
    run(&["kill", "-HUP", &agent.0.id().to_string()]).unwrap();
    wait_metric(&net, "tapedeck_reload_errors_total", 1, &log);
    assert_eq!(net.curl(&["-H", "X-Plan: gold"], "/a.txt?broken"), 200);

    let status = terminate(&mut agent, Duration::from_secs(5));
    assert!(status.success(), "exit {status:?}\n{}", log_text(&log));
    let all = read_all(&out);
    let by_query = |q: &str| {
        all.iter()
            .find(|e| e.request.as_ref().is_some_and(|r| r.path.ends_with(q.as_bytes())))
            .unwrap_or_else(|| panic!("no exchange for {q} in {:?}", all.iter().map(summary_of).collect::<Vec<_>>()))
    };
    assert_eq!(header(by_query("?before"), "x-plan"), Some(&b"gold"[..]), "not masked before the reload");
    for q in ["?after", "?broken"] {
        let ex = by_query(q);
        assert_ne!(header(ex, "x-plan"), Some(&b"gold"[..]), "{q}: masked after the reload");
        assert!(ex.masked_by.iter().any(|r| r == "plan"), "{q}: {:?}", ex.masked_by);
    }
    // The policy changed, so did the fingerprint in the segment headers: the reload started a new file.
    let prints: std::collections::BTreeSet<Vec<u8>> = list_segments(&out)
        .unwrap()
        .iter()
        .map(|f| SegmentReader::open(f).unwrap().header().masking_fingerprint.clone())
        .collect();
    assert_eq!(prints.len(), 2, "two policies, two fingerprints in the headers");
}

#[test]
fn sighup_rereads_the_service_map() {
    let mut net = setup!();
    let tmp = tempfile::tempdir().unwrap();
    net.serve_files(tmp.path(), &[("a.txt", "alpha\n")]);
    let map = tmp.path().join("services.toml");
    std::fs::write(&map, "# no labels yet\n").unwrap();
    let out = tmp.path().join("segments");
    let log = tmp.path().join("agent.log");
    let mut agent = net.start_agent(&out, &["--service-map", map.to_str().unwrap()], &log);
    assert_eq!(net.curl(&[], "/a.txt?before"), 200);
    wait_metric(&net, "tapedeck_segment_exchanges_written_total", 1, &log);
    let (_, text) = net.fetch("/metrics");
    assert_eq!(metric(&text, "tapedeck_service_writers_open"), Some(1), "{text}");

    // The server gets a label; SIGHUP makes the agent read the map again.
    std::fs::write(&map, format!("[[service]]\nlabel = \"web\"\naddr = \"{SERVER_IP}:{PORT}\"\n")).unwrap();
    run(&["kill", "-HUP", &agent.0.id().to_string()]).unwrap();
    wait_metric(&net, "tapedeck_service_map_reloads_total", 1, &log);
    assert_eq!(net.curl(&[], "/a.txt?after"), 200);
    wait_metric(&net, "tapedeck_segment_exchanges_written_total", 2, &log);
    // A broken map is refused (logged, counted) and the last good one stays.
    std::fs::write(&map, "[[service]]\nlabel = \"../web\"\naddr = \"10.0.0.1:80\"\n").unwrap();
    run(&["kill", "-HUP", &agent.0.id().to_string()]).unwrap();
    wait_metric(&net, "tapedeck_service_map_reload_errors_total", 1, &log);
    assert_eq!(net.curl(&[], "/a.txt?broken"), 200);
    wait_metric(&net, "tapedeck_segment_exchanges_written_total", 3, &log);
    let (_, text) = net.fetch("/metrics");
    assert_eq!(metric(&text, "tapedeck_service_map_reloads_total"), Some(1), "{text}");

    let status = terminate(&mut agent, Duration::from_secs(5));
    assert!(status.success(), "exit {status:?}\n{}", log_text(&log));
    assert!(log_text(&log).contains("keeping the previous service map"), "{}", log_text(&log));
    let queries = |dir: &str| -> Vec<String> {
        let mut q: Vec<String> = read_all(&out.join(dir)).iter().map(|e| summary_of(e).1).collect();
        q.sort();
        q
    };
    let by_addr = format!("{SERVER_IP}_{PORT}");
    assert_eq!(queries(&by_addr), ["/a.txt?before"], "before the reload: named by address and port");
    assert_eq!(queries("web"), ["/a.txt?after", "/a.txt?broken"], "after it: the label, kept past the bad map");
    let mut dirs: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    dirs.sort();
    assert_eq!(dirs, [by_addr, "web".to_string()]);
    no_tmp_left(&out);
}

#[test]
fn idle_connections_expire_and_quiet_blocks_reach_disk_while_no_packet_arrives() {
    let mut net = setup!();
    let tmp = tempfile::tempdir().unwrap();
    net.serve_files(tmp.path(), &[("a.txt", "alpha\n")]);
    let out = tmp.path().join("segments");
    let log = tmp.path().join("agent.log");
    let mut agent =
        net.start_agent(&out, &["--idle-timeout", "1s", "--flush-interval", "500ms", "--segment-max-age", "1h"], &log);
    // A client that sends a request, reads the answer (the server closes its side) and keeps its own side open,
    // silent: the connection stays half-open, with no packet after the server's FIN.
    let script = format!(
        "import socket,time\ns=socket.create_connection(('{SERVER_IP}',{PORT}))\n\
         s.sendall(b'GET /a.txt HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n\
         d=b''\nwhile b'alpha' not in d:\n    d+=s.recv(4096)\nprint('ok',flush=True)\ntime.sleep(8)\n"
    );
    let mut client =
        net.in_ns(&net.client_ns, &["python3", "-c", &script]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(client.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "ok");
    // Nothing moves on the wire now; the connection must still be closed as idle about a second later.
    wait_metric(&net, "tapedeck_flows_idle_total", 1, &log);
    let (_, text) = net.fetch("/metrics");
    assert_eq!(metric(&text, "tapedeck_flows_open"), Some(0), "{text}");
    assert!(client.try_wait().unwrap().is_none(), "the client still holds its connection open");
    // The exchange reached disk in the open segment (flushed), before any rotation or shutdown.
    wait_metric(&net, "tapedeck_segment_flushes_total", 1, &log);
    let tmp_files = list_segments_with_tmp(&out).unwrap();
    assert!(list_segments(&out).unwrap().is_empty(), "no file finished yet: {tmp_files:?}");
    let mut seen = Vec::new();
    for f in &tmp_files {
        let mut r = SegmentReader::open(f).unwrap();
        for ex in r.exchanges() {
            seen.push(summary_of(&ex.unwrap()));
        }
    }
    assert_eq!(seen, vec![("GET".to_string(), "/a.txt".to_string(), 200)]);
    let _ = client.kill();
    let _ = client.wait();
    let status = terminate(&mut agent, Duration::from_secs(5));
    assert!(status.success(), "exit {status:?}\n{}", log_text(&log));
}

#[test]
fn a_second_stop_signal_exits_at_once() {
    let net = setup!();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("segments");
    let log = tmp.path().join("agent.log");
    let mut agent = net.start_agent(&out, &[], &log);
    let pid = agent.0.id().to_string();
    // Both signals must arrive before the drain could finish: stop the process, queue SIGINT and SIGTERM (two
    // different signals, so they do not merge), continue it: they are handled one after the other.
    run(&["kill", "-STOP", &pid]).unwrap();
    run(&["kill", "-INT", &pid]).unwrap();
    run(&["kill", "-TERM", &pid]).unwrap();
    run(&["kill", "-CONT", &pid]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = agent.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after two signals");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(130), "{}", log_text(&log));
}
