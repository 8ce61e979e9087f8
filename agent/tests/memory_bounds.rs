//! Memory under hostile input: for each scenario of `tapedeck-testgen`, the agent binary reads the capture with
//! small explicit caps, exits 0, stays under a peak-RSS bound derived from those caps (the process's own VmHWM,
//! from `--stats-json`), and its counters show the caps that acted (evictions, gaps, truncations, ...).
//!
//! The bound (also in docs/architecture.md, "Memory under hostile input"):
//!
//! ```text
//! peak RSS <= BASE + IN_FLIGHT + WORKERS * PER_WORKER + max_flows * PER_FLOW + max_buffered + held
//! ```
//!
//! - `BASE` 24 MiB: the program, allocator, pcap read buffer, one segment block and zstd context, tombstones.
//! - `IN_FLIGHT` 20 MiB: exchanges between the threads, 18 batches of at most 1 MiB each (pipeline.rs).
//! - `PER_FLOW` 4 KiB: a tracked connection with its session and parser state (about 2 KiB measured).
//! - `held`: what the scenario's live connections may hold under their parser caps: bodies (`max_body` per
//!   message), an HTTP/1 head (256 KiB), HTTP/2 open streams (1024 per connection), HPACK tables (1 MiB per
//!   direction).
//!
//! - `PER_WORKER` 6 MiB: a worker thread's allocator arena and the batches it has in flight; the runs use
//!   `--workers 2` (the default on a 2-core machine) so that the bound does not depend on the machine.
//!
//! Each scenario is sized so that holding its input whole would break the bound: the test can fail.

use std::process::Command;

use serde_json::Value;
use tapedeck_testgen::{Scenario, Sizes};

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;
const BASE: u64 = 24 * MIB;
const IN_FLIGHT: u64 = 20 * MIB;
const PER_FLOW: u64 = 4 * KIB;
const PER_WORKER: u64 = 6 * MIB;
const WORKERS: u64 = 2;
/// The agent's HTTP/1 head cap (`Http1Config::max_head_bytes`).
const MAX_HEAD: u64 = 256 * KIB;
/// The agent's HTTP/2 open-stream cap per connection (`H2Config::max_streams`).
const MAX_STREAMS: u64 = 1024;
/// The agent's HPACK dynamic table cap per direction (`hpack::HARD_TABLE_CAP`).
const HPACK_TABLE: u64 = MIB;

/// Caps given to the agent for one run.
struct Caps {
    max_flows: u64,
    max_buffered: u64,
    max_body: u64,
}

impl Caps {
    /// The bound for this run, with `held` bytes of parser state the scenario may legitimately keep.
    fn bound(&self, held: u64) -> u64 {
        BASE + IN_FLIGHT + WORKERS * PER_WORKER + self.max_flows * PER_FLOW + self.max_buffered + held
    }
}

/// Generates `scenario` in a temp dir, runs the agent on it with `caps`, and returns (stats, capture bytes).
fn run(scenario: Scenario, caps: &Caps) -> (Value, u64) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join(format!("{}.pcap", scenario.name()));
    let written = scenario.write_file(&pcap, &Sizes::test(), 7).unwrap();
    let stats = dir.path().join("stats.json");
    let out = Command::new(env!("CARGO_BIN_EXE_agent"))
        .arg("--pcap")
        .arg(&pcap)
        .arg("--out")
        .arg(dir.path().join("segments"))
        .arg("--stats-json")
        .arg(&stats)
        .args(["--max-flows", &caps.max_flows.to_string()])
        .args(["--max-buffered", &caps.max_buffered.to_string()])
        .args(["--max-body", &caps.max_body.to_string()])
        .args(["--workers", &WORKERS.to_string()])
        // These bounds are about reassembly and parser caps; masking (bounded by its own decode cap) only slows the
        // debug-build writer, which lets the channel between the threads fill and blurs what is measured.
        .arg("--no-default-masking")
        .arg("--quiet")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}: agent failed: {stderr}", scenario.name());
    let v: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(v["inputs"][0]["frames"].as_u64(), Some(written.frames), "every frame read");
    assert!(v["inputs"][0]["error"].is_null(), "{}", v["inputs"][0]);
    (v, written.bytes)
}

fn n(v: &Value, path: &str) -> u64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    cur.as_u64().unwrap_or_else(|| panic!("{path} missing in stats"))
}

fn assert_rss_below(name: &str, v: &Value, bound: u64, capture_bytes: u64) {
    let rss = n(v, "peak_rss_bytes");
    eprintln!(
        "{name}: capture {:.1} MB, peak RSS {:.1} MiB, bound {:.1} MiB",
        capture_bytes as f64 / 1e6,
        rss as f64 / MIB as f64,
        bound as f64 / MIB as f64
    );
    assert!(rss < bound, "{name}: peak RSS {rss} bytes is over the bound {bound} (capture {capture_bytes} bytes)");
}

fn assert_peak_buffered_within(v: &Value, caps: &Caps) {
    assert!(n(v, "reassembly.peak_buffered_bytes") <= caps.max_buffered, "{}", v["reassembly"]);
}

#[test]
fn half_open_connections_are_evicted_at_the_flow_cap() {
    let caps = Caps { max_flows: 10_000, max_buffered: 16 * MIB, max_body: 64 * KIB };
    let (v, bytes) = run(Scenario::HalfOpen, &caps);
    let conns = u64::from(Sizes::test().half_open_conns);
    assert_eq!(n(&v, "reassembly.flows_created"), conns);
    assert_eq!(n(&v, "reassembly.flows_evicted"), conns - caps.max_flows);
    assert_eq!(n(&v, "sessions.http1.incomplete_heads"), conns, "every cut head counted");
    // Each held head is under 100 bytes: within PER_FLOW.
    assert_rss_below("half-open", &v, caps.bound(0), bytes);
}

#[test]
fn syn_flood_is_evicted_at_the_flow_cap() {
    let caps = Caps { max_flows: 10_000, max_buffered: 16 * MIB, max_body: 64 * KIB };
    let (v, bytes) = run(Scenario::SynFlood, &caps);
    assert!(n(&v, "reassembly.flows_created") > 150_000, "{}", v["reassembly"]);
    assert!(n(&v, "reassembly.flows_evicted") >= n(&v, "reassembly.flows_created") - caps.max_flows);
    assert_rss_below("syn-flood", &v, caps.bound(0), bytes);
}

#[test]
fn endless_chunked_body_is_truncated_at_the_body_cap() {
    let caps = Caps { max_flows: 1_000, max_buffered: 4 * MIB, max_body: MIB };
    let (v, bytes) = run(Scenario::EndlessChunked, &caps);
    assert!(n(&v, "reassembly.delivered_bytes") > Sizes::test().chunked_body_bytes);
    assert_eq!(n(&v, "sessions.http1.truncated_bodies"), 1);
    assert_eq!(n(&v, "sessions.http1.incomplete_messages"), 1);
    assert_eq!(n(&v, "exchanges.by_flag.truncated"), 1);
    // One response body at the cap, the request head and body.
    assert_rss_below("endless-chunked", &v, caps.bound(2 * caps.max_body + MAX_HEAD), bytes);
}

#[test]
fn huge_header_line_is_refused_at_the_head_cap() {
    let caps = Caps { max_flows: 1_000, max_buffered: 4 * MIB, max_body: 64 * KIB };
    let (v, bytes) = run(Scenario::HugeHeaderLine, &caps);
    assert_eq!(n(&v, "sessions.http1.oversized_heads"), 1);
    assert!(n(&v, "sessions.http1.parse_errors") >= 1);
    assert!(
        n(&v, "sessions.http1.resync_skipped_bytes") as usize >= Sizes::test().header_line_bytes - MAX_HEAD as usize
    );
    // The request after the huge one is parsed again (resynchronised).
    assert_eq!(n(&v, "sessions.http1.requests"), 1);
    assert_rss_below("huge-header-line", &v, caps.bound(2 * MAX_HEAD), bytes);
}

#[test]
fn interleaved_http2_streams_are_evicted_at_the_stream_cap() {
    let caps = Caps { max_flows: 1_000, max_buffered: 4 * MIB, max_body: 64 * KIB };
    let (v, bytes) = run(Scenario::H2Streams, &caps);
    let s = Sizes::test();
    let streams = u64::from(s.h2_conns) * u64::from(s.h2_streams_per_conn);
    assert_eq!(n(&v, "sessions.flows_h2"), u64::from(s.h2_conns));
    assert_eq!(n(&v, "sessions.h2.streams_opened"), streams);
    assert_eq!(n(&v, "sessions.h2.streams_evicted"), streams - u64::from(s.h2_conns) * MAX_STREAMS);
    assert!(n(&v, "sessions.h2.frames_on_closed_streams") > 0, "DATA for evicted streams dropped and counted");
    // Open streams hold a short request and at most 64 bytes of DATA each: 2 KiB per stream is ample.
    let held = u64::from(s.h2_conns) * MAX_STREAMS * 2 * KIB;
    assert_rss_below("h2-streams", &v, caps.bound(held), bytes);
}

#[test]
fn hpack_tables_are_capped_and_bad_size_updates_counted() {
    // Few flows, so that the flow cap (not the number of connections in the capture) bounds the tables.
    let caps = Caps { max_flows: 8, max_buffered: 4 * MIB, max_body: 64 * KIB };
    let (v, bytes) = run(Scenario::HpackAbuse, &caps);
    let s = Sizes::test();
    assert_eq!(n(&v, "sessions.flows_h2"), u64::from(s.hpack_conns));
    assert_eq!(n(&v, "reassembly.flows_evicted"), u64::from(s.hpack_conns) - caps.max_flows);
    // Odd connections: the first size update (4 GiB - 1) and the last (2^31) are both refused.
    assert_eq!(n(&v, "sessions.h2.hpack_errors"), u64::from(s.hpack_conns));
    assert!(n(&v, "sessions.h2.header_blocks_unknown_table") > 0);
    assert_eq!(n(&v, "exchanges.total"), u64::from(s.hpack_conns) * u64::from(s.hpack_blocks_per_conn));
    let held = caps.max_flows * 2 * HPACK_TABLE;
    assert_rss_below("hpack-abuse", &v, caps.bound(held), bytes);
}

#[test]
fn segments_far_ahead_become_gaps_at_the_buffer_caps() {
    let caps = Caps { max_flows: 1_000, max_buffered: 8 * MIB, max_body: 64 * KIB };
    let (v, bytes) = run(Scenario::OooFarAhead, &caps);
    assert!(n(&v, "reassembly.cap_hits_total_bytes") > 0, "{}", v["reassembly"]);
    assert!(n(&v, "reassembly.gaps_cap") > 0);
    assert!(n(&v, "reassembly.out_of_window_segments") > 0, "1.5 GiB ahead is out of window");
    assert_peak_buffered_within(&v, &caps);
    assert_rss_below("ooo-far-ahead", &v, caps.bound(0), bytes);
}

#[test]
fn bound_formula_is_below_what_holding_the_inputs_would_take() {
    // Guards the "can fail" claim: each scenario's input is larger than the slack its bound leaves above BASE.
    let s = Sizes::test();
    let small = Caps { max_flows: 1_000, max_buffered: 4 * MIB, max_body: MIB };
    assert!(s.chunked_body_bytes > small.bound(2 * MIB + MAX_HEAD) - BASE);
    assert!(s.header_line_bytes as u64 > small.bound(2 * MAX_HEAD) - BASE);
}
