//! The ledger of disagreements with tshark on ../shared/corpus (agent/tests/corpus_ledger.tsv): every file whose
//! request or response count differs from tshark 4.0's, with the kind of difference and why. For each file the
//! capture is recorded here and the kind's condition is checked on what we recorded, so a difference that is not
//! explained fails the test:
//!
//! - `unfinished`: each extra message is in an exchange flagged incomplete, gap or reset (tshark emits no HTTP PDU
//!   for a message it could not reassemble to its end; proven on our own captures in golden.rs:
//!   `aborted_download_*`, `lost_segment_*`, `snaplen_truncated`).
//! - `malformed`: the same, parse_error included (a start line or framing tshark gives up on).
//! - `complete`: only responses differ, and there are at least as many complete, unflagged responses as extra ones.
//! - `method`: each extra request has a method tshark's dissector does not know (QUERY, WEIRD, ...).
//! - `port`: each extra request goes to a server port that tshark does not read as HTTP.
//! - `other`, `quoted` and `miss`: our counts are pinned to the ledger's, so any change shows; a `miss` (we see
//!   less than tshark) must still be one, and the ledger says why we miss it. `quoted`: tshark also counts HTTP it
//!   finds quoted inside other packets (the start of a request inside an ICMP error, a packet sampled by sFlow),
//!   which are no connection's messages; we see less, and the ledger says how many tshark took from where.
//!
//! A file that agrees with tshark again must leave the ledger (the test says so). Skipped, with the reason printed,
//! when the corpus is not beside the project.

mod support;

use std::path::{Path, PathBuf};

use tapedeck_model::{Exchange, Flags};

/// Methods tshark 4.0's HTTP dissector recognises as request lines (epan/dissectors/packet-http.c).
const TSHARK_METHODS: &[&str] = &[
    "GET",
    "POST",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "SEARCH",
    "M-SEARCH",
    "NOTIFY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "POLL",
    "BMOVE",
    "BCOPY",
    "BDELETE",
    "BPROPFIND",
    "BPROPPATCH",
    "REPORT",
    "CHECKIN",
    "CHECKOUT",
    "UNCHECKOUT",
    "MKACTIVITY",
    "MKWORKSPACE",
    "VERSION-CONTROL",
    "BASELINE-CONTROL",
    "MERGE",
    "LABEL",
    "UPDATE",
    "ACL",
    "MKCALENDAR",
    "ORDERPATCH",
    "SSDP",
];

/// tshark 4.0's default `http.tcp.port` range.
const TSHARK_HTTP_PORTS: &[u16] = &[80, 3128, 3132, 5985, 8080, 8088, 11371, 1900, 2869, 2710];

struct Entry {
    file: String,
    tshark: (usize, usize),
    ours: (usize, usize),
    kind: String,
    why: String,
}

fn ledger() -> Vec<Entry> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus_ledger.tsv")).unwrap();
    let num = |s: &str| s.parse::<usize>().unwrap_or_else(|e| panic!("ledger: {s:?}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 7, "ledger line: {l}");
            Entry {
                file: f[0].into(),
                tshark: (num(f[1]), num(f[2])),
                ours: (num(f[3]), num(f[4])),
                kind: f[5].into(),
                why: f[6].into(),
            }
        })
        .collect()
}

fn corpus_root() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    if p.join("ORACLE.tsv").is_file() {
        Some(p)
    } else {
        eprintln!("skipped: {} is not there (the corpus lives in ../shared/corpus)", p.display());
        None
    }
}

fn record(capture: &Path) -> Vec<Exchange> {
    support::record_file(capture).1
}

fn any(flags: Flags, of: Flags) -> bool {
    flags.0 & of.0 != 0
}

/// Why `e`'s recorded counts are not explained by its kind, if they are not.
fn unexplained(e: &Entry, ex: &[Exchange]) -> Option<String> {
    let ours = (ex.iter().filter(|x| x.request.is_some()).count(), ex.iter().filter(|x| x.response.is_some()).count());
    if ours == e.tshark {
        return Some(format!("now agrees with tshark {:?}: take it out of the ledger", e.tshark));
    }
    let pinned = matches!(e.kind.as_str(), "other" | "miss" | "quoted");
    if pinned {
        if ours != e.ours {
            return Some(format!("counts changed from {:?} to {ours:?}: update the ledger", e.ours));
        }
        let is_miss = ours.0 < e.tshark.0 || ours.1 < e.tshark.1;
        return match (e.kind.as_str(), is_miss) {
            ("miss", false) => Some("no longer a miss: reclassify it".into()),
            ("other", true) => Some("we now see less than tshark: a regression, or reclassify it as a miss".into()),
            _ => None,
        };
    }
    if ours.0 < e.tshark.0 || ours.1 < e.tshark.1 {
        return Some(format!("we now see less than tshark ({ours:?} < {:?}): a regression", e.tshark));
    }
    let (extra_req, extra_resp) = (ours.0 - e.tshark.0, ours.1 - e.tshark.1);
    let unfinished = Flags::INCOMPLETE | Flags::GAP | Flags::RESET;
    let broken = unfinished | Flags::PARSE_ERROR;
    let requests = || ex.iter().filter(|x| x.request.is_some());
    let responses = || ex.iter().filter(|x| x.response.is_some());
    let (req_ok, resp_ok) = match e.kind.as_str() {
        "unfinished" | "malformed" => {
            let mask = if e.kind == "unfinished" { unfinished } else { broken };
            (requests().filter(|x| any(x.flags, mask)).count(), responses().filter(|x| any(x.flags, mask)).count())
        }
        "complete" => (0, responses().filter(|x| !any(x.flags, broken)).count()),
        "method" => {
            let unknown = |x: &&Exchange| {
                let m = String::from_utf8_lossy(&x.request.as_ref().unwrap().method).to_string();
                !TSHARK_METHODS.contains(&m.as_str())
            };
            (requests().filter(unknown).count(), 0)
        }
        "port" => (requests().filter(|x| !TSHARK_HTTP_PORTS.contains(&x.server.port())).count(), 0),
        other => return Some(format!("unknown kind {other:?}")),
    };
    if extra_req > req_ok || extra_resp > resp_ok {
        return Some(format!(
            "{extra_req} extra request(s) and {extra_resp} extra response(s), but only {req_ok} and {resp_ok} fit \
             the kind {:?}",
            e.kind
        ));
    }
    None
}

#[test]
fn every_disagreement_with_tshark_is_explained() {
    let Some(root) = corpus_root() else { return };
    let entries = ledger();
    assert!(!entries.is_empty());
    let mut failures = Vec::new();
    for e in &entries {
        assert!(!e.why.is_empty(), "{}: say why", e.file);
        let path = root.join(&e.file);
        if !path.is_file() {
            failures.push(format!("{}: not in the corpus", e.file));
            continue;
        }
        if let Some(why) = unexplained(e, &record(&path)) {
            failures.push(format!("{} ({}): {why}", e.file, e.kind));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} ledger entries fail:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}

#[test]
fn the_ledger_matches_the_oracle() {
    // The tshark columns are copied from ORACLE.tsv (requests and final responses as ../shared/corpus/check
    // counts them); a changed oracle must be noticed here, not silently explained with stale numbers.
    let Some(root) = corpus_root() else { return };
    let oracle = std::fs::read_to_string(root.join("ORACLE.tsv")).unwrap();
    let header: Vec<&str> = oracle.lines().next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (path, req) = (col("local_path"), col("http_req_pdus"));
    for e in ledger() {
        let line = oracle.lines().find(|l| l.split('\t').nth(path) == Some(e.file.as_str()));
        let line = line.unwrap_or_else(|| panic!("{}: not in ORACLE.tsv", e.file));
        let n: usize = line.split('\t').nth(req).unwrap().parse().unwrap();
        assert_eq!(n, e.tshark.0, "{}: tshark's request count", e.file);
    }
}
