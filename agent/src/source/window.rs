//! A bounded read window over any byte stream: the only buffer of a source.
//!
//! The window keeps the unread bytes of the input in one `Vec<u8>` that starts small and grows on demand, up to a
//! cap, when a single record needs more room. Consumed bytes are dropped by moving the unread tail to the front,
//! so a multi-GB file or an endless pipe is read in constant memory. The window also knows the input offset of its
//! first byte, for error messages.

use std::io::{self, Read};

/// A growable, capped buffer of unread input.
pub(crate) struct Window {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// First unread byte in `buf`.
    start: usize,
    /// One past the last valid byte in `buf`.
    end: usize,
    /// Input offset of `buf[start]`.
    offset: u64,
    /// The reader returned 0.
    eof: bool,
    /// The largest size `buf` may grow to.
    max: usize,
}

impl Window {
    /// A window with `initial` bytes of room that may grow to `max` (at least `initial`).
    pub(crate) fn new(reader: Box<dyn Read + Send>, initial: usize, max: usize) -> Self {
        let initial = initial.max(64);
        Window { reader, buf: vec![0; initial], start: 0, end: 0, offset: 0, eof: false, max: max.max(initial) }
    }

    /// Unread bytes currently held.
    #[inline]
    pub(crate) fn available(&self) -> usize {
        self.end - self.start
    }

    /// Input offset of the first unread byte.
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Makes at least `n` unread bytes available. `Ok(false)` when the input ends first ([`Window::available`]
    /// then tells how many there are). Requests above the cap are clamped to it.
    #[inline]
    pub(crate) fn fill(&mut self, n: usize) -> io::Result<bool> {
        if self.end - self.start >= n {
            return Ok(true);
        }
        self.fill_slow(n.min(self.max))
    }

    #[cold]
    fn fill_slow(&mut self, n: usize) -> io::Result<bool> {
        if self.buf.len() - self.start < n {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.buf.len() < n {
                let grown = n.checked_next_power_of_two().unwrap_or(n).clamp(n, self.max);
                self.buf.resize(grown, 0);
            }
        }
        // Invariant here: end - start < n <= buf.len() - start, so buf[end..] is not empty.
        while self.end - self.start < n {
            if self.eof {
                return Ok(false);
            }
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// The first `n` unread bytes (`n <= available()`).
    #[inline]
    pub(crate) fn peek(&self, n: usize) -> &[u8] {
        &self.buf[self.start..self.start + n]
    }

    /// Bytes `from .. from + len` of the unread input (within `available()`).
    #[inline]
    pub(crate) fn slice(&self, from: usize, len: usize) -> &[u8] {
        &self.buf[self.start + from..self.start + from + len]
    }

    /// Drops the first `n` unread bytes (`n <= available()`).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.available());
        self.start += n;
        self.offset += n as u64;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per call, like a pipe.
    pub(crate) struct Trickle {
        pub data: Vec<u8>,
        pub pos: usize,
        pub step: usize,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(self.step).min(self.data.len() - self.pos);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn fills_across_short_reads_and_grows_to_the_cap() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut w = Window::new(Box::new(Trickle { data: data.clone(), pos: 0, step: 7 }), 64, 512);
        assert!(w.fill(10).unwrap());
        assert_eq!(w.peek(10), &data[..10]);
        w.consume(10);
        assert_eq!(w.offset(), 10);
        assert!(w.fill(500).unwrap());
        assert_eq!(w.peek(500), &data[10..510]);
        w.consume(500);
        assert!(w.fill(490).unwrap());
        assert_eq!(w.slice(480, 10), &data[990..1000]);
        assert!(!w.fill(491).unwrap());
        assert_eq!(w.available(), 490);
    }
}
