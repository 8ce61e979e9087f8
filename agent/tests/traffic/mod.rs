//! Deterministic HTTP/1.1 traffic for the crash and disk-full tests: exchange `i` is one connection of its own
//! (its own client address, so the 4-tuples never repeat) carrying `GET /item/<i>` and a `200` with a body
//! derived from `i`. The same range always gives the same bytes, so a capture file and a pipe fed by
//! [`Feeder`] carry the same exchanges.

#![allow(dead_code)]

use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tapedeck_model::Exchange;
use tapedeck_testgen::tcp::{Capture, Conn, Endpoint};

/// The response body of exchange `i`: text lines with pseudo-random hex (compresses about 2x), 2 to 5 KB.
pub fn body(i: u32) -> Vec<u8> {
    let len = 2000 + (i as usize * 37) % 3000;
    let mut out = Vec::with_capacity(len + 64);
    let mut x = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut line = 0;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("item {i} line {line} {x:016x}\n").as_bytes());
        line += 1;
    }
    out.truncate(len);
    out
}

/// Writes exchanges `range` as connections into `cap`.
pub fn write_exchanges<W: Write>(cap: &mut Capture<W>, range: Range<u32>) -> io::Result<()> {
    for i in range {
        write_exchange(cap, i)?;
    }
    Ok(())
}

fn write_exchange<W: Write>(cap: &mut Capture<W>, i: u32) -> io::Result<()> {
    let client =
        Endpoint { ip: [10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8], port: 40_000 + (i % 20_000) as u16 };
    let server = Endpoint { ip: [10, 0, 0, 1], port: 80 };
    let mut c = Conn::new(client, server, i.wrapping_mul(7919), i.wrapping_mul(104_729) ^ 0x5555_0000);
    c.handshake(cap)?;
    c.client_data(cap, format!("GET /item/{i} HTTP/1.1\r\nHost: svc\r\nUser-Agent: crash-test\r\n\r\n").as_bytes())?;
    let b = body(i);
    let mut resp =
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n", b.len()).into_bytes();
    resp.extend_from_slice(&b);
    c.server_data(cap, &resp)?;
    c.close(cap)
}

/// Writes a capture file of exchanges `range`.
pub fn capture_file(path: &Path, range: Range<u32>) {
    let f = std::fs::File::create(path).unwrap();
    let mut cap = Capture::new(BufWriter::new(f)).unwrap();
    write_exchanges(&mut cap, range).unwrap();
    cap.finish().unwrap().flush().unwrap();
}

/// What identifies an exchange's content: request line, status, both bodies and the four timestamps.
pub type Key = (Vec<u8>, Vec<u8>, u16, Vec<u8>, Vec<u8>, [Option<u64>; 4]);

/// The [`Key`] of an exchange.
pub fn key(ex: &Exchange) -> Key {
    let req = ex.request.as_ref();
    let resp = ex.response.as_ref();
    (
        req.map(|r| r.method.clone()).unwrap_or_default(),
        req.map(|r| r.path.clone()).unwrap_or_default(),
        resp.map_or(0, |r| r.status),
        req.map(|r| r.body.bytes.clone()).unwrap_or_default(),
        resp.map(|r| r.body.bytes.clone()).unwrap_or_default(),
        {
            let t = &ex.timing;
            [t.request_first, t.request_last, t.response_first, t.response_last].map(|x| x.map(|t| t.0))
        },
    )
}

/// A thread writing exchanges into a pipe (the agent's standard input) until told to stop, the range ends, or
/// the reader goes away; it closes the pipe when it ends.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    /// Exchanges written so far.
    pub written: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Feeder {
    /// Starts feeding exchanges `range` into `out`, pausing `pause` after every `every` exchanges.
    pub fn start<W: Write + Send + 'static>(out: W, range: Range<u32>, every: u32, pause: Duration) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let (s, w) = (Arc::clone(&stop), Arc::clone(&written));
        let handle = std::thread::spawn(move || {
            let Ok(mut cap) = Capture::new(BufWriter::with_capacity(64 << 10, out)) else { return };
            for i in range {
                if s.load(Ordering::Relaxed) || write_exchange(&mut cap, i).is_err() {
                    break;
                }
                w.fetch_add(1, Ordering::Relaxed);
                if every > 0 && i % every == every - 1 {
                    std::thread::sleep(pause);
                }
            }
            let _ = cap.finish();
        });
        Feeder { stop, written, handle: Some(handle) }
    }

    /// Stops feeding and closes the pipe (waits for the thread).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop();
    }
}
