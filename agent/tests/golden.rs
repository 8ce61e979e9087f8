//! Golden tests: the agent on the captures in testdata/ (made by real clients and servers, see
//! testdata/README.md) must find the same requests and final responses that tshark found in them
//! (`<capture>.tshark.tsv`, written by `cargo xtask gen-testdata`, never by hand).
//!
//! Compared per capture: the multiset of (method, path) of requests, and the multiset of final status codes
//! (1xx interim responses are kept inside exchanges by tapedeck, so they are left out of tshark's side).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tapedeck_agent::pipeline::{CaptureConfig, RunSummary, run_files};
use tapedeck_model::segment::{SegmentReader, list_segments};
use tapedeck_model::{Exchange, Flags};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// Runs the whole pipeline on one capture and reads back what was written.
pub fn record(capture: &Path) -> (RunSummary, Vec<Exchange>) {
    support::record_file(capture)
}

type Multiset = BTreeMap<String, usize>;

/// tshark's requests and final statuses from the TSV.
fn oracle(tsv: &Path) -> (Multiset, Multiset) {
    let text = std::fs::read_to_string(tsv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (m1, u1, s1) = (col("http.request.method"), col("http.request.uri"), col("http.response.code"));
    let (m2, p2, s2) = (col("http2.headers.method"), col("http2.headers.path"), col("http2.headers.status"));
    let mut requests = Multiset::new();
    let mut statuses = Multiset::new();
    let split =
        |s: &str| -> Vec<String> { if s.is_empty() { Vec::new() } else { s.split(',').map(str::to_string).collect() } };
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        for (m, p) in [(m1, u1), (m2, p2)] {
            let (methods, paths) = (split(get(m)), split(get(p)));
            assert_eq!(methods.len(), paths.len(), "{}: unaligned columns in {line}", tsv.display());
            for (m, p) in methods.into_iter().zip(paths) {
                *requests.entry(format!("{m} {p}")).or_default() += 1;
            }
        }
        for s in [s1, s2] {
            for code in split(get(s)) {
                if !code.starts_with('1') {
                    *statuses.entry(code).or_default() += 1;
                }
            }
        }
    }
    (requests, statuses)
}

fn ours(exchanges: &[Exchange]) -> (Multiset, Multiset) {
    let mut requests = Multiset::new();
    let mut statuses = Multiset::new();
    for ex in exchanges {
        if let Some(r) = &ex.request {
            let key = format!("{} {}", String::from_utf8_lossy(&r.method), String::from_utf8_lossy(&r.path));
            *requests.entry(key).or_default() += 1;
        }
        if let Some(r) = &ex.response {
            *statuses.entry(r.status.to_string()).or_default() += 1;
        }
    }
    (requests, statuses)
}

fn check_against_tshark(name: &str) -> Vec<Exchange> {
    check_file_against_tshark(&testdata().join(name), name)
}

/// [`check_against_tshark`] on `capture`, an edited copy of testdata's `name` that must read the same.
fn check_file_against_tshark(capture: &Path, name: &str) -> Vec<Exchange> {
    let tsv = testdata().join(format!("{name}.tshark.tsv"));
    let (summary, exchanges) = record(capture);
    assert!(summary.inputs[0].error.is_none(), "{name}: {:?}", summary.inputs[0].error);
    let (want_req, want_status) = oracle(&tsv);
    let (got_req, got_status) = ours(&exchanges);
    assert_eq!(got_req, want_req, "{name}: requests differ from tshark's");
    assert_eq!(got_status, want_status, "{name}: final statuses differ from tshark's");
    exchanges
}

#[test]
fn curl_basic() {
    let ex = check_against_tshark("h1-curl-basic.pcap");
    assert!(ex.iter().all(|e| e.flags.is_empty()), "clean capture has flags: {ex:#?}");
    assert!(ex.iter().any(|e| e.proto == tapedeck_model::Protocol::Http10));
    let head = ex.iter().find(|e| e.request.as_ref().unwrap().method == b"HEAD").unwrap();
    assert_eq!(head.response.as_ref().unwrap().body.full_len, 0, "HEAD response has no body");
}

#[test]
fn chunked_and_gzip() {
    let ex = check_against_tshark("h1-chunked-gzip.pcap");
    for e in &ex {
        let resp = e.response.as_ref().unwrap();
        assert!(!resp.body.bytes.is_empty());
        assert_eq!(resp.body.bytes.len() as u64, resp.body.full_len);
    }
    let gz = ex.iter().filter(|e| e.response.as_ref().unwrap().body.bytes.starts_with(&[0x1f, 0x8b])).count();
    assert_eq!(gz, 2, "the two gzip bodies are stored as sent (content-encoding kept)");
}

#[test]
fn pipelined_and_100_continue() {
    let ex = check_against_tshark("h1-pipelined.pcap");
    let with_interim = ex.iter().filter(|e| e.response.as_ref().is_some_and(|r| !r.interim.is_empty())).count();
    assert_eq!(with_interim, 2, "both 100-continue answers are kept inside their exchange");
    assert!(ex.iter().all(|e| e.flags.is_empty()), "{ex:#?}");
}

#[test]
fn large_body() {
    let ex = check_against_tshark("h1-large-body.pcap");
    let body = &ex[0].response.as_ref().unwrap().body;
    assert!(body.full_len >= 200_000, "full length {}", body.full_len);
    assert_eq!(body.bytes.len() as u64, body.full_len);
}

#[test]
fn large_body_cut_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CaptureConfig::default();
    cfg.writer.dir = dir.path().to_path_buf();
    cfg.session.http1.max_body = 1000;
    let summary = run_files(&[testdata().join("h1-large-body.pcap")], cfg, &mut ()).unwrap();
    assert_eq!(summary.exchanges.flagged(Flags::TRUNCATED), 1);
    let file = &list_segments(dir.path()).unwrap()[0];
    let ex: Vec<_> = SegmentReader::open(file).unwrap().exchanges().map(Result::unwrap).collect();
    let body = &ex[0].response.as_ref().unwrap().body;
    assert_eq!(body.bytes.len(), 1000);
    assert!(body.full_len >= 200_000);
    assert!(ex[0].flags.contains(Flags::TRUNCATED));
}

#[test]
fn ipv6() {
    let ex = check_against_tshark("h1-ipv6.pcap");
    assert!(ex.iter().all(|e| e.client.is_ipv6()));
}

#[test]
fn pcapng_nanosecond() {
    let ex = check_against_tshark("h1-nanosecond.pcapng");
    // tshark's TSV carries nanosecond epoch times; ours must have sub-microsecond digits too.
    assert!(ex.iter().any(|e| e.timing.request_first.unwrap().as_nanos() % 1000 != 0));
}

#[test]
fn linux_cooked_v2() {
    check_against_tshark("h1-sll2.pcap");
}

#[test]
fn snaplen_truncated() {
    // tshark finds 2 of the 4 responses here: the other two have their heads cut by the 200-byte snaplen so it
    // gives up on them, while their status lines were captured. tapedeck keeps them, flagged.
    let capture = testdata().join("h1-snaplen.pcap");
    let (_, ex) = record(&capture);
    let (want_req, want_status) = oracle(&testdata().join("h1-snaplen.pcap.tshark.tsv"));
    let (got_req, got_status) = ours(&ex);
    assert_eq!(got_req, want_req);
    for (code, n) in &want_status {
        assert!(got_status.get(code).copied().unwrap_or(0) >= *n, "tshark's status {code} missing: {got_status:?}");
    }
    assert!(
        ex.iter().any(|e| e.flags.contains(Flags::SNAPLEN) || e.flags.contains(Flags::GAP)),
        "snaplen-cut bytes must be flagged"
    );
}

#[test]
fn request_line_cut_inside_its_version() {
    // tcpdump -s 96 left 30 bytes of the request: `GET /hello.txt?pad=1234567 HTT`. tshark still reads a request
    // there, and so do we, flagged: the rest of its head was never captured.
    let ex = check_against_tshark("h1-snaplen-request-line.pcap");
    let req = ex[0].request.as_ref().expect("the cut request");
    assert_eq!((&req.method[..], &req.path[..]), (&b"GET"[..], &b"/hello.txt?pad=1234567"[..]));
    assert!(ex[0].flags.contains(Flags::GAP) && ex[0].flags.contains(Flags::INCOMPLETE), "{:?}", ex[0].flags);
}

#[test]
fn through_a_socks5_proxy() {
    // curl through microsocks: each connection starts with the SOCKS5 handshake, then HTTP to the target. Every
    // request is read from its first byte, not found by scanning: nothing is flagged mid-stream.
    let ex = check_against_tshark("h1-socks5.pcap");
    assert_eq!(ex.len(), 3);
    assert!(ex.iter().all(|e| e.flags.is_empty()), "{:?}", ex.iter().map(|e| e.flags).collect::<Vec<_>>());
    let (summary, _) = record(&testdata().join("h1-socks5.pcap"));
    assert_eq!(summary.sessions.socks_handshakes, 2);
}

#[test]
fn an_injected_rst_signed_with_tcp_md5_is_ignored() {
    // Frame 4 is a forged RST carrying a TCP-MD5 option on a connection whose SYNs carry none: the endpoints
    // discard it (RFC 2385) and the GET and its response follow on the same connection.
    let ex = check_against_tshark("h1-signed-rst.pcap");
    assert_eq!(ex.len(), 1);
    assert!(ex[0].flags.is_empty(), "{:?}", ex[0].flags);
    let (summary, _) = record(&testdata().join("h1-signed-rst.pcap"));
    assert_eq!((summary.reassembly.resets, summary.reassembly.resets_ignored_signed), (1, 1));
}

#[test]
fn acks_captured_before_the_data_they_acknowledge() {
    // The same capture with every ACK that directly follows the data it acknowledges moved in front of it, as a
    // mirror port can show them: the acknowledged bytes arrive a moment later, so nothing is a gap.
    let name = "h1-put-keepalive.pcap";
    let ex = check_against_tshark(name);
    assert!(ex.iter().all(|e| e.flags.is_empty()), "{:?}", ex.iter().map(|e| e.flags).collect::<Vec<_>>());
    let original = std::fs::read(testdata().join(name)).unwrap();
    let (edited, moved) = tapedeck_testgen::inject::acks_before_data(&original).unwrap();
    assert!(moved >= 2, "the edit moved {moved} ACKs");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(name);
    std::fs::write(&path, edited).unwrap();
    let ex_edited = check_file_against_tshark(&path, name);
    // Same messages, byte for byte (the times of the moved frames differ).
    let messages = |ex: &[Exchange]| -> Vec<_> {
        ex.iter()
            .map(|e| {
                let mut response = e.response.clone();
                for i in response.iter_mut().flat_map(|r| r.interim.iter_mut()) {
                    i.at = None;
                }
                (e.request.clone(), response, e.flags)
            })
            .collect()
    };
    assert!(messages(&ex_edited) == messages(&ex), "the edited capture reads differently");
    let (summary, _) = record(&path);
    assert_eq!(summary.reassembly.gaps, 0);
}

#[test]
fn h2c_prior_knowledge() {
    let ex = check_against_tshark("h2c-prior-knowledge.pcap");
    assert!(ex.iter().all(|e| e.proto == tapedeck_model::Protocol::H2 && e.stream_id.is_some()));
}

#[test]
fn h2c_upgrade() {
    let ex = check_against_tshark("h2c-upgrade.pcap");
    let upgraded: Vec<_> = ex.iter().filter(|e| e.flags.contains(Flags::UPGRADED)).collect();
    assert!(!upgraded.is_empty());
    assert!(upgraded.iter().all(|e| e.stream_id == Some(1) && e.proto == tapedeck_model::Protocol::H2));
}

#[test]
fn grpc() {
    let ex = check_against_tshark("grpc-unary-stream.pcap");
    let summaries: Vec<_> = ex.iter().filter_map(tapedeck_model::grpc::grpc_summary).collect();
    assert_eq!(summaries.len(), 3);
    // testdata/README.md: Unary, ServerStream and Fail (aborted with NOT_FOUND = 5, "no such item: ...").
    let by_method = |m: &str| summaries.iter().find(|s| s.method == m).unwrap_or_else(|| panic!("{m}: {summaries:?}"));
    assert_eq!(by_method("Unary").status, Some(0));
    assert_eq!(by_method("Unary").response.messages.len(), 1);
    assert!(by_method("ServerStream").response.messages.len() > 1);
    let fail = by_method("Fail");
    assert_eq!(fail.status, Some(5));
    assert!(fail.message.as_deref().unwrap_or("").contains("no such item"), "{fail:?}");
}

/// Where tapedeck and tshark disagree on purpose: a response whose body never completed. tshark counts an HTTP
/// response only once its whole body is reassembled, so its oracle has the request and no response; the status
/// line and headers were on the wire, and tapedeck records them, flagged with why the body is incomplete. This
/// is the kind behind most of the `over` verdicts of ../shared/corpus/check (gaps, downloads cut short).
fn check_incomplete_response_kept(name: &str, why: Flags) {
    let (_, ex) = record(&testdata().join(name));
    let (want_req, want_status) = oracle(&testdata().join(format!("{name}.tshark.tsv")));
    let (got_req, _) = ours(&ex);
    assert_eq!(got_req, want_req, "{name}: requests agree with tshark");
    assert!(want_status.is_empty(), "{name}: tshark is expected to count no response here: {want_status:?}");
    assert_eq!(ex.len(), 1, "{ex:#?}");
    let resp = ex[0].response.as_ref().expect("the response head was captured and is kept");
    assert_eq!(resp.status, 200);
    assert!(resp.headers.iter().any(|h| h.name.eq_ignore_ascii_case(b"content-length") && h.value == b"204800"));
    assert!(resp.body.full_len < 204_800 || ex[0].flags.contains(Flags::GAP), "{:?}", resp.body.full_len);
    assert!(ex[0].flags.contains(why), "{name}: flagged {:?}, expected {:?}", ex[0].flags, why);
}

#[test]
fn aborted_download_keeps_its_response_flagged_incomplete() {
    check_incomplete_response_kept("h1-aborted-download.pcap", Flags::INCOMPLETE);
}

#[test]
fn lost_segment_keeps_its_response_flagged_gap() {
    check_incomplete_response_kept("h1-lost-segment.pcap", Flags::GAP);
}

#[test]
fn h2c_nginx() {
    let ex = check_against_tshark("h2c-nginx.pcap");
    assert!(ex.iter().all(|e| e.proto == tapedeck_model::Protocol::H2 && e.flags.is_empty()), "{ex:#?}");
    let head = ex.iter().find(|e| e.request.as_ref().unwrap().method == b"HEAD").expect("the HEAD request");
    assert_eq!(head.response.as_ref().unwrap().body.full_len, 0);
}

#[test]
fn h2c_joined_mid_stream_recovers_without_inventing() {
    // The capture starts after the preface, SETTINGS and the requests that filled the HPACK tables: what is
    // recovered (stream ids, static-table and literal fields, DATA) must agree with tshark, and every exchange says
    // it was joined mid-stream. Fields that needed the lost dynamic table are absent, never guessed.
    let ex = check_against_tshark("h2c-mid-stream.pcap");
    assert!(!ex.is_empty());
    let mut last_stream = 0;
    for e in &ex {
        assert!(e.flags.contains(Flags::MID_STREAM | Flags::HPACK_UNKNOWN), "{:?}", e.flags);
        let id = e.stream_id.unwrap();
        assert!(id % 2 == 1 && id > last_stream, "client streams in order: {id} after {last_stream}");
        last_stream = id;
        // h2load asked nghttpd for /hello.txt every time: any authority we report must be the real one.
        let req = e.request.as_ref().unwrap();
        assert!(req.authority.is_empty() || req.authority == b"127.0.0.1:18082", "{:?}", req.authority);
        let resp = e.response.as_ref().unwrap();
        assert!(
            resp.body.bytes.starts_with(b"Hello from tapedeck testdata"),
            "{:?}",
            String::from_utf8_lossy(&resp.body.bytes)
        );
        assert_eq!(resp.body.full_len, 30, "DATA recovered whole");
    }
}
