//! TCP over IPv4 over Ethernet, frame by frame: [`Capture`] builds frames with etherparse's `PacketBuilder` and
//! writes them to a pcap with a steadily advancing clock; [`Conn`] keeps one connection's sequence numbers so that
//! generators speak in payloads, not in headers.

use std::io::{self, Write};

use etherparse::PacketBuilder;

use crate::pcap::PcapWriter;

/// Largest TCP payload put in one frame (a 1500-byte MTU).
pub const MSS: usize = 1460;
/// Capture time of the first frame: 2023-11-14T22:13:20Z, in microseconds.
const START_MICROS: u64 = 1_700_000_000_000_000;
/// Capture time between two frames.
const TICK_MICROS: u64 = 10;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

/// One end of a connection: IPv4 address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IPv4 address.
    pub ip: [u8; 4],
    /// TCP port.
    pub port: u16,
}

/// TCP flags of a frame (ACK is implied by a `Some` acknowledgment number).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// PSH.
    pub psh: bool,
}

/// A pcap being written: frames in, with timestamps `TICK_MICROS` apart.
#[derive(Debug)]
pub struct Capture<W: Write> {
    pcap: PcapWriter<W>,
    now: u64,
    frame: Vec<u8>,
}

impl<W: Write> Capture<W> {
    /// Starts a capture on `out` (writes the pcap header).
    pub fn new(out: W) -> io::Result<Self> {
        Ok(Capture { pcap: PcapWriter::new(out)?, now: START_MICROS, frame: Vec::with_capacity(MSS + 64) })
    }

    /// Writes one TCP frame from `src` to `dst`. `ack` sets the ACK flag and number.
    pub fn tcp(
        &mut self,
        src: Endpoint,
        dst: Endpoint,
        seq: u32,
        ack: Option<u32>,
        flags: TcpFlags,
        payload: &[u8],
    ) -> io::Result<()> {
        let (smac, dmac) = if src.port < dst.port { (SERVER_MAC, CLIENT_MAC) } else { (CLIENT_MAC, SERVER_MAC) };
        let mut b = PacketBuilder::ethernet2(smac, dmac).ipv4(src.ip, dst.ip, 64).tcp(src.port, dst.port, seq, 65_535);
        if flags.syn {
            b = b.syn();
        }
        if flags.fin {
            b = b.fin();
        }
        if flags.rst {
            b = b.rst();
        }
        if flags.psh {
            b = b.psh();
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        self.frame.clear();
        b.write(&mut self.frame, payload).map_err(io::Error::other)?;
        self.pcap.write_frame(self.now, &self.frame)?;
        self.now += TICK_MICROS;
        Ok(())
    }

    /// Moves the clock forward by `micros` (idle time between frames).
    pub fn sleep(&mut self, micros: u64) {
        self.now += micros;
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.pcap.frames()
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.pcap.bytes()
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.pcap.finish()
    }
}

/// One TCP connection's state as the generator sees it: both ends and the next sequence number of each side.
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    /// The side that opens the connection.
    pub client: Endpoint,
    /// The side that accepts it.
    pub server: Endpoint,
    /// Next sequence number the client sends.
    pub client_seq: u32,
    /// Next sequence number the server sends.
    pub server_seq: u32,
}

impl Conn {
    /// A connection whose SYNs will carry `client_isn` and `server_isn`.
    pub fn new(client: Endpoint, server: Endpoint, client_isn: u32, server_isn: u32) -> Self {
        Conn { client, server, client_seq: client_isn, server_seq: server_isn }
    }

    /// The client's SYN (consumes one sequence number).
    pub fn syn<W: Write>(&mut self, cap: &mut Capture<W>) -> io::Result<()> {
        cap.tcp(self.client, self.server, self.client_seq, None, TcpFlags { syn: true, ..TcpFlags::default() }, &[])?;
        self.client_seq = self.client_seq.wrapping_add(1);
        Ok(())
    }

    /// The server's SYN+ACK (consumes one sequence number).
    pub fn syn_ack<W: Write>(&mut self, cap: &mut Capture<W>) -> io::Result<()> {
        let flags = TcpFlags { syn: true, ..TcpFlags::default() };
        cap.tcp(self.server, self.client, self.server_seq, Some(self.client_seq), flags, &[])?;
        self.server_seq = self.server_seq.wrapping_add(1);
        Ok(())
    }

    /// SYN, SYN+ACK, ACK.
    pub fn handshake<W: Write>(&mut self, cap: &mut Capture<W>) -> io::Result<()> {
        self.syn(cap)?;
        self.syn_ack(cap)?;
        cap.tcp(self.client, self.server, self.client_seq, Some(self.server_seq), TcpFlags::default(), &[])
    }

    /// Client bytes, in order, cut into MSS-sized frames.
    pub fn client_data<W: Write>(&mut self, cap: &mut Capture<W>, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(MSS) {
            let flags = TcpFlags { psh: true, ..TcpFlags::default() };
            cap.tcp(self.client, self.server, self.client_seq, Some(self.server_seq), flags, piece)?;
            self.client_seq = self.client_seq.wrapping_add(piece.len() as u32);
        }
        Ok(())
    }

    /// Server bytes, in order, cut into MSS-sized frames.
    pub fn server_data<W: Write>(&mut self, cap: &mut Capture<W>, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(MSS) {
            let flags = TcpFlags { psh: true, ..TcpFlags::default() };
            cap.tcp(self.server, self.client, self.server_seq, Some(self.client_seq), flags, piece)?;
            self.server_seq = self.server_seq.wrapping_add(piece.len() as u32);
        }
        Ok(())
    }

    /// One client frame `ahead` bytes past the next expected client byte (leaves a hole; the sequence number of
    /// the connection does not move). The ACK does not acknowledge anything new, so the hole stays open.
    pub fn client_data_ahead<W: Write>(&mut self, cap: &mut Capture<W>, ahead: u32, data: &[u8]) -> io::Result<()> {
        let flags = TcpFlags { psh: true, ..TcpFlags::default() };
        cap.tcp(self.client, self.server, self.client_seq.wrapping_add(ahead), Some(self.server_seq), flags, data)
    }

    /// The client's FIN and the server's FIN (with the ACKs riding on them).
    pub fn close<W: Write>(&mut self, cap: &mut Capture<W>) -> io::Result<()> {
        let fin = TcpFlags { fin: true, ..TcpFlags::default() };
        cap.tcp(self.client, self.server, self.client_seq, Some(self.server_seq), fin, &[])?;
        self.client_seq = self.client_seq.wrapping_add(1);
        cap.tcp(self.server, self.client, self.server_seq, Some(self.client_seq), fin, &[])?;
        self.server_seq = self.server_seq.wrapping_add(1);
        cap.tcp(self.client, self.server, self.client_seq, Some(self.server_seq), TcpFlags::default(), &[])
    }
}
