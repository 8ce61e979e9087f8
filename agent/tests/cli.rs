//! The agent binary as users run it: exit codes and messages on bad input, standard input, the summary and
//! `--stats-json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agent"))
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(name)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn missing_file_fails_naming_it() {
    let out = tempfile::tempdir().unwrap();
    let o = agent().args(["--pcap", "/nonexistent/x.pcap", "--out"]).arg(out.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("/nonexistent/x.pcap"), "{}", text(&o));
}

#[test]
fn not_a_capture_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, b"this is not a capture file at all\n").unwrap();
    let o = agent().arg("--pcap").arg(&junk).arg("--out").arg(dir.path().join("o")).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("notes.txt"), "{}", text(&o));
}

#[test]
fn cut_short_capture_keeps_what_was_read_and_names_the_offset() {
    let full = std::fs::read(testdata("h1-curl-basic.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    // Cut in the middle of the last record.
    std::fs::write(&cut, &full[..full.len() - 10]).unwrap();
    let stats = dir.path().join("stats.json");
    let o = agent()
        .arg("--pcap")
        .arg(&cut)
        .arg("--out")
        .arg(dir.path().join("o"))
        .arg("--stats-json")
        .arg(&stats)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "read in part is success: {}", text(&o));
    let err = text(&o);
    assert!(err.contains("cut.pcap") && err.contains("byte "), "names the file and offset: {err}");
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert!(summary["exchanges"]["total"].as_u64().unwrap() >= 10, "{summary}");
    assert!(summary["inputs"][0]["error"].as_str().unwrap().contains("byte "));
}

#[test]
fn absurd_record_length_is_reported_not_allocated() {
    let mut bytes = std::fs::read(testdata("h1-curl-basic.pcap")).unwrap();
    // First record header starts at 24: make its captured length 4 GB.
    bytes[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("absurd.pcap");
    std::fs::write(&f, &bytes).unwrap();
    let o = agent().arg("--pcap").arg(&f).arg("--out").arg(dir.path().join("o")).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("byte 24"), "{}", text(&o));
}

#[test]
fn standard_input_streams_like_a_file() {
    let bytes = std::fs::read(testdata("h1-pipelined.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let mut child =
        agent().args(["--pcap", "-", "--out"]).arg(&out).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Write in small pieces, as a pipe from tcpdump would.
    for chunk in bytes.chunks(100) {
        stdin.write_all(chunk).unwrap();
    }
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut exchanges = Vec::new();
    for file in tapedeck_model::segment::list_segments(&out).unwrap() {
        let mut r = tapedeck_model::segment::SegmentReader::open(&file).unwrap();
        exchanges.extend(r.exchanges().map(Result::unwrap));
    }
    assert_eq!(exchanges.len(), 7);
    assert!(exchanges.iter().all(|e| e.request.is_some() && e.response.is_some() && e.flags.is_empty()));
}

#[test]
fn bad_flag_values_name_the_flag_and_the_forms() {
    let o = agent().args(["--pcap", "x", "--out", "y", "--max-body", "lots"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o);
    assert!(err.contains("--max-body") && err.contains("1MiB"), "{err}");
}

#[test]
fn an_input_older_than_the_inputs_before_it_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let capture = testdata("h1-curl-basic.pcap");
    let earlier = dir.path().join("earlier.pcap");
    // The same real capture moved one hour back (as `editcap -t -3600` would).
    let moved = tapedeck_testgen::inject::shift_time(&std::fs::read(&capture).unwrap(), -3600).unwrap();
    std::fs::write(&earlier, moved).unwrap();
    let run = |first: &Path, second: &Path, tag: &str| {
        let stats = dir.path().join(format!("{tag}.json"));
        let o = agent()
            .arg("--pcap")
            .arg(first)
            .arg("--pcap")
            .arg(second)
            .arg("--out")
            .arg(dir.path().join(tag))
            .arg("--stats-json")
            .arg(&stats)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        (text(&o), summary)
    };
    // In capture order: nothing to say.
    let (err, summary) = run(&earlier, &capture, "in-order");
    assert!(!err.contains("starts "), "{err}");
    assert!(summary["inputs"][1].get("starts_before_previous_secs").is_none(), "{summary}");
    // Out of order: one line naming both files, and the distance in the summary.
    let (err, summary) = run(&capture, &earlier, "out-of-order");
    let line = err.lines().find(|l| l.contains("starts ")).unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(line.contains("earlier.pcap") && line.contains("h1-curl-basic.pcap") && line.contains("3600 s"), "{line}");
    let back = summary["inputs"][1]["starts_before_previous_secs"].as_f64().unwrap();
    assert!((3600.0..3601.0).contains(&back), "{summary}");
}
