//! Behaviour tests of the flow table, one group per state, written as dialogues: segments in, sink events out.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use tapedeck_model::{Exchange, Timestamp};

use super::*;
use crate::decode::{TcpFlags, TcpSegment};
use crate::stream::{CloseReason, ConnMeta, Direction, SinkFactory, StreamSink};

use Direction::{ToOriginator as TO_O, ToResponder as TO_R};

// ===== recording sink =====

/// One sink call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Data(Direction, Vec<u8>),
    Gap(Direction, u64),
    Fin(Direction),
    Reset,
    Close(CloseReason),
}

#[derive(Clone, Debug)]
struct Rec {
    conn: u64,
    ev: Ev,
    ts: u64,
    /// Address of the first data byte, to check that in-order data is not copied.
    ptr: usize,
}

type Log = Rc<RefCell<Vec<Rec>>>;

struct Recorder {
    conn: u64,
    log: Log,
}

impl Recorder {
    fn push(&self, ev: Ev, ts: Timestamp, ptr: usize) {
        self.log.borrow_mut().push(Rec { conn: self.conn, ev, ts: ts.as_nanos(), ptr });
    }
}

impl StreamSink for Recorder {
    fn data(&mut self, dir: Direction, bytes: &[u8], ts: Timestamp, _out: &mut Vec<Exchange>) {
        assert!(!bytes.is_empty(), "empty data call");
        self.push(Ev::Data(dir, bytes.to_vec()), ts, bytes.as_ptr() as usize);
    }
    fn gap(&mut self, dir: Direction, len: u64, ts: Timestamp, _out: &mut Vec<Exchange>) {
        assert!(len > 0, "empty gap call");
        self.push(Ev::Gap(dir, len), ts, 0);
    }
    fn fin(&mut self, dir: Direction, ts: Timestamp, _out: &mut Vec<Exchange>) {
        self.push(Ev::Fin(dir), ts, 0);
    }
    fn reset(&mut self, ts: Timestamp, _out: &mut Vec<Exchange>) {
        self.push(Ev::Reset, ts, 0);
    }
    fn close(&mut self, reason: CloseReason, ts: Timestamp, _out: &mut Vec<Exchange>) {
        self.push(Ev::Close(reason), ts, 0);
    }
}

#[derive(Default)]
struct RecFactory {
    log: Log,
    metas: Vec<ConnMeta>,
}

impl SinkFactory for RecFactory {
    type Sink = Recorder;
    fn new_sink(&mut self, meta: &ConnMeta) -> Recorder {
        self.metas.push(*meta);
        Recorder { conn: meta.id, log: self.log.clone() }
    }
}

// ===== segment builders =====

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn c() -> SocketAddr {
    addr("10.0.0.1:40000")
}
fn s() -> SocketAddr {
    addr("10.0.0.2:80")
}

/// A segment; `flags` uses tcpdump letters: S (SYN), A (ACK), F (FIN), R (RST). ACK number only with `A`.
fn seg<'a>(src: SocketAddr, dst: SocketAddr, flags: &str, seq: u32, ack: u32, payload: &'a [u8]) -> TcpSegment<'a> {
    TcpSegment {
        ts: Timestamp(0),
        src,
        dst,
        seq,
        ack,
        flags: TcpFlags {
            syn: flags.contains('S'),
            ack: flags.contains('A'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
        },
        payload,
        missing: 0,
        auth_option: false,
    }
}

const C_ISN: u32 = 1000;
const S_ISN: u32 = 5000;

/// The table plus the events it produced; every segment gets a capture time 1 ms after the previous one unless
/// set explicitly with `at`.
struct H {
    t: FlowTable<RecFactory>,
    log: Log,
    out: Vec<Exchange>,
    ts: u64,
}

impl H {
    fn new(cfg: ReassemblyConfig) -> H {
        let factory = RecFactory::default();
        let log = factory.log.clone();
        H { t: FlowTable::new(cfg, factory), log, out: Vec::new(), ts: 1_000_000_000 }
    }
    fn send(&mut self, mut sg: TcpSegment<'_>) {
        self.ts += 1_000_000;
        sg.ts = Timestamp(self.ts);
        self.t.process(&sg, &mut self.out);
    }
    fn at(&mut self, ts: u64, mut sg: TcpSegment<'_>) {
        self.ts = ts;
        sg.ts = Timestamp(ts);
        self.t.process(&sg, &mut self.out);
    }
    /// Client data at stream offset `off` (after the handshake of `established`).
    fn c(&mut self, off: u32, payload: &[u8]) {
        self.send(seg(c(), s(), "A", C_ISN + 1 + off, S_ISN + 1, payload));
    }
    /// Server data at stream offset `off`.
    fn s(&mut self, off: u32, payload: &[u8]) {
        self.send(seg(s(), c(), "A", S_ISN + 1 + off, C_ISN + 1, payload));
    }
    fn records(&self) -> Vec<Rec> {
        self.log.borrow().clone()
    }
    /// Events of connection `conn`, consecutive data of one direction merged.
    fn events(&self, conn: u64) -> Vec<Ev> {
        let mut evs: Vec<Ev> = Vec::new();
        for r in self.records().into_iter().filter(|r| r.conn == conn) {
            if let (Some(Ev::Data(d0, buf)), Ev::Data(d1, more)) = (evs.last_mut(), &r.ev)
                && *d0 == *d1
            {
                buf.extend_from_slice(more);
                continue;
            }
            evs.push(r.ev);
        }
        evs
    }
    /// Raw (unmerged) events of connection `conn`.
    fn raw(&self, conn: u64) -> Vec<Ev> {
        self.records().into_iter().filter(|r| r.conn == conn).map(|r| r.ev).collect()
    }
    fn metas(&mut self) -> Vec<ConnMeta> {
        self.t.factory_mut().metas.clone()
    }
    fn stats(&self) -> ReassemblyStats {
        self.t.stats().clone()
    }
}

fn data(dir: Direction, b: &[u8]) -> Ev {
    Ev::Data(dir, b.to_vec())
}

/// A table with one connection whose handshake (SYN, SYN+ACK, ACK) was seen.
fn established(cfg: ReassemblyConfig) -> H {
    let mut h = H::new(cfg);
    h.send(seg(c(), s(), "S", C_ISN, 0, b""));
    h.send(seg(s(), c(), "SA", S_ISN, C_ISN + 1, b""));
    h.send(seg(c(), s(), "A", C_ISN + 1, S_ISN + 1, b""));
    h
}

fn default_established() -> H {
    established(ReassemblyConfig::default())
}

// ===== handshake and roles =====

#[test]
fn syn_sender_is_originator() {
    let mut h = default_established();
    h.c(0, b"GET / HTTP/1.1\r\n\r\n");
    h.s(0, b"HTTP/1.1 200 OK\r\n\r\n");
    let metas = h.metas();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].id, 1);
    assert_eq!(metas[0].originator, c());
    assert_eq!(metas[0].responder, s());
    assert!(metas[0].handshake_seen);
    assert_eq!(metas[0].first_seen, Timestamp(1_001_000_000));
    assert_eq!(h.events(1), vec![data(TO_R, b"GET / HTTP/1.1\r\n\r\n"), data(TO_O, b"HTTP/1.1 200 OK\r\n\r\n")]);
    assert_eq!(h.t.open_flows(), 1);
    assert_eq!(h.stats().flows_created, 1);
}

#[test]
fn syn_ack_first_makes_receiver_originator() {
    let mut h = H::new(ReassemblyConfig::default());
    h.send(seg(s(), c(), "SA", S_ISN, C_ISN + 1, b""));
    h.c(0, b"req");
    h.s(0, b"resp");
    let metas = h.metas();
    assert_eq!(metas[0].originator, c());
    assert!(metas[0].handshake_seen);
    assert_eq!(h.events(1), vec![data(TO_R, b"req"), data(TO_O, b"resp")]);
}

#[test]
fn mid_stream_join_uses_first_sender_and_first_data() {
    let mut h = H::new(ReassemblyConfig::default());
    h.send(seg(s(), c(), "A", 777_777, 123, b"tail of a response"));
    h.send(seg(c(), s(), "A", 123, 777_777 + 18, b"GET /next"));
    h.send(seg(s(), c(), "A", 777_777 + 18, 123 + 9, b"HTTP/1.1"));
    let metas = h.metas();
    assert_eq!(metas[0].originator, s());
    assert!(!metas[0].handshake_seen);
    assert_eq!(h.events(1), vec![data(TO_R, b"tail of a response"), data(TO_O, b"GET /next"), data(TO_R, b"HTTP/1.1")]);
}

// ===== established: in order, wrap-around, retransmission, overlap, out of order =====

#[test]
fn in_order_data_is_passed_without_copy() {
    let mut h = default_established();
    let payload = b"zero-copy please".to_vec();
    h.send(seg(c(), s(), "A", C_ISN + 1, S_ISN + 1, &payload));
    let recs = h.records();
    let rec = recs.iter().find(|r| matches!(r.ev, Ev::Data(..))).expect("a data event");
    assert_eq!(rec.ptr, payload.as_ptr() as usize);
    assert_eq!(rec.ts, h.ts);
}

#[test]
fn sequence_wraps_around_2_pow_32() {
    let isn = u32::MAX - 3;
    let mut h = H::new(ReassemblyConfig::default());
    h.send(seg(c(), s(), "S", isn, 0, b""));
    h.send(seg(s(), c(), "SA", S_ISN, isn.wrapping_add(1), b""));
    // Offsets 0..4 sit before the wrap, 4.. after it; the middle segment arrives last.
    h.send(seg(c(), s(), "A", isn.wrapping_add(1), S_ISN + 1, b"abc"));
    h.send(seg(c(), s(), "A", isn.wrapping_add(7), S_ISN + 1, b"ghij"));
    h.send(seg(c(), s(), "A", isn.wrapping_add(4), S_ISN + 1, b"def"));
    assert_eq!(isn.wrapping_add(7), 3);
    assert_eq!(h.events(1), vec![data(TO_R, b"abcdefghij")]);
    assert_eq!(h.stats().gaps, 0);
    assert_eq!(h.stats().out_of_window_segments, 0);
}

#[test]
fn retransmission_is_dropped_and_counted() {
    let mut h = default_established();
    h.c(0, b"hello");
    h.c(0, b"hello");
    h.c(3, b"lo world");
    assert_eq!(h.raw(1), vec![data(TO_R, b"hello"), data(TO_R, b" world")]);
    let st = h.stats();
    assert_eq!(st.retransmitted_segments, 1);
    assert_eq!(st.retransmitted_bytes, 5 + 2);
    assert_eq!(st.delivered_bytes, 11);
    assert_eq!(st.overlap_conflicts, 0);
}

#[test]
fn overlap_conflict_first_buffered_copy_wins() {
    let mut h = default_established();
    h.c(5, b"XYZ");
    h.c(0, b"hello world");
    assert_eq!(h.events(1), vec![data(TO_R, b"helloXYZrld")]);
    let st = h.stats();
    assert_eq!(st.overlap_conflicts, 1);
    assert_eq!(st.retransmitted_bytes, 3);
    assert_eq!(h.t.buffered_bytes(), 0);
}

#[test]
fn overlap_conflict_between_buffered_copies() {
    let mut h = default_established();
    h.c(4, b"AAAA");
    h.c(6, b"BBBB");
    h.c(0, b"0123");
    assert_eq!(h.events(1), vec![data(TO_R, b"0123AAAABB")]);
    assert_eq!(h.stats().overlap_conflicts, 1);
}

#[test]
fn out_of_order_segments_are_buffered_then_delivered() {
    let mut h = default_established();
    h.c(6, b"ghi");
    h.c(3, b"def");
    assert_eq!(h.raw(1), vec![]);
    assert_eq!(h.t.buffered_bytes(), 6);
    h.c(0, b"abc");
    assert_eq!(h.raw(1), vec![data(TO_R, b"abc"), data(TO_R, b"def"), data(TO_R, b"ghi")]);
    let st = h.stats();
    assert_eq!(st.ooo_segments_buffered, 2);
    assert_eq!(st.peak_buffered_bytes, 6);
    assert_eq!(h.t.buffered_bytes(), 0);
    // Buffered data keeps the capture time of the packet that carried it.
    let ts: Vec<u64> = h.records().iter().map(|r| r.ts).collect();
    assert!(ts[1] < ts[0] && ts[2] < ts[1], "timestamps {ts:?}");
}

#[test]
fn offload_super_segment_in_order_and_out_of_order() {
    let big: Vec<u8> = (0..65_536 + 1_000).map(|i| (i % 251) as u8).collect();
    let mut h = default_established();
    h.c(0, &big);
    assert_eq!(h.raw(1), vec![data(TO_R, &big)]);
    // Out of order behind a hole, with a per-direction cap smaller than the segment: skipped to, not buffered.
    let cfg = ReassemblyConfig { max_ooo_bytes_per_direction: 4096, ..Default::default() };
    let mut h = established(cfg);
    h.c(10, &big);
    assert_eq!(h.raw(1), vec![Ev::Gap(TO_R, 10), data(TO_R, &big)]);
    assert_eq!(h.stats().cap_hits_direction_bytes, 1);
    assert_eq!(h.t.buffered_bytes(), 0);
}

// ===== gaps: acked-unseen, caps, snaplen =====

#[test]
fn hole_acked_by_peer_becomes_gap() {
    let mut h = default_established();
    h.c(0, b"01234");
    h.c(10, b"ABCDE");
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234")]);
    // The server acknowledges everything: bytes 5..10 reached it but not the capture. Not a gap yet: the data
    // may still come (a capture can show an ACK before what it acknowledges).
    h.send(seg(s(), c(), "A", S_ISN + 1, C_ISN + 1 + 15, b""));
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234")]);
    // An acknowledgement once the grace has passed makes it one.
    let grace = ReassemblyConfig::default().acked_gap_grace_nanos;
    h.at(h.ts + grace, seg(s(), c(), "A", S_ISN + 1, C_ISN + 1 + 15, b""));
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234"), Ev::Gap(TO_R, 5), data(TO_R, b"ABCDE")]);
    let st = h.stats();
    assert_eq!((st.gaps, st.gap_bytes, st.gaps_acked_unseen), (1, 5, 1));
}

#[test]
fn ack_past_everything_seen_is_a_gap_even_without_buffered_data() {
    let mut h = ack_gap_at_once();
    h.c(0, b"01234");
    h.s(0, b"reply");
    h.send(seg(s(), c(), "A", S_ISN + 6, C_ISN + 1 + 9, b""));
    h.c(9, b"next");
    assert_eq!(h.events(1), vec![data(TO_R, b"01234"), data(TO_O, b"reply"), Ev::Gap(TO_R, 4), data(TO_R, b"next")]);
    // The late copy of the skipped bytes is dropped as a retransmission.
    h.c(5, b"late");
    assert_eq!(h.stats().retransmitted_bytes, 4);
}

#[test]
fn an_ack_seen_before_the_data_it_acknowledges_makes_no_gap() {
    // suricata-verify bug-5392: the server's ACKs are captured just before the client's data they acknowledge.
    let mut h = default_established();
    h.c(0, b"01234");
    h.send(seg(s(), c(), "A", S_ISN + 1, C_ISN + 1 + 15, b""));
    h.c(5, b"56789");
    h.c(10, b"ABCDE");
    let grace = ReassemblyConfig::default().acked_gap_grace_nanos;
    h.at(h.ts + grace, seg(s(), c(), "A", S_ISN + 1, C_ISN + 1 + 15, b""));
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234"), data(TO_R, b"56789"), data(TO_R, b"ABCDE")]);
    assert_eq!(h.stats().gaps, 0);
}

#[test]
fn an_ack_of_the_fin_past_a_hole_makes_the_gap_at_once() {
    let mut h = default_established();
    h.c(0, b"01234");
    // Bytes 5..10 never captured; the FIN comes after them and the server acknowledges it.
    h.send(seg(c(), s(), "FA", C_ISN + 1 + 10, S_ISN + 1, b""));
    h.send(seg(s(), c(), "A", S_ISN + 1, C_ISN + 1 + 11, b""));
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234"), Ev::Gap(TO_R, 5), Ev::Fin(TO_R)]);
}

#[test]
fn the_clock_settles_an_acknowledged_hole_when_the_flow_sends_nothing_more() {
    let grace = ReassemblyConfig::default().acked_gap_grace_nanos;
    let want = vec![data(TO_R, b"01234"), Ev::Gap(TO_R, 5), data(TO_R, b"ABCDE")];
    // Live capture: the timer's clock.
    let mut h = default_established();
    h.c(0, b"01234");
    h.c(10, b"ABCDE");
    h.send(seg(s(), c(), "A", S_ISN + 1, C_ISN + 1 + 15, b""));
    h.t.advance(Timestamp(h.ts + grace - 1), &mut h.out);
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234")]);
    h.t.advance(Timestamp(h.ts + grace), &mut h.out);
    assert_eq!(h.raw(1), want);
    // A file: another connection's packets move the clock.
    let mut h = default_established();
    h.c(0, b"01234");
    h.c(10, b"ABCDE");
    h.send(seg(s(), c(), "A", S_ISN + 1, C_ISN + 1 + 15, b""));
    h.at(h.ts + grace, seg(addr("10.0.0.9:5000"), s(), "S", 1, 0, b""));
    assert_eq!(h.raw(1), want);
    assert_eq!(h.stats().gaps_acked_unseen, 1);
}

#[test]
fn acknowledged_bytes_still_in_their_grace_are_a_gap_at_close() {
    let mut h = default_established();
    h.c(0, b"01234");
    h.send(seg(s(), c(), "A", S_ISN + 1, C_ISN + 1 + 8, b""));
    h.send(seg(s(), c(), "RA", S_ISN + 1, C_ISN + 1 + 8, b""));
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234"), Ev::Gap(TO_R, 3), Ev::Reset, Ev::Close(CloseReason::Closed)]);
    assert_eq!(h.stats().gaps_acked_unseen, 1);
}

/// An established connection whose acknowledged-but-unseen bytes become a gap at once.
fn ack_gap_at_once() -> H {
    established(ReassemblyConfig { acked_gap_grace_nanos: 0, ..ReassemblyConfig::default() })
}

#[test]
fn ack_within_delivered_or_absurdly_far_is_ignored() {
    let mut h = default_established();
    h.c(0, b"01234");
    h.send(seg(s(), c(), "A", S_ISN + 1, C_ISN + 1 + 3, b""));
    h.send(seg(s(), c(), "A", S_ISN + 1, C_ISN.wrapping_add(1 << 31), b""));
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234")]);
    assert_eq!(h.stats().gaps, 0);
}

#[test]
fn per_direction_byte_cap_skips_the_hole() {
    let cfg = ReassemblyConfig { max_ooo_bytes_per_direction: 8, ..Default::default() };
    let mut h = established(cfg);
    h.c(2, b"cdef");
    h.c(8, b"ijkl");
    assert_eq!(h.raw(1), vec![]);
    assert_eq!(h.t.buffered_bytes(), 8);
    // One more byte would exceed the cap: the first hole (0..2) is given up and what follows it delivered.
    h.c(12, b"m");
    assert_eq!(h.raw(1), vec![Ev::Gap(TO_R, 2), data(TO_R, b"cdef")]);
    assert_eq!(h.t.buffered_bytes(), 5);
    h.c(6, b"gh");
    assert_eq!(h.events(1), vec![Ev::Gap(TO_R, 2), data(TO_R, b"cdefghijklm")]);
    let st = h.stats();
    assert_eq!((st.cap_hits_direction_bytes, st.gaps_cap, st.gap_bytes), (1, 1, 2));
    assert_eq!(st.peak_buffered_bytes, 8);
}

#[test]
fn per_direction_segment_cap_skips_the_hole() {
    let cfg = ReassemblyConfig { max_ooo_segments_per_direction: 2, ..Default::default() };
    let mut h = established(cfg);
    h.c(1, b"b");
    h.c(3, b"d");
    h.c(5, b"f");
    assert_eq!(h.raw(1), vec![Ev::Gap(TO_R, 1), data(TO_R, b"b")]);
    assert_eq!(h.stats().cap_hits_direction_segments, 1);
    h.c(7, b"h");
    assert_eq!(h.raw(1), vec![Ev::Gap(TO_R, 1), data(TO_R, b"b"), Ev::Gap(TO_R, 1), data(TO_R, b"d")]);
    assert_eq!(h.stats().cap_hits_direction_segments, 2);

    // A segment that fills between buffered pieces splits into several: the count is enforced afterwards too.
    let cfg = ReassemblyConfig { max_ooo_segments_per_direction: 3, ..Default::default() };
    let mut h = established(cfg);
    h.c(2, b"c");
    h.c(6, b"g");
    h.c(1, b"bcdefghi");
    assert_eq!(h.events(1), vec![Ev::Gap(TO_R, 1), data(TO_R, b"bcdefghi")]);
    assert_eq!(h.stats().cap_hits_direction_segments, 1);
    assert_eq!(h.t.buffered_bytes(), 0);
}

#[test]
fn global_cap_makes_a_direction_skip_instead_of_buffering() {
    let cfg = ReassemblyConfig { max_buffered_bytes_total: 6, ..Default::default() };
    let mut h = established(cfg);
    h.c(4, b"efgh");
    // The server direction may not buffer 4 more bytes: it skips to its segment instead.
    h.s(2, b"CDEF");
    assert_eq!(h.raw(1), vec![Ev::Gap(TO_O, 2), data(TO_O, b"CDEF")]);
    assert_eq!(h.stats().cap_hits_total_bytes, 1);
    assert_eq!(h.t.buffered_bytes(), 4);
}

#[test]
fn snaplen_missing_bytes_become_a_gap_after_the_captured_ones() {
    let mut h = default_established();
    let mut sg = seg(c(), s(), "A", C_ISN + 1, S_ISN + 1, b"abcd");
    sg.missing = 6;
    h.send(sg);
    h.c(10, b"next");
    // An out-of-order truncated segment keeps its missing tail too.
    let mut sg = seg(c(), s(), "A", C_ISN + 1 + 20, S_ISN + 1, b"xy");
    sg.missing = 3;
    h.send(sg);
    h.c(14, b"uvwxyz");
    assert_eq!(
        h.raw(1),
        vec![
            data(TO_R, b"abcd"),
            Ev::Gap(TO_R, 6),
            data(TO_R, b"next"),
            data(TO_R, b"uvwxyz"),
            data(TO_R, b"xy"),
            Ev::Gap(TO_R, 3),
        ]
    );
    let st = h.stats();
    assert_eq!((st.snaplen_truncated_segments, st.snaplen_missing_bytes, st.gaps_snaplen), (2, 9, 2));
    assert_eq!(st.gap_bytes, 9);
}

#[test]
fn out_of_window_segments_are_dropped() {
    let mut h = default_established();
    h.c(0, b"ok");
    h.send(seg(c(), s(), "A", C_ISN + 1 + (1 << 30) + 5, S_ISN + 1, b"far"));
    h.send(seg(c(), s(), "A", C_ISN - 20, S_ISN + 1, b"before isn"));
    // Straddling the start: only the part from the ISN on counts, and it was delivered already.
    h.send(seg(c(), s(), "A", C_ISN - 1, S_ISN + 1, b"xxok"));
    assert_eq!(h.raw(1), vec![data(TO_R, b"ok")]);
    let st = h.stats();
    assert_eq!(st.out_of_window_segments, 2);
    assert_eq!(st.out_of_window_bytes, 3 + 10 + 2);
    assert_eq!(st.retransmitted_bytes, 2);
}

// ===== FIN, RST, close =====

#[test]
fn fin_waits_for_out_of_order_data_before_it() {
    let mut h = default_established();
    h.c(0, b"01234");
    h.send(seg(c(), s(), "FA", C_ISN + 1 + 10, S_ISN + 1, b"ABCDE"));
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234")]);
    h.c(5, b"56789");
    assert_eq!(h.raw(1), vec![data(TO_R, b"01234"), data(TO_R, b"56789"), data(TO_R, b"ABCDE"), Ev::Fin(TO_R)]);
    // Bytes beyond the FIN cannot belong to the stream.
    h.c(15, b"zz");
    assert_eq!(h.stats().out_of_window_segments, 1);
    assert_eq!(h.t.open_flows(), 1);
}

#[test]
fn both_fins_close_the_flow_and_trailing_packets_are_dropped() {
    let mut h = default_established();
    h.c(0, b"req");
    h.send(seg(c(), s(), "FA", C_ISN + 4, S_ISN + 1, b""));
    h.s(0, b"resp");
    h.send(seg(s(), c(), "FA", S_ISN + 5, C_ISN + 5, b""));
    assert_eq!(h.t.open_flows(), 0);
    assert_eq!(
        h.events(1),
        vec![data(TO_R, b"req"), Ev::Fin(TO_R), data(TO_O, b"resp"), Ev::Fin(TO_O), Ev::Close(CloseReason::Closed)]
    );
    // The last ACK and a late retransmission: no new flow with reversed roles.
    h.send(seg(c(), s(), "A", C_ISN + 5, S_ISN + 6, b""));
    h.s(0, b"resp");
    assert_eq!(h.t.open_flows(), 0);
    assert_eq!(h.metas().len(), 1);
    let st = h.stats();
    assert_eq!((st.flows_closed, st.late_segments_after_close, st.fins), (1, 2, 2));
    // A new connection on the same 4-tuple (new ISN) is a new flow.
    h.send(seg(c(), s(), "S", 90_000, 0, b""));
    assert_eq!(h.t.open_flows(), 1);
    let metas = h.metas();
    assert_eq!((metas[1].id, metas[1].originator, metas[1].handshake_seen), (2, c(), true));
}

#[test]
fn tombstone_drops_a_retransmitted_syn_and_expires() {
    let cfg = ReassemblyConfig { tombstone_nanos: 1_000_000_000, ..Default::default() };
    let mut h = established(cfg);
    h.send(seg(c(), s(), "RA", C_ISN + 1, S_ISN + 1, b""));
    h.send(seg(c(), s(), "S", C_ISN, 0, b""));
    assert_eq!(h.t.open_flows(), 0);
    assert_eq!(h.stats().late_segments_after_close, 1);
    // Long after: the same 4-tuple opens a mid-stream flow again.
    h.at(h.ts + 2_000_000_000, seg(s(), c(), "A", S_ISN + 1, C_ISN + 1, b"hi"));
    assert_eq!(h.t.open_flows(), 1);
    assert_eq!(h.metas()[1].originator, s());
    assert_eq!(h.t.tombstones(), 0);
}

/// `sg` with a TCP-MD5 (or TCP-AO) option.
fn signed(mut sg: TcpSegment<'_>) -> TcpSegment<'_> {
    sg.auth_option = true;
    sg
}

#[test]
fn a_signed_rst_on_an_unsigned_connection_is_ignored() {
    let mut h = default_established();
    h.send(signed(seg(c(), s(), "RA", C_ISN + 1, S_ISN + 1, b"")));
    assert_eq!(h.t.open_flows(), 1);
    h.c(0, b"GET");
    assert_eq!(h.raw(1), vec![data(TO_R, b"GET")]);
    let st = h.stats();
    assert_eq!((st.resets, st.resets_ignored_signed, st.flows_closed), (1, 1, 0));
    // An unsigned RST still ends it.
    h.send(seg(c(), s(), "RA", C_ISN + 4, S_ISN + 1, b""));
    assert_eq!(h.t.open_flows(), 0);
}

#[test]
fn a_signed_rst_counts_where_the_handshake_was_signed_or_not_seen() {
    // The SYN carried TCP-MD5: the endpoints sign, a signed RST is theirs.
    let mut h = H::new(ReassemblyConfig::default());
    h.send(signed(seg(c(), s(), "S", C_ISN, 0, b"")));
    h.send(signed(seg(s(), c(), "SA", S_ISN, C_ISN + 1, b"")));
    h.send(signed(seg(s(), c(), "RA", S_ISN + 1, C_ISN + 1, b"")));
    assert_eq!((h.t.open_flows(), h.stats().resets_ignored_signed), (0, 0));
    // Joined mid-stream: whether the connection signs is unknown, the RST is believed.
    let mut h = H::new(ReassemblyConfig::default());
    h.send(seg(c(), s(), "A", C_ISN + 1, S_ISN + 1, b"GET"));
    h.send(signed(seg(s(), c(), "RA", S_ISN + 1, C_ISN + 4, b"")));
    assert_eq!((h.t.open_flows(), h.stats().resets_ignored_signed), (0, 0));
}

#[test]
fn rst_resets_then_closes_and_flushes_buffered_data() {
    let mut h = default_established();
    h.c(0, b"ab");
    h.c(4, b"ef");
    h.send(seg(s(), c(), "R", S_ISN + 1, 0, b""));
    assert_eq!(
        h.raw(1),
        vec![data(TO_R, b"ab"), Ev::Gap(TO_R, 2), data(TO_R, b"ef"), Ev::Reset, Ev::Close(CloseReason::Closed)]
    );
    assert_eq!(h.t.open_flows(), 0);
    assert_eq!(h.t.buffered_bytes(), 0);
    let st = h.stats();
    assert_eq!((st.resets, st.flows_closed, st.gaps_at_close), (1, 1, 1));
    // A RST of nothing known is counted, not turned into a flow.
    h.send(seg(addr("10.9.9.9:1"), s(), "R", 1, 0, b""));
    assert_eq!(h.stats().resets_without_flow, 1);
    assert_eq!(h.t.open_flows(), 0);
}

#[test]
fn syn_with_new_isn_replaces_an_open_flow() {
    let mut h = default_established();
    h.c(0, b"old");
    h.send(seg(c(), s(), "S", C_ISN, 0, b""));
    assert_eq!(h.metas().len(), 1, "a retransmitted SYN is not a new connection");
    h.send(seg(c(), s(), "S", 42, 0, b""));
    h.send(seg(s(), c(), "SA", 7, 43, b""));
    h.send(seg(c(), s(), "A", 43, 8, b"new"));
    assert_eq!(h.events(1), vec![data(TO_R, b"old"), Ev::Close(CloseReason::Closed)]);
    assert_eq!(h.events(2), vec![data(TO_R, b"new")]);
    assert_eq!(h.stats().flows_replaced, 1);
}

#[test]
fn late_syn_after_syn_ack_first_is_the_same_connection() {
    let mut h = H::new(ReassemblyConfig::default());
    h.send(seg(s(), c(), "SA", S_ISN, C_ISN + 1, b""));
    h.send(seg(c(), s(), "S", C_ISN, 0, b""));
    h.c(0, b"req");
    assert_eq!(h.metas().len(), 1);
    assert_eq!(h.events(1), vec![data(TO_R, b"req")]);
    assert_eq!(h.stats().flows_replaced, 0);
}

#[test]
fn tombstones_are_bounded() {
    let cfg = ReassemblyConfig { max_tombstones: 1, ..Default::default() };
    let mut h = H::new(cfg);
    let other = addr("10.0.0.7:7");
    h.send(seg(c(), s(), "A", 1, 1, b"a"));
    h.send(seg(other, s(), "A", 1, 1, b"b"));
    h.send(seg(c(), s(), "R", 2, 0, b""));
    h.send(seg(other, s(), "R", 2, 0, b""));
    assert_eq!(h.t.tombstones(), 1);
    // The first tombstone was forgotten: a late segment of that 4-tuple opens a flow again.
    h.send(seg(s(), c(), "A", 1, 2, b"late"));
    assert_eq!(h.t.open_flows(), 1);
    // The second is remembered.
    h.send(seg(s(), other, "A", 1, 2, b"late"));
    assert_eq!(h.t.open_flows(), 1);
    assert_eq!(h.stats().late_segments_after_close, 1);
}

// ===== idle, eviction, end of input =====

#[test]
fn idle_flows_expire_by_capture_time() {
    let cfg = ReassemblyConfig { idle_timeout_nanos: 1_000_000_000, ..Default::default() };
    let mut h = H::new(cfg);
    let a = addr("10.0.0.3:1000");
    let b = addr("10.0.0.4:2000");
    h.at(10_000_000_000, seg(c(), s(), "A", 1, 1, b"x"));
    h.at(10_500_000_000, seg(a, b, "A", 1, 1, b"y"));
    h.at(11_000_000_000, seg(a, b, "A", 2, 1, b"y"));
    assert_eq!(h.t.open_flows(), 2, "exactly the timeout is not idle yet");
    h.at(11_200_000_000, seg(a, b, "A", 3, 1, b"y"));
    assert_eq!(h.t.open_flows(), 1);
    assert_eq!(h.raw(1), vec![data(TO_R, b"x"), Ev::Close(CloseReason::Idle)]);
    let close = h.records().into_iter().find(|r| r.ev == Ev::Close(CloseReason::Idle)).expect("idle close");
    assert_eq!(close.ts, 11_000_000_000, "closed at last seen + timeout");
    assert_eq!(h.stats().flows_expired_idle, 1);
    // The 4-tuple comes back: a new (mid-stream) flow.
    h.at(11_300_000_000, seg(c(), s(), "A", 2, 1, b"z"));
    assert_eq!(h.metas().len(), 3);
}

#[test]
fn flow_cap_evicts_the_least_recently_seen() {
    let cfg = ReassemblyConfig { max_flows: 2, ..Default::default() };
    let mut h = H::new(cfg);
    let p = |n: u16| addr(&format!("10.0.1.1:{n}"));
    h.send(seg(p(1), s(), "A", 1, 1, b"one"));
    h.send(seg(p(2), s(), "A", 1, 1, b"two"));
    h.send(seg(p(1), s(), "A", 4, 1, b"ONE"));
    h.send(seg(p(3), s(), "A", 1, 1, b"three"));
    assert_eq!(h.t.open_flows(), 2);
    assert_eq!(h.raw(2), vec![data(TO_R, b"two"), Ev::Close(CloseReason::Evicted)]);
    assert_eq!(h.raw(1), vec![data(TO_R, b"one"), data(TO_R, b"ONE")]);
    assert_eq!(h.stats().flows_evicted, 1);
}

#[test]
fn flush_all_closes_in_id_order_and_declares_trailing_holes() {
    let mut h = default_established();
    h.c(0, b"ab");
    h.c(5, b"fg");
    h.send(seg(s(), c(), "FA", S_ISN + 1 + 3, C_ISN + 3, b""));
    h.send(seg(addr("10.0.0.9:9"), s(), "A", 1, 1, b"other"));
    // Touch flow 1 last so that LRU order differs from id order.
    h.c(2, b"c");
    let mut out = Vec::new();
    h.t.flush_all(Timestamp(99), &mut out);
    assert_eq!(
        h.events(1),
        vec![
            data(TO_R, b"abc"),
            Ev::Gap(TO_R, 2),
            data(TO_R, b"fg"),
            Ev::Gap(TO_O, 3),
            Ev::Fin(TO_O),
            Ev::Close(CloseReason::EndOfInput),
        ]
    );
    let closes: Vec<u64> = h.records().iter().filter(|r| matches!(r.ev, Ev::Close(_))).map(|r| r.conn).collect();
    assert_eq!(closes, vec![1, 2]);
    assert_eq!(h.t.open_flows(), 0);
    assert_eq!(h.t.buffered_bytes(), 0);
    assert_eq!(h.stats().flows_end_of_input, 2);
    assert_eq!(h.stats().gaps_at_close, 2);
}

// ===== property tests =====

mod props {
    use proptest::prelude::*;

    use super::*;

    /// One packet of a generated conversation: `dir` 0 is client to server.
    #[derive(Clone, Copy, Debug)]
    struct Pkt {
        dir: usize,
        off: usize,
        len: usize,
        fin: bool,
    }

    #[derive(Clone, Debug)]
    struct Scenario {
        streams: [Vec<u8>; 2],
        isn: [u32; 2],
        sizes: Vec<usize>,
        dups: Vec<(usize, usize, usize)>,
        jitter: Vec<usize>,
        fin_on_last: [bool; 2],
    }

    fn isn() -> impl Strategy<Value = u32> {
        prop_oneof![any::<u32>(), (0u32..4000).prop_map(|d| u32::MAX - d)]
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (
            [proptest::collection::vec(any::<u8>(), 0..3000), proptest::collection::vec(any::<u8>(), 0..3000)],
            [isn(), isn()],
            proptest::collection::vec(1usize..400, 1..20),
            proptest::collection::vec((0usize..2, 0usize..3000, 1usize..500), 0..12),
            proptest::collection::vec(0usize..8, 1..50),
            [any::<bool>(), any::<bool>()],
        )
            .prop_map(|(streams, isn, sizes, dups, jitter, fin_on_last)| Scenario {
                streams,
                isn,
                sizes,
                dups,
                jitter,
                fin_on_last,
            })
    }

    /// Cuts both streams into segments (sizes cycle through `sizes`), adds duplicates with their own boundaries
    /// and the FINs, interleaves the directions, then reorders within a window of 8 packets.
    fn packets(sc: &Scenario) -> Vec<Pkt> {
        let mut per_dir: [Vec<Pkt>; 2] = [Vec::new(), Vec::new()];
        for (dir, pkts) in per_dir.iter_mut().enumerate() {
            let len = sc.streams[dir].len();
            let mut off = 0;
            let mut k = dir;
            while off < len {
                let n = sc.sizes[k % sc.sizes.len()].min(len - off);
                pkts.push(Pkt { dir, off, len: n, fin: false });
                off += n;
                k += 1;
            }
            match pkts.last_mut() {
                Some(last) if sc.fin_on_last[dir] => last.fin = true,
                _ => pkts.push(Pkt { dir, off: len, len: 0, fin: true }),
            }
        }
        for &(dir, start, n) in &sc.dups {
            let len = sc.streams[dir].len();
            if len > 0 {
                let off = start % len;
                let n = n.min(len - off);
                let at = start % (per_dir[dir].len() + 1);
                per_dir[dir].insert(at, Pkt { dir, off, len: n, fin: false });
            }
        }
        let mut all: Vec<Pkt> = Vec::new();
        let (mut a, mut b) = (per_dir[0].iter(), per_dir[1].iter());
        loop {
            match (a.next(), b.next()) {
                (None, None) => break,
                (x, y) => all.extend(x.into_iter().chain(y).copied()),
            }
        }
        let mut keyed: Vec<(usize, Pkt)> =
            all.into_iter().enumerate().map(|(i, p)| (i + sc.jitter[i % sc.jitter.len()], p)).collect();
        keyed.sort_by_key(|&(k, _)| k);
        keyed.into_iter().map(|(_, p)| p).collect()
    }

    /// What each receiver has received, to put honest ACK numbers on the packets (a receiver only acknowledges
    /// what was sent before the acknowledging packet).
    struct Receiver {
        got: Vec<bool>,
        prefix: usize,
        fin: bool,
    }

    impl Receiver {
        fn new(len: usize) -> Receiver {
            Receiver { got: vec![false; len], prefix: 0, fin: false }
        }
        fn receive(&mut self, p: &Pkt) {
            for b in &mut self.got[p.off..p.off + p.len] {
                *b = true;
            }
            self.fin |= p.fin;
            while self.prefix < self.got.len() && self.got[self.prefix] {
                self.prefix += 1;
            }
        }
        fn ack(&self, isn: u32) -> u32 {
            let fin = u32::from(self.fin && self.prefix == self.got.len());
            isn.wrapping_add(1).wrapping_add(self.prefix as u32).wrapping_add(fin)
        }
    }

    /// Runs the handshake then `pkts` (those with `keep` false are "lost in capture": the receiver still got
    /// them). Returns the harness after `flush_all`.
    fn run(sc: &Scenario, pkts: &[Pkt], keep: &[bool], cfg: ReassemblyConfig) -> H {
        let addrs = [c(), s()];
        let mut h = H::new(cfg.clone());
        h.send(seg(c(), s(), "S", sc.isn[0], 0, b""));
        h.send(seg(s(), c(), "SA", sc.isn[1], sc.isn[0].wrapping_add(1), b""));
        let mut rx = [Receiver::new(sc.streams[0].len()), Receiver::new(sc.streams[1].len())];
        for (i, p) in pkts.iter().enumerate() {
            let (d, r) = (p.dir, 1 - p.dir);
            let ack = rx[r].ack(sc.isn[r]);
            let payload = &sc.streams[d][p.off..p.off + p.len];
            let seq = sc.isn[d].wrapping_add(1).wrapping_add(p.off as u32);
            if keep.get(i).copied().unwrap_or(true) {
                h.send(seg(addrs[d], addrs[r], if p.fin { "FA" } else { "A" }, seq, ack, payload));
            }
            rx[d].receive(p);
            assert!(h.t.buffered_bytes() <= cfg.max_buffered_bytes_total);
        }
        let mut out = Vec::new();
        h.t.flush_all(Timestamp(u64::MAX), &mut out);
        assert_eq!(h.t.buffered_bytes(), 0);
        assert_eq!(h.t.open_flows(), 0);
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn any_segmentation_reordering_and_duplication_yields_the_streams(sc in scenario()) {
            let pkts = packets(&sc);
            let mut h = run(&sc, &pkts, &[], ReassemblyConfig::default());
            let mut expected = Vec::new();
            let (c_bytes, s_bytes) = (&sc.streams[0], &sc.streams[1]);
            let mut got_c = Vec::new();
            let mut got_s = Vec::new();
            let mut fins = [0, 0];
            let mut closes = Vec::new();
            for ev in h.raw(1) {
                match ev {
                    Ev::Data(TO_R, b) => { prop_assert_eq!(fins[0], 0); got_c.extend(b) }
                    Ev::Data(TO_O, b) => { prop_assert_eq!(fins[1], 0); got_s.extend(b) }
                    Ev::Fin(d) => fins[d.index()] += 1,
                    Ev::Close(r) => closes.push(r),
                    other => expected.push(other),
                }
            }
            prop_assert_eq!(expected, Vec::<Ev>::new(), "no gap or reset");
            prop_assert!(&got_c == c_bytes, "client stream differs ({} vs {} bytes)", got_c.len(), c_bytes.len());
            prop_assert!(&got_s == s_bytes, "server stream differs ({} vs {} bytes)", got_s.len(), s_bytes.len());
            prop_assert_eq!(fins, [1, 1]);
            prop_assert_eq!(closes, vec![CloseReason::Closed]);
            prop_assert_eq!(h.metas().len(), 1);
            let st = h.stats();
            prop_assert_eq!((st.gaps, st.overlap_conflicts, st.out_of_window_segments), (0, 0, 0));
            prop_assert_eq!(st.delivered_bytes, (c_bytes.len() + s_bytes.len()) as u64);
        }

        #[test]
        fn loss_and_small_caps_keep_bytes_in_place(
            sc in scenario(),
            keep in proptest::collection::vec(proptest::bool::weighted(0.85), 0..200),
            dir_cap in 1usize..3000,
            seg_cap in 0usize..12,
            total_cap in 0usize..4000,
        ) {
            let pkts = packets(&sc);
            let cfg = ReassemblyConfig {
                max_ooo_bytes_per_direction: dir_cap,
                max_ooo_segments_per_direction: seg_cap,
                max_buffered_bytes_total: total_cap,
                ..Default::default()
            };
            let h = run(&sc, &pkts, &keep, cfg);
            let mut pos = [0usize, 0];
            let mut fins = [false, false];
            let mut closes = 0;
            for ev in h.raw(1) {
                prop_assert_eq!(closes, 0, "nothing after close");
                match ev {
                    Ev::Data(d, b) => {
                        let i = d.index();
                        prop_assert!(!fins[i]);
                        let stream = &sc.streams[i];
                        prop_assert!(pos[i] + b.len() <= stream.len(), "data beyond the stream");
                        prop_assert!(b[..] == stream[pos[i]..pos[i] + b.len()], "bytes out of place at {}", pos[i]);
                        pos[i] += b.len();
                    }
                    Ev::Gap(d, n) => {
                        prop_assert!(!fins[d.index()]);
                        pos[d.index()] += n as usize;
                    }
                    Ev::Fin(d) => {
                        prop_assert!(!fins[d.index()]);
                        fins[d.index()] = true;
                    }
                    Ev::Reset => prop_assert!(false, "no reset was sent"),
                    Ev::Close(_) => closes += 1,
                }
            }
            prop_assert_eq!(closes, 1);
            for i in 0..2 {
                // A FIN lost in capture but acknowledged can stretch the last gap by its one sequence number.
                prop_assert!(pos[i] <= sc.streams[i].len() + 1);
                if fins[i] {
                    prop_assert!(pos[i] == sc.streams[i].len());
                }
            }
        }
    }
}

#[test]
fn late_copies_after_an_idle_close_do_not_open_a_new_flow_but_new_bytes_do() {
    let cfg = ReassemblyConfig { idle_timeout_nanos: 10_000_000_000, ..ReassemblyConfig::default() };
    let mut h = established(cfg);
    h.c(0, b"GET / HTTP/1.1\r\n\r\n");
    h.s(0, b"HTTP/1.1 200 OK\r\n\r\n");
    // Another flow's packet a minute later (or a clock jump) closes the first one for idleness.
    let later = h.ts + 60_000_000_000;
    h.at(later, seg(addr("10.9.9.9:1"), addr("10.9.9.8:2"), "A", 1, 1, b"x"));
    assert_eq!(h.stats().flows_expired_idle, 1);
    let created = h.stats().flows_created;
    // The same request again, and a bare ACK: copies of what was delivered. No new flow, no second request.
    h.c(0, b"GET / HTTP/1.1\r\n\r\n");
    h.send(seg(s(), c(), "A", S_ISN + 1 + 19, C_ISN + 1 + 18, b""));
    assert_eq!(h.stats().flows_created, created, "late copies must not open a flow");
    // The connection resumes with new bytes: a new (mid-stream) flow, as after any idle close.
    h.c(18, b"GET /next HTTP/1.1\r\n\r\n");
    assert_eq!(h.stats().flows_created, created + 1);
    let conn = h.metas().last().unwrap().id;
    assert_eq!(h.events(conn), vec![data(Direction::ToResponder, b"GET /next HTTP/1.1\r\n\r\n")]);
}
