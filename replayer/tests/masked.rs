//! `replayer run` never sends masked credentials silently: a recording whose requests carry `tdk_` tokens or
//! `[REDACTED]` in header values (as the agent masks them by default) stops before sending, listing the fields,
//! unless `--set-header`, `--token-map` or `--allow-masked` says what to do; `--dry-run` warns. The target is a
//! small hyper server started here that records what it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request as HRequest, Response as HResponse};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tapedeck_model::segment::{SegmentWriter, SegmentWriterConfig};
use tapedeck_model::{Body, Exchange, Flags, Header, Protocol, Request, Response, Timestamp, Timing};

const TOKEN_A: &str = "tdk_0123456789abcdef";
const TOKEN_B: &str = "tdk_fedcba9876543210";

/// (path, headers) of each recorded request; one connection each.
fn recording(reqs: &[(&str, Vec<(&str, String)>)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SegmentWriter::create(SegmentWriterConfig::new(dir.path())).unwrap();
    for (i, (path, headers)) in reqs.iter().enumerate() {
        let t = Some(Timestamp(1_700_000_000_000_000_000 + i as u64 * 1_000_000));
        let ex = Exchange {
            id: i as u64,
            connection_id: i as u64 + 1,
            order: 0,
            stream_id: None,
            proto: Protocol::Http11,
            client: format!("10.0.0.1:{}", 40_000 + i).parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            timing: Timing { request_first: t, request_last: t, response_first: t, response_last: t },
            request: Some(Request {
                method: b"GET".to_vec(),
                scheme: b"http".to_vec(),
                authority: b"api.prod".to_vec(),
                path: path.as_bytes().to_vec(),
                headers: headers.iter().map(|(n, v)| Header::new(*n, v.as_str())).collect(),
                body: Body::default(),
                trailers: vec![],
            }),
            response: Some(Response { status: 200, ..Default::default() }),
            flags: Flags::MASKED,
            labels: vec![],
            masked_by: vec!["auth-headers".into()],
        };
        w.write(&ex).unwrap();
    }
    w.finish().unwrap();
    let p = dir.path().to_path_buf();
    (dir, p)
}

/// Two sessions (A twice, B once) and a redacted cookie.
fn sessions() -> (tempfile::TempDir, PathBuf) {
    recording(&[
        ("/a1", vec![("Authorization", format!("Bearer {TOKEN_A}")), ("Accept", "*/*".into())]),
        ("/b1", vec![("Authorization", format!("Bearer {TOKEN_B}")), ("Cookie", "sid=[REDACTED]; theme=dark".into())]),
        ("/a2", vec![("Authorization", format!("Bearer {TOKEN_A}"))]),
    ])
}

/// (path, headers) of each request received.
type Log = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

fn target() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let log2 = Arc::clone(&log);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let log = Arc::clone(&log2);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: HRequest<Incoming>| {
                        let log = Arc::clone(&log);
                        async move {
                            let mut headers: Vec<(String, String)> = req
                                .headers()
                                .iter()
                                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                                .collect();
                            // The query string, under a name no header can have.
                            headers.extend(req.uri().query().map(|q| ("(query)".to_string(), q.to_string())));
                            log.lock().unwrap().push((req.uri().path().to_string(), headers));
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

fn run(dir: &Path, addr: SocketAddr, args: &[&str]) -> (Output, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_replayer"))
        .arg("run")
        .arg(dir)
        .arg("--target")
        .arg(format!("http://{addr}"))
        .args(["--time-scale", "max", "--no-judge", "--progress", "off"])
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (o, err)
}

fn header(log: &Log, path: &str, name: &str) -> Vec<String> {
    let log = log.lock().unwrap();
    let (_, hs) = log.iter().find(|(p, _)| p == path).unwrap_or_else(|| panic!("{path} not received: {log:?}"));
    hs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.clone()).collect()
}

#[test]
fn masked_credentials_stop_the_run_before_anything_is_sent() {
    let (_d, dir) = sessions();
    let (addr, log) = target();
    let (o, err) = run(&dir, addr, &[]);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("3 of 3 selected requests would send masked credentials"), "{err}");
    assert!(err.contains(&format!("authorization: 3 requests, 2 distinct values ({TOKEN_A}, {TOKEN_B})")), "{err}");
    assert!(err.contains("cookie: 1 request, 1 distinct value ([REDACTED])"), "{err}");
    for way in ["--set-header", "--token-map FILE", "--allow-masked", "nothing was sent"] {
        assert!(err.contains(way), "{way} missing: {err}");
    }
    assert!(log.lock().unwrap().is_empty(), "nothing reaches the target");

    // A dry run shows the same list as a warning and succeeds.
    let (o, err) = run(&dir, addr, &["--dry-run"]);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("warning: 3 of 3 selected requests would send masked credentials"), "{err}");
    assert!(err.contains("cookie: 1 request"), "{err}");
}

#[test]
fn a_token_map_gives_each_recorded_session_its_own_live_credential() {
    let (_d, dir) = sessions();
    let (addr, log) = target();
    let map = dir.parent().unwrap().join(format!("map-{}.toml", std::process::id()));
    std::fs::write(&map, format!("[tokens]\n\"{TOKEN_A}\" = \"live-a\"\n\"{TOKEN_B}\" = \"live-b\"\n")).unwrap();
    let report = dir.join("report.json");
    let mut args = vec!["--token-map", map.to_str().unwrap(), "--set-header", "Cookie: sid=live-cookie"];
    args.extend(["--report", report.to_str().unwrap()]);
    let (o, err) = run(&dir, addr, &args);
    assert!(o.status.success(), "{err}");
    assert_eq!(header(&log, "/a1", "authorization"), ["Bearer live-a"]);
    assert_eq!(header(&log, "/a2", "authorization"), ["Bearer live-a"]);
    assert_eq!(header(&log, "/b1", "authorization"), ["Bearer live-b"]);
    assert_eq!(header(&log, "/b1", "cookie"), ["sid=live-cookie"]);
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(rep["transform"]["tokens_replaced"], 3, "{rep}");

    // A map that covers one session only: the other still stops the run.
    std::fs::write(&map, format!("[tokens]\n\"{TOKEN_A}\" = \"live-a\"\n\"tdk_1111111111111111\" = \"x\"\n")).unwrap();
    log.lock().unwrap().clear();
    let (o, err) = run(&dir, addr, &["--token-map", map.to_str().unwrap(), "--remove-header", "Cookie"]);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("authorization: 1 request, 1 distinct value ({TOKEN_B})")), "{err}");
    assert!(!err.contains("cookie:"), "removed, so not sent: {err}");
    assert!(
        err.contains("1 of 2 keys are in no selected request's header values or query: tdk_1111111111111111"),
        "{err}"
    );
    assert!(log.lock().unwrap().is_empty());

    // A bad map is refused at start, naming the file.
    std::fs::write(&map, "[tokens]\n\"a\" = \"b\\r\\nX-Injected: 1\"\n").unwrap();
    let (o, err) = run(&dir, addr, &["--token-map", map.to_str().unwrap(), "--allow-masked"]);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("--token-map {}", map.display())) && err.contains("\"a\""), "{err}");
    std::fs::remove_file(&map).unwrap();
}

#[test]
fn allow_masked_sends_as_recorded_with_a_warning() {
    let (_d, dir) = sessions();
    let (addr, log) = target();
    let (o, err) = run(&dir, addr, &["--allow-masked"]);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("warning: sending 3 requests with masked credentials as recorded (--allow-masked)"), "{err}");
    assert_eq!(header(&log, "/b1", "authorization"), [format!("Bearer {TOKEN_B}")]);
    assert_eq!(header(&log, "/b1", "cookie"), ["sid=[REDACTED]; theme=dark"]);

    // A recording without masked values runs as before, without a word about masking.
    let (_d2, clean) = recording(&[("/c", vec![("Authorization", "Bearer live".into())])]);
    let (o, err) = run(&clean, addr, &[]);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("masked"), "{err}");
}

#[test]
fn masked_query_parameters_stop_the_run_and_the_token_map_replaces_them() {
    let (_d, dir) = recording(&[("/q?token=".to_string() + TOKEN_A + "&page=2").as_str()].map(|p| (p, vec![])));
    let (addr, log) = target();
    let (o, err) = run(&dir, addr, &[]);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("?token: 1 request, 1 distinct value ({TOKEN_A})")), "{err}");
    assert!(log.lock().unwrap().is_empty(), "nothing reaches the target");

    let map = dir.join("map.toml");
    std::fs::write(&map, format!("[tokens]\n\"{TOKEN_A}\" = \"live-a\"\n")).unwrap();
    let (o, err) = run(&dir, addr, &["--token-map", map.to_str().unwrap()]);
    assert!(o.status.success(), "{err}");
    assert_eq!(header(&log, "/q", "(query)"), ["token=live-a&page=2"]);
}
