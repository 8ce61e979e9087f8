//! Session correlation: values the target creates during a replay differ from the recorded ones (an order id
//! returned by a POST and used by the next GET). For each session (the recorded client address, so one recorded
//! connection or several from the same client), the correlator
//! - learns: for every recorded response, its JSON string/number leaves of sufficient length (strings of at least
//!   [`MIN_STRING_LEN`] characters that are not all one character, integers of at least [`MIN_INT_DIGITS`]
//!   digits) that reappear as a token in a later recorded request of the same session ([`Usage`]), and its
//!   `Location` header, are looked up at the same place in the live response; where the live value differs,
//!   recorded → live is remembered (and the difference in that response is not held against the target: the
//!   target issued a new id);
//! - rewrites: later requests of the session have every remembered recorded value (a whole token: not inside a
//!   longer word) replaced by the live one, in the path, query, header values and body;
//! - explicit `--extract NAME=$.json.path` rules remember the live value as `{{NAME}}` (substituted wherever it
//!   appears in a request) and correlate the recorded value at that path whatever its length.
//!
//! Substitutions are counted per source field and place (`$.id -> path`). Memory is bounded: at most
//! [`MAX_SESSIONS`] sessions of [`MAX_VALUES`] values each; what does not fit is counted.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use tapedeck_model::Response;

use crate::judge::decode::{Decoded, decode, encodings};
use crate::judge::jsonpath::{Elem, PathPattern, lookup, normalize, render};
use crate::transform::OutRequest;

/// Shortest string value correlated automatically.
pub const MIN_STRING_LEN: usize = 4;
/// Fewest digits of an integer correlated automatically.
pub const MIN_INT_DIGITS: usize = 3;
/// Most sessions tracked.
pub const MAX_SESSIONS: usize = 10_000;
/// Most values remembered per session (the oldest go first).
pub const MAX_VALUES: usize = 1_000;
/// Largest body looked at for values.
pub const MAX_BODY: usize = 4 << 20;

/// Most distinct request tokens indexed per session.
pub const MAX_TOKENS: usize = 100_000;
/// Most request tokens indexed over all sessions.
pub const MAX_TOKENS_TOTAL: usize = 2_000_000;
/// Most bytes of a request body tokenised.
pub const MAX_TOKENISED_BODY: usize = 1 << 20;

/// Which tokens the recorded requests of each session use, and when last: a value from a response is worth
/// correlating only when a later request uses it.
#[derive(Debug, Default)]
pub struct Usage {
    sessions: HashMap<IpAddr, HashMap<String, u64>>,
    /// Tokens not indexed past [`MAX_TOKENS`] per session or [`MAX_TOKENS_TOTAL`] in all.
    pub tokens_dropped: u64,
    total: usize,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl Usage {
    /// Indexes the tokens (runs of letters, digits, `_` and `-`) of every recorded request: path, query,
    /// header values and body (up to [`MAX_TOKENISED_BODY`]).
    pub fn index<E: std::borrow::Borrow<tapedeck_model::Exchange>>(exchanges: &[E]) -> Usage {
        let mut u = Usage::default();
        for ex in exchanges.iter().map(std::borrow::Borrow::borrow) {
            let Some(req) = &ex.request else { continue };
            let at = request_time(ex);
            let Usage { sessions, tokens_dropped, total } = &mut u;
            let toks = sessions.entry(ex.client.ip()).or_default();
            let body = &req.body.bytes[..req.body.bytes.len().min(MAX_TOKENISED_BODY)];
            let parts = std::iter::once(&req.path[..]).chain(req.headers.iter().map(|h| &h.value[..])).chain([body]);
            for part in parts {
                for t in part.split(|&b| !is_word(b)).filter(|t| !t.is_empty()) {
                    let t = String::from_utf8_lossy(t);
                    if let Some(last) = toks.get_mut(t.as_ref()) {
                        *last = (*last).max(at);
                    } else if toks.len() < MAX_TOKENS && *total < MAX_TOKENS_TOTAL {
                        toks.insert(t.into_owned(), at);
                        *total += 1;
                    } else {
                        *tokens_dropped += 1;
                    }
                }
            }
        }
        u
    }

    /// Whether `value` is used by a request of `session` sent after `at`.
    pub fn used_after(&self, session: IpAddr, value: &str, at: u64) -> bool {
        self.sessions.get(&session).and_then(|t| t.get(value)).is_some_and(|&last| last > at)
    }
}

/// When an exchange's request started (nanoseconds; 0 when unknown).
pub fn request_time(ex: &tapedeck_model::Exchange) -> u64 {
    ex.timing.request_first.or(ex.timing.request_last).or_else(|| ex.timing.start()).map_or(0, |t| t.0)
}

/// An explicit extraction rule: `NAME=$.json.path`.
#[derive(Clone, Debug)]
pub struct Extract {
    /// The variable name, used as `{{NAME}}`.
    pub name: String,
    /// Where the value is.
    pub path: PathPattern,
}

impl std::str::FromStr for Extract {
    type Err = String;
    fn from_str(s: &str) -> Result<Extract, String> {
        let (name, path) =
            s.split_once('=').ok_or_else(|| format!("'{s}': expected NAME=$.json.path (e.g. order=$.order.id)"))?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("'{s}': the name must be letters, digits and '_'"));
        }
        Ok(Extract { name: name.to_string(), path: PathPattern::parse(path.trim())? })
    }
}

/// What the correlator did, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CorrelationReport {
    /// Values substituted in requests.
    pub substituted: u64,
    /// Substitutions per source and place (`$.id -> path`, `location -> header:referer`, `{{order}} -> body`).
    pub by_field: BTreeMap<String, u64>,
    /// recorded → live pairs learned.
    pub learned: u64,
    /// Sessions seen.
    pub sessions: u64,
    /// Sessions not tracked past [`MAX_SESSIONS`].
    pub sessions_dropped: u64,
    /// Values forgotten past [`MAX_VALUES`] per session.
    pub values_dropped: u64,
    /// Bodies not looked at: not decodable, or over [`MAX_BODY`].
    pub bodies_skipped: u64,
    /// Request tokens not indexed past [`MAX_TOKENS`] per session.
    pub tokens_dropped: u64,
}

#[derive(Default)]
struct Session {
    /// recorded value, live value, source field.
    values: Vec<(String, String, String)>,
    vars: HashMap<String, String>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<IpAddr, Session>,
    report: CorrelationReport,
}

/// The correlator of one replay run.
pub struct Correlator {
    auto: bool,
    usage: std::sync::Arc<Usage>,
    extracts: Vec<Extract>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Correlator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Correlator").field("auto", &self.auto).field("extracts", &self.extracts).finish()
    }
}

fn json_of(r: &Response, skipped: &mut u64) -> Option<Value> {
    if r.body.bytes.is_empty() {
        return None;
    }
    let encodings = encodings(&r.headers);
    if encodings.is_empty() && r.body.bytes.len() <= MAX_BODY {
        // Nothing to undo: parsed in place, not copied first.
        return serde_json::from_slice(&r.body.bytes).ok();
    }
    let bytes = match decode(&r.body.bytes, &encodings, MAX_BODY) {
        Decoded::Ok(b) => b,
        _ => {
            *skipped += 1;
            return None;
        }
    };
    serde_json::from_slice(&bytes).ok()
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn distinctive(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            let mut chars = s.chars();
            let first = chars.next();
            s.chars().count() >= MIN_STRING_LEN && chars.any(|c| Some(c) != first)
        }
        Value::Number(n) => n.as_i64().is_some_and(|i| i.unsigned_abs().to_string().len() >= MIN_INT_DIGITS),
        _ => false,
    }
}

fn leaves(v: &Value, path: &mut Vec<Elem>, out: &mut Vec<(Vec<Elem>, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                path.push(Elem::Key(k.clone()));
                leaves(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Elem::Index(i));
                leaves(x, path, out);
                path.pop();
            }
        }
        other => out.push((path.clone(), other.clone())),
    }
}

fn location(r: &Response) -> Option<String> {
    r.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(b"location"))
        .map(|h| String::from_utf8_lossy(&h.value).trim().to_string())
}

/// Replaces whole-token occurrences of `from` by `to` in `hay`; returns how many.
fn replace_token(hay: &mut Vec<u8>, from: &[u8], to: &[u8]) -> u64 {
    if from.is_empty() || hay.len() < from.len() {
        return 0;
    }
    let word = is_word;
    let mut out = Vec::with_capacity(hay.len());
    let mut n = 0;
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            let before_ok = i == 0 || !word(hay[i - 1]) || !word(from[0]);
            let end = i + from.len();
            let after_ok = end == hay.len() || !word(hay[end]) || !word(from[from.len() - 1]);
            if before_ok && after_ok {
                out.extend_from_slice(to);
                i = end;
                n += 1;
                continue;
            }
        }
        out.push(hay[i]);
        i += 1;
    }
    if n > 0 {
        *hay = out;
    }
    n
}

/// Replaces every whole token of `hay` found in `map` by its value; returns the counts per source.
fn replace_tokens<'a>(hay: &mut Vec<u8>, map: &HashMap<&[u8], (&[u8], &'a str)>) -> Vec<(&'a str, u64)> {
    let mut counts: Vec<(&str, u64)> = Vec::new();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < hay.len() {
        if !is_word(hay[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < hay.len() && is_word(hay[i]) {
            i += 1;
        }
        if let Some((to, src)) = map.get(&hay[start..i]) {
            let o = out.get_or_insert_with(|| Vec::with_capacity(hay.len()));
            o.extend_from_slice(&hay[copied..start]);
            o.extend_from_slice(to);
            copied = i;
            match counts.iter_mut().find(|(s, _)| s == src) {
                Some(c) => c.1 += 1,
                None => counts.push((src, 1)),
            }
        }
    }
    if let Some(mut o) = out {
        o.extend_from_slice(&hay[copied..]);
        *hay = o;
    }
    counts
}

impl Correlator {
    /// A correlator; `auto` turns on automatic detection (of values `usage` shows reused), `extracts` are the
    /// explicit rules.
    pub fn new(auto: bool, extracts: Vec<Extract>, usage: std::sync::Arc<Usage>) -> Self {
        Correlator { auto, usage, extracts, state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Learns from one exchange of `session` whose request was recorded at `at` (see [`request_time`]): its
    /// recorded response against the live one.
    pub fn learn(&self, session: IpAddr, at: u64, recorded: Option<&Response>, live: &Response) {
        // Bodies are decoded and walked before the lock is taken: other connections keep going meanwhile.
        let mut skipped = 0;
        let live_json = json_of(live, &mut skipped);
        let rec_json = recorded.and_then(|r| json_of(r, &mut skipped));
        let mut pairs: Vec<(String, String, String)> = Vec::new();
        let mut vars: Vec<(String, String)> = Vec::new();
        if let Some(lj) = &live_json {
            let mut all = Vec::new();
            leaves(lj, &mut Vec::new(), &mut all);
            for x in &self.extracts {
                if let Some((p, s)) =
                    all.iter().filter(|(p, _)| x.path.matches(p)).find_map(|(p, v)| scalar(v).map(|s| (p, s)))
                {
                    if let Some(rv) = rec_json.as_ref().and_then(|r| lookup(r, p)).and_then(scalar)
                        && rv != s
                    {
                        pairs.push((rv, s.clone(), format!("{{{{{}}}}}", x.name)));
                    }
                    vars.push((x.name.clone(), s));
                }
            }
        }
        if self.auto {
            if let (Some(rj), Some(lj)) = (&rec_json, &live_json) {
                let mut rec_leaves = Vec::new();
                leaves(rj, &mut Vec::new(), &mut rec_leaves);
                for (p, rv) in rec_leaves {
                    if !distinctive(&rv) {
                        continue;
                    }
                    let (Some(r), Some(l)) = (scalar(&rv), lookup(lj, &p).and_then(scalar)) else { continue };
                    if !self.usage.used_after(session, &r, at) {
                        continue;
                    }
                    if r != l {
                        pairs.push((r, l, normalize(&render(&p))));
                    }
                }
            }
            if let (Some(r), Some(l)) = (recorded.and_then(location), location(live))
                && r != l
            {
                let last = |s: &str| s.rsplit('/').next().unwrap_or("").to_string();
                let (rl, ll) = (last(&r), last(&l));
                pairs.push((r, l, "header:location".into()));
                if rl.len() >= MIN_STRING_LEN.min(MIN_INT_DIGITS) && rl != ll {
                    pairs.push((rl, ll, "header:location".into()));
                }
            }
        }
        let mut st = self.lock();
        let State { sessions, report } = &mut *st;
        report.bodies_skipped += skipped;
        if !sessions.contains_key(&session) {
            if sessions.len() >= MAX_SESSIONS {
                report.sessions_dropped += 1;
                return;
            }
            report.sessions += 1;
        }
        let s = sessions.entry(session).or_default();
        for (k, v) in vars {
            s.vars.insert(k, v);
        }
        for (r, l, src) in pairs {
            s.values.retain(|(x, _, _)| *x != r);
            if s.values.len() >= MAX_VALUES {
                s.values.remove(0);
                report.values_dropped += 1;
            }
            report.learned += 1;
            s.values.push((r, l, src));
        }
    }

    /// Rewrites a request of `session` with what the session learned.
    pub fn rewrite(&self, session: IpAddr, out: &mut OutRequest) {
        let mut st = self.lock();
        let State { sessions, report } = &mut *st;
        let Some(s) = sessions.get(&session) else { return };
        // Values that are one token go through one pass and a map (linear in the request, whatever the number of
        // values); the few others (`{{NAME}}`, Location paths) are searched one by one, longest first, before.
        let mut multi: Vec<(String, String, String)> =
            s.vars.iter().map(|(k, v)| (format!("{{{{{k}}}}}"), v.clone(), format!("{{{{{k}}}}}"))).collect();
        let mut single: HashMap<&[u8], (&[u8], &str)> = HashMap::new();
        for (r, l, src) in &s.values {
            if r.bytes().all(is_word) {
                single.insert(r.as_bytes(), (l.as_bytes(), src.as_str()));
            } else {
                multi.push((r.clone(), l.clone(), src.clone()));
            }
        }
        multi.sort_by_key(|(r, _, _)| std::cmp::Reverse(r.len()));
        let mut count = |src: &str, place: &str, n: u64| {
            if n > 0 {
                report.substituted += n;
                *report.by_field.entry(format!("{src} -> {place}")).or_default() += n;
            }
        };
        let q = out.path.iter().position(|&b| b == b'?').unwrap_or(out.path.len());
        let mut path = out.path[..q].to_vec();
        let mut query = out.path[q..].to_vec();
        let mut fields: Vec<(String, &mut Vec<u8>)> = vec![("path".into(), &mut path), ("query".into(), &mut query)];
        for (name, value) in &mut out.headers {
            fields.push((format!("header:{}", String::from_utf8_lossy(name).to_ascii_lowercase()), value));
        }
        fields.push(("body".into(), &mut out.body));
        for (place, hay) in fields {
            for (from, to, src) in &multi {
                count(src, &place, replace_token(hay, from.as_bytes(), to.as_bytes()));
            }
            if !single.is_empty() {
                for (src, n) in replace_tokens(hay, &single) {
                    count(src, &place, n);
                }
            }
        }
        path.extend_from_slice(&query);
        out.path = path;
    }

    /// Whether `live` is what correlation says `recorded` became in `session` (diff values as shown, JSON strings
    /// still quoted).
    pub fn equivalent(&self, session: IpAddr, recorded: &str, live: &str) -> bool {
        let unquote = |s: &str| s.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(s).to_string();
        let (r, l) = (unquote(recorded), unquote(live));
        let st = self.lock();
        st.sessions.get(&session).is_some_and(|s| s.values.iter().any(|(a, b, _)| *a == r && *b == l))
    }

    /// The report.
    pub fn report(&self) -> CorrelationReport {
        let mut r = self.lock().report.clone();
        r.tokens_dropped = self.usage.tokens_dropped;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_model::{Body, Header};

    fn json(s: &str) -> Response {
        Response {
            status: 201,
            headers: vec![Header::new("content-type", "application/json")],
            body: Body { bytes: s.into(), full_len: s.len() as u64 },
            ..Default::default()
        }
    }

    fn req(path: &str, body: &str) -> OutRequest {
        OutRequest {
            method: b"GET".to_vec(),
            authority: "x".into(),
            path: path.into(),
            headers: vec![(b"x-order".to_vec(), b"ord-1001".to_vec())],
            body: body.into(),
        }
    }

    fn usage(ip: &str, tokens: &[&str]) -> std::sync::Arc<Usage> {
        let mut u = Usage::default();
        u.sessions.insert(ip.parse().unwrap(), tokens.iter().map(|t| (t.to_string(), 100)).collect());
        std::sync::Arc::new(u)
    }

    #[test]
    fn learned_values_are_substituted_as_whole_tokens() {
        let c = Correlator::new(true, vec![], usage("10.0.0.1", &["ord-1001", "1001", "7", "name1"]));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        c.learn(
            ip,
            50,
            Some(&json(r#"{"id":"ord-1001","n":7,"seq":1001,"name":"name1x"}"#)),
            &json(r#"{"id":"ord-5001","n":8,"seq":5001,"name":"name2x"}"#),
        );
        let mut r = req("/orders/ord-1001?seq=1001&other=10010", r#"{"ref":"ord-1001"}"#);
        c.rewrite(ip, &mut r);
        assert_eq!(String::from_utf8_lossy(&r.path), "/orders/ord-5001?seq=5001&other=10010");
        assert_eq!(r.headers[0].1, b"ord-5001");
        assert_eq!(r.body, br#"{"ref":"ord-5001"}"#);
        let rep = c.report();
        assert_eq!(rep.substituted, 4);
        assert_eq!(rep.by_field["$.id -> path"], 1);
        assert_eq!(rep.by_field["$.seq -> query"], 1);
        assert!(c.equivalent(ip, "\"ord-1001\"", "\"ord-5001\""));
        assert!(!c.equivalent(ip, "7", "8"), "short numbers are not correlated");
        assert!(!c.equivalent(ip, "\"name1x\"", "\"name2x\""), "values no later request uses are not correlated");
        // Learned after the last use: nothing to correlate.
        let c2 = Correlator::new(true, vec![], usage("10.0.0.1", &["ord-1001"]));
        c2.learn(ip, 100, Some(&json(r#"{"id":"ord-1001"}"#)), &json(r#"{"id":"ord-5001"}"#));
        assert_eq!(c2.report().learned, 0);
        // Another session learned nothing.
        let mut r2 = req("/orders/ord-1001", "");
        c.rewrite("10.0.0.2".parse().unwrap(), &mut r2);
        assert_eq!(String::from_utf8_lossy(&r2.path), "/orders/ord-1001");
    }

    #[test]
    fn extract_rules_and_location() {
        let c = Correlator::new(false, vec!["tok=$.auth.token".parse().unwrap()], usage("10.0.0.1", &[]));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        c.learn(ip, 0, Some(&json(r#"{"auth":{"token":"ab"}}"#)), &json(r#"{"auth":{"token":"zz"}}"#));
        let mut r = req("/x?t={{tok}}", "ab");
        c.rewrite(ip, &mut r);
        assert_eq!(String::from_utf8_lossy(&r.path), "/x?t=zz");
        assert_eq!(r.body, b"zz", "explicit rules correlate short values too");
        let c = Correlator::new(true, vec![], usage("10.0.0.1", &[]));
        let mut a = json("");
        a.headers.push(Header::new("Location", "/orders/77001"));
        let mut b = json("");
        b.headers.push(Header::new("location", "/orders/90001"));
        c.learn(ip, 0, Some(&a), &b);
        let mut r = req("/orders/77001/items", "");
        c.rewrite(ip, &mut r);
        assert_eq!(String::from_utf8_lossy(&r.path), "/orders/90001/items");
        assert!("bad".parse::<Extract>().is_err() && "a=b".parse::<Extract>().is_err());
    }
}
