//! Tests of the engine as a whole (helpers shared with the submodules' tests).

use std::net::SocketAddr;

use proptest::prelude::*;
use serde_json::Value;
use tapedeck_model::{Body, Exchange, Flags, Header, Protocol, Request, Response, Timing};

use super::*;

pub const TEST_KEY: &[u8] = b"test-key-0123456789abcdef";

/// A masker with the default policy, keyed with [`TEST_KEY`].
pub fn masker() -> Masker {
    Masker::new(Policy::default_policy(), Some(&MaskKey::new(TEST_KEY.to_vec()).unwrap())).unwrap()
}

/// The token of `value` under [`TEST_KEY`]: HMAC-SHA256 computed here, not by the masker.
pub fn tok(value: &str) -> String {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(TEST_KEY).unwrap();
    mac.update(value.as_bytes());
    format!("tdk_{}", policy::hex(&mac.finalize().into_bytes()[..8]))
}

/// A masker with a policy file on top of the default (when `default_on`), keyed with [`TEST_KEY`].
pub fn masker_with(toml: &str, default_on: bool) -> Masker {
    let file = Policy::parse_file("test.toml", toml).unwrap();
    let policy = Policy::build(default_on, Some(file)).unwrap();
    Masker::new(policy, Some(&MaskKey::new(TEST_KEY.to_vec()).unwrap())).unwrap()
}

fn exchange(req: Request, resp: Option<Response>) -> Exchange {
    let addr = SocketAddr::from(([10, 0, 0, 1], 80));
    Exchange {
        id: 1,
        connection_id: 1,
        order: 0,
        stream_id: None,
        proto: Protocol::Http11,
        client: addr,
        server: addr,
        timing: Timing::default(),
        request: Some(req),
        response: resp,
        flags: Flags::NONE,
        labels: Vec::new(),
        masked_by: Vec::new(),
    }
}

fn whole(b: &[u8]) -> Body {
    Body { bytes: b.to_vec(), full_len: b.len() as u64 }
}

/// A GET with headers and a body.
pub fn get(path: &str, headers: Vec<Header>, body: &[u8]) -> Exchange {
    exchange(
        Request { method: b"GET".to_vec(), path: path.into(), headers, body: whole(body), ..Request::default() },
        None,
    )
}

/// A POST with a content type (none when empty) and a body.
pub fn post(path: &str, ct: &str, body: &[u8]) -> Exchange {
    let headers = if ct.is_empty() { vec![] } else { vec![Header::new("content-type", ct)] };
    exchange(
        Request { method: b"POST".to_vec(), path: path.into(), headers, body: whole(body), ..Request::default() },
        None,
    )
}

fn response(headers: Vec<Header>, body: Body) -> Exchange {
    let req = Request { method: b"GET".to_vec(), path: b"/".to_vec(), ..Request::default() };
    exchange(req, Some(Response { status: 200, headers, body, ..Response::default() }))
}

#[test]
fn encoded_bodies_are_masked_and_encoded_again() {
    use codec::{Coding, DeflateForm, decode, encode};
    let json = br#"{"user":"jane","password":"hunter2"}"#;
    for (name, coding) in
        [("gzip", Coding::Gzip), ("deflate", Coding::Deflate), ("br", Coding::Brotli), ("zstd", Coding::Zstd)]
    {
        let enc = encode(coding, DeflateForm::Zlib, json).unwrap();
        let mut ex = response(
            vec![Header::new("Content-Type", "application/json"), Header::new("Content-Encoding", name)],
            whole(&enc),
        );
        let mut m = masker();
        assert!(m.mask(&mut ex));
        let resp = ex.response.unwrap();
        assert_eq!(resp.body.full_len, resp.body.bytes.len() as u64);
        assert!(resp.headers.iter().any(|h| h.name == b"Content-Encoding"), "{name}: still encoded");
        let plain = match decode(coding, &resp.body.bytes, 1 << 20).0 {
            codec::Decoded::Whole(p) => p,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(plain, br#"{"user":"jane","password":"[REDACTED]"}"#, "{name}");
        assert_eq!(ex.masked_by, [format!("@response-body:re-encoded:{name}"), "secret-json-keys".to_string()]);
        assert_eq!(m.stats().bodies_reencoded, 1);
    }
}

#[test]
fn a_cut_encoded_body_is_stored_decoded() {
    use codec::{Coding, DeflateForm, encode};
    let mut text = b"{\"token\":\"abc\",\"items\":[".to_vec();
    for i in 0..5000 {
        text.extend(format!("{{\"i\":{i}}},").into_bytes());
    }
    let enc = encode(Coding::Gzip, DeflateForm::Raw, &text).unwrap();
    let cut = Body { bytes: enc[..enc.len() / 2].to_vec(), full_len: enc.len() as u64 };
    let mut ex =
        response(vec![Header::new("content-type", "application/json"), Header::new("content-encoding", "gzip")], cut);
    let mut m = masker();
    m.mask(&mut ex);
    let resp = ex.response.unwrap();
    assert!(resp.body.bytes.starts_with(format!("{{\"token\":\"{}\",\"items\":[{{\"i\":0}},", tok("abc")).as_bytes()));
    assert!(!resp.headers.iter().any(|h| h.name == b"content-encoding"));
    assert_eq!(resp.body.full_len, enc.len() as u64, "the wire length is kept");
    assert!(ex.masked_by.contains(&"@response-body:stored-decoded:gzip".to_string()));
    let s = m.stats();
    assert_eq!((s.bodies_stored_decoded, s.json_parse_failures), (1, 1));
}

#[test]
fn undecodable_bodies_get_the_detectors_over_their_bytes() {
    let mut ex = response(
        vec![Header::new("content-type", "text/plain"), Header::new("content-encoding", "gzip")],
        whole(b"not really gzip 4111111111111111"),
    );
    let mut m = masker();
    m.mask(&mut ex);
    assert_eq!(ex.response.unwrap().body.bytes, b"not really gzip [REDACTED]");
    assert_eq!(m.stats().decode_failures, 1);
    // An undecodable body without hits is left exactly as it was.
    let mut ex = response(vec![Header::new("content-encoding", "compress")], whole(b"\x1f\x9d\x90abc"));
    m.mask(&mut ex);
    assert_eq!(ex.response.unwrap().body.bytes, b"\x1f\x9d\x90abc");
}

#[test]
fn grpc_and_binary_bodies_are_left_alone_unless_a_rule_drops_them() {
    let grpc_body = b"\x00\x00\x00\x00\x104111111111111111";
    let mk = |path: &str| {
        let mut ex = post(path, "application/grpc", grpc_body);
        ex.request.as_mut().unwrap().headers.push(Header::new("authorization", "Bearer x"));
        ex
    };
    let mut m = masker();
    let mut ex = mk("/pkg.Svc/Get");
    m.mask(&mut ex);
    let req = ex.request.unwrap();
    assert_eq!(req.body.bytes, grpc_body);
    assert_eq!(req.headers[1].value, format!("Bearer {}", tok("x")).as_bytes(), "metadata is still masked");
    let mut bin = post("/", "image/png", b"4111111111111111");
    m.mask(&mut bin);
    assert_eq!(bin.request.unwrap().body.bytes, b"4111111111111111");
    assert_eq!((m.stats().bodies_skipped_grpc, m.stats().bodies_skipped_binary), (1, 1));

    let policy = r#"
        [[rule]]
        name = "drop-payments-grpc"
        target = "grpc"
        patterns = ["^/payments\\."]
        action = "drop_body"
        [[rule]]
        name = "drop-health"
        target = "path"
        patterns = ["^/healthz"]
        action = "drop_exchange"
    "#;
    let mut m = masker_with(policy, true);
    let mut other = mk("/pkg.Svc/Get");
    m.mask(&mut other);
    assert_eq!(other.request.unwrap().body.bytes, grpc_body);
    let mut pay = mk("/payments.Svc/Pay");
    assert!(m.mask(&mut pay));
    let req = pay.request.unwrap();
    assert!(req.body.bytes.is_empty());
    assert_eq!(req.body.full_len, grpc_body.len() as u64);
    assert_eq!(pay.masked_by, ["@request-body:dropped", "auth-headers", "drop-payments-grpc"]);
    let mut batch = vec![get("/healthz", vec![], b""), get("/x", vec![], b"")];
    m.mask_batch(&mut batch);
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].request.as_ref().unwrap().path, b"/x");
    let s = m.stats();
    assert_eq!((s.exchanges_dropped, s.bodies_dropped), (1, 1));
    assert_eq!(s.by_rule.get("drop-health"), Some(&1));
}

#[test]
fn detectors_over_headers_and_text_bodies() {
    let policy = r#"
        [[rule]]
        name = "jwt"
        target = "detector"
        detector = "jwt"
        action = "hash"
        [[rule]]
        name = "bearer"
        target = "detector"
        detector = "bearer"
        action = "redact"
        [[rule]]
        name = "cloud"
        target = "detector"
        detector = "cloud_key"
        action = "redact"
        [[rule]]
        name = "email"
        target = "detector"
        detector = "email"
        action = "hash"
        [[rule]]
        name = "employee-ids"
        target = "detector"
        detector = "regex"
        regex = "emp-[0-9]{6}"
        action = "redact"
    "#;
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
    // Without the default policy, whose detectors would find the same values first.
    let mut m = masker_with(policy, false);
    let text = format!("jwt {jwt} key AKIAIOSFODNN7EXAMPLE mail a.b@c.example id emp-123456 auth bearer abcdefgh1234");
    let mut ex = get("/", vec![Header::new("X-Trace", format!("by a.b@c.example {jwt}"))], b"");
    ex.request.as_mut().unwrap().headers.push(Header::new("content-type", "text/plain"));
    ex.request.as_mut().unwrap().body = whole(text.as_bytes());
    m.mask(&mut ex);
    let req = ex.request.unwrap();
    let hasher = Hasher::new(&MaskKey::new(TEST_KEY.to_vec()).unwrap());
    let (tj, te) = (hasher.token(jwt.as_bytes()), hasher.token(b"a.b@c.example"));
    assert_eq!(String::from_utf8(req.headers[0].value.clone()).unwrap(), format!("by {te} {tj}"));
    assert_eq!(
        String::from_utf8(req.body.bytes).unwrap(),
        format!("jwt {tj} key [REDACTED] mail {te} id [REDACTED] auth bearer [REDACTED]")
    );
    assert_eq!(ex.masked_by, ["bearer", "cloud", "email", "employee-ids", "jwt"]);
    assert!(ex.flags.contains(Flags::MASKED));
}

#[test]
fn no_key_no_hash_and_clean_exchanges_are_untouched() {
    let file = Policy::parse_file("p", "[[rule]]\nname='h'\ntarget='header'\nnames=['x']\naction='hash'\n").unwrap();
    let p = Policy::build(false, Some(file)).unwrap();
    assert!(matches!(Masker::new(p, None), Err(PolicyError::NoKey(r)) if r == "h"));
    let default = Policy::default_policy();
    assert!(
        matches!(Masker::new(default, None), Err(PolicyError::NoKey(r)) if r == "auth-headers"),
        "the default hashes"
    );
    let mut m = masker();
    let clean = get("/index.html?a=1", vec![Header::new("Host", "x"), Header::new("Accept", "*/*")], b"");
    let mut ex = clean.clone();
    assert!(m.mask(&mut ex));
    assert_eq!(ex, clean);
    let s = m.stats();
    assert_eq!((s.exchanges_seen, s.exchanges_masked, s.values_masked), (1, 0, 0));
}

/// A JSON value with planted secret-keyed members: (document, planted values).
fn json_doc() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-z ]{0,12}".prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,8}", inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Places `"<key>": "<secret>"` members into objects of `v` (creating one at the root if needed).
fn plant(v: &mut Value, keys: &[String], secret: &str, n: &mut usize) {
    match v {
        Value::Object(map) => {
            let k = keys[*n % keys.len()].clone();
            map.insert(k, Value::from(format!("{secret}{n}")));
            *n += 1;
            for (_, c) in map.iter_mut() {
                plant(c, keys, secret, n);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| plant(c, keys, secret, n)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The memos (names, whole header lists, values found clean) never change a result: a run of messages on a
    /// few connections, whose fields and values change from one message to the next (cards among them), is
    /// masked by one masker exactly as by a fresh masker for every message.
    #[test]
    fn a_masker_that_remembers_masks_like_a_fresh_one(
        messages in prop::collection::vec(
            (0u64..3, prop::collection::vec((0usize..5, 0usize..6), 0..7)), 1..40),
    ) {
        let names = ["Host", "Date", "X-Request-Id", "Authorization", "Content-Type"];
        // Pairs of the same length, one clean and one with a card (Luhn-valid), so that only the bytes tell.
        let values = [
            "4111 1111 1111 1112",
            "4111 1111 1111 1111",
            "ref 4111111111111112 end",
            "ref 4111111111111111 end",
            "Sat, 21 Nov 2026 20:00:47 GMT",
            "Sat, 21 Nov 2026 20:00:48 GMT",
        ];
        let mut kept = masker();
        for (conn, fields) in messages {
            let headers: Vec<Header> = fields.iter().map(|&(n, v)| Header::new(names[n], values[v])).collect();
            let mut a = response(headers.clone(), whole(b""));
            a.connection_id = conn;
            let mut b = a.clone();
            prop_assert_eq!(kept.mask(&mut a), masker().mask(&mut b));
            let (ha, hb) = (&a.response.as_ref().unwrap().headers, &b.response.as_ref().unwrap().headers);
            prop_assert_eq!(ha, hb);
            prop_assert_eq!(&a.masked_by, &b.masked_by);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random documents with secrets planted under secret-like keys (any case): after masking, no planted value is
    /// left, every planted key is still there with `"[REDACTED]"`, and the rest of the document is unchanged.
    #[test]
    fn planted_keys_in_random_json_are_masked(
        doc in json_doc(),
        keys in prop::collection::vec(prop_oneof![
            Just("password"), Just("Password"), Just("client_secret"), Just("accessToken"), Just("X-API-KEY"),
            Just("db_passwd"), Just("privateKey")
        ].prop_map(String::from), 1..4),
    ) {
        let mut root = match doc { Value::Object(_) => doc, other => serde_json::json!({ "data": other }) };
        let mut n = 0;
        plant(&mut root, &keys, "PLANTED-s3cr3t-", &mut n);
        let text = serde_json::to_vec(&root).unwrap();
        let mut ex = post("/", "application/json", &text);
        let mut m = masker();
        prop_assert!(m.mask(&mut ex));
        let out = ex.request.unwrap().body.bytes;
        prop_assert!(memchr::memmem::find(&out, b"PLANTED").is_none(), "{}", String::from_utf8_lossy(&out));
        // Expected: the same document with every planted member's value replaced, built without the masker.
        // Password-like keys are redacted, token-like keys get keyed tokens; `fired` collects the rules.
        fn expect(v: &mut Value, fired: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    for (k, c) in map.iter_mut() {
                        if let Some(s) = c.as_str().filter(|s| s.starts_with("PLANTED")) {
                            let password = ["password", "Password", "db_passwd", "privateKey"].contains(&k.as_str());
                            *c = Value::from(if password { "[REDACTED]".to_string() } else { tok(s) });
                            fired.push(if password { "secret-json-keys" } else { "token-json-keys" }.to_string());
                        } else {
                            expect(c, fired);
                        }
                    }
                }
                Value::Array(items) => items.iter_mut().for_each(|c| expect(c, fired)),
                _ => {}
            }
        }
        // Random keys may themselves look secret (e.g. "token"): those values are masked too, so compare only
        // when no random key is secret-like.
        let got: Value = serde_json::from_slice(&out).unwrap();
        let mut want = root.clone();
        let mut fired = Vec::new();
        expect(&mut want, &mut fired);
        fired.sort();
        fired.dedup();
        let secretish = |k: &str| ["pass", "pwd", "secret", "token", "key", "credential", "session", "cvv", "cvc", "authorization"]
            .iter().any(|s| k.to_ascii_lowercase().contains(s));
        fn keys_of(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => m.iter().for_each(|(k, c)| { out.push(k.clone()); keys_of(c, out) }),
                Value::Array(a) => a.iter().for_each(|c| keys_of(c, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        keys_of(&root, &mut all);
        let planted: Vec<String> = keys.clone();
        if all.iter().all(|k| planted.contains(k) || !secretish(k)) {
            prop_assert_eq!(got, want);
            prop_assert_eq!(ex.masked_by, fired);
        }
    }
}

#[test]
fn a_batch_keeps_its_order_and_loses_only_dropped_exchanges() {
    let policy = "[[rule]]\nname='no-internal'\ntarget='path'\npatterns=['^/internal/']\naction='drop_exchange'\n";
    let mut m = masker_with(policy, true);
    let paths = ["/internal/0", "/a", "/b", "/internal/3", "/c", "/d", "/e", "/internal/7", "/internal/8", "/f"];
    let mut batch: Vec<Exchange> = paths.iter().map(|p| get(p, vec![], b"")).collect();
    m.mask_batch(&mut batch);
    let left: Vec<String> =
        batch.iter().map(|e| String::from_utf8_lossy(&e.request.as_ref().unwrap().path).into_owned()).collect();
    assert_eq!(left, ["/a", "/b", "/c", "/d", "/e", "/f"]);
    assert_eq!(m.stats().exchanges_dropped, 4);
    // The next batch starts afresh.
    let mut batch: Vec<Exchange> = ["/g", "/internal/x"].iter().map(|p| get(p, vec![], b"")).collect();
    m.mask_batch(&mut batch);
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].request.as_ref().unwrap().path, b"/g");
}

/// The exchange of the ingest benchmark (`GET /small.txt` from nginx: a 600-byte text file), for the timing below.
fn bench_exchange() -> Exchange {
    let body: Vec<u8> = (1..=8)
        .flat_map(|i| {
            format!("{i:04} Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n").into_bytes()
        })
        .collect();
    let resp = Response {
        status: 200,
        reason: b"OK".to_vec(),
        headers: vec![
            Header::new("Server", "nginx"),
            Header::new("Date", "Sat, 21 Nov 2026 20:00:47 GMT"),
            Header::new("Content-Type", "text/plain"),
            Header::new("Content-Length", "600"),
            Header::new("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            Header::new("Connection", "keep-alive"),
            Header::new("ETag", "\"65920080-258\""),
            Header::new("Accept-Ranges", "bytes"),
        ],
        body: whole(&body),
        ..Response::default()
    };
    let mut ex = get("/small.txt", vec![Header::new("Host", "127.0.0.1:18080")], b"");
    ex.response = Some(resp);
    ex
}

/// Time per exchange of the default policy on the benchmark's exchange, caches warm (the masking part of the
/// ingest benchmark, without its cache misses). `cargo test --release -p agent --lib mask::tests::time_ -- --ignored --nocapture`
#[test]
#[ignore = "a timing, not a test: run by hand in release"]
fn time_default_policy_on_the_bench_exchange() {
    let mut m = masker();
    let mut batch: Vec<Exchange> = (0..512).map(|_| bench_exchange()).collect();
    // The best of several passes (the machine may be shared).
    let per = (0..30)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..100 {
                m.mask_batch(&mut batch);
            }
            start.elapsed().as_nanos() as f64 / (100 * 512) as f64
        })
        .fold(f64::INFINITY, f64::min);
    assert_eq!(batch.len(), 512);
    assert!(batch.iter().all(|e| e.masked_by.is_empty()));
    println!("default policy: {per:.0} ns per exchange");
}

#[test]
fn bodies_are_looked_at_by_media_type_in_any_case() {
    let cases: [(&str, Kind); 10] = [
        ("TEXT/Plain; charset=utf-8", Kind::Text { sniff: true }),
        ("Application/GRPC+proto", Kind::Grpc),
        ("application/json", Kind::Json),
        ("application/vnd.api+JSON; charset=utf-8", Kind::Json),
        ("Application/X-WWW-Form-Urlencoded", Kind::Form),
        ("multipart/form-data; boundary=xyz", Kind::Multipart(Some(b"xyz".to_vec()))),
        ("  ", Kind::Text { sniff: true }),
        ("application/XML", Kind::Text { sniff: false }),
        ("image/png", Kind::Binary),
        ("text", Kind::Binary),
    ];
    for (ct, kind) in cases {
        assert_eq!(kind_of(Some(ct.as_bytes())), kind, "{ct}");
    }
    assert_eq!(kind_of(None), Kind::Text { sniff: true });
}
