//! Reading and selecting: segment files (or directories of them, several paths) in, the exchanges that pass the
//! filters out, sorted by capture time.
//!
//! Filters: method, host (authority, with or without port), path prefix and regex, status (`200`, `2xx`),
//! protocol, time window (`--from`/`--to`, an offset from the capture start such as `30s`, or an RFC 3339 time),
//! and a limit (the first N exchanges in time order). An exchange without a request cannot be replayed and is
//! counted, never silently dropped. A damaged segment is read up to what can be read, and gives one warning naming
//! the file and the offsets of the damage.
//!
//! Memory is bounded by configuration, never by the input: the selected exchanges (bodies included) are held for
//! planning, so their size ([`Exchange::approx_bytes`]) is counted as they are read, and going past
//! `--max-selection-bytes` stops the selection with an error naming the file and the flag, before anything is
//! sent. With `--limit N` only the N earliest seen so far are held (a max-heap on capture time: a later one is
//! dropped at once, an earlier one evicts the latest), so `--limit` bounds memory too, whatever the input's size.

use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use regex::bytes::Regex;
use serde::Serialize;
use tapedeck_model::segment::{SegmentReader, list_segments_with_tmp};
use tapedeck_model::{Exchange, Protocol, Timestamp};

/// A status filter: one code or a class (`2xx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusMatch {
    /// Exactly this status.
    Code(u16),
    /// Any status of this class (2 for `2xx`).
    Class(u16),
}

impl std::str::FromStr for StatusMatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || format!("'{s}' is not a status: expected a code such as 404 or a class such as 2xx");
        if let Some(c) = t.strip_suffix("xx") {
            return match c.parse::<u16>() {
                Ok(c @ 1..=5) => Ok(StatusMatch::Class(c)),
                _ => Err(bad()),
            };
        }
        match t.parse::<u16>() {
            Ok(c @ 100..=999) => Ok(StatusMatch::Code(c)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl StatusMatch {
    fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == status,
            StatusMatch::Class(c) => status / 100 == c,
        }
    }
}

/// Parses a protocol name (`http/1.0`, `http/1.1`, `h1` for both, `h2`).
pub fn parse_protocols(s: &str) -> Result<Vec<Protocol>, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "http/1.0" | "http1.0" | "h1.0" => Ok(vec![Protocol::Http10]),
        "http/1.1" | "http1.1" | "h1.1" => Ok(vec![Protocol::Http11]),
        "h1" | "http1" | "http/1" => Ok(vec![Protocol::Http10, Protocol::Http11]),
        "h2" | "http2" | "http/2" => Ok(vec![Protocol::H2]),
        _ => Err(format!("'{s}' is not a protocol: expected http/1.0, http/1.1, h1 (both) or h2")),
    }
}

/// A bound of the time window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBound {
    /// An offset from the start of the capture (the earliest exchange of all the files read).
    Offset(Duration),
    /// An absolute capture time.
    At(Timestamp),
}

impl std::str::FromStr for TimeBound {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(d) = humantime::parse_duration(s.trim()) {
            return Ok(TimeBound::Offset(d));
        }
        match humantime::parse_rfc3339_weak(s.trim()) {
            Ok(t) => {
                let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                Ok(TimeBound::At(Timestamp(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))))
            }
            Err(_) => Err(format!(
                "'{s}' is not a time: expected an offset from the capture start (30s, 1m30s) or an RFC 3339 time \
                 (2024-05-01T12:00:00Z)"
            )),
        }
    }
}

impl std::fmt::Display for TimeBound {
    /// As it can be typed back: `30s`, `1m 30s`, `2026-11-21T19:33:00Z`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TimeBound::Offset(d) => write!(f, "{}", humantime::format_duration(*d)),
            TimeBound::At(t) => {
                let at = UNIX_EPOCH + Duration::from_nanos(t.0);
                if t.0 % 1_000_000_000 == 0 {
                    write!(f, "{}", humantime::format_rfc3339_seconds(at))
                } else {
                    write!(f, "{}", humantime::format_rfc3339_nanos(at))
                }
            }
        }
    }
}

impl TimeBound {
    fn resolve(self, capture_start: Timestamp) -> Timestamp {
        match self {
            TimeBound::Offset(d) => {
                Timestamp(capture_start.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
            }
            TimeBound::At(t) => t,
        }
    }
}

/// Which exchanges to replay. Empty lists match everything; several values of one filter are alternatives.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Methods (case-insensitive).
    pub methods: Vec<String>,
    /// Hosts: matched against the authority, with or without its port (case-insensitive).
    pub hosts: Vec<String>,
    /// Path prefixes.
    pub path_prefixes: Vec<String>,
    /// A regex the path (with query) must match.
    pub path_regex: Option<Regex>,
    /// Recorded statuses; an exchange without a response never matches a status filter.
    pub statuses: Vec<StatusMatch>,
    /// Protocols.
    pub protocols: Vec<Protocol>,
    /// Start of the time window (inclusive).
    pub from: Option<TimeBound>,
    /// End of the time window (exclusive).
    pub to: Option<TimeBound>,
    /// At most this many exchanges, the earliest first.
    pub limit: Option<usize>,
    /// Keep exchanges without a request (a response whose request was not captured) when no method, host, path,
    /// status or protocol filter is given: `inspect` lists them, a replay cannot send them.
    pub keep_without_request: bool,
}

impl Filter {
    /// Whether a method, host, path, status or protocol filter is given.
    pub fn narrows(&self) -> bool {
        !(self.methods.is_empty()
            && self.hosts.is_empty()
            && self.path_prefixes.is_empty()
            && self.path_regex.is_none()
            && self.statuses.is_empty()
            && self.protocols.is_empty())
    }

    /// Whether `ex` passes every filter except the time window and the limit. Pure.
    pub fn matches(&self, ex: &Exchange) -> bool {
        let Some(req) = &ex.request else { return false };
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m.as_bytes().eq_ignore_ascii_case(&req.method)) {
            return false;
        }
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| host_matches(h, &req.authority)) {
            return false;
        }
        if !self.path_prefixes.is_empty() && !self.path_prefixes.iter().any(|p| req.path.starts_with(p.as_bytes())) {
            return false;
        }
        if let Some(re) = &self.path_regex
            && !re.is_match(&req.path)
        {
            return false;
        }
        if !self.statuses.is_empty() {
            let Some(resp) = &ex.response else { return false };
            if !self.statuses.iter().any(|s| s.matches(resp.status)) {
                return false;
            }
        }
        if !self.protocols.is_empty() && !self.protocols.contains(&ex.proto) {
            return false;
        }
        true
    }

    /// Whether `ex` lies in the time window, the capture starting at `capture_start`. Exchanges without a
    /// timestamp are kept only when there is no window.
    pub fn in_window(&self, ex: &Exchange, capture_start: Timestamp) -> bool {
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        let Some(t) = ex.timing.start() else { return false };
        if let Some(from) = self.from
            && t < from.resolve(capture_start)
        {
            return false;
        }
        if let Some(to) = self.to
            && t >= to.resolve(capture_start)
        {
            return false;
        }
        true
    }
}

/// `filter` (`api.example.com` or `api.example.com:8080`) against an authority, case-insensitively.
fn host_matches(filter: &str, authority: &[u8]) -> bool {
    let f = filter.as_bytes();
    if authority.eq_ignore_ascii_case(f) {
        return true;
    }
    let host = strip_port(authority);
    host.eq_ignore_ascii_case(f)
}

/// The host part of an authority (`[::1]:80` -> `[::1]`, `a:80` -> `a`).
pub fn strip_port(authority: &[u8]) -> &[u8] {
    if authority.first() == Some(&b'[') {
        return match authority.iter().position(|&b| b == b']') {
            Some(i) => &authority[..=i],
            None => authority,
        };
    }
    match authority.iter().rposition(|&b| b == b':') {
        Some(i) if authority[i + 1..].iter().all(u8::is_ascii_digit) => &authority[..i],
        _ => authority,
    }
}

/// Counters of the selection.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SelectStats {
    /// Segment files read (in full or in part).
    pub files: u64,
    /// Files that could not be opened (not a segment, unsupported version, I/O); each gave a warning.
    pub files_unreadable: u64,
    /// Files with damage (skipped blocks, torn tail, missing footer); each gave one warning.
    pub files_damaged: u64,
    /// Damaged blocks or regions skipped.
    pub damaged_regions: u64,
    /// Blocks with a torn tail (cut short by a writer that died, or a cut file); their exchanges are not counted.
    pub torn_tails: u64,
    /// Damaged blocks whose exchange count is known (counted in `exchanges_lost`).
    pub blocks_lost: u64,
    /// Exchanges lost in damaged blocks, from the record counts of their (verified) block headers or index.
    pub exchanges_lost: u64,
    /// Damage whose exchange count is unknown: regions the scan skipped, torn tails, files that could not be opened.
    pub damage_uncounted: u64,
    /// Exchanges read.
    pub exchanges_read: u64,
    /// Exchanges without a request (a response whose request was not captured): cannot be replayed.
    pub skipped_no_request: u64,
    /// Exchanges that did not pass the method/host/path/status/protocol filters.
    pub filtered_out: u64,
    /// Exchanges outside the time window.
    pub outside_window: u64,
    /// Exchanges cut by `--limit`.
    pub over_limit: u64,
    /// Exchanges selected.
    pub selected: u64,
    /// Largest estimated size of the held exchanges during the selection, in bytes (see [`Budget`]).
    pub peak_bytes: u64,
}

impl SelectStats {
    /// Whether some input could not be read (a file, a block, a torn tail): exchanges were lost.
    pub fn input_damaged(&self) -> bool {
        self.files_unreadable + self.damaged_regions + self.torn_tails > 0
    }

    /// What was lost, for the final error: `input damaged: 3 exchanges lost in 1 damaged block(s), and an
    /// unknown number in 1 region(s) (...); 1 of 2 files damaged or unreadable (see the warnings above)`; `None` when
    /// nothing was lost.
    pub fn loss(&self) -> Option<String> {
        if !self.input_damaged() {
            return None;
        }
        Some(format!(
            "input damaged: {}; {} of {} files damaged or unreadable (see the warnings above)",
            lost_words(self.exchanges_lost, self.blocks_lost, self.damage_uncounted),
            self.files_unreadable + self.files_damaged,
            self.files + self.files_unreadable
        ))
    }
}

/// `3 exchanges lost in 1 damaged block(s), and an unknown number in 1 region(s) (...)`, either part alone when the
/// other is nothing.
pub fn lost_words(exchanges: u64, blocks: u64, uncounted: u64) -> String {
    let mut parts = Vec::new();
    if blocks > 0 || uncounted == 0 {
        parts.push(format!("{exchanges} exchanges lost in {blocks} damaged block(s)"));
    }
    if uncounted > 0 {
        let what = if parts.is_empty() { "an unknown number of exchanges lost" } else { "an unknown number" };
        parts.push(format!(
            "{what} in {uncounted} region(s) (skipped by the scan, torn tails, files that could not be opened)"
        ));
    }
    parts.join(", and ")
}

/// The default of `--max-selection-bytes`.
pub const DEFAULT_MAX_SELECTION_BYTES: &str = "2GiB";

/// How much the selection may hold: the sum of [`Exchange::approx_bytes`] of the exchanges kept at any moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Most bytes held.
    pub max_bytes: u64,
}

impl Budget {
    /// No bound (tests, and callers that bound their input otherwise).
    pub const UNBOUNDED: Budget = Budget { max_bytes: u64::MAX };
}

/// `--max-selection-bytes` for clap (`run`, `inspect`, `mock`).
pub(crate) fn parse_budget(s: &str) -> Result<Budget, String> {
    s.parse()
}

impl std::str::FromStr for Budget {
    type Err = String;
    /// `--max-selection-bytes`: a size such as `512MiB`, `4GiB` or a number of bytes.
    fn from_str(s: &str) -> Result<Budget, String> {
        match parse_size::parse_size(s.trim()) {
            Ok(0) => Err(format!("'{s}': the selection budget must be more than 0 bytes")),
            Ok(max_bytes) => Ok(Budget { max_bytes }),
            Err(e) => Err(format!("'{s}' is not a size ({e}); use a number of bytes or a unit: 512MiB, 4GiB")),
        }
    }
}

/// The selected exchanges, sorted by capture time, with what happened while reading.
#[derive(Debug, Default)]
pub struct Selection {
    /// The exchanges, earliest first. Boxed: the selection, the plan and the mock index move a pointer per
    /// exchange, never a copy of the 528-byte struct, so no growing or sorting step needs twice the selection's
    /// memory.
    pub exchanges: Vec<Box<Exchange>>,
    /// Counters.
    pub stats: SelectStats,
    /// One line per problem file (damaged or unreadable), naming it.
    pub warnings: Vec<String>,
}

/// Reads every segment under `paths` and keeps what passes `filter`, within `budget`. Fails when a path does not
/// exist or cannot be listed, and when the selection outgrows the budget; damaged and unreadable files become
/// warnings.
pub fn select(paths: &[PathBuf], filter: &Filter, budget: Budget) -> anyhow::Result<Selection> {
    select_where(paths, filter, budget, &|_| true, RUN_NARROWING)
}

/// The flags of `replayer run` that narrow a selection, named when it outgrows its budget.
const RUN_NARROWING: &str = "--from/--to, --limit, --host, --path-prefix, --method, --status";

/// [`select`], with one more condition on each exchange (`keep`), counted with the filters' `filtered_out`;
/// `narrowing` names the caller's flags that narrow a selection, for the error past the budget.
pub fn select_where(
    paths: &[PathBuf],
    filter: &Filter,
    budget: Budget,
    keep: &dyn Fn(&Exchange) -> bool,
    narrowing: &str,
) -> anyhow::Result<Selection> {
    let mut sel = Selection::default();
    let mut files = Vec::new();
    for path in paths {
        let found = list_segments_with_tmp(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        if found.is_empty() {
            sel.warnings.push(format!("{}: no segment files there", path.display()));
        }
        files.extend(found);
    }
    let mut readers = Vec::new();
    for file in files {
        match SegmentReader::open(&file) {
            Ok(r) => readers.push(r),
            Err(e) => {
                sel.stats.files_unreadable += 1;
                sel.stats.damage_uncounted += 1;
                sel.warnings.push(e.to_string());
            }
        }
    }
    // The capture start, from the block indexes, without decoding anything.
    let capture_start =
        readers.iter().flat_map(|r| r.blocks().iter().map(|b| b.first_ts)).min().unwrap_or(Timestamp(0));
    let mut held = Held::new(filter.limit, budget);
    for mut reader in readers {
        sel.stats.files += 1;
        let path = reader.path().to_path_buf();
        let mut damage_offsets = Vec::new();
        let mut damaged_at = Vec::new();
        for item in reader.exchanges() {
            match item {
                Ok(ex) => {
                    sel.stats.exchanges_read += 1;
                    if ex.request.is_none() && (!filter.keep_without_request || filter.narrows()) {
                        sel.stats.skipped_no_request += 1;
                    } else if (ex.request.is_some() && !filter.matches(&ex)) || !keep(&ex) {
                        sel.stats.filtered_out += 1;
                    } else if !filter.in_window(&ex, capture_start) {
                        sel.stats.outside_window += 1;
                    } else {
                        held.push(ex).map_err(|over| over.error(&path, &sel.stats, narrowing))?;
                    }
                }
                Err(e) => {
                    sel.stats.damaged_regions += 1;
                    damaged_at.push(e.offset());
                    damage_offsets.push(e.offset().map_or_else(|| e.to_string(), |o| format!("offset {o}")));
                }
            }
        }
        let lost = Lost::count(reader.blocks(), &damaged_at);
        sel.stats.blocks_lost += lost.blocks;
        sel.stats.exchanges_lost += lost.exchanges;
        sel.stats.damage_uncounted += lost.uncounted;
        let recovery = reader.recovery();
        if recovery.torn_tail_bytes > 0 {
            sel.stats.torn_tails += 1;
            sel.stats.damage_uncounted += 1;
            let end = recovery.file_len.saturating_sub(recovery.torn_tail_bytes);
            damage_offsets.push(format!("offset {end} (torn tail)"));
        }
        if !recovery.is_clean() || !damage_offsets.is_empty() {
            sel.stats.files_damaged += 1;
            let at = if damage_offsets.is_empty() {
                String::new()
            } else {
                format!(" (damage at {})", damage_offsets.join(", "))
            };
            sel.warnings.push(format!(
                "{}: damaged segment{at}: using what could be read: {recovery}; {}",
                reader.path().display(),
                lost_words(lost.exchanges, lost.blocks, lost.uncounted + u64::from(recovery.torn_tail_bytes > 0)),
            ));
        }
    }
    sel.stats.over_limit = held.evicted;
    sel.stats.peak_bytes = held.peak_bytes;
    sel.exchanges = held.into_sorted();
    sel.stats.selected = sel.exchanges.len() as u64;
    Ok(sel)
}

/// What the damaged regions of one file held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Damaged blocks whose record count is known (from the footer index or their block header).
    pub blocks: u64,
    /// Exchanges in those blocks.
    pub exchanges: u64,
    /// Damaged regions that are not a listed block (skipped by the scan): count unknown.
    pub uncounted: u64,
}

impl Lost {
    /// Counts the exchanges lost at the offsets where reading failed (`SegmentError::offset`), from the record
    /// counts of the blocks listed there.
    pub fn count(blocks: &[tapedeck_model::segment::BlockInfo], damaged_at: &[Option<u64>]) -> Lost {
        let mut lost = Lost::default();
        for at in damaged_at {
            match blocks.iter().find(|b| Some(b.offset) == *at) {
                Some(b) => {
                    lost.blocks += 1;
                    lost.exchanges += u64::from(b.records);
                }
                None => lost.uncounted += 1,
            }
        }
        lost
    }
}

/// The order of the selection: capture time (exchanges without one last), connection, order on it, then the
/// order of reading, so that equal keys keep the order the segments gave them.
type SortKey = (Timestamp, u64, u32, u64);

/// An exchange held by the selection, ordered by its [`SortKey`].
struct Keyed {
    key: SortKey,
    bytes: u64,
    exchange: Box<Exchange>,
}

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// What the selection holds while reading, within `budget` bytes.
struct Held {
    store: Store,
    budget: Budget,
    bytes: u64,
    peak_bytes: u64,
    evicted: u64,
    seq: u64,
}

/// Without a limit, everything in reading order (sorted once at the end: segments are nearly in time order, which
/// a heap would pay for on every push); with `--limit N`, the N earliest so far in a max-heap whose top is the
/// latest held.
enum Store {
    All(Vec<Keyed>),
    Earliest { heap: BinaryHeap<Keyed>, limit: usize },
}

/// The selection went past its budget.
struct OverBudget {
    budget: Budget,
    held: u64,
}

impl OverBudget {
    /// The error that names the file being read, what was selected and the flag.
    fn error(&self, file: &Path, stats: &SelectStats, narrowing: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: the selected exchanges need more than --max-selection-bytes {} of memory ({} held after reading \
             {} exchanges in {} files); nothing was done: narrow the selection ({narrowing}) or raise \
             --max-selection-bytes",
            file.display(),
            human_bytes(self.budget.max_bytes),
            self.held,
            stats.exchanges_read,
            stats.files,
        )
    }
}

impl Held {
    fn new(limit: Option<usize>, budget: Budget) -> Held {
        let store = match limit {
            None => Store::All(Vec::new()),
            Some(limit) => Store::Earliest { heap: BinaryHeap::new(), limit },
        };
        Held { store, budget, bytes: 0, peak_bytes: 0, evicted: 0, seq: 0 }
    }

    /// Keeps `ex` (with a limit: if it is among the earliest so far, evicting the latest held), within the budget.
    fn push(&mut self, ex: Exchange) -> Result<(), OverBudget> {
        let key = (ex.timing.start().unwrap_or(Timestamp(u64::MAX)), ex.connection_id, ex.order, self.seq);
        self.seq += 1;
        let held = match &mut self.store {
            Store::All(all) => all.len(),
            Store::Earliest { heap, limit } => {
                if heap.len() >= *limit {
                    if *limit == 0 || heap.peek().is_some_and(|latest| latest.key < key) {
                        self.evicted += 1;
                        return Ok(());
                    }
                    if let Some(latest) = heap.pop() {
                        self.bytes -= latest.bytes;
                        self.evicted += 1;
                    }
                }
                heap.len()
            }
        };
        let bytes = ex.approx_bytes() as u64;
        self.bytes += bytes;
        self.peak_bytes = self.peak_bytes.max(self.bytes);
        if self.bytes > self.budget.max_bytes {
            return Err(OverBudget { budget: self.budget, held: held as u64 + 1 });
        }
        let keyed = Keyed { key, bytes, exchange: Box::new(ex) };
        match &mut self.store {
            Store::All(all) => all.push(keyed),
            Store::Earliest { heap, .. } => heap.push(keyed),
        }
        Ok(())
    }

    /// The held exchanges, earliest first.
    #[allow(clippy::vec_box, reason = "boxes move as pointers through sorting and planning (see Selection)")]
    fn into_sorted(self) -> Vec<Box<Exchange>> {
        let sorted = match self.store {
            Store::All(mut all) => {
                // Keys are unique (the reading order is their last part): an unstable sort is exact.
                all.sort_unstable_by_key(|k| k.key);
                all
            }
            Store::Earliest { heap, .. } => heap.into_sorted_vec(),
        };
        sorted.into_iter().map(|k| k.exchange).collect()
    }
}

/// `2147483648` -> `2 GiB`, `1536` -> `1.5 KiB`: sizes in messages.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 { format!("{v:.0} {}", UNITS[unit]) } else { format!("{v:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_model::{Request, Response, Timing};

    fn ex(method: &str, authority: &str, path: &str, status: Option<u16>, proto: Protocol, t: u64) -> Exchange {
        Exchange {
            id: t,
            connection_id: 1,
            order: 0,
            stream_id: None,
            proto,
            client: "10.0.0.1:1234".parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            timing: Timing { request_first: Some(Timestamp(t)), ..Default::default() },
            request: Some(Request {
                method: method.into(),
                authority: authority.into(),
                path: path.into(),
                ..Default::default()
            }),
            response: status.map(|s| Response { status: s, ..Default::default() }),
            flags: Default::default(),
            labels: vec![],
            masked_by: vec![],
        }
    }

    #[test]
    fn filters_combine() {
        let get = ex("GET", "api.example.com:8080", "/users/1?x=2", Some(200), Protocol::Http11, 0);
        let post = ex("POST", "Other.example.com", "/orders", Some(503), Protocol::H2, 0);
        let none = ex("GET", "api.example.com", "/users/2", None, Protocol::Http11, 0);

        let f = Filter { methods: vec!["get".into()], ..Default::default() };
        assert!(f.matches(&get) && !f.matches(&post) && f.matches(&none));

        let f = Filter { hosts: vec!["api.example.com".into()], ..Default::default() };
        assert!(f.matches(&get) && !f.matches(&post) && f.matches(&none));
        let f = Filter { hosts: vec!["other.example.com".into()], ..Default::default() };
        assert!(f.matches(&post) && !f.matches(&get));
        let f = Filter { hosts: vec!["api.example.com:9999".into()], ..Default::default() };
        assert!(!f.matches(&get));

        let f = Filter { path_prefixes: vec!["/users".into()], ..Default::default() };
        assert!(f.matches(&get) && !f.matches(&post));
        let f = Filter { path_regex: Some(Regex::new(r"^/users/\d+\?").unwrap()), ..Default::default() };
        assert!(f.matches(&get) && !f.matches(&none));

        let f = Filter { statuses: vec!["5xx".parse().unwrap()], ..Default::default() };
        assert!(f.matches(&post) && !f.matches(&get) && !f.matches(&none));
        let f = Filter { statuses: vec!["200".parse().unwrap()], ..Default::default() };
        assert!(f.matches(&get) && !f.matches(&post));

        let f = Filter { protocols: parse_protocols("h2").unwrap(), ..Default::default() };
        assert!(f.matches(&post) && !f.matches(&get));

        let mut no_req = get.clone();
        no_req.request = None;
        assert!(!Filter::default().matches(&no_req));
    }

    #[test]
    fn time_window_by_offset_and_absolute() {
        let start = Timestamp(1_000_000_000_000);
        let at = |s: u64| ex("GET", "a", "/", None, Protocol::Http11, start.0 + s * 1_000_000_000);
        let f = Filter { from: Some("10s".parse().unwrap()), to: Some("20s".parse().unwrap()), ..Default::default() };
        assert!(!f.in_window(&at(9), start));
        assert!(f.in_window(&at(10), start));
        assert!(f.in_window(&at(19), start));
        assert!(!f.in_window(&at(20), start));

        let f = Filter { from: Some("1970-01-01T00:16:50Z".parse().unwrap()), ..Default::default() };
        // 16 min 50 s = 1010 s since the epoch; start is at 1000 s.
        assert!(!f.in_window(&at(9), start));
        assert!(f.in_window(&at(10), start));
        assert!("yesterday-ish".parse::<TimeBound>().unwrap_err().contains("RFC 3339"));
    }

    /// Writes `exs` into one segment file under a new directory, in this order.
    fn segment_of(exs: &[Exchange]) -> tempfile::TempDir {
        use tapedeck_model::segment::{SegmentWriter, SegmentWriterConfig};
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SegmentWriterConfig::new(dir.path());
        cfg.max_block_exchanges = 7;
        let mut w = SegmentWriter::create(cfg).unwrap();
        for e in exs {
            w.write(e).unwrap();
        }
        w.finish().unwrap();
        dir
    }

    /// `n` exchanges with bodies of `body` bytes, one a second, on connection 1.
    fn with_bodies(n: u64, body: usize) -> Vec<Exchange> {
        (0..n)
            .map(|i| {
                let mut e = ex("POST", "a", "/upload", Some(200), Protocol::Http11, 1_000_000_000 * (i + 1));
                e.id = i;
                e.order = i as u32;
                e.request.as_mut().unwrap().body.bytes = vec![b'x'; body];
                e
            })
            .collect()
    }

    proptest::proptest! {
        /// `--limit` keeps exactly what a full stable sort by capture time, connection and order, cut at the
        /// limit, would keep, in that order, while holding no more than the limit.
        #[test]
        fn limit_keeps_the_earliest_as_a_full_sort_would(
            keys in proptest::collection::vec((proptest::option::weighted(0.9, 0u64..20), 0u64..4, 0u32..4), 0..40),
            limit in 0usize..45,
        ) {
            let exs: Vec<Exchange> = keys
                .iter()
                .enumerate()
                .map(|(i, &(t, conn, order))| {
                    let mut e = ex("GET", "a", "/", Some(200), Protocol::Http11, 0);
                    e.id = i as u64;
                    e.connection_id = conn;
                    e.order = order;
                    e.timing.request_first = t.map(|t| Timestamp(1_000 + t));
                    e
                })
                .collect();
            let mut expected: Vec<(Timestamp, u64, u32, u64)> = exs
                .iter()
                .map(|e| (e.timing.request_first.unwrap_or(Timestamp(u64::MAX)), e.connection_id, e.order, e.id))
                .collect();
            expected.sort_by_key(|k| (k.0, k.1, k.2));
            expected.truncate(limit);
            let dir = segment_of(&exs);
            let filter = Filter { limit: Some(limit), ..Default::default() };
            let sel = select(&[dir.path().to_path_buf()], &filter, Budget::UNBOUNDED).unwrap();
            let got: Vec<u64> = sel.exchanges.iter().map(|e| e.id).collect();
            let want: Vec<u64> = expected.iter().map(|k| k.3).collect();
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(sel.stats.over_limit, (exs.len() - exs.len().min(limit)) as u64);
            let most: u64 = {
                let mut sizes: Vec<u64> = exs.iter().map(|e| e.approx_bytes() as u64).collect();
                sizes.sort_unstable_by(|a, b| b.cmp(a));
                sizes.iter().take(limit).sum()
            };
            proptest::prop_assert!(sel.stats.peak_bytes <= most, "held {} > {most}", sel.stats.peak_bytes);
        }
    }

    #[test]
    fn a_selection_past_its_budget_stops_naming_the_file_and_the_flag() {
        let exs = with_bodies(100, 1024);
        let dir = segment_of(&exs);
        let paths = [dir.path().to_path_buf()];
        let budget: Budget = "20KiB".parse().unwrap();
        let e = select(&paths, &Filter::default(), budget).unwrap_err().to_string();
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        assert!(e.contains("--max-selection-bytes 20 KiB") && e.contains("--limit"), "{e}");

        let sel = select(&paths, &Filter::default(), "1MiB".parse().unwrap()).unwrap();
        assert_eq!(sel.exchanges.len(), 100);
        assert!(sel.stats.peak_bytes >= 100 * 1024 && sel.stats.peak_bytes <= 1 << 20, "{}", sel.stats.peak_bytes);
    }

    #[test]
    fn a_limit_bounds_memory_whatever_the_input() {
        let exs = with_bodies(200, 1024);
        let dir = segment_of(&exs);
        // Ten exchanges fit the budget; the input is twenty times that.
        let budget = Budget { max_bytes: 10 * exs[0].approx_bytes() as u64 };
        let filter = Filter { limit: Some(10), ..Default::default() };
        let sel = select(&[dir.path().to_path_buf()], &filter, budget).unwrap();
        let ids: Vec<u64> = sel.exchanges.iter().map(|e| e.id).collect();
        assert_eq!(ids, (0..10).collect::<Vec<u64>>());
        assert_eq!(sel.stats.over_limit, 190);
        assert!(sel.stats.peak_bytes <= budget.max_bytes);
    }

    #[test]
    fn damaged_blocks_count_the_exchanges_they_held() {
        let exs = with_bodies(21, 10);
        let dir = segment_of(&exs);
        let paths = [dir.path().to_path_buf()];
        let clean = select(&paths, &Filter::default(), Budget::UNBOUNDED).unwrap();
        assert!(!clean.stats.input_damaged() && clean.stats.loss().is_none());
        let file = tapedeck_model::segment::list_segments(dir.path()).unwrap().remove(0);
        let mut bytes = std::fs::read(&file).unwrap();
        // Three blocks of seven: a flipped byte in the middle one loses its seven exchanges.
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let sel = select(&paths, &Filter::default(), Budget::UNBOUNDED).unwrap();
        assert_eq!((sel.stats.exchanges_read, sel.stats.exchanges_lost, sel.stats.blocks_lost), (14, 7, 1));
        let loss = sel.stats.loss().unwrap();
        assert!(loss.starts_with("input damaged: 7 exchanges lost in 1 damaged block(s);"), "{loss}");
        assert!(sel.warnings[0].ends_with("; 7 exchanges lost in 1 damaged block(s)"), "{:?}", sel.warnings);

        std::fs::write(&file, &bytes[..bytes.len() - 40]).unwrap();
        let sel = select(&paths, &Filter::default(), Budget::UNBOUNDED).unwrap();
        assert!(sel.stats.torn_tails + sel.stats.damage_uncounted > 0 && sel.stats.input_damaged(), "{:?}", sel.stats);
        let loss = sel.stats.loss().unwrap();
        assert!(
            loss.contains("7 exchanges lost in 1 damaged block(s), and an unknown number in 1 region(s)"),
            "{loss}"
        );
        assert_eq!(
            lost_words(0, 0, 2),
            "an unknown number of exchanges lost in 2 region(s) (skipped by the scan, torn tails, files that could not be opened)"
        );
    }

    #[test]
    fn exchanges_without_a_request_are_kept_only_when_asked_and_unfiltered() {
        let mut lone = ex("GET", "a", "/", Some(200), Protocol::Http11, 5);
        lone.request = None;
        let dir = segment_of(&[ex("GET", "a", "/x", Some(200), Protocol::Http11, 1), lone]);
        let paths = [dir.path().to_path_buf()];
        let count = |f: Filter| select(&paths, &f, Budget::UNBOUNDED).unwrap().exchanges.len();
        assert_eq!(count(Filter::default()), 1, "a replay cannot send it");
        assert_eq!(count(Filter { keep_without_request: true, ..Default::default() }), 2);
        let get = Filter { keep_without_request: true, methods: vec!["GET".into()], ..Default::default() };
        assert_eq!(count(get), 1, "a method filter cannot match it");
    }

    #[test]
    fn budgets_parse_with_units_and_say_what_is_wrong() {
        assert_eq!("512MiB".parse::<Budget>(), Ok(Budget { max_bytes: 512 << 20 }));
        assert_eq!(" 4GiB ".parse::<Budget>(), Ok(Budget { max_bytes: 4 << 30 }));
        assert!("0".parse::<Budget>().unwrap_err().contains("more than 0"));
        assert!("lots".parse::<Budget>().unwrap_err().contains("not a size"));
        assert_eq!(human_bytes(20 << 10), "20 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(2 << 30), "2 GiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }

    #[test]
    fn status_and_port_parsing() {
        assert_eq!("2xx".parse::<StatusMatch>(), Ok(StatusMatch::Class(2)));
        assert_eq!("404".parse::<StatusMatch>(), Ok(StatusMatch::Code(404)));
        assert!("9xx".parse::<StatusMatch>().is_err() && "42".parse::<StatusMatch>().is_err());
        assert_eq!(strip_port(b"a.b:80"), b"a.b");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
        assert_eq!(strip_port(b"a.b"), b"a.b");
    }
}
