//! Crash safety of the agent binary: SIGKILL in the middle of writing leaves finished segments that read back
//! whole, and a `.seg.tmp` that reads up to its last whole block with a recovery report saying how much it
//! recovered; no exchange read back differs from what a complete run on the same input writes.
//!
//! The input is deterministic generated HTTP/1.1 traffic (`traffic/`), fed to `--pcap -` through a pipe at a
//! steady pace, with a 1 MiB rotation size so that several segments are finished before the kill.

mod traffic;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tapedeck_model::segment::{FooterStatus, SegmentReader, list_segments, list_segments_with_tmp};
use traffic::{Feeder, Key, capture_file, key};

/// Exchanges in the input: about 21 MB of capture, 20 MB of raw records, 10 blocks or more.
const N: u32 = 6000;

fn agent(out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agent"));
    c.arg("--out").arg(out).args(["--segment-max-bytes", "1MiB", "--no-default-masking", "--quiet"]);
    c
}

/// Every exchange of a finished segment, checking that it reads back whole.
fn read_finished(path: &Path) -> Vec<Key> {
    let mut r = SegmentReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<Key> = r.exchanges().map(|e| key(&e.unwrap_or_else(|e| panic!("finished segment: {e}")))).collect();
    let rep = r.recovery();
    assert!(rep.is_clean(), "{}: {rep}", path.display());
    assert_eq!(rep.blocks_ok, rep.blocks);
    assert_eq!(rep.exchanges, keys.len() as u64);
    keys
}

/// Whole blocks of a segment being written, read as the reader of a torn file would (0 when it cannot be read).
fn whole_blocks(path: &Path) -> usize {
    let Ok(mut r) = SegmentReader::open(path) else { return 0 };
    for _ in r.exchanges() {}
    r.blocks().len()
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    let all = list_segments_with_tmp(dir).unwrap_or_default();
    all.into_iter().filter(|p| p.to_string_lossy().ends_with(".seg.tmp")).collect()
}

#[test]
fn sigkill_mid_write_leaves_readable_segments_and_no_corrupt_exchange() {
    let dir = tempfile::tempdir().unwrap();

    // The reference: a complete run on the same exchanges, from a file.
    let pcap = dir.path().join("all.pcap");
    capture_file(&pcap, 0..N);
    let complete = dir.path().join("complete");
    let o = agent(&complete).arg("--pcap").arg(&pcap).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut reference = HashSet::new();
    for f in list_segments(&complete).unwrap() {
        reference.extend(read_finished(&f));
    }
    assert_eq!(reference.len(), N as usize, "the complete run writes every exchange once");

    // The crash: the same exchanges through a pipe, SIGKILL once two segments are finished and the third has a
    // block on disk.
    let out = dir.path().join("crash");
    let mut child = agent(&out).args(["--pcap", "-"]).stdin(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut feeder = Feeder::start(child.stdin.take().unwrap(), 0..N, 100, Duration::from_millis(5));
    let started = Instant::now();
    loop {
        let finished = list_segments(&out).map(|v| v.len()).unwrap_or(0);
        // Kill once a whole block of the file being written is on disk (its size alone does not say so: the
        // kill could land while its first block is half written).
        if finished >= 2 && tmp_files(&out).first().is_some_and(|p| whole_blocks(p) >= 1) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the agent ended before the kill: make the input longer");
        assert!(started.elapsed() < Duration::from_secs(300), "no segments after 300 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    feeder.stop();
    assert!(!status.success(), "killed: {status:?}");
    let fed = feeder.written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(fed < u64::from(N), "killed before the input ended ({fed} of {N} exchanges fed)");

    // Finished segments read back whole.
    let mut recovered: Vec<Key> = Vec::new();
    let finished = list_segments(&out).unwrap();
    assert!(finished.len() >= 2);
    for f in &finished {
        recovered.extend(read_finished(f));
    }
    let from_finished = recovered.len();

    // The torn file: read up to its last whole block, no damage, and the report says what was recovered.
    let tmps = tmp_files(&out);
    assert_eq!(tmps.len(), 1, "one file was being written: {tmps:?}");
    let mut r = SegmentReader::open(&tmps[0]).unwrap();
    let mut from_tmp = 0;
    for item in r.exchanges() {
        let ex = item.unwrap_or_else(|e| panic!("torn file yields an error instead of stopping: {e}"));
        recovered.push(key(&ex));
        from_tmp += 1;
    }
    let rep = r.recovery().clone();
    let blocks = r.blocks().to_vec();
    assert_eq!(rep.footer, FooterStatus::Missing, "{rep}");
    assert!(rep.damaged.is_empty(), "{rep}");
    assert!(!blocks.is_empty(), "the kill came after a block was on disk: {rep}");
    assert_eq!((rep.blocks, rep.blocks_ok), (blocks.len() as u64, blocks.len() as u64), "{rep}");
    assert_eq!(rep.exchanges, from_tmp, "{rep}");
    let last = blocks.last().unwrap();
    let whole_end = last.offset + 48 + u64::from(last.stored_len);
    assert_eq!(rep.file_len, whole_end + rep.torn_tail_bytes, "the torn tail is what follows the last whole block");
    let summary = rep.to_string();
    assert!(summary.contains(&format!("recovered {from_tmp} exchanges")), "{summary}");
    eprintln!(
        "crash: killed after {fed} of {N} exchanges fed; {} finished segment(s) with {from_finished} exchanges; \
         {}: {summary}",
        finished.len(),
        tmps[0].display()
    );

    // No exchange read back is corrupt: each is one the complete run wrote, and none comes twice.
    let mut seen = HashSet::new();
    for k in &recovered {
        assert!(reference.contains(k), "exchange {:?} differs from every exchange of the complete run", k.1);
        assert!(seen.insert(k.clone()), "exchange {:?} read twice", k.1);
    }
    assert!(!recovered.is_empty() && recovered.len() < N as usize);
}
