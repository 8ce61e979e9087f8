//! Packet sources: pcap and pcapng files or pipes, read without libpcap. A source yields [`Frame`]s.
//!
//! In: a byte stream (a file, stdin for `tcpdump -w - | agent --pcap -`, any `Read`). Out: [`Frame`]s that
//! borrow the source's buffer until the next call. Memory: one read window that grows on demand up to
//! [`SourceConfig::max_record`] plus a few bytes, whatever the input size.
//!
//! Formats: classic pcap (micro- and nanosecond, both byte orders, the "modified" variant) and pcapng (several
//! sections, several interfaces each with its own link type, `if_tsresol` and `if_tsoffset`; Enhanced, Simple
//! and Obsolete Packet Blocks; other blocks are skipped and counted).
//!
//! Damage: a record that is cut short, declares an absurd length, or a pcapng block whose framing is corrupt
//! ends the source: [`PcapSource::next_frame`] returns the error once, then `Ok(None)`. The source does not try to
//! resynchronise: after a bad length nothing says where the next record starts, and a guessed header would feed
//! invented packets to reassembly. Everything read before the damage has been delivered.
//!
//! Streaming inputs (stdin, FIFOs; [`pipe`]) opened with [`PcapSource::open_polled`] never block longer than the
//! wait given: a quiet input yields [`SourceError::Idle`] and the next call carries on where it stopped.

pub mod capture;
pub mod ebpf;
mod error;
pub mod filter;
pub mod live;
mod pcap;
mod pcapng;
pub mod pipe;
mod window;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use tapedeck_model::Timestamp;

pub use error::{Damage, SourceError};

use error::human_bytes;
use pcap::{FILE_HEADER_LEN, LIBPCAP_MAX_SNAPLEN, Magic, PcapFormat};
use pcapng::Interface;
use window::Window;

/// A link-layer header type (the pcap LINKTYPE_ value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback (4-byte address family in host byte order).
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II, possibly with 802.1Q / QinQ tags.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP (v4 or v6 by the version nibble).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback (4-byte address family in network byte order).
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One captured packet, borrowed from the source's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// How to decode `data`.
    pub link: LinkType,
    /// The captured bytes (at most the snaplen).
    pub data: &'a [u8],
    /// The packet's length on the wire (larger than `data.len()` when the snaplen cut it).
    pub orig_len: u32,
    /// The interface index (pcapng) or 0.
    pub interface: u32,
    /// The packet's number in its file, from 1, for messages.
    pub number: u64,
}

/// Limits of a source.
#[derive(Clone, Copy, Debug)]
pub struct SourceConfig {
    /// The longest record (pcap: captured length; pcapng: block length) accepted; longer is damage. Default 16 MiB.
    pub max_record: usize,
    /// The read buffer's starting size. Default 1 MiB.
    pub initial_buffer: usize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig { max_record: 16 << 20, initial_buffer: 1 << 20 }
    }
}

/// What a source has read so far. Plain counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Frames returned by [`PcapSource::next_frame`].
    pub frames: u64,
    /// Captured packet bytes in those frames.
    pub frame_bytes: u64,
    /// Input bytes consumed (headers, records, blocks).
    pub bytes_read: u64,
    /// Records whose captured length is below the length on the wire (snaplen cut).
    pub truncated_records: u64,
    /// Records whose length on the wire is below their captured length (the wire length is raised to match).
    pub orig_len_below_caplen: u64,
    /// pcap records longer than the file's snaplen but within libpcap's maximum (kept).
    pub caplen_above_snaplen: u64,
    /// pcapng sections started.
    pub sections: u64,
    /// pcapng interfaces described.
    pub interfaces: u64,
    /// pcapng blocks skipped (statistics, name resolution, secrets, custom, unknown ...).
    pub skipped_blocks: u64,
    /// pcapng Simple Packet Blocks (no timestamp: they get the previous packet's time).
    pub simple_packets: u64,
    /// pcapng packets naming an interface the section did not describe (skipped).
    pub unknown_interface_packets: u64,
    /// pcapng Interface Description Blocks with malformed options (defaults used for what was unreadable).
    pub bad_interface_options: u64,
    /// Damage that ended the source (0 or 1).
    pub damaged: u64,
    /// Frames (or, without libpcap, TCP segments) that `--filter` rejected; counted by the pipeline
    /// ([`filter::PacketFilter`]), not by the source.
    pub filtered_out: u64,
}

/// The container format being read.
enum Format {
    Pcap(PcapFormat),
    PcapNg(NgSection),
}

/// The current pcapng section.
struct NgSection {
    big_endian: bool,
    interfaces: Vec<Interface>,
    /// Time of the last timestamped packet, for Simple Packet Blocks.
    last_ts: Timestamp,
}

/// Where the next frame sits in the window.
struct Meta {
    ts: Timestamp,
    link: LinkType,
    /// Offset of the packet bytes from the window start.
    from: usize,
    caplen: usize,
    orig_len: u32,
    interface: u32,
    /// Bytes of input the record occupies.
    consumed: usize,
}

/// A pcap or pcapng reader over any byte stream. See the module documentation.
pub struct PcapSource {
    name: String,
    win: Window,
    format: Format,
    cfg: SourceConfig,
    stats: SourceStats,
    /// Packets seen (returned or skipped), for numbering.
    number: u64,
    /// Bytes of the last returned record, consumed on the next call.
    pending: usize,
    done: bool,
}

impl PcapSource {
    /// Opens a capture file; `-` means stdin.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        Self::open_with(path, SourceConfig::default())
    }

    /// [`PcapSource::open`] with explicit limits.
    pub fn open_with(path: &Path, cfg: SourceConfig) -> Result<Self, SourceError> {
        let name = path.display().to_string();
        if path.as_os_str() == "-" {
            return Self::from_reader_with(name, Box::new(std::io::stdin()), cfg);
        }
        let file = File::open(path).map_err(|source| SourceError::Io { name: name.clone(), source })?;
        Self::from_reader_with(name, Box::new(file), cfg)
    }

    /// Opens a capture file like [`PcapSource::open`], but a streaming input (`-`, a FIFO: [`pipe::is_streaming`])
    /// is read through a [`pipe::PolledReader`]: once open, [`PcapSource::next_frame`] returns
    /// [`SourceError::Idle`] when no data came within `wait`, and can be called again. Opening waits for the
    /// capture's header however long it takes.
    pub fn open_polled(path: &Path, wait: Duration) -> Result<Self, SourceError> {
        if !pipe::is_streaming(path) {
            return Self::open(path);
        }
        let name = path.display().to_string();
        let reader = if path.as_os_str() == "-" {
            pipe::PolledReader::stdin(wait)
        } else {
            File::open(path).map(|f| pipe::PolledReader::new(f, wait))
        };
        match reader {
            Ok(r) => Self::from_reader_with(name, Box::new(r), SourceConfig::default()),
            Err(source) => Err(SourceError::Io { name, source }),
        }
    }

    /// Reads a capture from any byte stream; `name` is used in messages.
    pub fn from_reader(name: String, r: Box<dyn Read + Send>) -> Result<Self, SourceError> {
        Self::from_reader_with(name, r, SourceConfig::default())
    }

    /// [`PcapSource::from_reader`] with explicit limits. Reads and checks the file header (pcap) or the first
    /// section header (pcapng).
    pub fn from_reader_with(name: String, r: Box<dyn Read + Send>, cfg: SourceConfig) -> Result<Self, SourceError> {
        let cfg = SourceConfig { max_record: cfg.max_record.max(64), ..cfg };
        let mut win = Window::new(r, cfg.initial_buffer.min(cfg.max_record + 64), cfg.max_record + 64);
        // A polled reader gives up now and then: opening waits for the header however long it takes.
        loop {
            match win.fill(4) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(source) => return Err(SourceError::Io { name, source }),
                Ok(_) => break,
            }
        }
        let head = win.peek(win.available().min(4));
        let magic = match <[u8; 4]>::try_from(head).ok().and_then(Magic::from_bytes) {
            Some(m) => m,
            None => {
                let what = if head.is_empty() { "empty input".to_string() } else { format!("starts with {head:02x?}") };
                return Err(SourceError::NotACapture { name, what });
            }
        };
        let mut src = PcapSource {
            name,
            win,
            format: Format::PcapNg(NgSection { big_endian: false, interfaces: Vec::new(), last_ts: Timestamp(0) }),
            cfg,
            stats: SourceStats::default(),
            number: 0,
            pending: 0,
            done: false,
        };
        match magic {
            Magic::Pcap { big_endian, nanos, modified } => {
                src.need_waiting(FILE_HEADER_LEN)?;
                let fmt = PcapFormat::new(src.win.peek(FILE_HEADER_LEN), big_endian, nanos, modified);
                src.format = Format::Pcap(fmt);
                src.consume(FILE_HEADER_LEN);
            }
            Magic::PcapNg => {
                // The first block must be a well-formed section header; anything else is not pcapng.
                src.need_waiting(12)?;
                if src.section_order().is_none() {
                    let what = format!("pcapng block type but byte-order magic {:02x?}", src.win.slice(8, 4));
                    return Err(SourceError::NotACapture { name: src.name, what });
                }
            }
        }
        Ok(src)
    }

    /// The input's name (`-` for stdin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counters so far.
    pub fn stats(&self) -> &SourceStats {
        &self.stats
    }

    /// The next frame; `Ok(None)` at the clean end of the input, and after an error.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        if self.pending > 0 {
            let n = self.pending;
            self.pending = 0;
            self.consume(n);
        }
        if self.done {
            return Ok(None);
        }
        let meta = match self.format {
            Format::Pcap(fmt) => self.next_pcap(fmt)?,
            Format::PcapNg(_) => self.next_ng()?,
        };
        let Some(m) = meta else {
            self.done = true;
            return Ok(None);
        };
        self.pending = m.consumed;
        self.stats.frames += 1;
        self.stats.frame_bytes += m.caplen as u64;
        let mut orig_len = m.orig_len;
        if (orig_len as usize) < m.caplen {
            self.stats.orig_len_below_caplen += 1;
            orig_len = u32::try_from(m.caplen).unwrap_or(u32::MAX);
        } else if (orig_len as usize) > m.caplen {
            self.stats.truncated_records += 1;
        }
        Ok(Some(Frame {
            ts: m.ts,
            link: m.link,
            data: self.win.slice(m.from, m.caplen),
            orig_len,
            interface: m.interface,
            number: self.number,
        }))
    }

    // ===== classic pcap =====

    fn next_pcap(&mut self, fmt: PcapFormat) -> Result<Option<Meta>, SourceError> {
        let hl = fmt.record_header_len;
        if !self.fill(hl)? {
            return self.end_or_cut(hl);
        }
        let rec = fmt.record(self.win.peek(hl));
        let caplen = rec.caplen as usize;
        if rec.caplen as u64 > self.cfg.max_record as u64 {
            return Err(self.too_long(u64::from(rec.caplen)));
        }
        if rec.caplen > fmt.snaplen.max(LIBPCAP_MAX_SNAPLEN) {
            return Err(self.damage(Damage::BeyondSnaplen { len: u64::from(rec.caplen), snaplen: fmt.snaplen }));
        }
        self.need(hl + caplen)?;
        // Counted once the record is whole (a quiet pipe may make this call return Idle and come back).
        if fmt.snaplen != 0 && rec.caplen > fmt.snaplen {
            self.stats.caplen_above_snaplen += 1;
        }
        self.number += 1;
        Ok(Some(Meta {
            ts: rec.ts,
            link: fmt.link,
            from: hl,
            caplen,
            orig_len: rec.orig_len,
            interface: 0,
            consumed: hl + caplen,
        }))
    }

    // ===== pcapng =====

    fn next_ng(&mut self) -> Result<Option<Meta>, SourceError> {
        loop {
            if !self.fill(8)? {
                return self.end_or_cut(8);
            }
            let Format::PcapNg(sec) = &self.format else {
                return Ok(None);
            };
            let be = sec.big_endian;
            let block_type = pcapng::u32_at(be, self.win.peek(8), 0);
            if block_type == pcapng::SHB {
                self.read_section_header()?;
                continue;
            }
            let len = pcapng::u32_at(be, self.win.peek(8), 4);
            let len = self.check_block_len(len, 12, block_name(block_type), be)?;
            let block = self.win.peek(len);
            let body = &block[8..len - 4];
            let Format::PcapNg(sec) = &mut self.format else {
                return Ok(None);
            };
            match block_type {
                pcapng::EPB | pcapng::OPB => {
                    let name = block_name(block_type);
                    if body.len() < 20 {
                        return Err(self.corrupt(name, format!("{} bytes of body, 20 needed", body.len())));
                    }
                    let (iface, ts_hi) = if block_type == pcapng::EPB {
                        (pcapng::u32_at(be, body, 0), pcapng::u32_at(be, body, 4))
                    } else {
                        let id = pcapng::u32_at(be, body, 0);
                        (if be { id >> 16 } else { id & 0xffff }, pcapng::u32_at(be, body, 4))
                    };
                    let ts_lo = pcapng::u32_at(be, body, 8);
                    let caplen = pcapng::u32_at(be, body, 12);
                    let orig_len = pcapng::u32_at(be, body, 16);
                    if caplen as usize > body.len() - 20 {
                        let room = body.len() - 20;
                        return Err(self
                            .corrupt(name, format!("captured length {caplen} exceeds the {room} bytes of the block")));
                    }
                    self.number += 1;
                    let Some(&info) = sec.interfaces.get(iface as usize) else {
                        self.stats.unknown_interface_packets += 1;
                        self.consume(len);
                        continue;
                    };
                    let ts = info.timestamp((u64::from(ts_hi) << 32) | u64::from(ts_lo));
                    sec.last_ts = ts;
                    return Ok(Some(Meta {
                        ts,
                        link: info.link,
                        from: 28,
                        caplen: caplen as usize,
                        orig_len,
                        interface: iface,
                        consumed: len,
                    }));
                }
                pcapng::SPB => {
                    if body.len() < 4 {
                        return Err(self.corrupt("simple packet", format!("{} bytes of body, 4 needed", body.len())));
                    }
                    let orig_len = pcapng::u32_at(be, body, 0);
                    self.number += 1;
                    let Some(&info) = sec.interfaces.first() else {
                        self.stats.unknown_interface_packets += 1;
                        self.consume(len);
                        continue;
                    };
                    let mut caplen = (orig_len as usize).min(body.len() - 4);
                    if info.snaplen != 0 {
                        caplen = caplen.min(info.snaplen as usize);
                    }
                    self.stats.simple_packets += 1;
                    return Ok(Some(Meta {
                        ts: sec.last_ts,
                        link: info.link,
                        from: 12,
                        caplen,
                        orig_len,
                        interface: 0,
                        consumed: len,
                    }));
                }
                pcapng::IDB => {
                    let Some((iface, trouble)) = pcapng::parse_idb(body, be) else {
                        return Err(
                            self.corrupt("interface description", format!("{} bytes of body, 8 needed", body.len()))
                        );
                    };
                    if trouble != pcapng::OptionTrouble::default() {
                        self.stats.bad_interface_options += 1;
                    }
                    sec.interfaces.push(iface);
                    self.stats.interfaces += 1;
                    self.consume(len);
                }
                _ => {
                    self.stats.skipped_blocks += 1;
                    self.consume(len);
                }
            }
        }
    }

    /// The byte order announced by the section header at the window start (12 bytes available), if valid.
    fn section_order(&self) -> Option<bool> {
        let bom = self.win.slice(8, 4);
        if pcapng::u32_at(true, bom, 0) == pcapng::BYTE_ORDER_MAGIC {
            Some(true)
        } else if pcapng::u32_at(false, bom, 0) == pcapng::BYTE_ORDER_MAGIC {
            Some(false)
        } else {
            None
        }
    }

    /// Reads the section header at the window start and starts a new section.
    fn read_section_header(&mut self) -> Result<(), SourceError> {
        self.need(12)?;
        let Some(be) = self.section_order() else {
            let bom = self.win.slice(8, 4);
            return Err(self.corrupt("section header", format!("byte-order magic {bom:02x?}")));
        };
        let len = pcapng::u32_at(be, self.win.peek(8), 4);
        let len = self.check_block_len(len, 28, "section header", be)?;
        self.format = Format::PcapNg(NgSection { big_endian: be, interfaces: Vec::new(), last_ts: Timestamp(0) });
        self.stats.sections += 1;
        self.consume(len);
        Ok(())
    }

    /// Checks a pcapng block length and makes the whole block available.
    fn check_block_len(&mut self, len: u32, min: u32, block: &'static str, be: bool) -> Result<usize, SourceError> {
        if u64::from(len) > self.cfg.max_record as u64 {
            return Err(self.too_long(u64::from(len)));
        }
        if len < min || !len.is_multiple_of(4) {
            return Err(self.corrupt(block, format!("block length {len} (at least {min}, a multiple of 4)")));
        }
        let n = len as usize;
        self.need(n)?;
        let trailer = pcapng::u32_at(be, self.win.peek(n), n - 4);
        if trailer != len {
            return Err(self.corrupt(block, format!("trailing length {trailer} differs from leading length {len}")));
        }
        Ok(n)
    }

    // ===== buffer and errors =====

    fn consume(&mut self, n: usize) {
        self.win.consume(n);
        self.stats.bytes_read += n as u64;
    }

    /// Fills `n` bytes; a read failure is damage, a polled reader's timeout is [`SourceError::Idle`] (nothing is
    /// consumed or counted before a record is whole, so the next call starts the record again).
    fn fill(&mut self, n: usize) -> Result<bool, SourceError> {
        match self.win.fill(n) {
            Ok(ok) => Ok(ok),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(SourceError::Idle { name: self.name.clone() }),
            Err(e) => Err(self.damage(Damage::Read(e))),
        }
    }

    /// [`PcapSource::need`], waiting through [`SourceError::Idle`] (while opening).
    fn need_waiting(&mut self, n: usize) -> Result<(), SourceError> {
        loop {
            match self.need(n) {
                Err(SourceError::Idle { .. }) => {}
                other => return other,
            }
        }
    }

    /// Fills `n` bytes from the start of a record; running out is "cut short".
    fn need(&mut self, n: usize) -> Result<(), SourceError> {
        if self.fill(n)? {
            Ok(())
        } else {
            let available = self.win.available() as u64;
            Err(self.damage(Damage::CutShort { needed: n as u64, available }))
        }
    }

    /// At a record boundary: a clean end when nothing is left, else "cut short".
    fn end_or_cut(&mut self, needed: usize) -> Result<Option<Meta>, SourceError> {
        let available = self.win.available();
        if available == 0 {
            return Ok(None);
        }
        Err(self.damage(Damage::CutShort { needed: needed as u64, available: available as u64 }))
    }

    fn too_long(&mut self, len: u64) -> SourceError {
        let limit = self.cfg.max_record as u64;
        self.damage(Damage::RecordTooLong { len, limit, limit_text: human_bytes(limit) })
    }

    fn corrupt(&mut self, block: &'static str, reason: String) -> SourceError {
        self.damage(Damage::CorruptBlock { block, reason })
    }

    /// Ends the source with `damage` at the current record.
    fn damage(&mut self, damage: Damage) -> SourceError {
        self.done = true;
        self.stats.damaged = 1;
        SourceError::Damaged { name: self.name.clone(), offset: self.win.offset(), packet: self.number + 1, damage }
    }
}

/// A pcapng block type's name, for messages.
fn block_name(block_type: u32) -> &'static str {
    match block_type {
        pcapng::SHB => "section header",
        pcapng::IDB => "interface description",
        pcapng::OPB => "obsolete packet",
        pcapng::SPB => "simple packet",
        pcapng::EPB => "enhanced packet",
        _ => "pcapng",
    }
}

crate::impl_merge!(SourceStats {
    frames,
    frame_bytes,
    bytes_read,
    truncated_records,
    orig_len_below_caplen,
    caplen_above_snaplen,
    sections,
    interfaces,
    skipped_blocks,
    simple_packets,
    unknown_interface_packets,
    bad_interface_options,
    damaged,
    filtered_out,
});
