//! The harness of each fuzz target: fuzzer bytes in, public API calls out. Small caps are configured wherever a
//! stage has them, so that the fuzzer reaches the limit paths (eviction, truncation, gaps) with small inputs.
//! Beyond "never panics", each harness checks a documented bound (body caps, flow cap, message offsets).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tapedeck_agent::decode::{DecodeConfig, Decoder};
use tapedeck_agent::http1::{Http1Config, Http1Conn, Switch};
use tapedeck_agent::http2::{H2Config, H2Conn, H2Start};
use tapedeck_agent::mask::{MaskKey, Masker, Policy, digits};
use tapedeck_agent::reassembly::{FlowTable, ReassemblyConfig};
use tapedeck_agent::session::{SessionConfig, SessionFactory};
use tapedeck_agent::source::{Frame, PcapSource, SourceConfig};
use tapedeck_agent::stream::{ConnInfo, Side};
use tapedeck_model::grpc::{decode_web_text, grpc_summary, split_messages};
use tapedeck_model::protobuf;
use tapedeck_model::segment::SegmentReader;
use tapedeck_model::{Body, Exchange, Flags, Header, Protocol, Request, Response, Timestamp, Timing};

use crate::input::{Bytes, SegScript, StreamOp, decode_frames, link_for, next_op};

/// A reader that hands out the input in short reads of varying sizes, as a pipe does.
struct ShortReads {
    data: Vec<u8>,
    pos: usize,
    state: u32,
}

impl Read for ShortReads {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // xorshift: deterministic per input length.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let want = match self.state % 4 {
            0 => 1 + (self.state >> 8) as usize % 16,
            1 => 1 + (self.state >> 8) as usize % 4096,
            _ => usize::MAX,
        };
        let n = want.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn drain(mut src: PcapSource) {
    let mut frames = 0u64;
    loop {
        match src.next_frame() {
            Ok(Some(f)) => {
                frames += 1;
                assert!(f.orig_len as usize >= f.data.len(), "orig_len below the captured length");
            }
            Ok(None) => break,
            Err(_) => {
                assert!(matches!(src.next_frame(), Ok(None)), "a source goes on after an error");
                break;
            }
        }
    }
    assert_eq!(src.stats().frames, frames);
}

/// `pcap_reader`: the bytes are a capture file; read it to the end with the default limits and with tiny ones.
pub fn pcap_reader(data: &[u8]) {
    let reader = ShortReads { data: data.to_vec(), pos: 0, state: data.len() as u32 | 1 };
    if let Ok(src) = PcapSource::from_reader("fuzz".into(), Box::new(reader)) {
        drain(src);
    }
    let small = SourceConfig { max_record: 2048, initial_buffer: 16 };
    let reader = ShortReads { data: data.to_vec(), pos: 0, state: 0x9e37_79b9 };
    if let Ok(src) = PcapSource::from_reader_with("fuzz".into(), Box::new(reader), small) {
        drain(src);
    }
}

/// `decode`: the first byte picks the link type, the rest are frames ([`crate::encode_frames`]).
pub fn decode(data: &[u8]) {
    let mut input = Bytes::new(data);
    let link = link_for(input.u8());
    let cfg = DecodeConfig { frag_max_bytes: 64 << 10, frag_max_datagrams: 8, frag_timeout: Duration::from_secs(1) };
    let mut dec = Decoder::new(cfg);
    let base = 1_700_000_000_000_000_000u64;
    let frames = decode_frames(&mut input);
    for (number, &(bytes, orig_len, ms)) in frames.iter().enumerate() {
        let frame = Frame {
            ts: Timestamp(base + ms * 1_000_000),
            link,
            data: bytes,
            orig_len,
            interface: 0,
            number: number as u64 + 1,
        };
        if let Some(seg) = dec.decode(&frame) {
            std::hint::black_box(seg);
        }
    }
    assert_eq!(dec.stats().frames, frames.len() as u64);
}

fn small_session() -> SessionConfig {
    SessionConfig { http1: small_http1(), h2: small_h2(), max_detect_bytes: 4096 }
}

fn small_http1() -> Http1Config {
    Http1Config { max_body: 4096, max_head_bytes: 8192, max_pipelined: 8 }
}

fn small_h2() -> H2Config {
    H2Config { max_body: 4096, max_streams: 8, max_header_list_bytes: 4096, max_frame_bytes: 16_384 }
}

fn check_bodies(out: &[Exchange], max_body: usize) {
    for ex in out {
        let bodies = ex.request.iter().map(|r| &r.body).chain(ex.response.iter().map(|r| &r.body));
        for b in bodies {
            assert!(b.bytes.len() <= max_body, "body of {} bytes kept, cap {max_body}", b.bytes.len());
            assert!(b.full_len >= b.bytes.len() as u64, "full_len below the bytes kept");
        }
        let _ = grpc_summary(ex);
    }
}

/// `reassembly`: synthetic segments ([`SegScript`]) through a flow table of sessions (detection, HTTP/1, HTTP/2).
pub fn reassembly(data: &[u8]) {
    let cfg = ReassemblyConfig {
        max_flows: 3,
        max_ooo_bytes_per_direction: 4096,
        max_ooo_segments_per_direction: 8,
        max_buffered_bytes_total: 12 << 10,
        idle_timeout_nanos: 2_000_000_000,
        tombstone_nanos: 1_000_000_000,
        max_tombstones: 2,
        max_seq_ahead: 1 << 20,
        // Time steps are 20 ms: some acknowledgements fall within the grace, some after it.
        acked_gap_grace_nanos: 30_000_000,
    };
    let mut table = FlowTable::new(cfg, SessionFactory::new(small_session()));
    let mut input = Bytes::new(data);
    let mut script = SegScript::default();
    let mut out = Vec::new();
    let mut last = Timestamp(0);
    while let Some(seg) = script.next(&mut input) {
        last = seg.ts;
        table.process(&seg, &mut out);
        assert!(table.open_flows() <= 3, "{} flows open, cap 3", table.open_flows());
    }
    table.flush_all(last, &mut out);
    assert_eq!(table.open_flows(), 0);
    check_bodies(&out, 4096);
    let _ = table.factory_mut().stats();
}

fn info(mid_stream: bool) -> ConnInfo {
    ConnInfo {
        id: 1,
        client: "10.0.0.1:40000".parse().unwrap_or(SocketAddr::from(([10, 0, 0, 1], 40000))),
        server: SocketAddr::from(([10, 0, 0, 2], 80)),
        mid_stream,
    }
}

/// Feeds the rest of a script to an HTTP/2 connection.
fn run_h2(conn: &mut H2Conn, input: &mut Bytes<'_>, mut ms: u64, out: &mut Vec<Exchange>) {
    while let Some(op) = next_op(input) {
        ms += 1;
        let ts = Timestamp(ms * 1_000_000);
        match op {
            StreamOp::Data(side, bytes) => conn.data(side, bytes, ts, out),
            StreamOp::Gap(side, len) => conn.gap(side, len, ts, out),
            StreamOp::Fin(side) => conn.fin(side, ts, out),
            StreamOp::Reset => conn.reset(ts, out),
            StreamOp::Close => break,
        }
    }
    conn.close(Timestamp(ms * 1_000_000 + 1), out);
    let _ = conn.stats();
}

/// `http1`: a mode byte (bit 0: joined mid-stream), then a connection script ([`crate::encode_stream_ops`]). An
/// h2c upgrade hands the rest of the script to HTTP/2, as the session does.
pub fn http1(data: &[u8]) {
    let mut input = Bytes::new(data);
    let mode = input.u8();
    let cfg = small_http1();
    let mut conn = Http1Conn::new(&cfg, info(mode & 1 != 0));
    let mut out = Vec::new();
    let mut ms = 0u64;
    let mut switch = None;
    while let Some(op) = next_op(&mut input) {
        ms += 1;
        let ts = Timestamp(ms * 1_000_000);
        match op {
            StreamOp::Data(side, bytes) => {
                if let Some(s) = conn.data(side, bytes, ts, &mut out) {
                    switch = Some(s);
                    break;
                }
            }
            StreamOp::Gap(side, len) => conn.gap(side, len, ts, &mut out),
            StreamOp::Fin(side) => conn.fin(side, ts, &mut out),
            StreamOp::Reset => conn.reset(ts, &mut out),
            StreamOp::Close => break,
        }
    }
    conn.close(Timestamp(ms * 1_000_000 + 1), &mut out);
    let _ = conn.stats();
    check_bodies(&out, cfg.max_body);
    if let Some(Switch::H2cUpgrade { request, timing, order, settings, client_rest, server_rest }) = switch {
        let mut h2 = H2Conn::new(&small_h2(), info(false), H2Start::Upgrade { request, timing, order, settings });
        let mut out = Vec::new();
        let ts = Timestamp(ms * 1_000_000);
        h2.data(Side::Client, &client_rest, ts, &mut out);
        h2.data(Side::Server, &server_rest, ts, &mut out);
        run_h2(&mut h2, &mut input, ms, &mut out);
        check_bodies(&out, small_h2().max_body);
    }
}

/// `http2`: a mode byte (`% 3`: prior knowledge, mid-stream, h2c upgrade with a settings payload drawn from the
/// input when bit 2 is set), then a connection script ([`crate::encode_stream_ops`]).
pub fn http2(data: &[u8]) {
    let mut input = Bytes::new(data);
    let mode = input.u8();
    let start = match mode % 3 {
        0 => H2Start::PriorKnowledge,
        1 => H2Start::MidStream,
        _ => {
            let settings = if mode & 4 != 0 {
                let n = usize::from(input.u8());
                Some(input.take(n).to_vec())
            } else {
                None
            };
            let request = Request {
                method: b"POST".to_vec(),
                path: b"/pkg.Svc/Method".to_vec(),
                headers: vec![Header::new("content-type", "application/grpc"), Header::new("upgrade", "h2c")],
                body: Body { bytes: b"\0\0\0\0\x01x".to_vec(), full_len: 6 },
                ..Request::default()
            };
            H2Start::Upgrade { request, timing: Timing::default(), order: u32::from(mode >> 4), settings }
        }
    };
    let cfg = small_h2();
    let mut conn = H2Conn::new(&cfg, info(mode % 3 == 1), start);
    let mut out = Vec::new();
    run_h2(&mut conn, &mut input, 0, &mut out);
    check_bodies(&out, cfg.max_body);
}

/// `grpc`: a flag byte (bit 0 truncated, bit 1 web, bit 2 text; bits 3-4 pick the content-type); the rest
/// is split into messages as one body (each whole one read as protobuf), then read again as a path, a request body (each after a length byte) and
/// a response body of an exchange that is summarised.
pub fn grpc(data: &[u8]) {
    let mut input = Bytes::new(data);
    let flags = input.u8();
    let (truncated, web) = (flags & 1 != 0, flags & 2 != 0);
    let rest = input.rest();
    let (msgs, trailer) = split_messages(rest, truncated, web);
    for m in &msgs.messages {
        assert!(m.offset <= rest.len(), "message offset past the body");
        if m.complete {
            assert!(m.offset + m.len as usize <= rest.len(), "complete message past the body");
            // Each whole message read as protobuf without a schema, as the judge and `inspect` read it.
            let payload = &rest[m.offset..m.offset + m.len as usize];
            if let Some(fields) = protobuf::decode(payload) {
                let mut text = String::new();
                protobuf::to_text(&fields, protobuf::Strings::Utf8, "", 4096, &mut text);
                assert!(text.len() <= 4096 + 4 * payload.len() + 256, "protobuf text past its limit");
            }
        }
    }
    if let Some(t) = trailer {
        assert!(t.len() <= rest.len());
    }
    let text = decode_web_text(rest);
    assert!(text.len() <= rest.len());

    let mut input = Bytes::new(data);
    let _ = input.u8();
    let ct = ["application/grpc", "application/grpc-web+proto", "application/grpc-web-text", "application/grpc+json"]
        [usize::from(flags >> 3 & 3)];
    let n = input.u8();
    let path = input.take(usize::from(n));
    let n = input.u8();
    let req = input.take(usize::from(n));
    let resp = input.rest();
    let body = |b: &[u8]| Body { bytes: b.to_vec(), full_len: b.len() as u64 + u64::from(truncated) };
    let mut ex = exchange(
        Request {
            method: b"POST".to_vec(),
            path: path.to_vec(),
            headers: vec![Header::new("content-type", ct)],
            body: body(req),
            ..Request::default()
        },
        Response {
            status: 200,
            headers: vec![Header::new("content-type", ct)],
            body: body(resp),
            trailers: vec![Header::new("grpc-status", path), Header::new("grpc-message", req)],
            ..Response::default()
        },
    );
    (ex.proto, ex.stream_id) = (Protocol::H2, Some(1));
    let _ = grpc_summary(&ex);
}

/// An HTTP/1.1 exchange between two fixed addresses, on connection 0.
fn exchange(request: Request, response: Response) -> Exchange {
    Exchange {
        id: 0,
        connection_id: 0,
        order: 0,
        stream_id: None,
        proto: Protocol::Http11,
        client: SocketAddr::from(([10, 0, 0, 1], 40000)),
        server: SocketAddr::from(([10, 0, 0, 2], 80)),
        timing: Timing::default(),
        request: Some(request),
        response: Some(response),
        flags: Flags::NONE,
        labels: Vec::new(),
        masked_by: Vec::new(),
    }
}

/// `segment_reader`: the bytes are a segment file; open it (from a temporary file) and read every block, then
/// every exchange.
pub fn segment_reader(data: &[u8]) {
    read_segment(data);
}

fn read_segment(data: &[u8]) {
    thread_local! {
        static PATH: PathBuf = std::env::temp_dir().join(format!("tapedeck-fuzz-{}.seg", std::process::id()));
    }
    PATH.with(|path| {
        let written = std::fs::File::create(path).and_then(|mut f| f.write_all(data));
        if written.is_err() {
            return;
        }
        let Ok(mut r) = SegmentReader::open(path) else {
            return;
        };
        let n = r.blocks().len();
        for i in 0..n {
            let _ = r.read_block(i);
        }
        let _ = r.blocks_in_range(Timestamp(0), Timestamp(u64::MAX));
        for ex in r.exchanges() {
            let _ = ex;
        }
        let report = r.recovery();
        assert!(report.blocks_ok + report.blocks_damaged <= report.blocks, "{report:?}");
    });
}

/// `segment_blocks`: a flag byte (bit 0: write the footer index and trailer; bit 1: zstd-compress payloads),
/// then blocks, each `records: u8, len: u16, raw records`. The file is built with valid checksums around the
/// fuzzed payloads ([`encode_segment`]) and read as in `segment_reader`.
pub fn segment_blocks(data: &[u8]) {
    let mut input = Bytes::new(data);
    let flags = input.u8();
    let mut blocks = Vec::new();
    while !input.is_empty() {
        let records = input.u8();
        let len = input.u16();
        blocks.push((u32::from(records), input.take(usize::from(len))));
    }
    read_segment(&encode_segment(&blocks, flags & 1 != 0, flags & 2 != 0));
}

/// A segment file holding `blocks` (`(records, raw payload)`), with valid checksums everywhere.
pub fn encode_segment(blocks: &[(u32, &[u8])], footer: bool, zstd: bool) -> Vec<u8> {
    use tapedeck_model::segment::layout;
    let body = layout::encode_header_body(&layout::HeaderBody { writer: "fuzz".into(), ..Default::default() });
    let mut file = layout::encode_prefix(body.len() as u32).to_vec();
    file.extend_from_slice(&body);
    let c = layout::crc(&file);
    file.extend_from_slice(&c.to_le_bytes());
    let mut index = Vec::new();
    for (i, &(records, raw)) in blocks.iter().enumerate() {
        let compressed = if zstd { ::zstd::bulk::compress(raw, 1).ok() } else { None };
        let (codec, payload) = match &compressed {
            Some(c) => (layout::CODEC_ZSTD, &c[..]),
            None => (layout::CODEC_STORED, raw),
        };
        let fields = layout::BlockFields {
            codec,
            stored_len: payload.len() as u32,
            raw_len: raw.len() as u32,
            records,
            first_ts: i as u64,
            last_ts: i as u64 + 1,
            payload_crc: layout::crc(payload),
        };
        layout::push_index_entry(&mut index, file.len() as u64, &fields);
        file.extend_from_slice(&layout::encode_block_header(&fields));
        file.extend_from_slice(payload);
    }
    if footer {
        let footer = layout::encode_footer(&index);
        let at = file.len() as u64;
        file.extend_from_slice(&footer);
        file.extend_from_slice(&layout::encode_trailer(at, footer.len() as u32));
    }
    file
}

/// `replayer_args`: the replayer's flag-value parsers on fuzzed text. The input is split at NUL bytes into
/// values (lossy UTF-8); every value goes through every parser: status (`--status`), protocol (`--protocol`),
/// time bounds (`--from`/`--to`), `--time-scale`, durations (`--max-gap`), `--target`, `--rewrite-host`,
/// `--set-header` and its value templates. Beyond "never panics" it checks what each parser promises:
/// accepted values are in range, a time scale and a status code print back to what they parse from, a
/// template without variables is its own text, and scheduling with a parsed scale and gap keeps the order.
pub fn replayer_args(data: &[u8]) {
    use tapedeck_replayer::pace::{Pacing, TimeScale, parse_duration};
    use tapedeck_replayer::select::{StatusMatch, TimeBound, parse_protocols};
    use tapedeck_replayer::transform::{HostRewrite, RuntimeVars, SetHeader, Target, Template};

    // Variables named with an even number of bytes are "set" (to a value built from the name); others are not.
    let env = |name: &str| name.len().is_multiple_of(2).then(|| format!("<{}>", name.len()));
    let vars = RuntimeVars { now: "NOW".into(), uuid: "UUID".into(), files: None };
    let mut offsets = Vec::new();
    let mut scale = TimeScale::default();
    let mut gap = None;
    for piece in data.split(|&b| b == 0).take(64) {
        let s = String::from_utf8_lossy(piece);
        let s = s.as_ref();
        match s.parse::<StatusMatch>() {
            Ok(StatusMatch::Code(c)) => {
                assert!((100..=999).contains(&c), "{s:?} -> {c}");
                assert_eq!(c.to_string().parse::<StatusMatch>(), Ok(StatusMatch::Code(c)));
            }
            Ok(StatusMatch::Class(c)) => assert!((1..=5).contains(&c), "{s:?} -> class {c}"),
            Err(e) => assert!(!e.is_empty()),
        }
        if let Ok(p) = parse_protocols(s) {
            assert!(!p.is_empty() && p.len() <= 2, "{s:?} -> {p:?}");
        }
        match s.parse::<TimeBound>() {
            Ok(TimeBound::Offset(d)) => offsets.push(d),
            Ok(TimeBound::At(_)) | Err(_) => {}
        }
        match s.parse::<TimeScale>() {
            Ok(t) => {
                if let TimeScale::Factor(f) = t {
                    assert!(f.is_finite() && f > 0.0 && f <= 1e9, "{s:?} -> {f}");
                }
                assert_eq!(t.to_string().parse::<TimeScale>(), Ok(t), "{s:?} does not print back");
                scale = t;
            }
            Err(e) => assert!(!e.is_empty()),
        }
        if let Ok(d) = parse_duration(s) {
            gap = Some(d);
            offsets.push(d);
        }
        if let Ok(t) = s.parse::<Target>() {
            assert!(
                !t.host.is_empty() && t.port != 0 && matches!(t.scheme.as_str(), "http" | "https"),
                "{s:?} -> {t:?}"
            );
            let _ = t.authority();
        }
        if let Ok(h) = s.parse::<HostRewrite>() {
            assert!(!h.from.is_empty() && !h.to.is_empty());
        }
        match Template::parse(s, &env) {
            Ok(t) => {
                let out = t.render(&vars);
                if !s.contains("${") && !s.contains("{{") {
                    assert_eq!(out, s, "a template without variables is its own text");
                }
            }
            Err(e) => assert!(!e.is_empty()),
        }
        if let Ok(h) = SetHeader::parse(s, &env) {
            assert!(!h.name.is_empty() && !h.name.contains(':'), "{s:?} -> {h:?}");
        }
    }
    // Schedule the parsed offsets with the parsed scale and gap: one planned offset per recorded one, and
    // scaling (a monotone map) keeps their order.
    let pacing = Pacing { scale, max_gap: gap };
    let planned = pacing.schedule(&offsets);
    assert_eq!(planned.len(), offsets.len());
    for (i, a) in offsets.iter().enumerate() {
        for (j, b) in offsets.iter().enumerate().take(16) {
            if a < b {
                assert!(
                    planned[i] <= planned[j],
                    "order changed: {a:?} < {b:?} but {:?} > {:?}",
                    planned[i],
                    planned[j]
                );
            }
        }
    }
}

/// A policy with every kind of rule and detector, hashing with a fixed key (the `mask` target's broad policy).
const BROAD_POLICY: &str = r#"
[[rule]]
name = "headers"
target = "header"
names = ["x-secret"]
patterns = ["^x-.*token"]
action = "hash"

[[rule]]
name = "cookies"
target = "cookie"
names = ["session"]
action = "redact"

[[rule]]
name = "json-path"
target = "json_path"
paths = ["$.items[*].card", "$.user.password"]
action = "hash"

[[rule]]
name = "jwt"
target = "detector"
detector = "jwt"
action = "redact"

[[rule]]
name = "bearer"
target = "detector"
detector = "bearer"
action = "hash"

[[rule]]
name = "keys"
target = "detector"
detector = "cloud_key"
action = "redact"

[[rule]]
name = "email"
target = "detector"
detector = "email"
action = "redact"

[[rule]]
name = "custom"
target = "detector"
detector = "regex"
regex = "(?i)acct-[0-9]{6}"
action = "redact"
"#;

thread_local! {
    /// Prototypes never used for masking (so their memos are empty): the default policy and the broad one.
    static MASKERS: [Masker; 2] = {
        let file = Policy::parse_file("broad.toml", BROAD_POLICY).expect("the broad policy parses");
        let broad = Policy::build(true, Some(file)).expect("the broad policy is valid");
        let key = MaskKey::new(b"fuzz-key-0123456789abcdef".to_vec()).expect("a key");
        [
            Masker::new(Policy::default_policy(), Some(&key)).expect("the default policy compiles"),
            Masker::new(broad, Some(&key)).expect("the broad policy compiles"),
        ]
    };
    /// Maskers kept across inputs, whose memos remember what earlier inputs showed them.
    static KEPT: std::cell::RefCell<Option<[Masker; 2]>> = const { std::cell::RefCell::new(None) };
}

/// `mask`: a flag byte (bit 0: the broad policy, else the default; bits 1-2: the content coding claimed; bit 3:
/// the body is cut), a content type and a path (each after a length byte), a count of header fields and each
/// field's name and value (after length bytes), then the body, for both the request and the response.
///
/// Beyond "never panics": digits are counted as a byte loop counts them, and a masker that remembers earlier
/// inputs (names, header lists, values found clean) masks exactly as a fresh one does.
pub fn mask(data: &[u8]) {
    let c = &data[..data.len().min(255)];
    assert_eq!(digits::count(c) as usize, c.iter().filter(|b| b.is_ascii_digit()).count(), "digit count");
    for block in data.as_chunks::<64>().0 {
        assert_eq!(digits::count_block(block) as usize, block.iter().filter(|b| b.is_ascii_digit()).count());
    }

    let mut input = Bytes::new(data);
    let flags = input.u8();
    let which = usize::from(flags & 1);
    let coding = ["identity", "gzip", "deflate", "br"][usize::from(flags >> 1 & 3)];
    let n = input.u8();
    let ct = input.take(usize::from(n));
    let n = input.u8();
    let path = input.take(usize::from(n));
    let mut headers =
        vec![Header { name: b"Content-Type".to_vec(), value: ct.to_vec() }, Header::new("Content-Encoding", coding)];
    for _ in 0..input.u8() % 16 {
        let n = input.u8();
        let name = input.take(usize::from(n));
        let n = input.u8();
        let value = input.take(usize::from(n));
        headers.push(Header { name: name.to_vec(), value: value.to_vec() });
    }
    let body = input.rest();
    let body = Body { bytes: body.to_vec(), full_len: body.len() as u64 + u64::from(flags >> 3 & 1) };
    let mut ex = exchange(
        Request {
            method: b"POST".to_vec(),
            path: path.to_vec(),
            headers: headers.clone(),
            body: body.clone(),
            ..Request::default()
        },
        Response { status: 200, headers, body, ..Response::default() },
    );
    ex.connection_id = u64::from(flags >> 4);
    let (mut fresh, mut kept) = (ex.clone(), ex);
    let keep_fresh = MASKERS.with(|m| m[which].clone().mask(&mut fresh));
    let keep_kept = KEPT.with(|k| {
        let mut k = k.borrow_mut();
        let maskers = k.get_or_insert_with(|| MASKERS.with(|m| m.clone()));
        maskers[which].mask(&mut kept)
    });
    assert_eq!(keep_fresh, keep_kept, "kept or dropped differently");
    assert_eq!(fresh.request, kept.request, "request masked differently by a remembering masker");
    assert_eq!(fresh.response, kept.response, "response masked differently by a remembering masker");
    assert_eq!(fresh.masked_by, kept.masked_by);
}
