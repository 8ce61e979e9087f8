//! `replayer run` as users run it: segments built here from exchanges with chosen timestamps, replayed by the
//! binary against a small hyper server started by the test on 127.0.0.1 that records what it receives, per
//! connection. Timing assertions are generous: this is behaviour on a busy machine, not a benchmark.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request as HRequest, Response as HResponse};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tapedeck_model::segment::{SegmentWriter, SegmentWriterConfig, list_segments};
use tapedeck_model::{Body, Exchange, Flags, Header, Protocol, Request, Response, Timestamp, Timing};

// ===== captures =====

const BASE: u64 = 1_700_000_000_000_000_000;

struct Ex {
    conn: u64,
    order: u32,
    proto: Protocol,
    at_ms: u64,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
    /// When the response was recorded complete; default 1 ms after the request.
    answered_ms: Option<u64>,
    /// Masking rules recorded for the exchange.
    masked_by: Vec<String>,
}

fn ex(conn: u64, order: u32, proto: Protocol, at_ms: u64, path: &str) -> Ex {
    Ex {
        conn,
        order,
        proto,
        at_ms,
        method: "GET",
        path: path.into(),
        headers: vec![],
        body: "",
        answered_ms: None,
        masked_by: vec![],
    }
}

fn exchange(e: &Ex, id: u64) -> Exchange {
    let t = |ms: u64| Some(Timestamp(BASE + ms * 1_000_000));
    let answered = e.answered_ms.unwrap_or(e.at_ms + 1);
    Exchange {
        id,
        connection_id: e.conn,
        order: e.order,
        stream_id: (e.proto == Protocol::H2).then_some(1 + 2 * e.order),
        proto: e.proto,
        client: format!("10.0.0.1:{}", 40_000 + e.conn).parse().unwrap(),
        server: "10.0.0.2:443".parse().unwrap(),
        // Answered 1 ms after the request: the recording shows every connection sequential.
        timing: Timing {
            request_first: t(e.at_ms),
            request_last: t(e.at_ms),
            response_first: t(answered),
            response_last: t(answered),
        },
        request: Some(Request {
            method: e.method.into(),
            scheme: b"http".to_vec(),
            authority: b"api.prod:443".to_vec(),
            path: e.path.clone().into_bytes(),
            headers: e.headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            body: Body { bytes: e.body.into(), full_len: e.body.len() as u64 },
            trailers: vec![],
        }),
        response: Some(Response { status: 200, ..Default::default() }),
        flags: Flags::NONE,
        labels: vec![],
        masked_by: e.masked_by.clone(),
    }
}

/// Writes the exchanges (one block each, so damage can hit one) into a segment under a fresh directory.
fn capture(exs: &[Ex]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SegmentWriterConfig::new(dir.path());
    cfg.max_block_exchanges = 1;
    let mut w = SegmentWriter::create(cfg).unwrap();
    let mut all: Vec<Exchange> = exs.iter().enumerate().map(|(i, e)| exchange(e, i as u64)).collect();
    all.sort_by_key(|e| e.timing.request_first);
    for e in &all {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

// ===== the target =====

#[derive(Clone, Debug)]
struct Got {
    version: hyper::Version,
    method: String,
    path: String,
    authority: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl Got {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// Requests received, per accepted connection (in accept order).
type Log = Arc<Mutex<Vec<Vec<Got>>>>;

/// Starts an HTTP/1.1 + h2c server on a free port. Paths containing `slow` are answered after 500 ms.
fn target() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let log2 = Arc::clone(&log);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let idx = {
                    let mut l = log2.lock().unwrap();
                    l.push(Vec::new());
                    l.len() - 1
                };
                let log = Arc::clone(&log2);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: HRequest<Incoming>| {
                        let log = Arc::clone(&log);
                        async move {
                            let at = Instant::now();
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                            let authority = parts.uri.authority().map(|a| a.to_string()).unwrap_or_default();
                            let got = Got {
                                version: parts.version,
                                method: parts.method.to_string(),
                                path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                                authority,
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                                    .collect(),
                                body,
                                at,
                            };
                            let slow = got.path.contains("slow");
                            log.lock().unwrap()[idx].push(got);
                            if slow {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                            Ok::<_, Infallible>(HResponse::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    (addr, log)
}

fn replayer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_replayer"))
}

/// Runs `replayer run DIR --target http://ADDR --report FILE ARGS...`, expecting success; returns the output and
/// the report.
fn run(dir: &Path, addr: SocketAddr, args: &[&str]) -> (Output, serde_json::Value) {
    let (o, json) = run_any(dir, addr, args);
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout));
    (o, json)
}

/// [`run`] whatever the exit status; the report must have been written.
fn run_any(dir: &Path, addr: SocketAddr, args: &[&str]) -> (Output, serde_json::Value) {
    let report = dir.join("report.json");
    let o = replayer()
        .arg("run")
        .arg(dir)
        .arg("--target")
        .arg(format!("http://{addr}"))
        .arg("--report")
        .arg(&report)
        .args(args)
        .env("TOKEN", "t0k3n")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&std::fs::read(&report).unwrap_or_default()).unwrap_or_else(|e| {
        panic!("no report ({e}): {}\n{}", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout))
    });
    (o, json)
}

fn paths_per_connection(log: &Log) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> =
        log.lock().unwrap().iter().map(|c| c.iter().map(|g| g.path.clone()).collect()).collect();
    v.retain(|c| !c.is_empty());
    v.sort();
    v
}

// ===== tests =====

#[test]
fn http1_connections_arrive_in_order_with_rewrites() {
    let mut exs = vec![
        ex(1, 0, Protocol::Http11, 0, "/a/1"),
        ex(1, 1, Protocol::Http11, 20, "/a/2?q=1"),
        ex(1, 2, Protocol::Http11, 40, "/a/3"),
        ex(2, 0, Protocol::Http11, 10, "/b/1"),
        ex(2, 1, Protocol::Http11, 30, "/b/2"),
    ];
    exs[1].method = "POST";
    exs[1].body = "{\"n\":1}";
    exs[1].headers = vec![
        ("Host", "api.prod:443"),
        ("Content-Length", "999"),
        ("Authorization", "Bearer recorded"),
        ("Cookie", "secret=1"),
        ("Connection", "keep-alive"),
        ("X-Kept", "yes"),
    ];
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    let (o, rep) = run(
        &dir,
        addr,
        &[
            "--time-scale",
            "max",
            "--rewrite-host",
            "api.prod=api.staging:8080",
            "--allow-host",
            "api.staging",
            "--set-header",
            "Authorization: Bearer ${TOKEN}",
            "--set-header",
            "X-Replay-Id: {{uuid}}",
            "--remove-header",
            "cookie",
        ],
    );
    assert_eq!(
        paths_per_connection(&log),
        vec![vec!["/a/1", "/a/2?q=1", "/a/3"], vec!["/b/1", "/b/2"]],
        "exactly the captured requests, in order, one connection per recorded one"
    );
    let all: Vec<Got> = log.lock().unwrap().iter().flatten().cloned().collect();
    assert!(all.iter().all(|g| g.version == hyper::Version::HTTP_11));
    assert!(all.iter().all(|g| g.header("host") == ["api.staging:8080"]), "{all:?}");
    assert!(all.iter().all(|g| g.header("authorization") == ["Bearer t0k3n"]));
    let ids: std::collections::HashSet<&str> = all.iter().map(|g| g.header("x-replay-id")[0]).collect();
    assert_eq!(ids.len(), 5, "a fresh uuid per request");
    let post = all.iter().find(|g| g.method == "POST").unwrap();
    assert_eq!(post.body, b"{\"n\":1}");
    assert_eq!(post.header("content-length"), ["7"]);
    assert!(post.header("cookie").is_empty() && post.header("connection").is_empty());
    assert_eq!(post.header("x-kept"), ["yes"]);
    assert_eq!(rep["requests"], 5);
    assert_eq!(rep["status_classes"]["2xx"], 5);
    assert_eq!(rep["endpoints"].as_array().unwrap().len(), 5);
    assert!(rep["latency"]["p99_ms"].is_number() && rep["schedule_lag"]["max_ms"].is_number());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("replayed 5 requests") && text.contains("2xx: 5"), "{text}");
}

#[test]
fn http2_streams_share_one_connection_in_order() {
    let mut exs = vec![
        ex(7, 0, Protocol::H2, 0, "/h2/1"),
        ex(7, 1, Protocol::H2, 10, "/h2/2"),
        ex(7, 2, Protocol::H2, 20, "/h2/3"),
        ex(8, 0, Protocol::H2, 5, "/other/1"),
    ];
    for e in &mut exs {
        e.headers = vec![("cookie", "secret=1"), ("x-kept", "yes"), ("authorization", "Bearer recorded")];
    }
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    let (_, rep) = run(
        &dir,
        addr,
        &[
            "--time-scale",
            "max",
            "--rewrite-host",
            "api.prod:443=h2.staging",
            "--allow-host",
            "h2.staging",
            "--rewrite-path",
            "/other=/moved",
            "--remove-header",
            "cookie",
            "--set-header",
            "Authorization: Bearer ${TOKEN}",
        ],
    );
    assert_eq!(paths_per_connection(&log), vec![vec!["/h2/1", "/h2/2", "/h2/3"], vec!["/moved/1"]]);
    let all: Vec<Got> = log.lock().unwrap().iter().flatten().cloned().collect();
    assert!(all.iter().all(|g| g.version == hyper::Version::HTTP_2), "{all:?}");
    assert!(all.iter().all(|g| g.authority == "h2.staging"), "{all:?}");
    assert!(all.iter().all(|g| g.header("cookie").is_empty() && g.header("x-kept") == ["yes"]), "{all:?}");
    assert!(all.iter().all(|g| g.header("authorization") == ["Bearer t0k3n"]), "{all:?}");
    assert_eq!(rep["requests"], 4);
    assert_eq!(rep["plan"]["connections_h2"], 2);

    // --http1 forces HTTP/1.1 on the same recording.
    let (addr, log) = target();
    run(&dir, addr, &["--time-scale", "max", "--http1"]);
    let all: Vec<Got> = log.lock().unwrap().iter().flatten().cloned().collect();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|g| g.version == hyper::Version::HTTP_11));
}

#[test]
fn h2_streams_recorded_concurrent_are_not_held_back_but_http1_waits() {
    // Stream 1 is slow (answered at 600 ms); stream 3 started at 10 ms, while stream 1 was open.
    let run_pair = |proto: Protocol| {
        let mut exs = vec![ex(1, 0, proto, 0, "/slow"), ex(1, 1, proto, 10, "/fast")];
        exs[0].answered_ms = Some(600);
        let (_tmp, dir) = capture(&exs);
        let (addr, log) = target();
        run(&dir, addr, &["--time-scale", "1x"]);
        let all: Vec<Got> = log.lock().unwrap().iter().flatten().cloned().collect();
        assert_eq!(all.len(), 2);
        let at = |p: &str| all.iter().find(|g| g.path == p).unwrap().at;
        at("/fast").duration_since(at("/slow"))
    };
    let h2 = run_pair(Protocol::H2);
    assert!(h2 < Duration::from_millis(300), "h2: /fast multiplexed beside /slow, came {h2:?} after it");
    let h1 = run_pair(Protocol::Http11);
    assert!(h1 >= Duration::from_millis(450), "http/1.1: /fast waits for the slow answer, came {h1:?} after");
}

#[test]
fn ten_x_takes_about_a_tenth_of_the_span() {
    // Five requests over 4 s on two connections: at 10x the sends span about 400 ms.
    let exs: Vec<Ex> =
        (0..5).map(|i| ex(1 + u64::from(i % 2), i / 2, Protocol::Http11, u64::from(i) * 1000, "/t")).collect();
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    let started = Instant::now();
    let (_, rep) = run(&dir, addr, &["--time-scale", "10x"]);
    let wall = started.elapsed();
    let mut times: Vec<Instant> = log.lock().unwrap().iter().flatten().map(|g| g.at).collect();
    times.sort();
    assert_eq!(times.len(), 5);
    let span = times[4] - times[0];
    assert!(span >= Duration::from_millis(330) && span <= Duration::from_millis(1000), "span {span:?}");
    assert!(wall < Duration::from_secs(3), "whole run {wall:?} (1x would be 4 s)");
    let planned = rep["planned_duration_s"].as_f64().unwrap();
    assert!((planned - 0.4).abs() < 1e-6, "planned {planned}");
    assert!((rep["recorded_span_s"].as_f64().unwrap() - 4.0).abs() < 1e-6);
}

#[test]
fn lateness_does_not_accumulate() {
    // One connection, a request every 100 ms for 1 s; the first answer takes 500 ms. The requests behind it are
    // late, but the deadlines are absolute: the last one still goes out about 1 s after the first.
    let exs: Vec<Ex> = (0..11)
        .map(|i| ex(1, i, Protocol::Http11, u64::from(i) * 100, if i == 0 { "/slow" } else { "/fast" }))
        .collect();
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    let (_, rep) = run(&dir, addr, &["--time-scale", "1x"]);
    let mut times: Vec<Instant> = log.lock().unwrap().iter().flatten().map(|g| g.at).collect();
    times.sort();
    assert_eq!(times.len(), 11);
    let last = times[10] - times[0];
    assert!(last >= Duration::from_millis(900) && last <= Duration::from_millis(1300), "last at {last:?}");
    // The request after the slow one waited for its answer: ~400 ms late. Lag is measured and reported.
    let max_lag = rep["schedule_lag"]["max_ms"].as_f64().unwrap();
    assert!(max_lag >= 300.0, "max lag {max_lag}");
    let p50 = rep["schedule_lag"]["p50_ms"].as_f64().unwrap();
    assert!(p50 < max_lag, "most requests are not as late as the worst one: p50 {p50} max {max_lag}");
}

#[test]
fn refused_connections_are_counted_and_the_run_goes_on() {
    let exs =
        vec![ex(1, 0, Protocol::Http11, 0, "/x"), ex(1, 1, Protocol::Http11, 1, "/y"), ex(2, 0, Protocol::H2, 2, "/z")];
    let (_tmp, dir) = capture(&exs);
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed: connections are refused
    let (o, rep) = run(&dir, addr, &["--time-scale", "max"]);
    assert_eq!(rep["requests"], 3);
    assert_eq!(rep["errors"], 3);
    assert_eq!(rep["error_kinds"]["connect_refused"], 3, "{rep}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("connect_refused: 3"));
}

/// A raw TCP target that accepts and then, for every connection, either holds it silently or closes it at once.
fn raw_target(hold: bool) -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            if hold {
                held.push(s);
            } else {
                drop(s);
            }
        }
    });
    addr
}

#[test]
fn silent_and_closing_targets_are_counted_per_request() {
    let exs =
        vec![ex(1, 0, Protocol::Http11, 0, "/x"), ex(1, 1, Protocol::Http11, 1, "/y"), ex(2, 0, Protocol::H2, 2, "/z")];
    let (_tmp, dir) = capture(&exs);
    let started = Instant::now();
    let (_, rep) =
        run(&dir, raw_target(true), &["--time-scale", "max", "--timeout", "300ms", "--connect-timeout", "300ms"]);
    assert_eq!((rep["requests"].as_u64(), rep["errors"].as_u64()), (Some(3), Some(3)), "{rep}");
    let timeouts = rep["error_kinds"]["timeout"].as_u64().unwrap_or(0)
        + rep["error_kinds"]["connect_timeout"].as_u64().unwrap_or(0);
    assert_eq!(timeouts, 3, "{rep}");
    assert!(started.elapsed() < Duration::from_secs(5), "timeouts are applied");

    let (_, rep) = run(&dir, raw_target(false), &["--time-scale", "max"]);
    assert_eq!((rep["requests"].as_u64(), rep["errors"].as_u64()), (Some(3), Some(3)), "{rep}");
    let kinds = rep["error_kinds"].as_object().unwrap();
    assert!(kinds.keys().all(|k| ["closed", "reset", "protocol"].contains(&k.as_str())), "{rep}");
}

#[test]
fn dry_run_sends_nothing_and_says_how_long() {
    let exs = vec![
        ex(1, 0, Protocol::Http11, 0, "/a"),
        ex(1, 1, Protocol::Http11, 2000, "/b"),
        ex(2, 0, Protocol::H2, 1000, "/c"),
    ];
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    let (o, rep) = run(&dir, addr, &["--dry-run", "--time-scale", "2x"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("dry run: 3 requests on 2 connections (1 HTTP/1.x, 1 HTTP/2)"), "{text}");
    assert!(text.contains("would take 1.000 s"), "{text}");
    assert!(text.contains("GET api.prod:443/b"), "{text}");
    assert_eq!(rep["requests"], 0);
    std::thread::sleep(Duration::from_millis(100));
    assert!(log.lock().unwrap().is_empty(), "nothing sent");
}

#[test]
fn filters_select_what_is_replayed() {
    let mut exs = vec![
        ex(1, 0, Protocol::Http11, 0, "/api/users/1"),
        ex(1, 1, Protocol::Http11, 1000, "/api/orders"),
        ex(1, 2, Protocol::Http11, 2000, "/health"),
        ex(2, 0, Protocol::H2, 3000, "/api/users/2"),
    ];
    exs[1].method = "POST";
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    run(&dir, addr, &["--time-scale", "max", "--path-prefix", "/api", "--method", "GET", "--protocol", "h1"]);
    assert_eq!(paths_per_connection(&log), vec![vec!["/api/users/1"]]);
    let (addr, log) = target();
    run(&dir, addr, &["--time-scale", "max", "--from", "1s", "--to", "3s"]);
    assert_eq!(paths_per_connection(&log), vec![vec!["/api/orders", "/health"]]);
    let (addr, log) = target();
    run(&dir, addr, &["--time-scale", "max", "--path-regex", r"^/api/users/\d$", "--limit", "1"]);
    assert_eq!(paths_per_connection(&log), vec![vec!["/api/users/1"]]);
}

#[test]
fn damaged_segment_is_replayed_up_to_the_damage_with_one_warning() {
    let exs: Vec<Ex> = (0..6).map(|i| ex(1, i, Protocol::Http11, u64::from(i) * 10, &format!("/r/{i}"))).collect();
    let (_tmp, dir) = capture(&exs);
    let file = list_segments(&dir).unwrap().remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    // Flip bytes in the middle of the file: one block's checksum fails.
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4] {
        *b ^= 0xff;
    }
    std::fs::write(&file, &bytes).unwrap();
    let (addr, log) = target();
    let (o, rep) = run_any(&dir, addr, &["--time-scale", "max"]);
    let err = String::from_utf8_lossy(&o.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("replayer: warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains(&*file.to_string_lossy()) && warnings[0].contains("offset"), "{err}");
    let got = paths_per_connection(&log);
    let n = got.iter().map(Vec::len).sum::<usize>();
    assert!((4..=5).contains(&n), "the intact blocks are replayed: {got:?}");
    assert_eq!(rep["select"]["files_damaged"], 1);
    // Then the run fails, saying how many exchanges the damaged blocks held (one exchange per block here).
    assert_eq!(o.status.code(), Some(1), "{err}");
    let lost = 6 - n;
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("replayer: input damaged: {lost} exchanges lost in {lost} damaged block")),
        "{err}"
    );
    assert_eq!(rep["select"]["exchanges_lost"].as_u64(), Some(lost as u64), "{rep}");
}

#[test]
fn bad_flags_fail_at_once_naming_the_flag_and_forms() {
    let cases: [(&[&str], &str, &str); 8] = [
        (&["--time-scale", "fast"], "--time-scale", "10x"),
        (&["--max-gap", "2 parsecs"], "--max-gap", "500ms"),
        (&["--timeout", "soon"], "--timeout", "2s"),
        (&["--bogus"], "--bogus", ""),
        (&["--rewrite-path", "v1=/v2"], "--rewrite-path", "/OLD=/NEW"),
        (&["--max-rate", "lots"], "--max-rate", "requests per second"),
        (&["--token-file", "nopath"], "--token-file", "NAME=PATH"),
        (&["--max-selection-bytes", "a lot"], "--max-selection-bytes", "512MiB"),
    ];
    for (args, flag, form) in cases {
        let o = replayer().args(["run", "/nonexistent", "--target", "http://127.0.0.1:1"]).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag) && err.contains(form), "{args:?}: {err}");
    }
    let o = replayer().args(["run", "/nonexistent", "--target", "ftp://x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--target"));
    let o = replayer().args(["run", "/nonexistent", "--target", "http://127.0.0.1:1"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent"));
}

#[test]
fn a_selection_larger_than_its_memory_budget_sends_nothing_and_says_how_to_narrow() {
    let exs: Vec<Ex> = (0..40).map(|i| ex(1, i, Protocol::Http11, u64::from(i) * 10, &format!("/r/{i}"))).collect();
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    let err = run_refused(&dir, addr, &["--time-scale", "max", "--max-selection-bytes", "4KiB"]);
    assert!(err.contains("--max-selection-bytes 4 KiB") && err.contains("--from/--to"), "{err}");
    assert!(err.contains(&*dir.to_string_lossy()), "names the file: {err}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(log.lock().unwrap().is_empty(), "nothing sent");
    // The same budget holds a limited selection: the limit keeps only the earliest while reading.
    let (_, rep) = run(&dir, addr, &["--time-scale", "max", "--max-selection-bytes", "4KiB", "--limit", "3"]);
    assert_eq!((rep["requests"].as_u64(), rep["select"]["over_limit"].as_u64()), (Some(3), Some(37)), "{rep}");
    assert_eq!(paths_per_connection(&log), vec![vec!["/r/0", "/r/1", "/r/2"]]);
}

#[test]
fn missing_env_variable_in_set_header_is_an_error() {
    let o = replayer()
        .args([
            "run",
            "/x",
            "--target",
            "http://127.0.0.1:1",
            "--set-header",
            "Authorization: Bearer ${NO_SUCH_VAR_XYZ}",
        ])
        .env_remove("NO_SUCH_VAR_XYZ")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("NO_SUCH_VAR_XYZ"));
}

/// Runs the replayer expecting it to refuse at start (exit 1); returns standard error.
fn run_refused(dir: &Path, addr: SocketAddr, args: &[&str]) -> String {
    let o = replayer().arg("run").arg(dir).arg("--target").arg(format!("http://{addr}")).args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_har_lists_the_replayed_exchanges() {
    let mut exs = vec![
        ex(1, 0, Protocol::Http11, 0, "/a?x=1"),
        ex(1, 1, Protocol::Http11, 10, "/b"),
        ex(2, 0, Protocol::H2, 5, "/c"),
    ];
    exs[1].method = "POST";
    exs[1].body = "hello";
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    let har = dir.join("replay.har");
    let (_, rep) = run(&dir, addr, &["--time-scale", "max", "--har", har.to_str().unwrap()]);
    assert_eq!(rep["extra"]["har"]["entries"], 3, "{rep}");
    assert_eq!(log.lock().unwrap().iter().flatten().count(), 3);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let entries = v["log"]["entries"].as_array().unwrap();
    let post = entries.iter().find(|e| e["request"]["method"] == "POST").unwrap();
    assert_eq!(post["request"]["postData"]["text"], "hello");
    assert_eq!(post["response"]["content"]["text"], "ok", "the response body as received");
    assert!(entries.iter().all(|e| e["timings"]["wait"].as_f64().unwrap() >= 0.0));
    let Some(got) = common::haralyzer_entries(&har) else { return };
    let mut got: Vec<(String, String, u64, String)> = got
        .iter()
        .map(|e| {
            let s = |i: usize| e[i].as_str().unwrap().to_string();
            (s(0), s(1), e[2].as_u64().unwrap(), s(3))
        })
        .collect();
    got.sort();
    let want = |m: &str, p: &str, v: &str| (m.to_string(), format!("http://api.prod:443{p}"), 200u64, v.to_string());
    assert_eq!(
        got,
        vec![want("GET", "/a?x=1", "HTTP/1.1"), want("GET", "/c", "HTTP/2"), want("POST", "/b", "HTTP/1.1")]
    );
}

#[test]
fn path_rewrites_and_token_files_reread_during_the_run() {
    // Two requests 1.3 s apart at 1x; the token file changes in between.
    let exs = vec![ex(1, 0, Protocol::Http11, 0, "/v1/users?id=1"), ex(1, 1, Protocol::Http11, 1300, "/v10/x")];
    let (_tmp, dir) = capture(&exs);
    let token = dir.join("token");
    std::fs::write(&token, "first-token\n").unwrap();
    let (addr, log) = target();
    let mut child = replayer()
        .arg("run")
        .arg(&dir)
        .args(["--target", &format!("http://{addr}"), "--progress", "off"])
        .args(["--rewrite-path", "/v1=/api/v1", "--token-file", &format!("tok={}", token.display())])
        .args(["--set-header", "Authorization: Bearer {{file.tok}}"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(&token, "second-token\n").unwrap();
    let f = std::fs::File::options().write(true).open(&token).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5)).unwrap();
    assert!(child.wait().unwrap().success());
    let all: Vec<Got> = log.lock().unwrap().iter().flatten().cloned().collect();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].path, "/api/v1/users?id=1");
    assert_eq!(all[1].path, "/v10/x", "/v1 matches whole segments only");
    assert_eq!(all[0].header("authorization"), ["Bearer first-token"]);
    assert_eq!(all[1].header("authorization"), ["Bearer second-token"], "the changed file is read again");

    // {{file.NAME}} without its --token-file is refused at start.
    let err = run_refused(&dir, addr, &["--set-header", "X-T: {{file.nope}}"]);
    assert!(err.contains("--token-file nope"), "{err}");
}

#[test]
fn rewrites_to_hosts_not_named_are_refused_before_sending() {
    let (_tmp, dir) = capture(&[ex(1, 0, Protocol::Http11, 0, "/x")]);
    let (addr, log) = target();
    let err = run_refused(&dir, addr, &["--rewrite-host", "api.prod=db.prod.internal"]);
    assert!(err.contains("db.prod.internal") && err.contains("--allow-host"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(log.lock().unwrap().is_empty(), "nothing sent");
    // The recorded authority goes only into Host: the connection is to the target.
    run(&dir, addr, &["--time-scale", "max"]);
    let all: Vec<Got> = log.lock().unwrap().iter().flatten().cloned().collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].header("host"), ["api.prod:443"]);
}

#[test]
fn max_rate_caps_requests_per_second_whatever_the_scale() {
    // 15 requests due at once (max scale); at 20/s (burst 1) they take about 0.7 s.
    let exs: Vec<Ex> = (0..15u64).map(|i| ex(i, 0, Protocol::Http11, 0, "/r")).collect();
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    run(&dir, addr, &["--time-scale", "max", "--max-rate", "20"]);
    let mut times: Vec<Instant> = log.lock().unwrap().iter().flatten().map(|g| g.at).collect();
    times.sort();
    assert_eq!(times.len(), 15);
    let span = times[14] - times[0];
    assert!(span >= Duration::from_millis(600), "15 requests at 20/s: span {span:?}");
    assert!(span <= Duration::from_millis(2500), "span {span:?}");
}

#[test]
fn masked_request_bodies_are_counted_and_flagged() {
    let mut exs = vec![ex(1, 0, Protocol::Http11, 0, "/login"), ex(1, 1, Protocol::Http11, 1, "/plain")];
    exs[0].method = "POST";
    exs[0].body = r#"{"user":"a","password":"[REDACTED]"}"#;
    exs[0].masked_by = vec!["secret-json-keys".into()];
    exs[1].method = "POST";
    exs[1].body = r#"{"q":1}"#;
    let (_tmp, dir) = capture(&exs);
    let (addr, _log) = target();
    let (o, rep) = run(&dir, addr, &["--time-scale", "max"]);
    assert_eq!(rep["masked_bodies"], 1, "{rep}");
    assert_eq!(rep["plan"]["masked_bodies"], 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("replayed with masked body fields: 1"));
}

#[test]
fn truncated_segment_is_replayed_up_to_the_cut_with_one_warning() {
    let exs: Vec<Ex> = (0..6).map(|i| ex(1, i, Protocol::Http11, u64::from(i) * 10, &format!("/t/{i}"))).collect();
    let (_tmp, dir) = capture(&exs);
    let file = list_segments(&dir).unwrap().remove(0);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (addr, log) = target();
    let (o, rep) = run_any(&dir, addr, &["--time-scale", "max"]);
    let err = String::from_utf8_lossy(&o.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("replayer: warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains(&*file.to_string_lossy()) && warnings[0].contains("offset"), "{err}");
    assert_eq!(o.status.code(), Some(1), "a torn tail lost exchanges: {err}");
    assert!(err.contains("replayer: input damaged: an unknown number of exchanges lost in 1 region(s)"), "{err}");
    let got = paths_per_connection(&log);
    let n = got.iter().map(Vec::len).sum::<usize>();
    assert!((2..6).contains(&n), "what precedes the cut is replayed: {got:?}");
    assert_eq!(got[0][0], "/t/0", "in order from the start");
    assert_eq!(rep["select"]["files_damaged"], 1);
}

/// A 10-second capture: 11 requests one second apart on two connections.
fn ten_seconds() -> Vec<Ex> {
    (0..11).map(|i| ex(1 + u64::from(i % 2), i / 2, Protocol::Http11, u64::from(i) * 1000, "/s")).collect()
}

fn send_span(log: &Log) -> Duration {
    let mut times: Vec<Instant> = log.lock().unwrap().iter().flatten().map(|g| g.at).collect();
    times.sort();
    assert_eq!(times.len(), 11);
    times[10] - times[0]
}

#[test]
fn ten_second_capture_at_10x_takes_about_one_second() {
    let (_tmp, dir) = capture(&ten_seconds());
    let (addr, log) = target();
    let started = Instant::now();
    let (_, rep) = run(&dir, addr, &["--time-scale", "10x"]);
    let span = send_span(&log);
    // The lower bound is exact (no request before its time); the upper bound only tells 10x from slower scales
    // with room for a loaded machine (the lag figures are a benchmark's job: `cargo xtask bench-replay`).
    assert!(span >= Duration::from_millis(950) && span <= Duration::from_millis(3000), "span {span:?}");
    assert!(started.elapsed() < Duration::from_secs(8), "whole run {:?}", started.elapsed());
    assert!((rep["planned_duration_s"].as_f64().unwrap() - 1.0).abs() < 1e-6);
}

#[test]
fn ten_second_capture_at_1x_takes_about_ten_seconds() {
    let (_tmp, dir) = capture(&ten_seconds());
    let (addr, log) = target();
    let (o, rep) = run(&dir, addr, &["--time-scale", "1x"]);
    // Standard error is not a terminal here: plain progress lines every 5 s.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.lines().any(|l| l.starts_with("replayer: 5s: sent ") && l.contains("/11")), "{err}");
    let span = send_span(&log);
    assert!(span >= Duration::from_millis(9950) && span <= Duration::from_millis(10_600), "span {span:?}");
    // Deadlines are absolute: lag stays small over the whole run.
    let max_lag = rep["schedule_lag"]["max_ms"].as_f64().unwrap();
    assert!(max_lag < 300.0, "max lag {max_lag} ms");
    let actual = rep["actual_duration_s"].as_f64().unwrap();
    assert!((9.9..11.0).contains(&actual), "actual duration {actual}");
}

// ===== what a CI job relies on: exit statuses and plain messages =====

#[test]
fn a_flipped_byte_that_loses_everything_fails_the_run_saying_how_many_were_lost() {
    let exs: Vec<Ex> = (0..3).map(|i| ex(1, i, Protocol::Http11, u64::from(i), &format!("/f/{i}"))).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SegmentWriterConfig::new(dir.path());
    cfg.max_block_exchanges = 3;
    let mut w = SegmentWriter::create(cfg).unwrap();
    for (i, e) in exs.iter().enumerate() {
        w.write(&exchange(e, i as u64)).unwrap();
    }
    w.finish().unwrap();
    let file = list_segments(dir.path()).unwrap().remove(0);
    let block = tapedeck_model::segment::SegmentReader::open(&file).unwrap().blocks()[0];
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[block.offset as usize + tapedeck_model::segment::layout::BLOCK_HEADER_LEN + 2] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let (addr, log) = target();
    let err = run_refused(dir.path(), addr, &["--time-scale", "max"]);
    assert!(
        err.contains("0 requests selected (0 read); input damaged: 3 exchanges lost in 1 damaged block(s)"),
        "{err}"
    );
    assert!(log.lock().unwrap().is_empty(), "nothing to send");
}

#[test]
fn an_empty_selection_fails_unless_allowed_and_figures_without_data_are_na() {
    let exs =
        vec![ex(1, 0, Protocol::Http11, 0, "/a"), ex(1, 1, Protocol::Http11, 1, "/b"), ex(2, 0, Protocol::H2, 2, "/c")];
    let (_tmp, dir) = capture(&exs);
    let (addr, log) = target();
    let err = run_refused(&dir, addr, &["--method", "PUT"]);
    assert!(err.contains("replayer: 0 requests selected (3 read, 3 filtered out by --method PUT)"), "{err}");
    assert!(err.contains("--allow-empty"), "{err}");
    let err = run_refused(&dir, addr, &["--path-prefix", "/x", "--dry-run"]);
    assert!(err.contains("0 requests selected (3 read, 3 filtered out by --path-prefix /x)"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = run_refused(empty.path(), addr, &[]);
    assert!(err.contains("no segment files there") && err.contains("0 requests selected (0 read)"), "{err}");

    let (o, rep) = run(&dir, addr, &["--method", "PUT", "--allow-empty"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("replayed 0 requests"), "{out}");
    assert!(out.contains("  latency       n/a\n") && out.contains("  schedule lag  n/a\n"), "{out}");
    assert!(out.contains("pass rate n/a") && !out.contains("100.00%"), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 requests selected (3 read"), "still said");
    assert_eq!(rep["requests"], 0);
    assert!(log.lock().unwrap().is_empty());
}

#[test]
fn output_paths_are_checked_before_anything_is_sent() {
    let (_tmp, dir) = capture(&[ex(1, 0, Protocol::Http11, 0, "/a")]);
    let (addr, log) = target();
    let bad = dir.join("no-such-dir").join("out");
    for flag in ["--report", "--junit", "--har"] {
        let o = replayer()
            .arg("run")
            .arg(&dir)
            .arg("--target")
            .arg(format!("http://{addr}"))
            .arg(flag)
            .arg(&bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{flag}: {err}");
        assert!(err.contains(&format!("{flag} {}", bad.display())) && err.contains("does not exist"), "{err}");
        assert!(!String::from_utf8_lossy(&o.stdout).contains("replayed"), "{flag}: nothing was run");
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(log.lock().unwrap().is_empty(), "nothing sent");
}

#[test]
fn when_every_request_fails_one_plain_line_says_so_with_the_first_cause() {
    let exs = vec![ex(1, 0, Protocol::Http11, 0, "/x"), ex(2, 0, Protocol::Http11, 1, "/y")];
    let (_tmp, dir) = capture(&exs);
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (o, _) = run(&dir, addr, &["--time-scale", "max", "--progress", "off"]);
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("requests failed")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("replayer: all 2 requests failed; first: exchange "), "{err}");
    assert!(lines[0].contains(&format!("connect_refused: connecting to http://{addr}")), "{err}");

    let (addr, _log) = target();
    let (o, _) = run(&dir, addr, &["--time-scale", "max"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("requests failed"), "answered: no such line");
}
