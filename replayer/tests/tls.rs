//! `replayer run` against an https target: a TLS server started here (rustls, a self-signed certificate made
//! by rcgen for 127.0.0.1) that records the HTTP version and path of every request. With `--ca-cert` the replay
//! works; without it every request fails with the `tls` error kind and the run still completes; `--insecure`
//! works without the certificate; ALPN follows the recording (h2 for HTTP/2, http/1.1 otherwise).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request as HRequest, Response as HResponse};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tapedeck_model::segment::{SegmentWriter, SegmentWriterConfig};
use tapedeck_model::{Exchange, Flags, Protocol, Request, Response, Timestamp, Timing};
use tokio_rustls::rustls;

type Log = Arc<Mutex<Vec<(hyper::Version, String)>>>;

/// Starts the TLS server; returns its address, the PEM of its certificate, and the request log.
fn tls_target() -> (SocketAddr, String, Log) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let pem = ck.cert.pem();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        ck.key_pair.serialize_der(),
    ));
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Log = Arc::default();
    let log2 = Arc::clone(&log);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, log) = (acceptor.clone(), Arc::clone(&log2));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = service_fn(move |req: HRequest<Incoming>| {
                        let log = Arc::clone(&log);
                        async move {
                            log.lock().unwrap().push((req.version(), req.uri().path().to_string()));
                            Ok::<_, Infallible>(HResponse::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
    });
    (addr, pem, log)
}

fn capture(proto: Protocol, n: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = SegmentWriter::create(SegmentWriterConfig::new(dir.path())).unwrap();
    for i in 0..n {
        let t = Some(Timestamp(1_700_000_000_000_000_000 + i * 1_000_000));
        w.write(&Exchange {
            id: i,
            connection_id: 1,
            order: i as u32,
            stream_id: (proto == Protocol::H2).then_some(1 + 2 * i as u32),
            proto,
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "10.0.0.2:443".parse().unwrap(),
            timing: Timing { request_first: t, request_last: t, response_first: t, response_last: t },
            request: Some(Request {
                method: b"GET".to_vec(),
                scheme: b"https".to_vec(),
                authority: b"127.0.0.1".to_vec(),
                path: format!("/tls/{i}").into_bytes(),
                ..Default::default()
            }),
            response: Some(Response { status: 200, ..Default::default() }),
            flags: Flags::NONE,
            labels: vec![],
            masked_by: vec![],
        })
        .unwrap();
    }
    w.finish().unwrap();
    let p = dir.path().to_path_buf();
    (dir, p)
}

fn run(dir: &Path, addr: SocketAddr, args: &[&str]) -> serde_json::Value {
    let report = dir.join("report.json");
    let o = Command::new(env!("CARGO_BIN_EXE_replayer"))
        .arg("run")
        .arg(dir)
        .args(["--target", &format!("https://{addr}"), "--time-scale", "max", "--connect-timeout", "3s"])
        .arg("--report")
        .arg(&report)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
}

#[test]
fn https_with_ca_cert_insecure_and_untrusted() {
    let (addr, pem, log) = tls_target();
    let (_tmp, dir) = capture(Protocol::Http11, 3);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();

    let rep = run(&dir, addr, &["--ca-cert", ca.to_str().unwrap()]);
    assert_eq!((rep["requests"].as_u64(), rep["responses"].as_u64()), (Some(3), Some(3)), "{rep}");
    let got: Vec<(hyper::Version, String)> = std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(got.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(), ["/tls/0", "/tls/1", "/tls/2"]);
    assert!(got.iter().all(|g| g.0 == hyper::Version::HTTP_11), "ALPN http/1.1 for an HTTP/1.1 recording: {got:?}");

    // Not trusted: every request is a `tls` error, the run goes on to the end.
    let rep = run(&dir, addr, &[]);
    assert_eq!((rep["requests"].as_u64(), rep["errors"].as_u64()), (Some(3), Some(3)), "{rep}");
    assert_eq!(rep["error_kinds"]["tls"], 3, "{rep}");
    assert_eq!(rep["client"]["tls_failures"], 3, "{rep}");
    assert!(log.lock().unwrap().is_empty(), "nothing reached the server");

    let rep = run(&dir, addr, &["--insecure"]);
    assert_eq!(rep["responses"], 3, "{rep}");
    log.lock().unwrap().clear();

    // An HTTP/2 recording negotiates h2 by ALPN.
    let (_tmp2, dir2) = capture(Protocol::H2, 2);
    let rep = run(&dir2, addr, &["--ca-cert", ca.to_str().unwrap()]);
    assert_eq!(rep["responses"], 2, "{rep}");
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|g| g.0 == hyper::Version::HTTP_2), "{got:?}");
}

#[test]
fn unreadable_ca_cert_fails_at_start_naming_it() {
    let (_tmp, dir) = capture(Protocol::Http11, 1);
    let o = Command::new(env!("CARGO_BIN_EXE_replayer"))
        .arg("run")
        .arg(&dir)
        .args(["--target", "https://127.0.0.1:1", "--ca-cert", "/nonexistent/ca.pem"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/ca.pem"));
}
