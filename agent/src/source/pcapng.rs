//! The pcapng format: block framing constants, the Interface Description Block (link type, snaplen, timestamp
//! resolution `if_tsresol` and offset `if_tsoffset`) and timestamp conversion. The block loop itself lives in
//! the source (mod.rs), which owns the buffer. Format: <https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html>.
//!
//! Why not pcap-parser's block parsers: its Enhanced Packet Block parser collects options into a `Vec` (nom's
//! `many0` allocates even when empty), which is an allocation per packet; it reads `if_tsoffset` as little-endian
//! in big-endian sections; and its `build_ts_resolution` rejects every binary (2^-n) resolution.

use tapedeck_model::Timestamp;

use super::LinkType;

/// Section Header Block.
pub(crate) const SHB: u32 = 0x0A0D_0D0A;
/// Interface Description Block.
pub(crate) const IDB: u32 = 1;
/// Obsolete Packet Block.
pub(crate) const OPB: u32 = 2;
/// Simple Packet Block.
pub(crate) const SPB: u32 = 3;
/// Enhanced Packet Block.
pub(crate) const EPB: u32 = 6;
/// The byte-order magic of a section header, as read in the section's own order.
pub(crate) const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

/// Reads a `u32` at `at` in the given byte order (`b` holds `at + 4` bytes).
#[inline]
pub(crate) fn u32_at(big_endian: bool, b: &[u8], at: usize) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big_endian { u32::from_be_bytes(v) } else { u32::from_le_bytes(v) }
}

#[inline]
fn u16_at(big_endian: bool, b: &[u8], at: usize) -> u16 {
    let v = [b[at], b[at + 1]];
    if big_endian { u16::from_be_bytes(v) } else { u16::from_le_bytes(v) }
}

/// The unit of an interface's timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TsUnit {
    /// 10^-n seconds (n <= 19).
    Decimal(u8),
    /// 2^-n seconds (n <= 63).
    Binary(u8),
}

impl TsUnit {
    /// Decodes `if_tsresol`; `None` for a resolution no 64-bit counter can use.
    pub(crate) fn from_tsresol(v: u8) -> Option<TsUnit> {
        let n = v & 0x7f;
        if v & 0x80 == 0 { (n <= 19).then_some(TsUnit::Decimal(n)) } else { (n <= 63).then_some(TsUnit::Binary(n)) }
    }

    /// Nanoseconds in `ticks` of this unit (saturating).
    #[inline]
    pub(crate) fn to_nanos(self, ticks: u64) -> u64 {
        match self {
            TsUnit::Decimal(n) if n <= 9 => ticks.saturating_mul(10u64.pow(u32::from(9 - n))),
            TsUnit::Decimal(n) => ticks / 10u64.pow(u32::from(n - 9)),
            TsUnit::Binary(n) => {
                let ns = (u128::from(ticks) * 1_000_000_000) >> n;
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        }
    }
}

/// One interface of the current section.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Interface {
    pub(crate) link: LinkType,
    pub(crate) snaplen: u32,
    pub(crate) unit: TsUnit,
    /// `if_tsoffset`: seconds added to every timestamp.
    pub(crate) offset_secs: i64,
}

impl Interface {
    /// The capture time of `ticks`.
    #[inline]
    pub(crate) fn timestamp(&self, ticks: u64) -> Timestamp {
        let ns = self.unit.to_nanos(ticks);
        if self.offset_secs == 0 {
            return Timestamp(ns);
        }
        let shifted = i128::from(ns) + i128::from(self.offset_secs) * 1_000_000_000;
        Timestamp(u64::try_from(shifted.max(0)).unwrap_or(u64::MAX))
    }
}

/// What was wrong in an IDB's options (the interface is still usable with defaults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OptionTrouble {
    /// An option ran past the end of the block.
    pub(crate) overrun: bool,
    /// `if_tsresol` had a value no 64-bit counter can use (microseconds assumed).
    pub(crate) bad_tsresol: bool,
}

/// Parses an IDB's body: the bytes after the 8-byte block header, before the trailing length. `None` when the
/// body is shorter than the fixed part (8 bytes).
pub(crate) fn parse_idb(body: &[u8], big_endian: bool) -> Option<(Interface, OptionTrouble)> {
    if body.len() < 8 {
        return None;
    }
    let mut iface = Interface {
        link: LinkType(u32::from(u16_at(big_endian, body, 0))),
        snaplen: u32_at(big_endian, body, 4),
        unit: TsUnit::Decimal(6),
        offset_secs: 0,
    };
    let mut trouble = OptionTrouble::default();
    let mut opts = &body[8..];
    while opts.len() >= 4 {
        let code = u16_at(big_endian, opts, 0);
        let len = usize::from(u16_at(big_endian, opts, 2));
        if code == 0 {
            break;
        }
        let padded = (len + 3) & !3;
        if opts.len() < 4 + padded {
            trouble.overrun = true;
            break;
        }
        let value = &opts[4..4 + len];
        match (code, len) {
            (9, 1) => match TsUnit::from_tsresol(value[0]) {
                Some(unit) => iface.unit = unit,
                None => trouble.bad_tsresol = true,
            },
            (14, 8) => {
                let v: [u8; 8] = [value[0], value[1], value[2], value[3], value[4], value[5], value[6], value[7]];
                iface.offset_secs = if big_endian { i64::from_be_bytes(v) } else { i64::from_le_bytes(v) };
            }
            _ => {}
        }
        opts = &opts[4 + padded..];
    }
    Some((iface, trouble))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions() {
        assert_eq!(TsUnit::from_tsresol(6), Some(TsUnit::Decimal(6)));
        assert_eq!(TsUnit::Decimal(6).to_nanos(1_500_000), 1_500_000_000);
        assert_eq!(TsUnit::Decimal(9).to_nanos(7), 7);
        assert_eq!(TsUnit::Decimal(12).to_nanos(7_000), 7);
        assert_eq!(TsUnit::from_tsresol(0x80 | 10), Some(TsUnit::Binary(10)));
        // 1024 ticks of 2^-10 s = 1 s.
        assert_eq!(TsUnit::Binary(10).to_nanos(1024), 1_000_000_000);
        assert_eq!(TsUnit::from_tsresol(20), None);
        assert_eq!(TsUnit::Decimal(0).to_nanos(u64::MAX), u64::MAX);
    }

    #[test]
    fn idb_options_big_endian() {
        let mut body = vec![0, 113, 0, 0, 0, 0, 0xff, 0xff];
        body.extend_from_slice(&[0, 9, 0, 1, 9, 0, 0, 0]); // if_tsresol = 9
        body.extend_from_slice(&[0, 14, 0, 8]);
        body.extend_from_slice(&(-1i64).to_be_bytes()); // if_tsoffset = -1 s
        body.extend_from_slice(&[0, 0, 0, 0]);
        let (iface, trouble) = parse_idb(&body, true).unwrap();
        assert_eq!(iface.link, LinkType::LINUX_SLL);
        assert_eq!(iface.snaplen, 65535);
        assert_eq!(iface.unit, TsUnit::Decimal(9));
        assert_eq!(iface.offset_secs, -1);
        assert_eq!(trouble, OptionTrouble::default());
        assert_eq!(iface.timestamp(3_000_000_000), Timestamp(2_000_000_000));
    }

    #[test]
    fn idb_option_overrun_is_reported() {
        let mut body = vec![1, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&[9, 0, 40, 0, 1]);
        let (iface, trouble) = parse_idb(&body, false).unwrap();
        assert!(trouble.overrun);
        assert_eq!(iface.unit, TsUnit::Decimal(6));
        assert!(parse_idb(&[0; 7], false).is_none());
    }
}
