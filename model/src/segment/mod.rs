//! The segment file format: files of independently decodable, checksummed, zstd-compressed blocks of
//! [`Exchange`]s behind a versioned header and ahead of a footer index. docs/format.md specifies every byte.
//!
//! ```text
//! file    = header  block*  [footer trailer]          (footer and trailer only once the writer finished)
//! header  = "\x89TDSEG\r\n" major:u16 minor:u16 body_len:u32 body crc32
//! block   = block header (48 bytes, own crc32) payload (zstd frame or stored; crc32 in the header)
//! payload = (len:u32 bincode-2(Exchange))*            (after decompression)
//! footer  = "\x89TDIDX\r\n" count:u32 0:u32 entry(48 bytes)* crc32
//! trailer = footer_offset:u64 footer_len:u32 crc32 "\x89TDEND\r\n"
//! ```
//!
//! - [`SegmentWriter`] buffers exchanges into blocks, compresses them with a reused zstd context, writes
//!   `<prefix>-<first capture time>-<seq>.seg.tmp` files and renames them to `.seg` when finished; it rotates by
//!   size and by capture-time age at block boundaries.
//! - [`SegmentReader`] uses the footer when it is intact, and otherwise scans blocks from the header, resynchronising
//!   on the block magic after damage. It never returns data from a block whose checksums do not verify; what it
//!   skipped is in its [`RecoveryReport`].
//! - [`list_segments`] finds the segment files of a directory.

mod files;
pub mod layout;
mod reader;
mod writer;

use std::io;
use std::path::{Path, PathBuf};

pub use files::{SEGMENT_EXT, TMP_EXT, list_segments, list_segments_with_tmp};
pub use layout::{FORMAT_MAJOR, FORMAT_MINOR, MAX_BLOCK_BYTES};
pub use reader::{Damage, ExchangeIter, FooterStatus, RecoveryReport, SegmentReader};
pub use writer::{SegmentWriter, SegmentWriterConfig, WriterStats};

use crate::{Exchange, Timestamp};

/// Largest encoded exchange (one record) the writer accepts and the reader decodes, in bytes.
pub const MAX_RECORD_BYTES: u32 = MAX_BLOCK_BYTES - 4;

/// The bincode configuration of records: `standard()` (little-endian, variable-length integers).
pub(crate) fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// The bincode configuration used to decode records: as [`bincode_config`], with a limit on the bytes that
/// decoding may claim (allocate), so a corrupt length can never allocate more than [`MAX_BLOCK_BYTES`].
pub(crate) fn bincode_decode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ MAX_BLOCK_BYTES as usize }>,
> {
    bincode::config::standard().with_limit::<{ MAX_BLOCK_BYTES as usize }>()
}

/// The file header of a segment, as read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format major version (files of another major version are refused).
    pub format_major: u16,
    /// Format minor version (additions a reader may ignore).
    pub format_minor: u16,
    /// Wall-clock time the writer created the file, ns since the epoch (informational only).
    pub created_unix_nanos: u64,
    /// Capture time of the first exchange written to the file (also in its name).
    pub first_capture: Timestamp,
    /// The file's sequence number within its writer.
    pub sequence: u64,
    /// Process id of the writer.
    pub pid: u32,
    /// Name and version of the writing program, e.g. `tapedeck-model/0.1.0`.
    pub writer: String,
    /// Fingerprint of the masking policy the exchanges went through; empty when none was recorded.
    pub masking_fingerprint: Vec<u8>,
    /// Free-form labels (node, interface, ...), name then value.
    pub labels: Vec<(String, String)>,
}

/// One block as listed by the footer index or found by a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// File offset of the block header.
    pub offset: u64,
    /// Payload codec: 0 stored, 1 zstd.
    pub codec: u8,
    /// Length of the payload as stored (compressed length for zstd).
    pub stored_len: u32,
    /// Length of the raw records after decompression.
    pub raw_len: u32,
    /// Number of exchanges in the block.
    pub records: u32,
    /// Smallest time key (see docs/format.md: `Timing::start()`) of the block's exchanges.
    pub first_ts: Timestamp,
    /// Largest time key of the block's exchanges.
    pub last_ts: Timestamp,
    /// CRC-32 of the stored payload.
    pub payload_crc: u32,
}

impl BlockInfo {
    /// Whether the block's time range meets `[from, to]` (inclusive).
    pub fn overlaps(&self, from: Timestamp, to: Timestamp) -> bool {
        self.first_ts <= to && self.last_ts >= from
    }

    fn from_fields(offset: u64, f: &layout::BlockFields) -> Self {
        BlockInfo {
            offset,
            codec: f.codec,
            stored_len: f.stored_len,
            raw_len: f.raw_len,
            records: f.records,
            first_ts: Timestamp(f.first_ts),
            last_ts: Timestamp(f.last_ts),
            payload_crc: f.payload_crc,
        }
    }

    fn fields(&self) -> layout::BlockFields {
        layout::BlockFields {
            codec: self.codec,
            stored_len: self.stored_len,
            raw_len: self.raw_len,
            records: self.records,
            first_ts: self.first_ts.0,
            last_ts: self.last_ts.0,
            payload_crc: self.payload_crc,
        }
    }
}

/// Errors of the segment writer and reader. Reader errors name the file, and the offset when one is relevant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// An I/O error on a file or directory.
    #[error("{}: {context}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An I/O error at a known offset of a file.
    #[error("{}: at offset {offset}: {context}: {source}", path.display())]
    IoAt {
        /// The file.
        path: PathBuf,
        /// The offset.
        offset: u64,
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not a segment file (wrong magic, too short).
    #[error("{}: not a tapedeck segment file: {reason}", path.display())]
    NotASegment {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is a segment of a major version this reader does not know.
    #[error("{}: segment format version {major}.{minor} is not supported (this reader reads {FORMAT_MAJOR}.x)",
        path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// The file header is damaged (checksum mismatch or malformed fields).
    #[error("{}: file header is damaged: {reason}", path.display())]
    HeaderDamaged {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A block (or a region where a block should be) is damaged; its exchanges were skipped.
    #[error("{}: damaged block at offset {offset}: {reason}", path.display())]
    BlockDamaged {
        /// The file.
        path: PathBuf,
        /// Offset of the damaged block header or region.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// A block index past the end of [`SegmentReader::blocks`].
    #[error("{}: no block {index} (the file has {count})", path.display())]
    NoSuchBlock {
        /// The file.
        path: PathBuf,
        /// Requested index.
        index: usize,
        /// Number of blocks.
        count: usize,
    },
    /// An exchange encodes to more than [`MAX_RECORD_BYTES`]; it was not written.
    #[error("exchange {id} encodes to {size} bytes, over the {MAX_RECORD_BYTES}-byte record limit")]
    RecordTooLarge {
        /// The exchange id.
        id: u64,
        /// Its encoded size.
        size: usize,
    },
    /// bincode could not encode an exchange; it was not written.
    #[error("encoding exchange {id}: {source}")]
    Encode {
        /// The exchange id.
        id: u64,
        /// The underlying error.
        #[source]
        source: bincode::error::EncodeError,
    },
    /// zstd failed to set up or compress.
    #[error("zstd: {0}")]
    Zstd(#[source] io::Error),
    /// The writer configuration is invalid.
    #[error("invalid segment writer configuration: {0}")]
    Config(String),
}

impl SegmentError {
    pub(crate) fn io(path: &Path, context: &'static str, source: io::Error) -> Self {
        SegmentError::Io { path: path.to_path_buf(), context, source }
    }
    pub(crate) fn io_at(path: &Path, offset: u64, context: &'static str, source: io::Error) -> Self {
        SegmentError::IoAt { path: path.to_path_buf(), offset, context, source }
    }
    /// The file offset the error is about, if any.
    pub fn offset(&self) -> Option<u64> {
        match self {
            SegmentError::IoAt { offset, .. } | SegmentError::BlockDamaged { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

/// The time key of an exchange: `Timing::start()`, else `fallback` (the writer passes the previous key).
pub(crate) fn time_key(ex: &Exchange, fallback: u64) -> u64 {
    ex.timing.start().map_or(fallback, Timestamp::as_nanos)
}
