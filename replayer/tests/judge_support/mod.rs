//! Shared by the judge, mock and correlation tests: captures built from exchanges with responses, a target server
//! on 127.0.0.1 whose answers a test can switch at any time, and running the `replayer` binary.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request as HRequest, Response as HResponse};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tapedeck_model::segment::{SegmentWriter, SegmentWriterConfig};
use tapedeck_model::{Body, Exchange, Flags, Header, Protocol, Request, Response, Timestamp, Timing};

const BASE: u64 = 1_700_000_000_000_000_000;

/// One recorded exchange.
#[derive(Clone, Debug)]
pub struct Ex {
    pub conn: u64,
    pub order: u32,
    pub proto: Protocol,
    pub at_ms: u64,
    /// Recorded latency (request first byte to response last byte).
    pub latency_ms: u64,
    pub method: String,
    pub path: String,
    pub req_headers: Vec<(String, String)>,
    pub req_body: Vec<u8>,
    pub status: u16,
    pub resp_headers: Vec<(String, String)>,
    pub resp_body: Vec<u8>,
    pub resp_trailers: Vec<(String, String)>,
    pub client: String,
}

/// A GET on connection `conn` answered 200 with a JSON body.
pub fn get(conn: u64, order: u32, at_ms: u64, path: &str, json: &str) -> Ex {
    Ex {
        conn,
        order,
        proto: Protocol::Http11,
        at_ms,
        latency_ms: 5,
        method: "GET".into(),
        path: path.into(),
        req_headers: vec![],
        req_body: vec![],
        status: 200,
        resp_headers: vec![("content-type".into(), "application/json".into())],
        resp_body: json.as_bytes().to_vec(),
        resp_trailers: vec![],
        client: format!("10.0.0.1:{}", 40_000 + conn),
    }
}

pub fn exchange(e: &Ex, id: u64) -> Exchange {
    let t = |ms: u64| Some(Timestamp(BASE + ms * 1_000_000));
    let hs = |v: &[(String, String)]| v.iter().map(|(n, v)| Header::new(n.as_str(), v.as_str())).collect::<Vec<_>>();
    Exchange {
        id,
        connection_id: e.conn,
        order: e.order,
        stream_id: (e.proto == Protocol::H2).then_some(1 + 2 * e.order),
        proto: e.proto,
        client: e.client.parse().unwrap(),
        server: "10.0.0.2:8080".parse().unwrap(),
        timing: Timing {
            request_first: t(e.at_ms),
            request_last: t(e.at_ms),
            response_first: t(e.at_ms + e.latency_ms),
            response_last: t(e.at_ms + e.latency_ms),
        },
        request: Some(Request {
            method: e.method.clone().into_bytes(),
            scheme: b"http".to_vec(),
            authority: b"api.prod:8080".to_vec(),
            path: e.path.clone().into_bytes(),
            headers: hs(&e.req_headers),
            body: Body { bytes: e.req_body.clone(), full_len: e.req_body.len() as u64 },
            trailers: vec![],
        }),
        response: Some(Response {
            status: e.status,
            reason: vec![],
            headers: hs(&e.resp_headers),
            body: Body { bytes: e.resp_body.clone(), full_len: e.resp_body.len() as u64 },
            trailers: hs(&e.resp_trailers),
            interim: vec![],
        }),
        flags: Flags::NONE,
        labels: vec![],
        masked_by: vec![],
    }
}

/// Writes the exchanges into a segment under a fresh directory.
pub fn capture(exs: &[Ex]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let seg = dir.path().join("seg");
    let mut w = SegmentWriter::create(SegmentWriterConfig::new(&seg)).unwrap();
    let mut all: Vec<Exchange> = exs.iter().enumerate().map(|(i, e)| exchange(e, i as u64 + 1)).collect();
    all.sort_by_key(|e| e.timing.request_first);
    for e in &all {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    (dir, seg)
}

/// A request the target received.
#[derive(Clone, Debug)]
pub struct Got {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the target answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Sent as trailers after the body (HTTP/2; HTTP/1.1 only to a client that asked with `TE: trailers`).
    pub trailers: Vec<(String, String)>,
    pub delay: Duration,
}

/// A response body: the bytes in one frame, then the trailers if there are some.
pub struct WithTrailers {
    data: Option<Bytes>,
    trailers: Option<hyper::HeaderMap>,
}

impl hyper::body::Body for WithTrailers {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let frame = match (this.data.take(), this.trailers.take()) {
            (Some(d), t) => {
                this.trailers = t;
                Some(hyper::body::Frame::data(d))
            }
            (None, Some(t)) => Some(hyper::body::Frame::trailers(t)),
            (None, None) => None,
        };
        std::task::Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match (&self.data, &self.trailers) {
            // Known length without trailers, as `Full` would say: HTTP/1.1 answers keep their Content-Length.
            (d, None) => hyper::body::SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            _ => hyper::body::SizeHint::default(),
        }
    }
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            trailers: vec![],
            delay: Duration::ZERO,
        }
    }
}

pub type Handler = Arc<dyn Fn(&Got) -> Reply + Send + Sync>;

/// A target on 127.0.0.1 (HTTP/1.1 and h2c) answering through a handler that can be switched.
pub struct Target {
    pub addr: SocketAddr,
    handler: Arc<Mutex<Handler>>,
    pub log: Arc<Mutex<Vec<Got>>>,
}

impl Target {
    pub fn start(h: impl Fn(&Got) -> Reply + Send + Sync + 'static) -> Target {
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Arc::new(h)));
        let log: Arc<Mutex<Vec<Got>>> = Arc::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (h2, l2) = (Arc::clone(&handler), Arc::clone(&log));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let (h, l) = (Arc::clone(&h2), Arc::clone(&l2));
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: HRequest<Incoming>| {
                            let (h, l) = (Arc::clone(&h), Arc::clone(&l));
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                                let got = Got {
                                    method: parts.method.to_string(),
                                    path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                                    headers: parts
                                        .headers
                                        .iter()
                                        .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                                        .collect(),
                                    body,
                                };
                                let handler = h.lock().unwrap().clone();
                                let reply = handler(&got);
                                l.lock().unwrap().push(got);
                                if !reply.delay.is_zero() {
                                    tokio::time::sleep(reply.delay).await;
                                }
                                let trailers = (!reply.trailers.is_empty()).then(|| {
                                    let mut t = hyper::HeaderMap::new();
                                    for (n, v) in &reply.trailers {
                                        t.append(
                                            hyper::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                                            hyper::header::HeaderValue::from_str(v).unwrap(),
                                        );
                                    }
                                    t
                                });
                                let data = (!reply.body.is_empty()).then(|| Bytes::from(reply.body));
                                let mut resp = HResponse::new(WithTrailers { data, trailers });
                                *resp.status_mut() = hyper::StatusCode::from_u16(reply.status).unwrap();
                                for (n, v) in reply.headers {
                                    resp.headers_mut().append(
                                        hyper::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                                        hyper::header::HeaderValue::from_str(&v).unwrap(),
                                    );
                                }
                                Ok::<_, Infallible>(resp)
                            }
                        });
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Target { addr, handler, log }
    }

    /// Switches the behaviour.
    pub fn set(&self, h: impl Fn(&Got) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(h);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub fn replayer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_replayer"))
}

/// `replayer run DIR --target URL --time-scale max --report FILE ARGS...`: the output and the report (if written).
pub fn run(dir: &Path, target: &str, args: &[&str]) -> (Output, serde_json::Value) {
    let report = dir.parent().unwrap_or(dir).join(format!("report-{}.json", uuid_like()));
    let o = replayer()
        .arg("run")
        .arg(dir)
        .args(["--target", target, "--time-scale", "max", "--report"])
        .arg(&report)
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let json = std::fs::read(&report).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    (o, json)
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

pub fn text(o: &Output) -> String {
    format!("{}\n--- stderr ---\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}
