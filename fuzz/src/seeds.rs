//! Seed inputs from real captures: each capture is read, decoded, reassembled and parsed by the agent's own stages,
//! and what each stage saw is written in the input format of the target that fuzzes the next one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use tapedeck_agent::decode::{DecodeConfig, Decoder};
use tapedeck_agent::reassembly::{FlowTable, ReassemblyConfig};
use tapedeck_agent::session::{SessionConfig, SessionFactory};
use tapedeck_agent::source::PcapSource;
use tapedeck_agent::stream::{CloseReason, ConnMeta, Direction, Side, SinkFactory, StreamSink};
use tapedeck_model::segment::{SegmentWriter, SegmentWriterConfig};
use tapedeck_model::{Exchange, Timestamp};

use crate::input::{FrameSpec, SegScript, SegSpec, StreamOp, encode_frames, encode_stream_ops, link_byte};

/// Largest seed written (the targets run with `-max_len` of this size).
pub const MAX_SEED: usize = 64 << 10;

/// Seeds for every target, as `(target, bytes)`.
pub type Seeds = Vec<(&'static str, Vec<u8>)>;

/// An owned copy of a stream event.
enum Event {
    Data(Direction, Vec<u8>),
    Gap(Direction, u64),
    Fin(Direction),
    Reset,
}

#[derive(Default)]
struct Recorded {
    conns: Vec<(bool, Vec<Event>)>,
}

struct Recorder {
    all: Rc<RefCell<Recorded>>,
    index: usize,
}

impl Recorder {
    fn push(&mut self, e: Event) {
        if let Some(c) = self.all.borrow_mut().conns.get_mut(self.index) {
            c.1.push(e);
        }
    }
}

impl StreamSink for Recorder {
    fn data(&mut self, dir: Direction, bytes: &[u8], _: Timestamp, _: &mut Vec<Exchange>) {
        self.push(Event::Data(dir, bytes.to_vec()));
    }
    fn gap(&mut self, dir: Direction, len: u64, _: Timestamp, _: &mut Vec<Exchange>) {
        self.push(Event::Gap(dir, len));
    }
    fn fin(&mut self, dir: Direction, _: Timestamp, _: &mut Vec<Exchange>) {
        self.push(Event::Fin(dir));
    }
    fn reset(&mut self, _: Timestamp, _: &mut Vec<Exchange>) {
        self.push(Event::Reset);
    }
    fn close(&mut self, _: CloseReason, _: Timestamp, _: &mut Vec<Exchange>) {}
}

struct RecorderFactory(Rc<RefCell<Recorded>>);

impl SinkFactory for RecorderFactory {
    type Sink = Recorder;
    fn new_sink(&mut self, meta: &ConnMeta) -> Recorder {
        let mut all = self.0.borrow_mut();
        all.conns.push((meta.handshake_seen, Vec::new()));
        Recorder { all: Rc::clone(&self.0), index: all.conns.len() - 1 }
    }
}

/// Every frame of a capture: `(link type, bytes, wire length, time)`. Stops at damage.
fn frames(capture: &[u8]) -> Vec<(u32, Vec<u8>, u32, Timestamp)> {
    let mut out = Vec::new();
    let Ok(mut src) = PcapSource::from_reader("seed".into(), Box::new(std::io::Cursor::new(capture.to_vec()))) else {
        return out;
    };
    while let Ok(Some(f)) = src.next_frame() {
        out.push((f.link.0, f.data.to_vec(), f.orig_len, f.ts));
    }
    out
}

/// Appends `piece` to the last seed of `seeds` unless that would pass [`MAX_SEED`], then starts a new one.
fn push_capped(seeds: &mut Vec<Vec<u8>>, head: &[u8], piece: &[u8]) {
    if let Some(last) = seeds.last_mut()
        && last.len() + piece.len() <= MAX_SEED
    {
        last.extend_from_slice(piece);
    } else if seeds.len() < 4 {
        let mut s = head.to_vec();
        s.extend_from_slice(piece);
        seeds.push(s);
    }
}

/// Seeds for `pcap_reader`, `decode`, `reassembly`, `http1`, `http2` and `grpc` from one capture; the exchanges
/// it holds are appended to `exchanges` (for [`segment_seeds`]).
pub fn from_capture(capture: &[u8], exchanges: &mut Vec<Exchange>) -> Seeds {
    let mut seeds: Seeds = Vec::new();
    if capture.len() <= MAX_SEED {
        seeds.push(("pcap_reader", capture.to_vec()));
    }
    let frames = frames(capture);

    // decode: frames per link type.
    let mut by_link: HashMap<u32, Vec<FrameSpec<'_>>> = HashMap::new();
    let mut prev = None;
    for (link, data, orig, ts) in &frames {
        let step = prev.map_or(0, |p: Timestamp| (ts.0.saturating_sub(p.0) / 1_000_000).min(255) as u8);
        prev = Some(*ts);
        let cut = orig.saturating_sub(data.len() as u32).min(255) as u8;
        by_link.entry(*link).or_default().push((data, cut, step));
    }
    for (link, specs) in &by_link {
        let Some(b) = link_byte(tapedeck_agent::source::LinkType(*link)) else { continue };
        let mut out: Vec<Vec<u8>> = Vec::new();
        for spec in specs {
            let piece = encode_frames(b, std::slice::from_ref(spec));
            push_capped(&mut out, &[b], &piece[1..]);
        }
        seeds.extend(out.into_iter().map(|s| ("decode", s)));
    }

    // reassembly: decoded segments re-encoded over the four fixed connections; plus the full pipeline's output.
    let mut dec = Decoder::new(DecodeConfig::default());
    let mut script = SegScript::default();
    let mut conns: HashMap<(SocketAddr, SocketAddr), usize> = HashMap::new();
    let mut seg_seeds: Vec<Vec<u8>> = Vec::new();
    let mut prev = None;
    let recorded = Rc::new(RefCell::new(Recorded::default()));
    let mut rec_table = FlowTable::new(ReassemblyConfig::default(), RecorderFactory(Rc::clone(&recorded)));
    let mut table = FlowTable::new(ReassemblyConfig::default(), SessionFactory::new(SessionConfig::default()));
    let mut last = Timestamp(0);
    for (link, data, orig, ts) in &frames {
        let frame = tapedeck_agent::source::Frame {
            ts: *ts,
            link: tapedeck_agent::source::LinkType(*link),
            data,
            orig_len: *orig,
            interface: 0,
            number: 0,
        };
        let Some(seg) = dec.decode(&frame) else { continue };
        last = seg.ts;
        rec_table.process(&seg, &mut Vec::new());
        table.process(&seg, exchanges);
        let n = conns.len();
        let (conn, from_server) = if let Some(&c) = conns.get(&(seg.src, seg.dst)) {
            (c, false)
        } else if let Some(&c) = conns.get(&(seg.dst, seg.src)) {
            (c, true)
        } else if n < 4 {
            conns.insert((seg.src, seg.dst), n);
            (n, false)
        } else {
            continue;
        };
        let step = prev.map_or(0, |p: Timestamp| (seg.ts.0.saturating_sub(p.0) / 20_000_000).min(255) as u8);
        prev = Some(seg.ts);
        let (seq, ack) = script.spec_for(conn, from_server, seg.seq, seg.ack);
        let spec = SegSpec {
            conn,
            from_server,
            flags: seg.flags,
            step,
            seq,
            ack,
            missing: seg.missing.min(0x7f) as u8,
            auth_option: seg.auth_option,
            payload: seg.payload,
        };
        let mut piece = Vec::new();
        script.encode(&spec, &mut piece);
        push_capped(&mut seg_seeds, &[], &piece);
    }
    rec_table.flush_all(last, &mut Vec::new());
    table.flush_all(last, exchanges);
    seeds.extend(seg_seeds.into_iter().map(|s| ("reassembly", s)));

    // http1 / http2: each connection's events as a script.
    for (handshake, events) in &recorded.borrow().conns {
        let side = |d: Direction| match d {
            Direction::ToResponder => Side::Client,
            Direction::ToOriginator => Side::Server,
        };
        let ops: Vec<StreamOp<'_>> = events
            .iter()
            .map(|e| match e {
                Event::Data(d, b) => StreamOp::Data(side(*d), b),
                Event::Gap(d, n) => StreamOp::Gap(side(*d), *n),
                Event::Fin(d) => StreamOp::Fin(side(*d)),
                Event::Reset => StreamOp::Reset,
            })
            .collect();
        let mut script = vec![u8::from(!handshake)];
        encode_stream_ops(&ops, &mut script);
        script.truncate(MAX_SEED);
        let h2 = events.iter().any(|e| matches!(e, Event::Data(_, b) if b.starts_with(b"PRI * HTTP/2.0")));
        let upgrade = events
            .iter()
            .any(|e| matches!(e, Event::Data(_, b) if b.windows(12).any(|w| w.eq_ignore_ascii_case(b"upgrade: h2c"))));
        if h2 && !upgrade {
            seeds.push(("http2", script));
        } else {
            seeds.push(("http1", script));
        }
    }

    // grpc: the bodies of the exchanges, as one body and as a whole exchange.
    for ex in exchanges.iter().rev().take(64) {
        let (Some(req), Some(resp)) = (&ex.request, &ex.response) else { continue };
        if req.body.bytes.is_empty() && resp.body.bytes.is_empty() {
            continue;
        }
        let mut s = vec![0u8];
        s.push(req.path.len().min(255) as u8);
        s.extend_from_slice(&req.path[..req.path.len().min(255)]);
        s.push(req.body.bytes.len().min(255) as u8);
        s.extend_from_slice(&req.body.bytes[..req.body.bytes.len().min(255)]);
        s.extend_from_slice(&resp.body.bytes[..resp.body.bytes.len().min(4096)]);
        seeds.push(("grpc", s));
        let mut body = vec![0u8];
        body.extend_from_slice(&resp.body.bytes[..resp.body.bytes.len().min(4096)]);
        seeds.push(("grpc", body));
    }

    // mask: each message of the exchanges (head fields and body), under both policies.
    for ex in exchanges.iter().rev().take(64) {
        let path: &[u8] = ex.request.as_ref().map_or(&[], |q| q.path.as_slice());
        let messages = [
            ex.request.as_ref().map(|r| (&r.headers, &r.body.bytes)),
            ex.response.as_ref().map(|r| (&r.headers, &r.body.bytes)),
        ];
        for (headers, body) in messages.into_iter().flatten() {
            let short = |b: &[u8]| b[..b.len().min(255)].to_vec();
            let ct = headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(b"content-type"))
                .map_or(Vec::new(), |h| short(&h.value));
            for policy in [0u8, 1] {
                let mut s = vec![policy];
                s.push(ct.len() as u8);
                s.extend_from_slice(&ct);
                let path = short(path);
                s.push(path.len() as u8);
                s.extend_from_slice(&path);
                let fields: Vec<_> = headers.iter().take(15).collect();
                s.push(fields.len() as u8);
                for h in fields {
                    for part in [short(&h.name), short(&h.value)] {
                        s.push(part.len() as u8);
                        s.extend_from_slice(&part);
                    }
                }
                s.extend_from_slice(&body[..body.len().min(4096)]);
                seeds.push(("mask", s));
            }
        }
    }
    seeds
}

/// The blocks of a segment file written by the writer: `(records, raw payload)` each.
fn blocks_of(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
    use tapedeck_model::segment::layout;
    let mut out = Vec::new();
    let Some(body_len) = file.get(12..16).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize) else {
        return out;
    };
    let mut at = layout::FILE_PREFIX_LEN + body_len + 4;
    while let Some(h) = file.get(at..at + layout::BLOCK_HEADER_LEN) {
        let Ok(f) = layout::decode_block_header(h.try_into().unwrap_or(&[0; layout::BLOCK_HEADER_LEN])) else { break };
        let start = at + layout::BLOCK_HEADER_LEN;
        let Some(payload) = file.get(start..start + f.stored_len as usize) else { break };
        let raw = if f.codec == layout::CODEC_ZSTD {
            zstd::bulk::decompress(payload, f.raw_len as usize).unwrap_or_default()
        } else {
            payload.to_vec()
        };
        out.push((f.records, raw));
        at = start + f.stored_len as usize;
    }
    out
}

/// Seeds for `segment_reader` (segment files holding `exchanges`, several small blocks each, written under
/// `tmp`, and torn copies) and for `segment_blocks` (their blocks' raw records).
pub fn segment_seeds(exchanges: &[Exchange], tmp: &Path) -> Seeds {
    let mut out = Vec::new();
    let mut cfg = SegmentWriterConfig::new(tmp);
    cfg.block_raw_bytes = 2048;
    cfg.max_block_exchanges = 4;
    let Ok(mut w) = SegmentWriter::create(cfg) else { return out };
    let mut files = Vec::new();
    for chunk in exchanges.chunks(8) {
        for ex in chunk {
            let _ = w.write(ex);
        }
        if let Ok(Some(f)) = w.rotate() {
            files.push(f);
        }
    }
    files.extend(w.finish().unwrap_or_default());
    for (i, f) in files.iter().enumerate().take(32) {
        let Ok(bytes) = std::fs::read(f) else { continue };
        let mut blocks = vec![(i % 4) as u8];
        for (records, raw) in blocks_of(&bytes) {
            if raw.len() <= usize::from(u16::MAX) && blocks.len() + raw.len() <= MAX_SEED {
                blocks.push(records.min(255) as u8);
                blocks.extend_from_slice(&(raw.len() as u16).to_be_bytes());
                blocks.extend_from_slice(&raw);
            }
        }
        out.push(("segment_blocks", blocks));
        if bytes.len() <= MAX_SEED {
            out.push(("segment_reader", bytes[..bytes.len() * 2 / 3].to_vec()));
            out.push(("segment_reader", bytes));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use tapedeck_agent::http1::{Http1Config, Http1Conn};

    use super::*;
    use crate::input::{Bytes, next_op};

    fn capture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn reassembly_seeds_replay_the_capture() {
        let mut exchanges = Vec::new();
        let seeds = from_capture(&capture("h1-pipelined.pcap"), &mut exchanges);
        // The first packet alone carries three pipelined requests (testdata/h1-pipelined.pcap.tshark.tsv).
        assert!(exchanges.len() >= 3, "{} exchanges", exchanges.len());
        let seed = &seeds.iter().find(|(t, _)| *t == "reassembly").unwrap().1;
        let mut table = FlowTable::new(ReassemblyConfig::default(), SessionFactory::new(SessionConfig::default()));
        let (mut script, mut input, mut out) = (SegScript::default(), Bytes::new(seed), Vec::new());
        while let Some(seg) = script.next(&mut input) {
            table.process(&seg, &mut out);
        }
        table.flush_all(Timestamp(u64::MAX / 2), &mut out);
        assert_eq!(out.len(), exchanges.len());
        let paths = |v: &[Exchange]| v.iter().map(|e| e.request.as_ref().map(|r| r.path.clone())).collect::<Vec<_>>();
        assert_eq!(paths(&out), paths(&exchanges));
    }

    #[test]
    fn http1_seeds_replay_the_connection() {
        let mut exchanges = Vec::new();
        let seeds = from_capture(&capture("h1-curl-basic.pcap"), &mut exchanges);
        let mut total = 0;
        for (_, seed) in seeds.iter().filter(|(t, _)| *t == "http1") {
            let mut input = Bytes::new(seed);
            let mid = input.u8() & 1 != 0;
            assert!(!mid, "curl's connections have handshakes");
            let info = tapedeck_agent::stream::ConnInfo {
                id: 1,
                client: SocketAddr::from(([10, 0, 0, 1], 1)),
                server: SocketAddr::from(([10, 0, 0, 2], 2)),
                mid_stream: false,
            };
            let mut conn = Http1Conn::new(&Http1Config::default(), info);
            let mut out = Vec::new();
            while let Some(op) = next_op(&mut input) {
                match op {
                    StreamOp::Data(side, b) => {
                        conn.data(side, b, Timestamp(1), &mut out);
                    }
                    StreamOp::Gap(side, n) => conn.gap(side, n, Timestamp(1), &mut out),
                    StreamOp::Fin(side) => conn.fin(side, Timestamp(1), &mut out),
                    StreamOp::Reset => conn.reset(Timestamp(1), &mut out),
                    StreamOp::Close => break,
                }
            }
            conn.close(Timestamp(2), &mut out);
            total += out.len();
        }
        assert_eq!(total, exchanges.len());
        assert!(total > 0);
    }
}

#[cfg(test)]
mod segment_tests {
    use tapedeck_model::segment::SegmentReader;

    use super::*;
    use crate::targets::encode_segment;

    #[test]
    fn segment_block_seeds_rebuild_readable_files() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/h1-pipelined.pcap");
        let mut exchanges = Vec::new();
        from_capture(&std::fs::read(path).unwrap(), &mut exchanges);
        let tmp = std::env::temp_dir().join(format!("tapedeck-seed-test-{}", std::process::id()));
        let seeds = segment_seeds(&exchanges, &tmp);
        let _ = std::fs::remove_dir_all(&tmp);
        let file = &seeds.iter().find(|(t, _)| *t == "segment_reader").unwrap().1;
        let blocks = blocks_of(file);
        assert!(!blocks.is_empty());
        for (footer, zstd) in [(true, false), (false, true)] {
            let refs: Vec<(u32, &[u8])> = blocks.iter().map(|(r, b)| (*r, &b[..])).collect();
            let rebuilt = encode_segment(&refs, footer, zstd);
            let p = std::env::temp_dir().join(format!("tapedeck-seed-test-{}-{footer}.seg", std::process::id()));
            std::fs::write(&p, rebuilt).unwrap();
            let mut r = SegmentReader::open(&p).unwrap();
            let n = r.exchanges().filter(|e| e.is_ok()).count();
            let _ = std::fs::remove_file(&p);
            assert_eq!(n as u32, blocks.iter().map(|b| b.0).sum::<u32>());
            assert!(n > 0);
        }
    }
}

/// Seeds for `replayer_args`: NUL-separated flag values of every kind the replayer parses, valid and not.
pub fn replayer_arg_seeds() -> Seeds {
    let sets: &[&[&str]] = &[
        &["404", "2xx", "5XX", "99", "1000", "6xx"],
        &["h1", "http/1.0", "HTTP/2", "h3"],
        &["30s", "1m30s", "2024-05-01T12:00:00Z", "2024-05-01 12:00:00", "yesterday"],
        &["1x", "10x", "0.5x", "max", "0x", "-1x", "1e10x", "nanx"],
        &["500ms", "2s", "1h", "1 s", "3 fortnights"],
        &["http://staging:8080", "http://[::1]:9000", "https://x", "ftp://x", "h:0", "[::1"],
        &["api.prod:443=api.staging:8080", "=x", "a="],
        &["Authorization: Bearer ${TOKEN}", "X-Id: {{uuid}}", "X-At: {{now}}", "X-E: {{env.HOME}}", "Bad Name: v"],
        &["${UNSET", "{{nope}}", "{{env.AB}}", "plain value", "caf\u{e9} \u{1f600}"],
    ];
    sets.iter().map(|s| ("replayer_args", s.join("\0").into_bytes())).collect()
}
