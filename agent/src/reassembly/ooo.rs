//! The out-of-order buffer of one direction: captured pieces ahead of the next expected byte, keyed by their
//! stream offset, never overlapping one another. A new segment that overlaps buffered pieces only adds the bytes
//! nobody buffered yet (the first copy wins); differing overlapping bytes are reported as conflicts.

use std::collections::BTreeMap;

use tapedeck_model::Timestamp;

/// A stretch of one direction's stream: captured bytes from `start`, then `missing` bytes the capture cut off.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span<'d> {
    /// Stream offset of the first byte (relative to the direction's initial sequence number).
    pub start: u64,
    /// Captured bytes.
    pub data: &'d [u8],
    /// Bytes after `data` that were not captured (snaplen).
    pub missing: u32,
    /// Capture time of the packet that carried the span.
    pub ts: Timestamp,
}

impl Span<'_> {
    /// Bytes covered on the wire.
    pub fn len(&self) -> u64 {
        self.data.len() as u64 + u64::from(self.missing)
    }
    /// Offset just past the span.
    pub fn end(&self) -> u64 {
        self.start + self.len()
    }
    /// Offset just past the captured bytes.
    pub fn captured_end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
    /// Drops the first `n` bytes (at most `len`); returns how many captured bytes were dropped.
    pub fn trim_front(&mut self, n: u64) -> u64 {
        let n = n.min(self.len());
        let from_data = n.min(self.data.len() as u64);
        self.data = &self.data[from_data as usize..];
        // `n - from_data <= missing` because `n <= len`.
        self.missing -= (n - from_data) as u32;
        self.start += n;
        from_data
    }
    /// Keeps only the first `keep` bytes; returns how many captured bytes were dropped.
    pub fn truncate(&mut self, keep: u64) -> u64 {
        if keep >= self.len() {
            return 0;
        }
        let dlen = self.data.len() as u64;
        if keep <= dlen {
            self.data = &self.data[..keep as usize];
            self.missing = 0;
            dlen - keep
        } else {
            self.missing = (keep - dlen) as u32;
            0
        }
    }
    /// The captured bytes of `[from, to)`, if any.
    fn captured(&self, from: u64, to: u64) -> Option<(u64, &[u8])> {
        let a = from.max(self.start);
        let b = to.min(self.captured_end());
        (a < b).then(|| (a, &self.data[(a - self.start) as usize..(b - self.start) as usize]))
    }
}

/// Whether two spans carry different captured bytes somewhere in `[from, to)`. Bytes that either side did not
/// capture cannot be compared and never count as a difference.
pub(crate) fn captured_differs(a: &Span<'_>, b: &Span<'_>, from: u64, to: u64) -> bool {
    let (Some((a_at, _)), Some((b_at, _))) = (a.captured(from, to), b.captured(from, to)) else {
        return false;
    };
    let lo = a_at.max(b_at);
    match (a.captured(lo, to), b.captured(lo, to)) {
        (Some((_, x)), Some((_, y))) => {
            let n = x.len().min(y.len());
            x[..n] != y[..n]
        }
        _ => false,
    }
}

/// One buffered piece: an owned copy of a span.
#[derive(Debug)]
pub(crate) struct Piece {
    /// Captured bytes.
    pub data: Vec<u8>,
    /// Bytes after `data` that were not captured.
    pub missing: u32,
    /// Capture time of the packet that carried the piece.
    pub ts: Timestamp,
}

impl Piece {
    /// This piece as a span starting at `start`.
    pub fn span(&self, start: u64) -> Span<'_> {
        Span { start, data: &self.data, missing: self.missing, ts: self.ts }
    }
}

/// What inserting a span did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct InsertOutcome {
    /// New pieces created.
    pub pieces_added: u64,
    /// Bytes of the span (captured or not) already covered by buffered pieces, and dropped.
    pub duplicate_bytes: u64,
    /// Overlaps with a buffered piece whose captured bytes differ.
    pub conflicts: u64,
}

/// Out-of-order pieces of one direction, sorted by stream offset, pairwise disjoint.
#[derive(Debug, Default)]
pub(crate) struct OooBuffer {
    pieces: BTreeMap<u64, Piece>,
    /// Captured bytes held.
    bytes: usize,
}

impl OooBuffer {
    /// No piece buffered.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
    /// Pieces buffered.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }
    /// Captured bytes buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// Offset of the first piece.
    pub fn first_start(&self) -> Option<u64> {
        self.pieces.first_key_value().map(|(&s, _)| s)
    }
    /// Removes the first piece; `total` (the global buffered count) is decreased by its captured bytes.
    pub fn pop_first(&mut self, total: &mut usize) -> Option<(u64, Piece)> {
        let (start, piece) = self.pieces.pop_first()?;
        self.bytes -= piece.data.len();
        *total = total.saturating_sub(piece.data.len());
        Some((start, piece))
    }

    /// Copies the parts of `span` that no buffered piece covers; `total` is increased by the bytes copied.
    pub fn insert(&mut self, span: &Span<'_>, total: &mut usize) -> InsertOutcome {
        let mut outcome = InsertOutcome::default();
        let end = span.end();
        let mut cursor = span.start;
        while cursor < end {
            // A piece covering `cursor`: skip what it covers, comparing the overlap.
            if let Some((&ps, piece)) = self.pieces.range(..=cursor).next_back() {
                let pe = ps + piece.span(ps).len();
                if pe > cursor {
                    let ov_end = pe.min(end);
                    outcome.duplicate_bytes += ov_end - cursor;
                    if captured_differs(span, &piece.span(ps), cursor, ov_end) {
                        outcome.conflicts += 1;
                    }
                    cursor = ov_end;
                    continue;
                }
            }
            // Uncovered from `cursor` up to the next piece (or the span's end).
            let limit = match self.pieces.range(cursor + 1..).next() {
                Some((&next_start, _)) => next_start.min(end),
                None => end,
            };
            let mut part = *span;
            part.trim_front(cursor - span.start);
            part.truncate(limit - cursor);
            let piece = Piece { data: part.data.to_vec(), missing: part.missing, ts: span.ts };
            self.bytes += piece.data.len();
            *total += piece.data.len();
            self.pieces.insert(cursor, piece);
            outcome.pieces_added += 1;
            cursor = limit;
        }
        outcome
    }

    /// Drops everything at or beyond offset `end` (the stream ended there); returns the captured bytes dropped.
    pub fn truncate_from(&mut self, end: u64, total: &mut usize) -> u64 {
        let mut dropped = 0u64;
        let beyond = self.pieces.split_off(&end);
        for piece in beyond.values() {
            dropped += piece.data.len() as u64;
        }
        if let Some((&ps, piece)) = self.pieces.iter_mut().next_back() {
            let mut span = piece.span(ps);
            if span.end() > end {
                let cut = span.truncate(end - ps) as usize;
                let keep_missing = span.missing;
                piece.data.truncate(piece.data.len() - cut);
                piece.missing = keep_missing;
                dropped += cut as u64;
            }
        }
        let dropped_usize = dropped as usize;
        self.bytes -= dropped_usize;
        *total = total.saturating_sub(dropped_usize);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u64, data: &[u8]) -> Span<'_> {
        Span { start, data, missing: 0, ts: Timestamp(0) }
    }

    fn contents(buf: &OooBuffer) -> Vec<(u64, Vec<u8>, u32)> {
        buf.pieces.iter().map(|(&s, p)| (s, p.data.clone(), p.missing)).collect()
    }

    #[test]
    fn insert_fills_only_uncovered_parts() {
        let mut buf = OooBuffer::default();
        let mut total = 0;
        buf.insert(&span(10, b"cd"), &mut total);
        buf.insert(&span(20, b"kl"), &mut total);
        let out = buf.insert(&span(8, b"abCDefghijxyKLmn"), &mut total);
        assert_eq!(
            contents(&buf),
            vec![
                (8, b"ab".to_vec(), 0),
                (10, b"cd".to_vec(), 0),
                (12, b"efghijxy".to_vec(), 0),
                (20, b"kl".to_vec(), 0),
                (22, b"mn".to_vec(), 0),
            ]
        );
        assert_eq!(out, InsertOutcome { pieces_added: 3, duplicate_bytes: 4, conflicts: 2 });
        assert_eq!(buf.bytes(), 16);
        assert_eq!(total, 16);
    }

    #[test]
    fn identical_duplicate_is_not_a_conflict() {
        let mut buf = OooBuffer::default();
        let mut total = 0;
        buf.insert(&span(5, b"hello"), &mut total);
        let out = buf.insert(&span(5, b"hello"), &mut total);
        assert_eq!(out, InsertOutcome { pieces_added: 0, duplicate_bytes: 5, conflicts: 0 });
        assert_eq!(total, 5);
    }

    #[test]
    fn missing_bytes_are_not_compared() {
        let mut buf = OooBuffer::default();
        let mut total = 0;
        buf.insert(&Span { start: 0, data: b"ab", missing: 3, ts: Timestamp(0) }, &mut total);
        let out = buf.insert(&span(0, b"abXYZ"), &mut total);
        assert_eq!(out.conflicts, 0);
        assert_eq!(out.duplicate_bytes, 5);
        assert_eq!(contents(&buf), vec![(0, b"ab".to_vec(), 3)]);
    }

    #[test]
    fn truncate_from_cuts_and_drops() {
        let mut buf = OooBuffer::default();
        let mut total = 0;
        buf.insert(&span(0, b"abcdef"), &mut total);
        buf.insert(&span(10, b"xyz"), &mut total);
        assert_eq!(buf.truncate_from(4, &mut total), 5);
        assert_eq!(contents(&buf), vec![(0, b"abcd".to_vec(), 0)]);
        assert_eq!(total, 4);
        assert_eq!(buf.bytes(), 4);
    }

    #[test]
    fn span_trims() {
        let mut s = Span { start: 100, data: b"abcd", missing: 4, ts: Timestamp(0) };
        assert_eq!(s.trim_front(2), 2);
        assert_eq!((s.start, s.data, s.missing), (102, &b"cd"[..], 4));
        assert_eq!(s.trim_front(3), 2);
        assert_eq!((s.start, s.data, s.missing), (105, &b""[..], 3));
        let mut t = Span { start: 0, data: b"abcd", missing: 4, ts: Timestamp(0) };
        assert_eq!(t.truncate(6), 0);
        assert_eq!((t.data, t.missing), (&b"abcd"[..], 2));
        assert_eq!(t.truncate(1), 3);
        assert_eq!((t.data, t.missing), (&b"a"[..], 0));
    }
}
