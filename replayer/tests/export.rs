//! `replayer export` as users run it: a segment written here from known exchanges, exported as HAR 1.2 (read
//! back with Python's haralyzer, an independent parser) and as JSON lines, compared with what was written.

mod common;

use std::path::PathBuf;
use std::process::Command;

use tapedeck_model::segment::{SegmentWriter, SegmentWriterConfig, list_segments};
use tapedeck_model::{Body, Exchange, Flags, Header, Protocol, Request, Response, Timestamp, Timing};

const BASE: u64 = 1_700_000_000_000_000_000;

fn exchange(id: u64, proto: Protocol, method: &str, authority: &str, path: &str, status: Option<u16>) -> Exchange {
    let t = |ms: u64| Some(Timestamp(BASE + (id * 100 + ms) * 1_000_000));
    Exchange {
        id,
        connection_id: id / 2,
        order: (id % 2) as u32,
        stream_id: (proto == Protocol::H2).then_some(1),
        proto,
        client: "10.0.0.1:40000".parse().unwrap(),
        server: "10.0.0.2:8080".parse().unwrap(),
        timing: Timing {
            request_first: t(0),
            request_last: t(1),
            response_first: status.and(t(5)),
            response_last: status.and(t(7)),
        },
        request: Some(Request {
            method: method.into(),
            scheme: vec![],
            authority: authority.into(),
            path: path.into(),
            headers: vec![Header::new("user-agent", "test")],
            body: Body::default(),
            trailers: vec![],
        }),
        response: status.map(|s| Response {
            status: s,
            headers: vec![Header::new("content-type", "application/octet-stream")],
            body: Body { bytes: vec![0, 159, 146, 150], full_len: 4 },
            ..Default::default()
        }),
        flags: if status.is_none() { Flags::NO_RESPONSE } else { Flags::NONE },
        labels: vec![],
        masked_by: vec![],
    }
}

fn capture() -> (tempfile::TempDir, PathBuf, Vec<Exchange>) {
    let mut exs = vec![
        exchange(0, Protocol::Http11, "GET", "api.example:8080", "/users?id=1", Some(200)),
        exchange(1, Protocol::Http11, "POST", "api.example:8080", "/orders", Some(201)),
        exchange(2, Protocol::H2, "GET", "h2.example", "/h2/x", Some(404)),
        exchange(3, Protocol::Http11, "DELETE", "api.example:8080", "/users/1", None),
        exchange(4, Protocol::Http10, "GET", "", "/old", Some(500)),
    ];
    exs[1].request.as_mut().unwrap().body = Body { bytes: b"{\"n\":1}".to_vec(), full_len: 7 };
    // A response whose request was not seen: in JSON lines, not in HAR.
    let mut orphan = exchange(5, Protocol::Http11, "GET", "x", "/", Some(200));
    orphan.request = None;
    orphan.flags = Flags::NO_REQUEST;
    exs.push(orphan);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SegmentWriterConfig::new(dir.path());
    cfg.max_block_exchanges = 1;
    let mut w = SegmentWriter::create(cfg).unwrap();
    for e in &exs {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path, exs)
}

fn replayer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_replayer"))
}

#[test]
fn har_export_reads_back_in_haralyzer() {
    let (_tmp, dir, exs) = capture();
    let har = dir.join("out.har");
    let o = replayer().arg("export").arg(&dir).arg("--har").arg(&har).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Our own reading: the structure browser dev tools need.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let entries = v["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "every exchange with a request");
    assert_eq!(entries[1]["request"]["postData"]["text"], "{\"n\":1}");
    assert_eq!(entries[0]["response"]["content"]["encoding"], "base64");
    assert_eq!(entries[0]["response"]["content"]["text"], "AJ+Slg==");
    assert_eq!(entries[0]["timings"]["wait"], 4.0);
    assert_eq!(entries[3]["response"]["status"], 0);

    let Some(got) = common::haralyzer_entries(&har) else { return };
    let expected: Vec<(String, String, u64, String)> = exs
        .iter()
        .filter(|e| e.request.is_some())
        .map(|e| {
            let r = e.request.as_ref().unwrap();
            let authority = if r.authority.is_empty() {
                e.server.to_string()
            } else {
                String::from_utf8_lossy(&r.authority).into()
            };
            let version = match e.proto {
                Protocol::Http10 => "HTTP/1.0",
                Protocol::Http11 => "HTTP/1.1",
                Protocol::H2 => "HTTP/2",
            };
            (
                String::from_utf8_lossy(&r.method).into_owned(),
                format!("http://{authority}{}", String::from_utf8_lossy(&r.path)),
                e.response.as_ref().map_or(0, |r| u64::from(r.status)),
                version.to_string(),
            )
        })
        .collect();
    let got: Vec<(String, String, u64, String)> = got
        .iter()
        .map(|e| {
            (
                e[0].as_str().unwrap().to_string(),
                e[1].as_str().unwrap().to_string(),
                e[2].as_u64().unwrap(),
                e[3].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn har_export_writes_gzip_and_br_bodies_decoded() {
    use std::io::Write;
    let plain = "{\"greeting\": \"hello\", \"n\": 1}\n".repeat(40);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(plain.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut br = Vec::new();
    brotli::CompressorWriter::new(&mut br, 4096, 5, 22).write_all(plain.as_bytes()).unwrap();
    let mut exs = Vec::new();
    for (id, coding, bytes) in [(0, "gzip", &gz), (1, "br", &br)] {
        let mut e = exchange(id, Protocol::Http11, "GET", "api.example:8080", "/data", Some(200));
        let r = e.response.as_mut().unwrap();
        r.headers = vec![Header::new("content-type", "application/json"), Header::new("content-encoding", coding)];
        r.body = Body { bytes: bytes.clone(), full_len: bytes.len() as u64 };
        exs.push(e);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut w = SegmentWriter::create(SegmentWriterConfig::new(dir.path())).unwrap();
    for e in &exs {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    let har = dir.path().join("decoded.har");
    let o = replayer().arg("export").arg(dir.path()).arg("--har").arg(&har).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let entries = v["log"]["entries"].as_array().unwrap();
    for (e, wire) in entries.iter().zip([gz.len(), br.len()]) {
        let content = &e["response"]["content"];
        assert_eq!(content["text"], plain.as_str(), "{e}");
        assert!(content.get("encoding").is_none(), "{e}");
        assert_eq!(content["size"], plain.len());
        assert_eq!(content["compression"], plain.len() - wire);
        assert_eq!(e["response"]["bodySize"], wire);
    }

    // Read back by haralyzer (an independent parser): the text it gives is the decoded body.
    if common::haralyzer_entries(&har).is_none() {
        return;
    }
    const SCRIPT: &str = r#"
import json, sys
from haralyzer import HarParser
with open(sys.argv[1]) as f:
    parser = HarParser(json.load(f))
print(json.dumps([[e.response.text, e.response.textEncoding, e.response.contentSize, e.response.bodySize]
                  for page in parser.pages for e in page.entries]))
"#;
    let o = Command::new("python3").args(["-c", SCRIPT]).arg(&har).output().unwrap();
    assert!(o.status.success(), "haralyzer: {}", String::from_utf8_lossy(&o.stderr));
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let want = serde_json::json!([[plain, null, plain.len(), gz.len()], [plain, null, plain.len(), br.len()]]);
    assert_eq!(got, want);
}

#[test]
fn jsonl_export_has_one_object_per_exchange_on_stdout_or_file() {
    let (_tmp, dir, exs) = capture();
    let o = replayer().arg("export").arg(&dir).args(["--jsonl", "-"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), exs.len());
    for (l, e) in lines.iter().zip(&exs) {
        assert_eq!(l["id"], e.id);
        assert_eq!(l["proto"], e.proto.as_str());
        match &e.request {
            Some(r) => assert_eq!(l["request"]["path"], String::from_utf8_lossy(&r.path).as_ref()),
            None => assert!(l["request"].is_null()),
        }
        assert_eq!(l["response"]["status"].as_u64(), e.response.as_ref().map(|r| u64::from(r.status)));
        assert!(l["time"].as_str().unwrap().starts_with("2023-11-14T22:13:2"), "{l}");
    }
    assert_eq!(lines[0]["duration_ms"], 7.0);
    // Both outputs at once, to files.
    let (har, jsonl) = (dir.join("a.har"), dir.join("a.jsonl"));
    let o = replayer().arg("export").arg(&dir).arg("--har").arg(&har).arg("--jsonl").arg(&jsonl).output().unwrap();
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(&jsonl).unwrap().lines().count(), exs.len());
    assert!(String::from_utf8_lossy(&o.stderr).contains("5 HAR entries, 6 JSON lines"));
}

#[test]
fn truncated_segment_exports_what_can_be_read_with_one_warning() {
    let (_tmp, dir, _) = capture();
    let file = list_segments(&dir).unwrap().remove(0);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let o = replayer().arg("export").arg(&dir).args(["--jsonl", "-"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "damage gives exit status 1");
    let err = String::from_utf8_lossy(&o.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains(&*file.to_string_lossy()) && warnings[0].contains("offset"), "{err}");
    let n = String::from_utf8_lossy(&o.stdout).lines().count();
    assert!((2..6).contains(&n), "the intact blocks are exported: {n}");
}

#[test]
fn a_damaged_block_is_counted_in_exchanges_lost() {
    let (_tmp, dir, _) = capture();
    let file = list_segments(&dir).unwrap().remove(0);
    let block = tapedeck_model::segment::SegmentReader::open(&file).unwrap().blocks()[0];
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[block.offset as usize + tapedeck_model::segment::layout::BLOCK_HEADER_LEN + 1] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let o = replayer().arg("export").arg(&dir).args(["--jsonl", "-"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("; {} exchanges lost in 1 damaged block(s)", block.records)), "{err}");
}

#[test]
fn export_needs_an_output() {
    let o = replayer().args(["export", "/nonexistent"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--har") || err.contains("--jsonl"), "{err}");
}
