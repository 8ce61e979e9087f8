//! Field-level comparison of a live response with a recorded one under the [`Effective`] rules: the status, the
//! chosen headers, the trailers by the same header rules, and the body decoded by `Content-Encoding` and compared
//! by content type (JSON structurally, text by lines, gRPC by status and message contents in [`super::grpc`],
//! anything else by length and SHA-256).
//!
//! Every difference is a [`FieldDiff`] naming its field: `status`, `header:NAME`, `trailer:NAME`, a JSON path
//! (`$.items[2].id`), `body:line N`, `body:lines`, `body:length`, `body:sha256`, `grpc-status`, `grpc-message`,
//! `grpc:messages`, a gRPC message path (`$.message[0].#2`). Bodies cut at a cap (the capture's or the client's)
//! are not compared and are counted; a gRPC answer's status is compared all the same.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tapedeck_model::grpc::grpc_content_type;
use tapedeck_model::{Header, Response};

use super::decode::{Decoded, decode, encodings};
use super::jsonpath::{Elem, render};
use super::rules::{Check, Effective};

/// Most characters of a value shown in a diff.
pub const MAX_VALUE_CHARS: usize = 120;

/// What kind of difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Present on both sides with different values.
    Changed,
    /// Recorded, absent from the live response.
    Missing,
    /// In the live response only.
    Added,
    /// Different JSON types (or JSON against not JSON).
    Type,
    /// A matcher (regex) rejected the live value.
    NoMatch,
    /// Different lengths or counts.
    Length,
}

/// One difference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldDiff {
    /// The field: `status`, `header:NAME`, a JSON path, `body:...`, `grpc...`.
    pub field: String,
    /// The kind.
    pub kind: DiffKind,
    /// The recorded value, shortened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// The live value, shortened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
}

impl std::fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.recorded.as_deref().unwrap_or("(absent)");
        let l = self.live.as_deref().unwrap_or("(absent)");
        match self.kind {
            DiffKind::NoMatch => write!(f, "{}: {l} does not match {r}", self.field),
            _ => write!(f, "{}: {r} -> {l}", self.field),
        }
    }
}

/// Counters of the comparison.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CompareStats {
    /// Bodies compared as JSON.
    pub bodies_json: u64,
    /// Bodies compared as text lines.
    pub bodies_text: u64,
    /// Bodies compared as gRPC messages.
    pub bodies_grpc: u64,
    /// Bodies compared by length and hash.
    pub bodies_binary: u64,
    /// gRPC messages that did not read as protobuf (compared as bytes).
    pub grpc_messages_not_protobuf: u64,
    /// Bodies not compared: one side was cut at a body cap.
    pub bodies_skipped_truncated: u64,
    /// Bodies not compared: larger than the decode cap once decoded.
    pub bodies_skipped_too_large: u64,
    /// Bodies whose content-encoding did not decode (compared as stored).
    pub decode_failed: u64,
    /// Recorded bodies labelled JSON that did not parse (compared as text).
    pub json_invalid: u64,
    /// Differences dropped past the per-exchange cap.
    pub diffs_capped: u64,
}

/// Comparison settings.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest decoded body compared.
    pub decode_cap: usize,
    /// Most differences kept per exchange.
    pub max_diffs: usize,
}

/// The differences found so far, capped.
pub(super) struct Out<'a> {
    diffs: Vec<FieldDiff>,
    max: usize,
    pub(super) stats: &'a mut CompareStats,
}

impl Out<'_> {
    pub(super) fn push(&mut self, field: String, kind: DiffKind, recorded: Option<String>, live: Option<String>) {
        if self.diffs.len() >= self.max {
            self.stats.diffs_capped += 1;
            return;
        }
        self.diffs.push(FieldDiff { field, kind, recorded, live });
    }
}

pub(super) fn short(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX_VALUE_CHARS).collect();
    t.push('…');
    t
}

/// The values of the `name` fields, trimmed, joined with `, `; `None` without such a field.
pub(super) fn header_values(headers: &[Header], name: &str) -> Option<String> {
    let mut fields = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name.as_bytes()));
    let mut joined = String::from_utf8_lossy(&fields.next()?.value).trim().to_string();
    for h in fields {
        joined.push_str(", ");
        joined.push_str(String::from_utf8_lossy(&h.value).trim());
    }
    Some(joined)
}

/// Compares `live` with `recorded`; returns the differences (empty: the same under the rules).
pub fn compare(
    recorded: &Response,
    live: &Response,
    rules: &Effective,
    limits: Limits,
    stats: &mut CompareStats,
) -> Vec<FieldDiff> {
    let mut out = Out { diffs: Vec::new(), max: limits.max_diffs.max(1), stats };
    if !rules.ignore_status && recorded.status != live.status {
        out.push("status".into(), DiffKind::Changed, Some(recorded.status.to_string()), Some(live.status.to_string()));
    }
    let ct = header_values(&recorded.headers, "content-type").or_else(|| header_values(&live.headers, "content-type"));
    let grpc = ct.as_deref().and_then(|c| grpc_content_type(c.as_bytes()));
    // gRPC's status fields are compared as `grpc-status` and `grpc-message` wherever they arrive.
    let skip = if grpc.is_some() { super::grpc::STATUS_FIELDS } else { &[] };
    compare_fields("header", &recorded.headers, &live.headers, skip, rules, &mut out);
    let (rt, lt) = match grpc {
        Some((web, text)) => (super::grpc::trailers(recorded, web, text), super::grpc::trailers(live, web, text)),
        None => (Cow::Borrowed(&recorded.trailers[..]), Cow::Borrowed(&live.trailers[..])),
    };
    compare_fields("trailer", &rt, &lt, skip, rules, &mut out);
    match grpc {
        Some((web, text)) => {
            let json = ct.as_deref().is_some_and(|c| {
                let base = c.split(';').next().unwrap_or("").trim();
                base.rsplit_once('+').is_some_and(|(_, sub)| sub.eq_ignore_ascii_case("json"))
            });
            super::grpc::compare(recorded, live, (web, text, json), rules, limits, &mut out);
        }
        None => compare_body(recorded, live, ct.as_deref(), rules, limits, &mut out),
    }
    out.diffs
}

/// Compares the header (or trailer) fields the rules choose, named `{what}:NAME`; `skip` names are not compared.
fn compare_fields(what: &str, recorded: &[Header], live: &[Header], skip: &[&str], rules: &Effective, out: &mut Out) {
    let mut names: Vec<String> = if rules.all_headers {
        recorded.iter().chain(live).map(|h| String::from_utf8_lossy(&h.name).to_ascii_lowercase()).collect()
    } else {
        rules.headers.iter().map(|s| s.to_string()).collect()
    };
    names.sort();
    names.dedup();
    for name in names {
        if !rules.compares_header(&name) || skip.contains(&name.as_str()) {
            continue;
        }
        let (r, l) = (header_values(recorded, &name), header_values(live, &name));
        let kind = match (&r, &l) {
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => continue,
            (Some(_), Some(_)) => DiffKind::Changed,
            (Some(_), None) => DiffKind::Missing,
            (None, Some(_)) => DiffKind::Added,
        };
        out.push(format!("{what}:{name}"), kind, r.map(|s| short(&s)), l.map(|s| short(&s)));
    }
}

enum Kind {
    Json,
    Text,
    Binary,
}

fn kind_of(ct: Option<&str>, body: &[u8]) -> Kind {
    let Some(ct) = ct else {
        return if std::str::from_utf8(body).is_ok() { Kind::Text } else { Kind::Binary };
    };
    let base = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if base.ends_with("json") || base.ends_with("+json") {
        Kind::Json
    } else if base.starts_with("text/")
        || base.contains("xml")
        || base.contains("javascript")
        || base == "application/x-www-form-urlencoded"
    {
        Kind::Text
    } else {
        Kind::Binary
    }
}

fn body_of<'a>(r: &'a Response, limits: Limits, out: &mut Out) -> Option<Cow<'a, [u8]>> {
    let encodings = encodings(&r.headers);
    if encodings.is_empty() {
        // Nothing to undo: the stored bytes, not a copy.
        return (r.body.bytes.len() <= limits.decode_cap).then_some(Cow::Borrowed(&r.body.bytes[..]));
    }
    match decode(&r.body.bytes, &encodings, limits.decode_cap) {
        Decoded::Ok(v) => Some(Cow::Owned(v)),
        Decoded::TooLarge => None,
        Decoded::Failed(_) => {
            out.stats.decode_failed += 1;
            Some(Cow::Borrowed(&r.body.bytes[..]))
        }
    }
}

fn compare_body(
    recorded: &Response,
    live: &Response,
    ct: Option<&str>,
    rules: &Effective,
    limits: Limits,
    out: &mut Out,
) {
    let cut = |r: &Response| r.body.full_len > r.body.bytes.len() as u64;
    if cut(recorded) || cut(live) {
        out.stats.bodies_skipped_truncated += 1;
        return;
    }
    let (Some(r), Some(l)) = (body_of(recorded, limits, out), body_of(live, limits, out)) else {
        out.stats.bodies_skipped_too_large += 1;
        return;
    };
    if r.is_empty() && l.is_empty() {
        return;
    }
    match kind_of(ct, &r) {
        Kind::Json => match serde_json::from_slice::<Value>(&r) {
            Ok(rv) => {
                out.stats.bodies_json += 1;
                match serde_json::from_slice::<Value>(&l) {
                    Ok(lv) => {
                        let mut path = Vec::new();
                        compare_json(&mut path, Some(&rv), Some(&lv), rules, out);
                    }
                    Err(_) => out.push(
                        "body".into(),
                        DiffKind::Type,
                        Some("JSON".into()),
                        Some(short(&format!("not JSON: {}", String::from_utf8_lossy(&l)))),
                    ),
                }
            }
            Err(_) => {
                out.stats.json_invalid += 1;
                compare_text(&r, &l, rules, out);
            }
        },
        Kind::Text => compare_text(&r, &l, rules, out),
        Kind::Binary => {
            out.stats.bodies_binary += 1;
            if r.len() != l.len() {
                out.push("body:length".into(), DiffKind::Length, Some(r.len().to_string()), Some(l.len().to_string()));
            } else if r != l {
                let h = |b: &[u8]| {
                    let d = Sha256::digest(b);
                    d.iter().take(8).map(|x| format!("{x:02x}")).collect::<String>()
                };
                out.push("body:sha256".into(), DiffKind::Changed, Some(h(&r)), Some(h(&l)));
            }
        }
    }
}

fn compare_text(r: &[u8], l: &[u8], rules: &Effective, out: &mut Out) {
    out.stats.bodies_text += 1;
    if r == l {
        // The same bytes clean up the same way: nothing to convert or split.
        return;
    }
    fn clean<'a>(b: &'a [u8], rules: &Effective) -> Cow<'a, str> {
        let mut s = String::from_utf8_lossy(b);
        for re in &rules.ignore_text {
            s = Cow::Owned(re.replace_all(&s, "<ignored>").into_owned());
        }
        s
    }
    let (r, l) = (clean(r, rules), clean(l, rules));
    if r == l {
        return;
    }
    let (rl, ll): (Vec<&str>, Vec<&str>) = (r.lines().collect(), l.lines().collect());
    if rl.len() != ll.len() {
        out.push("body:lines".into(), DiffKind::Length, Some(rl.len().to_string()), Some(ll.len().to_string()));
    }
    for (i, (a, b)) in rl.iter().zip(&ll).enumerate() {
        if a != b {
            out.push(format!("body:line {}", i + 1), DiffKind::Changed, Some(short(a)), Some(short(b)));
        }
    }
    if rl.len() == ll.len() && rl == ll {
        // Only line endings differ.
        out.push("body:line endings".into(), DiffKind::Changed, None, None);
    }
}

fn render_value(v: &Value) -> String {
    short(&v.to_string())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(super) fn compare_json(
    path: &mut Vec<Elem>,
    r: Option<&Value>,
    l: Option<&Value>,
    rules: &Effective,
    out: &mut Out,
) {
    if rules.ignored(path) {
        return;
    }
    if let Some(m) = rules.matcher(path) {
        check(path, &m.check, r, l, out);
        return;
    }
    let (r, l) = match (r, l) {
        (None, None) => return,
        (Some(r), None) => {
            out.push(render(path), DiffKind::Missing, Some(render_value(r)), None);
            return;
        }
        (None, Some(l)) => {
            out.push(render(path), DiffKind::Added, None, Some(render_value(l)));
            return;
        }
        (Some(r), Some(l)) => (r, l),
    };
    match (r, l) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                path.push(Elem::Key(k.clone()));
                compare_json(path, Some(v), b.get(k), rules, out);
                path.pop();
            }
            for (k, v) in b {
                if !a.contains_key(k) {
                    path.push(Elem::Key(k.clone()));
                    compare_json(path, None, Some(v), rules, out);
                    path.pop();
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                path.push(Elem::Index(i));
                compare_json(path, a.get(i), b.get(i), rules, out);
                path.pop();
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let same = a == b
                || match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => (x - y).abs() <= rules.numeric_tolerance,
                    _ => false,
                };
            if !same {
                out.push(render(path), DiffKind::Changed, Some(a.to_string()), Some(b.to_string()));
            }
        }
        (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
            out.push(
                render(path),
                DiffKind::Type,
                Some(format!("{} {}", type_name(a), render_value(a))),
                Some(format!("{} {}", type_name(b), render_value(b))),
            );
        }
        (a, b) => {
            if a != b {
                out.push(render(path), DiffKind::Changed, Some(render_value(a)), Some(render_value(b)));
            }
        }
    }
}

fn check(path: &[Elem], c: &Check, r: Option<&Value>, l: Option<&Value>, out: &mut Out) {
    let Some(lv) = l else {
        if r.is_some() {
            out.push(render(path), DiffKind::Missing, r.map(render_value), None);
        }
        return;
    };
    match c {
        Check::Present => {}
        Check::Regex(re) => {
            let text = match lv {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !re.is_match(&text) {
                out.push(render(path), DiffKind::NoMatch, Some(format!("/{}/", re.as_str())), Some(render_value(lv)));
            }
        }
        Check::Tolerance(t) | Check::Relative(t) => {
            let Some(rv) = r else {
                out.push(render(path), DiffKind::Added, None, Some(render_value(lv)));
                return;
            };
            let ok = match (rv.as_f64(), lv.as_f64()) {
                (Some(a), Some(b)) => {
                    let allowed = if matches!(c, Check::Relative(_)) { t * a.abs() } else { *t };
                    (a - b).abs() <= allowed
                }
                _ => rv == lv,
            };
            if !ok {
                out.push(render(path), DiffKind::Changed, Some(render_value(rv)), Some(render_value(lv)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::rules::Rules;
    use tapedeck_model::Body;

    const LIMITS: Limits = Limits { decode_cap: 1 << 20, max_diffs: 50 };

    fn resp(status: u16, ct: &str, body: &str) -> Response {
        Response {
            status,
            headers: vec![Header::new("content-type", ct), Header::new("date", "now")],
            body: Body { bytes: body.into(), full_len: body.len() as u64 },
            ..Default::default()
        }
    }

    fn diff(rules: &str, a: &Response, b: &Response) -> Vec<FieldDiff> {
        let rules = Rules::from_toml(rules).unwrap();
        compare(a, b, &rules.for_request("GET", "/x"), LIMITS, &mut CompareStats::default())
    }

    fn fields(d: &[FieldDiff]) -> Vec<&str> {
        d.iter().map(|d| d.field.as_str()).collect()
    }

    #[test]
    fn repeated_header_fields_are_joined_trimmed() {
        let h = vec![Header::new("Vary", " a "), Header::new("x", "y"), Header::new("vary", "b")];
        assert_eq!(header_values(&h, "vary").as_deref(), Some("a, b"));
        assert_eq!(header_values(&h, "x").as_deref(), Some("y"));
        assert_eq!(header_values(&h, "absent"), None);
    }

    #[test]
    fn identical_text_bodies_are_counted_without_diffs() {
        let a = resp(200, "text/plain", "one\ntwo\n");
        let rules = Rules::from_toml("").unwrap();
        let mut stats = CompareStats::default();
        assert!(compare(&a, &a.clone(), &rules.for_request("GET", "/x"), LIMITS, &mut stats).is_empty());
        assert_eq!(stats.bodies_text, 1);
        let b = resp(200, "text/plain", "one\ntwo\r\n");
        assert_eq!(fields(&diff("", &a, &b)), vec!["body:line endings"]);
    }

    #[test]
    fn json_is_compared_structurally() {
        let a = resp(200, "application/json", r#"{"a":1,"b":{"c":[1,2,{"d":"x"}]},"gone":true}"#);
        let same = resp(
            200,
            "application/json; charset=utf-8",
            r#"{ "b": {"c": [1, 2, {"d": "x"}]}, "gone": true, "a": 1.0 }"#,
        );
        let d = diff("", &a, &same);
        assert_eq!(fields(&d), vec!["header:content-type"], "key order and spacing do not matter; 1 == 1.0");
        let b = resp(200, "application/json", r#"{"a":2,"b":{"c":[1,2,{"d":"y"},4]},"new":null}"#);
        let d = diff("", &a, &b);
        assert_eq!(fields(&d), vec!["$.a", "$.b.c[2].d", "$.b.c[3]", "$.gone", "$.new"]);
        assert_eq!(d[1].recorded.as_deref(), Some("\"x\""));
        assert_eq!(d[1].live.as_deref(), Some("\"y\""));
        assert_eq!((d[2].kind, d[3].kind, d[4].kind), (DiffKind::Added, DiffKind::Missing, DiffKind::Added));
    }

    #[test]
    fn ignores_and_matchers_apply_per_path() {
        let a = resp(200, "application/json", r#"{"items":[{"at":"1","n":1.00},{"at":"2","n":2}],"id":"abc"}"#);
        let b = resp(200, "application/json", r#"{"items":[{"at":"9","n":1.004},{"at":"8","n":2}],"id":"123"}"#);
        let mut f = diff("", &a, &b);
        f.sort_by(|x, y| x.field.cmp(&y.field));
        assert_eq!(fields(&f), vec!["$.id", "$.items[0].at", "$.items[0].n", "$.items[1].at"]);
        let rules =
            "ignore_json = ['$.items[*].at']\nnumeric_tolerance = 0.01\n[[matcher]]\npath = '$.id'\nregex = '^[0-9]+$'";
        assert!(diff(rules, &a, &b).is_empty());
        let rules = "[[matcher]]\npath = '$.id'\nregex = '^[a-z]+$'\n[[matcher]]\npath='$.items'\npresent=true";
        let d = diff(rules, &a, &b);
        assert_eq!(fields(&d), vec!["$.id"]);
        assert_eq!(d[0].kind, DiffKind::NoMatch);
    }

    #[test]
    fn status_headers_text_and_binary() {
        let a = resp(200, "text/plain", "one\ntwo\nthree");
        let b = resp(500, "text/plain", "one\nTWO\nthree");
        let d = diff("", &a, &b);
        assert_eq!(fields(&d), vec!["status", "body:line 2"]);
        assert!(diff("ignore_status = true\nignore_text = ['(?i)two']", &a, &b).is_empty());
        let mut c = b.clone();
        c.headers[1].value = b"later".to_vec();
        assert_eq!(
            fields(&diff("headers = ['*']\nignore_status = true\nignore_text = ['(?i)two']", &a, &c)),
            Vec::<&str>::new()
        );
        c.headers.push(Header::new("x-new", "1"));
        assert_eq!(
            fields(&diff("headers = ['*']\nignore_status = true\nignore_text = ['(?i)two']", &a, &c)),
            vec!["header:x-new"]
        );
        let x = resp(200, "image/png", "\u{1}abc");
        let y = resp(200, "image/png", "\u{1}abd");
        let z = resp(200, "image/png", "\u{1}ab");
        assert_eq!(fields(&diff("", &x, &y)), vec!["body:sha256"]);
        assert_eq!(fields(&diff("", &x, &z)), vec!["body:length"]);
    }

    #[test]
    fn encoded_bodies_are_decoded_and_cut_bodies_skipped() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(br#"{"a":1}"#).unwrap();
        let gz = gz.finish().unwrap();
        let a = resp(200, "application/json", r#"{"a": 1}"#);
        let mut b = resp(200, "application/json", "");
        b.headers.push(Header::new("content-encoding", "gzip"));
        b.body = Body { full_len: gz.len() as u64, bytes: gz };
        assert!(diff("", &a, &b).is_empty());
        let mut cut = resp(200, "application/json", r#"{"a": 2"#);
        cut.body.full_len = 100;
        let rules = Rules::default();
        let mut stats = CompareStats::default();
        assert!(compare(&a, &cut, &rules.for_request("GET", "/"), LIMITS, &mut stats).is_empty());
        assert_eq!(stats.bodies_skipped_truncated, 1);
    }

    #[test]
    fn diffs_are_capped_and_counted() {
        let many: String = (0..100).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(",");
        let a = resp(200, "application/json", &format!("{{{many}}}"));
        let b = resp(200, "application/json", "{}");
        let mut stats = CompareStats::default();
        let d = compare(
            &a,
            &b,
            &Rules::default().for_request("GET", "/"),
            Limits { decode_cap: 1 << 20, max_diffs: 10 },
            &mut stats,
        );
        assert_eq!((d.len(), stats.diffs_capped), (10, 90));
    }
}
