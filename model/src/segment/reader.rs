//! The segment reader: a `.seg` (or `.seg.tmp`) file in, exchanges out. Lists blocks from the footer index when
//! it verifies, else by scanning from the header (resynchronising on the block magic after damage); verifies both
//! checksums of every block before decoding it, with every allocation bounded; reports what it could not read in
//! a [`RecoveryReport`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::layout::{
    self, BLOCK_HEADER_LEN, BLOCK_MAGIC, BlockFields, CODEC_STORED, CODEC_ZSTD, FILE_PREFIX_LEN, FOOTER_MAGIC,
    MAX_BLOCK_BYTES, TRAILER_LEN,
};
use super::{BlockInfo, FORMAT_MAJOR, SegmentError, SegmentHeader, bincode_decode_config};
use crate::{Exchange, Timestamp};

/// What became of the footer index when the file was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FooterStatus {
    /// The trailer and footer verified: blocks are listed from the index.
    Present,
    /// No trailer: the writer did not finish (or the file was cut). Blocks were found by a scan.
    Missing,
    /// A trailer or footer is there but does not verify. Blocks were found by a scan.
    Damaged(String),
}

/// A region of the file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the damaged block header or region.
    pub offset: u64,
    /// Bytes skipped.
    pub len: u64,
    /// Why.
    pub reason: String,
}

/// What a reader found and skipped. Filled when the file is opened (footer, scan, torn tail) and as blocks are
/// read (blocks that fail verification are added to `damaged`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Length of the file when it was opened.
    pub file_len: u64,
    /// The footer index.
    pub footer: FooterStatus,
    /// Blocks listed (by the footer or the scan).
    pub blocks: u64,
    /// Listed blocks read and verified so far.
    pub blocks_ok: u64,
    /// Listed blocks that failed verification when read.
    pub blocks_damaged: u64,
    /// Every damaged block or region, in the order found.
    pub damaged: Vec<Damage>,
    /// Bytes at the end of the file after the last whole block that are not a valid footer: a block cut short
    /// by a writer that died, or a cut file.
    pub torn_tail_bytes: u64,
    /// Exchanges decoded from verified blocks (each block counted once).
    pub exchanges: u64,
}

impl RecoveryReport {
    /// Whether nothing was missing or damaged (so far).
    pub fn is_clean(&self) -> bool {
        self.footer == FooterStatus::Present && self.damaged.is_empty() && self.torn_tail_bytes == 0
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.footer {
            FooterStatus::Present => write!(f, "footer present")?,
            FooterStatus::Missing => write!(f, "unfinished (no footer): blocks found by a scan")?,
            FooterStatus::Damaged(why) => write!(f, "footer damaged ({why}): blocks found by a scan")?,
        }
        write!(f, "; recovered {} exchanges from {} of {} blocks", self.exchanges, self.blocks_ok, self.blocks)?;
        if !self.damaged.is_empty() {
            let offsets: Vec<String> =
                self.damaged.iter().map(|d| format!("byte {}: {}", d.offset, d.reason)).collect();
            write!(f, "; {} damaged region(s) skipped ({})", self.damaged.len(), offsets.join("; "))?;
        }
        if self.torn_tail_bytes > 0 {
            write!(f, "; {} bytes of a torn tail ignored", self.torn_tail_bytes)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockState {
    Unread,
    Ok,
    Damaged,
}

/// One step of a whole-file read, in file order.
#[derive(Clone, Copy)]
enum Item {
    Block(usize),
    /// A region the scan skipped (index into `scan_damage`).
    Skipped(usize),
}

/// Reads one segment file. See the module docs.
pub struct SegmentReader {
    path: PathBuf,
    file: File,
    header: SegmentHeader,
    blocks: Vec<BlockInfo>,
    state: Vec<BlockState>,
    scan_damage: Vec<Damage>,
    order: Vec<Item>,
    report: RecoveryReport,
    payload: Vec<u8>,
    raw: Vec<u8>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

fn read_at(file: &File, path: &Path, offset: u64, buf: &mut [u8], what: &'static str) -> Result<(), SegmentError> {
    file.read_exact_at(buf, offset).map_err(|e| SegmentError::io_at(path, offset, what, e))
}

impl SegmentReader {
    /// Opens a segment: checks the header, then lists blocks from the footer or by a scan.
    pub fn open(path: &Path) -> Result<Self, SegmentError> {
        let file = File::open(path).map_err(|e| SegmentError::io(path, "opening", e))?;
        let file_len = file.metadata().map_err(|e| SegmentError::io(path, "reading metadata", e))?.len();
        let (header, header_end) = read_header(&file, path, file_len)?;
        let mut r = SegmentReader {
            path: path.to_path_buf(),
            file,
            header,
            blocks: Vec::new(),
            state: Vec::new(),
            scan_damage: Vec::new(),
            order: Vec::new(),
            report: RecoveryReport {
                file_len,
                footer: FooterStatus::Missing,
                blocks: 0,
                blocks_ok: 0,
                blocks_damaged: 0,
                damaged: Vec::new(),
                torn_tail_bytes: 0,
                exchanges: 0,
            },
            payload: Vec::new(),
            raw: Vec::new(),
            decompressor: None,
        };
        let mut end = file_len;
        match r.read_footer(header_end, file_len)? {
            FooterRead::Listed(blocks) => {
                r.blocks = blocks;
                r.report.footer = FooterStatus::Present;
            }
            FooterRead::Damaged { reason, blocks_end } => {
                r.report.footer = FooterStatus::Damaged(reason);
                end = blocks_end.unwrap_or(file_len);
                r.scan(header_end, end)?;
            }
            FooterRead::Missing => r.scan(header_end, end)?,
        }
        r.state = vec![BlockState::Unread; r.blocks.len()];
        r.report.blocks = r.blocks.len() as u64;
        r.report.damaged = r.scan_damage.clone();
        let mut order: Vec<(u64, Item)> =
            r.blocks.iter().enumerate().map(|(i, b)| (b.offset, Item::Block(i))).collect();
        order.extend(r.scan_damage.iter().enumerate().map(|(i, d)| (d.offset, Item::Skipped(i))));
        order.sort_by_key(|(o, _)| *o);
        r.order = order.into_iter().map(|(_, it)| it).collect();
        Ok(r)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// The blocks, in file order: from the footer index, or from a scan when there is none.
    pub fn blocks(&self) -> &[BlockInfo] {
        &self.blocks
    }

    /// Indices of the blocks whose time range meets `[from, to]`: the blocks to read to find the exchanges
    /// starting in that window.
    pub fn blocks_in_range(&self, from: Timestamp, to: Timestamp) -> Vec<usize> {
        (0..self.blocks.len()).filter(|&i| self.blocks[i].overlaps(from, to)).collect()
    }

    /// What was found and skipped so far.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    /// Reads, verifies and decodes block `i`. A block whose checksums or contents do not verify is an error
    /// naming the file and the block's offset (and is recorded in the recovery report); no partial data is
    /// returned.
    pub fn read_block(&mut self, i: usize) -> Result<Vec<Exchange>, SegmentError> {
        let Some(b) = self.blocks.get(i).copied() else {
            return Err(SegmentError::NoSuchBlock { path: self.path.clone(), index: i, count: self.blocks.len() });
        };
        match self.load_block(&b) {
            Ok(exchanges) => {
                if self.state[i] == BlockState::Unread {
                    self.state[i] = BlockState::Ok;
                    self.report.blocks_ok += 1;
                    self.report.exchanges += exchanges.len() as u64;
                }
                Ok(exchanges)
            }
            Err(Loaded::Damaged(reason)) => {
                if self.state[i] == BlockState::Unread {
                    self.state[i] = BlockState::Damaged;
                    self.report.blocks_damaged += 1;
                    self.report.damaged.push(Damage {
                        offset: b.offset,
                        len: BLOCK_HEADER_LEN as u64 + u64::from(b.stored_len),
                        reason: reason.clone(),
                    });
                }
                Err(SegmentError::BlockDamaged { path: self.path.clone(), offset: b.offset, reason })
            }
            Err(Loaded::Io(e)) => Err(e),
        }
    }

    /// Every exchange of the file in file order. A damaged block (or a region the scan skipped) yields one `Err`
    /// naming the file and offset, and reading goes on with the next block.
    pub fn exchanges(&mut self) -> ExchangeIter<'_> {
        ExchangeIter { reader: self, next: 0, current: Vec::new().into_iter() }
    }

    fn load_block(&mut self, b: &BlockInfo) -> Result<Vec<Exchange>, Loaded> {
        let mut hdr = [0u8; BLOCK_HEADER_LEN];
        self.read_or_damage(b.offset, &mut hdr, "reading block header")?;
        let fields = layout::decode_block_header(&hdr).map_err(|e| Loaded::Damaged(format!("block header: {e:?}")))?;
        if fields != b.fields() {
            return Err(Loaded::Damaged("block header disagrees with the footer index".into()));
        }
        check_fields(&fields).map_err(Loaded::Damaged)?;
        if fields.codec != CODEC_STORED && fields.codec != CODEC_ZSTD {
            return Err(Loaded::Damaged(format!("unknown codec {}", fields.codec)));
        }
        let mut payload = std::mem::take(&mut self.payload);
        payload.resize(fields.stored_len as usize, 0);
        let read = self.read_or_damage(b.offset + BLOCK_HEADER_LEN as u64, &mut payload, "reading block payload");
        let result = read.and_then(|()| self.decode_payload(&fields, &payload));
        self.payload = payload;
        result
    }

    fn decode_payload(&mut self, f: &BlockFields, payload: &[u8]) -> Result<Vec<Exchange>, Loaded> {
        let damaged = |m: String| Loaded::Damaged(m);
        if layout::crc(payload) != f.payload_crc {
            return Err(damaged("payload checksum does not match".into()));
        }
        let raw: &[u8] = if f.codec == CODEC_ZSTD {
            let decompressor = match &mut self.decompressor {
                Some(d) => d,
                None => self.decompressor.insert(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| Loaded::Io(SegmentError::io(&self.path, "setting up zstd", e)))?,
                ),
            };
            self.raw.clear();
            // Capacity bounds the output: raw_len was checked against MAX_BLOCK_BYTES.
            self.raw.reserve_exact(f.raw_len as usize);
            let n =
                decompressor.decompress_to_buffer(payload, &mut self.raw).map_err(|e| damaged(format!("zstd: {e}")))?;
            if n != f.raw_len as usize {
                return Err(damaged(format!("decompressed to {n} bytes, header says {}", f.raw_len)));
            }
            &self.raw
        } else {
            payload
        };
        decode_records(raw, f.records).map_err(damaged)
    }

    /// Reads exactly `buf.len()` bytes; the file ending early is damage (the listed block is not all there).
    fn read_or_damage(&self, offset: u64, buf: &mut [u8], what: &'static str) -> Result<(), Loaded> {
        match self.file.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(Loaded::Damaged(format!("file ends inside the block ({what})")))
            }
            Err(e) => Err(Loaded::Io(SegmentError::io_at(&self.path, offset, what, e))),
        }
    }

    fn read_footer(&mut self, header_end: u64, file_len: u64) -> Result<FooterRead, SegmentError> {
        if file_len < header_end + TRAILER_LEN as u64 {
            return Ok(FooterRead::Missing);
        }
        let mut t = [0u8; TRAILER_LEN];
        read_at(&self.file, &self.path, file_len - TRAILER_LEN as u64, &mut t, "reading trailer")?;
        let Some((footer_offset, footer_len)) = layout::decode_trailer(&t) else {
            if t[16..24] == layout::TRAILER_MAGIC {
                return Ok(FooterRead::Damaged { reason: "trailer checksum does not match".into(), blocks_end: None });
            }
            return Ok(FooterRead::Missing);
        };
        let footer_len = u64::from(footer_len);
        if footer_offset < header_end
            || footer_offset.checked_add(footer_len).and_then(|e| e.checked_add(TRAILER_LEN as u64)) != Some(file_len)
            || footer_len > u64::from(MAX_BLOCK_BYTES)
        {
            return Ok(FooterRead::Damaged { reason: "trailer points outside the file".into(), blocks_end: None });
        }
        let blocks_end = Some(footer_offset);
        let mut buf = vec![0u8; footer_len as usize];
        read_at(&self.file, &self.path, footer_offset, &mut buf, "reading footer")?;
        let entries = match layout::decode_footer(&buf) {
            Ok(e) => e,
            Err(reason) => return Ok(FooterRead::Damaged { reason, blocks_end }),
        };
        let mut prev_end = header_end;
        let mut blocks = Vec::with_capacity(entries.len());
        for (i, (offset, f)) in entries.iter().enumerate() {
            let end = check_fields(f)
                .ok()
                .and_then(|()| offset.checked_add(BLOCK_HEADER_LEN as u64 + u64::from(f.stored_len)));
            match end {
                Some(end) if *offset >= prev_end && end <= footer_offset => prev_end = end,
                _ => {
                    let reason = format!("footer entry {i} (offset {offset}) is out of place or out of range");
                    return Ok(FooterRead::Damaged { reason, blocks_end });
                }
            }
            blocks.push(BlockInfo::from_fields(*offset, f));
        }
        Ok(FooterRead::Listed(blocks))
    }

    /// Lists blocks by walking block headers from `from` to `end`, resynchronising on damage.
    fn scan(&mut self, from: u64, end: u64) -> Result<(), SegmentError> {
        let mut pos = from;
        while pos < end {
            let remaining = end - pos;
            if remaining < BLOCK_HEADER_LEN as u64 {
                self.report.torn_tail_bytes = remaining;
                return Ok(());
            }
            let mut hdr = [0u8; BLOCK_HEADER_LEN];
            read_at(&self.file, &self.path, pos, &mut hdr, "reading block header")?;
            if hdr[0..8] == FOOTER_MAGIC {
                // A footer we could not use: cut short (no trailer), or damaged (counted as such, not torn).
                if self.report.footer == FooterStatus::Missing {
                    self.report.torn_tail_bytes = remaining;
                }
                return Ok(());
            }
            let reason = match layout::decode_block_header(&hdr) {
                Ok(f) => match check_fields(&f) {
                    Ok(()) => {
                        let block_end = pos + BLOCK_HEADER_LEN as u64 + u64::from(f.stored_len);
                        if block_end > end {
                            self.report.torn_tail_bytes = remaining;
                            return Ok(());
                        }
                        self.blocks.push(BlockInfo::from_fields(pos, &f));
                        pos = block_end;
                        continue;
                    }
                    Err(reason) => reason,
                },
                Err(e) => format!("block header: {e:?}"),
            };
            let had_magic = hdr[0..8] == BLOCK_MAGIC;
            match self.find_next(pos + 1, end)? {
                Some(next) => {
                    self.scan_damage.push(Damage {
                        offset: pos,
                        len: next - pos,
                        reason: format!("{reason}; skipped {} bytes to the next block", next - pos),
                    });
                    pos = next;
                }
                None if !had_magic && self.all_zero(pos, end)? => {
                    // Zeros to the end: what a file system can leave after a crash of the writer.
                    self.report.torn_tail_bytes = remaining;
                    return Ok(());
                }
                None => {
                    self.scan_damage.push(Damage { offset: pos, len: remaining, reason });
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Whether `[from, end)` holds only zero bytes.
    fn all_zero(&self, from: u64, end: u64) -> Result<bool, SegmentError> {
        const CHUNK: u64 = 1 << 20;
        let mut buf = Vec::new();
        let mut start = from;
        while start < end {
            buf.resize(CHUNK.min(end - start) as usize, 0);
            read_at(&self.file, &self.path, start, &mut buf, "reading the tail")?;
            if buf.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            start += buf.len() as u64;
        }
        Ok(true)
    }

    /// The offset of the next verified block header or footer magic in `[from, end)`.
    fn find_next(&self, from: u64, end: u64) -> Result<Option<u64>, SegmentError> {
        const CHUNK: u64 = 1 << 20;
        let finder = memchr::memmem::Finder::new(&BLOCK_MAGIC[..3]);
        let mut buf = Vec::new();
        let mut start = from;
        while start < end {
            let len = (CHUNK + BLOCK_HEADER_LEN as u64).min(end - start);
            buf.resize(len as usize, 0);
            read_at(&self.file, &self.path, start, &mut buf, "searching for the next block")?;
            for p in finder.find_iter(&buf) {
                if p as u64 >= CHUNK {
                    break;
                }
                let rest = &buf[p..];
                if rest.len() >= 8 && rest[..8] == FOOTER_MAGIC {
                    return Ok(Some(start + p as u64));
                }
                if rest.len() >= BLOCK_HEADER_LEN {
                    let mut hdr = [0u8; BLOCK_HEADER_LEN];
                    hdr.copy_from_slice(&rest[..BLOCK_HEADER_LEN]);
                    if layout::decode_block_header(&hdr).is_ok_and(|f| check_fields(&f).is_ok()) {
                        return Ok(Some(start + p as u64));
                    }
                }
            }
            start += CHUNK;
        }
        Ok(None)
    }
}

enum FooterRead {
    Listed(Vec<BlockInfo>),
    Missing,
    Damaged { reason: String, blocks_end: Option<u64> },
}

enum Loaded {
    Damaged(String),
    Io(SegmentError),
}

/// Size rules every block must meet before anything is allocated for it.
fn check_fields(f: &BlockFields) -> Result<(), String> {
    if f.raw_len > MAX_BLOCK_BYTES || f.stored_len > MAX_BLOCK_BYTES {
        return Err(format!("block sizes {}/{} exceed the {MAX_BLOCK_BYTES}-byte cap", f.stored_len, f.raw_len));
    }
    if f.codec == CODEC_STORED && f.stored_len != f.raw_len {
        return Err("stored block with different stored and raw lengths".into());
    }
    Ok(())
}

/// Decodes `count` length-prefixed bincode records that must fill `raw` exactly.
fn decode_records(raw: &[u8], count: u32) -> Result<Vec<Exchange>, String> {
    // Each record takes at least 5 bytes, which bounds the preallocation by the (bounded) raw length.
    let mut out = Vec::with_capacity((count as usize).min(raw.len() / 5));
    let mut at = 0usize;
    for i in 0..count {
        let Some(len_bytes) = raw.get(at..at + 4) else {
            return Err(format!("record {i}: block ends inside its length"));
        };
        let len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        at += 4;
        let Some(body) = raw.get(at..at + len) else {
            return Err(format!("record {i}: length {len} runs past the block"));
        };
        let (ex, used): (Exchange, usize) = bincode::decode_from_slice(body, bincode_decode_config())
            .map_err(|e| format!("record {i}: bincode: {e}"))?;
        if used != len {
            return Err(format!("record {i}: {used} of {len} bytes decoded"));
        }
        out.push(ex);
        at += len;
    }
    if at != raw.len() {
        return Err(format!("{} bytes after the last record", raw.len() - at));
    }
    Ok(out)
}

/// Reads and verifies the file header; returns it and the offset of the first block.
fn read_header(file: &File, path: &Path, file_len: u64) -> Result<(SegmentHeader, u64), SegmentError> {
    let mut prefix = [0u8; FILE_PREFIX_LEN];
    let have = file_len.min(FILE_PREFIX_LEN as u64) as usize;
    read_at(file, path, 0, &mut prefix[..have], "reading file header")?;
    let magic_len = have.min(8);
    if prefix[..magic_len] != layout::FILE_MAGIC[..magic_len] || have == 0 {
        return Err(SegmentError::NotASegment {
            path: path.into(),
            reason: "the file does not start with the segment magic".into(),
        });
    }
    let damaged = |reason: String| SegmentError::HeaderDamaged { path: path.into(), reason };
    if have < FILE_PREFIX_LEN {
        return Err(damaged(format!("the file ends inside its header ({file_len} bytes)")));
    }
    let p = layout::decode_prefix(&prefix).map_err(|e| damaged(format!("{e:?}")))?;
    if p.major != FORMAT_MAJOR {
        return Err(SegmentError::UnsupportedVersion { path: path.into(), major: p.major, minor: p.minor });
    }
    let header_end = FILE_PREFIX_LEN as u64 + u64::from(p.body_len) + 4;
    if file_len < header_end {
        return Err(damaged(format!("the file ends inside its header ({file_len} of {header_end} bytes)")));
    }
    let mut rest = vec![0u8; p.body_len as usize + 4];
    read_at(file, path, FILE_PREFIX_LEN as u64, &mut rest, "reading file header")?;
    let (body, crc_bytes) = rest.split_at(p.body_len as usize);
    let mut h = crc32fast::Hasher::new();
    h.update(&prefix);
    h.update(body);
    if h.finalize().to_le_bytes() != crc_bytes {
        return Err(damaged("header checksum does not match".into()));
    }
    let b = layout::decode_header_body(body).map_err(damaged)?;
    Ok((
        SegmentHeader {
            format_major: p.major,
            format_minor: p.minor,
            created_unix_nanos: b.created_unix_nanos,
            first_capture: b.first_capture,
            sequence: b.sequence,
            pid: b.pid,
            writer: b.writer,
            masking_fingerprint: b.masking_fingerprint,
            labels: b.labels,
        },
        header_end,
    ))
}

/// Iterator over the exchanges of a file; see [`SegmentReader::exchanges`].
pub struct ExchangeIter<'a> {
    reader: &'a mut SegmentReader,
    next: usize,
    current: std::vec::IntoIter<Exchange>,
}

impl Iterator for ExchangeIter<'_> {
    type Item = Result<Exchange, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(ex) = self.current.next() {
                return Some(Ok(ex));
            }
            let item = *self.reader.order.get(self.next)?;
            self.next += 1;
            match item {
                Item::Block(i) => match self.reader.read_block(i) {
                    Ok(v) => self.current = v.into_iter(),
                    Err(e) => return Some(Err(e)),
                },
                Item::Skipped(d) => {
                    let d = &self.reader.scan_damage[d];
                    return Some(Err(SegmentError::BlockDamaged {
                        path: self.reader.path.clone(),
                        offset: d.offset,
                        reason: d.reason.clone(),
                    }));
                }
            }
        }
    }
}
