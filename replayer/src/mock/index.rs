//! The mock's lookup: recorded exchanges indexed by the request fields chosen with `--match` (method,
//! authority, path, query, body), at four levels tried in order: exact → without body → without query → method and
//! path. Each key keeps its recorded responses in recorded order and a cursor: repeated calls get them in order,
//! then the last one again.
//!
//! Pure: no I/O. Keys are bytes with separators; bodies are keyed by their SHA-256.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tapedeck_model::{Exchange, Response};

/// Request fields a match can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fields {
    /// Method.
    pub method: bool,
    /// Authority (`Host` / `:authority`).
    pub authority: bool,
    /// Path without query.
    pub path: bool,
    /// Query string.
    pub query: bool,
    /// Body.
    pub body: bool,
}

impl std::str::FromStr for Fields {
    type Err = String;
    fn from_str(s: &str) -> Result<Fields, String> {
        let mut f = Fields { method: false, authority: false, path: false, query: false, body: false };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "method" => f.method = true,
                "authority" | "host" => f.authority = true,
                "path" => f.path = true,
                "query" => f.query = true,
                "body" => f.body = true,
                other => {
                    return Err(format!("'{other}': expected a list of method, path, query, body, authority"));
                }
            }
        }
        if f == (Fields { method: false, authority: false, path: false, query: false, body: false }) {
            return Err("at least one of method, path, query, body, authority".into());
        }
        Ok(f)
    }
}

/// Names of the match levels, in the order they are tried.
pub const LEVELS: [&str; 4] = ["exact", "without_body", "without_query", "method_path"];

/// A request as the mock sees it.
#[derive(Clone, Debug, Default)]
pub struct Incoming<'a> {
    /// Method.
    pub method: &'a [u8],
    /// Authority.
    pub authority: &'a [u8],
    /// Path and query (origin form).
    pub target: &'a [u8],
    /// Body (whole).
    pub body: &'a [u8],
}

/// Counters of indexing.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IndexStats {
    /// Exchanges indexed (request and response recorded).
    pub indexed: u64,
    /// Exchanges without a request or response (not servable).
    pub skipped_incomplete: u64,
    /// Exchanges with a request body cut at the capture's cap: indexed without the body level.
    pub body_truncated: u64,
    /// Servable responses whose body was cut at the capture's cap (served as recorded, shorter).
    pub response_truncated: u64,
    /// Exchanges whose final status is not a final answer (1xx: an upgrade or a cut exchange): not servable.
    pub skipped_interim_status: u64,
}

struct Entry {
    responses: Vec<usize>,
    next: usize,
}

/// One match level: its position in [`LEVELS`], its fields, its keys.
type Level = (usize, Fields, Mutex<HashMap<Vec<u8>, Entry>>);

/// The index.
pub struct Index {
    levels: Vec<Level>,
    /// The recorded responses, and the exchange id each came from.
    responses: Vec<(u64, Response)>,
    paths: HashSet<Vec<u8>>,
    /// Counters.
    pub stats: IndexStats,
}

fn split_target(t: &[u8]) -> (&[u8], &[u8]) {
    // Absolute form: drop scheme and authority.
    let t = match t.windows(3).position(|w| w == b"://") {
        Some(i) if t[..i].iter().all(u8::is_ascii_alphabetic) => {
            let rest = &t[i + 3..];
            let slash = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            &rest[slash..]
        }
        _ => t,
    };
    match t.iter().position(|&b| b == b'?') {
        Some(q) => (&t[..q], &t[q + 1..]),
        None => (t, &[]),
    }
}

fn key(f: Fields, r: &Incoming) -> Vec<u8> {
    let (path, query) = split_target(r.target);
    let mut k = Vec::with_capacity(64);
    let mut put = |on: bool, b: &[u8]| {
        if on {
            k.extend_from_slice(b);
        }
        k.push(0);
    };
    put(f.method, &r.method.to_ascii_uppercase());
    put(f.authority, &r.authority.to_ascii_lowercase());
    put(f.path, path);
    put(f.query, query);
    if f.body {
        k.extend_from_slice(&Sha256::digest(r.body));
    }
    k
}

impl Index {
    /// Indexes `exchanges` (already in recorded order) for matching on `fields`.
    pub fn build<E: Into<Box<Exchange>>>(exchanges: Vec<E>, fields: Fields) -> Index {
        let candidates = [
            fields,
            Fields { body: false, ..fields },
            Fields { body: false, query: false, ..fields },
            Fields { method: fields.method, path: fields.path, authority: false, query: false, body: false },
        ];
        let mut levels: Vec<Level> = Vec::new();
        for (i, f) in candidates.into_iter().enumerate() {
            let empty = !(f.method || f.path || f.authority || f.query || f.body);
            if !empty && !levels.iter().any(|(_, g, _)| *g == f) {
                levels.push((i, f, Mutex::new(HashMap::new())));
            }
        }
        let mut idx = Index { levels, responses: Vec::new(), paths: HashSet::new(), stats: IndexStats::default() };
        for ex in exchanges {
            let ex: Box<Exchange> = ex.into();
            let (Some(req), Some(resp)) = (ex.request, ex.response) else {
                idx.stats.skipped_incomplete += 1;
                continue;
            };
            if !(200..=999).contains(&resp.status) {
                idx.stats.skipped_interim_status += 1;
                continue;
            }
            let body_cut = req.body.full_len > req.body.bytes.len() as u64;
            if body_cut {
                idx.stats.body_truncated += 1;
            }
            if resp.body.full_len > resp.body.bytes.len() as u64 {
                idx.stats.response_truncated += 1;
            }
            let n = idx.responses.len();
            idx.responses.push((ex.id, resp));
            idx.stats.indexed += 1;
            let inc =
                Incoming { method: &req.method, authority: &req.authority, target: &req.path, body: &req.body.bytes };
            idx.paths.insert(split_target(&req.path).0.to_vec());
            for (_, f, map) in &mut idx.levels {
                if body_cut && f.body {
                    continue;
                }
                let map = map.get_mut().unwrap_or_else(|p| p.into_inner());
                map.entry(key(*f, &inc)).or_insert_with(|| Entry { responses: Vec::new(), next: 0 }).responses.push(n);
            }
        }
        idx
    }

    /// Recorded responses indexed.
    pub fn len(&self) -> usize {
        self.responses.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }

    /// Whether the recording has a request to `path` (without query), any method.
    pub fn has_path(&self, path: &[u8]) -> bool {
        self.paths.contains(path)
    }

    /// Finds the response for a request: the level it matched at (an index into [`LEVELS`]), the exchange id and
    /// the response; or why nothing matched.
    pub fn lookup(&self, r: &Incoming) -> Result<(usize, u64, &Response), &'static str> {
        for (level, f, map) in &self.levels {
            let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = map.get_mut(&key(*f, r)) {
                let i = e.responses[e.next.min(e.responses.len() - 1)];
                if e.next < e.responses.len() {
                    e.next += 1;
                }
                let (id, resp) = &self.responses[i];
                return Ok((*level, *id, resp));
            }
        }
        if self.paths.contains(split_target(r.target).0) {
            Err("method-not-recorded")
        } else {
            Err("path-not-recorded")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_model::{Body, Flags, Protocol, Request, Timing};

    fn ex(id: u64, method: &str, target: &str, body: &str, status: u16) -> Exchange {
        Exchange {
            id,
            connection_id: 1,
            order: 0,
            stream_id: None,
            proto: Protocol::Http11,
            client: "10.0.0.1:1000".parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            timing: Timing::default(),
            request: Some(Request {
                method: method.into(),
                authority: b"db.local".to_vec(),
                path: target.into(),
                body: Body { bytes: body.into(), full_len: body.len() as u64 },
                ..Default::default()
            }),
            response: Some(Response { status, ..Default::default() }),
            flags: Flags::NONE,
            labels: vec![],
            masked_by: vec![],
        }
    }

    fn req<'a>(m: &'a str, t: &'a str, b: &'a str) -> Incoming<'a> {
        Incoming { method: m.as_bytes(), authority: b"other", target: t.as_bytes(), body: b.as_bytes() }
    }

    #[test]
    fn falls_back_level_by_level_and_serves_in_order() {
        let fields: Fields = "method,path,query,body".parse().unwrap();
        let idx = Index::build(
            vec![
                ex(1, "GET", "/a?x=1", "", 200),
                ex(2, "GET", "/a?x=1", "", 201),
                ex(3, "POST", "/b", "one", 202),
                ex(4, "POST", "/b", "two", 203),
                ex(5, "GET", "http://db.local/c?y=2", "", 204),
            ],
            fields,
        );
        fn st(r: Result<(usize, u64, &Response), &'static str>) -> Result<(&'static str, u64, u16), &'static str> {
            r.map(|(l, id, resp)| (LEVELS[l], id, resp.status))
        }
        assert_eq!(st(idx.lookup(&req("GET", "/a?x=1", ""))), Ok(("exact", 1, 200)));
        assert_eq!(st(idx.lookup(&req("GET", "/a?x=1", ""))), Ok(("exact", 2, 201)));
        assert_eq!(st(idx.lookup(&req("GET", "/a?x=1", ""))), Ok(("exact", 2, 201)), "the last one repeats");
        assert_eq!(st(idx.lookup(&req("POST", "/b", "two"))), Ok(("exact", 4, 203)));
        assert_eq!(st(idx.lookup(&req("POST", "/b", "three"))), Ok(("without_body", 3, 202)));
        assert_eq!(st(idx.lookup(&req("GET", "/c?y=2", ""))), Ok(("exact", 5, 204)), "absolute form recorded");
        assert_eq!(st(idx.lookup(&req("GET", "/c?y=3", ""))), Ok(("without_query", 5, 204)));
        assert_eq!(st(idx.lookup(&req("DELETE", "/c", ""))), Err("method-not-recorded"));
        assert_eq!(st(idx.lookup(&req("GET", "/zzz", ""))), Err("path-not-recorded"));
    }

    #[test]
    fn authority_is_matched_only_when_asked() {
        let idx = Index::build(vec![ex(1, "GET", "/a", "", 200)], "method,path,authority".parse().unwrap());
        let mut r = req("GET", "/a", "");
        assert!(idx.lookup(&r).is_ok_and(|(l, _, _)| LEVELS[l] == "method_path"), "the last level drops authority");
        r.authority = b"DB.local";
        assert!(idx.lookup(&r).is_ok_and(|(l, _, _)| l == 0));
        assert!("method,bogus".parse::<Fields>().unwrap_err().contains("bogus"));
        assert!("".parse::<Fields>().is_err());
    }
}
