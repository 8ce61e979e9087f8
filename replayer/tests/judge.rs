//! `replayer run` judging the answers: captures built here, replayed by the binary against a target on 127.0.0.1
//! whose answers the test switches; exit codes, reports, JUnit (checked with Python's junitparser).

mod judge_support;

use std::io::Write;
use std::time::Duration;

use judge_support::*;

const ORDER: &str = r#"{"id":17,"name":"widget","at":"2023-11-14T22:13:20Z","items":[{"sku":"a","qty":2}]}"#;

fn one_order() -> (tempfile::TempDir, std::path::PathBuf) {
    capture(&[get(1, 0, 0, "/orders/17", ORDER), get(1, 1, 10, "/health", r#"{"ok":true}"#)])
}

fn same(g: &Got) -> Reply {
    if g.path == "/health" { Reply::json(200, r#"{"ok": true}"#) } else { Reply::json(200, ORDER) }
}

#[test]
fn same_answers_pass_and_exit_zero() {
    let (_tmp, dir) = one_order();
    let t = Target::start(same);
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1", "--fail-if", "errors > 0"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j = &rep["judge"];
    assert_eq!((j["judged"].as_u64(), j["passed"].as_u64(), j["failed"].as_u64()), (Some(2), Some(2), Some(0)), "{j}");
    assert_eq!(j["pass_rate"], 1.0);
    assert!(j["gates"].as_array().unwrap().iter().all(|g| g["failed"] == false));
    assert!(String::from_utf8_lossy(&o.stdout).contains("judged 2 exchanges: 2 passed, 0 failed"), "{}", text(&o));
}

#[test]
fn gates_that_hold_say_ok_with_the_value() {
    let (_tmp, dir) = one_order();
    let t = Target::start(same);
    let (o, _) = run(&dir, &t.url(), &["--fail-if", "errors > 0", "--fail-if", "requests < 1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("  gate ok: errors > 0 is false (0)\n"), "{out}");
    assert!(out.contains("  gate ok: requests < 1 is false (2)\n"), "{out}");
}

#[test]
fn a_gzipped_answer_is_decoded_before_comparing() {
    let (_tmp, dir) = one_order();
    let t = Target::start(|g| {
        let mut r = same(g);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&r.body).unwrap();
        r.body = enc.finish().unwrap();
        r.headers.push(("content-encoding".into(), "gzip".into()));
        r
    });
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(rep["judge"]["compare"]["bodies_json"], 2);
}

#[test]
fn a_changed_field_fails_with_a_diff_naming_the_path() {
    let (_tmp, dir) = one_order();
    let t = Target::start(|g| {
        if g.path == "/health" {
            Reply::json(200, r#"{"ok":true}"#)
        } else {
            Reply::json(200, &ORDER.replace("\"qty\":2", "\"qty\":3"))
        }
    });
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 0.99"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let j = &rep["judge"];
    assert_eq!((j["passed"].as_u64(), j["failed"].as_u64()), (Some(1), Some(1)));
    let ex = &j["exchanges"][0];
    assert_eq!(ex["passed"], false);
    assert_eq!(ex["diffs"][0]["field"], "$.items[0].qty");
    assert_eq!((ex["diffs"][0]["recorded"].as_str(), ex["diffs"][0]["live"].as_str()), (Some("2"), Some("3")));
    assert_eq!(j["endpoints"][0]["endpoint"], "GET /orders/{n}", "worst endpoint first");
    assert_eq!(j["endpoints"][0]["failing_fields"]["$.items[*].qty"], 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("$.items[0].qty: 2 -> 3"), "{out}");
    assert!(out.contains("  gate FAILED: pass_rate < 0.99 is true (0.5)\n"), "the gate says what happened: {out}");
    assert!(!out.contains('\u{1b}'), "no colours when not on a terminal");
}

#[test]
fn no_judge_only_replays() {
    // The same changed answer as above, replayed as a load test: nothing is judged, the run passes, and judging
    // flags are refused next to --no-judge.
    let (_tmp, dir) = one_order();
    let t = Target::start(|g| {
        if g.path == "/health" {
            Reply::json(200, r#"{"ok":true}"#)
        } else {
            Reply::json(200, &ORDER.replace("\"qty\":2", "\"qty\":3"))
        }
    });
    let (o, rep) = run(&dir, &t.url(), &["--no-judge"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(rep["judge"].is_null(), "{rep}");
    assert!(rep["requests"].as_u64().unwrap_or(0) >= 1, "{rep}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_replayer"))
        .args(["run", "x", "--target", "http://127.0.0.1:1", "--no-judge", "--fail-if", "errors > 0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", String::from_utf8_lossy(&refused.stderr));
}

#[test]
fn a_timestamp_is_ignored_by_rule_or_learned_as_noise_from_a_baseline() {
    let (tmp, dir) = one_order();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let fresh_time = move |g: &Got| {
        if g.path == "/health" {
            return Reply::json(200, r#"{"ok":true}"#);
        }
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Reply::json(200, &ORDER.replace("2023-11-14T22:13:20Z", &format!("2026-01-01T00:00:{n:02}Z")))
    };
    let t = Target::start(fresh_time.clone());
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1"]);
    assert_eq!(o.status.code(), Some(3), "without a rule the time stamp fails: {}", text(&o));
    assert_eq!(rep["judge"]["exchanges"][0]["diffs"][0]["field"], "$.at");

    let (o, _) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1", "--ignore-json", "$.at"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let rules = tmp.path().join("rules.toml");
    std::fs::write(&rules, "[[endpoint]]\nmethod = \"GET\"\npath = \"/orders/*\"\nignore_json = [\"$.at\"]\n").unwrap();
    let (o, _) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1", "--rules", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Learned: the baseline (old build) also answers with a fresh time stamp.
    let baseline = Target::start(fresh_time);
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1", "--baseline", &baseline.url()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let j = &rep["judge"];
    assert_eq!(j["noise"]["GET /orders/{n}"], serde_json::json!(["$.at"]), "{j}");
    assert_eq!(j["noise_ignored"], 1);
    assert_eq!(baseline.log.lock().unwrap().len(), 2, "every request went to the baseline too");
    assert!(String::from_utf8_lossy(&o.stdout).contains("noise learned from the baseline"), "{}", text(&o));

    // Noise does not hide a real regression elsewhere in the same answer.
    t.set(|g| {
        if g.path == "/health" {
            return Reply::json(200, r#"{"ok":true}"#);
        }
        Reply::json(200, &ORDER.replace("2023-11-14T22:13:20Z", "2030-01-01T00:00:00Z").replace("widget", "gadget"))
    });
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1", "--baseline", &baseline.url()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let diffs = rep["judge"]["exchanges"][0]["diffs"].as_array().unwrap().clone();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0]["field"], "$.name");
}

#[test]
fn a_slower_endpoint_fails_the_latency_gate() {
    // Recorded latency 50 ms for every request.
    let exs: Vec<Ex> = (0..10)
        .map(|i| {
            let mut e = get(1, i, u64::from(i) * 10, if i % 2 == 0 { "/slow" } else { "/fast" }, "{}");
            e.latency_ms = 50;
            e
        })
        .collect();
    let (_tmp, dir) = capture(&exs);
    let t = Target::start(|_| Reply::json(200, "{}"));
    let gate = ["--fail-if", "p95_latency_delta > 100%"];
    let (o, rep) = run(&dir, &t.url(), &gate);
    assert_eq!(o.status.code(), Some(0), "a fast target passes: {}", text(&o));
    assert!(rep["judge"]["latency"]["delta"][1].as_f64().unwrap() < 1.0);
    t.set(|g| {
        let mut r = Reply::json(200, "{}");
        if g.path == "/slow" {
            r.delay = Duration::from_millis(300);
        }
        r
    });
    let (o, rep) = run(&dir, &t.url(), &gate);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let delta = rep["judge"]["latency"]["delta"][1].as_f64().unwrap();
    assert!(delta > 3.0, "p95 300 ms against 50 ms recorded: {delta}");
    assert_eq!(rep["judge"]["pass_rate"], 1.0, "the answers themselves are the same");
    let slow =
        rep["judge"]["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == "GET /slow").unwrap().clone();
    assert!(slow["p95_latency_ms"].as_f64().unwrap() >= 290.0, "{slow}");
}

#[test]
fn a_5xx_fails_the_status_gate_and_errors_fail_the_error_gate() {
    let (_tmp, dir) = one_order();
    let t =
        Target::start(
            |g| if g.path == "/health" { Reply::json(503, r#"{"ok":false}"#) } else { Reply::json(200, ORDER) },
        );
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "status_5xx > 0"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(rep["judge"]["status_5xx"], 1);
    let diffs = &rep["judge"]["exchanges"][0]["diffs"];
    assert_eq!(diffs[0]["field"], "status", "{diffs}");

    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (o, rep) = run(&dir, &format!("http://{closed}"), &["--fail-if", "errors > 0"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(rep["judge"]["errors"], 2);
    assert_eq!(rep["judge"]["endpoints"][0]["failing_fields"]["(no response)"], 1);
}

#[test]
fn exit_codes_are_as_documented() {
    let (tmp, dir) = one_order();
    let t = Target::start(same);
    // 0: ran, no gate failed (answers may differ without gates).
    t.set(|_| Reply::json(200, "{}"));
    let (o, _) = run(&dir, &t.url(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // 3: a gate failed.
    let (o, _) = run(&dir, &t.url(), &["--fail-if", "failed >= 1"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // 2: bad flags, naming the gate and the accepted metrics and operators.
    let (o, _) = run(&dir, &t.url(), &["--fail-if", "pass_ratio < 1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--fail-if") && err.contains("pass_ratio") && err.contains("status_5xx") && err.contains(">="),
        "{err}"
    );
    let (o, _) = run(&dir, &t.url(), &["--ignore-json", "id"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // 1: could not run: a rules file with an unknown key, named with the file.
    let rules = tmp.path().join("bad.toml");
    std::fs::write(&rules, "ignore_json = []\n[[endpoint]]\npath = \"/x\"\nignore_jsn = [\"$.a\"]\n").unwrap();
    let (o, _) = run(&dir, &t.url(), &["--rules", rules.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml") && err.contains("ignore_jsn"), "{err}");
    // The help lists them.
    let o = replayer().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("3 when a --fail-if gate failed") && help.contains("2 for bad flags"), "{help}");
}

#[test]
fn junit_has_one_case_per_endpoint_with_the_diff() {
    let (tmp, dir) = one_order();
    let t = Target::start(|g| {
        if g.path == "/health" {
            Reply::json(200, r#"{"ok":true}"#)
        } else {
            Reply::json(200, &ORDER.replace("widget", "gadget"))
        }
    });
    let junit = tmp.path().join("junit.xml");
    let (o, _) = run(&dir, &t.url(), &["--junit", junit.to_str().unwrap(), "--fail-if", "pass_rate < 0.9"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let have = std::process::Command::new("python3").args(["-c", "import junitparser"]).output();
    if !have.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var("TAPEDECK_CI").as_deref() != Ok("1"),
            "python3 with junitparser is required under TAPEDECK_CI=1 (python3 -m pip install junitparser)"
        );
        eprintln!("skipped: python3 -c 'import junitparser' failed (python3 -m pip install junitparser)");
        return;
    }
    let script = r#"
import sys, junitparser
xml = junitparser.JUnitXml.fromfile(sys.argv[1])
for suite in xml:
    for case in suite:
        res = case.result
        kinds = ",".join(type(r).__name__ for r in res)
        text = "|".join((r.message or "") + "~" + (r.text or "").replace("\n", "\\n") for r in res)
        print(f"{case.classname};{case.name};{kinds};{text}")
"#;
    let o = std::process::Command::new("python3").args(["-c", script]).arg(&junit).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let orders = lines.iter().find(|l| l.contains(";GET /orders/{n};")).unwrap();
    assert!(orders.starts_with("tapedeck.endpoint;") && orders.contains(";Failure;"), "{orders}");
    assert!(
        orders.contains("1 of 1 exchanges failed") && orders.contains("$.name: \"widget\" -> \"gadget\""),
        "{orders}"
    );
    let health = lines.iter().find(|l| l.contains(";GET /health;")).unwrap();
    assert!(health.contains(";;"), "passed: no result: {health}");
    let gate = lines.iter().find(|l| l.contains("gate: pass_rate < 0.9")).unwrap();
    assert!(gate.contains("Failure"), "{gate}");
}

#[test]
fn judging_with_a_baseline_writes_har_of_the_target_pass_only_and_keeps_the_rate_limit() {
    let (tmp, dir) = one_order();
    let t = Target::start(same);
    // The baseline answers a different name: learned as noise, and never what the HAR file shows.
    let baseline = Target::start(|g: &Got| {
        if g.path == "/health" {
            Reply::json(200, r#"{"ok":true}"#)
        } else {
            Reply::json(200, &ORDER.replace("widget", "gizmo"))
        }
    });
    let har = tmp.path().join("replay.har");
    let started = std::time::Instant::now();
    let (o, rep) = run(
        &dir,
        &t.url(),
        &[
            "--baseline",
            &baseline.url(),
            "--har",
            har.to_str().unwrap(),
            "--max-rate",
            "5",
            "--progress",
            "lines",
            "--fail-if",
            "pass_rate < 1",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(baseline.log.lock().unwrap().len(), 2, "every request went to the baseline");
    assert_eq!(t.log.lock().unwrap().len(), 2, "and to the target");
    // 4 requests at 5/s: the token bucket holds both passes back (its first token is free, so >= 0.2 s).
    assert!(started.elapsed() >= Duration::from_millis(200), "--max-rate applies: {:?}", started.elapsed());
    let j = &rep["judge"];
    assert_eq!((j["judged"].as_u64(), j["passed"].as_u64()), (Some(2), Some(2)), "{j}");
    assert_eq!(rep["requests"], 2, "the report counts the target pass only: {rep}");
    assert_eq!(rep["extra"]["har"]["entries"], 2, "HAR entries from the target pass only: {rep}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
    let entries = v["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let bodies: Vec<&str> = entries.iter().filter_map(|e| e["response"]["content"]["text"].as_str()).collect();
    assert!(bodies.iter().any(|b| b.contains("widget")), "the target's answer: {bodies:?}");
    assert!(bodies.iter().all(|b| !b.contains("gizmo")), "no baseline answer: {bodies:?}");
}

/// A gRPC frame: flag 0 and the length, then the message.
fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v
}

/// Three unary calls on one HTTP/2 connection, each answered with field 1 = "hello" (`\x0a\x05hello`) and
/// the trailers `trailers`.
fn grpc_calls(trailers: &[(&str, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let exs: Vec<Ex> = (0..3)
        .map(|i| {
            let mut e = get(1, i, u64::from(i) * 10, "/helloworld.Greeter/SayHello", "");
            e.proto = tapedeck_model::Protocol::H2;
            e.method = "POST".into();
            e.req_headers = vec![("content-type".into(), "application/grpc".into()), ("te".into(), "trailers".into())];
            e.req_body = grpc_frame(b"\x0a\x05world");
            e.resp_headers = vec![("content-type".into(), "application/grpc".into())];
            e.resp_body = grpc_frame(b"\x0a\x05hello");
            e.resp_trailers = trailers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
            e
        })
        .collect();
    capture(&exs)
}

fn grpc_reply(msg: &[u8], trailers: &[(&str, &str)]) -> Reply {
    Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/grpc".into())],
        body: grpc_frame(msg),
        trailers: trailers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        delay: Duration::ZERO,
    }
}

#[test]
fn a_grpc_string_changed_with_the_same_length_fails() {
    let (_tmp, dir) = grpc_calls(&[("grpc-status", "0")]);
    let t = Target::start(|_| grpc_reply(b"\x0a\x05hello", &[("grpc-status", "0")]));
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1"]);
    assert_eq!(o.status.code(), Some(0), "the same answer passes: {}", text(&o));
    assert_eq!(rep["judge"]["compare"]["bodies_grpc"], 3, "{rep}");
    assert_eq!(t.log.lock().unwrap()[0].body, grpc_frame(b"\x0a\x05world"), "the request was sent as recorded");

    // Same sizes, same status: only the contents differ.
    t.set(|_| grpc_reply(b"\x0a\x05HOWDY", &[("grpc-status", "0")]));
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let j = &rep["judge"];
    assert_eq!((j["passed"].as_u64(), j["failed"].as_u64()), (Some(0), Some(3)), "{j}");
    let d = &j["exchanges"][0]["diffs"][0];
    assert_eq!(d["field"], "$.message[0].#1", "{d}");
    assert_eq!((d["recorded"].as_str(), d["live"].as_str()), (Some("\"hello\""), Some("\"HOWDY\"")), "{d}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("$.message[0].#1: \"hello\" -> \"HOWDY\""), "{}", text(&o));
    assert_eq!(j["endpoints"][0]["failing_fields"]["$.message[*].#1"], 3, "{j}");

    // The field can be ignored as a JSON path is.
    let (o, _) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1", "--ignore-json", "$.message[*].#1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_changed_trailer_fails_when_chosen() {
    let (_tmp, dir) = grpc_calls(&[("grpc-status", "0"), ("x-served-by", "a1")]);
    let t = Target::start(|_| grpc_reply(b"\x0a\x05hello", &[("grpc-status", "0"), ("x-served-by", "b2")]));
    let (o, _) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1"]);
    assert_eq!(o.status.code(), Some(0), "not a chosen header: {}", text(&o));
    for chosen in ["x-served-by", "*"] {
        let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1", "--header", chosen]);
        assert_eq!(o.status.code(), Some(3), "--header {chosen}: {}", text(&o));
        let diffs = &rep["judge"]["exchanges"][0]["diffs"];
        assert_eq!(diffs.as_array().map(Vec::len), Some(1), "--header {chosen}: {diffs}");
        assert_eq!(diffs[0]["field"], "trailer:x-served-by", "{diffs}");
        assert_eq!((diffs[0]["recorded"].as_str(), diffs[0]["live"].as_str()), (Some("a1"), Some("b2")));
    }
}

#[test]
fn a_changed_grpc_message_in_the_trailers_fails() {
    let (_tmp, dir) = grpc_calls(&[("grpc-status", "3"), ("grpc-message", "bad%20name")]);
    let t = Target::start(|_| grpc_reply(b"\x0a\x05hello", &[("grpc-status", "3"), ("grpc-message", "bad%20name")]));
    let (o, _) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    t.set(|_| grpc_reply(b"\x0a\x05hello", &[("grpc-status", "3"), ("grpc-message", "name%20too%20long")]));
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let d = &rep["judge"]["exchanges"][0]["diffs"];
    assert_eq!(d.as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(d[0]["field"], "grpc-message", "{d}");
    assert_eq!((d[0]["recorded"].as_str(), d[0]["live"].as_str()), (Some("bad name"), Some("name too long")), "{d}");
}
