//! The shapes of fuzz inputs: a byte reader that never fails, and for each structured target the decoder of its
//! input next to the encoder the seed maker uses, so that seeds from real captures decode to the same events.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tapedeck_agent::decode::{TcpFlags, TcpSegment};
use tapedeck_agent::source::LinkType;
use tapedeck_agent::stream::Side;
use tapedeck_model::Timestamp;

/// Reads fuzzer bytes front to back; past the end every read yields zeros (or an empty slice).
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }
    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

// ===== decode =====

/// Link types the `decode` target picks from by its first byte (a byte past the table is used as the link type).
pub const LINKS: &[u32] = &[0, 1, 12, 14, 101, 104, 108, 113, 228, 229, 239, 276];

/// The link type for the `decode` target's first byte.
pub fn link_for(b: u8) -> LinkType {
    LinkType(LINKS.get(usize::from(b)).copied().unwrap_or(u32::from(b)))
}

/// The first byte that selects `link`, if any.
pub fn link_byte(link: LinkType) -> Option<u8> {
    match LINKS.iter().position(|&l| l == link.0) {
        Some(i) => u8::try_from(i).ok(),
        None => u8::try_from(link.0).ok().filter(|&b| usize::from(b) >= LINKS.len()),
    }
}

/// One frame of the `decode` target: `(captured bytes, bytes the snaplen cut, time step in ms)`.
pub type FrameSpec<'a> = (&'a [u8], u8, u8);

/// Encodes frames for the `decode` target: the link byte, then per frame `len: u16, cut: u8, step: u8, bytes`.
pub fn encode_frames(link: u8, frames: &[FrameSpec<'_>]) -> Vec<u8> {
    let mut out = vec![link];
    for &(data, cut, step) in frames {
        let len = data.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.extend_from_slice(&[cut, step]);
        out.extend_from_slice(&data[..len]);
    }
    out
}

/// Decodes the frames of a `decode` input: `(data, orig_len, time in ms)` each.
pub fn decode_frames<'a>(input: &mut Bytes<'a>) -> Vec<(&'a [u8], u32, u64)> {
    let mut out = Vec::new();
    let mut ms = 0u64;
    while !input.is_empty() {
        let len = input.u16();
        let cut = input.u8();
        ms += u64::from(input.u8());
        let data = input.take(usize::from(len));
        out.push((data, data.len() as u32 + u32::from(cut), ms));
    }
    out
}

// ===== reassembly =====

/// The fixed endpoints of the `reassembly` target's four connections: `(client, server)`.
pub fn conn_addrs(conn: usize) -> (SocketAddr, SocketAddr) {
    let port = 40_000 + conn as u16;
    if conn == 3 {
        let c = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        let s = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
        (SocketAddr::new(IpAddr::V6(c), port), SocketAddr::new(IpAddr::V6(s), 80))
    } else {
        let c = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port);
        (c, SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80))
    }
}

/// A segment of the `reassembly` target before its sequence numbers are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegSpec<'a> {
    /// Connection 0..4.
    pub conn: usize,
    /// From the server (else from the client).
    pub from_server: bool,
    /// Control bits.
    pub flags: TcpFlags,
    /// Time step in units of 20 ms.
    pub step: u8,
    /// Sequence number: `Ok(absolute)` or `Err(delta from the next expected)`.
    pub seq: Result<u32, i16>,
    /// Acknowledgement: `Ok(absolute)` or `Err(delta from the other direction's next expected)`.
    pub ack: Result<u32, i8>,
    /// Bytes the snaplen cut after the payload (at most 127: the encoding's top bit is `auth_option`).
    pub missing: u8,
    /// The segment carries a TCP-MD5 or TCP-AO option.
    pub auth_option: bool,
    /// The captured payload.
    pub payload: &'a [u8],
}

/// The sequence-number state both the decoder and the encoder of `reassembly` inputs track: the next expected
/// sequence number per connection and direction.
#[derive(Clone, Debug)]
pub struct SegScript {
    next: [[u32; 2]; 4],
    ts: u64,
}

impl Default for SegScript {
    fn default() -> Self {
        let mut next = [[0; 2]; 4];
        for (c, n) in next.iter_mut().enumerate() {
            *n = [1000 + 7919 * c as u32, 0x8000_0000 + 104_729 * c as u32];
        }
        SegScript { next, ts: 1_700_000_000_000_000_000 }
    }
}

const ABS: u8 = 0x80;

impl SegScript {
    /// Decodes the next segment from `input` (None at the end). Layout: `b0` (bits 0-1 connection, bit 2 from
    /// the server, bits 3-6 SYN ACK FIN RST, bit 7 absolute numbers), a time step byte, the sequence number
    /// (absolute u32, or i16 delta), the ack (absolute u32, or i8 delta), payload length u16, missing u8 (bits 0-6; bit 7 the TCP-MD5/AO option), payload.
    pub fn next<'a>(&mut self, input: &mut Bytes<'a>) -> Option<TcpSegment<'a>> {
        if input.is_empty() {
            return None;
        }
        let b0 = input.u8();
        let step = input.u8();
        let abs = b0 & ABS != 0;
        let seq = if abs { Ok(input.u32()) } else { Err(input.u16() as i16) };
        let ack = if abs { Ok(input.u32()) } else { Err(input.u8() as i8) };
        let len = input.u16();
        let missing_and_auth = input.u8();
        let payload = input.take(usize::from(len));
        let spec = SegSpec {
            conn: usize::from(b0 & 3),
            from_server: b0 & 4 != 0,
            flags: TcpFlags { syn: b0 & 8 != 0, ack: b0 & 16 != 0, fin: b0 & 32 != 0, rst: b0 & 64 != 0 },
            step,
            seq,
            ack,
            missing: missing_and_auth & 0x7f,
            auth_option: missing_and_auth & 0x80 != 0,
            payload,
        };
        Some(self.resolve(&spec))
    }

    /// Turns a spec into a segment and advances the state.
    pub fn resolve<'a>(&mut self, s: &SegSpec<'a>) -> TcpSegment<'a> {
        let d = usize::from(s.from_server);
        let next = self.next[s.conn][d];
        let seq = match s.seq {
            Ok(abs) => abs,
            Err(delta) => next.wrapping_add(delta as i32 as u32),
        };
        let ack = match s.ack {
            Ok(abs) => abs,
            Err(delta) => self.next[s.conn][1 - d].wrapping_add(delta as i32 as u32),
        };
        let advance =
            s.payload.len() as u32 + u32::from(s.missing.min(0x7f)) + u32::from(s.flags.syn) + u32::from(s.flags.fin);
        let end = seq.wrapping_add(advance);
        // An absolute number resets the expectation; a delta only moves it forward (as TCP does), so that a
        // retransmission does not pull it back.
        if s.seq.is_ok() || (end.wrapping_sub(next) as i32) > 0 {
            self.next[s.conn][d] = end;
        }
        self.ts += u64::from(s.step) * 20_000_000;
        let (client, server) = conn_addrs(s.conn);
        let (src, dst) = if s.from_server { (server, client) } else { (client, server) };
        TcpSegment {
            ts: Timestamp(self.ts),
            src,
            dst,
            seq,
            ack,
            flags: s.flags,
            payload: s.payload,
            missing: u32::from(s.missing.min(0x7f)),
            auth_option: s.auth_option,
        }
    }

    /// Encodes `s` (as [`SegScript::next`] reads it) and advances the state as decoding it will.
    pub fn encode(&mut self, s: &SegSpec<'_>, out: &mut Vec<u8>) {
        let flags = u8::from(s.flags.syn) << 3
            | u8::from(s.flags.ack) << 4
            | u8::from(s.flags.fin) << 5
            | u8::from(s.flags.rst) << 6;
        let abs = s.seq.is_ok() || s.ack.is_ok();
        out.push(s.conn as u8 | u8::from(s.from_server) << 2 | flags | if abs { ABS } else { 0 });
        out.push(s.step);
        // Resolve first (so that mixed specs encode as both absolute), then write.
        let seg = self.resolve(s);
        if abs {
            out.extend_from_slice(&seg.seq.to_be_bytes());
            out.extend_from_slice(&seg.ack.to_be_bytes());
        } else {
            out.extend_from_slice(&s.seq.err().unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&s.ack.err().unwrap_or(0).to_be_bytes());
        }
        let len = s.payload.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(len as u16).to_be_bytes());
        out.push(s.missing.min(0x7f) | u8::from(s.auth_option) << 7);
        out.extend_from_slice(&s.payload[..len]);
    }

    /// The spec that makes a segment `(seq, ack)` of `conn`/`from_server`: deltas when they fit, else absolute.
    pub fn spec_for(&self, conn: usize, from_server: bool, seq: u32, ack: u32) -> (Result<u32, i16>, Result<u32, i8>) {
        let d = usize::from(from_server);
        let ds = seq.wrapping_sub(self.next[conn][d]) as i32;
        let da = ack.wrapping_sub(self.next[conn][1 - d]) as i32;
        match (i16::try_from(ds), i8::try_from(da)) {
            (Ok(s), Ok(a)) => (Err(s), Err(a)),
            _ => (Ok(seq), Ok(ack)),
        }
    }
}

// ===== http1 / http2 =====

/// One event of a connection script for the `http1` and `http2` targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamOp<'a> {
    /// Bytes from a side.
    Data(Side, &'a [u8]),
    /// Bytes of a side never captured.
    Gap(Side, u64),
    /// A side's FIN.
    Fin(Side),
    /// RST.
    Reset,
    /// The connection is dropped (ends the script).
    Close,
}

/// Decodes the next op of a connection script. A control byte `c`: `00xxxxxx` client data and `01xxxxxx` server
/// data of length `(c & 0x3f) << 8 | next` (the chunk boundaries are fuzzed too); `10sxxxxx` a gap of side `s`
/// of `next << (c & 0x1f)` bytes; `11xxxx00` client FIN, `01` server FIN, `10` reset, `11` close.
pub fn next_op<'a>(input: &mut Bytes<'a>) -> Option<StreamOp<'a>> {
    if input.is_empty() {
        return None;
    }
    let c = input.u8();
    let side = |b: bool| if b { Side::Server } else { Side::Client };
    Some(match c >> 6 {
        0 | 1 => {
            let len = usize::from(c & 0x3f) << 8 | usize::from(input.u8());
            StreamOp::Data(side(c & 0x40 != 0), input.take(len))
        }
        2 => StreamOp::Gap(side(c & 0x20 != 0), u64::from(input.u8()) << (c & 0x1f)),
        _ => match c & 3 {
            0 => StreamOp::Fin(Side::Client),
            1 => StreamOp::Fin(Side::Server),
            2 => StreamOp::Reset,
            _ => StreamOp::Close,
        },
    })
}

/// Encodes a connection script (data longer than 16 383 bytes is split into several chunks; a gap is rounded up
/// to what the encoding can say).
pub fn encode_stream_ops(ops: &[StreamOp<'_>], out: &mut Vec<u8>) {
    for op in ops {
        match *op {
            StreamOp::Data(side, bytes) => {
                let tag = if side == Side::Server { 0x40 } else { 0 };
                for chunk in bytes.chunks(0x3fff) {
                    let len = chunk.len();
                    out.push(tag | (len >> 8) as u8);
                    out.push(len as u8);
                    out.extend_from_slice(chunk);
                }
            }
            StreamOp::Gap(side, len) => {
                let mut shift = 0u8;
                while shift < 31 && (len >> shift) > 255 {
                    shift += 1;
                }
                let mut n = len >> shift;
                if n << shift < len {
                    n += 1;
                }
                out.push(0x80 | if side == Side::Server { 0x20 } else { 0 } | shift);
                out.push(n.min(255) as u8);
            }
            StreamOp::Fin(Side::Client) => out.push(0xc0),
            StreamOp::Fin(Side::Server) => out.push(0xc1),
            StreamOp::Reset => out.push(0xc2),
            StreamOp::Close => out.push(0xc3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let enc = encode_frames(1, &[(b"abc", 2, 5), (b"", 0, 1)]);
        assert_eq!(enc, [1, 0, 3, 2, 5, b'a', b'b', b'c', 0, 0, 0, 1]);
        let mut b = Bytes::new(&enc[1..]);
        let frames = decode_frames(&mut b);
        assert_eq!(frames, vec![(&b"abc"[..], 5, 5), (&b""[..], 0, 6)]);
    }

    #[test]
    fn link_bytes() {
        assert_eq!(link_for(link_byte(LinkType(276)).unwrap()), LinkType(276));
        assert_eq!(link_for(link_byte(LinkType(1)).unwrap()), LinkType(1));
        assert_eq!(link_byte(LinkType(200)), Some(200));
        assert_eq!(link_byte(LinkType(5)), None);
        assert_eq!(link_byte(LinkType(300)), None);
    }

    #[test]
    fn segments_round_trip() {
        let flags = TcpFlags { syn: true, ..TcpFlags::default() };
        let mut enc = SegScript::default();
        let mut bytes = Vec::new();
        let isn = 0xdead_beef;
        let (s1, a1) = enc.spec_for(2, false, isn, 0);
        let spec1 = SegSpec {
            conn: 2,
            from_server: false,
            flags,
            step: 3,
            seq: s1,
            ack: a1,
            missing: 0,
            auth_option: false,
            payload: b"",
        };
        enc.encode(&spec1, &mut bytes);
        // The server's initial expectation for connection 2 (see `SegScript::default`), plus 7.
        let ack_no = 0x8000_0000 + 104_729 * 2 + 7;
        let (s2, a2) = enc.spec_for(2, false, isn.wrapping_add(1), ack_no);
        assert_eq!((s2, a2), (Err(0), Err(7)), "the SYN advanced the expectation by one");
        let ack = TcpFlags { ack: true, ..TcpFlags::default() };
        let spec2 = SegSpec {
            conn: 2,
            from_server: false,
            flags: ack,
            step: 0,
            seq: s2,
            ack: a2,
            missing: 4,
            auth_option: false,
            payload: b"GET",
        };
        enc.encode(&spec2, &mut bytes);

        let mut dec = SegScript::default();
        let mut input = Bytes::new(&bytes);
        let a = dec.next(&mut input).unwrap();
        assert_eq!((a.seq, a.flags, a.payload), (isn, flags, &b""[..]));
        let b = dec.next(&mut input).unwrap();
        assert_eq!((b.seq, b.ack, b.payload, b.missing), (isn.wrapping_add(1), ack_no, &b"GET"[..], 4));
        assert_eq!(b.src, conn_addrs(2).0);
        assert_eq!(b.ts.0 - a.ts.0, 0);
        assert!(dec.next(&mut input).is_none());
    }

    #[test]
    fn stream_ops_round_trip() {
        let big = vec![b'x'; 20_000];
        let ops = [
            StreamOp::Data(Side::Client, b"GET / HTTP/1.1\r\n\r\n"),
            StreamOp::Gap(Side::Server, 1000),
            StreamOp::Data(Side::Server, &big),
            StreamOp::Fin(Side::Server),
            StreamOp::Reset,
            StreamOp::Close,
        ];
        let mut enc = Vec::new();
        encode_stream_ops(&ops, &mut enc);
        let mut input = Bytes::new(&enc);
        let mut got = Vec::new();
        while let Some(op) = next_op(&mut input) {
            got.push(op);
        }
        assert_eq!(got[0], ops[0]);
        // 1000 = 250 << 2
        assert_eq!(got[1], StreamOp::Gap(Side::Server, 1000));
        assert_eq!(got[2], StreamOp::Data(Side::Server, &big[..0x3fff]));
        assert_eq!(got[3], StreamOp::Data(Side::Server, &big[0x3fff..]));
        assert_eq!(&got[4..], &ops[3..]);
    }
}
