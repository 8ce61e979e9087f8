//! `replayer mock` as users run it: started on a capture, then `replayer run` replays the same capture against
//! it (every answer must match the recording), requests it never saw are answered 502 and counted, metrics are
//! read over HTTP, and SIGTERM ends it with a stats line.

mod judge_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use judge_support::*;
use tapedeck_model::Protocol;

struct MockProc {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    /// Lines before the one saying where it listens (warnings).
    before: Vec<String>,
}

impl MockProc {
    fn start(dir: &std::path::Path, args: &[&str]) -> MockProc {
        let mut child = replayer()
            .arg("mock")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut before = Vec::new();
        let first = loop {
            let l = lines.recv_timeout(Duration::from_secs(20)).expect("the mock says where it listens");
            if l.starts_with("mock: serving") {
                break l;
            }
            before.push(l);
        };
        let addr = first.rsplit("http://").next().unwrap().trim().parse().unwrap_or_else(|_| panic!("{first}"));
        MockProc { child, addr, lines, before }
    }

    /// SIGTERM, then the exit status and what it printed after the first line.
    fn stop(mut self) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        // The shell's built-in kill: a minimal system (debootstrap minbase, slim images) has no /bin/kill.
        let kill = std::process::Command::new("sh").args(["-c", &format!("kill -TERM {pid}")]).status();
        assert!(kill.is_ok_and(|s| s.success()), "could not send SIGTERM to the mock ({pid})");
        let status = self.child.wait().unwrap();
        // Everything it printed: the reader thread ends at the end of its standard error, after the exit.
        let mut rest = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            rest.push(l);
        }
        (status.code(), rest.join("\n"))
    }
}

impl Drop for MockProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// A plain HTTP/1.1 request; returns status line, headers and body.
fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: deps.local\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

fn grpc_message(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn dependency_capture() -> (tempfile::TempDir, std::path::PathBuf) {
    let mut again = get(1, 1, 10, "/users/1", r#"{"id":1,"name":"second answer"}"#);
    again.resp_headers.push(("etag".into(), "\"v2\"".into()));
    let mut post = get(1, 2, 20, "/orders", r#"{"order":"ord-1"}"#);
    post.method = "POST".into();
    post.req_body = br#"{"sku":"a"}"#.to_vec();
    post.status = 201;
    let mut grpc = get(2, 0, 30, "/shop.Catalog/Get", "");
    grpc.proto = Protocol::H2;
    grpc.method = "POST".into();
    grpc.req_headers = vec![("content-type".into(), "application/grpc".into())];
    grpc.req_body = grpc_message(b"\x08\x01");
    grpc.resp_headers = vec![("content-type".into(), "application/grpc".into())];
    grpc.resp_body = grpc_message(b"\x0a\x03abc");
    grpc.resp_trailers = vec![("grpc-status".into(), "0".into())];
    capture(&[
        get(1, 0, 0, "/users/1", r#"{"id":1,"name":"first answer"}"#),
        again,
        post,
        get(1, 3, 25, "/items?page=2", "[1,2,3]"),
        grpc,
    ])
}

#[test]
fn a_replay_against_the_mock_matches_everything_and_unseen_requests_are_counted() {
    let (_tmp, dir) = dependency_capture();
    let mock = MockProc::start(&dir, &[]);
    let url = format!("http://{}", mock.addr);
    // The mock answers the capture's own requests exactly as recorded: the judge passes every one, in order
    // (the two GET /users/1 get their two different answers), gRPC status from the trailers included.
    let (o, rep) = run(&dir, &url, &["--fail-if", "pass_rate < 1", "--header", "etag"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(rep["judge"]["judged"], 5, "{}", rep["judge"]);
    assert_eq!(rep["judge"]["compare"]["bodies_grpc"], 1);

    let (_, _, m) = http(mock.addr, "GET", "/__tapedeck/metrics");
    assert_eq!(metric(&m, "tapedeck_mock_requests_total{result=\"matched\"}"), 5.0);
    assert_eq!(metric(&m, "tapedeck_mock_requests_total{result=\"unmatched\"}"), 0.0);
    assert_eq!(metric(&m, "tapedeck_mock_matched_total{level=\"exact\"}"), 5.0);
    assert_eq!(metric(&m, "tapedeck_mock_match_ratio"), 1.0);

    let (status, head, body) = http(mock.addr, "GET", "/never/seen");
    assert_eq!(status, 502);
    assert!(head.contains("x-tapedeck-mock: unmatched; reason=path-not-recorded"), "{head}");
    assert!(body.contains("/never/seen"));
    let (status, head, _) = http(mock.addr, "DELETE", "/orders");
    assert_eq!(status, 502);
    assert!(head.contains("reason=method-not-recorded"), "{head}");
    // Fallback: a query never recorded is served the answer without the query.
    let (status, head, body) = http(mock.addr, "GET", "/items?page=9");
    assert_eq!((status, body.as_str()), (200, "[1,2,3]"));
    assert!(head.contains("level=without_query"), "{head}");

    let (_, _, m) = http(mock.addr, "GET", "/__tapedeck/metrics");
    assert_eq!(metric(&m, "tapedeck_mock_requests_total{result=\"unmatched\"}"), 2.0);
    // `/metrics` is the same page (the recording has no `/metrics` of its own), and is not counted as a request.
    let (status, _, plain) = http(mock.addr, "GET", "/metrics");
    assert_eq!(status, 200);
    assert_eq!(metric(&plain, "tapedeck_mock_requests_total{result=\"unmatched\"}"), 2.0);
    assert!((metric(&m, "tapedeck_mock_match_ratio") - 6.0 / 8.0).abs() < 1e-9);

    let (code, err) = mock.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("mock: unmatched GET /never/seen (path-not-recorded)"), "{err}");
    assert!(
        err.contains("mock: 8 requests, 6 matched") && err.contains("2 unmatched") && err.contains("75.00%"),
        "{err}"
    );
}

#[test]
fn client_selection_serves_one_service_outbound_traffic() {
    let mut theirs = get(2, 0, 5, "/other", "{}");
    theirs.client = "10.0.0.9:5000".into();
    let (_tmp, dir) = capture(&[get(1, 0, 0, "/mine", "{}"), theirs]);
    let mock = MockProc::start(&dir, &["--client", "10.0.0.1", "--unmatched-status", "599"]);
    assert_eq!(http(mock.addr, "GET", "/mine").0, 200);
    assert_eq!(http(mock.addr, "GET", "/other").0, 599, "another client's traffic is not served");
    let (code, err) = mock.stop();
    assert_eq!(code, Some(0));
    assert!(err.contains("1 matched") && err.contains("1 unmatched"), "{err}");

    let o = replayer().args(["mock", "/x", "--match", "method,colour"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("colour"));
    let o = replayer().args(["mock", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("127.0.0.1:8081"));
}

#[test]
fn a_mock_over_its_memory_budget_does_not_start_and_names_its_own_flags() {
    let mut exs: Vec<_> = (0..30).map(|i| get(1, i, u64::from(i), &format!("/mine/{i}"), "{}")).collect();
    let mut theirs = get(2, 0, 5, "/other", &"x".repeat(64 << 10));
    theirs.client = "10.0.0.9:5000".into();
    exs.push(theirs);
    let (_tmp, dir) = capture(&exs);
    let o = replayer()
        .arg("mock")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--max-selection-bytes", "32KiB"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--max-selection-bytes 32 KiB") && err.contains("--client, --service"), "{err}");
    assert!(!err.contains("--limit"), "a flag the mock does not have: {err}");
    // Selecting one client drops the other's large answer while reading: the same budget holds.
    let mock = MockProc::start(&dir, &["--client", "10.0.0.1", "--max-selection-bytes", "32KiB"]);
    assert_eq!(http(mock.addr, "GET", "/mine/29").0, 200);
    let (code, err) = mock.stop();
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_recorded_metrics_path_is_served_from_the_recording_and_the_mock_metrics_stay_reachable() {
    let (_tmp, dir) = capture(&[get(1, 0, 0, "/metrics", "recorded_metric 7")]);
    let mock = MockProc::start(&dir, &[]);
    let (status, _, body) = http(mock.addr, "GET", "/metrics");
    assert_eq!((status, body.as_str()), (200, "recorded_metric 7"), "the recording wins");
    let (_, _, m) = http(mock.addr, "GET", "/__tapedeck/metrics");
    assert_eq!(metric(&m, "tapedeck_mock_requests_total{result=\"matched\"}"), 1.0);
    let (code, err) = mock.stop();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("/metrics is in the recording"), "{err}");
}

#[test]
fn a_mock_stopped_before_any_request_has_a_match_rate_of_na() {
    let (_tmp, dir) = dependency_capture();
    let mock = MockProc::start(&dir, &[]);
    let (code, rest) = mock.stop();
    assert_eq!(code, Some(0), "{rest}");
    assert!(rest.contains("mock: 0 requests, 0 matched") && rest.contains("match rate n/a"), "{rest}");
}

#[test]
fn a_mock_on_damaged_input_says_how_much_was_lost_and_exits_1() {
    let (_tmp, dir) = dependency_capture();
    let file = tapedeck_model::segment::list_segments(&dir).unwrap().remove(0);
    let block = tapedeck_model::segment::SegmentReader::open(&file).unwrap().blocks()[0];
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[block.offset as usize + tapedeck_model::segment::layout::BLOCK_HEADER_LEN + 3] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let mock = MockProc::start(&dir, &[]);
    let warned = mock.before.join("\n");
    assert!(warned.contains("input damaged: 5 exchanges lost in 1 damaged block(s)"), "{warned}");
    let (code, rest) = mock.stop();
    assert_eq!(code, Some(1), "{rest}");
    assert!(rest.contains("input damaged: 5 exchanges lost"), "{rest}");
}
