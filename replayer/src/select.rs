//! Reading and selecting: segment files (or directories of them, several paths) in, the exchanges that pass the
//! filters out, sorted by capture time.
//!
//! Filters: method, host (authority, with or without port), path prefix and regex, status (`200`, `2xx`),
//! protocol, time window (`--from`/`--to`, an offset from the capture start such as `30s`, or an RFC 3339 time),
//! and a limit (the first N exchanges in time order). An exchange without a request cannot be replayed and is
//! counted, never silently dropped. A damaged segment is read up to what can be read, and gives one warning naming
//! the file and the offsets of the damage.
//!
//! Memory: the selected exchanges (bodies included) are held in memory for planning; `--limit` bounds them.

use std::path::PathBuf;
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
}

impl Filter {
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
}

/// The selected exchanges, sorted by capture time, with what happened while reading.
#[derive(Debug, Default)]
pub struct Selection {
    /// The exchanges, earliest first.
    pub exchanges: Vec<Exchange>,
    /// Counters.
    pub stats: SelectStats,
    /// One line per problem file (damaged or unreadable), naming it.
    pub warnings: Vec<String>,
}

/// Reads every segment under `paths` and keeps what passes `filter`. Fails only when a path does not exist or
/// cannot be listed; damaged and unreadable files become warnings.
pub fn select(paths: &[PathBuf], filter: &Filter) -> anyhow::Result<Selection> {
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
                sel.warnings.push(e.to_string());
            }
        }
    }
    // The capture start, from the block indexes, without decoding anything.
    let capture_start =
        readers.iter().flat_map(|r| r.blocks().iter().map(|b| b.first_ts)).min().unwrap_or(Timestamp(0));
    for mut reader in readers {
        sel.stats.files += 1;
        let mut damage_offsets = Vec::new();
        for item in reader.exchanges() {
            match item {
                Ok(ex) => {
                    sel.stats.exchanges_read += 1;
                    if ex.request.is_none() {
                        sel.stats.skipped_no_request += 1;
                    } else if !filter.matches(&ex) {
                        sel.stats.filtered_out += 1;
                    } else if !filter.in_window(&ex, capture_start) {
                        sel.stats.outside_window += 1;
                    } else {
                        sel.exchanges.push(ex);
                    }
                }
                Err(e) => {
                    sel.stats.damaged_regions += 1;
                    damage_offsets.push(e.offset().map_or_else(|| e.to_string(), |o| format!("offset {o}")));
                }
            }
        }
        let recovery = reader.recovery();
        if recovery.torn_tail_bytes > 0 {
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
                "{}: damaged segment{at}: replaying what could be read: {recovery}",
                reader.path().display()
            ));
        }
    }
    sel.exchanges.sort_by_key(|e| (e.timing.start().unwrap_or(Timestamp(u64::MAX)), e.connection_id, e.order));
    if let Some(limit) = filter.limit
        && sel.exchanges.len() > limit
    {
        sel.stats.over_limit = (sel.exchanges.len() - limit) as u64;
        sel.exchanges.truncate(limit);
    }
    sel.stats.selected = sel.exchanges.len() as u64;
    Ok(sel)
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
