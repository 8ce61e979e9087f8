//! Connection-level tests: a whole conversation written frame by frame from RFC 9113 with a real HPACK encoder
//! (`loona-hpack`), split at arbitrary points, joined mid-stream, cut by gaps, and fed garbage.

use std::net::SocketAddr;

use proptest::prelude::*;
use tapedeck_model::{Exchange, Flags, Header, Request, Timestamp, Timing};

use super::frame::*;
use super::*;
use crate::stream::{ConnInfo, Side};

fn info() -> ConnInfo {
    ConnInfo {
        id: 7,
        client: "10.0.0.1:40000".parse::<SocketAddr>().unwrap(),
        server: "10.0.0.2:8080".parse::<SocketAddr>().unwrap(),
        mid_stream: false,
    }
}

fn cfg() -> H2Config {
    H2Config { max_body: 1000, max_streams: 100, max_header_list_bytes: 16 << 10, max_frame_bytes: 16384 }
}

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn padded(payload: &[u8], pad: u8) -> Vec<u8> {
    let mut p = vec![pad];
    p.extend_from_slice(payload);
    p.extend(std::iter::repeat_n(0u8, usize::from(pad)));
    p
}

fn grpc_msg(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

struct Enc(loona_hpack::Encoder<'static>);

impl Enc {
    fn new() -> Self {
        Enc(loona_hpack::Encoder::new())
    }
    fn block(&mut self, h: &[(&str, &str)]) -> Vec<u8> {
        self.0.encode(h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }
}

/// The conversation: (side, bytes) events in capture order.
fn conversation() -> Vec<(Side, Vec<u8>)> {
    let mut ce = Enc::new();
    let mut se = Enc::new();
    let mut ev = Vec::new();

    // E0, client: preface, SETTINGS, stream 1 GET (END_STREAM), stream 3 gRPC call whose header block is split
    // over HEADERS + CONTINUATION in the middle of a field, then a padded DATA frame with half the message.
    let mut c = PREFACE.to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[0, 1, 0, 0, 0x10, 0, 0, 3, 0, 0, 0, 100]));
    let b1 = ce.block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "svc:8080"),
        (":path", "/a"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
        ("x-trace", "t1"),
    ]);
    c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 1, &b1));
    let b3 = ce.block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "svc:8080"),
        (":path", "/pkg.Greeter/SayHello"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]);
    let (h3a, h3b) = b3.split_at(b3.len() / 2 + 1);
    c.extend(frame(HEADERS, 0, 3, h3a));
    c.extend(frame(CONTINUATION, FLAG_END_HEADERS, 3, h3b));
    let msg = grpc_msg(b"hello world");
    c.extend(frame(DATA, FLAG_PADDED, 3, &padded(&msg[..7], 5)));
    ev.push((Side::Client, c));

    // E1, server: SETTINGS, ACK, response headers for stream 3 and a DATA frame.
    let mut s = frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]);
    s.extend(frame(SETTINGS, FLAG_ACK, 0, &[]));
    let r3 = se.block(&[(":status", "200"), ("content-type", "application/grpc")]);
    s.extend(frame(HEADERS, FLAG_END_HEADERS, 3, &r3));
    s.extend(frame(DATA, 0, 3, &grpc_msg(b"hi")));
    ev.push((Side::Server, s));

    // E2, client: ACK, rest of the message (END_STREAM), stream 5 and stream 7 GETs, a PRIORITY frame.
    let mut c = frame(SETTINGS, FLAG_ACK, 0, &[]);
    c.extend(frame(DATA, FLAG_END_STREAM, 3, &msg[7..]));
    let b5 = ce.block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "svc:8080"),
        (":path", "/reset"),
        ("x-trace", "t1"),
    ]);
    c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 5, &b5));
    let b7 = ce.block(&[(":method", "GET"), (":scheme", "http"), (":authority", "svc:8080"), (":path", "/late")]);
    c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS | FLAG_PADDED, 7, &padded(&b7, 3)));
    c.extend(frame(PRIORITY, 0, 7, &[0, 0, 0, 1, 16]));
    ev.push((Side::Client, c));

    // E3, server: 103 early hints on 1, a push of /style.css promised on 1, the response to 1, the pushed
    // response, trailers for 3, RST_STREAM for 5, an unknown frame, PING, WINDOW_UPDATE, GOAWAY(last=5).
    let mut s = Vec::new();
    let i1 = se.block(&[(":status", "103"), ("link", "</style.css>; rel=preload")]);
    s.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &i1));
    let pp = se.block(&[(":method", "GET"), (":scheme", "http"), (":authority", "svc:8080"), (":path", "/style.css")]);
    let mut ppp = 2u32.to_be_bytes().to_vec();
    ppp.extend(pp);
    s.extend(frame(PUSH_PROMISE, FLAG_END_HEADERS, 1, &ppp));
    let r1 = se.block(&[(":status", "200"), ("content-type", "text/plain")]);
    s.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &r1));
    s.extend(frame(DATA, FLAG_END_STREAM, 1, b"hello"));
    let r2 = se.block(&[(":status", "200"), ("content-type", "text/css")]);
    s.extend(frame(HEADERS, FLAG_END_HEADERS, 2, &r2));
    s.extend(frame(DATA, FLAG_END_STREAM | FLAG_PADDED, 2, &padded(b"body{}", 2)));
    let t3 = se.block(&[("grpc-status", "0"), ("grpc-message", "")]);
    s.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 3, &t3));
    s.extend(frame(RST_STREAM, 0, 5, &[0, 0, 0, 8]));
    s.extend(frame(0xfa, 0xff, 0, b"unknown extension frame"));
    s.extend(frame(PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]));
    s.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 1, 0, 0]));
    s.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 5, 0, 0, 0, 0]));
    ev.push((Side::Server, s));
    ev
}

/// Feeds events, each split at the given cut points (offsets into that event's bytes), then closes.
fn run(start: H2Start, events: &[(Side, Vec<u8>)], cuts: &[Vec<usize>]) -> (Vec<Exchange>, H2Stats) {
    let mut conn = H2Conn::new(&cfg(), info(), start);
    let mut out = Vec::new();
    for (i, (side, bytes)) in events.iter().enumerate() {
        let ts = Timestamp(1000 + i as u64);
        let mut points: Vec<usize> = cuts.get(i).cloned().unwrap_or_default();
        points.retain(|&p| p < bytes.len());
        points.sort_unstable();
        let mut prev = 0;
        for p in points.into_iter().chain(std::iter::once(bytes.len())) {
            conn.data(*side, &bytes[prev..p], ts, &mut out);
            prev = p;
        }
    }
    conn.close(Timestamp(9999), &mut out);
    (out, conn.stats().clone())
}

fn hdr(n: &str, v: &str) -> Header {
    Header::new(n, v)
}

#[test]
fn full_conversation() {
    let (ex, st) = run(H2Start::PriorKnowledge, &conversation(), &[]);
    let ids: Vec<u32> = ex.iter().map(|e| e.stream_id.unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 3, 5, 7]);

    let e1 = &ex[0];
    assert_eq!(e1.flags, Flags::NONE);
    assert_eq!(e1.order, 0);
    assert_eq!(e1.connection_id, 7);
    let rq = e1.request.as_ref().unwrap();
    assert_eq!(
        (&rq.method[..], &rq.scheme[..], &rq.authority[..], &rq.path[..]),
        (&b"GET"[..], &b"http"[..], &b"svc:8080"[..], &b"/a"[..])
    );
    assert_eq!(rq.headers, vec![hdr("cookie", "a=1"), hdr("cookie", "b=2"), hdr("x-trace", "t1")]);
    let rs = e1.response.as_ref().unwrap();
    assert_eq!(rs.status, 200);
    assert_eq!(rs.body.bytes, b"hello");
    assert_eq!(rs.interim.len(), 1);
    assert_eq!(rs.interim[0].status, 103);
    assert_eq!(rs.interim[0].headers, vec![hdr("link", "</style.css>; rel=preload")]);
    assert_eq!(
        e1.timing,
        Timing {
            request_first: Some(Timestamp(1000)),
            request_last: Some(Timestamp(1000)),
            response_first: Some(Timestamp(1003)),
            response_last: Some(Timestamp(1003)),
        }
    );

    let e2 = &ex[1];
    assert_eq!(e2.flags, Flags::PUSHED);
    assert_eq!(e2.request.as_ref().unwrap().path, b"/style.css");
    assert_eq!(e2.response.as_ref().unwrap().body.bytes, b"body{}");
    assert_eq!(e2.response.as_ref().unwrap().headers, vec![hdr("content-type", "text/css")]);

    let e3 = &ex[2];
    assert_eq!(e3.flags, Flags::NONE);
    assert_eq!(e3.order, 1);
    let rq = e3.request.as_ref().unwrap();
    assert_eq!(rq.path, b"/pkg.Greeter/SayHello");
    assert_eq!(rq.headers, vec![hdr("content-type", "application/grpc"), hdr("te", "trailers")]);
    assert_eq!(rq.body.bytes, grpc_msg(b"hello world"));
    let rs = e3.response.as_ref().unwrap();
    assert_eq!(rs.body.bytes, grpc_msg(b"hi"));
    assert_eq!(rs.trailers, vec![hdr("grpc-status", "0"), hdr("grpc-message", "")]);
    assert_eq!(e3.timing.request_last, Some(Timestamp(1002)));
    assert_eq!(e3.timing.response_first, Some(Timestamp(1001)));
    let g = tapedeck_model::grpc::grpc_summary(e3).unwrap();
    assert_eq!((g.service.as_str(), g.method.as_str(), g.status), ("pkg.Greeter", "SayHello", Some(0)));
    assert_eq!(g.request.messages.len(), 1);
    assert_eq!(g.response.messages[0].len, 2);

    let e5 = &ex[3];
    assert_eq!(e5.flags, Flags::RESET | Flags::NO_RESPONSE);
    assert_eq!(e5.request.as_ref().unwrap().path, b"/reset");
    assert_eq!(e5.request.as_ref().unwrap().headers, vec![hdr("x-trace", "t1")]);

    let e7 = &ex[4];
    assert_eq!(e7.flags, Flags::REFUSED | Flags::NO_RESPONSE);
    assert_eq!(e7.request.as_ref().unwrap().path, b"/late");
    assert_eq!(e7.order, 3);

    assert_eq!(st.frames_continuation, 1);
    assert_eq!(st.frames_unknown, 1);
    assert_eq!(st.frames_push_promise, 1);
    assert_eq!(st.frames_settings, 4);
    assert_eq!(st.frames_priority, 1);
    assert_eq!(st.goaways, 1);
    assert_eq!(st.streams_reset, 1);
    assert_eq!(st.streams_refused, 1);
    assert_eq!(st.streams_closed, 3);
    assert_eq!(st.streams_opened, 5);
    assert_eq!(st.exchanges, 5);
    assert_eq!(st.hpack_errors + st.malformed_frames + st.protocol_errors + st.bytes_skipped, 0);
}

#[test]
fn byte_at_a_time_equals_whole() {
    let conv = conversation();
    let whole = run(H2Start::PriorKnowledge, &conv, &[]);
    let cuts: Vec<Vec<usize>> = conv.iter().map(|(_, b)| (1..b.len()).collect()).collect();
    let split = run(H2Start::PriorKnowledge, &conv, &cuts);
    assert_eq!(whole.0, split.0);
    assert_eq!(whole.1, H2Stats { bytes: whole.1.bytes, ..split.1 });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn any_split_yields_the_same_exchanges(cuts in proptest::collection::vec(proptest::collection::vec(0usize..800, 0..12), 4)) {
        let conv = conversation();
        let whole = run(H2Start::PriorKnowledge, &conv, &[]);
        let split = run(H2Start::PriorKnowledge, &conv, &cuts);
        prop_assert_eq!(whole.0, split.0);
    }

    #[test]
    fn garbage_never_panics(a in proptest::collection::vec(any::<u8>(), 0..600), b in proptest::collection::vec(any::<u8>(), 0..600), mode in 0u8..3) {
        let start = match mode { 0 => H2Start::PriorKnowledge, 1 => H2Start::MidStream, _ => H2Start::Upgrade { request: Request::default(), timing: Timing::default(), order: 0, settings: Some(a.clone()) } };
        let mut conn = H2Conn::new(&cfg(), info(), start);
        let mut out = Vec::new();
        let mut pa = PREFACE.to_vec();
        pa.extend(&a);
        conn.data(Side::Client, &pa, Timestamp(1), &mut out);
        conn.data(Side::Server, &b, Timestamp(2), &mut out);
        conn.gap(Side::Server, 3, Timestamp(3), &mut out);
        conn.data(Side::Server, &a, Timestamp(4), &mut out);
        conn.fin(Side::Client, Timestamp(5), &mut out);
        conn.close(Timestamp(6), &mut out);
    }

    #[test]
    fn mid_stream_from_any_offset_never_invents(off_c in 0usize..400, off_s in 0usize..300) {
        let conv = conversation();
        let truth = run(H2Start::PriorKnowledge, &conv, &[]).0;
        let mut cut = conv.clone();
        // Join the connection late: drop a prefix of the first event of each side.
        let c0 = off_c.min(cut[0].1.len());
        cut[0].1.drain(..c0);
        let s0 = off_s.min(cut[1].1.len());
        cut[1].1.drain(..s0);
        let (ex, _) = run(H2Start::MidStream, &cut, &[]);
        for e in &ex {
            prop_assert!(e.flags.contains(Flags::MID_STREAM));
            let t = truth.iter().find(|t| t.stream_id == e.stream_id).expect("stream id invented");
            if let (Some(r), Some(tr)) = (&e.request, &t.request) {
                for h in &r.headers { prop_assert!(tr.headers.contains(h), "invented {:?}", h); }
                for (got, want) in [(&r.method, &tr.method), (&r.path, &tr.path), (&r.authority, &tr.authority)] {
                    prop_assert!(got.is_empty() || got == want);
                }
            }
            if let (Some(r), Some(tr)) = (&e.response, &t.response) {
                for h in &r.headers { prop_assert!(tr.headers.contains(h), "invented {:?}", h); }
                for h in &r.trailers { prop_assert!(tr.trailers.contains(h), "invented {:?}", h); }
                prop_assert!(r.status == 0 || r.status == tr.status);
                prop_assert!(tr.body.bytes.ends_with(&r.body.bytes));
            }
        }
    }
}

#[test]
fn mid_stream_inside_a_frame_recovers_frames_data_and_ids() {
    let conv = conversation();
    let mut cut = conv.clone();
    // Client joined 3 bytes into stream 1's HEADERS frame (after preface and SETTINGS); server joined 4 bytes
    // into its first SETTINGS frame.
    let skip_c = PREFACE.len() + 9 + 12 + 3;
    cut[0].1.drain(..skip_c);
    cut[1].1.drain(..4);
    let (ex, st) = run(H2Start::MidStream, &cut, &[]);
    assert!(st.mid_stream_recoveries >= 2);
    assert!(st.bytes_skipped > 0);
    // Stream 1's request was lost with the frame we joined inside, so its client side never ends: it is emitted
    // last, at close.
    let ids: Vec<u32> = ex.iter().map(|e| e.stream_id.unwrap()).collect();
    assert_eq!(ids, vec![2, 3, 5, 7, 1]);
    for e in &ex {
        assert!(e.flags.contains(Flags::MID_STREAM), "{:?}", e.flags);
    }
    let e1 = &ex[4];
    assert!(e1.request.is_none());
    assert!(e1.flags.contains(Flags::NO_REQUEST | Flags::HPACK_UNKNOWN));
    // ":status: 200" is static-table entry 8: decodable without the dynamic table. The body is kept.
    assert_eq!(e1.response.as_ref().unwrap().status, 200);
    assert_eq!(e1.response.as_ref().unwrap().body.bytes, b"hello");
    assert!(ex[0].flags.contains(Flags::PUSHED));
    assert_eq!(ex[0].request.as_ref().unwrap().path, b"/style.css");
    // Stream 3: its header block used literal names (first occurrence), decodable without the table.
    let e3 = &ex[1];
    assert!(e3.flags.contains(Flags::HPACK_UNKNOWN));
    let rq = e3.request.as_ref().unwrap();
    assert_eq!(rq.method, b"POST");
    assert_eq!(rq.path, b"/pkg.Greeter/SayHello");
    assert_eq!(rq.body.bytes, grpc_msg(b"hello world"));
    // Stream 5: "x-trace: t1" was a dynamic-table reference: skipped, not guessed; literal fields with static
    // names were kept.
    let e5 = &ex[2];
    assert!(e5.flags.contains(Flags::RESET));
    let rq5 = e5.request.as_ref().unwrap();
    assert_eq!(rq5.path, b"/reset");
    assert_eq!(rq5.authority, b"svc:8080");
    assert!(rq5.headers.is_empty());
    assert!(st.header_fields_skipped > 0);
}

#[test]
fn gap_inside_data_keeps_sync_gap_elsewhere_loses_hpack() {
    let conv = conversation();
    // Cut the padded DATA payload of stream 3 in E0: drop 3 bytes of its data (not padding).
    let mut ev = conv.clone();
    let c0 = ev[0].1.clone();
    let data_start = c0.len() - (1 + 7 + 5); // pad-length byte, 7 data bytes, 5 padding bytes
    let mut conn = H2Conn::new(&cfg(), info(), H2Start::PriorKnowledge);
    let mut out = Vec::new();
    conn.data(Side::Client, &c0[..data_start + 2], Timestamp(1), &mut out);
    conn.gap(Side::Client, 3, Timestamp(2), &mut out);
    conn.data(Side::Client, &c0[data_start + 5..], Timestamp(3), &mut out);
    for (i, (side, b)) in ev.drain(..).enumerate().skip(1) {
        conn.data(side, &b, Timestamp(10 + i as u64), &mut out);
    }
    conn.close(Timestamp(99), &mut out);
    assert_eq!(conn.stats().gaps_in_data, 1);
    assert_eq!(conn.stats().mid_stream_recoveries, 0);
    let e3 = out.iter().find(|e| e.stream_id == Some(3)).unwrap();
    assert!(e3.flags.contains(Flags::GAP));
    let body = &e3.request.as_ref().unwrap().body;
    assert_eq!(body.full_len, 16);
    assert_eq!(body.bytes, grpc_msg(b"hello world")[..1]);
    // Later streams decoded with a full table.
    let e5 = out.iter().find(|e| e.stream_id == Some(5)).unwrap();
    assert_eq!(e5.request.as_ref().unwrap().authority, b"svc:8080");
    assert!(!e5.flags.contains(Flags::HPACK_UNKNOWN));

    // A gap covering frame headers: framing recovered, later header blocks flagged, nothing invented.
    let conv = conversation();
    let mut conn = H2Conn::new(&cfg(), info(), H2Start::PriorKnowledge);
    let mut out = Vec::new();
    conn.data(Side::Client, &conv[0].1, Timestamp(1), &mut out);
    conn.data(Side::Server, &conv[1].1, Timestamp(2), &mut out);
    let c2 = &conv[2].1;
    conn.gap(Side::Client, 20, Timestamp(3), &mut out);
    conn.data(Side::Client, &c2[20..], Timestamp(3), &mut out);
    conn.data(Side::Server, &conv[3].1, Timestamp(4), &mut out);
    conn.close(Timestamp(99), &mut out);
    assert_eq!(conn.stats().mid_stream_recoveries, 1);
    let e5 = out.iter().find(|e| e.stream_id == Some(5)).unwrap();
    assert!(e5.flags.contains(Flags::HPACK_UNKNOWN));
    assert!(e5.request.as_ref().unwrap().headers.is_empty());
    assert_eq!(conn.stats().header_fields_skipped, 1);
    let e3 = out.iter().find(|e| e.stream_id == Some(3)).unwrap();
    assert!(e3.flags.contains(Flags::GAP));
}

#[test]
fn h2c_upgrade_stream_one() {
    let req = Request {
        method: b"GET".to_vec(),
        authority: b"svc".to_vec(),
        path: b"/up".to_vec(),
        headers: vec![hdr("upgrade", "h2c")],
        body: tapedeck_model::Body { bytes: b"abc".to_vec(), full_len: 3 },
        ..Request::default()
    };
    let timing = Timing { request_first: Some(Timestamp(5)), request_last: Some(Timestamp(5)), ..Timing::default() };
    let start = H2Start::Upgrade { request: req, timing, order: 2, settings: Some(vec![0, 1, 0, 0, 0x20, 0]) };
    let mut se = Enc::new();
    let mut ce = Enc::new();
    let mut s = frame(SETTINGS, 0, 0, &[]);
    s.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &se.block(&[(":status", "200")])));
    s.extend(frame(DATA, FLAG_END_STREAM, 1, b"up!"));
    let mut c = PREFACE.to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[]));
    c.extend(frame(
        HEADERS,
        FLAG_END_STREAM | FLAG_END_HEADERS,
        3,
        &ce.block(&[(":method", "GET"), (":path", "/next")]),
    ));
    let ev = vec![(Side::Client, c), (Side::Server, s)];
    let (ex, _) = run(start, &ev, &[]);
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].stream_id, Some(1));
    assert_eq!(ex[0].flags, Flags::UPGRADED);
    assert_eq!(ex[0].order, 2);
    assert_eq!(ex[0].request.as_ref().unwrap().path, b"/up");
    assert_eq!(ex[0].request.as_ref().unwrap().body.bytes, b"abc");
    assert_eq!(ex[0].response.as_ref().unwrap().body.bytes, b"up!");
    assert_eq!(ex[0].timing.request_first, Some(Timestamp(5)));
    assert_eq!(ex[1].stream_id, Some(3));
    assert_eq!(ex[1].order, 3);
    assert_eq!(ex[1].flags, Flags::NO_RESPONSE);
}

#[test]
fn bad_preface_resyncs_and_is_counted() {
    let mut c = b"PRI * HTTP/1.1\r\n\r\nXX\r\n\r\n".to_vec();
    c.extend(frame(SETTINGS, 0, 0, &[]));
    c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 1, &[0x82, 0x84]));
    c.extend(frame(PING, 0, 0, &[0; 8]));
    let (ex, st) = run(H2Start::PriorKnowledge, &[(Side::Client, c)], &[]);
    assert_eq!(st.preface_errors, 1);
    assert_eq!(st.mid_stream_recoveries, 1);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].request.as_ref().unwrap().method, b"GET");
    assert!(ex[0].flags.contains(Flags::HPACK_UNKNOWN | Flags::NO_RESPONSE));
}

#[test]
fn malformed_frames_flag_parse_error() {
    let mut c = PREFACE.to_vec();
    c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 1, &[0x82, 0x84]));
    // RST_STREAM of the wrong length, then a padded DATA whose pad length exceeds the frame.
    c.extend(frame(RST_STREAM, 0, 1, &[0, 0, 8]));
    c.extend(frame(DATA, FLAG_PADDED, 1, &[9, 1, 2]));
    let (ex, st) = run(H2Start::PriorKnowledge, &[(Side::Client, c)], &[]);
    assert_eq!(st.malformed_frames, 2);
    assert!(ex[0].flags.contains(Flags::PARSE_ERROR));
}

#[test]
fn header_block_interrupted_is_a_protocol_error() {
    let mut c = PREFACE.to_vec();
    c.extend(frame(HEADERS, FLAG_END_STREAM, 1, &[0x82]));
    c.extend(frame(PING, 0, 0, &[0; 8]));
    c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 3, &[0x82, 0x84]));
    let (ex, st) = run(H2Start::PriorKnowledge, &[(Side::Client, c)], &[]);
    assert_eq!(st.protocol_errors, 1);
    let e3 = ex.iter().find(|e| e.stream_id == Some(3)).unwrap();
    assert!(e3.flags.contains(Flags::HPACK_UNKNOWN));
    assert_eq!(e3.request.as_ref().unwrap().method, b"GET");
}

#[test]
fn oversized_frames_and_blocks_are_counted() {
    let mut small = cfg();
    small.max_header_list_bytes = 100;
    let mut c = PREFACE.to_vec();
    let mut e = Enc::new();
    let big = "x".repeat(100);
    c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 1, &e.block(&[(":method", "GET"), ("x-big", &big)])));
    c.extend(frame(PING, 0, 0, &vec![0; 20000])); // above max_frame_bytes: skipped
    c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 3, &[0x82, 0x84]));
    let mut conn = H2Conn::new(&small, info(), H2Start::PriorKnowledge);
    let mut out = Vec::new();
    conn.data(Side::Client, &c, Timestamp(1), &mut out);
    conn.close(Timestamp(2), &mut out);
    let st = conn.stats();
    assert_eq!(st.header_blocks_oversized, 1);
    assert_eq!(st.oversized_frames, 1);
    assert_eq!(out.len(), 2);
    assert!(out[0].flags.contains(Flags::PARSE_ERROR | Flags::HPACK_UNKNOWN));
    assert_eq!(out[1].request.as_ref().unwrap().path, b"/");
}

#[test]
fn open_streams_are_bounded() {
    let mut c = PREFACE.to_vec();
    for id in [1u32, 3, 5, 7] {
        c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, id, &[0x82, 0x84]));
    }
    let mut small = cfg();
    small.max_streams = 2;
    let mut conn = H2Conn::new(&small, info(), H2Start::PriorKnowledge);
    let mut out = Vec::new();
    conn.data(Side::Client, &c, Timestamp(1), &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].stream_id, Some(1));
    assert!(out[0].flags.contains(Flags::EVICTED | Flags::NO_RESPONSE));
    assert_eq!(conn.stats().streams_evicted, 2);
    // A late response on an evicted stream is dropped and counted.
    let mut se = Enc::new();
    let s = frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 1, &se.block(&[(":status", "200")]));
    conn.data(Side::Server, &s, Timestamp(2), &mut out);
    assert_eq!(conn.stats().frames_on_closed_streams, 1);
    conn.close(Timestamp(3), &mut out);
    assert_eq!(out.len(), 4);
}

#[test]
fn eviction_takes_the_oldest_open_stream_past_finished_ones() {
    // Streams 1, 3, 5 open (cap 3); 3 finishes; 7 fits; 9 evicts 1; 11 evicts 5 (3 is long gone, 7 is newer).
    let mut small = cfg();
    small.max_streams = 3;
    let mut conn = H2Conn::new(&small, info(), H2Start::PriorKnowledge);
    let mut out = Vec::new();
    let mut se = Enc::new();
    let open = |id: u32| frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, id, &[0x82, 0x84]);
    let mut c = PREFACE.to_vec();
    for id in [1u32, 3, 5] {
        c.extend(open(id));
    }
    conn.data(Side::Client, &c, Timestamp(1), &mut out);
    let s = frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 3, &se.block(&[(":status", "200")]));
    conn.data(Side::Server, &s, Timestamp(2), &mut out);
    assert_eq!(out.iter().map(|e| e.stream_id).collect::<Vec<_>>(), [Some(3)]);
    for id in [7u32, 9, 11] {
        conn.data(Side::Client, &open(id), Timestamp(3), &mut out);
    }
    let evicted: Vec<_> = out.iter().filter(|e| e.flags.contains(Flags::EVICTED)).map(|e| e.stream_id).collect();
    assert_eq!(evicted, [Some(1), Some(5)]);
    assert_eq!(conn.stats().streams_evicted, 2);
    // Many more streams, most finishing: eviction still follows opening order.
    for n in 0..5000u32 {
        let id = 13 + 2 * n;
        conn.data(Side::Client, &open(id), Timestamp(4), &mut out);
        if n % 3 != 0 {
            let s = frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, id, &se.block(&[(":status", "200")]));
            conn.data(Side::Server, &s, Timestamp(4), &mut out);
        }
    }
    let evicted: Vec<u32> =
        out.iter().filter(|e| e.flags.contains(Flags::EVICTED)).filter_map(|e| e.stream_id).collect();
    assert!(evicted.windows(2).all(|w| w[0] < w[1]), "oldest first");
    conn.close(Timestamp(5), &mut out);
    assert_eq!(out.len(), 6 + 5000, "every stream emitted once");
}

#[test]
fn body_cap_truncates_and_fin_flushes() {
    let mut c = PREFACE.to_vec();
    c.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &[0x83, 0x84]));
    c.extend(frame(DATA, 0, 1, &vec![b'a'; 1500]));
    let mut conn = H2Conn::new(&cfg(), info(), H2Start::PriorKnowledge);
    let mut out = Vec::new();
    conn.data(Side::Client, &c, Timestamp(1), &mut out);
    conn.fin(Side::Client, Timestamp(2), &mut out);
    conn.fin(Side::Server, Timestamp(3), &mut out);
    assert_eq!(out.len(), 1);
    let b = &out[0].request.as_ref().unwrap().body;
    assert_eq!((b.bytes.len(), b.full_len), (1000, 1500));
    assert!(out[0].flags.contains(Flags::TRUNCATED | Flags::INCOMPLETE | Flags::NO_RESPONSE));
}

#[test]
fn response_in_flight_after_client_reset_is_kept() {
    // The client cancels stream 1 (RST_STREAM) but the server had already answered: its HEADERS and DATA arrive
    // after the reset (seen in a real capture of a DNS-over-HTTPS client). The response belongs to the exchange.
    let mut enc_c = Enc::new();
    let mut enc_s = Enc::new();
    let mut c = PREFACE.to_vec();
    c.extend(frame(
        HEADERS,
        FLAG_END_STREAM | FLAG_END_HEADERS,
        1,
        &enc_c.block(&[(":method", "GET"), (":scheme", "http"), (":path", "/q"), (":authority", "a")]),
    ));
    let rst = frame(RST_STREAM, 0, 1, &8u32.to_be_bytes());
    let mut s = frame(HEADERS, FLAG_END_HEADERS, 1, &enc_s.block(&[(":status", "200")]));
    s.extend(frame(DATA, FLAG_END_STREAM, 1, b"answer"));
    let (ex, stats) = run(H2Start::PriorKnowledge, &[(Side::Client, c), (Side::Client, rst), (Side::Server, s)], &[]);
    assert_eq!(ex.len(), 1);
    let resp = ex[0].response.as_ref().expect("the response sent before the reset was seen is kept");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.bytes, b"answer");
    assert!(ex[0].flags.contains(Flags::RESET));
    assert_eq!(stats.streams_reset, 1);
}

#[test]
fn reset_stream_without_answer_is_emitted_after_the_grace() {
    let mut enc_c = Enc::new();
    let mut c = PREFACE.to_vec();
    c.extend(frame(
        HEADERS,
        FLAG_END_STREAM | FLAG_END_HEADERS,
        1,
        &enc_c.block(&[(":method", "GET"), (":scheme", "http"), (":path", "/q"), (":authority", "a")]),
    ));
    c.extend(frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()));
    let mut conn = H2Conn::new(&cfg(), info(), H2Start::PriorKnowledge);
    let mut out = Vec::new();
    conn.data(Side::Client, &c, Timestamp(1), &mut out);
    assert!(out.is_empty(), "waits for frames in flight");
    let ping = frame(PING, 0, 0, &[0; 8]);
    for _ in 0..super::conn::RESET_GRACE_FRAMES {
        conn.data(Side::Server, &ping, Timestamp(2), &mut out);
    }
    assert_eq!(out.len(), 1, "emitted once the grace is over, before the connection ends");
    assert!(out[0].flags.contains(Flags::RESET | Flags::NO_RESPONSE));
}

#[test]
fn tcp_reset_flags_open_streams() {
    let mut c = PREFACE.to_vec();
    c.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 1, &[0x82, 0x84]));
    let mut conn = H2Conn::new(&cfg(), info(), H2Start::PriorKnowledge);
    let mut out = Vec::new();
    conn.data(Side::Client, &c, Timestamp(1), &mut out);
    conn.reset(Timestamp(2), &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].flags.contains(Flags::RESET | Flags::NO_RESPONSE));
}

/// A server-streaming gRPC answer of four 200 KB messages sent as 131 060-byte DATA frames (what gRPC C core
/// sends after raising SETTINGS_MAX_FRAME_SIZE), joined inside the first frame's payload.
#[test]
fn mid_stream_with_data_frames_above_64k_keeps_their_messages() {
    let mut msgs = Vec::new();
    for k in 0..4 {
        msgs.extend(grpc_msg(&tapedeck_testgen::h2::noise(200 << 10, 0x5eed + k)));
    }
    let mut s = Vec::new();
    let chunks: Vec<&[u8]> = msgs.chunks(131_060).collect();
    for chunk in &chunks {
        s.extend(frame(DATA, 0, 1, chunk));
    }
    s.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 1, &Enc::new().block(&[("grpc-status", "0")])));
    let join = 70_000;
    let mut conn = H2Conn::new(&H2Config::default(), info(), H2Start::MidStream);
    let mut out = Vec::new();
    for seg in s[join..].chunks(1448) {
        conn.data(Side::Server, seg, Timestamp(1), &mut out);
    }
    conn.close(Timestamp(2), &mut out);
    let st = conn.stats();
    assert_eq!(out.len(), 1, "{out:#?}");
    // Framing is found at the next frame (the second DATA frame); every frame from there on is kept.
    assert_eq!(st.mid_stream_recoveries, 1);
    assert_eq!(st.bytes_skipped, (9 + 131_060 - join) as u64);
    assert_eq!(st.frames_data, (chunks.len() - 1) as u64);
    assert_eq!(st.oversized_frames, 0, "the peer's frame size limit is unknown mid-stream");
    let resp = out[0].response.as_ref().unwrap();
    assert!(resp.body.bytes == msgs[131_060..], "body of {} bytes", resp.body.bytes.len());
    assert_eq!(resp.trailers, vec![hdr("grpc-status", "0")]);
    assert!(out[0].flags.contains(Flags::MID_STREAM | Flags::NO_REQUEST), "{:?}", out[0].flags);
}

/// A DATA frame longer than the resync window (up to 2^24-1 bytes is legal once SETTINGS_MAX_FRAME_SIZE was
/// raised) cannot be a boundary on its own evidence; it is found through the plausible frame before it.
#[test]
fn mid_stream_data_frame_longer_than_the_window_is_found_through_the_frame_before_it() {
    let body = tapedeck_testgen::h2::noise(300_000, 0xb16);
    let mut s = tapedeck_testgen::h2::noise(5000, 3); // the tail of a frame we joined inside
    s.extend(frame(HEADERS, FLAG_END_HEADERS, 3, &[0x88])); // :status 200 (static table)
    s.extend(frame(DATA, 0, 3, &body));
    s.extend(frame(DATA, FLAG_END_STREAM, 3, b"end"));
    let mut conn = H2Conn::new(&H2Config::default(), info(), H2Start::MidStream);
    let mut out = Vec::new();
    for seg in s.chunks(1448) {
        conn.data(Side::Server, seg, Timestamp(1), &mut out);
    }
    conn.close(Timestamp(2), &mut out);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(conn.stats().bytes_skipped, 5000);
    let resp = out[0].response.as_ref().unwrap();
    assert_eq!(resp.status, 200);
    let mut want = body.clone();
    want.extend_from_slice(b"end");
    assert!(resp.body.bytes == want, "body of {} bytes", resp.body.bytes.len());
}

/// Rough throughput check (run with `--release -- --ignored --nocapture`): small unary gRPC calls, where
/// per-frame costs dominate, and large bodies.
#[test]
#[ignore]
fn throughput() {
    for (calls, body) in [(20_000usize, 64usize), (500, 256 << 10)] {
        let mut ce = Enc::new();
        let mut se = Enc::new();
        let mut calls_bytes: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for k in 0..calls {
            let mut c = if k == 0 { PREFACE.to_vec() } else { Vec::new() };
            let mut s = Vec::new();
            let id = 1 + 2 * k as u32;
            let path = format!("/pkg.Svc/M{}", k % 10);
            let b = ce.block(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", &path),
                ("content-type", "application/grpc"),
                ("x-request-id", &format!("{k}")),
            ]);
            c.extend(frame(HEADERS, FLAG_END_HEADERS, id, &b));
            for chunk in vec![7u8; body].chunks(16384) {
                c.extend(frame(DATA, 0, id, chunk));
            }
            c.extend(frame(DATA, FLAG_END_STREAM, id, &[]));
            s.extend(frame(
                HEADERS,
                FLAG_END_HEADERS,
                id,
                &se.block(&[(":status", "200"), ("content-type", "application/grpc")]),
            ));
            s.extend(frame(DATA, 0, id, &grpc_msg(&[1u8; 40])));
            s.extend(frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, id, &se.block(&[("grpc-status", "0")])));
            calls_bytes.push((c, s));
        }
        let total: usize = calls_bytes.iter().map(|(c, s)| c.len() + s.len()).sum();
        let mut big = cfg();
        big.max_body = 1 << 20;
        let t = std::time::Instant::now();
        let mut conn = H2Conn::new(&big, info(), H2Start::PriorKnowledge);
        let mut out = Vec::new();
        for (c, s) in &calls_bytes {
            for a in c.chunks(1448) {
                conn.data(Side::Client, a, Timestamp(1), &mut out);
            }
            for b in s.chunks(1448) {
                conn.data(Side::Server, b, Timestamp(2), &mut out);
            }
        }
        conn.close(Timestamp(3), &mut out);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(out.len(), calls);
        assert!(out.iter().all(|e| e.flags.is_empty()), "{:?}", out[0].flags);
        eprintln!(
            "{calls} calls, body {body}: {:.1} MB in {secs:.3}s = {:.0} MB/s",
            total as f64 / 1e6,
            total as f64 / 1e6 / secs
        );
    }
}
