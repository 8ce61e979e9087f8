//! Behaviour tests of the HTTP/1 connection parser on literal HTTP text: every feature, gaps, garbage, resync,
//! switches, and the "shotgun" check that where the streams are cut into calls never changes the exchanges.

use proptest::prelude::*;
use tapedeck_model::{Exchange, Flags, Header, Protocol, Timestamp};

use super::{Http1Config, Http1Conn, Http1Stats, Switch};
use crate::stream::{ConnInfo, Side};

#[derive(Clone, Debug)]
enum Step {
    C(Vec<u8>),
    S(Vec<u8>),
    GapC(u64),
    GapS(u64),
    FinC,
    FinS,
    Reset,
    Close,
}

use Step::{Close, FinC, FinS, GapC, GapS, Reset};

fn c(s: &str) -> Step {
    Step::C(s.as_bytes().to_vec())
}

fn s(x: &str) -> Step {
    Step::S(x.as_bytes().to_vec())
}

fn cb(b: &[u8]) -> Step {
    Step::C(b.to_vec())
}

fn sb(b: &[u8]) -> Step {
    Step::S(b.to_vec())
}

fn info(mid_stream: bool) -> ConnInfo {
    ConnInfo {
        id: 7,
        client: "10.0.0.1:40000".parse().expect("literal address"),
        server: "10.0.0.2:80".parse().expect("literal address"),
        mid_stream,
    }
}

/// The capture time of step `i`.
fn ts(i: usize) -> Timestamp {
    Timestamp((i as u64 + 1) * 1000)
}

#[derive(Debug)]
struct Run {
    ex: Vec<Exchange>,
    switches: Vec<Switch>,
    stats: Http1Stats,
    /// How many exchanges had been emitted after each step.
    after: Vec<usize>,
}

type Splitter<'a> = &'a dyn Fn(usize, &[u8]) -> Vec<Vec<u8>>;

fn run_with(steps: &[Step], cfg: &Http1Config, mid_stream: bool, split: Splitter<'_>) -> Run {
    let mut conn = Http1Conn::new(cfg, info(mid_stream));
    let mut out = Vec::new();
    let mut switches = Vec::new();
    let mut after = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let t = ts(i);
        match step {
            Step::C(b) | Step::S(b) => {
                let side = if matches!(step, Step::C(_)) { Side::Client } else { Side::Server };
                for piece in split(i, b) {
                    // Like the session: once switched, a side's bytes go to the next protocol, here appended to
                    // the rest the switch handed over.
                    if let Some(Switch::H2cUpgrade { client_rest, server_rest, .. }) = switches.last_mut() {
                        match side {
                            Side::Client => client_rest.extend_from_slice(&piece),
                            Side::Server => server_rest.extend_from_slice(&piece),
                        }
                        continue;
                    }
                    if let Some(sw) = conn.data(side, &piece, t, &mut out) {
                        switches.push(sw);
                    }
                }
            }
            GapC(n) => conn.gap(Side::Client, *n, t, &mut out),
            GapS(n) => conn.gap(Side::Server, *n, t, &mut out),
            FinC => conn.fin(Side::Client, t, &mut out),
            FinS => conn.fin(Side::Server, t, &mut out),
            Reset => conn.reset(t, &mut out),
            Close => conn.close(t, &mut out),
        }
        after.push(out.len());
    }
    Run { ex: out, switches, stats: conn.stats().clone(), after }
}

fn whole(_: usize, b: &[u8]) -> Vec<Vec<u8>> {
    vec![b.to_vec()]
}

fn run(steps: &[Step]) -> Run {
    run_with(steps, &Http1Config::default(), false, &whole)
}

fn req(e: &Exchange) -> &tapedeck_model::Request {
    e.request.as_ref().expect("exchange has a request")
}

fn resp(e: &Exchange) -> &tapedeck_model::Response {
    e.response.as_ref().expect("exchange has a response")
}

fn path(e: &Exchange) -> String {
    String::from_utf8_lossy(&req(e).path).into_owned()
}

fn h(n: &str, v: &str) -> Header {
    Header::new(n, v)
}

// ===== the reference conversation =====

/// A conversation with most features: pipelining, HEAD, 100-continue, chunked with extensions and trailers on
/// both sides, bare LF and folding, 204 and 304 with misleading lengths, and a close-delimited HTTP/1.0 ending.
fn conversation() -> Vec<Step> {
    vec![
        c("GET /one HTTP/1.1\r\nHost: example.com\r\n\r\nHEAD /two HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
        c("POST /three HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"),
        s("HTTP/1.1 100 Continue\r\n\r\n"),
        c("4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: t\r\n\r\n"),
        s(
            "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\nA;n=\"v\"\r\n0123456789\r\n0\r\n\r\n",
        ),
        c("GET /four HTTP/1.1\nHost: example.com\nX-Folded: a\n b\n\nGET /five HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        s(
            "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
        ),
        c("\r\nGET /six HTTP/1.1\r\nHost: example.com\r\n\r\n"),
        s("HTTP/1.0 200 OK\r\nServer: old\r\n\r\nclose-delimited body\r\nHTTP/1.1 200 not a head"),
        FinS,
        FinC,
        Close,
    ]
}

#[test]
fn conversation_exchanges() {
    let r = run(&conversation());
    assert_eq!(r.ex.len(), 6, "{:#?}", r.ex);
    let paths: Vec<String> = r.ex.iter().map(path).collect();
    assert_eq!(paths, ["/one", "/two", "/three", "/four", "/five", "/six"]);
    for (i, e) in r.ex.iter().enumerate() {
        assert_eq!(e.order, i as u32);
        assert_eq!(e.connection_id, 7);
        assert_eq!(e.id, 0);
        assert_eq!(e.stream_id, None);
        assert_eq!(e.proto, Protocol::Http11);
        assert_eq!(e.client, info(false).client);
        assert_eq!(e.server, info(false).server);
        assert!(e.labels.is_empty());
        assert_eq!(e.flags, Flags::NONE, "exchange {i}");
        assert_eq!(req(e).authority, b"example.com");
        let method: &[u8] = match i {
            1 => b"HEAD",
            2 => b"POST",
            _ => b"GET",
        };
        assert_eq!(req(e).method, method);
    }
    // Emitted as soon as each response is complete.
    assert_eq!(r.after, [0, 2, 2, 2, 2, 3, 3, 5, 5, 5, 6, 6, 6]);

    let one = &r.ex[0];
    assert_eq!(resp(one).status, 200);
    assert_eq!(resp(one).reason, b"OK");
    assert_eq!(resp(one).body.bytes, b"hello");
    assert_eq!(resp(one).headers, vec![h("Content-Length", "5")]);
    assert_eq!(req(one).headers, vec![h("Host", "example.com")]);
    assert_eq!(one.timing.request_first, Some(ts(0)));
    assert_eq!(one.timing.request_last, Some(ts(0)));
    assert_eq!(one.timing.response_first, Some(ts(1)));
    assert_eq!(one.timing.response_last, Some(ts(1)));

    let two = &r.ex[1];
    assert!(resp(two).body.bytes.is_empty());
    assert_eq!(resp(two).body.full_len, 0);

    let three = &r.ex[2];
    assert_eq!(req(three).body.bytes, b"abcdefg");
    assert_eq!(req(three).body.full_len, 7);
    assert_eq!(req(three).trailers, vec![h("X-Trailer", "t")]);
    assert_eq!(resp(three).status, 201);
    assert_eq!(resp(three).body.bytes, b"first0123456789");
    assert_eq!(resp(three).interim.len(), 1);
    assert_eq!(resp(three).interim[0].status, 100);
    assert_eq!(resp(three).interim[0].at, Some(ts(3)));
    assert_eq!(three.timing.request_first, Some(ts(2)));
    assert_eq!(three.timing.request_last, Some(ts(4)));
    assert_eq!(three.timing.response_first, Some(ts(5)));
    assert_eq!(three.timing.response_last, Some(ts(5)));

    let four = &r.ex[3];
    assert_eq!(req(four).headers, vec![h("Host", "example.com"), h("X-Folded", "a b")]);
    assert_eq!(resp(four).status, 204);
    assert!(resp(four).body.bytes.is_empty());
    assert_eq!(resp(&r.ex[4]).status, 304);

    let six = &r.ex[5];
    assert_eq!(resp(six).body.bytes, b"close-delimited body\r\nHTTP/1.1 200 not a head");
    assert_eq!(six.timing.response_last, Some(ts(9)));

    assert_eq!(r.stats.requests, 6);
    assert_eq!(r.stats.responses, 6);
    assert_eq!(r.stats.interim, 1);
    assert_eq!(r.stats.exchanges, 6);
    assert_eq!(r.stats.lenient_heads, 1);
    assert_eq!(r.stats.parse_errors, 0);
    assert_eq!(r.stats.resyncs, 0);
}

// ===== the shotgun: every way of cutting the streams gives the same exchanges =====

fn split_at(item: usize, at: usize) -> impl Fn(usize, &[u8]) -> Vec<Vec<u8>> {
    move |i, b| {
        if i == item && at < b.len() { vec![b[..at].to_vec(), b[at..].to_vec()] } else { vec![b.to_vec()] }
    }
}

fn pieces_of(n: usize) -> impl Fn(usize, &[u8]) -> Vec<Vec<u8>> {
    move |_, b| b.chunks(n).map(<[u8]>::to_vec).collect()
}

fn assert_same(base: &Run, other: &Run, what: &str) {
    assert_eq!(base.ex, other.ex, "{what}");
    assert_eq!(base.switches, other.switches, "{what}");
    assert_eq!(base.stats, other.stats, "{what}");
}

fn shotgun(steps: &[Step], cfg: &Http1Config, mid_stream: bool) -> Run {
    let base = run_with(steps, cfg, mid_stream, &whole);
    for (i, step) in steps.iter().enumerate() {
        if let Step::C(b) | Step::S(b) = step {
            for at in 1..b.len() {
                let r = run_with(steps, cfg, mid_stream, &split_at(i, at));
                assert_same(&base, &r, &format!("step {i} cut at {at}"));
            }
        }
    }
    for n in 1..=9 {
        let r = run_with(steps, cfg, mid_stream, &pieces_of(n));
        assert_same(&base, &r, &format!("pieces of {n}"));
    }
    base
}

#[test]
fn shotgun_conversation() {
    let base = shotgun(&conversation(), &Http1Config::default(), false);
    assert_eq!(base.ex.len(), 6);
}

/// Garbage, a gap and a resync, pipelined requests, a 1xx, a truncated body: cut anywhere, same result.
fn rough_conversation() -> Vec<Step> {
    vec![
        c("GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n0123456789ab"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        sb(b"\x00\x01garbage\r\nxHTTP/1.1 200 no\r\nmore junk HTTP/1.1 103 Early\r\nLink: x\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"),
        c("GET /c HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"),
        GapS(5),
        s("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        c("GET /d HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nCont"),
        GapS(100),
        s("tent\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\nbad"),
        Close,
    ]
}

#[test]
fn rough_conversation_exchanges() {
    let cfg = Http1Config { max_body: 8, ..Http1Config::default() };
    let r = run_with(&rough_conversation(), &cfg, false, &whole);
    assert_eq!(r.ex.len(), 6, "{:#?}", r.ex);
    // /a answered by the first 200.
    assert_eq!(path(&r.ex[0]), "/a");
    assert_eq!(resp(&r.ex[0]).body.bytes, b"ok");
    assert_eq!(r.ex[0].flags, Flags::NONE);
    // /b: its body was cut at the cap; garbage came before its response, found by resync, with the 103 kept.
    let b = &r.ex[1];
    assert_eq!(path(b), "/b");
    assert_eq!(req(b).body.bytes, b"01234567");
    assert_eq!(req(b).body.full_len, 12);
    assert_eq!(resp(b).status, 200);
    assert_eq!(resp(b).body.bytes, b"x");
    assert_eq!(resp(b).interim.len(), 1);
    assert_eq!(resp(b).interim[0].status, 103);
    assert_eq!(resp(b).interim[0].headers, vec![h("Link", "x")]);
    assert_eq!(b.flags, Flags::TRUNCATED | Flags::PARSE_ERROR);
    // /c: a gap inside a Content-Length body; framing continues.
    let cc = &r.ex[2];
    assert_eq!(path(cc), "/c");
    assert_eq!(resp(cc).body.bytes, b"01234");
    assert_eq!(resp(cc).body.full_len, 10);
    assert_eq!(cc.flags, Flags::GAP);
    // The 404 after the /c gap has no request left (the /d request comes later).
    let orphan = &r.ex[3];
    assert!(orphan.request.is_none());
    assert_eq!(resp(orphan).status, 404);
    assert_eq!(orphan.flags, Flags::NO_REQUEST);
    // /d: its response head was cut by a gap; its status line was captured, so /d keeps that 200 (flagged),
    // and the 500 found by resync after the gap answers no request seen.
    let d = &r.ex[4];
    assert_eq!(path(d), "/d");
    assert_eq!(resp(d).status, 200);
    assert_eq!(d.flags, Flags::GAP | Flags::INCOMPLETE);
    let late = &r.ex[5];
    assert!(late.request.is_none());
    assert_eq!(resp(late).status, 500);
    assert_eq!(resp(late).body.bytes, b"bad");
    assert!(late.flags.contains(Flags::NO_REQUEST));
    assert_eq!(r.ex.iter().map(|e| e.order).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);

    assert_eq!(r.stats.parse_errors, 1);
    assert_eq!(r.stats.resyncs, 2);
    assert_eq!(r.stats.gaps, 2);
    assert_eq!(r.stats.gap_bytes, 105);
    assert_eq!(r.stats.incomplete_heads, 1);
    assert_eq!(r.stats.truncated_bodies, 1);
    assert_eq!(r.stats.unmatched_responses, 2);
    assert_eq!(r.stats.salvaged_heads, 1);
    assert_eq!(r.stats.interim, 1);
    let skipped_garbage = b"\x00\x01garbage\r\nxHTTP/1.1 200 no\r\nmore junk ".len() as u64;
    // The partial head's whole line was salvaged; "tent\r\n\r\n" was skipped after the gap.
    let skipped_after_gap = "tent\r\n\r\n".len() as u64;
    assert_eq!(r.stats.resync_skipped_bytes, skipped_garbage + skipped_after_gap);
}

#[test]
fn shotgun_rough_conversation() {
    let cfg = Http1Config { max_body: 8, ..Http1Config::default() };
    let base = shotgun(&rough_conversation(), &cfg, false);
    assert_eq!(base.ex.len(), 6);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn random_splits_give_the_same_exchanges(sizes in prop::collection::vec(1usize..40, 1..30)) {
        for (steps, cfg) in [
            (conversation(), Http1Config::default()),
            (rough_conversation(), Http1Config { max_body: 8, ..Http1Config::default() }),
        ] {
            let base = run_with(&steps, &cfg, false, &whole);
            let cut = |_: usize, b: &[u8]| {
                let mut v = Vec::new();
                let mut at = 0;
                let mut k = 0;
                while at < b.len() {
                    let n = sizes[k % sizes.len()].min(b.len() - at);
                    v.push(b[at..at + n].to_vec());
                    at += n;
                    k += 1;
                }
                v
            };
            let r = run_with(&steps, &cfg, false, &cut);
            prop_assert_eq!(&base.ex, &r.ex);
            prop_assert_eq!(&base.stats, &r.stats);
        }
    }
}

// ===== single features =====

#[test]
fn keep_alive_emits_each_exchange_when_its_response_completes() {
    let r = run(&[
        c("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab"),
        s("c"),
        c("GET /y HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(r.after, [0, 0, 1, 1, 2]);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"abc");
    assert_eq!(r.ex[0].timing.response_first, Some(ts(1)));
    assert_eq!(r.ex[0].timing.response_last, Some(ts(2)));
}

#[test]
fn pipelined_requests_pair_in_order() {
    let r = run(&[
        c("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1HTTP/1.1 201 OK\r\nContent-Length: 1\r\n\r\n2"),
        s("HTTP/1.1 202 OK\r\nContent-Length: 1\r\n\r\n3"),
    ]);
    let got: Vec<(String, u16, Vec<u8>)> =
        r.ex.iter().map(|e| (path(e), resp(e).status, resp(e).body.bytes.clone())).collect();
    assert_eq!(
        got,
        [("/1".into(), 200, b"1".to_vec()), ("/2".into(), 201, b"2".to_vec()), ("/3".into(), 202, b"3".to_vec())]
    );
    assert_eq!(r.after, [0, 2, 3]);
}

#[test]
fn http10_close_delimited_response_ends_at_fin() {
    let r = run(&[
        c("GET /old HTTP/1.0\r\n\r\n"),
        s("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst "),
        s("second"),
        FinS,
    ]);
    assert_eq!(r.after, [0, 0, 0, 1]);
    let e = &r.ex[0];
    assert_eq!(e.proto, Protocol::Http10);
    assert_eq!(resp(e).body.bytes, b"first second");
    assert_eq!(e.flags, Flags::NONE);
    assert!(req(e).authority.is_empty());
    // The end is the last byte seen, not the FIN.
    assert_eq!(e.timing.response_last, Some(ts(2)));
}

#[test]
fn close_delimited_response_without_fin_is_incomplete_at_close() {
    let r = run(&[c("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), s("HTTP/1.1 200 OK\r\n\r\npartial"), Close]);
    assert_eq!(r.ex.len(), 1);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"partial");
    assert_eq!(r.ex[0].flags, Flags::INCOMPLETE);
}

#[test]
fn close_delimited_response_cut_by_reset_is_incomplete() {
    let r = run(&[c("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), s("HTTP/1.1 200 OK\r\n\r\npartial"), Reset]);
    assert_eq!(r.ex.len(), 1);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"partial");
    assert_eq!(r.ex[0].flags, Flags::RESET | Flags::INCOMPLETE);
    assert_eq!(r.stats.incomplete_messages, 1);
}

#[test]
fn reset_flags_what_is_open() {
    let r = run(&[
        c("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"),
        Reset,
    ]);
    assert_eq!(r.ex.len(), 2);
    assert_eq!(r.ex[0].flags, Flags::RESET | Flags::INCOMPLETE);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"0123");
    assert_eq!(r.ex[1].flags, Flags::RESET | Flags::NO_RESPONSE);
    assert!(r.ex[1].response.is_none());
    assert_eq!(r.stats.unanswered_requests, 1);
    assert_eq!(r.stats.incomplete_messages, 1);
}

#[test]
fn request_body_cut_by_fin_is_incomplete() {
    let r = run(&[c("PUT /u HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc"), FinC, FinS]);
    assert_eq!(r.ex.len(), 1);
    assert_eq!(req(&r.ex[0]).body.bytes, b"abc");
    assert_eq!(req(&r.ex[0]).body.full_len, 3);
    assert_eq!(r.ex[0].flags, Flags::INCOMPLETE | Flags::NO_RESPONSE);
}

#[test]
fn response_without_request_and_request_without_response() {
    let r =
        run(&[s("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"), c("GET /never HTTP/1.1\r\nHost: a\r\n\r\n"), Close]);
    assert_eq!(r.ex.len(), 2);
    assert!(r.ex[0].request.is_none());
    assert_eq!(r.ex[0].flags, Flags::NO_REQUEST);
    assert_eq!(r.ex[0].proto, Protocol::Http11);
    assert_eq!(r.ex[0].timing.request_first, None);
    assert_eq!(r.ex[0].timing.response_first, Some(ts(0)));
    assert_eq!(r.ex[0].order, 0);
    assert_eq!(path(&r.ex[1]), "/never");
    assert_eq!(r.ex[1].order, 1);
    assert_eq!(r.ex[1].flags, Flags::NO_RESPONSE);
    assert_eq!(r.stats.unmatched_responses, 1);
    assert_eq!(r.stats.unanswered_requests, 1);
}

#[test]
fn server_fin_flushes_unanswered_requests() {
    let r = run(&[c("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"), FinS]);
    assert_eq!(r.after, [0, 1]);
    assert_eq!(r.ex[0].flags, Flags::NO_RESPONSE);
}

#[test]
fn websocket_upgrade_is_recorded_and_switches_to_a_tunnel() {
    let mut conn = Http1Conn::new(&Http1Config::default(), info(false));
    let mut out = Vec::new();
    let upgrade = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert_eq!(conn.data(Side::Client, upgrade, ts(0), &mut out), None);
    // A frame the client sends early is held, not parsed as HTTP/1.
    assert_eq!(conn.data(Side::Client, b"\x81\x85abcd", ts(1), &mut out), None);
    let sw = conn.data(
        Side::Server,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
        ts(2),
        &mut out,
    );
    assert!(matches!(sw, Some(Switch::Tunnel { .. })), "{sw:?}");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::UPGRADED);
    assert_eq!(resp(&out[0]).status, 101);
    assert_eq!(conn.stats().upgrades, 1);
    assert_eq!(conn.stats().parse_errors, 0);
    // Nothing after the switch is HTTP/1.
    assert_eq!(conn.data(Side::Client, b"GET / HTTP/1.1\r\n\r\n", ts(3), &mut out), None);
    conn.close(ts(4), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(conn.stats().ignored_bytes, 18);
}

#[test]
fn connect_2xx_tunnels_and_407_does_not() {
    let r = run(&[
        c("CONNECT db.example:443 HTTP/1.1\r\nHost: db.example:443\r\n\r\n"),
        s("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"),
        c("CONNECT db.example:443 HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n"),
        cb(b"\x16\x03\x01\x00\x05hello"),
        s("HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x03"),
        Close,
    ]);
    assert!(matches!(r.switches.as_slice(), [Switch::Tunnel { .. }]), "{:?}", r.switches);
    assert_eq!(r.ex.len(), 2);
    assert_eq!(resp(&r.ex[0]).status, 407);
    assert_eq!(r.ex[0].flags, Flags::NONE);
    assert_eq!(resp(&r.ex[1]).status, 200);
    assert_eq!(r.ex[1].flags, Flags::UPGRADED);
    assert_eq!(req(&r.ex[1]).authority, b"db.example:443");
    assert_eq!(r.stats.parse_errors, 0);
}

#[test]
fn h2c_upgrade_hands_over_the_request_and_the_rest() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let mut steps = vec![
        c("GET /first HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1"),
        c(
            "GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        ),
        cb(preface),
    ];
    let mut server = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    server.extend_from_slice(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    steps.push(Step::S(server));
    let r = shotgun(&steps, &Http1Config::default(), false);
    assert_eq!(r.ex.len(), 1, "only the first exchange is HTTP/1's");
    assert_eq!(path(&r.ex[0]), "/first");
    let [Switch::H2cUpgrade { request, timing, order, settings, client_rest, server_rest }] = &r.switches[..] else {
        panic!("expected one h2c switch, got {:?}", r.switches);
    };
    assert_eq!(request.path, b"/up");
    assert_eq!(request.authority, b"a");
    assert_eq!(*order, 1);
    assert_eq!(timing.request_first, Some(ts(2)));
    assert_eq!(timing.request_last, Some(ts(2)));
    assert_eq!(settings.as_deref(), Some(&[0u8, 3, 0, 0, 0, 100, 0, 4, 0, 0, 255, 255][..]));
    assert_eq!(client_rest, preface);
    assert_eq!(server_rest, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    assert_eq!(r.stats.h2c_upgrades, 1);
    assert_eq!(r.stats.upgrades, 1);
    assert_eq!(r.stats.parse_errors, 0);
}

#[test]
fn refused_upgrade_releases_the_held_requests() {
    let r = run(&[
        c(
            "GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        s("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nnoHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes"),
    ]);
    assert!(r.switches.is_empty());
    assert_eq!(r.ex.len(), 2);
    assert_eq!((path(&r.ex[0]), resp(&r.ex[0]).body.bytes.clone()), ("/up".into(), b"no".to_vec()));
    assert_eq!((path(&r.ex[1]), resp(&r.ex[1]).body.bytes.clone()), ("/next".into(), b"yes".to_vec()));
    assert_eq!(r.ex[1].timing.request_first, Some(ts(0)));
}

#[test]
fn held_bytes_are_bounded() {
    let cfg = Http1Config { max_head_bytes: 64, ..Http1Config::default() };
    let mut steps = vec![c("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n")];
    for _ in 0..4 {
        steps.push(c("GET /more HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
    steps.push(Close);
    let r = run_with(&steps, &cfg, false, &whole);
    assert_eq!(r.stats.upgrade_hold_overflows, 1);
    assert_eq!(r.ex.len(), 5);
    assert!(r.ex.iter().all(|e| e.flags == Flags::NO_RESPONSE));
}

#[test]
fn gap_inside_a_length_body_keeps_framing() {
    let r = run(&[
        c("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"),
        GapC(4),
        c("xyzGET /q HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(r.ex.len(), 2);
    assert_eq!(req(&r.ex[0]).body.bytes, b"abc");
    assert_eq!(req(&r.ex[0]).body.full_len, 10);
    assert_eq!(r.ex[0].flags, Flags::GAP);
    assert_eq!(path(&r.ex[1]), "/q");
    assert_eq!(r.ex[1].flags, Flags::NONE);
    assert_eq!(r.stats.resyncs, 0);
}

#[test]
fn gap_that_ends_a_length_body_then_eats_the_next_head() {
    let r = run(&[
        c("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"),
        GapS(30),
        s("garbage tail\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"),
        Close,
    ]);
    assert_eq!(r.ex.len(), 2);
    assert_eq!(resp(&r.ex[0]).body.full_len, 4);
    assert_eq!(r.ex[0].flags, Flags::GAP);
    assert_eq!(resp(&r.ex[1]).body.bytes, b"z");
    assert_eq!(r.ex[1].flags, Flags::NO_REQUEST | Flags::GAP);
    assert_eq!(r.stats.resyncs, 1);
    assert_eq!(r.stats.resync_skipped_bytes, "garbage tail\r\n\r\n".len() as u64);
}

#[test]
fn gap_inside_chunk_data_continues_and_gap_in_chunk_framing_resyncs() {
    let r = run(&[
        c("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n012"),
        GapS(3),
        s("6789\r\n0\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5"),
        GapS(7),
        s("x\r\nHTTP/1.1 204 No Content\r\n\r\n"),
    ]);
    assert_eq!(r.ex.len(), 3, "{:#?}", r.ex);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"012");
    assert_eq!(resp(&r.ex[0]).body.full_len, 10);
    assert_eq!(r.ex[0].flags, Flags::GAP);
    assert_eq!(path(&r.ex[1]), "/b");
    assert_eq!(r.ex[1].flags, Flags::GAP | Flags::INCOMPLETE);
    assert!(r.ex[2].request.is_none());
    assert_eq!(resp(&r.ex[2]).status, 204);
    assert_eq!(r.ex[2].flags, Flags::NO_REQUEST | Flags::GAP);
}

#[test]
fn gap_in_a_close_delimited_body_is_counted() {
    let r = run(&[c("GET / HTTP/1.0\r\n\r\n"), s("HTTP/1.0 200 OK\r\n\r\nabc"), GapS(5), s("def"), FinS]);
    assert_eq!(r.ex.len(), 1);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"abc");
    assert_eq!(resp(&r.ex[0]).body.full_len, 11);
    assert_eq!(r.ex[0].flags, Flags::GAP);
}

#[test]
fn garbage_where_a_head_should_be_resyncs() {
    let r = run(&[
        cb(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfcGET /after HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(r.ex.len(), 1);
    assert_eq!(path(&r.ex[0]), "/after");
    assert_eq!(r.ex[0].flags, Flags::PARSE_ERROR);
    assert_eq!(r.stats.parse_errors, 1);
    assert_eq!(r.stats.resyncs, 1);
    assert_eq!(r.stats.resync_skipped_bytes, 9);
}

#[test]
fn broken_chunked_framing_is_a_parse_error() {
    let r = run(&[
        c("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX"),
        Close,
    ]);
    assert_eq!(r.ex.len(), 1);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"abc");
    assert_eq!(r.ex[0].flags, Flags::PARSE_ERROR | Flags::INCOMPLETE);
    assert_eq!(r.stats.parse_errors, 1);
}

#[test]
fn huge_head_is_an_error_and_parsing_resumes() {
    let cfg = Http1Config { max_head_bytes: 1024, ..Http1Config::default() };
    let mut huge = b"GET /huge HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..200 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(20)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let mut steps = vec![Step::C(huge), c("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")];
    steps.push(s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
    for split in [&whole as Splitter<'_>, &pieces_of(100), &pieces_of(1)] {
        let r = run_with(&steps, &cfg, false, split);
        assert_eq!(r.ex.len(), 1, "{:#?}", r.ex);
        assert_eq!(path(&r.ex[0]), "/ok");
        assert_eq!(r.ex[0].flags, Flags::PARSE_ERROR);
        assert_eq!(r.stats.oversized_heads, 1);
        assert_eq!(r.stats.parse_errors, 1);
    }
}

#[test]
fn mid_stream_connection_starts_by_resynchronising() {
    let r = run_with(
        &[
            c("dy of an earlier request\r\nGET /seen HTTP/1.1\r\nHost: a\r\n\r\n"),
            s(
                "tail of an earlier response HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
        ],
        &Http1Config::default(),
        true,
        &whole,
    );
    assert_eq!(r.ex.len(), 2, "{:#?}", r.ex);
    assert_eq!(path(&r.ex[0]), "/seen");
    assert_eq!(r.ex[0].flags, Flags::MID_STREAM);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"ok");
    assert!(r.ex[1].request.is_none());
    assert_eq!(r.ex[1].flags, Flags::NO_REQUEST);
    assert_eq!(r.stats.parse_errors, 0);
}

#[test]
fn body_is_truncated_at_the_cap() {
    let cfg = Http1Config { max_body: 4, ..Http1Config::default() };
    let r = run_with(
        &[c("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), s("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")],
        &cfg,
        false,
        &whole,
    );
    assert_eq!(resp(&r.ex[0]).body.bytes, b"0123");
    assert_eq!(resp(&r.ex[0]).body.full_len, 10);
    assert_eq!(r.ex[0].flags, Flags::TRUNCATED);
    assert_eq!(r.stats.truncated_bodies, 1);
}

#[test]
fn pipeline_overflow_flushes_the_oldest() {
    let cfg = Http1Config { max_pipelined: 2, ..Http1Config::default() };
    let r = run_with(
        &[
            c("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
            c("GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"),
            s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Close,
        ],
        &cfg,
        false,
        &whole,
    );
    assert_eq!(r.after, [0, 1, 2, 3]);
    assert_eq!(path(&r.ex[0]), "/1");
    assert_eq!(r.ex[0].flags, Flags::NO_RESPONSE);
    assert_eq!(path(&r.ex[1]), "/2");
    assert_eq!(r.ex[1].flags, Flags::NONE);
    assert_eq!(path(&r.ex[2]), "/3");
    assert_eq!(r.ex[2].flags, Flags::NO_RESPONSE);
    assert_eq!(r.stats.pipeline_overflows, 1);
}

#[test]
fn invalid_transfer_encoding_and_content_length() {
    let r = run(&[
        c("GET /a HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nTransfer-Encoding: lalala\r\nContent-Length: 2\r\n\r\nall of this until close"),
        FinS,
    ]);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"all of this until close");
    assert_eq!(r.ex[0].flags, Flags::NONE);

    let r = run(&[
        c("POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
        c("POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nde"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(req(&r.ex[0]).body.bytes, b"abc");
    assert_eq!(r.ex[0].flags, Flags::NONE);
    assert_eq!(req(&r.ex[1]).body.bytes, b"de");
    assert_eq!(r.ex[1].flags, Flags::PARSE_ERROR);
    assert_eq!(r.stats.framing_anomalies, 1);
}

#[test]
fn absolute_form_target_gives_the_authority() {
    let r = run(&[c("GET http://proxy.example:8080/p?q HTTP/1.1\r\n\r\n"), s("HTTP/1.1 200 OK\r\n\r\n"), FinS]);
    assert_eq!(req(&r.ex[0]).authority, b"proxy.example:8080");
    assert_eq!(req(&r.ex[0]).scheme, b"http");
    assert_eq!(req(&r.ex[0]).path, b"http://proxy.example:8080/p?q");
}

#[test]
fn interim_responses_before_a_final_one_are_kept() {
    let r = run(&[
        c("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    let interim: Vec<u16> = resp(&r.ex[0]).interim.iter().map(|i| i.status).collect();
    assert_eq!(interim, [102, 103]);
    assert_eq!(resp(&r.ex[0]).interim[1].headers, vec![h("Link", "</s.css>")]);
    assert_eq!(r.stats.interim, 2);
    assert_eq!(r.stats.responses, 1);
}

#[test]
fn head_arriving_byte_by_byte_is_not_reparsed_each_time() {
    // 200 KiB of header lines one byte per call: re-parsing from scratch each time would take ~10^10 steps.
    let mut head = b"GET /slow HTTP/1.1\r\nHost: a\r\n".to_vec();
    while head.len() < 200 * 1024 {
        head.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let start = std::time::Instant::now();
    let r = run_with(
        &[Step::C(head), s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
        &Http1Config::default(),
        false,
        &pieces_of(1),
    );
    assert_eq!(r.ex.len(), 1);
    assert_eq!(r.ex[0].flags, Flags::NONE);
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
}

// ===== robustness =====

/// Fragments that reach deep parser states when shuffled together.
const FRAGMENTS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\n",
    b"HEAD /h HTTP/1.0\n",
    b"CONNECT a:1 HTTP/1.1\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 101 Switching\r\n",
    b"HTTP/1.0 204 x\r\n",
    b"Content-Length: 3\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Upgrade: h2c\r\n",
    b"\r\n",
    b"\n",
    b" folded\r\n",
    b"5;x\r\nhello\r\n",
    b"0\r\n\r\n",
    b"fffffffffffffffff\r\n",
    b"abc",
    b"\x00\xff\x16\x03",
];

#[derive(Clone, Debug)]
enum Op {
    Data(bool, Vec<u8>),
    Gap(bool, u64),
    Fin(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (any::<bool>(), prop::collection::vec(0..FRAGMENTS.len(), 1..6))
            .prop_map(|(client, idx)| Op::Data(client, idx.iter().flat_map(|&i| FRAGMENTS[i].to_vec()).collect())),
        2 => (any::<bool>(), prop::collection::vec(any::<u8>(), 1..40)).prop_map(|(client, b)| Op::Data(client, b)),
        1 => (any::<bool>(), 0u64..5000).prop_map(|(client, n)| Op::Gap(client, n)),
        1 => any::<bool>().prop_map(Op::Fin),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_input_never_panics_and_every_request_is_accounted(
        ops in prop::collection::vec(op(), 1..40),
        mid_stream in any::<bool>(),
        reset in any::<bool>(),
    ) {
        let cfg = Http1Config { max_body: 16, max_head_bytes: 128, max_pipelined: 4 };
        let mut conn = Http1Conn::new(&cfg, info(mid_stream));
        let mut out = Vec::new();
        let mut switched = false;
        for (i, op) in ops.iter().enumerate() {
            let side = |client: bool| if client { Side::Client } else { Side::Server };
            match op {
                Op::Data(client, b) => switched |= conn.data(side(*client), b, ts(i), &mut out).is_some(),
                Op::Gap(client, n) => conn.gap(side(*client), *n, ts(i), &mut out),
                Op::Fin(client) => conn.fin(side(*client), ts(i), &mut out),
            }
        }
        if reset { conn.reset(ts(99), &mut out) } else { conn.close(ts(99), &mut out) }
        let st = conn.stats().clone();
        prop_assert_eq!(st.exchanges, out.len() as u64);
        // Every request head became exchange (or the h2c hand-over), every final response too.
        let with_request = out.iter().filter(|e| e.request.is_some()).count() as u64;
        prop_assert_eq!(with_request + st.h2c_upgrades, st.requests);
        let with_response = out.iter().filter(|e| e.response.is_some()).count() as u64;
        prop_assert!(with_response <= st.responses);
        prop_assert!(!switched || st.upgrades == 1);
        for e in &out {
            prop_assert!(e.request.is_some() || e.response.is_some());
            for body in e.request.iter().map(|r| &r.body).chain(e.response.iter().map(|r| &r.body)) {
                prop_assert!(body.bytes.len() <= 16);
                prop_assert!(body.full_len >= body.bytes.len() as u64);
            }
        }
        // Orders are distinct.
        let mut orders: Vec<u32> = out.iter().map(|e| e.order).collect();
        orders.sort_unstable();
        orders.dedup();
        prop_assert_eq!(orders.len(), out.len());
    }
}

// ===== what real captures showed (each case written here from scratch) =====

/// Status lines with a version other than `HTTP/1.x` or a status that is not three digits are still responses
/// (tshark and browsers take them); they are framed by their fields and flagged `parse_error`.
#[test]
fn malformed_status_lines_are_responses() {
    let steps = [
        c("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/2.0 200 ok\r\nContent-Length: 2\r\n\r\nok"),
        c("GET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.1 0204 ok\r\nContent-Length: 0\r\n\r\n"),
        c("GET /c HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.0 2XX OK\r\nServer: POC\r\n\r\ntoto"),
        FinS,
        Close,
    ];
    let r = shotgun(&steps, &Http1Config::default(), false);
    assert_eq!(r.ex.len(), 3, "{:#?}", r.ex);
    let got: Vec<(String, u16, Vec<u8>)> =
        r.ex.iter().map(|e| (path(e), resp(e).status, resp(e).body.bytes.clone())).collect();
    assert_eq!(
        got,
        [
            ("/a".to_string(), 200, b"ok".to_vec()),
            ("/b".to_string(), 204, Vec::new()),
            ("/c".to_string(), 2, b"toto".to_vec()),
        ]
    );
    for e in &r.ex {
        assert_eq!(e.flags, Flags::PARSE_ERROR, "{}", path(e));
    }
    assert_eq!(r.stats.malformed_start_lines, 3);
    assert_eq!(r.stats.parse_errors, 0);
}

/// `HTTP/1.1` with no status code is not a status line: resync, no response invented.
#[test]
fn status_line_without_a_status_is_not_a_response() {
    let r = run(&[c("GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), s("HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"), FinS, Close]);
    assert_eq!(r.ex.len(), 1);
    assert!(r.ex[0].response.is_none());
    assert_eq!(r.stats.parse_errors, 1);
}

/// A line of nothing but CRs ends a head (`LF CR CR LF`), however the bytes are cut.
#[test]
fn head_ended_by_a_line_of_crs() {
    let steps = [
        c("GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.1 200 ok\r\nContent-length: 2\n\r\r\nokHTTP/1.1 200 ok\r\nContent-Length: 1\r\n\r\nx"),
    ];
    let r = shotgun(&steps, &Http1Config::default(), false);
    assert_eq!(r.ex.len(), 2, "{:#?}", r.ex);
    assert_eq!(resp(&r.ex[0]).body.bytes, b"ok");
    assert_eq!(resp(&r.ex[0]).headers, vec![h("Content-length", "2")]);
    assert_eq!(resp(&r.ex[1]).body.bytes, b"x");
    assert_eq!(r.ex[0].flags, Flags::NONE);
}

/// Request lines with a known method but no target, no version or a broken version are requests: clients send
/// them and servers answer them. Unknown methods or a method glued to the target are not.
#[test]
fn malformed_request_lines_with_known_methods_are_requests() {
    let steps = [
        c("GET / HTTP/1.\r\nHost: h\r\n\r\n"),
        s("HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        c("OPTIONS\r\nHost: h\r\n\r\n"),
        s("HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        c("GET /HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        c("GET HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        Close,
    ];
    let r = shotgun(&steps, &Http1Config::default(), false);
    let got: Vec<(String, String, u16)> =
        r.ex.iter()
            .map(|e| {
                let m = String::from_utf8_lossy(&req(e).method).into_owned();
                (m, path(e), resp(e).status)
            })
            .collect();
    let want = [("GET", "/", 400), ("OPTIONS", "", 400), ("GET", "/HTTP/1.1", 200), ("GET", "", 200)];
    let want: Vec<(String, String, u16)> = want.iter().map(|(m, p, s)| (m.to_string(), p.to_string(), *s)).collect();
    assert_eq!(got, want);
    for e in &r.ex {
        assert_eq!(e.flags, Flags::PARSE_ERROR);
    }
    assert_eq!(r.stats.malformed_start_lines, 4);

    let r = run(&[
        c("GET/ HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        Close,
    ]);
    assert_eq!(r.ex.len(), 1);
    assert!(r.ex[0].request.is_none());
    assert_eq!(r.ex[0].flags, Flags::NO_REQUEST);
}

/// An HTTP/0.9-style line followed by an empty line, answered after a response the server sent first.
#[test]
fn versionless_request_line_ending_in_an_empty_line() {
    let r = run(&[
        s("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"),
        c("GET /\r\n\r\n"),
        s("this is too much.\r\n"),
        Close,
    ]);
    let requests: Vec<String> = r.ex.iter().filter(|e| e.request.is_some()).map(path).collect();
    assert_eq!(requests, ["/"]);
}

/// A Content-Length beyond 2^63-1 is invalid (servers refuse it): the request has no body, and what follows is the
/// next request. The largest valid value is still a length.
#[test]
fn content_length_beyond_i64_max_is_invalid() {
    let r = run(&[
        c(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 18446744073709551615\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
        Close,
    ]);
    let paths: Vec<String> = r.ex.iter().map(path).collect();
    assert_eq!(paths, ["/", "/next"]);
    assert!(r.ex[0].flags.contains(Flags::PARSE_ERROR));
    assert_eq!(r.stats.framing_anomalies, 1);

    let r = run(&[
        c(
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 9223372036854775807\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
        Close,
    ]);
    assert_eq!(r.ex.len(), 1);
    assert_eq!(req(&r.ex[0]).body.bytes, b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.stats.framing_anomalies, 0);
}

// ----- where tshark 4.0 counts differently, and why we keep our reading -----

/// tshark dissects only a fixed list of methods; RFC 9110 §9.1 allows any token. QUERY (the IETF httpbis draft),
/// and extension methods answered by real servers, are requests.
#[test]
fn extension_methods_are_requests() {
    let r = run(&[
        c("QUERY /search HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nq=abc"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        c("WEIRD / HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\n\r\n"),
        Close,
    ]);
    let methods: Vec<&[u8]> = r.ex.iter().map(|e| req(e).method.as_slice()).collect();
    assert_eq!(methods, [&b"QUERY"[..], b"WEIRD"]);
    assert_eq!(req(&r.ex[0]).body.bytes, b"q=abc");
    assert!(r.ex.iter().all(|e| e.flags == Flags::NONE));
}

/// A request line cut into one-byte segments is one request (tshark's heuristic misses a first segment of one
/// byte).
#[test]
fn request_in_one_byte_segments() {
    let steps = [c("GET / HTTP/1.0\r\n\r\n"), s("HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nHello\n"), Close];
    let r = run_with(&steps, &Http1Config::default(), false, &pieces_of(1));
    assert_eq!(r.ex.len(), 1);
    assert_eq!(path(&r.ex[0]), "/");
    assert_eq!(resp(&r.ex[0]).body.bytes, b"Hello\n");
}

/// Junk before a request line (here four bytes and a space) is skipped by resync; tshark gives up on the segment.
#[test]
fn junk_before_the_request_line_is_skipped() {
    let r = run(&[
        cb(b"\xdd\x00\x00\x00 GET /txt HTTP/1.1\r\nHost: h\r\n\r\n"),
        s("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        Close,
    ]);
    assert_eq!(r.ex.len(), 1);
    assert_eq!(path(&r.ex[0]), "/txt");
    assert_eq!(r.stats.resync_skipped_bytes, 5);
}

/// An obs-fold `Transfer-Encoding` is unfolded (RFC 9112 §5.2): the body is chunked, and the request after it is
/// found. tshark reads the folded field as empty and loses the second request.
#[test]
fn folded_transfer_encoding_is_chunked() {
    let r = run(&[
        c(
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
        Close,
    ]);
    let paths: Vec<String> = r.ex.iter().map(path).collect();
    assert_eq!(paths, ["/", "/second"]);
    assert!(req(&r.ex[0]).body.bytes.is_empty());
    assert!(!r.ex[0].flags.contains(Flags::PARSE_ERROR));
}

/// A chunk size that overflows 64 bits breaks the framing: the request is flagged, and resync finds the request
/// the bytes carry after it (tshark stops at the broken body).
#[test]
fn chunk_size_overflow_resyncs_to_the_next_request() {
    let r = run(&[
        c(
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n\r\nGET /after HTTP/1.1\r\nHost: t\r\n\r\n",
        ),
        Close,
    ]);
    let paths: Vec<String> = r.ex.iter().map(path).collect();
    assert_eq!(paths, ["/", "/after"]);
    assert!(r.ex[0].flags.contains(Flags::PARSE_ERROR | Flags::INCOMPLETE));
    assert_eq!(r.stats.parse_errors, 1);
}

// ===== heads cut by a gap (snaplen) =====

#[test]
fn head_cut_by_a_gap_is_recorded_from_its_whole_lines() {
    // A 200-byte snaplen keeps the start of each head; the rest of the packet is a gap. The request and the
    // response are still recorded from their complete lines, flagged, and the next exchange parses normally.
    let r = run(&[
        c("POST /api/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 14\r\nContent-Ty"),
        GapC(60),
        s("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 12\r\nDa"),
        GapS(40),
        c("GET /next HTTP/1.1\r\nHost: a\r\n\r\n"),
        s("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(r.ex.len(), 2, "{:#?}", r.ex);
    let first = &r.ex[0];
    let req = first.request.as_ref().unwrap();
    assert_eq!((req.method.as_slice(), req.path.as_slice()), (&b"POST"[..], &b"/api/echo"[..]));
    // Only whole lines: the cut "Content-Ty" is not turned into a header.
    assert_eq!(req.headers, vec![h("Host", "a"), h("Content-Length", "14")]);
    let resp = first.response.as_ref().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.headers, vec![h("Server", "nginx"), h("Content-Length", "12")]);
    assert!(first.flags.contains(Flags::GAP | Flags::INCOMPLETE), "{:?}", first.flags);
    assert_eq!(r.ex[1].response.as_ref().unwrap().status, 404);
    assert_eq!(r.stats.salvaged_heads, 2);
}

#[test]
fn head_cut_inside_its_first_line_is_not_invented() {
    let r = run(&[c("GET /partial-targ"), GapC(100), c("GET /b HTTP/1.1\r\nHost: a\r\n\r\n"), Close]);
    assert_eq!(r.stats.salvaged_heads, 0);
    let paths: Vec<_> = r.ex.iter().filter_map(|e| e.request.as_ref()).map(|q| q.path.clone()).collect();
    assert_eq!(paths, vec![b"/b".to_vec()]);
}
