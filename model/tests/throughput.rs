//! Writer throughput on HTTP-like exchanges (ignored by default; run with
//! `cargo test --release -p tapedeck-model --test throughput -- --ignored --nocapture`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use tapedeck_model::segment::{SegmentReader, SegmentWriter, SegmentWriterConfig};
use tapedeck_model::{Body, Exchange, Flags, Header, Protocol, Request, Response, Timestamp, Timing};

/// A small xorshift generator so that bodies vary like real traffic (ids, numbers) without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn exchange(i: u64, rng: &mut Rng) -> Exchange {
    let mut body = String::from("{\"items\":[");
    for k in 0..(8 + rng.next() % 24) {
        body.push_str(&format!(
            "{{\"id\":\"{:016x}\",\"price\":{},\"qty\":{},\"name\":\"item-{k}\",\"tags\":[\"a\",\"b\"]}},",
            rng.next(),
            rng.next() % 100_000,
            rng.next() % 10
        ));
    }
    body.push_str("]}");
    let t = 1_795_289_580_000_000_000 + i * 100_000;
    Exchange {
        id: i,
        connection_id: i / 10,
        order: (i % 10) as u32,
        stream_id: None,
        proto: Protocol::Http11,
        client: SocketAddr::from((Ipv4Addr::new(10, 1, (i % 200) as u8, 7), 40_000 + (i % 20_000) as u16)),
        server: SocketAddr::from((Ipv4Addr::new(10, 2, 0, 1), 8080)),
        timing: Timing {
            request_first: Some(Timestamp(t)),
            request_last: Some(Timestamp(t + 50_000)),
            response_first: Some(Timestamp(t + 900_000)),
            response_last: Some(Timestamp(t + 1_000_000)),
        },
        request: Some(Request {
            method: b"GET".to_vec(),
            scheme: vec![],
            authority: b"catalog.svc.cluster.local".to_vec(),
            path: format!("/v1/items?page={}&trace={:016x}", i % 50, rng.next()).into_bytes(),
            headers: vec![
                Header::new("host", "catalog.svc.cluster.local"),
                Header::new("user-agent", "client/1.2.3"),
                Header::new("accept", "application/json"),
                Header::new("x-request-id", format!("{:016x}{:016x}", rng.next(), rng.next())),
            ],
            body: Body::default(),
            trailers: vec![],
        }),
        response: Some(Response {
            status: 200,
            reason: b"OK".to_vec(),
            headers: vec![
                Header::new("content-type", "application/json"),
                Header::new("content-length", body.len().to_string()),
                Header::new("date", "Sat, 21 Nov 2026 19:33:00 GMT"),
            ],
            body: Body { full_len: body.len() as u64, bytes: body.into_bytes() },
            trailers: vec![],
            interim: vec![],
        }),
        flags: Flags::NONE,
        labels: vec![("service".into(), "catalog".into())],
        masked_by: vec![],
    }
}

/// CPU time of this thread in seconds (from /proc, so the numbers hold on a busy machine).
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64 / 1e9
}

#[test]
#[ignore = "benchmark; run in release"]
fn writer_throughput() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let exs: Vec<Exchange> = (0..20_000).map(|i| exchange(i, &mut rng)).collect();
    for level in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SegmentWriterConfig { zstd_level: level, ..SegmentWriterConfig::new(dir.path()) };
        let mut w = SegmentWriter::create(cfg).unwrap();
        let start = Instant::now();
        let cpu = cpu_secs();
        for _ in 0..3 {
            for ex in &exs {
                w.write(ex).unwrap();
            }
        }
        let stats = w.stats().clone();
        let files = w.finish().unwrap();
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu;
        println!("level {level}: {cpu:.3}s on CPU = {:.0} MB/s raw per core", stats.raw_bytes as f64 / 1e6 / cpu);
        println!(
            "level {level}: {} exchanges, {:.1} MB raw -> {:.1} MB ({:.2}x) in {secs:.3}s = {:.0} MB/s raw",
            stats.exchanges,
            stats.raw_bytes as f64 / 1e6,
            stats.compressed_bytes as f64 / 1e6,
            stats.raw_bytes as f64 / stats.compressed_bytes as f64,
            stats.raw_bytes as f64 / 1e6 / secs
        );
        let start = Instant::now();
        let mut n = 0;
        for f in &files {
            let mut r = SegmentReader::open(f).unwrap();
            for e in r.exchanges() {
                e.unwrap();
                n += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!("  read back {n} exchanges in {secs:.3}s = {:.0} MB/s raw", stats.raw_bytes as f64 / 1e6 / secs);
        assert_eq!(n as u64, stats.exchanges);
    }
}

#[test]
#[ignore = "benchmark; run in release"]
fn stage_costs() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let exs: Vec<Exchange> = (0..20_000).map(|i| exchange(i, &mut rng)).collect();
    let start = Instant::now();
    let mut raw = Vec::new();
    for ex in &exs {
        bincode::encode_into_std_write(ex, &mut raw, bincode::config::standard()).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("bincode: {:.1} MB in {secs:.3}s = {:.0} MB/s", raw.len() as f64 / 1e6, raw.len() as f64 / 1e6 / secs);
    for level in [-3, -1, 1, 2, 3] {
        let mut c = zstd::bulk::Compressor::new(level).unwrap();
        let mut out = Vec::with_capacity(2 << 20);
        let start = Instant::now();
        let mut total = 0;
        for chunk in raw.chunks(1 << 20) {
            out.clear();
            total += c.compress_to_buffer(chunk, &mut out).unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        println!("zstd {level}: {:.2}x, {:.0} MB/s", raw.len() as f64 / total as f64, raw.len() as f64 / 1e6 / secs);
    }
}
