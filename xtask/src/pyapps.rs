//! Small inline Python programs used as servers/clients where the apt tools cannot do the job: an ASGI app
//! for hypercorn (nghttpd does not answer `Upgrade: h2c`) and a gRPC server/client (grpcio, generic handlers,
//! messages hand-encoded as protobuf `message Text { string text = 1; }`). Both need pip packages
//! (`pip install hypercorn grpcio`); captures that need them are skipped with a note when missing.

use std::process::Command;
use std::time::Duration;

use crate::proc;

/// Port of hypercorn (h2c upgrade and HTTP/1.1).
pub const HYPERCORN_PORT: u16 = 18084;
/// Port of the gRPC server.
pub const GRPC_PORT: u16 = 18085;

/// Module file name of the ASGI app.
pub const H2C_APP_FILE: &str = "h2c_app.py";

/// ASGI app served by hypercorn: fixed bodies, 404 for `/missing`, reads (and counts) request bodies.
pub const H2C_APP: &str = r#"# ASGI app for `python3 -m hypercorn h2c_app:app` (written by cargo xtask gen-testdata)
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    received = 0
    while True:
        event = await receive()
        received += len(event.get("body", b""))
        if not event.get("more_body"):
            break
    if scope["path"] == "/missing":
        status, body = 404, b"not found\n"
    else:
        status, body = 200, b"hello over h2c: %s (%d request body bytes)\n" % (scope["path"].encode(), received)
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"#;

/// File name of the gRPC script.
pub const GRPC_FILE: &str = "grpc_tiny.py";

/// `python3 grpc_tiny.py serve PORT` / `python3 grpc_tiny.py call PORT`.
pub const GRPC_SCRIPT: &str = r#"# Tiny gRPC server and client (written by cargo xtask gen-testdata).
# Service tapedeck.test.Echo, messages are protobuf `message Text { string text = 1; }` encoded by hand.
import sys
from concurrent import futures
import grpc

SERVICE = "tapedeck.test.Echo"

def enc(text):
    b = text.encode()
    assert len(b) < 128
    return b"\x0a" + bytes([len(b)]) + b

def dec(data):
    return data[2:].decode() if data[:1] == b"\x0a" else ""

def unary(req, ctx):
    return "echo: " + req

def server_stream(req, ctx):
    for i in range(3):
        yield "item %d for %s" % (i, req)

def fail(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, "no such item: " + req)

def serve(port):
    h = lambda kind, f: kind(f, request_deserializer=dec, response_serializer=enc)
    handlers = {
        "Unary": h(grpc.unary_unary_rpc_method_handler, unary),
        "ServerStream": h(grpc.unary_stream_rpc_method_handler, server_stream),
        "Fail": h(grpc.unary_unary_rpc_method_handler, fail),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)])
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()

def call(port):
    opts = [("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel("127.0.0.1:%d" % port, options=opts) as ch:
        m = lambda kind, name: kind("/%s/%s" % (SERVICE, name), request_serializer=enc, response_deserializer=dec)
        print(m(ch.unary_unary, "Unary")("ping", timeout=10))
        print(list(m(ch.unary_stream, "ServerStream")("abc", timeout=10)))
        try:
            m(ch.unary_unary, "Fail")("42", timeout=10)
            sys.exit("Fail did not fail")
        except grpc.RpcError as e:
            print(e.code(), e.details())

if __name__ == "__main__":
    (serve if sys.argv[1] == "serve" else call)(int(sys.argv[2]))
"#;

/// True if `python3 -c "import MODULE"` succeeds.
pub fn python_has(module: &str) -> bool {
    proc::run(Command::new("python3").args(["-c", &format!("import {module}")]), Duration::from_secs(30))
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The version of an installed pip package, via importlib.metadata.
pub fn pip_version(package: &str) -> String {
    let code = format!("import importlib.metadata as m; print(m.version('{package}'))");
    proc::run(Command::new("python3").args(["-c", &code]), Duration::from_secs(30))
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(|| "not installed".into(), |o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}
