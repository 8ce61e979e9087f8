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

use serde_json::Value;
use sha2::{Digest, Sha256};
use tapedeck_model::grpc::grpc_content_type;
use tapedeck_model::{Header, Response};

use super::decode::{Decoded, decode, encodings};
pub use super::diff::{CompareStats, DiffKind, FieldDiff, Limits, MAX_VALUE_CHARS};
use super::diff::{Out, header_values, short};
use super::json_diff::compare_json;
use super::rules::Effective;

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
