//! Property: any segmentation, reordering (within the buffering window) and duplication of a connection's TCP
//! segments yields the same exchanges as the same conversation delivered in order in one piece per message.
//!
//! Drives reassembly and protocol detection together (FlowTable<SessionFactory>) on synthetic TCP segments.

use std::net::SocketAddr;

use proptest::prelude::*;
use tapedeck_agent::decode::{TcpFlags, TcpSegment};
use tapedeck_agent::reassembly::{FlowTable, ReassemblyConfig};
use tapedeck_agent::session::{SessionConfig, SessionFactory};
use tapedeck_model::{Exchange, Timestamp};

const CLIENT: &str = "10.0.0.1:40000";
const SERVER: &str = "10.0.0.2:8080";

/// A conversation: request and response messages, in order.
fn conversation(n: usize, body_sizes: &[usize]) -> (Vec<u8>, Vec<u8>) {
    let mut req = Vec::new();
    let mut resp = Vec::new();
    for i in 0..n {
        let size = body_sizes[i % body_sizes.len()];
        if i % 2 == 0 {
            req.extend_from_slice(format!("GET /item/{i}?q=1 HTTP/1.1\r\nHost: svc.local\r\n\r\n").as_bytes());
        } else {
            let body = vec![b'a' + (i % 26) as u8; size];
            req.extend_from_slice(
                format!("POST /upload/{i} HTTP/1.1\r\nHost: svc.local\r\nContent-Length: {size}\r\n\r\n").as_bytes(),
            );
            req.extend_from_slice(&body);
        }
        if i % 3 == 0 {
            resp.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let body = vec![b'x'; size];
            for chunk in body.chunks(7) {
                resp.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                resp.extend_from_slice(chunk);
                resp.extend_from_slice(b"\r\n");
            }
            resp.extend_from_slice(b"0\r\n\r\n");
        } else {
            let body = vec![b'y'; size];
            resp.extend_from_slice(format!("HTTP/1.1 201 Created\r\nContent-Length: {size}\r\n\r\n").as_bytes());
            resp.extend_from_slice(&body);
        }
    }
    (req, resp)
}

/// One packet to feed: direction (true = client to server), sequence offset, bytes, flags.
#[derive(Clone, Debug)]
struct Pkt {
    to_server: bool,
    offset: u32,
    len: u32,
    syn: bool,
    fin: bool,
}

const CISN: u32 = 0xFFFF_FF00; // near the wrap-around on purpose
const SISN: u32 = 1000;

fn feed(pkts: &[Pkt], req: &[u8], resp: &[u8]) -> Vec<Exchange> {
    let client: SocketAddr = CLIENT.parse().unwrap();
    let server: SocketAddr = SERVER.parse().unwrap();
    let mut table = FlowTable::new(ReassemblyConfig::default(), SessionFactory::new(SessionConfig::default()));
    let mut out = Vec::new();
    for (i, p) in pkts.iter().enumerate() {
        let (src, dst, isn, data, peer_isn) =
            if p.to_server { (client, server, CISN, req, SISN) } else { (server, client, SISN, resp, CISN) };
        let seq = if p.syn { isn } else { isn.wrapping_add(1).wrapping_add(p.offset) };
        let start = p.offset as usize;
        let end = (start + p.len as usize).min(data.len());
        let payload = if p.syn { &[][..] } else { &data[start..end] };
        let seg = TcpSegment {
            ts: Timestamp(1_000_000_000 + i as u64 * 1000),
            src,
            dst,
            seq,
            ack: peer_isn.wrapping_add(1),
            flags: TcpFlags { syn: p.syn, ack: !(p.syn && p.to_server), fin: p.fin, rst: false },
            payload,
            missing: 0,
            auth_option: false,
        };
        table.process(&seg, &mut out);
    }
    table.flush_all(Timestamp(2_000_000_000), &mut out);
    out
}

/// The packets of a conversation: handshake, then each direction cut at `cuts`, interleaved so that each
/// response follows its request, then FINs.
fn packets(req: &[u8], resp: &[u8], req_cuts: &[usize], resp_cuts: &[usize]) -> Vec<Pkt> {
    let mut pkts = vec![
        Pkt { to_server: true, offset: 0, len: 0, syn: true, fin: false },
        Pkt { to_server: false, offset: 0, len: 0, syn: true, fin: false },
    ];
    let split = |data: &[u8], cuts: &[usize], to_server: bool| -> Vec<Pkt> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.push(0);
        points.push(data.len());
        points.sort_unstable();
        points.dedup();
        points
            .windows(2)
            .map(|w| Pkt { to_server, offset: w[0] as u32, len: (w[1] - w[0]) as u32, syn: false, fin: false })
            .collect()
    };
    let a = split(req, req_cuts, true);
    let b = split(resp, resp_cuts, false);
    // Client bytes first, then server bytes: pairing must not depend on interleaving.
    pkts.extend(a);
    pkts.extend(b);
    let fin = |to_server: bool, len: usize| Pkt { to_server, offset: len as u32, len: 0, syn: false, fin: true };
    pkts.push(fin(true, req.len()));
    pkts.push(fin(false, resp.len()));
    pkts
}

/// What must not change: the exchanges without ids and timestamps.
fn essence(ex: &[Exchange]) -> Vec<String> {
    ex.iter()
        .map(|e| {
            let rq = e.request.as_ref().map(|r| {
                (
                    String::from_utf8_lossy(&r.method).to_string(),
                    String::from_utf8_lossy(&r.path).to_string(),
                    r.body.clone(),
                )
            });
            let rs = e.response.as_ref().map(|r| (r.status, r.body.clone()));
            format!("{}|{:?}|{:?}|{:?}", e.order, rq, rs, e.flags)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn segmentation_reordering_and_duplication_do_not_change_exchanges(
        n in 1usize..6,
        sizes in proptest::collection::vec(0usize..3000, 1..4),
        req_cuts in proptest::collection::vec(0usize..20_000, 0..12),
        resp_cuts in proptest::collection::vec(0usize..20_000, 0..12),
        swaps in proptest::collection::vec((0usize..64, 1usize..4), 0..8),
        dups in proptest::collection::vec(0usize..64, 0..6),
    ) {
        let (req, resp) = conversation(n, &sizes);
        let baseline = feed(&packets(&req, &resp, &[], &[]), &req, &resp);
        prop_assert_eq!(baseline.len(), n, "baseline must hold every exchange");
        for ex in &baseline {
            prop_assert!(ex.flags.is_empty(), "clean conversation flagged: {:?}", ex.flags);
        }

        let mut pkts = packets(&req, &resp, &req_cuts, &resp_cuts);
        // Reorder: swap packets a short distance apart within a run of the same direction (never the handshake).
        // Capture reordering cannot move a request behind the response it caused, so packets never cross the
        // other direction's packets.
        let len = pkts.len();
        for (at, dist) in swaps {
            let i = 2 + at % (len - 2);
            let j = (i + dist).min(len - 1);
            if pkts[i..=j].iter().all(|p| p.to_server == pkts[i].to_server) {
                pkts.swap(i, j);
            }
        }
        // Duplicate: retransmit some packets later.
        for d in dups {
            let p = pkts[2 + d % (len - 2)].clone();
            pkts.push(p);
        }
        let got = feed(&pkts, &req, &resp);
        prop_assert_eq!(essence(&got), essence(&baseline));
    }
}

#[test]
fn baseline_conversation_parses_fully() {
    let (req, resp) = conversation(4, &[10, 2000]);
    let ex = feed(&packets(&req, &resp, &[], &[]), &req, &resp);
    assert_eq!(ex.len(), 4);
    let methods: Vec<_> = ex.iter().map(|e| e.request.as_ref().unwrap().method.clone()).collect();
    assert_eq!(methods, vec![b"GET".to_vec(), b"POST".to_vec(), b"GET".to_vec(), b"POST".to_vec()]);
    assert_eq!(ex[1].request.as_ref().unwrap().body.bytes.len(), 2000);
    assert_eq!(ex[0].response.as_ref().unwrap().status, 200);
    assert_eq!(ex[0].response.as_ref().unwrap().body.full_len, 10);
    assert_eq!(ex[1].response.as_ref().unwrap().status, 201);
}
