//! The fixed byte layouts of a segment file: file header, block header, footer index and trailer, each with its
//! CRC-32. Pure functions over byte slices (no I/O), so the rules in docs/format.md live in one place.
//!
//! Every multi-byte integer here is little-endian. Checksums are CRC-32 (IEEE 802.3 polynomial, the one of zlib
//! and `crc32fast`).

use crate::Timestamp;

/// Magic bytes at offset 0 of every segment file: `\x89TDSEG\r\n`.
pub const FILE_MAGIC: [u8; 8] = *b"\x89TDSEG\r\n";
/// Magic bytes at the start of every block header: `\x89TDBLK\r\n`.
pub const BLOCK_MAGIC: [u8; 8] = *b"\x89TDBLK\r\n";
/// Magic bytes at the start of the footer index: `\x89TDIDX\r\n`.
pub const FOOTER_MAGIC: [u8; 8] = *b"\x89TDIDX\r\n";
/// Magic bytes at the very end of a finished file (last 8 bytes of the trailer): `\x89TDEND\r\n`.
pub const TRAILER_MAGIC: [u8; 8] = *b"\x89TDEND\r\n";

/// The format's major version: a reader refuses files of another major version.
pub const FORMAT_MAJOR: u16 = 2;
/// The format's minor version: additions that readers of the same major version may ignore.
pub const FORMAT_MINOR: u16 = 0;

/// Length of the fixed part of the file header (magic, versions, body length).
pub const FILE_PREFIX_LEN: usize = 16;
/// Largest header body a reader accepts (checked before allocating).
pub const MAX_HEADER_BODY: u32 = 1 << 20;
/// Length of a block header.
pub const BLOCK_HEADER_LEN: usize = 48;
/// Length of one footer index entry.
pub const INDEX_ENTRY_LEN: usize = 48;
/// Length of the fixed part of the footer before its entries (magic, count, reserved).
pub const FOOTER_PREFIX_LEN: usize = 16;
/// Length of the trailer at the end of a finished file.
pub const TRAILER_LEN: usize = 24;
/// Largest raw (uncompressed) or stored block payload, in bytes; checked before allocating.
pub const MAX_BLOCK_BYTES: u32 = 64 << 20;
/// Largest masking-policy fingerprint, in bytes.
pub const MAX_FINGERPRINT: usize = 64;

/// Block payload codec: the payload is the raw records, uncompressed.
pub const CODEC_STORED: u8 = 0;
/// Block payload codec: the payload is one zstd frame holding the raw records.
pub const CODEC_ZSTD: u8 = 1;

/// CRC-32 of `bytes`.
pub fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The fixed prefix of the file header, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilePrefix {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Length of the header body that follows.
    pub body_len: u32,
}

/// Why the 16-byte file prefix was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixError {
    /// The magic does not match: not a segment file.
    BadMagic,
    /// The header body length is over [`MAX_HEADER_BODY`].
    BodyTooLarge(u32),
}

/// Encodes the 16-byte file prefix.
pub fn encode_prefix(body_len: u32) -> [u8; FILE_PREFIX_LEN] {
    let mut b = [0u8; FILE_PREFIX_LEN];
    b[0..8].copy_from_slice(&FILE_MAGIC);
    b[8..10].copy_from_slice(&FORMAT_MAJOR.to_le_bytes());
    b[10..12].copy_from_slice(&FORMAT_MINOR.to_le_bytes());
    b[12..16].copy_from_slice(&body_len.to_le_bytes());
    b
}

/// Parses the 16-byte file prefix (the version is returned, not judged).
pub fn decode_prefix(b: &[u8; FILE_PREFIX_LEN]) -> Result<FilePrefix, PrefixError> {
    if b[0..8] != FILE_MAGIC {
        return Err(PrefixError::BadMagic);
    }
    let body_len = u32_at(b, 12);
    if body_len > MAX_HEADER_BODY {
        return Err(PrefixError::BodyTooLarge(body_len));
    }
    Ok(FilePrefix { major: u16_at(b, 8), minor: u16_at(b, 10), body_len })
}

/// The fields of the header body (version 1.0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderBody {
    /// Wall-clock time the file was created, ns since the epoch.
    pub created_unix_nanos: u64,
    /// Capture time of the first exchange written to the file.
    pub first_capture: Timestamp,
    /// The file's sequence number within the writer that made it.
    pub sequence: u64,
    /// Process id of the writer.
    pub pid: u32,
    /// Name and version of the writing program.
    pub writer: String,
    /// Masking-policy fingerprint (empty when none).
    pub masking_fingerprint: Vec<u8>,
    /// Free-form labels.
    pub labels: Vec<(String, String)>,
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Lengths are bounded by MAX_HEADER_BODY, checked by the caller on the total.
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Encodes the header body.
pub fn encode_header_body(h: &HeaderBody) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&h.created_unix_nanos.to_le_bytes());
    out.extend_from_slice(&h.first_capture.0.to_le_bytes());
    out.extend_from_slice(&h.sequence.to_le_bytes());
    out.extend_from_slice(&h.pid.to_le_bytes());
    put_bytes(&mut out, h.writer.as_bytes());
    put_bytes(&mut out, &h.masking_fingerprint);
    out.extend_from_slice(&(h.labels.len() as u32).to_le_bytes());
    for (k, v) in &h.labels {
        put_bytes(&mut out, k.as_bytes());
        put_bytes(&mut out, v.as_bytes());
    }
    out
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        match self.at.checked_add(n) {
            Some(end) if end <= self.b.len() => {
                let s = &self.b[self.at..end];
                self.at = end;
                Ok(s)
            }
            _ => Err(format!("header body ends inside {what}")),
        }
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.take(4, what).map(|s| u32_at(s, 0))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.take(8, what).map(|s| u64_at(s, 0))
    }
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    fn string(&mut self, what: &str) -> Result<String, String> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

/// Decodes the header body; bytes after the known fields (added by a later minor version) are ignored.
pub fn decode_header_body(b: &[u8]) -> Result<HeaderBody, String> {
    let mut c = Cursor { b, at: 0 };
    let created_unix_nanos = c.u64("creation time")?;
    let first_capture = Timestamp(c.u64("first capture time")?);
    let sequence = c.u64("sequence number")?;
    let pid = c.u32("pid")?;
    let writer = c.string("writer name")?;
    let masking_fingerprint = c.bytes("masking fingerprint")?.to_vec();
    if masking_fingerprint.len() > MAX_FINGERPRINT {
        return Err(format!("masking fingerprint of {} bytes (max {MAX_FINGERPRINT})", masking_fingerprint.len()));
    }
    let count = c.u32("label count")?;
    // Each label takes at least 8 bytes, so the count is bounded by the (already bounded) body length.
    let mut labels = Vec::with_capacity((count as usize).min(b.len() / 8));
    for _ in 0..count {
        let k = c.string("label name")?;
        let v = c.string("label value")?;
        labels.push((k, v));
    }
    Ok(HeaderBody { created_unix_nanos, first_capture, sequence, pid, writer, masking_fingerprint, labels })
}

/// The fields of a block header (and of its footer index entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockFields {
    /// [`CODEC_STORED`] or [`CODEC_ZSTD`] (others are refused when reading the block).
    pub codec: u8,
    /// Length of the payload as stored in the file.
    pub stored_len: u32,
    /// Length of the raw (uncompressed) records.
    pub raw_len: u32,
    /// Number of records (exchanges).
    pub records: u32,
    /// Smallest time key of the block's exchanges, ns.
    pub first_ts: u64,
    /// Largest time key of the block's exchanges, ns.
    pub last_ts: u64,
    /// CRC-32 of the stored payload.
    pub payload_crc: u32,
}

/// Bytes 8..48 of a block header encode these fields; an index entry repeats those 40 bytes after the offset.
fn encode_fields(f: &BlockFields, out: &mut [u8]) {
    out[0] = f.codec;
    out[1..4].fill(0);
    out[4..8].copy_from_slice(&f.stored_len.to_le_bytes());
    out[8..12].copy_from_slice(&f.raw_len.to_le_bytes());
    out[12..16].copy_from_slice(&f.records.to_le_bytes());
    out[16..24].copy_from_slice(&f.first_ts.to_le_bytes());
    out[24..32].copy_from_slice(&f.last_ts.to_le_bytes());
    out[32..36].copy_from_slice(&f.payload_crc.to_le_bytes());
}

fn decode_fields(b: &[u8]) -> BlockFields {
    BlockFields {
        codec: b[0],
        stored_len: u32_at(b, 4),
        raw_len: u32_at(b, 8),
        records: u32_at(b, 12),
        first_ts: u64_at(b, 16),
        last_ts: u64_at(b, 24),
        payload_crc: u32_at(b, 32),
    }
}

/// Encodes a block header (48 bytes, its own CRC in the last 4).
pub fn encode_block_header(f: &BlockFields) -> [u8; BLOCK_HEADER_LEN] {
    let mut b = [0u8; BLOCK_HEADER_LEN];
    b[0..8].copy_from_slice(&BLOCK_MAGIC);
    encode_fields(f, &mut b[8..44]);
    let c = crc(&b[0..44]);
    b[44..48].copy_from_slice(&c.to_le_bytes());
    b
}

/// Why a block header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockHeaderError {
    /// The first 8 bytes are not [`BLOCK_MAGIC`].
    BadMagic,
    /// The header's CRC does not match.
    BadChecksum,
}

/// Parses and verifies a block header.
pub fn decode_block_header(b: &[u8; BLOCK_HEADER_LEN]) -> Result<BlockFields, BlockHeaderError> {
    if b[0..8] != BLOCK_MAGIC {
        return Err(BlockHeaderError::BadMagic);
    }
    if crc(&b[0..44]) != u32_at(b, 44) {
        return Err(BlockHeaderError::BadChecksum);
    }
    Ok(decode_fields(&b[8..44]))
}

/// Appends one 48-byte index entry (offset, then the same 36 field bytes as the block header, then 4 zero bytes).
pub fn push_index_entry(out: &mut Vec<u8>, offset: u64, f: &BlockFields) {
    let mut e = [0u8; INDEX_ENTRY_LEN];
    e[0..8].copy_from_slice(&offset.to_le_bytes());
    encode_fields(f, &mut e[8..44]);
    out.extend_from_slice(&e);
}

/// Encodes the footer around index entries made by [`push_index_entry`].
pub fn encode_footer(entries: &[u8]) -> Vec<u8> {
    let count = (entries.len() / INDEX_ENTRY_LEN) as u32;
    let mut out = Vec::with_capacity(FOOTER_PREFIX_LEN + entries.len() + 4);
    out.extend_from_slice(&FOOTER_MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(entries);
    let c = crc(&out);
    out.extend_from_slice(&c.to_le_bytes());
    out
}

/// Parses and verifies a whole footer; returns (offset, fields) per entry.
pub fn decode_footer(b: &[u8]) -> Result<Vec<(u64, BlockFields)>, String> {
    if b.len() < FOOTER_PREFIX_LEN + 4 {
        return Err(format!("footer of {} bytes is too short", b.len()));
    }
    if b[0..8] != FOOTER_MAGIC {
        return Err("footer magic does not match".into());
    }
    let body = &b[..b.len() - 4];
    if crc(body) != u32_at(b, b.len() - 4) {
        return Err("footer checksum does not match".into());
    }
    let count = u32_at(b, 8) as usize;
    let entries = &body[FOOTER_PREFIX_LEN..];
    if count.checked_mul(INDEX_ENTRY_LEN) != Some(entries.len()) {
        return Err(format!("footer declares {count} blocks but holds {} entry bytes", entries.len()));
    }
    Ok(entries.chunks_exact(INDEX_ENTRY_LEN).map(|e| (u64_at(e, 0), decode_fields(&e[8..44]))).collect())
}

/// Encodes the 24-byte trailer that locates the footer.
pub fn encode_trailer(footer_offset: u64, footer_len: u32) -> [u8; TRAILER_LEN] {
    let mut b = [0u8; TRAILER_LEN];
    b[0..8].copy_from_slice(&footer_offset.to_le_bytes());
    b[8..12].copy_from_slice(&footer_len.to_le_bytes());
    let c = crc(&b[0..12]);
    b[12..16].copy_from_slice(&c.to_le_bytes());
    b[16..24].copy_from_slice(&TRAILER_MAGIC);
    b
}

/// Parses a trailer: `None` when its magic or checksum does not match (no usable trailer).
pub fn decode_trailer(b: &[u8; TRAILER_LEN]) -> Option<(u64, u32)> {
    if b[16..24] != TRAILER_MAGIC || crc(&b[0..12]) != u32_at(b, 12) {
        return None;
    }
    Some((u64_at(b, 0), u32_at(b, 8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_header_bytes_are_as_specified() {
        let f = BlockFields {
            codec: CODEC_ZSTD,
            stored_len: 0x0102_0304,
            raw_len: 0x0A0B_0C0D,
            records: 7,
            first_ts: 0x1122_3344_5566_7788,
            last_ts: 0x99AA_BBCC_DDEE_FF00,
            payload_crc: 0xDEAD_BEEF,
        };
        let b = encode_block_header(&f);
        assert_eq!(&b[0..8], b"\x89TDBLK\r\n");
        assert_eq!(&b[8..12], &[1, 0, 0, 0]);
        assert_eq!(&b[12..16], &[0x04, 0x03, 0x02, 0x01]);
        assert_eq!(&b[16..20], &[0x0D, 0x0C, 0x0B, 0x0A]);
        assert_eq!(&b[20..24], &[7, 0, 0, 0]);
        assert_eq!(&b[24..32], &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]);
        assert_eq!(&b[32..40], &[0x00, 0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99]);
        assert_eq!(&b[40..44], &[0xEF, 0xBE, 0xAD, 0xDE]);
        assert_eq!(&b[44..48], &crc32fast::hash(&b[0..44]).to_le_bytes());
        assert_eq!(decode_block_header(&b), Ok(f));
        for bit in 0..(BLOCK_HEADER_LEN * 8) {
            let mut d = b;
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_block_header(&d).is_err(), "flip of bit {bit} accepted");
        }
    }

    #[test]
    fn crc_is_the_ieee_crc32() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn trailer_and_footer_round_trip_and_reject_damage() {
        let t = encode_trailer(0x1234, 68);
        assert_eq!(decode_trailer(&t), Some((0x1234, 68)));
        let mut d = t;
        d[3] ^= 0x10;
        assert_eq!(decode_trailer(&d), None);

        let f =
            BlockFields { codec: 1, stored_len: 5, raw_len: 9, records: 2, first_ts: 3, last_ts: 4, payload_crc: 6 };
        let mut entries = Vec::new();
        push_index_entry(&mut entries, 99, &f);
        let footer = encode_footer(&entries);
        assert_eq!(footer.len(), 16 + 48 + 4);
        assert_eq!(decode_footer(&footer), Ok(vec![(99, f)]));
        let mut d = footer.clone();
        d[30] ^= 1;
        assert!(decode_footer(&d).is_err());
    }

    #[test]
    fn header_body_round_trips_and_ignores_appended_fields() {
        let h = HeaderBody {
            created_unix_nanos: 5,
            first_capture: Timestamp(6),
            sequence: 7,
            pid: 8,
            writer: "w/1".into(),
            masking_fingerprint: vec![1, 2, 3],
            labels: vec![("node".into(), "n1".into())],
        };
        let mut b = encode_header_body(&h);
        assert_eq!(b.len(), 8 + 8 + 8 + 4 + (4 + 3) + (4 + 3) + 4 + (4 + 4) + (4 + 2));
        assert_eq!(decode_header_body(&b), Ok(h.clone()));
        b.extend_from_slice(b"future");
        assert_eq!(decode_header_body(&b), Ok(h));
        assert!(decode_header_body(&b[..20]).is_err());
    }
}
