//! The classic pcap format (libpcap's savefile): the 24-byte file header and the per-packet record header, in
//! both byte orders, with micro- or nanosecond timestamps, and the "modified" (Kuznetzov) variant whose record
//! headers carry 8 more bytes. Format: <https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html>.

use tapedeck_model::Timestamp;

use super::LinkType;

/// Length of the file header.
pub(crate) const FILE_HEADER_LEN: usize = 24;

/// libpcap's largest snaplen for ordinary link types (`MAXIMUM_SNAPLEN`): a record longer than this and than the
/// file's own snaplen is damage, as libpcap and tshark also judge it.
pub(crate) const LIBPCAP_MAX_SNAPLEN: u32 = 262_144;

/// What the first four bytes of an input announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Magic {
    /// Classic pcap.
    Pcap {
        /// Fields are big-endian.
        big_endian: bool,
        /// The fraction field counts nanoseconds, not microseconds.
        nanos: bool,
        /// Record headers are 24 bytes (the "modified pcap" of old Red Hat tcpdump).
        modified: bool,
    },
    /// pcapng: the first block is a Section Header Block.
    PcapNg,
}

impl Magic {
    /// Recognises the first four bytes of an input.
    pub(crate) fn from_bytes(b: [u8; 4]) -> Option<Magic> {
        let pcap = |big_endian, nanos, modified| Some(Magic::Pcap { big_endian, nanos, modified });
        match b {
            [0xa1, 0xb2, 0xc3, 0xd4] => pcap(true, false, false),
            [0xd4, 0xc3, 0xb2, 0xa1] => pcap(false, false, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => pcap(true, true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => pcap(false, true, false),
            [0xa1, 0xb2, 0xcd, 0x34] => pcap(true, false, true),
            [0x34, 0xcd, 0xb2, 0xa1] => pcap(false, false, true),
            [0x0a, 0x0d, 0x0d, 0x0a] => Some(Magic::PcapNg),
            _ => None,
        }
    }
}

/// A classic pcap file's parameters, from its header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PcapFormat {
    big_endian: bool,
    nanos: bool,
    /// Bytes in each record header (16, or 24 for modified pcap).
    pub(crate) record_header_len: usize,
    /// The link type of every packet.
    pub(crate) link: LinkType,
    /// The snaplen the file declares.
    pub(crate) snaplen: u32,
}

/// One record header, decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordHeader {
    pub(crate) ts: Timestamp,
    pub(crate) caplen: u32,
    pub(crate) orig_len: u32,
}

impl PcapFormat {
    /// Reads the file header (`header` holds at least [`FILE_HEADER_LEN`] bytes).
    pub(crate) fn new(header: &[u8], big_endian: bool, nanos: bool, modified: bool) -> PcapFormat {
        let mut f = PcapFormat {
            big_endian,
            nanos,
            record_header_len: if modified { 24 } else { 16 },
            link: LinkType(0),
            snaplen: 0,
        };
        f.snaplen = f.u32_at(header, 16);
        // The upper bits of the link type field carry FCS information (LT_LINKTYPE in libpcap's pcap-common.h).
        f.link = LinkType(f.u32_at(header, 20) & 0x03FF_FFFF);
        f
    }

    #[inline]
    fn u32_at(&self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian { u32::from_be_bytes(v) } else { u32::from_le_bytes(v) }
    }

    /// Decodes a record header (`b` holds at least `record_header_len` bytes).
    #[inline]
    pub(crate) fn record(&self, b: &[u8]) -> RecordHeader {
        let secs = u64::from(self.u32_at(b, 0));
        let frac = self.u32_at(b, 4);
        let nanos = if self.nanos { u64::from(frac) } else { u64::from(frac) * 1000 };
        RecordHeader {
            ts: Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(nanos)),
            caplen: self.u32_at(b, 8),
            orig_len: self.u32_at(b, 12),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert_eq!(
            Magic::from_bytes([0xd4, 0xc3, 0xb2, 0xa1]),
            Some(Magic::Pcap { big_endian: false, nanos: false, modified: false })
        );
        assert_eq!(
            Magic::from_bytes([0xa1, 0xb2, 0x3c, 0x4d]),
            Some(Magic::Pcap { big_endian: true, nanos: true, modified: false })
        );
        assert_eq!(Magic::from_bytes([0x0a, 0x0d, 0x0d, 0x0a]), Some(Magic::PcapNg));
        assert_eq!(Magic::from_bytes(*b"GET "), None);
    }

    #[test]
    fn record_header_both_orders() {
        let le = PcapFormat::new(&[0; 24], false, false, false);
        let rec = le.record(&[1, 0, 0, 0, 0x3f, 0x42, 0x0f, 0, 60, 0, 0, 0, 80, 0, 0, 0]);
        // 1 s + 999_999 us
        assert_eq!(rec.ts, Timestamp(1_999_999_000));
        assert_eq!((rec.caplen, rec.orig_len), (60, 80));
        let be = PcapFormat::new(&[0; 24], true, true, false);
        let rec = be.record(&[0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 60, 0, 0, 0, 60]);
        assert_eq!(rec.ts, Timestamp(2_000_000_005));
    }

    #[test]
    fn link_type_drops_fcs_bits() {
        let mut h = [0u8; 24];
        h[20..24].copy_from_slice(&(0x1000_0001u32 | (1 << 26)).to_le_bytes());
        assert_eq!(PcapFormat::new(&h, false, false, false).link, LinkType(1));
    }
}
