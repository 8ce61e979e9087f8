//! JSON bodies: values by key at any depth (json_key rules) and by path (json_path rules), detector hits inside
//! strings, and card numbers written as JSON numbers. Parsed with serde_json (key order kept), written back
//! compactly only when something changed. A redacted value keeps its type: a string becomes `"[REDACTED]"`, a
//! number `0`, a boolean `false`, an array `[]`, an object `{}` (null stays null); a hashed value becomes the token
//! string (of the string's text, or of the compact JSON of any other value).
//!
//! A body that does not parse (typically cut at the body cap) is scanned lexically instead: every `"key": value`
//! with a scalar value whose key matches a json_key rule has its value replaced, then the detectors run over the
//! text. Path rules and secret keys holding objects or arrays are not applied in that case.

use std::sync::LazyLock;

use regex::bytes::Regex;
use serde_json::Value;

use super::{Ctx, REDACTED};

/// One step of a compiled JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    AnyKey,
    Index(usize),
    AnyIndex,
}

/// A JSON path: `$`, then `.key`, `.*`, `[N]`, `[*]` steps (`["key"]` for keys with dots or brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath(Vec<Step>);

/// One step of where the walk is.
#[derive(Clone, Debug)]
enum At {
    Key(String),
    Index(usize),
}

impl JsonPath {
    /// Parses a path.
    pub fn parse(s: &str) -> Result<JsonPath, String> {
        let rest = s.strip_prefix('$').ok_or("a path starts with `$`")?;
        let b = rest.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                        j += 1;
                    }
                    let key = &rest[start..j];
                    if key.is_empty() {
                        return Err(format!("empty key at byte {}", start + 1));
                    }
                    steps.push(if key == "*" { Step::AnyKey } else { Step::Key(key.to_string()) });
                    i = j;
                }
                b'[' => {
                    let close = rest[i..].find(']').map(|k| i + k).ok_or("`[` without `]`")?;
                    let inner = &rest[i + 1..close];
                    let step = if inner == "*" {
                        Step::AnyIndex
                    } else if let Some(q) = inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                        Step::Key(q.to_string())
                    } else {
                        Step::Index(inner.parse().map_err(|_| format!("bad index {inner:?}"))?)
                    };
                    steps.push(step);
                    i = close + 1;
                }
                _ => return Err(format!("unexpected {:?} at byte {}", b[i] as char, i + 1)),
            }
        }
        Ok(JsonPath(steps))
    }

    fn matches(&self, at: &[At]) -> bool {
        self.0.len() == at.len()
            && self.0.iter().zip(at).all(|(s, a)| match (s, a) {
                (Step::Key(k), At::Key(x)) => k == x,
                (Step::AnyKey, At::Key(_)) => true,
                (Step::Index(i), At::Index(x)) => i == x,
                (Step::AnyIndex, At::Index(_)) => true,
                _ => false,
            })
    }
}

/// Whether bytes start (after white space) like a JSON object or array.
pub fn looks_like_json(b: &[u8]) -> bool {
    matches!(b.trim_ascii_start().first(), Some(b'{' | b'['))
}

/// Masks a JSON body; None when unchanged. `declared`: the content type said JSON (a parse failure is counted
/// then; a sniffed body that does not parse is treated as text).
pub fn mask_json_body(ctx: &mut Ctx<'_>, bytes: &[u8], declared: bool) -> Option<Vec<u8>> {
    if !may_change(ctx, bytes) {
        ctx.stats.json_bodies_prefiltered += 1;
        return None;
    }
    mask_parsed(ctx, bytes, declared)
}

/// [`mask_json_body`] without the prefilter: parsed and walked, or scanned lexically when it does not parse.
fn mask_parsed(ctx: &mut Ctx<'_>, bytes: &[u8], declared: bool) -> Option<Vec<u8>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut v) => {
            let mut at = Vec::new();
            let track = !ctx.c.json_paths.is_empty();
            let changed = match path_rule(ctx, &at) {
                Some(rule) => {
                    v = replace_value(ctx, rule, &v);
                    true
                }
                None => walk(ctx, &mut v, &mut at, track),
            };
            if changed { serde_json::to_vec(&v).ok() } else { None }
        }
        Err(_) => {
            if declared {
                ctx.stats.json_parse_failures += 1;
            }
            let keyed = lexical(ctx, bytes);
            let text = keyed.as_deref().unwrap_or(bytes);
            ctx.mask_text(text).or(keyed)
        }
    }
}

/// Whether masking could change a JSON text, decided from the text alone, without parsing it (most bodies
/// hold no secret: parsing them into a tree only to find nothing is the cost to avoid). False only when:
/// - there are no path rules and no custom regex detectors (their answers depend on the tree or on anchors);
/// - the text has no backslash, so every key and string is its bytes between two quotes, as stored;
/// - no text between two consecutive quotes that is followed (after white space or non-ASCII bytes) by `:`
///   matches a json_key rule: this includes every key of a valid document and every key the lexical scan of
///   an invalid one ([`MEMBER`]) could find;
/// - no detector finds anything in the whole text: a hit inside a string (or a card written as a number) is
///   also a hit in the text around it, as quotes and JSON punctuation end words and digit groups alike.
pub fn may_change(ctx: &mut Ctx<'_>, text: &[u8]) -> bool {
    if !ctx.c.json_paths.is_empty() || ctx.c.detectors.has_custom() || memchr::memchr(b'\\', text).is_some() {
        return true;
    }
    if !ctx.c.json_key.is_empty() {
        let mut quotes = memchr::memchr_iter(b'"', text);
        if let Some(mut open) = quotes.next() {
            for close in quotes {
                let after = text[close + 1..].iter().find(|&&b| !(b.is_ascii_whitespace() || b >= 0x80));
                if after == Some(&b':') && ctx.c.json_key.lookup(&text[open + 1..close]).is_some() {
                    return true;
                }
                open = close;
            }
        }
    }
    ctx.mask_text_would_change(text)
}

fn path_rule(ctx: &Ctx<'_>, at: &[At]) -> Option<usize> {
    ctx.c.json_paths.iter().find(|(_, p)| p.matches(at)).map(|(r, _)| *r)
}

/// The value that replaces `v` under `rule`: a hash rule gives strings and numbers a token (of the string, or of
/// the number's JSON text); other values, and every value under other rules, get the marker of their type (a
/// token of `null`, `false` or a whole object would tell a reader nothing).
fn replace_value(ctx: &mut Ctx<'_>, rule: usize, v: &Value) -> Value {
    let text = match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Number(n) => Some(n.to_string().into_bytes()),
        _ => None,
    };
    match text {
        Some(text) => {
            if let Some(token) = ctx.token_for(rule, &text) {
                return Value::String(token);
            }
        }
        None => {
            ctx.fire(rule);
        }
    }
    match v {
        Value::String(_) => Value::String(REDACTED.into()),
        Value::Number(_) => Value::from(0),
        Value::Bool(_) => Value::Bool(false),
        Value::Null => Value::Null,
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Object(_) => Value::Object(serde_json::Map::new()),
    }
}

/// Masks inside `v`; whether anything changed.
fn walk(ctx: &mut Ctx<'_>, v: &mut Value, at: &mut Vec<At>, track: bool) -> bool {
    let mut changed = false;
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if track {
                    at.push(At::Key(k.clone()));
                }
                let rule =
                    ctx.c.json_key.lookup(k.as_bytes()).or_else(|| if track { path_rule(ctx, at) } else { None });
                match rule {
                    Some(rule) => {
                        *child = replace_value(ctx, rule, child);
                        changed = true;
                    }
                    None => changed |= walk(ctx, child, at, track),
                }
                if track {
                    at.pop();
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                if track {
                    at.push(At::Index(i));
                    if let Some(rule) = path_rule(ctx, at) {
                        *child = replace_value(ctx, rule, child);
                        changed = true;
                        at.pop();
                        continue;
                    }
                }
                changed |= walk(ctx, child, at, track);
                if track {
                    at.pop();
                }
            }
        }
        Value::String(s) => {
            if let Some(new) = ctx.mask_text(s.as_bytes()) {
                *s = String::from_utf8(new).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                changed = true;
            }
        }
        Value::Number(n) => {
            if let Some(rule) = ctx.c.card_rule {
                let digits = n.to_string();
                if (13..=19).contains(&digits.len()) && super::detect::luhn_valid(digits.as_bytes()) {
                    *v = replace_value(ctx, rule, v);
                    changed = true;
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
    changed
}

/// `"key" : scalar` in JSON text that may be cut anywhere (an unterminated string runs to the end).
static MEMBER: LazyLock<Regex> = LazyLock::new(|| {
    regex::bytes::RegexBuilder::new(
        r#""((?:[^"\\]|\\.){0,256})"\s*:\s*("(?:[^"\\]|\\.)*(?:"|\\?$)|-?[0-9][0-9.eE+-]*|true|false|null)"#,
    )
    .dfa_size_limit(super::REGEX_CACHE)
    .build()
    .unwrap_or_else(|e| unreachable!("{e}"))
});

/// Replaces the scalar values of matching keys in JSON text; None when nothing matched.
fn lexical(ctx: &mut Ctx<'_>, text: &[u8]) -> Option<Vec<u8>> {
    if ctx.c.json_key.is_empty() {
        return None;
    }
    let mut edits = Vec::new();
    for c in MEMBER.captures_iter(text) {
        let (Some(key), Some(val)) = (c.get(1), c.get(2)) else { continue };
        let Some(rule) = ctx.c.json_key.lookup(key.as_bytes()) else { continue };
        let raw = val.as_bytes();
        let with = if raw.first() == Some(&b'"') {
            let inner = raw[1..].strip_suffix(b"\"").unwrap_or(&raw[1..]);
            let mut s = b"\"".to_vec();
            s.extend(ctx.replace(rule, inner));
            s.push(b'"');
            s
        } else {
            match ctx.token_for(rule, raw) {
                Some(t) => format!("\"{t}\"").into_bytes(),
                None if raw.starts_with(b"t") || raw.starts_with(b"f") => b"false".to_vec(),
                None if raw.starts_with(b"n") => b"null".to_vec(),
                None => b"0".to_vec(),
            }
        };
        edits.push((val.start(), val.end(), with));
    }
    (!edits.is_empty()).then(|| super::splice(text, &edits))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{masker, masker_with, post, tok};
    use super::*;

    fn body_after(m: &mut super::super::Masker, ct: &str, body: &str) -> (String, Vec<String>) {
        let mut ex = post("/", ct, body.as_bytes());
        assert!(m.mask(&mut ex));
        (String::from_utf8(ex.request.unwrap().body.bytes).unwrap(), ex.masked_by)
    }

    #[test]
    fn paths_parse() {
        assert_eq!(JsonPath::parse("$").unwrap(), JsonPath(vec![]));
        assert_eq!(
            JsonPath::parse("$.a[*].b[2].*[\"x.y\"]").unwrap(),
            JsonPath(vec![
                Step::Key("a".into()),
                Step::AnyIndex,
                Step::Key("b".into()),
                Step::Index(2),
                Step::AnyKey,
                Step::Key("x.y".into())
            ])
        );
        assert!(JsonPath::parse("a.b").is_err());
        assert!(JsonPath::parse("$..a").is_err());
        assert!(JsonPath::parse("$[x]").is_err());
        assert!(JsonPath::parse("$[1").is_err());
    }

    #[test]
    fn keys_at_any_depth_keep_their_type_and_order() {
        let mut m = masker();
        let (b, fired) = body_after(
            &mut m,
            "application/json",
            r#"{"user":"jane","password":"hunter2","nested":{"list":[{"apiKey":12345,"ok":true}],"Token":null,"secret":{"a":1}},"refresh_token":false,"note":"card 4111-1111-1111-1111","n":4111111111111111}"#,
        );
        assert_eq!(
            b,
            format!(
                r#"{{"user":"jane","password":"[REDACTED]","nested":{{"list":[{{"apiKey":"{}","ok":true}}],"Token":null,"secret":{{}}}},"refresh_token":false,"note":"card [REDACTED]","n":0}}"#,
                tok("12345")
            )
        );
        assert_eq!(fired, ["payment-cards", "secret-json-keys", "token-json-keys"]);
    }

    #[test]
    fn untouched_json_keeps_its_bytes() {
        let mut m = masker();
        let body = "{ \"a\" : 1,\n \"b\": [1, 2] }";
        let mut ex = post("/", "application/json", body.as_bytes());
        m.mask(&mut ex);
        assert_eq!(ex.request.unwrap().body.bytes, body.as_bytes());
        assert!(ex.masked_by.is_empty());
    }

    #[test]
    fn paths_and_hashes() {
        let policy = r#"
            mode = "replace"
            [[rule]]
            name = "ssn"
            target = "json_path"
            paths = ["$.people[*].ssn", "$.meta.owner"]
            action = "hash"
        "#;
        let mut m = masker_with(policy, false);
        let (b, fired) = body_after(
            &mut m,
            "application/vnd.api+json",
            r#"{"people":[{"ssn":"123-45-6789"},{"ssn":"123-45-6789","x":{"ssn":"keep"}}],"meta":{"owner":42},"ssn":"keep"}"#,
        );
        let v: Value = serde_json::from_str(&b).unwrap();
        let t0 = v["people"][0]["ssn"].as_str().unwrap();
        assert!(t0.starts_with("tdk_") && t0.len() == 20);
        assert_eq!(v["people"][1]["ssn"], t0, "same value, same token");
        assert_eq!(v["people"][1]["x"]["ssn"], "keep");
        assert_eq!(v["ssn"], "keep");
        assert!(v["meta"]["owner"].as_str().unwrap().starts_with("tdk_"));
        assert_eq!(fired, ["ssn"]);
    }

    #[test]
    fn cut_json_falls_back_to_a_lexical_scan() {
        let mut m = masker();
        let (b, _) = body_after(
            &mut m,
            "application/json",
            r#"{"a":"x","password":"hun\"ter2","pin":1234,"token":"abc","card":"4111111111111111","more":{"secret":"tail-cut-he"#,
        );
        assert_eq!(
            b,
            format!(
                r#"{{"a":"x","password":"[REDACTED]","pin":1234,"token":"{}","card":"[REDACTED]","more":{{"secret":"{}""#,
                tok("abc"),
                tok("tail-cut-he")
            )
        );
        assert_eq!(m.stats().json_parse_failures, 1);
    }

    #[test]
    fn undeclared_json_is_sniffed() {
        let mut m = masker();
        let (b, _) = body_after(&mut m, "", r#"{"password":"p"}"#);
        assert_eq!(b, r#"{"password":"[REDACTED]"}"#);
        assert_eq!(m.stats().json_parse_failures, 0);
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let words = prop_oneof![
            Just("name"),
            Just("password"),
            Just("Token"),
            Just("id"),
            Just("items"),
            Just("x-api-key"),
            Just("note"),
            Just("mail"),
            Just("session_id"),
            Just("qty"),
            Just("secretary"),
            Just("ok")
        ];
        let strings = prop_oneof![
            Just("plain text".to_string()),
            Just("jane.doe@example.org".to_string()),
            Just("card 4111 1111 1111 1111".to_string()),
            Just("2024-01-01".to_string()),
            Just("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig".to_string()),
            Just("AKIAIOSFODNN7EXAMPLE".to_string()),
            Just("password: hunter2".to_string()),
            Just("été \"q\" ünï".to_string()),
            "[a-z ]{0,12}"
        ];
        let leaf = prop_oneof![
            strings.prop_map(Value::from),
            prop_oneof![Just(4111111111111111u64), Just(12345), Just(5500005555555559), Just(7)].prop_map(Value::from),
            Just(Value::Null),
            Just(Value::Bool(true)),
        ];
        leaf.prop_recursive(4, 32, 5, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((words.clone(), inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// The prefilter never hides a change: whenever it says a text cannot change, parsing and walking it (or
        /// the lexical scan, for a text cut short) changes nothing either. Policies: the default, and one with
        /// every built-in detector.
        #[test]
        fn the_prefilter_only_skips_bodies_that_would_not_change(
            doc in arb_json(),
            cut in proptest::option::of(0usize..400),
            all_detectors in proptest::bool::ANY,
        ) {
            let mut text = serde_json::to_vec(&doc).unwrap();
            if let Some(c) = cut {
                text.truncate(c.min(text.len()));
            }
            let mut m = if all_detectors {
                masker_with(ALL_DETECTORS, true)
            } else {
                masker()
            };
            let (pre, full) = m.with_ctx(|ctx| (may_change(ctx, &text), mask_parsed(ctx, &text, true)));
            if !pre {
                proptest::prop_assert!(full.is_none(), "skipped but would change: {}", String::from_utf8_lossy(&text));
            }
        }
    }

    const ALL_DETECTORS: &str = r#"
        [[rule]]
        name = "emails"
        target = "detector"
        detector = "email"
        action = "redact"
        [[rule]]
        name = "jwts"
        target = "detector"
        detector = "jwt"
        action = "redact"
        [[rule]]
        name = "keys"
        target = "detector"
        detector = "cloud_key"
        action = "redact"
        [[rule]]
        name = "bearer"
        target = "detector"
        detector = "bearer"
        action = "redact"
    "#;

    #[test]
    fn clean_bodies_are_not_parsed_and_dirty_ones_are() {
        let mut m = masker();
        let (out, _) = body_after(&mut m, "application/json", r#"{"items":[{"id":1,"name":"alpha"}],"ok":true}"#);
        assert_eq!(out, r#"{"items":[{"id":1,"name":"alpha"}],"ok":true}"#);
        assert_eq!(m.stats().json_bodies_prefiltered, 1);
        let (out, _) = body_after(&mut m, "application/json", r#"{"user": {"Password" : "x"}}"#);
        assert_eq!(out, r#"{"user":{"Password":"[REDACTED]"}}"#);
        // An escape could hide a key or a secret from the scan: such bodies are always parsed.
        let (out, _) = body_after(&mut m, "application/json", r#"{"pass\u0077ord":"x","n":"a\"b"}"#);
        assert_eq!(out, r#"{"password":"[REDACTED]","n":"a\"b"}"#);
        assert_eq!(m.stats().json_bodies_prefiltered, 1);
    }
}
