//! Correlation end to end: a recorded POST that created an order and the requests that used its id, replayed by
//! the binary against a target that issues new ids. With correlation the later requests carry the new id and
//! every answer passes; without it they fail.

mod judge_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use judge_support::*;

fn order_capture() -> (tempfile::TempDir, std::path::PathBuf) {
    let mut create = get(1, 0, 0, "/orders", r#"{"id":"ord-1001","sku":"a"}"#);
    create.method = "POST".into();
    create.req_body = br#"{"sku":"a"}"#.to_vec();
    create.status = 201;
    create.resp_headers.push(("location".into(), "/orders/ord-1001".into()));
    let read = get(1, 1, 20, "/orders/ord-1001", r#"{"id":"ord-1001","sku":"a","state":"new"}"#);
    let mut pay = get(1, 2, 40, "/orders/ord-1001/pay", r#"{"paid":true}"#);
    pay.method = "POST".into();
    pay.req_body = br#"{"order":"ord-1001"}"#.to_vec();
    capture(&[create, read, pay])
}

/// A shop that numbers its orders from 5001.
fn shop() -> Target {
    let orders: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    Target::start(move |g| {
        let mut o = orders.lock().unwrap();
        let parts: Vec<&str> = g.path.trim_start_matches('/').split('/').collect();
        match (g.method.as_str(), parts.as_slice()) {
            ("POST", ["orders"]) => {
                let id = format!("ord-{}", 5001 + o.len());
                o.insert(id.clone(), "a".into());
                let mut r = Reply::json(201, &format!(r#"{{"id":"{id}","sku":"a"}}"#));
                r.headers.push(("location".into(), format!("/orders/{id}")));
                r
            }
            ("GET", ["orders", id]) if o.contains_key(*id) => {
                Reply::json(200, &format!(r#"{{"id":"{id}","sku":"a","state":"new"}}"#))
            }
            ("POST", ["orders", id, "pay"])
                if o.contains_key(*id) && g.body == format!(r#"{{"order":"{id}"}}"#).as_bytes() =>
            {
                Reply::json(200, r#"{"paid":true}"#)
            }
            _ => Reply::json(404, r#"{"error":"no such order"}"#),
        }
    })
}

#[test]
fn a_post_then_get_passes_against_a_target_that_issues_new_ids() {
    let (_tmp, dir) = order_capture();
    let t = shop();
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1", "--header", "location"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let paths: Vec<String> = t.log.lock().unwrap().iter().map(|g| g.path.clone()).collect();
    assert_eq!(paths, vec!["/orders", "/orders/ord-5001", "/orders/ord-5001/pay"]);
    let c = &rep["judge"]["correlation"];
    assert_eq!(c["substituted"], 3, "GET path, pay path, pay body: {c}");
    let places: Vec<String> = c["by_field"].as_object().unwrap().keys().cloned().collect();
    assert!(places.iter().any(|p| p.ends_with("-> path")) && places.iter().any(|p| p.ends_with("-> body")), "{c}");
    assert!(rep["judge"]["correlated_ignored"].as_u64().unwrap() >= 1, "the new id in the answers is expected");
    assert!(String::from_utf8_lossy(&o.stdout).contains("correlation: 3 values substituted"), "{}", text(&o));

    // Without correlation the recorded id goes out and the shop does not know it.
    let t = shop();
    let (o, rep) = run(&dir, &t.url(), &["--fail-if", "pass_rate < 1", "--no-correlate"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(rep["judge"]["failed"], 3, "POST id, GET 404, pay 404");
    let paths: Vec<String> = t.log.lock().unwrap().iter().map(|g| g.path.clone()).collect();
    assert_eq!(paths[1], "/orders/ord-1001");
}

#[test]
fn an_extract_rule_carries_a_short_token_into_later_headers() {
    let mut login = get(1, 0, 0, "/login", r#"{"auth":{"token":"t1"}}"#);
    login.method = "POST".into();
    let mut me = get(1, 1, 20, "/me", r#"{"user":"ann"}"#);
    me.req_headers = vec![("authorization".into(), "Bearer t1".into())];
    let (_tmp, dir) = capture(&[login, me]);
    let target = || {
        Target::start(|g| match g.path.as_str() {
            "/login" => Reply::json(200, r#"{"auth":{"token":"z9"}}"#),
            "/me" if g.headers.iter().any(|(n, v)| n == "authorization" && v == "Bearer z9") => {
                Reply::json(200, r#"{"user":"ann"}"#)
            }
            _ => Reply::json(401, r#"{"error":"who are you"}"#),
        })
    };
    // Two characters: too short to be correlated automatically.
    let (o, _) = run(&dir, &target().url(), &["--fail-if", "failed > 0", "--ignore-json", "$.auth.token"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let (o, rep) = run(
        &dir,
        &target().url(),
        &["--fail-if", "failed > 0", "--ignore-json", "$.auth.token", "--extract", "tok=$.auth.token"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(rep["judge"]["correlation"]["by_field"]["{{tok}} -> header:authorization"], 1, "{}", rep["judge"]);
}
