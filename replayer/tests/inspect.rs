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
