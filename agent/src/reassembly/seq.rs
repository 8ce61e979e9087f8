//! TCP sequence numbers: a `u32` newtype whose arithmetic and ordering work modulo 2^32 (RFC 793 §3.3,
//! RFC 1982 serial number arithmetic), so that no raw `u32` comparison leaks into reassembly.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, Sub};

/// A TCP sequence number. `a < b` means `b` is at most 2^31 - 1 ahead of `a` on the circle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The signed distance from `other` to `self` (`self - other`), in `-2^31 ..= 2^31 - 1`.
    pub fn diff(self, other: SeqNumber) -> i32 {
        // Reinterpreting the wrapped difference as signed is exactly serial-number arithmetic.
        self.0.wrapping_sub(other.0) as i32
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs))
    }
}

impl Add<u64> for SeqNumber {
    type Output = SeqNumber;
    /// Advances by `rhs` bytes; only `rhs mod 2^32` matters on the circle.
    fn add(self, rhs: u64) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl Sub<SeqNumber> for SeqNumber {
    type Output = i32;
    fn sub(self, rhs: SeqNumber) -> i32 {
        self.diff(rhs)
    }
}

impl PartialOrd for SeqNumber {
    /// Serial-number order. Numbers exactly 2^31 apart are unordered in RFC 1982; here the wrapped difference
    /// `i32::MIN` is read as "before", which keeps the relation total and antisymmetric in practice.
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_across_wrap() {
        let a = SeqNumber(u32::MAX - 5);
        let b = a + 10u32;
        assert_eq!(b, SeqNumber(4));
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b - a, 10);
        assert_eq!(a - b, -10);
    }

    #[test]
    fn plain_ordering_and_equality() {
        assert!(SeqNumber(1) < SeqNumber(2));
        assert!(SeqNumber(2) >= SeqNumber(2));
        assert_eq!(SeqNumber(7).diff(SeqNumber(7)), 0);
        // Just under half the circle ahead is still "after".
        assert!(SeqNumber(0) < SeqNumber(0x7fff_ffff));
        // Just over half the circle ahead reads as "before".
        assert!(SeqNumber(0) > SeqNumber(0x8000_0001));
    }

    #[test]
    fn add_u64_wraps() {
        assert_eq!(SeqNumber(10) + (1u64 << 32), SeqNumber(10));
        assert_eq!(SeqNumber(u32::MAX) + 1u64, SeqNumber(0));
    }
}
