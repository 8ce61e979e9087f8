//! HPACK header block decoding (RFC 7541) for one direction of a connection: static table, dynamic table with
//! size updates and eviction, integer and string decoding, Huffman decoding.
//!
//! Written here rather than taken from a crate: the maintained decoders (`loona-hpack`, the `hpack` crate it forks)
//! build a fresh `HashMap`-based Huffman decoder for every Huffman string and walk it bit by bit (far too slow for
//! a capture agent), `set_max_table_size` asserts, and they abort a whole block at the first index they cannot
//! resolve. A passive decoder that joined a connection late (or lost bytes in a gap) must instead keep every field
//! that needs no table and skip the rest: [`Decoder::set_unknown`] switches to that mode.
//!
//! Memory: the dynamic table is bounded by the largest size the decoder accepts ([`Decoder::set_max_allowed`],
//! itself clamped to [`HARD_TABLE_CAP`]); decoded strings are handed to the caller as borrowed slices.

mod huffman;
mod table_huffman;

use std::collections::VecDeque;

pub use huffman::HuffmanError;

/// RFC 7541 §4.2 / RFC 9113 §6.5.2 default SETTINGS_HEADER_TABLE_SIZE.
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// No dynamic table may grow past this, whatever the peer's SETTINGS say (bounded memory).
pub const HARD_TABLE_CAP: usize = 1 << 20;
/// Per-entry overhead counted in the table size (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// The static table (RFC 7541 Appendix A), index 1 first.
pub static STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// A decoded field: name and value.
type Field<'a> = (&'a [u8], &'a [u8]);

/// Why a header block could not be decoded (the fields before the error were delivered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// An integer ran past the end of the block or past 2^32.
    #[error("bad HPACK integer")]
    Integer,
    /// A string length ran past the end of the block.
    #[error("HPACK string longer than its block")]
    StringLength,
    /// A Huffman string was invalid.
    #[error("bad Huffman string: {0:?}")]
    Huffman(HuffmanError),
    /// An index pointed outside the static and dynamic tables (or was 0).
    #[error("HPACK index {0} out of range")]
    Index(usize),
    /// A dynamic table size update above the allowed maximum.
    #[error("HPACK table size update to {0} above the allowed maximum")]
    SizeUpdate(usize),
}

/// What decoding one block found, besides the fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockInfo {
    /// Fields that could not be decoded because the dynamic table is unknown (skipped, never guessed).
    pub skipped: u32,
    /// The table state was unknown when the block started.
    pub was_unknown: bool,
}

/// One direction's HPACK decoding context.
#[derive(Debug)]
pub struct Decoder {
    /// Newest entry first (dynamic index 62 is `entries[0]`).
    entries: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// Current size in the RFC's accounting.
    size: usize,
    /// Current maximum size (changed by size updates).
    max_size: usize,
    /// Largest size a size update may set.
    max_allowed: usize,
    /// Whether the table contents are known (false mid-stream or after a gap or error).
    known: bool,
    /// Scratch buffers for Huffman-decoded names and values.
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// Where a string ended up after decoding: raw in the block, or in a scratch buffer.
#[derive(Clone, Copy)]
enum Str {
    Raw(usize, usize),
    Scratch,
}

impl Decoder {
    /// A decoder with an empty table of the default size, state known.
    pub fn new() -> Self {
        Decoder {
            entries: VecDeque::new(),
            size: 0,
            max_size: DEFAULT_TABLE_SIZE,
            max_allowed: DEFAULT_TABLE_SIZE,
            known: true,
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// Raises the largest size a table size update may set (the decoding side's SETTINGS_HEADER_TABLE_SIZE),
    /// clamped to [`HARD_TABLE_CAP`]. Never lowers it: settings take effect only once acknowledged, and a passive
    /// observer cannot tell exactly when, so the decoder stays lenient and lets size updates do the resizing.
    pub fn set_max_allowed(&mut self, size: usize) {
        self.max_allowed = self.max_allowed.max(size.min(HARD_TABLE_CAP));
    }

    /// Forgets the table: from now on only fields that need no dynamic table are decoded.
    pub fn set_unknown(&mut self) {
        self.known = false;
        self.entries.clear();
        self.size = 0;
    }

    /// Whether the table contents are known.
    pub fn is_known(&self) -> bool {
        self.known
    }

    /// Current dynamic table size (RFC accounting) and number of entries.
    pub fn table_size(&self) -> (usize, usize) {
        (self.size, self.entries.len())
    }

    /// Decodes a complete header block (HEADERS/PUSH_PROMISE fragment plus CONTINUATIONs), calling `emit` for each
    /// field in order. On error the table state becomes unknown and the error is returned; fields before it were
    /// emitted.
    pub fn decode(&mut self, block: &[u8], emit: &mut dyn FnMut(&[u8], &[u8])) -> Result<BlockInfo, HpackError> {
        let mut info = BlockInfo { skipped: 0, was_unknown: !self.known };
        let r = self.decode_inner(block, emit, &mut info);
        if r.is_err() {
            self.set_unknown();
        }
        r.map(|()| info)
    }

    fn decode_inner(
        &mut self,
        block: &[u8],
        emit: &mut dyn FnMut(&[u8], &[u8]),
        info: &mut BlockInfo,
    ) -> Result<(), HpackError> {
        let mut pos = 0;
        while pos < block.len() {
            let first = block[pos];
            if first & 0x80 != 0 {
                // §6.1 Indexed Header Field.
                let (index, n) = decode_int(&block[pos..], 7)?;
                pos += n;
                match self.lookup(index)? {
                    Some((name, value)) => emit(name, value),
                    None => info.skipped += 1,
                }
            } else if first & 0xe0 == 0x20 {
                // §6.3 Dynamic Table Size Update.
                let (size, n) = decode_int(&block[pos..], 5)?;
                pos += n;
                if size > self.max_allowed {
                    return Err(HpackError::SizeUpdate(size));
                }
                self.max_size = size;
                if size == 0 {
                    // An empty table is a known table, whatever it held before.
                    self.entries.clear();
                    self.size = 0;
                    self.known = true;
                }
                self.evict_to(self.max_size);
            } else {
                // §6.2.1 with incremental indexing (01), §6.2.2 without (0000), §6.2.3 never indexed (0001).
                let (prefix, add) = if first & 0x40 != 0 { (6, true) } else { (4, false) };
                let (index, n) = decode_int(&block[pos..], prefix)?;
                pos += n;
                // Name: indexed or literal.
                let mut name_idx: Option<(usize, bool)> = None; // (index, resolvable)
                let name_str = if index == 0 {
                    let (s, n) = self.decode_str(&block[pos..], pos, true)?;
                    pos += n;
                    Some(s)
                } else {
                    let resolvable = self.lookup(index)?.is_some();
                    name_idx = Some((index, resolvable));
                    None
                };
                let (value_str, n) = self.decode_str(&block[pos..], pos, false)?;
                pos += n;
                let value: &[u8] = match value_str {
                    Str::Raw(a, b) => &block[a..b],
                    Str::Scratch => &self.value_buf,
                };
                let name: Option<&[u8]> = match (name_str, name_idx) {
                    (Some(Str::Raw(a, b)), _) => Some(&block[a..b]),
                    (Some(Str::Scratch), _) => Some(&self.name_buf),
                    (None, Some((i, true))) => self.lookup(i)?.map(|(n, _)| n),
                    _ => None,
                };
                match name {
                    Some(name) => {
                        emit(name, value);
                        if add && self.known {
                            let (name, value) = (name.to_vec(), value.to_vec());
                            self.insert(name, value);
                        }
                    }
                    None => info.skipped += 1,
                }
            }
        }
        Ok(())
    }

    /// Resolves an index: `Ok(None)` when it points into a dynamic table whose state is unknown.
    fn lookup(&self, index: usize) -> Result<Option<Field<'_>>, HpackError> {
        if index == 0 {
            return Err(HpackError::Index(0));
        }
        if index <= STATIC_TABLE.len() {
            let (n, v) = STATIC_TABLE[index - 1];
            return Ok(Some((n, v)));
        }
        if !self.known {
            return Ok(None);
        }
        match self.entries.get(index - STATIC_TABLE.len() - 1) {
            Some((n, v)) => Ok(Some((n, v))),
            None => Err(HpackError::Index(index)),
        }
    }

    /// Decodes a string at the start of `buf` (which starts at `base` in the block). Raw strings are returned as a
    /// range of the block; Huffman strings are decoded into the name or value scratch buffer.
    fn decode_str(&mut self, buf: &[u8], base: usize, name: bool) -> Result<(Str, usize), HpackError> {
        let Some(&first) = buf.first() else {
            return Err(HpackError::StringLength);
        };
        let (len, n) = decode_int(buf, 7)?;
        let end = n.checked_add(len).filter(|&e| e <= buf.len()).ok_or(HpackError::StringLength)?;
        if first & 0x80 == 0 {
            return Ok((Str::Raw(base + n, base + end), end));
        }
        let scratch = if name { &mut self.name_buf } else { &mut self.value_buf };
        scratch.clear();
        huffman::decode(&buf[n..end], scratch).map_err(HpackError::Huffman)?;
        Ok((Str::Scratch, end))
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let entry = name.len() + value.len() + ENTRY_OVERHEAD;
        if entry > self.max_size {
            // §4.4: an entry larger than the table empties it and is not added.
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - entry);
        self.size += entry;
        self.entries.push_front((name, value));
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.entries.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + ENTRY_OVERHEAD,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

/// Decodes an HPACK integer with an `prefix`-bit prefix (RFC 7541 §5.1); returns the value and bytes used.
/// Values past `u32::MAX` are errors (no legitimate field needs them).
pub fn decode_int(buf: &[u8], prefix: u8) -> Result<(usize, usize), HpackError> {
    let first = *buf.first().ok_or(HpackError::Integer)?;
    let mask: u8 = if prefix >= 8 { 0xff } else { (1u8 << prefix) - 1 };
    let mut value = u64::from(first & mask);
    if value < u64::from(mask) {
        return Ok((value as usize, 1));
    }
    let mut shift = 0u32;
    for (i, &b) in buf[1..].iter().enumerate() {
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(HpackError::Integer);
        }
        if b & 0x80 == 0 {
            return Ok((value as usize, i + 2));
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::Integer);
        }
    }
    Err(HpackError::Integer)
}

#[cfg(test)]
mod tests;
