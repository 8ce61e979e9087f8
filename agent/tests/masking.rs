//! Masking end to end: a capture with secrets planted in every place the rules cover (headers, cookies, query,
//! nested JSON, urlencoded and multipart forms, a gzip-encoded JSON response, text bodies) is recorded by the agent
//! binary; then every segment block is decompressed and searched: none of the planted values may be found, the
//! expected markers and tokens must be (tokens computed here with HMAC-SHA256 directly, not by the masker).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tapedeck_model::Flags;
use tapedeck_model::segment::{SegmentReader, list_segments};
use tapedeck_testgen::tcp::{Capture, Conn, Endpoint};

const KEY: &[u8] = b"integration-test-key-0123456789";

/// Values that must not survive masking.
const PLANTED: &[&str] = &[
    "PLANTauthBEARER1",
    "PLANTproxyBASIC2",
    "PLANTcookieSID3",
    "PLANTsetcookie4",
    "PLANTapikey5",
    "PLANTquerytoken6",
    "PLANTjsonpw7",
    "PLANTjsonrefresh8",
    "PLANTformpw9",
    "PLANTmultipartpw10",
    "PLANTgzipToken11",
    "PLANTdropped12",
    "4111 1111 1111 1111",
    "5500005555555559",
    "3782-822463-10005",
    "jane.doe@example.org",
    "PLANTuserid13",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVCJ9.c2lnbmF0dXJlMTQ",
];

fn token(value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(KEY).unwrap();
    mac.update(value.as_bytes());
    let out = mac.finalize().into_bytes();
    format!("tdk_{}", out[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: api.example\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut b = r.into_bytes();
    b.extend_from_slice(body);
    b
}

fn response(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = "HTTP/1.1 200 OK\r\n".to_string();
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut b = r.into_bytes();
    b.extend_from_slice(body);
    b
}

fn build_capture(path: &Path) {
    let jwt = PLANTED[17];
    let multipart = concat!(
        "--BOUND\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\njane\r\n",
        "--BOUND\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nPLANTmultipartpw10\r\n",
        "--BOUND\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\npaid with 3782-822463-10005\r\n",
        "--BOUND--\r\n"
    );
    let exchanges: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (
            request(
                "GET",
                "/search?q=shoes&access_token=PLANTquerytoken6&page=2",
                &[
                    ("Authorization", "Bearer PLANTauthBEARER1"),
                    ("Proxy-Authorization", "Basic PLANTproxyBASIC2"),
                    ("Cookie", "sid=PLANTcookieSID3; theme=dark"),
                    ("X-Api-Key", "PLANTapikey5"),
                    ("X-User-Id", "PLANTuserid13"),
                    ("X-Trace", &format!("jwt={jwt}")),
                ],
                b"",
            ),
            response(
                &[("Set-Cookie", "sid=PLANTsetcookie4; Path=/"), ("Content-Type", "text/plain")],
                b"receipt for card 4111 1111 1111 1111, mail jane.doe@example.org",
            ),
        ),
        (
            request(
                "POST",
                "/login",
                &[("Content-Type", "application/json"), ("X-User-Id", "PLANTuserid13")],
                br#"{"user":{"name":"jane","profile":{"password":"PLANTjsonpw7"}},"items":[{"card":"5500005555555559","qty":2}],"session":{"refresh_token":"PLANTjsonrefresh8"},"contact":"jane.doe@example.org"}"#,
            ),
            response(&[("Content-Type", "application/json")], br#"{"ok":true}"#),
        ),
        (
            request(
                "POST",
                "/form",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"user=jane&password=PLANTformpw9&remember=1",
            ),
            response(&[], b""),
        ),
        (
            request("POST", "/upload", &[("Content-Type", "multipart/form-data; boundary=BOUND")], multipart.as_bytes()),
            response(&[], b""),
        ),
        (
            request("GET", "/token", &[], b""),
            response(
                &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                &gzip(br#"{"access_token":"PLANTgzipToken11","expires":3600,"clean":"visible-marker-xyz"}"#),
            ),
        ),
        (
            request("POST", "/internal/debug", &[("Content-Type", "text/plain")], b"PLANTdropped12"),
            response(&[], b""),
        ),
    ];
    let f = std::fs::File::create(path).unwrap();
    let mut cap = Capture::new(std::io::BufWriter::new(f)).unwrap();
    let mut c =
        Conn::new(Endpoint { ip: [10, 0, 0, 1], port: 40000 }, Endpoint { ip: [10, 0, 0, 2], port: 8080 }, 1000, 5000);
    c.handshake(&mut cap).unwrap();
    for (req, resp) in &exchanges {
        c.client_data(&mut cap, req).unwrap();
        c.server_data(&mut cap, resp).unwrap();
    }
    c.close(&mut cap).unwrap();
    cap.finish().unwrap().flush().unwrap();
}

const POLICY: &str = r#"
# Extends the default policy.
[[rule]]
name = "user-ids"
target = "header"
names = ["x-user-id"]
action = "hash"

[[rule]]
name = "emails"
target = "detector"
detector = "email"
action = "hash"

[[rule]]
name = "jwts"
target = "detector"
detector = "jwt"
action = "redact"

[[rule]]
name = "no-internal"
target = "path"
patterns = ["^/internal/"]
action = "drop_exchange"
"#;

struct Run {
    segments: Vec<PathBuf>,
    stats: serde_json::Value,
    _dir: tempfile::TempDir,
}

fn run_agent(extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("secrets.pcap");
    build_capture(&pcap);
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, [KEY, b"\n"].concat()).unwrap();
    let out = dir.path().join("segments");
    let stats = dir.path().join("stats.json");
    let o = Command::new(env!("CARGO_BIN_EXE_agent"))
        .arg("--pcap")
        .arg(&pcap)
        .arg("--out")
        .arg(&out)
        .arg("--stats-json")
        .arg(&stats)
        .arg("--mask-policy")
        .arg(&policy)
        .arg("--mask-key-file")
        .arg(&key)
        .args(extra)
        .env_remove("TAPEDECK_MASK_KEY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    Run { segments: list_segments(&out).unwrap(), stats, _dir: dir }
}

/// Every byte a reader could get from the segments: each file's bytes with every block decompressed.
fn decompressed(segments: &[PathBuf]) -> Vec<u8> {
    let mut all = Vec::new();
    for s in segments {
        let file = std::fs::read(s).unwrap();
        all.extend_from_slice(&file);
        let r = SegmentReader::open(s).unwrap();
        assert!(!r.blocks().is_empty());
        for b in r.blocks() {
            let at = b.offset as usize + 48;
            let payload = &file[at..at + b.stored_len as usize];
            match b.codec {
                0 => all.extend_from_slice(payload),
                1 => all.extend(zstd::bulk::decompress(payload, b.raw_len as usize).unwrap()),
                c => panic!("codec {c}"),
            }
        }
    }
    all
}

fn count(hay: &[u8], needle: &str) -> usize {
    memchr::memmem::find_iter(hay, needle.as_bytes()).count()
}

#[test]
fn no_planted_secret_reaches_a_segment() {
    let run = run_agent(&[]);
    let bytes = decompressed(&run.segments);
    // The capture really went through: clean values are there.
    assert!(count(&bytes, "/search?q=shoes") == 1);
    for p in PLANTED {
        assert_eq!(count(&bytes, p), 0, "planted value {p:?} found in the segments");
    }
    // Redacted: the JWT (the policy's `jwts` rule redacts), three cards, two passwords (and the urlencoded one).
    assert_eq!(count(&bytes, "[REDACTED]"), 6);
    assert_eq!(count(&bytes, "password=%5BREDACTED%5D"), 1, "the urlencoded password");
    // Keyed tokens, each of the credential alone (the scheme word of `Authorization` is kept).
    for (secret, n) in [
        ("PLANTauthBEARER1", 1),
        ("PLANTproxyBASIC2", 1),
        ("PLANTcookieSID3", 1),
        ("PLANTsetcookie4", 1),
        ("PLANTapikey5", 1),
        ("PLANTquerytoken6", 1),
        ("PLANTjsonrefresh8", 1),
        ("dark", 1),
    ] {
        assert_eq!(count(&bytes, &token(secret)), n, "{secret}");
    }
    assert_eq!(count(&bytes, &format!("Bearer {}", token("PLANTauthBEARER1"))), 1);
    assert_eq!(count(&bytes, &format!("Basic {}", token("PLANTproxyBASIC2"))), 1);
    // The user id was sent twice (two exchanges): the same token both times; the e-mail three times.
    assert_eq!(count(&bytes, &token("PLANTuserid13")), 2);
    assert_eq!(count(&bytes, &token("jane.doe@example.org")), 2, "text body and JSON string (header had none)");

    // What each exchange says about itself.
    let mut exs = Vec::new();
    for s in &run.segments {
        let mut r = SegmentReader::open(s).unwrap();
        assert_eq!(r.header().masking_fingerprint.len(), 32, "the policy fingerprint is recorded");
        exs.extend(r.exchanges().map(Result::unwrap));
    }
    assert_eq!(exs.len(), 5, "the /internal/ exchange is dropped");
    let by_path = |p: &str| exs.iter().find(|e| e.request.as_ref().unwrap().path.starts_with(p.as_bytes())).unwrap();
    let first = by_path("/search");
    assert!(first.flags.contains(Flags::MASKED));
    assert_eq!(
        first.masked_by,
        ["auth-headers", "cookies", "emails", "jwts", "payment-cards", "token-query-params", "user-ids"]
    );
    let req = first.request.as_ref().unwrap();
    assert_eq!(req.path, format!("/search?q=shoes&access_token={}&page=2", token("PLANTquerytoken6")).as_bytes());
    assert_eq!(
        first.response.as_ref().unwrap().body.bytes,
        format!("receipt for card [REDACTED], mail {}", token("jane.doe@example.org")).as_bytes()
    );
    let login = by_path("/login");
    let body: serde_json::Value = serde_json::from_slice(&login.request.as_ref().unwrap().body.bytes).unwrap();
    assert_eq!(body["user"]["profile"]["password"], "[REDACTED]");
    assert_eq!(body["items"][0]["card"], "[REDACTED]");
    assert_eq!(body["items"][0]["qty"], 2);
    assert_eq!(body["session"]["refresh_token"], token("PLANTjsonrefresh8"));
    let gz = by_path("/token");
    assert!(gz.masked_by.contains(&"@response-body:re-encoded:gzip".to_string()), "{:?}", gz.masked_by);
    let plain = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(&gz.response.as_ref().unwrap().body.bytes[..]).read_to_string(&mut s).unwrap();
        s
    };
    assert_eq!(
        plain,
        format!(r#"{{"access_token":"{}","expires":3600,"clean":"visible-marker-xyz"}}"#, token("PLANTgzipToken11"))
    );

    // The counters.
    let m = &run.stats["masking"];
    assert_eq!(m["exchanges_seen"], 6);
    assert_eq!(m["exchanges_masked"], 6);
    assert_eq!(m["exchanges_dropped"], 1);
    assert_eq!(m["bodies_reencoded"], 1);
    assert_eq!(m["by_rule"]["user-ids"], 2);
    assert_eq!(m["by_rule"]["secret-form-fields"], 2, "urlencoded and multipart");
    assert_eq!(m["by_rule"]["no-internal"], 1);
}

#[test]
fn without_masking_the_planted_values_are_there() {
    // The same capture with masking off: proves the search above can find them.
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("secrets.pcap");
    build_capture(&pcap);
    let out = dir.path().join("segments");
    let o = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["--no-default-masking", "--quiet", "--pcap"])
        .arg(&pcap)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    let segments = list_segments(&out).unwrap();
    let bytes = decompressed(&segments);
    for p in PLANTED.iter().filter(|p| !p.starts_with("PLANTgzip")) {
        assert!(count(&bytes, p) > 0, "{p} not found without masking");
    }
    assert!(SegmentReader::open(&segments[0]).unwrap().header().masking_fingerprint.is_empty());
}

#[test]
fn print_masking_shows_the_effective_rules_and_refuses_bad_policies() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_agent"))
        .arg("--print-masking")
        .arg("--mask-policy")
        .arg(&policy)
        .env("TAPEDECK_MASK_KEY", "env-key-0123456789abcdef")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    for name in ["auth-headers", "payment-cards", "user-ids", "no-internal", "# hash key: set", "# fingerprint"] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(!text.contains("env-key"), "the key is never printed");
    assert!(text.contains("# hash key: set (from TAPEDECK_MASK_KEY)"), "{text}");
    // Without a key, a hash rule gets the installation's key, created at the default path on first use.
    let state = dir.path().join("state");
    let o = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["--print-masking", "--mask-policy"])
        .arg(&policy)
        .env_remove("TAPEDECK_MASK_KEY")
        .env_remove("STATE_DIRECTORY")
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let key_path = state.join("tapedeck/mask.key");
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains(&format!("# hash key: set ({} (created now", key_path.display())), "{text}");
    assert!(!text.contains(std::fs::read_to_string(&key_path).unwrap().trim_end()), "the key is never printed");
    // An unknown key in the file is refused before reading anything.
    std::fs::write(&policy, "[[rule]]\nname='x'\ntarget='header'\nnames=['a']\naction='redact'\nwhen='now'\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_agent"))
        .arg("--print-masking")
        .arg("--mask-policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("when"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A capture of three requests with credentials (two sessions, bearer tokens A and B, A twice) and a JWT and an
/// AWS key id where no rule names them: a custom header, a query value, a text/plain body.
fn build_sessions_capture(path: &Path) {
    let f = std::fs::File::create(path).unwrap();
    let mut cap = Capture::new(std::io::BufWriter::new(f)).unwrap();
    let mut c =
        Conn::new(Endpoint { ip: [10, 0, 0, 1], port: 40001 }, Endpoint { ip: [10, 0, 0, 2], port: 8080 }, 1000, 5000);
    c.handshake(&mut cap).unwrap();
    let jwt = SESSION_SECRETS[2];
    let reqs = [
        request(
            "POST",
            &format!("/a?assertion={}&aws={}", SESSION_SECRETS[3], SESSION_SECRETS[4]),
            &[
                ("Authorization", &format!("Bearer {}", SESSION_SECRETS[0])),
                ("X-Forwarded-Auth", jwt),
                ("Content-Type", "text/plain"),
            ],
            format!("forwarded {} with key {}", SESSION_SECRETS[5], SESSION_SECRETS[6]).as_bytes(),
        ),
        request("GET", "/b", &[("Authorization", &format!("Bearer {}", SESSION_SECRETS[1]))], b""),
        request("GET", "/c", &[("Authorization", &format!("Bearer {}", SESSION_SECRETS[0]))], b""),
    ];
    for req in &reqs {
        c.client_data(&mut cap, req).unwrap();
        c.server_data(&mut cap, &response(&[], b"")).unwrap();
    }
    c.close(&mut cap).unwrap();
    cap.finish().unwrap().flush().unwrap();
}

/// Bearer token A, bearer token B, then JWTs (custom header, query, body) and AWS key ids (query, body).
const SESSION_SECRETS: [&str; 7] = [
    "PLANTsessionAAAA1",
    "PLANTsessionBBBB2",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVGhkciJ9.c2lnUExBTlRoZHI",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVHF1ZXJ5In0.c2lnUExBTlRxdWVyeQ",
    "AKIAPLANT0QUERY00001",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVGJvZHkifQ.c2lnUExBTlRib2R5",
    "AKIAPLANT0BODY000002",
];

fn token_with(key: &[u8], value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(value.as_bytes());
    format!("tdk_{}", mac.finalize().into_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// The default policy with no key given: the installation's key is created on the first run (0600, in a 0700
/// directory, outside the segment directory), its path is shown and the key is not; credentials and the JWTs
/// and AWS key ids no rule names become keyed tokens (two sessions, two tokens; the same session, the same
/// token); a second run reuses the key, so the same secrets get the same tokens.
#[test]
fn the_default_policy_keys_tokens_with_a_key_created_once_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("sessions.pcap");
    build_sessions_capture(&pcap);
    let state = dir.path().join("state");
    let run = |n: usize| {
        let out = dir.path().join(format!("segments{n}"));
        let o = Command::new(env!("CARGO_BIN_EXE_agent"))
            .arg("--pcap")
            .arg(&pcap)
            .arg("--out")
            .arg(&out)
            .env_remove("TAPEDECK_MASK_KEY")
            .env_remove("TAPEDECK_MASK_KEY_FILE")
            .env_remove("STATE_DIRECTORY")
            .env("XDG_STATE_HOME", &state)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (decompressed(&list_segments(&out).unwrap()), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let key_path = state.join("tapedeck/mask.key");
    let (first, stderr1) = run(1);
    assert!(stderr1.contains(&format!("masking key: {} (created now", key_path.display())), "{stderr1}");
    let key_text = std::fs::read_to_string(&key_path).unwrap();
    let key = key_text.trim_end().as_bytes();
    assert_eq!(key.len(), 64, "32 random bytes as hex");
    assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(key_path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    assert!(!stderr1.contains(key_text.trim_end()), "the key is never logged");

    let (second, stderr2) = run(2);
    assert!(stderr2.contains(&format!("masking key: {}", key_path.display())), "{stderr2}");
    assert!(!stderr2.contains("(created now"), "{stderr2}");
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key_text, "the key file is reused, not replaced");

    let (a, b) = (token_with(key, SESSION_SECRETS[0]), token_with(key, SESSION_SECRETS[1]));
    assert_ne!(a, b);
    for bytes in [&first, &second] {
        for secret in SESSION_SECRETS {
            assert_eq!(count(bytes, secret), 0, "{secret} reached a segment");
        }
        assert_eq!(count(bytes, key_text.trim_end()), 0, "the key reached a segment");
        assert_eq!(count(bytes, &format!("Bearer {a}")), 2, "session A twice, the same token");
        assert_eq!(count(bytes, &format!("Bearer {b}")), 1, "session B, another token");
        for secret in &SESSION_SECRETS[2..] {
            assert_eq!(count(bytes, &token_with(key, secret)), 1, "{secret}: a token in its place");
        }
    }
    assert_eq!(first.len(), second.len());
}

/// The benchmark exchange of BENCHMARKS.md (wrk's `GET /small.txt`, nginx's 600-byte text answer), as the
/// writer thread gets it.
fn bench_exchange() -> tapedeck_model::Exchange {
    use tapedeck_model::{Body, Exchange, Header, Protocol, Request, Response, Timing};
    let mut lorem = String::new();
    for i in 1.. {
        if lorem.len() >= 600 {
            break;
        }
        lorem.push_str(&format!("{i:04} Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n"));
    }
    lorem.truncate(599);
    lorem.push('\n');
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 18080));
    let h = |n: &str, v: &str| Header::new(n, v);
    Exchange {
        id: 1,
        connection_id: 1,
        order: 0,
        stream_id: None,
        proto: Protocol::Http11,
        client: addr,
        server: addr,
        timing: Timing::default(),
        request: Some(Request {
            method: b"GET".to_vec(),
            authority: b"127.0.0.1:18080".to_vec(),
            path: b"/small.txt".to_vec(),
            headers: vec![h("Host", "127.0.0.1:18080")],
            ..Request::default()
        }),
        response: Some(Response {
            status: 200,
            reason: b"OK".to_vec(),
            headers: vec![
                h("Server", "nginx"),
                h("Date", "Sat, 21 Nov 2026 20:00:47 GMT"),
                h("Content-Type", "text/plain"),
                h("Content-Length", "600"),
                h("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
                h("Connection", "keep-alive"),
                h("ETag", "\"65920080-258\""),
                h("Accept-Ranges", "bytes"),
            ],
            body: Body { bytes: lorem.into_bytes(), full_len: 600 },
            ..Response::default()
        }),
        flags: Flags::NONE,
        labels: Vec::new(),
        masked_by: Vec::new(),
    }
}

/// Cost of the default policy on an exchange where nothing matches (the benchmark's). Not a pass/fail figure:
/// `cargo test --release -p agent --test masking -- --ignored --nocapture mask_cost`.
#[test]
#[ignore]
fn mask_cost_of_a_clean_exchange() {
    use tapedeck_agent::mask::{MaskKey, Masker, Policy};
    let key = MaskKey::new(KEY.to_vec()).unwrap();
    // The default policy, and the same without the JWT, bearer and cloud-key detectors (as before issue 21).
    let mut cards_only = Policy::default_policy();
    cards_only.rules.retain(|r| !["jwts", "bearer-tokens", "cloud-keys"].contains(&r.name.as_str()));
    let ex = bench_exchange();
    let (rounds, batch_len) = (2000, 128);
    // MASK_COST_ONLY=default or =cards runs one policy only (for instruction counts under callgrind).
    let only = std::env::var("MASK_COST_ONLY").ok();
    for (round, policy) in
        [(0, &cards_only), (1, &Policy::default_policy()), (2, &cards_only), (3, &Policy::default_policy())]
    {
        let mut m = Masker::new(policy.clone(), Some(&key)).unwrap();
        let name = if policy.rules.len() == cards_only.rules.len() { "without the token detectors" } else { "default" };
        if only.as_deref().is_some_and(|o| o != if name == "default" { "default" } else { "cards" }) {
            continue;
        }
        let mut spent = std::time::Duration::ZERO;
        for _ in 0..rounds {
            let mut batch: Vec<_> = (0..batch_len).map(|_| ex.clone()).collect();
            let t = std::time::Instant::now();
            m.mask_batch(&mut batch);
            spent += t.elapsed();
            assert_eq!(batch.len(), batch_len);
            assert!(batch.iter().all(|e| e.masked_by.is_empty()));
        }
        println!("round {round}, {name}: {:.1} ns per exchange", spent.as_nanos() as f64 / (rounds * batch_len) as f64);
    }
}

/// The capture made by real clients (`cargo xtask gen-testdata --only masking-planted.pcap`): curl over HTTP/1.1
/// to a Python server and over h2c to nghttpd, with the planted values listed in its `.secrets` file.
fn planted_capture() -> (PathBuf, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let secrets = std::fs::read_to_string(dir.join("masking-planted.secrets")).unwrap();
    let secrets: Vec<String> = secrets.lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
    assert!(secrets.len() >= 20, "{secrets:?}");
    (dir.join("masking-planted.pcap"), secrets)
}

/// The default policy plus the detector the default leaves off.
const REAL_POLICY: &str = r#"
[[rule]]
name = "emails"
target = "detector"
detector = "email"
action = "hash"
"#;

fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

fn field<'a>(hs: &'a [tapedeck_model::Header], name: &str) -> Option<&'a str> {
    hs.iter().find(|h| h.name.eq_ignore_ascii_case(name.as_bytes())).map(|h| std::str::from_utf8(&h.value).unwrap())
}

#[test]
fn real_clients_planted_secrets_never_reach_a_segment() {
    let (pcap, secrets) = planted_capture();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, REAL_POLICY).unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, KEY).unwrap();
    let out = dir.path().join("segments");
    let o = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["--quiet", "--pcap"])
        .arg(&pcap)
        .arg("--out")
        .arg(&out)
        .arg("--mask-policy")
        .arg(&policy)
        .arg("--mask-key-file")
        .arg(&key)
        .env_remove("TAPEDECK_MASK_KEY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let segments = list_segments(&out).unwrap();

    // Everything a reader could get: every block decompressed, and every gzip body decoded.
    let mut bytes = decompressed(&segments);
    let mut exs = Vec::new();
    for s in &segments {
        exs.extend(SegmentReader::open(s).unwrap().exchanges().map(Result::unwrap));
    }
    assert_eq!(exs.len(), 7, "5 HTTP/1.1 and 2 HTTP/2 exchanges");
    for ex in &exs {
        let msgs =
            [ex.request.as_ref().map(|r| (&r.headers, &r.body)), ex.response.as_ref().map(|r| (&r.headers, &r.body))];
        for (hs, body) in msgs.into_iter().flatten() {
            if field(hs, "content-encoding") == Some("gzip") {
                bytes.extend(gunzip(&body.bytes));
            }
        }
    }
    for s in &secrets {
        for form in [s.clone(), s.replace('@', "%40"), s.replace(' ', "+")] {
            assert_eq!(count(&bytes, &form), 0, "planted value {form:?} found in the segments");
        }
    }
    // The same e-mail, planted three times (form text, gzip JSON, h2 header): the same token each time (each
    // place is checked below; a re-encoded gzip body may also hold it as a stored deflate block, hence >=).
    let email_token = token("jane.doe@example.org");
    assert!(count(&bytes, &email_token) >= 3, "{email_token}");

    let req = |method: &str, path: &str| {
        exs.iter()
            .find(|e| {
                let r = e.request.as_ref().unwrap();
                r.method == method.as_bytes() && r.path.starts_with(path.as_bytes())
            })
            .unwrap_or_else(|| panic!("{method} {path}"))
    };
    // HTTP/1.1: headers, query, cookies.
    let search = req("GET", "/search");
    let r = search.request.as_ref().unwrap();
    assert_eq!(r.path, format!("/search?q=shoes&token={}&page=2", token("PLANTh1QueryTok04")).as_bytes());
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVDE3In0.c2lnUExBTlQxNw";
    for (h, want) in [
        ("authorization", format!("Bearer {}", token("PLANTh1BearerTok01"))),
        ("cookie", format!("theme={}; sid={}", token("dark"), token("PLANTh1CookieSid02"))),
        ("x-api-key", token("PLANTh1ApiKey03")),
        // A JWT in a header no rule names: the default JWT detector.
        ("x-trace-context", token(jwt)),
    ] {
        assert_eq!(field(&r.headers, h), Some(want.as_str()), "{h}");
    }
    assert!(search.masked_by.contains(&"jwts".to_string()), "{:?}", search.masked_by);
    assert_eq!(field(&r.headers, "host"), Some("127.0.0.1:18090"), "clean headers untouched");
    // JSON nested deep, a card and a cloud key inside JSON strings; Set-Cookie and a token in the response.
    let login = req("POST", "/login");
    let body: serde_json::Value = serde_json::from_slice(&login.request.as_ref().unwrap().body.bytes).unwrap();
    assert_eq!(body["user"]["profile"]["settings"]["password"], "[REDACTED]");
    assert_eq!(body["user"]["profile"]["settings"]["lang"], "en");
    assert_eq!(body["items"][0]["card"], "[REDACTED]");
    assert_eq!(body["items"][0]["qty"], 2);
    assert_eq!(body["note"], format!("key {}", token("AKIAPLANT0AWSKEY0009")));
    let resp = login.response.as_ref().unwrap();
    let set_cookie = format!("session_id={}; Path=/; HttpOnly", token("PLANTsetCookie10"));
    assert_eq!(field(&resp.headers, "set-cookie"), Some(set_cookie.as_str()));
    let rbody: serde_json::Value = serde_json::from_slice(&resp.body.bytes).unwrap();
    assert_eq!(rbody["access_token"], token("PLANTrespToken11"));
    assert_eq!(rbody["user"]["name"], "jane");
    // Forms.
    let form = req("POST", "/form");
    assert_eq!(
        String::from_utf8_lossy(&form.request.as_ref().unwrap().body.bytes),
        format!("username=jane&password=%5BREDACTED%5D&comment=write+to+{email_token}")
    );
    let upload = req("POST", "/upload");
    let multipart = String::from_utf8_lossy(&upload.request.as_ref().unwrap().body.bytes).into_owned();
    let key_part = format!("name=\"api_key\"\r\n\r\n{}\r\n", token("PLANTmultipartKey07"));
    assert!(multipart.contains(&key_part), "{multipart}");
    assert!(multipart.contains("name=\"note\"\r\n\r\ncard [REDACTED]\r\n"), "{multipart}");
    assert!(multipart.contains("name=\"user\"\r\n\r\njane\r\n"), "{multipart}");
    // gzip-encoded JSON both ways, masked and encoded again.
    let tok = req("POST", "/token");
    let treq = tok.request.as_ref().unwrap();
    let plain: serde_json::Value = serde_json::from_slice(&gunzip(&treq.body.bytes)).unwrap();
    assert_eq!(plain["client_secret"], token("PLANTgzipSecret08"));
    assert_eq!(plain["contact"], email_token.as_str());
    let tresp = tok.response.as_ref().unwrap();
    let plain: serde_json::Value = serde_json::from_slice(&gunzip(&tresp.body.bytes)).unwrap();
    assert_eq!(plain["refresh_token"], token("PLANTgzipResp12"));
    assert_eq!(plain["expires"], 3600);
    assert!(tok.masked_by.contains(&"@request-body:re-encoded:gzip".to_string()), "{:?}", tok.masked_by);
    assert!(tok.masked_by.contains(&"@response-body:re-encoded:gzip".to_string()), "{:?}", tok.masked_by);
    // HTTP/2: HPACK-coded headers, query, JSON body.
    let h2get = req("GET", "/hello.txt");
    assert_eq!(h2get.proto, tapedeck_model::Protocol::H2);
    let r = h2get.request.as_ref().unwrap();
    assert_eq!(
        r.path,
        format!("/hello.txt?api_key={}&card=%5BREDACTED%5D&q=ok", token("PLANTh2QueryKey15")).as_bytes()
    );
    assert_eq!(field(&r.headers, "authorization"), Some(format!("Basic {}", token("PLANTh2Basic13")).as_str()));
    assert_eq!(field(&r.headers, "cookie"), Some(format!("session={}", token("PLANTh2Cookie14")).as_str()));
    assert_eq!(field(&r.headers, "x-contact"), Some(email_token.as_str()));
    let h2post = req("POST", "/hello.txt");
    let body: serde_json::Value = serde_json::from_slice(&h2post.request.as_ref().unwrap().body.bytes).unwrap();
    // `credentials` is itself a secret-like key: the whole object is redacted, keeping its type.
    assert_eq!(body["credentials"], serde_json::json!({}));
    assert_eq!(body["clean"], "visible-h2-marker");
    assert!(exs.iter().all(|e| e.flags.contains(Flags::MASKED)), "every exchange had something planted");
}

#[test]
fn real_clients_capture_holds_the_planted_values_without_masking() {
    // Proves the search above can find them: with masking off, each planted value (decoded) is there.
    let (pcap, secrets) = planted_capture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("segments");
    let o = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["--no-default-masking", "--quiet", "--pcap"])
        .arg(&pcap)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    let segments = list_segments(&out).unwrap();
    let mut bytes = decompressed(&segments);
    for s in &segments {
        for ex in SegmentReader::open(s).unwrap().exchanges().map(Result::unwrap) {
            for (hs, body) in [ex.request.map(|r| (r.headers, r.body)), ex.response.map(|r| (r.headers, r.body))]
                .into_iter()
                .flatten()
            {
                if field(&hs, "content-encoding") == Some("gzip") {
                    bytes.extend(gunzip(&body.bytes));
                }
            }
        }
    }
    for s in &secrets {
        let found = count(&bytes, s) + count(&bytes, &s.replace('@', "%40"));
        assert!(found > 0, "{s} not found without masking");
    }
}
