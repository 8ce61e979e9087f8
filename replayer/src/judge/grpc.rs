//! gRPC answers compared by content: `grpc-status` and `grpc-message` wherever they arrive (trailers, the headers
//! of a trailers-only answer, gRPC-Web's trailer frame), the number of messages, and each message decompressed by
//! the side's `grpc-encoding` (when its compressed flag is set) and compared field by field: protobuf read
//! without a schema ([`tapedeck_model::protobuf::decode_readable`]: as `protoc --decode_raw` reads it, but plain
//! text stays a string), `+json` messages as JSON.
//!
//! Protobuf differences are named as JSON paths over the list of messages, a field as `#NUMBER`, and a field
//! that occurs more than once on either side indexed: `$.message[0].#2`, `$.message[1].#3.#1[2]`. Ignore rules,
//! matchers (regex, presence, tolerances) and `numeric_tolerance` apply to these paths as to JSON ones. A message
//! that is not protobuf (nor JSON) is compared as bytes (`$.message[N]`). Fixed-width values are shown in hex with
//! the float they would be (`0x3ff8000000000000 (1.5)`), and tolerances read them as floats when both are normal
//! floats, else as integers.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value as Json;
use tapedeck_model::grpc::{GrpcMessage, decode_web_text, percent_decode, split_messages, web_trailers};
use tapedeck_model::protobuf::{self, Field, Strings, Value};
use tapedeck_model::{Header, Response};

use super::decode::{Decoded, decode};
use super::diff::{DiffKind, Limits, Out, header_values, short};
use super::json_diff::compare_json;
use super::jsonpath::{Elem, render};
use super::rules::{Check, Effective};

/// Trailer fields compared as `grpc-status` and `grpc-message`, not by the header rules.
pub const STATUS_FIELDS: &[&str] = &["grpc-status", "grpc-message"];

/// One side of a gRPC answer, split.
struct Side<'a> {
    /// The body, base64 undone for grpc-web-text.
    bytes: Cow<'a, [u8]>,
    /// The body was cut at a cap.
    cut: bool,
    /// The trailer frame's fields (gRPC-Web).
    web_trailers: Vec<Header>,
}

fn side(r: &Response, web: bool, text: bool) -> Side<'_> {
    let cut = r.body.full_len > r.body.bytes.len() as u64;
    let bytes = if text { Cow::Owned(decode_web_text(&r.body.bytes)) } else { Cow::Borrowed(&r.body.bytes[..]) };
    let web_trailers =
        if web { split_messages(&bytes, cut, true).1.map(web_trailers).unwrap_or_default() } else { vec![] };
    Side { bytes, cut, web_trailers }
}

/// `grpc-status` and `grpc-message` (percent-decoded), from the first place that has a status: the trailers, the
/// headers (trailers-only), the gRPC-Web trailer frame.
fn status(r: &Response, s: &Side) -> (Option<String>, Option<String>) {
    for fields in [&r.trailers, &r.headers, &s.web_trailers] {
        if let Some(st) = header_values(fields, "grpc-status") {
            let msg = fields
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(b"grpc-message"))
                .map(|h| percent_decode(h.value.trim_ascii()));
            return (Some(st), msg);
        }
    }
    (None, None)
}

/// The trailer fields of a gRPC answer compared by the header rules: the HTTP trailers and, for gRPC-Web, the
/// trailer frame's fields.
pub fn trailers<'a>(r: &'a Response, web: bool, text: bool) -> Cow<'a, [Header]> {
    if !web {
        return Cow::Borrowed(&r.trailers);
    }
    let mut all = r.trailers.clone();
    all.extend(side(r, web, text).web_trailers);
    Cow::Owned(all)
}

/// Compares two gRPC answers (see the module docs). `json`: the messages are JSON (`application/grpc+json`).
pub(super) fn compare(
    recorded: &Response,
    live: &Response,
    (web, text, json): (bool, bool, bool),
    rules: &Effective,
    limits: Limits,
    out: &mut Out,
) {
    out.stats.bodies_grpc += 1;
    let (rs, ls) = (side(recorded, web, text), side(live, web, text));
    let ((rst, rmsg), (lst, lmsg)) = (status(recorded, &rs), status(live, &ls));
    // A gRPC-Web status travels at the end of the body: a cut body may have lost it.
    let knowable = |st: &Option<String>, s: &Side| st.is_some() || !(web && s.cut);
    if knowable(&rst, &rs) && knowable(&lst, &ls) {
        if rst != lst {
            out.push("grpc-status".into(), DiffKind::Changed, rst, lst);
        }
        if rmsg != lmsg {
            let kind = match (&rmsg, &lmsg) {
                (Some(_), None) => DiffKind::Missing,
                (None, Some(_)) => DiffKind::Added,
                _ => DiffKind::Changed,
            };
            out.push("grpc-message".into(), kind, rmsg.map(|m| short(&m)), lmsg.map(|m| short(&m)));
        }
    }
    if rs.cut || ls.cut {
        out.stats.bodies_skipped_truncated += 1;
        return;
    }
    let (rm, _) = split_messages(&rs.bytes, false, web);
    let (lm, _) = split_messages(&ls.bytes, false, web);
    if rm.messages.len() != lm.messages.len() {
        out.push(
            "grpc:messages".into(),
            DiffKind::Length,
            Some(rm.messages.len().to_string()),
            Some(lm.messages.len().to_string()),
        );
    }
    let (renc, lenc) =
        (header_values(&recorded.headers, "grpc-encoding"), header_values(&live.headers, "grpc-encoding"));
    let mut budget = limits.decode_cap;
    let mut path = vec![Elem::Key("message".into())];
    for (i, (a, b)) in rm.messages.iter().zip(&lm.messages).enumerate() {
        let pa = message(&rs.bytes, a, renc.as_deref(), &mut budget);
        let pb = message(&ls.bytes, b, lenc.as_deref(), &mut budget);
        let (pa, pb) = match (pa, pb) {
            (Payload::Ok(x), Payload::Ok(y)) => (x, y),
            (Payload::TooLarge, _) | (_, Payload::TooLarge) => {
                out.stats.bodies_skipped_too_large += 1;
                return;
            }
            (x, y) => {
                // Not decompressed: compared as stored.
                out.stats.decode_failed += 1;
                (x.stored(), y.stored())
            }
        };
        path.push(Elem::Index(i));
        if json {
            match (serde_json::from_slice::<Json>(&pa), serde_json::from_slice::<Json>(&pb)) {
                (Ok(x), Ok(y)) => compare_json(&mut path, Some(&x), Some(&y), rules, out),
                _ => compare_bytes(&path, &pa, &pb, out),
            }
        } else {
            match (protobuf::decode_readable(&pa), protobuf::decode_readable(&pb)) {
                (Some(x), Some(y)) => fields(&mut path, &x, &y, rules, out),
                _ => {
                    out.stats.grpc_messages_not_protobuf += 1;
                    compare_bytes(&path, &pa, &pb, out);
                }
            }
        }
        path.pop();
    }
}

enum Payload<'a> {
    Ok(Cow<'a, [u8]>),
    TooLarge,
    Failed(&'a [u8]),
}

impl<'a> Payload<'a> {
    fn stored(self) -> Cow<'a, [u8]> {
        match self {
            Payload::Ok(b) => b,
            Payload::Failed(b) => Cow::Borrowed(b),
            Payload::TooLarge => Cow::Borrowed(&[]),
        }
    }
}

/// A message's bytes in `body`, decompressed by `encoding` when its flag says so, counted against `budget`.
fn message<'a>(body: &'a [u8], m: &GrpcMessage, encoding: Option<&str>, budget: &mut usize) -> Payload<'a> {
    let raw = body.get(m.offset..m.offset.saturating_add(m.len as usize)).unwrap_or(&[]);
    let out = if m.compressed {
        let enc = encoding.unwrap_or("identity").to_ascii_lowercase();
        if enc == "identity" {
            Cow::Borrowed(raw)
        } else {
            match decode(raw, &[enc], *budget) {
                Decoded::Ok(v) => Cow::Owned(v),
                Decoded::TooLarge => return Payload::TooLarge,
                Decoded::Failed(_) => return Payload::Failed(raw),
            }
        }
    } else {
        Cow::Borrowed(raw)
    };
    match budget.checked_sub(out.len()) {
        Some(left) => *budget = left,
        None => return Payload::TooLarge,
    }
    Payload::Ok(out)
}

fn text_of(v: &Value<'_>) -> String {
    let mut s = String::new();
    match v {
        // Bytes that happen to parse as a message are shown as the bytes they are.
        Value::Len(b, _) => protobuf::quote(b, Strings::Utf8, &mut s),
        other => protobuf::value_text(other, Strings::Utf8, &mut s),
    }
    match v {
        Value::Fixed64(n) => float_of(f64::from_bits(*n)).map(|f| format!("{s} ({f})")).unwrap_or(s),
        Value::Fixed32(n) => float_of(f64::from(f32::from_bits(*n))).map(|f| format!("{s} ({f})")).unwrap_or(s),
        _ => s,
    }
}

/// A float that reads as one: zero or normal, not a subnormal that a small integer's bits would make.
fn float_of(f: f64) -> Option<f64> {
    (f == 0.0 || f.is_normal()).then_some(f)
}

/// The number a value stands for when a tolerance applies: varints as (two's complement) integers, fixed-width
/// values as floats when both sides read as floats, else as integers.
fn numbers(r: &Value<'_>, l: &Value<'_>) -> Option<(f64, f64)> {
    match (r, l) {
        (Value::Varint(a), Value::Varint(b)) => Some((*a as i64 as f64, *b as i64 as f64)),
        (Value::Fixed64(a), Value::Fixed64(b)) => match (float_of(f64::from_bits(*a)), float_of(f64::from_bits(*b))) {
            (Some(x), Some(y)) => Some((x, y)),
            _ => Some((*a as i64 as f64, *b as i64 as f64)),
        },
        (Value::Fixed32(a), Value::Fixed32(b)) => {
            match (float_of(f64::from(f32::from_bits(*a))), float_of(f64::from(f32::from_bits(*b)))) {
                (Some(x), Some(y)) => Some((x, y)),
                _ => Some((f64::from(*a as i32), f64::from(*b as i32))),
            }
        }
        _ => None,
    }
}

fn compare_bytes(path: &[Elem], a: &[u8], b: &[u8], out: &mut Out) {
    if a != b {
        let show = |x: &[u8]| {
            let mut s = String::new();
            protobuf::quote(x, Strings::Utf8, &mut s);
            short(&s)
        };
        out.push(render(path), DiffKind::Changed, Some(show(a)), Some(show(b)));
    }
}

/// Compares two field lists under `path`.
fn fields(path: &mut Vec<Elem>, r: &[Field<'_>], l: &[Field<'_>], rules: &Effective, out: &mut Out) {
    let mut by: BTreeMap<u32, (Vec<&Value<'_>>, Vec<&Value<'_>>)> = BTreeMap::new();
    for f in r {
        by.entry(f.number).or_default().0.push(&f.value);
    }
    for f in l {
        by.entry(f.number).or_default().1.push(&f.value);
    }
    for (n, (a, b)) in by {
        path.push(Elem::Key(format!("#{n}")));
        if a.len() <= 1 && b.len() <= 1 {
            value(path, a.first().copied(), b.first().copied(), rules, out);
        } else {
            for i in 0..a.len().max(b.len()) {
                path.push(Elem::Index(i));
                value(path, a.get(i).copied(), b.get(i).copied(), rules, out);
                path.pop();
            }
        }
        path.pop();
    }
}

fn value(path: &mut Vec<Elem>, r: Option<&Value<'_>>, l: Option<&Value<'_>>, rules: &Effective, out: &mut Out) {
    if rules.ignored(path) {
        return;
    }
    if let Some(m) = rules.matcher(path) {
        check(path, &m.check, r, l, out);
        return;
    }
    let (r, l) = match (r, l) {
        (None, None) => return,
        (Some(r), None) => return out.push(render(path), DiffKind::Missing, Some(short(&text_of(r))), None),
        (None, Some(l)) => return out.push(render(path), DiffKind::Added, None, Some(short(&text_of(l)))),
        (Some(r), Some(l)) => (r, l),
    };
    match (r, l) {
        (Value::Len(_, Some(a)), Value::Len(_, Some(b))) | (Value::Group(a), Value::Group(b)) => {
            fields(path, a, b, rules, out)
        }
        (Value::Len(a, _), Value::Len(b, _)) => {
            if a != b {
                out.push(render(path), DiffKind::Changed, Some(short(&text_of(r))), Some(short(&text_of(l))));
            }
        }
        _ if std::mem::discriminant(r) != std::mem::discriminant(l) => out.push(
            render(path),
            DiffKind::Type,
            Some(short(&format!("{} {}", r.kind(), text_of(r)))),
            Some(short(&format!("{} {}", l.kind(), text_of(l)))),
        ),
        _ => {
            let same = r == l
                || numbers(r, l)
                    .is_some_and(|(a, b)| rules.numeric_tolerance > 0.0 && (a - b).abs() <= rules.numeric_tolerance);
            if !same {
                out.push(render(path), DiffKind::Changed, Some(short(&text_of(r))), Some(short(&text_of(l))));
            }
        }
    }
}

fn check(path: &[Elem], c: &Check, r: Option<&Value<'_>>, l: Option<&Value<'_>>, out: &mut Out) {
    let Some(lv) = l else {
        if let Some(rv) = r {
            out.push(render(path), DiffKind::Missing, Some(short(&text_of(rv))), None);
        }
        return;
    };
    match c {
        Check::Present => {}
        Check::Regex(re) => {
            let text = match lv {
                Value::Len(b, _) => String::from_utf8_lossy(b).into_owned(),
                Value::Varint(n) => n.to_string(),
                other => text_of(other),
            };
            if !re.is_match(&text) {
                out.push(
                    render(path),
                    DiffKind::NoMatch,
                    Some(format!("/{}/", re.as_str())),
                    Some(short(&text_of(lv))),
                );
            }
        }
        Check::Tolerance(t) | Check::Relative(t) => {
            let Some(rv) = r else {
                out.push(render(path), DiffKind::Added, None, Some(short(&text_of(lv))));
                return;
            };
            let ok = match numbers(rv, lv) {
                Some((a, b)) => (a - b).abs() <= if matches!(c, Check::Relative(_)) { t * a.abs() } else { *t },
                None => rv == lv,
            };
            if !ok {
                out.push(render(path), DiffKind::Changed, Some(short(&text_of(rv))), Some(short(&text_of(lv))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::super::compare::{CompareStats, FieldDiff, compare};
    use super::super::rules::Rules;
    use super::*;
    use tapedeck_model::Body;

    const LIMITS: Limits = Limits { decode_cap: 1 << 20, max_diffs: 50 };

    /// A length-prefixed gRPC frame.
    fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn gz(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn resp(ct: &str, body: Vec<u8>, trailers: &[(&str, &str)]) -> Response {
        Response {
            status: 200,
            headers: vec![Header::new("content-type", ct)],
            body: Body { full_len: body.len() as u64, bytes: body },
            trailers: trailers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            ..Default::default()
        }
    }

    fn grpc(msgs: &[&[u8]], trailers: &[(&str, &str)]) -> Response {
        resp("application/grpc", msgs.iter().flat_map(|m| frame(0, m)).collect(), trailers)
    }

    fn diff_stats(rules: &str, a: &Response, b: &Response) -> (Vec<FieldDiff>, CompareStats) {
        let rules = Rules::from_toml(rules).unwrap();
        let mut stats = CompareStats::default();
        let d = compare(a, b, &rules.for_request("POST", "/p.S/M"), LIMITS, &mut stats);
        (d, stats)
    }

    fn diff(rules: &str, a: &Response, b: &Response) -> Vec<String> {
        diff_stats(rules, a, b).0.iter().map(|d| d.to_string()).collect()
    }

    const OK: &[(&str, &str)] = &[("grpc-status", "0")];

    #[test]
    fn a_string_changed_with_the_same_length_is_a_difference() {
        // Field 1 = "hello" / "HOWDY": the same sizes, which is all that was compared before.
        let a = grpc(&[b"\x0a\x05hello"], OK);
        let b = grpc(&[b"\x0a\x05HOWDY"], OK);
        assert_eq!(diff("", &a, &b), vec![r#"$.message[0].#1: "hello" -> "HOWDY""#]);
        assert_eq!(diff("", &a, &a.clone()), Vec::<String>::new());
        // "hi" would parse as a message (field 13 = 105): plain text stays a string.
        let (hi, yo) = (grpc(&[b"\x0a\x02hi"], OK), grpc(&[b"\x0a\x02yo"], OK));
        assert_eq!(diff("", &hi, &yo), vec![r#"$.message[0].#1: "hi" -> "yo""#]);
        let (_, stats) = diff_stats("", &a, &b);
        assert_eq!((stats.bodies_grpc, stats.grpc_messages_not_protobuf), (1, 0));
    }

    #[test]
    fn status_message_and_message_count() {
        let a = grpc(&[b"\x08\x01", b"\x08\x02"], &[("grpc-status", "0")]);
        let b = grpc(&[b"\x08\x01"], &[("grpc-status", "13"), ("grpc-message", "boom%20here")]);
        assert_eq!(
            diff("", &a, &b),
            vec!["grpc-status: 0 -> 13", "grpc-message: (absent) -> boom here", "grpc:messages: 2 -> 1"]
        );
        // The status of a trailers-only answer (in the headers) against one in the trailers.
        let mut only = grpc(&[], &[]);
        only.headers.push(Header::new("grpc-status", "5"));
        only.headers.push(Header::new("grpc-message", "not found"));
        let c = grpc(&[], &[("grpc-status", "5"), ("grpc-message", "gone")]);
        assert_eq!(diff("headers = ['*']", &only, &c), vec!["grpc-message: not found -> gone"]);
    }

    #[test]
    fn compressed_messages_are_compared_decompressed() {
        let mut a = resp("application/grpc", frame(1, &gz(b"\x0a\x05hello\x10\x07")), OK);
        a.headers.push(Header::new("grpc-encoding", "gzip"));
        let plain = grpc(&[b"\x0a\x05hello\x10\x07"], OK);
        assert_eq!(diff("", &a, &plain), Vec::<String>::new());
        let mut b = resp("application/grpc", frame(1, &gz(b"\x0a\x05hello\x10\x08")), OK);
        b.headers.push(Header::new("grpc-encoding", "gzip"));
        assert_eq!(diff("", &a, &b), vec!["$.message[0].#2: 7 -> 8"]);
        // A compressed message that does not decompress is compared as stored, and counted.
        let mut bad = resp("application/grpc", frame(1, b"not gzip"), OK);
        bad.headers.push(Header::new("grpc-encoding", "gzip"));
        let (d, stats) = diff_stats("", &a, &bad);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "$.message[0]");
        assert_eq!(stats.decode_failed, 1);
    }

    #[test]
    fn nested_repeated_typed_and_fixed_fields() {
        // #1 varint, #2 "x", #3 { #1: 1 }, #4 repeated, #5 double 1.5.
        let a = grpc(&[b"\x08\x01\x12\x01x\x1a\x02\x08\x01\x20\x01\x20\x02\x29\0\0\0\0\0\0\xf8\x3f"], OK);
        // #1 bytes now, #3.#1 = 2, #4 has a third value, #5 = 2.0, #6 added.
        let b =
            grpc(&[b"\x0a\x01y\x12\x01x\x1a\x02\x08\x02\x20\x01\x20\x02\x20\x03\x29\0\0\0\0\0\0\0\x40\x30\x00"], OK);
        assert_eq!(
            diff("", &a, &b),
            vec![
                r#"$.message[0].#1: varint 1 -> bytes "y""#,
                "$.message[0].#3.#1: 1 -> 2",
                "$.message[0].#4[2]: (absent) -> 3",
                "$.message[0].#5: 0x3ff8000000000000 (1.5) -> 0x4000000000000000 (2)",
                "$.message[0].#6: (absent) -> 0",
            ]
        );
        // Ignore rules, tolerances and matchers name the same paths.
        let rules = r#"
            ignore_json = ["$.message[*].#1", "$..#6"]
            [[matcher]]
            path = "$.message[*].#5"
            tolerance = 0.5
            [[matcher]]
            path = "$.message[*].#3.#1"
            regex = '^[0-9]$'
            [[matcher]]
            path = "$.message[*].#4[*]"
            present = true
        "#;
        assert_eq!(diff(rules, &a, &b), Vec::<String>::new());
        let tight = rules.replace("tolerance = 0.5", "tolerance = 0.1");
        assert_eq!(diff(&tight, &a, &b), vec!["$.message[0].#5: 0x3ff8000000000000 (1.5) -> 0x4000000000000000 (2)"]);
        // numeric_tolerance covers varints too; small integers in fixed64 are not taken for tiny floats.
        let c = grpc(&[b"\x08\x0a\x31\x05\0\0\0\0\0\0\0"], OK);
        let d = grpc(&[b"\x08\x0b\x31\x06\0\0\0\0\0\0\0"], OK);
        assert_eq!(diff("numeric_tolerance = 1.0", &c, &d), Vec::<String>::new());
        assert_eq!(
            diff("numeric_tolerance = 0.5", &c, &d),
            vec!["$.message[0].#1: 10 -> 11", "$.message[0].#6: 0x0000000000000005 -> 0x0000000000000006"]
        );
    }

    #[test]
    fn other_payloads_as_bytes_or_json() {
        let a = grpc(&[b"\x07\x07\x07"], OK);
        let b = grpc(&[b"\x07\x07\x08"], OK);
        let (d, stats) = diff_stats("", &a, &b);
        assert_eq!(
            d.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            vec![r#"$.message[0]: "\007\007\007" -> "\007\007\010""#]
        );
        assert_eq!(stats.grpc_messages_not_protobuf, 1);
        let j = |s: &str| resp("application/grpc+json", frame(0, s.as_bytes()), OK);
        assert_eq!(diff("", &j(r#"{"a":1,"b":[1]}"#), &j(r#"{"b":[1],"a":1}"#)), Vec::<String>::new());
        assert_eq!(diff("", &j(r#"{"a":1}"#), &j(r#"{"a":2}"#)), vec!["$.message[0].a: 1 -> 2"]);
    }

    #[test]
    fn trailers_follow_the_header_rules() {
        let a = grpc(&[b"\x08\x01"], &[("grpc-status", "0"), ("x-served-by", "a1")]);
        let b = grpc(&[b"\x08\x01"], &[("grpc-status", "0"), ("x-served-by", "b2")]);
        assert_eq!(diff("", &a, &b), Vec::<String>::new(), "not a chosen header");
        assert_eq!(diff("headers = ['x-served-by']", &a, &b), vec!["trailer:x-served-by: a1 -> b2"]);
        assert_eq!(diff("headers = ['*']", &a, &b), vec!["trailer:x-served-by: a1 -> b2"]);
        assert_eq!(diff("headers = ['*']\nignore_headers = ['x-served-by']", &a, &b), Vec::<String>::new());
        // Trailers of any answer, not only gRPC ones.
        let mut h = resp("text/plain", b"x".to_vec(), &[("x-checksum", "1")]);
        let mut h2 = h.clone();
        h2.trailers[0].value = b"2".to_vec();
        assert_eq!(diff("headers = ['x-checksum']", &h, &h2), vec!["trailer:x-checksum: 1 -> 2"]);
        h.trailers.clear();
        assert_eq!(diff("headers = ['x-checksum']", &h, &h2), vec!["trailer:x-checksum: (absent) -> 2"]);
    }

    #[test]
    fn grpc_web_trailer_frame_and_cut_bodies() {
        let web = |msg: &[u8], trailer: &str| {
            let mut body = frame(0, msg);
            body.extend(frame(0x80, trailer.as_bytes()));
            resp("application/grpc-web+proto", body, &[])
        };
        let a = web(b"\x0a\x05hello", "grpc-status: 0\r\nx-served-by: a\r\n");
        let b = web(b"\x0a\x05HOWDY", "grpc-status: 7\r\ngrpc-message: no\r\nx-served-by: b\r\n");
        assert_eq!(
            diff("headers = ['x-served-by']", &a, &b),
            vec![
                "trailer:x-served-by: a -> b",
                "grpc-status: 0 -> 7",
                "grpc-message: (absent) -> no",
                r#"$.message[0].#1: "hello" -> "HOWDY""#
            ]
        );
        // A cut body: the messages are not compared (and counted), the status in the trailers still is.
        let mut cut = grpc(&[b"\x0a\x05HOWDY"], &[("grpc-status", "4")]);
        cut.body.full_len += 100;
        let (d, stats) = diff_stats("", &grpc(&[b"\x0a\x05hello"], OK), &cut);
        assert_eq!(d.iter().map(|d| d.field.as_str()).collect::<Vec<_>>(), vec!["grpc-status"]);
        assert_eq!(stats.bodies_skipped_truncated, 1);
    }
}
