//! `gen-testdata`: regenerates the golden captures in testdata/ with real clients and servers inside a private
//! network namespace, writes tshark's reading of each as `<name>.tshark.tsv`, and rewrites
//! testdata/README.md with the exact commands and program versions used.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::capture::{CaptureSpec, Tcpdump};
use crate::netns::Netns;
use crate::oracle::{self, Counts, DecodeAs};
use crate::proc;
use crate::pyapps::{self, GRPC_PORT, HYPERCORN_PORT};
use crate::servers::{self, MTIME_HTTP, NGHTTPD_PORT, NGINX_H2C_PORT, NGINX_PORT, NGINX_V6_PORT};
use crate::tools::{self, Tool};

/// Bound on each client command.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time given to final ACKs before tcpdump is stopped.
const SETTLE: Duration = Duration::from_millis(300);
/// Bound on tcpdump's exit after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Programs this task runs.
const TOOLS: &[Tool] = &[
    tools::IP,
    tools::KILL,
    tools::TCPDUMP,
    tools::TSHARK,
    tools::EDITCAP,
    tools::CAPINFOS,
    tools::H2LOAD,
    tools::NGINX,
    tools::CURL,
    tools::NGHTTP,
    tools::NGHTTPD,
    tools::MICROSOCKS,
    tools::PYTHON3,
];

/// What to do with tcpdump's file before it goes into testdata/.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Post {
    /// Copy as is.
    Copy,
    /// `editcap -F pcapng`.
    Pcapng,
    /// `editcap RAW DEST N`: delete frame N (a segment lost by the capture, while the receiver ACKs it).
    DropFrame(u32),
    /// `editcap -r RAW DEST N-4294967295`: keep frames from N on (a capture that starts in the middle of connections).
    StartAt(u32),
    /// Insert after frame N a forged RST+ACK with a TCP-MD5 option (`tapedeck_testgen::inject`): an injected RST
    /// that the endpoints, not using TCP-MD5, ignore.
    InjectSignedRst(u32),
}

/// One golden capture.
struct Capture {
    name: &'static str,
    about: &'static str,
    spec: CaptureSpec,
    clients: Vec<Command>,
    post: Post,
    decode: Vec<DecodeAs>,
    /// A Python module the servers/clients need (skipped with a note when missing).
    needs: Option<&'static str>,
}

/// Paths the client commands refer to.
struct Env<'a> {
    ns: &'a Netns,
    work: &'a Path,
}

impl Env<'_> {
    fn curl(&self, args: &[&str]) -> Command {
        let mut c = self.ns.command("curl");
        c.args(["-sS", "--max-time", "20"]).args(args);
        c
    }
    fn path(&self, name: &str) -> String {
        self.work.join(name).display().to_string()
    }
}

fn h1(path: &str) -> String {
    format!("http://127.0.0.1:{NGINX_PORT}{path}")
}

fn hc(path: &str) -> String {
    format!("http://127.0.0.1:{HYPERCORN_PORT}{path}")
}

fn h2(path: &str) -> String {
    format!("http://127.0.0.1:{NGHTTPD_PORT}{path}")
}

fn lo_spec(port: u16) -> CaptureSpec {
    CaptureSpec {
        iface: "lo",
        snaplen: None,
        nano: false,
        linktype: None,
        // In immediate mode libpcap uses TPACKET_V2, whose ring slots are snaplen-sized: the default 2 MiB
        // buffer holds only 8 full-snaplen packets and drops under load. 64 MiB holds 256.
        buffer_kib: Some(65536),
        immediate: true,
        filter: format!("tcp port {port}"),
    }
}

const NULL: &str = "/dev/null";

/// The inline Python client for pipelining: three GETs in one write (the last with `Connection: close`), then
/// on a second connection a POST with a body and a GET in one write.
fn pipeline_script() -> String {
    format!(
        r#"import socket
def run(payload):
    s = socket.create_connection(("127.0.0.1", {NGINX_PORT}), timeout=10)
    s.sendall(payload)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    print(data.count(b"HTTP/1.1 "), "responses")
def req(method, path, extra=b"", body=b""):
    head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1:{NGINX_PORT}\r\nUser-Agent: tapedeck-pipeline/1\r\n" % (method, path)
    if body:
        head += b"Content-Type: text/plain\r\nContent-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + body
run(req(b"GET", b"/hello.txt") + req(b"GET", b"/data.json") + req(b"GET", b"/ssi/page.shtml", b"Connection: close\r\n"))
run(req(b"POST", b"/api/echo", body=b"pipelined body") + req(b"GET", b"/hello.txt", b"Connection: close\r\n"))
"#
    )
}

fn captures(env: &Env) -> Vec<Capture> {
    let ns = env.ns;
    let basic_clients = || {
        vec![
            // keep-alive: three URLs, one connection, the last a 404
            env.curl(&["-o", NULL, &h1("/hello.txt"), "-o", NULL, &h1("/data.json"), "-o", NULL, &h1("/missing.txt")]),
            env.curl(&["-I", &h1("/hello.txt")]),
            env.curl(&[
                "-o",
                NULL,
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                r#"{"name":"tapedeck","n":1}"#,
                &h1("/api/echo"),
            ]),
            env.curl(&["-o", NULL, "-X", "PUT", "--data-binary", "put body\n", &h1("/upload/put.txt")]),
            env.curl(&["--http1.0", "-o", NULL, &h1("/hello.txt")]),
            env.curl(&[
                "-o",
                NULL,
                &h1("/empty"),
                "-o",
                NULL,
                "-H",
                &format!("If-Modified-Since: {MTIME_HTTP}"),
                &h1("/hello.txt"),
            ]),
            env.curl(&["-L", "-o", NULL, &h1("/old")]),
        ]
    };
    let small_clients = || {
        vec![
            env.curl(&["-o", NULL, &h1("/hello.txt"), "-o", NULL, &h1("/data.json")]),
            env.curl(&["-o", NULL, "--data-binary", "a=1&b=2", &h1("/api/echo")]),
        ]
    };
    let http = vec![DecodeAs { port: NGINX_PORT, proto: "http" }];
    let mut python = ns.command("python3");
    python.args(["-c", &pipeline_script()]);
    vec![
        Capture {
            name: "h1-curl-basic.pcap",
            about: "curl: keep-alive GET x3 on one connection (200, 200, 404), HEAD, POST with Content-Length, \
                    PUT (WebDAV, 201), HTTP/1.0 GET, 204, 304 via If-Modified-Since (same connection as the 204), \
                    301 redirect followed by curl -L on the same connection",
            spec: lo_spec(NGINX_PORT),
            clients: basic_clients(),
            post: Post::Copy,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-chunked-gzip.pcap",
            about: "chunked response (nginx SSI page with two includes), gzip content-encoded responses \
                    (curl --compressed; also chunked) for a text file and a JSON file",
            spec: lo_spec(NGINX_PORT),
            clients: vec![
                env.curl(&["-o", NULL, &h1("/ssi/page.shtml")]),
                env.curl(&["--compressed", "-o", NULL, &h1("/gz/lorem.txt"), "-o", NULL, &h1("/gz/data.json")]),
            ],
            post: Post::Copy,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-pipelined.pcap",
            about: "Python socket client: 3 pipelined GETs in one write (last one Connection: close; server closes), \
                    then POST-with-body + GET pipelined in one write; curl POST with `Expect: 100-continue` and a \
                    2000-byte body; curl PUT (-T) of a 4000-byte file (curl adds Expect itself)",
            spec: lo_spec(NGINX_PORT),
            clients: vec![
                python,
                env.curl(&[
                    "-o",
                    NULL,
                    "-H",
                    "Expect: 100-continue",
                    "-H",
                    "Content-Type: text/plain",
                    "--data-binary",
                    &format!("@{}", env.path("body-2000.txt")),
                    &h1("/api/echo"),
                ]),
                env.curl(&["-o", NULL, "-T", &env.path("body-4000.txt"), &h1("/upload/expect.txt")]),
            ],
            post: Post::Copy,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-large-body.pcap",
            about: "one GET of /big.bin (204800 bytes, incompressible), MTU-1500 segments, full snaplen",
            spec: lo_spec(NGINX_PORT),
            clients: vec![env.curl(&["-o", NULL, &h1("/big.bin")])],
            post: Post::Copy,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-aborted-download.pcap",
            about: "curl --limit-rate 50K --max-time 1 gives up on /big.bin (204800 bytes): the response body never \
                    completes (tshark counts no response; tapedeck keeps it, flagged)",
            spec: lo_spec(NGINX_PORT),
            clients: vec![{
                let mut c = env.ns.command("sh");
                let url = h1("/big.bin");
                c.args(["-c", &format!("curl -sS --limit-rate 50K --max-time 1 -o {NULL} {url}; true")]);
                c
            }],
            post: Post::Copy,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-lost-segment.pcap",
            about: "one GET of /big.bin with frame 30 (a response data segment) deleted by editcap: the client's \
                    ACKs show it arrived, the capture lost it (tshark counts no response; tapedeck keeps it, \
                    flagged gap)",
            spec: lo_spec(NGINX_PORT),
            clients: vec![env.curl(&["-o", NULL, &h1("/big.bin")])],
            post: Post::DropFrame(30),
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-signed-rst.pcap",
            about: "one GET of /hello.txt, with a forged RST+ACK carrying a TCP-MD5 option inserted after the \
                    handshake (frame 4, by tapedeck_testgen::inject): the endpoints do not use TCP-MD5, so they \
                    ignore it and the exchange goes on, as in suricata-verify's security-4710",
            spec: lo_spec(NGINX_PORT),
            clients: vec![env.curl(&["-o", NULL, &h1("/hello.txt")])],
            post: Post::InjectSignedRst(3),
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-put-keepalive.pcap",
            about: "keep-alive PUT of a 4000-byte body (201) then GET of /data.json on one connection; golden.rs \
                    also reads it with every ACK that directly follows the data it acknowledges moved in front of \
                    it (tapedeck_testgen::inject::acks_before_data), as a mirror port can show them",
            spec: lo_spec(NGINX_PORT),
            clients: vec![env.curl(&[
                "-o",
                NULL,
                "-T",
                &env.path("body-4000.txt"),
                &h1("/upload/keepalive.txt"),
                "-o",
                NULL,
                &h1("/data.json"),
            ])],
            post: Post::Copy,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-snaplen.pcap",
            about: "tcpdump -s 200 (every frame cut to 200 bytes): keep-alive GET x2, POST, GET /big.bin",
            spec: CaptureSpec { snaplen: Some(200), ..lo_spec(NGINX_PORT) },
            clients: {
                let mut c = small_clients();
                c.push(env.curl(&["-o", NULL, &h1("/big.bin")]));
                c
            },
            post: Post::Copy,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-snaplen-request-line.pcap",
            about: "tcpdump -s 96 (30 bytes of TCP payload per frame on loopback): the request line of one GET is \
                    cut inside its version, `GET /hello.txt?pad=1234567 HTT`",
            spec: CaptureSpec { snaplen: Some(96), ..lo_spec(NGINX_PORT) },
            clients: vec![env.curl(&["-o", NULL, &h1("/hello.txt?pad=1234567")])],
            post: Post::Copy,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-socks5.pcap",
            about: "curl through microsocks (SOCKS5, no authentication), captured on the proxy's port only: keep-alive \
                    GET x2 with the target as an IPv4 address (--socks5), one GET with the host name resolved by the \
                    proxy (--socks5-hostname)",
            spec: lo_spec(servers::SOCKS_PORT),
            clients: vec![
                env.curl(&[
                    "--socks5",
                    &format!("127.0.0.1:{}", servers::SOCKS_PORT),
                    "-o",
                    NULL,
                    &h1("/hello.txt"),
                    "-o",
                    NULL,
                    &h1("/data.json"),
                ]),
                env.curl(&[
                    "--socks5-hostname",
                    &format!("127.0.0.1:{}", servers::SOCKS_PORT),
                    "-o",
                    NULL,
                    &format!("http://localhost:{NGINX_PORT}/hello.txt"),
                ]),
            ],
            post: Post::Copy,
            decode: vec![DecodeAs { port: servers::SOCKS_PORT, proto: "socks" }],
            needs: None,
        },
        Capture {
            name: "h1-ipv6.pcap",
            about: "curl over ::1: keep-alive GET x2 and a POST",
            spec: lo_spec(NGINX_V6_PORT),
            clients: vec![
                env.curl(&[
                    "-g",
                    "-o",
                    NULL,
                    &format!("http://[::1]:{NGINX_V6_PORT}/hello.txt"),
                    "-o",
                    NULL,
                    &format!("http://[::1]:{NGINX_V6_PORT}/data.json"),
                ]),
                env.curl(&[
                    "-g",
                    "-o",
                    NULL,
                    "--data-binary",
                    "v6=1",
                    &format!("http://[::1]:{NGINX_V6_PORT}/api/echo"),
                ]),
            ],
            post: Post::Copy,
            decode: vec![DecodeAs { port: NGINX_V6_PORT, proto: "http" }],
            needs: None,
        },
        Capture {
            name: "h1-nanosecond.pcapng",
            about: "pcapng with nanosecond timestamps (tcpdump --time-stamp-precision=nano, then editcap -F pcapng): \
                    keep-alive GET x2, POST",
            spec: CaptureSpec { nano: true, ..lo_spec(NGINX_PORT) },
            clients: small_clients(),
            post: Post::Pcapng,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h1-sll2.pcap",
            about: "tcpdump -i any -y LINUX_SLL2 (Linux cooked v2 link type): keep-alive GET x2, POST",
            spec: CaptureSpec { iface: "any", linktype: Some("LINUX_SLL2"), ..lo_spec(NGINX_PORT) },
            clients: small_clients(),
            post: Post::Copy,
            decode: http.clone(),
            needs: None,
        },
        Capture {
            name: "h2c-prior-knowledge.pcap",
            about: "h2c with prior knowledge against nghttpd: nghttp with 3 URLs x3 (-m 3) = 9 concurrent streams on \
                    one connection; nghttp POST with a body (-d); curl --http2-prior-knowledge GET (200) and another \
                    curl for a 404, one request per curl (curl 7.88.1 fails with `Error in the HTTP2 framing \
                    layer` when it reuses an h2c connection for a second URL, against nghttpd and hypercorn alike)",
            spec: lo_spec(NGHTTPD_PORT),
            clients: {
                let mut a = ns.command("nghttp");
                a.args(["-n", "-m", "3", &h2("/hello.txt"), &h2("/data.json"), &h2("/gz/lorem.txt")]);
                let mut b = ns.command("nghttp");
                b.args(["-n", "-d", &env.path("post-body.json"), &h2("/data.json")]);
                vec![
                    a,
                    b,
                    env.curl(&["--http2-prior-knowledge", "-o", NULL, &h2("/big.bin")]),
                    env.curl(&["--http2-prior-knowledge", "-o", NULL, &h2("/missing.txt")]),
                ]
            },
            post: Post::Copy,
            decode: vec![DecodeAs { port: NGHTTPD_PORT, proto: "http2" }],
            needs: None,
        },
        Capture {
            name: "h2c-nginx.pcap",
            about: "h2c with prior knowledge against nginx (`listen ... http2`): curl --http2-prior-knowledge GET, \
                    a gzip-encoded GET and a HEAD, one request per curl (a POST answered by `return` before its body was read \
                    makes curl 7.88 fail on nginx's RST_STREAM)",
            spec: lo_spec(NGINX_H2C_PORT),
            clients: vec![
                env.curl(&[
                    "--http2-prior-knowledge",
                    "-o",
                    NULL,
                    &format!("http://127.0.0.1:{NGINX_H2C_PORT}/data.json"),
                ]),
                env.curl(&[
                    "--http2-prior-knowledge",
                    "--compressed",
                    "-o",
                    NULL,
                    &format!("http://127.0.0.1:{NGINX_H2C_PORT}/gz/lorem.txt"),
                ]),
                env.curl(&[
                    "--http2-prior-knowledge",
                    "-I",
                    "-o",
                    NULL,
                    &format!("http://127.0.0.1:{NGINX_H2C_PORT}/hello.txt"),
                ]),
            ],
            post: Post::Copy,
            decode: vec![DecodeAs { port: NGINX_H2C_PORT, proto: "http2" }],
            needs: None,
        },
        Capture {
            name: "h2c-mid-stream.pcap",
            about: "a capture that starts in the middle of an h2c connection: h2load -n 40 -c 1 -m 1 (40 sequential \
                    GETs of /hello.txt on one connection) against nghttpd, with the first 40 frames (handshake, \
                    preface, SETTINGS and the first requests, which filled the HPACK tables) removed by editcap -r",
            spec: lo_spec(NGHTTPD_PORT),
            clients: vec![{
                let mut c = env.ns.command("h2load");
                c.args(["-n", "40", "-c", "1", "-m", "1", &h2("/hello.txt")]);
                c
            }],
            post: Post::StartAt(41),
            decode: vec![DecodeAs { port: NGHTTPD_PORT, proto: "http2" }],
            needs: None,
        },
        Capture {
            name: "h2c-upgrade.pcap",
            about: "HTTP/1.1 `Upgrade: h2c` against hypercorn (nghttpd 1.52 does not answer the upgrade: it replies \
                    with HTTP/2 frames to the HTTP/1.1 request): curl --http2 with 2 URLs (the first upgrades with \
                    101 Switching Protocols, the second goes on the upgraded connection), nghttp -u \
                    (stream 1 answered after 101), curl --http2 POST with a body",
            spec: lo_spec(HYPERCORN_PORT),
            clients: {
                let mut u = ns.command("nghttp");
                u.args(["-n", "-u", &hc("/nghttp-upgrade")]);
                vec![
                    env.curl(&["--http2", "-o", NULL, &hc("/first"), "-o", NULL, &hc("/second")]),
                    u,
                    env.curl(&["--http2", "-o", NULL, "--data-binary", "upgrade?", &hc("/post")]),
                ]
            },
            post: Post::Copy,
            decode: vec![DecodeAs { port: HYPERCORN_PORT, proto: "http" }],
            needs: Some("hypercorn"),
        },
        Capture {
            name: "grpc-unary-stream.pcap",
            about: "gRPC (python grpcio) over h2c, one channel: a unary call, a server-streaming call (3 messages), \
                    and a call failing with grpc-status 5 NOT_FOUND",
            spec: lo_spec(GRPC_PORT),
            clients: {
                let mut c = ns.command("python3");
                c.arg(env.path(pyapps::GRPC_FILE)).args(["call", &GRPC_PORT.to_string()]);
                vec![c]
            },
            post: Post::Copy,
            decode: vec![DecodeAs { port: GRPC_PORT, proto: "http2" }],
            needs: Some("grpc"),
        },
        masking_planted(env),
    ]
}

/// The capture of the masking tests: secrets (listed in [`PLANTED`], written to `<capture>.secrets`) planted by
/// real clients in every place the masking rules cover.
pub const MASKING_CAPTURE: &str = "masking-planted.pcap";
/// Port of the Python server of [`MASKING_CAPTURE`] (answers with `Set-Cookie`, a JSON token, a gzip JSON body).
const PLANTED_PORT: u16 = 18090;

/// The planted values, one per place; none may be found in segments written with masking on.
pub const PLANTED: &[&str] = &[
    // HTTP/1.1 (curl to the Python server)
    "PLANTh1BearerTok01",
    "PLANTh1CookieSid02",
    "PLANTh1ApiKey03",
    "PLANTh1QueryTok04",
    "PLANTjsonDeepPw05",
    "4111 1111 1111 1111",
    "PLANTformPw06",
    "PLANTmultipartKey07",
    "5500005555555559",
    "PLANTgzipSecret08",
    "jane.doe@example.org",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVDE3In0.c2lnUExBTlQxNw",
    "AKIAPLANT0AWSKEY0009",
    "PLANTsetCookie10",
    "PLANTrespToken11",
    "PLANTgzipResp12",
    // HTTP/2 (curl --http2-prior-knowledge to nghttpd)
    "PLANTh2Basic13",
    "PLANTh2Cookie14",
    "PLANTh2QueryKey15",
    "PLANTh2JsonTok16",
    "378282246310005",
];

/// The Python program of [`MASKING_CAPTURE`]: an HTTP/1.1 server (keep-alive) in a thread, and curl run against
/// it with the planted values of [`PLANTED`] (by index, so that the list stays the one source).
fn masking_script(work: &Path) -> String {
    let p = |i: usize| PLANTED[i];
    let gz = work.join("planted-request.json.gz").display().to_string();
    format!(
        r#"import gzip, json, subprocess, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.answer()
    def do_POST(self):
        self.answer()
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if self.path.startswith("/login"):
            body = json.dumps({{"access_token": "{resp_token}", "user": {{"name": "jane"}}}}).encode()
            extra = [("Set-Cookie", "session_id={set_cookie}; Path=/; HttpOnly"), ("Content-Type", "application/json")]
        elif self.path.startswith("/token"):
            body = gzip.compress(json.dumps({{"refresh_token": "{gzip_resp}", "expires": 3600}}).encode(), mtime=0)
            extra = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
        else:
            body = b"ok\n"
            extra = [("Content-Type", "text/plain")]
        self.send_response(200)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = ThreadingHTTPServer(("127.0.0.1", {port}), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
with open("{gz}", "wb") as f:
    f.write(gzip.compress(json.dumps({{"client_secret": "{gzip_secret}", "contact": "{email}"}}).encode(), mtime=0))
url = "http://127.0.0.1:{port}"
def curl(*args):
    subprocess.run(["curl", "-sS", "--max-time", "20", "-o", "/dev/null", *args], check=True)
curl("-H", "Authorization: Bearer {bearer}", "-H", "Cookie: theme=dark; sid={cookie}", "-H", "X-Api-Key: {api_key}",
     "-H", "X-Trace-Context: {jwt}", url + "/search?q=shoes&token={query_tok}&page=2")
curl("-H", "Content-Type: application/json", "--data-binary",
     json.dumps({{"user": {{"name": "jane", "profile": {{"settings": {{"password": "{json_pw}", "lang": "en"}}}}}},
                 "items": [{{"card": "{card1}", "qty": 2}}], "note": "key {aws}"}}), url + "/login")
curl("--data-urlencode", "username=jane", "--data-urlencode", "password={form_pw}",
     "--data-urlencode", "comment=write to {email}", url + "/form")
curl("-F", "user=jane", "-F", "api_key={multipart_key}", "-F", "note=card {card2}", url + "/upload")
curl("-H", "Content-Type: application/json", "-H", "Content-Encoding: gzip", "--data-binary", "@{gz}", url + "/token")
srv.shutdown()
print("done")
"#,
        port = PLANTED_PORT,
        bearer = p(0),
        cookie = p(1),
        api_key = p(2),
        query_tok = p(3),
        json_pw = p(4),
        card1 = p(5),
        form_pw = p(6),
        multipart_key = p(7),
        card2 = p(8),
        gzip_secret = p(9),
        email = p(10),
        jwt = p(11),
        aws = p(12),
        set_cookie = p(13),
        resp_token = p(14),
        gzip_resp = p(15),
    )
}

fn masking_planted(env: &Env) -> Capture {
    let mut python = env.ns.command("python3");
    python.args(["-c", &masking_script(env.work)]);
    let p = |i: usize| PLANTED[i];
    let h2_query = h2(&format!("/hello.txt?api_key={}&card={}&q=ok", p(18), p(20)));
    let h2_json = format!(r#"{{"credentials":{{"token":"{}"}},"clean":"visible-h2-marker"}}"#, p(19));
    Capture {
        name: MASKING_CAPTURE,
        about: "masking tests: secrets planted by curl in every place the masking rules cover (testdata/\
                masking-planted.secrets lists them). HTTP/1.1 to a Python http.server: Authorization Bearer, \
                Cookie, X-Api-Key, a JWT in a custom header, ?token=, nested JSON password, card number and AWS \
                key in JSON, urlencoded form (password, e-mail), multipart form (-F api_key, card), a gzip-encoded \
                JSON request body; responses with Set-Cookie, a JSON access_token and a gzip JSON refresh_token. \
                HTTP/2 (curl --http2-prior-knowledge to nghttpd): Authorization Basic, Cookie, ?api_key= and a \
                card in the query, a JSON POST with credentials.token, an e-mail in a header",
        spec: CaptureSpec {
            filter: format!("tcp port {PLANTED_PORT} or tcp port {NGHTTPD_PORT}"),
            ..lo_spec(PLANTED_PORT)
        },
        clients: vec![
            python,
            env.curl(&[
                "--http2-prior-knowledge",
                "-o",
                NULL,
                "-H",
                &format!("Authorization: Basic {}", p(16)),
                "-H",
                &format!("Cookie: session={}", p(17)),
                "-H",
                &format!("X-Contact: {}", p(10)),
                &h2_query,
            ]),
            // One request per curl: curl 7.88 fails to reuse an h2c connection (see h2c-prior-knowledge.pcap).
            env.curl(&[
                "--http2-prior-knowledge",
                "-o",
                NULL,
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &h2_json,
                &h2("/hello.txt"),
            ]),
        ],
        post: Post::Copy,
        decode: vec![DecodeAs { port: PLANTED_PORT, proto: "http" }, DecodeAs { port: NGHTTPD_PORT, proto: "http2" }],
        needs: None,
    }
}

/// What was done for one capture, for the README.
struct Made {
    name: &'static str,
    about: &'static str,
    tcpdump: String,
    clients: Vec<String>,
    post: Option<String>,
    tshark: String,
    capinfos: Vec<(String, String)>,
    counts: Counts,
    dropped: u64,
    tcp: Vec<(&'static str, usize)>,
}

/// Entry point of `cargo xtask gen-testdata`.
/// `only`: make just the captures with these names (the others and README.md are left as they are).
pub fn gen_testdata(out: &Path, only: &[String]) -> Result<()> {
    tools::require(TOOLS)?;
    tools::require_root()?;
    crate::netns::check_supported()?;
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let tmp = tempfile::Builder::new().prefix("tapedeck-testdata-").tempdir()?;
    let work = tmp.path();
    let www = servers::www_dir(work);
    let files = servers::write_site(&www)?;
    fs::write(work.join("body-2000.txt"), body_of(2000))?;
    fs::write(work.join("body-4000.txt"), body_of(4000))?;
    fs::write(work.join("post-body.json"), br#"{"query":"tapedeck","limit":10}"#)?;
    let conf_text = servers::nginx_conf(work, &www, true);
    let conf = work.join("nginx.conf");
    fs::write(&conf, &conf_text)?;
    fs::create_dir_all(work.join("cap"))?;

    // Declared before the servers so it is dropped (deleted) after they are stopped.
    let ns = Netns::create(true)?;
    let (mut nginx, nginx_shown) = servers::start_nginx(&ns, work, &conf)?;
    let (mut nghttpd, nghttpd_shown) = servers::start_nghttpd(&ns, work, &www)?;
    let (mut socks, socks_shown) = servers::start_microsocks(&ns, work)?;
    let mut shown = vec![nginx_shown, nghttpd_shown, socks_shown];
    let mut optional = Vec::new();
    let mut skipped = Vec::new();
    let starters: [(&str, StartFn); 2] = [("hypercorn", servers::start_hypercorn), ("grpc", servers::start_grpc)];
    for (module, start) in starters {
        if pyapps::python_has(module) {
            let (daemon, line) = start(&ns, work)?;
            optional.push(daemon);
            shown.push(line);
        }
    }
    let env = Env { ns: &ns, work };
    let mut made = Vec::new();
    for cap in captures(&env) {
        if !only.is_empty() && !only.iter().any(|o| o == cap.name) {
            continue;
        }
        if let Some(module) = cap.needs
            && !pyapps::python_has(module)
        {
            eprintln!("skipping {}: python3 module `{module}` is not installed", cap.name);
            skipped.push(format!("{} (python3 module `{module}` not installed)", cap.name));
            continue;
        }
        eprintln!("capturing {}", cap.name);
        nginx.ensure_running()?;
        nghttpd.ensure_running()?;
        socks.ensure_running()?;
        for d in &mut optional {
            d.ensure_running()?;
        }
        let name = cap.name;
        made.push(make_one(&ns, work, out, cap).with_context(|| format!("while making {name}"))?);
        if name == MASKING_CAPTURE {
            let list: String = PLANTED.iter().map(|p| format!("{p}\n")).collect();
            fs::write(out.join(format!("{}.secrets", MASKING_CAPTURE.trim_end_matches(".pcap"))), list)?;
        }
    }
    for o in only {
        if !made.iter().any(|m| m.name == o) && !skipped.iter().any(|s| s.starts_with(o.as_str())) {
            bail!("--only {o}: no capture of that name");
        }
    }
    nginx.stop(Duration::from_secs(10))?;
    nghttpd.stop(Duration::from_secs(10))?;
    socks.stop(Duration::from_secs(10))?;
    for mut d in optional {
        let _ = d.stop(Duration::from_secs(10));
    }

    if only.is_empty() {
        let readme = readme(&made, &skipped, &ns, &files, &conf_text, &shown, work);
        fs::write(out.join("README.md"), readme)?;
    } else {
        eprintln!("--only: README.md left as it is (a run without --only rewrites it)");
    }
    for m in &made {
        let c = m.counts;
        eprintln!(
            "{:<26} {:>4} pkts  h1 req {:>2} resp {:>2} (1xx {})  h2 req {:>2} resp {:>2}  conns {}",
            m.name,
            oracle::packet_count(&m.capinfos).unwrap_or(0),
            c.h1_requests,
            c.h1_responses,
            c.h1_interim,
            c.h2_requests,
            c.h2_responses,
            c.connections
        );
    }
    Ok(())
}

fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| if i % 64 == 63 { b'\n' } else { b'a' + (i % 26) as u8 }).collect()
}

/// Attempts per capture: a capture with kernel drops is thrown away and made again.
const ATTEMPTS: u32 = 3;

fn make_one(ns: &Netns, work: &Path, out: &Path, mut cap: Capture) -> Result<Made> {
    for attempt in 1..=ATTEMPTS {
        match make_attempt(ns, work, out, &mut cap)? {
            Some(made) => return Ok(made),
            None => eprintln!("  {}: tcpdump dropped packets (attempt {attempt}/{ATTEMPTS}); again", cap.name),
        }
    }
    bail!("{}: tcpdump dropped packets in {ATTEMPTS} attempts", cap.name)
}

/// One attempt; `Ok(None)` if tcpdump reported kernel drops.
fn make_attempt(ns: &Netns, work: &Path, out: &Path, cap: &mut Capture) -> Result<Option<Made>> {
    // PUT answers 201 only for a new file: start every attempt with an empty upload directory.
    let upload = servers::www_dir(work).join("upload");
    let _ = fs::remove_dir_all(&upload);
    fs::create_dir_all(&upload)?;
    let raw = work.join("cap").join(format!("{}.raw.pcap", cap.name));
    let dest = out.join(cap.name);
    let mut tcpdump = Tcpdump::start(ns, &cap.spec, &raw, work, cap.name)?;
    let tcpdump_shown = tcpdump.shown.clone();
    let mut clients = Vec::new();
    for client in &mut cap.clients {
        clients.push(shorten(&ns.show(client), work));
        let res = proc::run_ok(client, CLIENT_TIMEOUT);
        tcpdump.ensure_running()?;
        res.with_context(|| format!("client failed while capturing {}", cap.name))?;
    }
    let stats = tcpdump.stop(SETTLE, STOP_TIMEOUT)?;
    if stats.dropped_by_kernel > 0 {
        return Ok(None);
    }
    let post = match cap.post {
        Post::Copy => {
            fs::copy(&raw, &dest).with_context(|| format!("copying to {}", dest.display()))?;
            None
        }
        Post::Pcapng => {
            let mut cmd = Command::new("editcap");
            cmd.args(["-F", "pcapng"]).arg(&raw).arg(&dest);
            let shown = proc::describe(&cmd);
            proc::run_ok(&mut cmd, Duration::from_secs(60))?;
            Some(shown)
        }
        Post::DropFrame(n) => {
            let mut cmd = Command::new("editcap");
            cmd.arg(&raw).arg(&dest).arg(n.to_string());
            let shown = proc::describe(&cmd);
            proc::run_ok(&mut cmd, Duration::from_secs(60))?;
            Some(shown)
        }
        Post::StartAt(n) => {
            let mut cmd = Command::new("editcap");
            cmd.arg("-r").arg(&raw).arg(&dest).arg(format!("{n}-{}", u32::MAX));
            let shown = proc::describe(&cmd);
            proc::run_ok(&mut cmd, Duration::from_secs(60))?;
            Some(shown)
        }
        Post::InjectSignedRst(n) => {
            let bytes = fs::read(&raw).with_context(|| format!("reading {}", raw.display()))?;
            let edited = tapedeck_testgen::inject::inject_signed_rst(&bytes, n)
                .with_context(|| format!("{}: injecting the RST", raw.display()))?;
            fs::write(&dest, edited).with_context(|| format!("writing {}", dest.display()))?;
            Some(format!("tapedeck_testgen::inject::inject_signed_rst(raw, {n})"))
        }
    };
    // Frames the edit removed (negative: added).
    let removed: i64 = match cap.post {
        Post::DropFrame(_) => 1,
        Post::StartAt(n) => i64::from(n.saturating_sub(1)),
        Post::InjectSignedRst(_) => -1,
        Post::Copy | Post::Pcapng => 0,
    };
    let info = oracle::capinfos(&dest)?;
    let packets = oracle::packet_count(&info).context("capinfos gave no packet count")?;
    if packets as i64 + removed != stats.captured as i64 {
        bail!("{}: tcpdump reported {} packets captured but the file holds {packets}", cap.name, stats.captured);
    }
    let tsv_path = out.join(format!("{}.tshark.tsv", cap.name));
    let tsv = oracle::write_tsv(&dest, &cap.decode, &tsv_path)?;
    let mut tshark = oracle::tshark_command(Path::new(cap.name), &cap.decode);
    tshark.arg(">").arg(tsv_path.file_name().unwrap_or_default());
    Ok(Some(Made {
        name: cap.name,
        about: cap.about,
        tcpdump: shorten(&tcpdump_shown, work).replace(&format!("$WORK/cap/{}.raw.pcap", cap.name), "$RAW"),
        clients,
        post: post.map(|p| shorten(&p, work).replace(&format!("$WORK/cap/{}.raw.pcap", cap.name), "$RAW")),
        tshark: proc::describe(&tshark).replace("'>'", ">"),
        capinfos: info,
        counts: oracle::count(&tsv),
        dropped: stats.dropped_by_kernel,
        tcp: oracle::tcp_analysis(&dest)?,
    }))
}

/// Replaces the temporary work directory with `$WORK` and drops testdata/ prefixes.
fn shorten(s: &str, work: &Path) -> String {
    s.replace(&work.display().to_string(), "$WORK")
}

fn readme(
    made: &[Made],
    skipped: &[String],
    ns: &Netns,
    files: &[(String, String)],
    conf: &str,
    servers_shown: &[String],
    work: &Path,
) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "# testdata: golden captures\n");
    let _ = writeln!(
        r,
        "Generated by `cargo xtask gen-testdata` (xtask/src/testdata.rs); do not edit by hand. Every capture was made \
         with real clients and servers on the loopback interface of a private network namespace, and every \
         `<capture>.tshark.tsv` is tshark's own reading of the capture, the oracle for golden tests.\n"
    );
    let _ = writeln!(r, "Regenerate (as root; needs the programs listed below): `cargo xtask gen-testdata`.\n");
    let _ = writeln!(r, "## Environment\n");
    let mut versions = vec![("kernel".to_string(), kernel())];
    for t in TOOLS {
        versions.push((t.program.to_string(), tools::version(*t)));
    }
    for pkg in ["hypercorn", "h2", "grpcio"] {
        versions.push((format!("pip {pkg}"), pyapps::pip_version(pkg)));
    }
    for (p, v) in versions {
        let _ = writeln!(r, "- `{p}`: {v}");
    }
    let _ = writeln!(r, "\n## Setup\n");
    let _ = writeln!(
        r,
        "`$WORK` is a temporary directory, `$NS` the namespace (`{}` during generation, named after the pid). \
         Loopback inside it gets MTU 1500 and no GSO, so TCP segments are at most 1448 payload bytes, as on \
         Ethernet, rather than 64 KB loopback super-packets. Ports are fixed (the namespace is empty): nginx \
         `127.0.0.1:{NGINX_PORT}` and `[::1]:{NGINX_V6_PORT}`, nghttpd `127.0.0.1:{NGHTTPD_PORT}`, hypercorn `127.0.0.1:{HYPERCORN_PORT}`, gRPC `127.0.0.1:{GRPC_PORT}`. Servers are \
         polled with curl until they answer, before any capture starts.\n",
        ns.name()
    );
    let _ = writeln!(r, "```sh");
    for line in &ns.setup {
        let _ = writeln!(r, "{}", line.replace(ns.name(), "$NS"));
    }
    for line in servers_shown {
        let _ = writeln!(r, "{} &", shorten(line, work));
    }
    let _ = writeln!(r, "```\n");
    let _ = writeln!(r, "Served files (`$WORK/www`, every mtime 2024-01-01T00:00:00Z = `{MTIME_HTTP}`):\n");
    for (path, what) in files {
        let _ = writeln!(r, "- `{path}`: {what}");
    }
    let _ = writeln!(
        r,
        "\nRequest bodies: `$WORK/body-2000.txt`, `$WORK/body-4000.txt` (lines of `abc…` letters, 64 bytes per \
         line), `$WORK/post-body.json` = `{{\"query\":\"tapedeck\",\"limit\":10}}`.\n"
    );
    let _ = writeln!(r, "nginx config (`$WORK/nginx.conf`):\n\n```nginx\n{}```\n", shorten(conf, work));
    let _ = writeln!(r, "hypercorn app (`$WORK/{}`):\n\n```python\n{}```\n", pyapps::H2C_APP_FILE, pyapps::H2C_APP);
    let _ = writeln!(
        r,
        "gRPC server and client (`$WORK/{}`):\n\n```python\n{}```\n",
        pyapps::GRPC_FILE,
        pyapps::GRPC_SCRIPT
    );
    if !skipped.is_empty() {
        let _ = writeln!(r, "Skipped in this run: {}.\n", skipped.join(", "));
    }
    let _ = writeln!(
        r,
        "Each capture: tcpdump is started and waited for (`listening on` on stderr), the clients run one after \
         another (each must exit 0), then after {} ms tcpdump gets SIGINT and is waited for; the file's packet \
         count (capinfos) must equal tcpdump's `packets captured`. `$RAW` is tcpdump's output file.\n",
        SETTLE.as_millis()
    );
    let _ = writeln!(r, "TSV columns (tab-separated, header line, display filter `{}`):", oracle::FILTER);
    let _ = writeln!(r, "{}\n", oracle::FIELDS.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "));
    let _ = writeln!(r, "## Summary (counts from the TSVs)\n");
    let _ = writeln!(
        r,
        "| file | packets | size | HTTP/1 requests | HTTP/1 responses (1xx) | HTTP/2 request HEADERS | HTTP/2 response HEADERS | TCP connections |"
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|");
    for m in made {
        let c = m.counts;
        let get = |k: &str| m.capinfos.iter().find(|(key, _)| key == k).map_or("?", |(_, v)| v.as_str());
        let _ = writeln!(
            r,
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {} |",
            m.name,
            get("Number of packets"),
            get("File size"),
            c.h1_requests,
            c.h1_responses,
            c.h1_interim,
            c.h2_requests,
            c.h2_responses,
            c.connections
        );
    }
    for m in made {
        let _ = writeln!(r, "\n## {}\n\n{}.\n", m.name, m.about);
        let _ = writeln!(r, "```sh\n{} &", m.tcpdump);
        for c in &m.clients {
            let _ = writeln!(r, "{c}");
        }
        let _ = writeln!(r, "kill -INT $TCPDUMP_PID; wait  # tcpdump: {} packets dropped by kernel", m.dropped);
        match &m.post {
            Some(p) => {
                let _ = writeln!(r, "{p}");
            }
            None => {
                let _ = writeln!(r, "cp $RAW testdata/{}", m.name);
            }
        }
        let _ = writeln!(r, "{}\n```\n", m.tshark);
        for (k, v) in &m.capinfos {
            let _ = writeln!(r, "- {k}: {v}");
        }
        let tcp: Vec<String> = m.tcp.iter().map(|(label, n)| format!("{n} {label}")).collect();
        let _ = writeln!(r, "- tshark TCP analysis (frames): {}", tcp.join(", "));
    }
    r
}

fn kernel() -> String {
    proc::run(Command::new("uname").arg("-r"), Duration::from_secs(5))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The default output directory: `testdata/` at the workspace root.
pub fn default_out() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("testdata")
}

/// Starts an optional server; returns it and its README command line.
type StartFn = fn(&Netns, &Path) -> Result<(proc::Daemon, String)>;
