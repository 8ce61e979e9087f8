//! Files of ../shared/corpus where tapedeck's count differs from tshark's on purpose, each with the proof: the
//! bytes of the capture are checked here independently of our parsers (a plain search of the raw file), then the
//! exchange we record is asserted. Skipped, with the reason printed, when the corpus is not beside the project.
//!
//! Kinds proven elsewhere on captures of our own: responses whose body never completed (golden.rs:
//! `aborted_download_*`, `lost_segment_*`), heads cut by a snaplen (golden.rs: `snaplen_truncated`), extension
//! methods and malformed request lines (http1 unit tests).

mod support;

use std::path::{Path, PathBuf};

use tapedeck_model::{Exchange, Flags, Protocol};

fn corpus(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus").join(rel);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: {} is not there (the corpus lives in ../shared/corpus)", p.display());
        None
    }
}

fn record(capture: &Path) -> Vec<Exchange> {
    support::record_file(capture).1
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// suricata-verify/http2-errorcode: tshark counts 0 HTTP/1 requests and 1 HTTP/2 request. The client sends
/// `CONNECT 127.0.0.1:6233 HTTP/1.1` to a proxy on 8888 and gets `HTTP/1.1 200 OK`, then speaks HTTP/2 through
/// the tunnel; the proxy relays it on its own connection to 6233. So the gRPC call crosses the capture twice, on
/// two connections: tshark (told to read 8888 as HTTP/2 from its first byte) reads neither the CONNECT nor the
/// tunnelled copy.
#[test]
fn connect_on_port_8888_is_http() {
    let Some(path) = corpus("suricata-verify/http2-errorcode/input.pcap") else { return };
    let raw = std::fs::read(&path).unwrap();
    assert!(contains(&raw, b"CONNECT 127.0.0.1:6233 HTTP/1.1\r\n"), "the request line is in the bytes");
    assert!(contains(&raw, b"HTTP/1.1 200 OK\r\n"), "and its answer");
    let ex = record(&path);
    let connect = ex.iter().find(|e| e.request.as_ref().is_some_and(|r| r.method == b"CONNECT")).unwrap();
    assert_eq!(connect.server.port(), 8888);
    assert_eq!(connect.response.as_ref().unwrap().status, 200);
    assert!(connect.flags.contains(Flags::UPGRADED));
    let grpc: Vec<_> = ex.iter().filter(|e| e.proto == Protocol::H2).collect();
    assert_eq!(grpc.len(), 2, "{ex:#?}");
    let mut ports: Vec<u16> = grpc.iter().map(|e| e.server.port()).collect();
    ports.sort_unstable();
    assert_eq!(ports, [6233, 8888], "one copy through the tunnel, one relayed by the proxy");
    for e in grpc {
        assert_eq!(e.request.as_ref().unwrap().path, b"/helloworld.GreeterService/SayHello");
        assert_eq!(e.response.as_ref().unwrap().status, 200);
    }
    assert_eq!(
        connect.connection_id,
        ex.iter().find(|e| e.server.port() == 8888 && e.proto == Protocol::H2).unwrap().connection_id
    );
}

/// zeek/http/query-method: tshark counts the response but no request, because it does not know the QUERY method
/// (draft-ietf-httpbis-safe-method-w-body). The request line is in the bytes.
#[test]
fn query_method_is_a_request() {
    let Some(path) = corpus("zeek/http/query-method.pcap") else { return };
    let raw = std::fs::read(&path).unwrap();
    assert!(contains(&raw, b"QUERY /"), "the request line is in the bytes");
    let ex = record(&path);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].request.as_ref().unwrap().method, b"QUERY");
    assert_eq!(ex[0].response.as_ref().unwrap().status, 200);
}

/// suricata-verify/http-gap-simple: one response has a segment lost in capture (the client ACKs past it). tshark
/// cannot reassemble that body and counts 2 of the 3 responses; the third response's head is in the bytes.
#[test]
fn response_with_a_lost_segment_is_kept_flagged() {
    let Some(path) = corpus("suricata-verify/http-gap-simple/input.pcap") else { return };
    let ex = record(&path);
    assert_eq!(ex.len(), 3);
    assert!(ex.iter().all(|e| e.request.is_some() && e.response.is_some()));
    let gapped: Vec<_> = ex.iter().filter(|e| e.flags.contains(Flags::GAP)).collect();
    assert_eq!(gapped.len(), 1, "exactly the one with the hole is flagged: {ex:#?}");
}
