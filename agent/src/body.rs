//! A message body being received: keeps the first bytes up to the body cap and counts the rest, so that both
//! HTTP parsers store bodies the same way (raw bytes up to `--max-body`, full length, truncation flag).

use tapedeck_model::{Body, Flags};

/// Accumulates a body under a byte cap.
#[derive(Debug, Default)]
pub struct BodyBuf {
    bytes: Vec<u8>,
    full_len: u64,
    cap: usize,
    lost: bool,
}

impl BodyBuf {
    /// An empty body that keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        BodyBuf { bytes: Vec::new(), full_len: 0, cap, lost: false }
    }
    /// Appends received bytes; those past the cap are counted but not kept.
    pub fn push(&mut self, data: &[u8]) {
        self.full_len += data.len() as u64;
        let room = self.cap.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
    /// `len` bytes of the body were lost in a capture gap: counted in the length, not stored, and the body stops
    /// being stored (bytes after a hole would be misleading).
    pub fn gap(&mut self, len: u64) {
        self.full_len += len;
        self.lost = true;
        self.cap = self.bytes.len();
    }
    /// Bytes seen so far, stored or not.
    pub fn len(&self) -> u64 {
        self.full_len
    }
    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.full_len == 0
    }
    /// Finishes the body; returns it with the flags it earns (`TRUNCATED` when cut at the cap, `GAP` when bytes
    /// were lost).
    pub fn finish(self) -> (Body, Flags) {
        let mut flags = Flags::NONE;
        if self.lost {
            flags |= Flags::GAP;
        } else if (self.bytes.len() as u64) < self.full_len {
            flags |= Flags::TRUNCATED;
        }
        (Body { bytes: self.bytes, full_len: self.full_len }, flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_cap_and_counts_the_rest() {
        let mut b = BodyBuf::new(4);
        b.push(b"ab");
        b.push(b"cdef");
        let (body, flags) = b.finish();
        assert_eq!(body.bytes, b"abcd");
        assert_eq!(body.full_len, 6);
        assert_eq!(flags, Flags::TRUNCATED);
    }

    #[test]
    fn under_cap_is_not_truncated() {
        let mut b = BodyBuf::new(10);
        b.push(b"hello");
        let (body, flags) = b.finish();
        assert_eq!(body.bytes, b"hello");
        assert!(flags.is_empty());
    }

    #[test]
    fn gap_stops_storing_and_flags() {
        let mut b = BodyBuf::new(100);
        b.push(b"ab");
        b.gap(3);
        b.push(b"cd");
        let (body, flags) = b.finish();
        assert_eq!(body.bytes, b"ab");
        assert_eq!(body.full_len, 7);
        assert_eq!(flags, Flags::GAP);
    }
}
