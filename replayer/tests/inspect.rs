//! `replayer inspect` as users run it, on segments recorded from a bundled capture: the JSON contract that
//! ../shared/corpus/check and users' scripts rely on, the readable listing, and damaged input.

use std::path::{Path, PathBuf};
use std::process::Command;

use tapedeck_agent::pipeline::{CaptureConfig, run_files};

fn record(capture: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("segments");
    let mut cfg = CaptureConfig::default();
    cfg.writer.dir = out.clone();
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(capture);
    run_files(&[capture], cfg, &mut ()).unwrap();
    (dir, out)
}

fn replayer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_replayer"))
}

#[test]
fn json_lines_carry_the_documented_fields() {
    let (_dir, out) = record("h1-curl-basic.pcap");
    let o = replayer().args(["inspect", "--json"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 11);
    for l in &lines {
        assert!(["http/1.0", "http/1.1"].contains(&l["proto"].as_str().unwrap()), "{l}");
        let req = &l["request"];
        for key in ["method", "authority", "path"] {
            assert!(req[key].is_string(), "request.{key} in {l}");
        }
        assert!(req["headers"].as_array().unwrap().iter().all(|h| h.as_array().unwrap().len() == 2));
        assert!(l["response"]["status"].is_u64() && l["response"]["headers"].is_array());
        assert!(l["flags"].is_array());
        assert!(l["timing"]["request_first"].is_u64() && l["client"].is_string() && l["server"].is_string());
    }
    let statuses: Vec<u64> = lines.iter().map(|l| l["response"]["status"].as_u64().unwrap()).collect();
    assert!(statuses.contains(&404) && statuses.contains(&201) && statuses.contains(&304));
}

#[test]
fn readable_listing_has_a_line_per_exchange() {
    let (_dir, out) = record("h1-pipelined.pcap");
    let o = replayer().arg("inspect").arg(&out).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().count(), 7);
    assert!(text.contains("POST 127.0.0.1:18080/api/echo => 200"), "{text}");
}

#[test]
fn grpc_calls_carry_a_grpc_object() {
    let (_dir, out) = record("grpc-unary-stream.pcap");
    let o = replayer().args(["inspect", "--json"]).arg(&out).output().unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["proto"] == "h2" && l["grpc"]["service"] == "tapedeck.test.Echo"), "{lines:?}");
}

#[test]
fn torn_segment_is_read_up_to_the_damage_with_a_warning() {
    let (_dir, out) = record("h1-curl-basic.pcap");
    let file = tapedeck_model::segment::list_segments(&out).unwrap().remove(0);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 30]).unwrap();
    let o = replayer().arg("inspect").arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&*file.to_string_lossy()), "names the file: {err}");
    assert!(err.contains("recovered"), "{err}");
}

#[test]
fn missing_path_fails() {
    let o = replayer().args(["inspect", "/nonexistent/segments"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/segments"));
}

// ===== recordings written here, over several files and writers =====

const BASE: u64 = 1_795_289_580_000_000_000; // 2026-11-21 19:33:00 UTC

/// An exchange on connection `conn` (client port 40000 + conn), request at `at_ms`, answered 1 ms later.
fn exchange(conn: u64, order: u32, at_ms: u64, method: &str, path: &str, status: u16) -> tapedeck_model::Exchange {
    use tapedeck_model::{Body, Exchange, Flags, Protocol, Request, Response, Timestamp, Timing};
    let t = |ms: u64| Some(Timestamp(BASE + ms * 1_000_000));
    Exchange {
        id: conn * 1000 + u64::from(order),
        connection_id: conn,
        order,
        stream_id: None,
        proto: Protocol::Http11,
        client: format!("10.0.0.1:{}", 40_000 + conn).parse().unwrap(),
        server: "10.0.0.2:80".parse().unwrap(),
        timing: Timing {
            request_first: t(at_ms),
            request_last: t(at_ms),
            response_first: t(at_ms + 1),
            response_last: t(at_ms + 1),
        },
        request: Some(Request {
            method: method.into(),
            scheme: b"http".to_vec(),
            authority: b"api.local".to_vec(),
            path: path.into(),
            headers: vec![],
            body: Body::default(),
            trailers: vec![],
        }),
        response: Some(Response { status, ..Default::default() }),
        flags: Flags::NONE,
        labels: vec![],
        masked_by: vec![],
    }
}

/// Writes `exs` with a writer of its own (file prefix `prefix`), one exchange per block and per file, in the order
/// given: as an agent worker does, each worker writing its own files.
fn write_files(dir: &Path, prefix: &str, exs: &[tapedeck_model::Exchange]) {
    use tapedeck_model::segment::{SegmentWriter, SegmentWriterConfig};
    let mut cfg = SegmentWriterConfig::new(dir);
    cfg.prefix = prefix.into();
    cfg.max_block_exchanges = 1;
    cfg.max_file_bytes = 1;
    let mut w = SegmentWriter::create(cfg).unwrap();
    for e in exs {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
}

/// Two writers, four connections, interleaved in time: /1 .. /8 in request order.
fn two_workers() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        "w0",
        &[
            exchange(1, 0, 0, "GET", "/1", 200),
            exchange(3, 0, 20, "GET", "/3", 200),
            exchange(1, 1, 40, "GET", "/5", 200),
            exchange(3, 1, 60, "GET", "/7", 200),
        ],
    );
    write_files(
        dir.path(),
        "w1",
        &[
            exchange(2, 0, 10, "POST", "/2", 201),
            exchange(4, 0, 30, "GET", "/4", 503),
            exchange(2, 1, 50, "GET", "/6", 200),
            exchange(4, 1, 70, "GET", "/8", 404),
        ],
    );
    assert!(tapedeck_model::segment::list_segments(dir.path()).unwrap().len() >= 8, "one file per exchange");
    dir
}

/// `(c<N>#<order>, path)` of each line that names a connection and a request.
fn conn_and_path(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let conn = l.split_whitespace().find(|w| w.starts_with('c') && w.contains('#'))?;
            let path = l.split_whitespace().find_map(|w| w.strip_prefix("api.local"))?;
            Some((conn.to_string(), path.to_string()))
        })
        .collect()
}

#[test]
fn exchanges_are_listed_in_time_order_across_files_with_the_connections_of_dry_run() {
    let dir = two_workers();
    let o = replayer().arg("inspect").arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = conn_and_path(&String::from_utf8(o.stdout).unwrap());
    let paths: Vec<&str> = listed.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(paths, ["/1", "/2", "/3", "/4", "/5", "/6", "/7", "/8"], "time order across files: {listed:?}");
    let conns: Vec<&str> = listed.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(conns, ["c1#0", "c2#0", "c3#0", "c4#0", "c1#1", "c2#1", "c3#1", "c4#1"]);

    let o = replayer().arg("run").arg(dir.path()).args(["--dry-run", "--time-scale", "max"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut planned = conn_and_path(&String::from_utf8(o.stdout).unwrap());
    planned.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(planned, listed, "dry run names each request's connection as inspect does");
}

#[test]
fn the_filters_of_run_select_what_is_listed() {
    let dir = two_workers();
    let list = |args: &[&str]| {
        let o = replayer().arg("inspect").arg(dir.path()).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let paths: Vec<String> =
            conn_and_path(&String::from_utf8(o.stdout).unwrap()).into_iter().map(|(_, p)| p).collect();
        (paths, String::from_utf8(o.stderr).unwrap())
    };
    assert_eq!(list(&["--method", "post"]).0, ["/2"]);
    assert_eq!(list(&["--status", "5xx", "--status", "404"]).0, ["/4", "/8"]);
    assert_eq!(list(&["--path-prefix", "/1", "--path-prefix", "/7"]).0, ["/1", "/7"]);
    assert_eq!(list(&["--path-regex", "^/[2-3]$"]).0, ["/2", "/3"]);
    assert_eq!(list(&["--from", "20ms", "--to", "2026-11-21T19:33:00.050Z"]).0, ["/3", "/4", "/5"]);
    assert_eq!(list(&["--host", "api.local", "--protocol", "h1", "--limit", "2"]).0, ["/1", "/2"]);
    let (none, err) = list(&["--method", "PUT"]);
    assert!(none.is_empty());
    assert!(err.contains("0 exchanges selected (8 read, 8 filtered out by --method PUT)"), "{err}");
}

#[test]
fn bodies_are_shown_decoded_and_binary_ones_summarised() {
    use std::io::Write as _;
    use tapedeck_model::{Body, Header};
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"user\":\"ada\",\n \"id\":7}").unwrap();
    let gz = gz.finish().unwrap();
    let mut text = exchange(1, 0, 0, "POST", "/users", 201);
    let req = text.request.as_mut().unwrap();
    req.body = Body { bytes: b"name=ada".to_vec(), full_len: 8 };
    let resp = text.response.as_mut().unwrap();
    resp.headers = vec![Header::new("Content-Encoding", "gzip"), Header::new("Content-Type", "application/json")];
    resp.body = Body { full_len: gz.len() as u64, bytes: gz };
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let mut binary = exchange(1, 1, 10, "GET", "/logo.png", 200);
    binary.response.as_mut().unwrap().body = Body { bytes: png.clone(), full_len: 5000 };
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), "w0", &[text, binary]);

    let o = replayer().args(["inspect", "--bodies"]).arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.starts_with("2026-11-21 19:33:00.000000Z c1#0 "), "the time carries its zone: {out}");
    for want in [
        "    > name=ada\n",
        "    < (gzip decoded)\n",
        "    < {\"user\":\"ada\",\n    <  \"id\":7}\n",
        "    < (16 of 5000 bytes stored)\n",
        "    < (16 bytes of binary: 89504e470d0a1a0a0000000d49484452)\n",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    let o = replayer().arg("inspect").arg(dir.path()).output().unwrap();
    assert!(!String::from_utf8(o.stdout).unwrap().contains("    <"), "bodies only with --bodies");

    let o = replayer().args(["inspect", "--json", "--bodies"]).arg(dir.path()).output().unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(o.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["time"], "2026-11-21T19:33:00.000000Z");
    let body = &lines[0]["response"]["body"];
    assert_eq!(
        (&body["encoding"], &body["text"], &body["decoded_from"]),
        (&"utf-8".into(), &"{\"user\":\"ada\",\n \"id\":7}".into(), &"gzip".into()),
        "{body}"
    );
    assert_eq!(lines[0]["request"]["body"]["text"], "name=ada");
    let body = &lines[1]["response"]["body"];
    assert_eq!((&body["encoding"], &body["base64"]), (&"base64".into(), &"iVBORw0KGgoAAAANSUhEUg==".into()), "{body}");
    assert!(body.get("text").is_none());
    let o = replayer().args(["inspect", "--json"]).arg(dir.path()).output().unwrap();
    assert!(!String::from_utf8(o.stdout).unwrap().contains("\"encoding\""), "bodies only with --bodies");
}

#[test]
fn a_damaged_block_says_how_many_exchanges_it_held_and_fails() {
    let dir = two_workers();
    let file = tapedeck_model::segment::list_segments(dir.path()).unwrap().remove(0);
    let block = tapedeck_model::segment::SegmentReader::open(&file).unwrap().blocks()[0];
    let mut bytes = std::fs::read(&file).unwrap();
    // A byte of the block's payload: its checksum fails.
    let at = block.offset as usize + tapedeck_model::segment::layout::BLOCK_HEADER_LEN + block.stored_len as usize / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let o = replayer().arg("inspect").arg(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&*file.to_string_lossy()) && err.contains("input damaged: 1 exchanges lost"), "{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 7, "the rest is listed");
}
