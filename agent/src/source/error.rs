//! What can go wrong while reading a capture: the input cannot be read, it is not a capture, or it is damaged
//! after a good start. Every message names the input, and damage names the byte offset and the packet number.

use std::io;

/// An error from a packet source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The input could not be opened or read (before any damage was seen).
    #[error("{name}: {source}")]
    Io {
        /// The file name (`-` for stdin).
        name: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A streaming input opened with a wait ([`super::PcapSource::open_polled`]) had no data within it. Not an
    /// error: nothing was lost and the source is intact; ask for the next frame again.
    #[error("{name}: no data yet")]
    Idle {
        /// The file name (`-` for stdin).
        name: String,
    },
    /// The input does not start like a pcap or pcapng file.
    #[error("{name}: not a pcap or pcapng capture ({what})")]
    NotACapture {
        /// The file name.
        name: String,
        /// What was found instead (the first bytes, or "empty input").
        what: String,
    },
    /// The input started as a capture but is damaged at `offset`. The source ends after this error.
    #[error("{name}: byte {offset} (packet {packet}): {damage}")]
    Damaged {
        /// The file name.
        name: String,
        /// Input offset of the damaged record or block.
        offset: u64,
        /// The number the damaged packet would have had (from 1).
        packet: u64,
        /// What is wrong.
        damage: Damage,
    },
}

impl SourceError {
    /// True when the input was recognised as a capture and broke later (cut short, corrupt record).
    pub fn is_damage(&self) -> bool {
        matches!(self, SourceError::Damaged { .. })
    }
}

/// The ways a capture can be damaged after a good start.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    /// The input ends inside a record or block.
    #[error("cut short: the record needs {needed} bytes but the input ends after {available}")]
    CutShort {
        /// Bytes the record or block needs from its start.
        needed: u64,
        /// Bytes present from its start.
        available: u64,
    },
    /// A record or block declares a length beyond the configured limit.
    #[error("record length {len} exceeds the {limit_text} limit")]
    RecordTooLong {
        /// The declared length.
        len: u64,
        /// The limit in bytes.
        limit: u64,
        /// The limit for humans (`16 MiB`).
        limit_text: String,
    },
    /// A pcap record's captured length exceeds both the file's snaplen and libpcap's largest snaplen.
    #[error("record length {len} exceeds the file's snaplen {snaplen} (and 262144)")]
    BeyondSnaplen {
        /// The declared captured length.
        len: u64,
        /// The snaplen in the file header.
        snaplen: u32,
    },
    /// A pcapng block is malformed.
    #[error("corrupt {block} block: {reason}")]
    CorruptBlock {
        /// The block kind (`enhanced packet`, ...).
        block: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading failed in the middle of the input.
    #[error("read failed: {0}")]
    Read(#[source] io::Error),
}

/// `16 MiB`, `512 KiB` or `1000 bytes`.
pub(crate) fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}
