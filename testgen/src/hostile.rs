//! The hostile scenarios: one generator per way a capture can try to make the agent hold memory. Each writes a
//! whole pcap to a `Write` as it goes (nothing proportional to the capture is kept), is deterministic for a seed,
//! and returns what it wrote.

use std::io::{self, Write};

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;

use crate::h2;
use crate::tcp::{Capture, Conn, Endpoint, MSS};

/// What a generator wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// pcap records.
    pub frames: u64,
    /// File bytes.
    pub bytes: u64,
}

/// The server every scenario talks to.
const SERVER: Endpoint = Endpoint { ip: [10, 0, 0, 1], port: 80 };

fn rng(seed: u64) -> XorShiftRng {
    XorShiftRng::seed_from_u64(seed)
}

/// The `i`-th distinct client: one IPv4 address per connection (10.64.0.0/10), so 4-tuples never collide.
fn client(i: u32, port: u16) -> Endpoint {
    Endpoint { ip: [10, 64 | ((i >> 16) & 0x3f) as u8, (i >> 8) as u8, i as u8], port }
}

fn ephemeral_port(r: &mut XorShiftRng) -> u16 {
    32_768 + (r.next_u32() % 28_000) as u16
}

fn done<W: Write>(cap: Capture<W>) -> io::Result<Written> {
    let w = Written { frames: cap.frames(), bytes: cap.bytes() };
    cap.finish()?;
    Ok(w)
}

/// `conns` connections that complete the handshake, send the first part of an HTTP/1.1 request head (no blank
/// line) and then say nothing more: never answered, never closed. Each holds parser state until evicted.
pub fn half_open<W: Write>(out: W, conns: u32, seed: u64) -> io::Result<Written> {
    let mut r = rng(seed);
    let mut cap = Capture::new(out)?;
    for i in 0..conns {
        let mut c = Conn::new(client(i, ephemeral_port(&mut r)), SERVER, r.next_u32(), r.next_u32());
        c.syn(&mut cap)?;
        c.syn_ack(&mut cap)?;
        let head =
            format!("GET /item/{:x} HTTP/1.1\r\nHost: svc.local\r\nUser-Agent: half-open/{i}\r\nX-Pad: ", r.next_u64());
        c.client_data(&mut cap, head.as_bytes())?;
    }
    done(cap)
}

/// `syns` SYNs from random sources to one server port, never answered (a SYN flood).
pub fn syn_flood<W: Write>(out: W, syns: u32, seed: u64) -> io::Result<Written> {
    let mut r = rng(seed);
    let mut cap = Capture::new(out)?;
    for _ in 0..syns {
        let x = r.next_u32();
        let src = Endpoint {
            ip: [172, 16 | ((x >> 16) & 0x0f) as u8, (x >> 8) as u8, x as u8],
            port: ephemeral_port(&mut r),
        };
        Conn::new(src, SERVER, r.next_u32(), 0).syn(&mut cap)?;
    }
    done(cap)
}

/// One keep-alive HTTP/1.1 connection whose response is chunked and never ends: `body_bytes` of chunk data in
/// chunks of random sizes (1 byte to 16 KiB), no last chunk, no FIN.
pub fn endless_chunked<W: Write>(out: W, body_bytes: u64, seed: u64) -> io::Result<Written> {
    let mut r = rng(seed);
    let mut cap = Capture::new(out)?;
    let mut c = Conn::new(client(1, ephemeral_port(&mut r)), SERVER, r.next_u32(), r.next_u32());
    c.handshake(&mut cap)?;
    c.client_data(&mut cap, b"GET /stream HTTP/1.1\r\nHost: svc.local\r\n\r\n")?;
    let mut pending =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let filler: Vec<u8> = (0..16_384u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut sent = 0u64;
    while sent < body_bytes {
        let n = 1 + (r.next_u32() as usize % filler.len());
        pending.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        pending.extend_from_slice(&filler[..n]);
        pending.extend_from_slice(b"\r\n");
        sent += n as u64;
        if pending.len() >= MSS {
            let whole = pending.len() / MSS * MSS;
            c.server_data(&mut cap, &pending[..whole])?;
            pending.drain(..whole);
        }
    }
    c.server_data(&mut cap, &pending)?;
    done(cap)
}

/// One HTTP/1.1 connection whose first request carries a header line of `line_bytes` bytes, then a normal request;
/// the server answers both (431, then 200) and the connection closes.
pub fn huge_header_line<W: Write>(out: W, line_bytes: usize, seed: u64) -> io::Result<Written> {
    let mut r = rng(seed);
    let mut cap = Capture::new(out)?;
    let mut c = Conn::new(client(1, ephemeral_port(&mut r)), SERVER, r.next_u32(), r.next_u32());
    c.handshake(&mut cap)?;
    let mut head = b"GET /big HTTP/1.1\r\nHost: svc.local\r\nX-Huge: ".to_vec();
    head.extend((0..line_bytes).map(|i| b'a' + (i % 26) as u8));
    head.extend_from_slice(b"\r\n\r\n");
    // Sent in MSS pieces; the whole line is never held here beyond this one buffer.
    c.client_data(&mut cap, &head)?;
    drop(head);
    c.server_data(&mut cap, b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n")?;
    c.client_data(&mut cap, b"GET /after HTTP/1.1\r\nHost: svc.local\r\n\r\n")?;
    c.server_data(&mut cap, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")?;
    c.close(&mut cap)?;
    done(cap)
}

/// `conns` h2c (prior knowledge) connections, interleaved segment by segment, on which the client opens
/// `streams_per_conn` streams each (HEADERS without END_STREAM) and sends small DATA frames on random open streams;
/// the server only sends its SETTINGS and never answers a stream.
pub fn h2_streams<W: Write>(out: W, conns: u32, streams_per_conn: u32, seed: u64) -> io::Result<Written> {
    let mut r = rng(seed);
    let mut cap = Capture::new(out)?;
    let mut cs: Vec<Conn> = Vec::with_capacity(conns as usize);
    let mut bufs: Vec<Vec<u8>> = Vec::with_capacity(conns as usize);
    for i in 0..conns {
        let mut c = Conn::new(client(i, ephemeral_port(&mut r)), SERVER, r.next_u32(), r.next_u32());
        c.handshake(&mut cap)?;
        let mut b = h2::PREFACE.to_vec();
        h2::settings(&mut b, &[]);
        c.client_data(&mut cap, &b)?;
        b.clear();
        h2::settings(&mut b, &[]);
        h2::frame(&mut b, h2::SETTINGS, h2::ACK, 0, &[]);
        c.server_data(&mut cap, &b)?;
        cs.push(c);
        bufs.push(Vec::with_capacity(2 * MSS));
    }
    let data = [b'd'; 64];
    let mut block = Vec::new();
    for n in 0..streams_per_conn {
        for (c, b) in cs.iter_mut().zip(bufs.iter_mut()) {
            let id = 2 * n + 1;
            block.clear();
            h2::get_request(&mut block, format!("/s/{n}").as_bytes(), b"svc.local");
            h2::frame(b, h2::HEADERS, h2::END_HEADERS, id, &block);
            // DATA on some earlier stream, often one that was evicted long ago.
            let target = 2 * (r.next_u32() % (n + 1)) + 1;
            h2::frame(b, h2::DATA, 0, target, &data[..1 + r.next_u32() as usize % data.len()]);
            if b.len() >= MSS {
                c.client_data(&mut cap, &b[..MSS])?;
                b.drain(..MSS);
            }
        }
    }
    for (c, b) in cs.iter_mut().zip(bufs.iter()) {
        c.client_data(&mut cap, b)?;
    }
    done(cap)
}

/// HPACK table-size abuse on `conns` h2c connections, one after the other. The server's SETTINGS allow a header
/// table of 4 GiB - 1; the client then grows its table (to 1 MiB on even connections, to 4 GiB - 1 on odd ones)
/// and fills it with `blocks_per_conn` header blocks of three 4000-byte literal fields each, all added to the table
/// (entries evicted as it fills); the last block of each odd connection asks for a table of 2^31 bytes (above what
/// was allowed: an HPACK error). The server answers every stream; connections are never closed.
pub fn hpack_abuse<W: Write>(out: W, conns: u32, blocks_per_conn: u32, seed: u64) -> io::Result<Written> {
    let mut r = rng(seed);
    let mut cap = Capture::new(out)?;
    let value: Vec<u8> = (0..4000u32).map(|i| b'A' + (i % 26) as u8).collect();
    let mut b = Vec::new();
    let mut block = Vec::new();
    for i in 0..conns {
        let mut c = Conn::new(client(i, ephemeral_port(&mut r)), SERVER, r.next_u32(), r.next_u32());
        c.handshake(&mut cap)?;
        b.clear();
        b.extend_from_slice(h2::PREFACE);
        h2::settings(&mut b, &[(h2::SETTINGS_HEADER_TABLE_SIZE, u32::MAX)]);
        c.client_data(&mut cap, &b)?;
        b.clear();
        h2::settings(&mut b, &[(h2::SETTINGS_HEADER_TABLE_SIZE, u32::MAX)]);
        h2::frame(&mut b, h2::SETTINGS, h2::ACK, 0, &[]);
        c.server_data(&mut cap, &b)?;
        for n in 0..blocks_per_conn {
            block.clear();
            // Odd connections end with a size update far above anything allowed. (Even ones keep their tables
            // full: an HPACK error makes the decoder forget its table, which would free the memory.)
            let last = n + 1 == blocks_per_conn && i % 2 == 1;
            if n == 0 {
                // Even connections ask for 1 MiB (a size a decoder may well accept), odd ones for all the SETTINGS
                // allowed (4 GiB - 1: legal, but no passive decoder should hold that much).
                h2::size_update(&mut block, if i % 2 == 0 { 1 << 20 } else { u64::from(u32::MAX) });
            }
            if last {
                h2::size_update(&mut block, 1 << 31);
            }
            h2::get_request(&mut block, format!("/h/{n}").as_bytes(), b"svc.local");
            for k in 0..3u32 {
                let name = format!("x-abuse-{:08x}-{k}", r.next_u32());
                h2::literal_incremental(&mut block, name.as_bytes(), &value);
            }
            b.clear();
            h2::frame(&mut b, h2::HEADERS, h2::END_HEADERS | h2::END_STREAM, 2 * n + 1, &block);
            c.client_data(&mut cap, &b)?;
            // The server answers `:status 200` at once, so streams finish and only the tables stay.
            b.clear();
            h2::frame(&mut b, h2::HEADERS, h2::END_HEADERS | h2::END_STREAM, 2 * n + 1, &[0x88]);
            c.server_data(&mut cap, &b)?;
        }
    }
    done(cap)
}

/// `flows` HTTP/1.1 uploads whose first body segment is never captured: every later client segment lands ahead
/// of the window (holes between them, `segs_per_flow` each, flows interleaved), most tens of megabytes ahead and
/// one in ten 1.5 GiB ahead (beyond any sane window). Nothing ever fills the first hole.
pub fn ooo_far_ahead<W: Write>(out: W, flows: u32, segs_per_flow: u32, seed: u64) -> io::Result<Written> {
    let mut r = rng(seed);
    let mut cap = Capture::new(out)?;
    let mut cs = Vec::with_capacity(flows as usize);
    for i in 0..flows {
        let mut c = Conn::new(client(i, ephemeral_port(&mut r)), SERVER, r.next_u32(), r.next_u32());
        c.handshake(&mut cap)?;
        c.client_data(&mut cap, b"POST /upload HTTP/1.1\r\nHost: svc.local\r\nContent-Length: 4000000000\r\n\r\n")?;
        cs.push(c);
    }
    let payload: Vec<u8> = (0..MSS as u32).map(|i| (i % 251) as u8).collect();
    for s in 0..segs_per_flow {
        for c in cs.iter_mut() {
            let ahead = if s % 10 == 9 { 3 << 29 } else { (32 << 20) + s * 2 * MSS as u32 };
            c.client_data_ahead(&mut cap, ahead, &payload)?;
        }
    }
    done(cap)
}
