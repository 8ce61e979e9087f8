//! One ring buffer record: a fixed [`RecordHeader`] followed by the captured bytes (`caplen` of them, from the
//! start of the link-layer header). The kernel reserves records in a few fixed sizes ([`CLASSES`]): the ring
//! buffer's reserve call needs a size known when the program is verified, and one size for every packet would
//! spend 64 KiB of ring on a 66-byte ACK. The record is in the host's byte order (kernel and reader share a CPU).

/// Capture direction, in [`RecordHeader::direction`]: the packet arrived at the interface.
pub const INGRESS: u32 = 0;
/// Capture direction: the packet left through the interface.
pub const EGRESS: u32 = 1;

/// Bytes of [`RecordHeader`] at the start of every record.
pub const HEADER_LEN: usize = 24;

/// Packet bytes a record can hold, smallest first. A packet goes into the smallest class that holds
/// `min(len, snaplen)` bytes. Small packets (ACKs, requests) and MTU-sized ones get tight classes; GSO/GRO
/// super-packets (up to 64 KiB, typical of bulk transfers on veth and loopback) get 8 KiB steps, so a record
/// wastes at most 8 KiB of ring beside them (with power-of-two steps a 33 KiB packet would take 64 KiB, and a ring
/// would hold far fewer of them). The largest holds a 64 KiB super-packet with its link-layer header.
pub const CLASSES: [usize; 12] =
    [128, 512, 1600, 4096, 8192, 16_384, 24_576, 32_768, 40_960, 49_152, 57_344, MAX_SNAPLEN];

/// The most packet bytes one record carries; longer packets are cut (counted as truncated).
pub const MAX_SNAPLEN: usize = 65_536 + 256;

/// Metadata in front of the packet bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// When the classifier ran, in `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_ns`).
    pub ts_ns: u64,
    /// The packet's length (`skb->len`: one GSO super-packet counts whole).
    pub len: u32,
    /// Packet bytes following the header (at most `len`, the snaplen and the record's class).
    pub caplen: u32,
    /// The interface's index.
    pub ifindex: u32,
    /// [`INGRESS`] or [`EGRESS`].
    pub direction: u32,
}

impl RecordHeader {
    /// Reads a record: its header and its packet bytes. `None` when `record` is shorter than the header or than
    /// the `caplen` it declares (a record the reader must count as malformed, never trust).
    pub fn decode(record: &[u8]) -> Option<(RecordHeader, &[u8])> {
        let u32_at = |at: usize| -> Option<u32> {
            let b = record.get(at..at + 4)?;
            Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let ts = record.get(0..8)?;
        let ts_ns = u64::from_ne_bytes([ts[0], ts[1], ts[2], ts[3], ts[4], ts[5], ts[6], ts[7]]);
        let h =
            RecordHeader { ts_ns, len: u32_at(8)?, caplen: u32_at(12)?, ifindex: u32_at(16)?, direction: u32_at(20)? };
        let data = record.get(HEADER_LEN..HEADER_LEN.checked_add(h.caplen as usize)?)?;
        Some((h, data))
    }

    /// The header's bytes, as the kernel lays them out.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&self.ts_ns.to_ne_bytes());
        out[8..12].copy_from_slice(&self.len.to_ne_bytes());
        out[12..16].copy_from_slice(&self.caplen.to_ne_bytes());
        out[16..20].copy_from_slice(&self.ifindex.to_ne_bytes());
        out[20..24].copy_from_slice(&self.direction.to_ne_bytes());
        out
    }
}

/// The smallest class index whose capacity holds `n` bytes, or `None` when `n` is beyond [`MAX_SNAPLEN`].
pub fn class_for(n: usize) -> Option<usize> {
    CLASSES.iter().position(|&c| n <= c)
}

/// How many packet bytes a record carries: the packet length cut at the snaplen (0 meaning the maximum) and at
/// [`MAX_SNAPLEN`].
pub fn capture_len(len: u32, snaplen: u64) -> usize {
    let snap = if snaplen == 0 || snaplen > MAX_SNAPLEN as u64 { MAX_SNAPLEN } else { snaplen as usize };
    let len = len as usize;
    if len < snap { len } else { snap }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_laid_out_as_the_c_struct() {
        assert_eq!(core::mem::size_of::<RecordHeader>(), HEADER_LEN);
        assert_eq!(core::mem::align_of::<RecordHeader>(), 8);
        let h = RecordHeader { ts_ns: 0x0102_0304_0506_0708, len: 1500, caplen: 3, ifindex: 7, direction: EGRESS };
        let mut rec = h.encode().to_vec();
        // Field offsets written out by hand: ts at 0, len at 8, caplen at 12, ifindex at 16, direction at 20.
        assert_eq!(&rec[8..12], &1500u32.to_ne_bytes());
        assert_eq!(&rec[12..16], &3u32.to_ne_bytes());
        assert_eq!(&rec[16..20], &7u32.to_ne_bytes());
        assert_eq!(&rec[20..24], &1u32.to_ne_bytes());
        rec.extend_from_slice(b"abcXYZ");
        let (back, data) = RecordHeader::decode(&rec).unwrap();
        assert_eq!(back, h);
        assert_eq!(data, b"abc", "caplen bytes, not the record's padding");
    }

    #[test]
    fn short_or_lying_records_are_refused() {
        let h = RecordHeader { caplen: 10, ..Default::default() };
        let mut rec = h.encode().to_vec();
        rec.extend_from_slice(&[0; 9]);
        assert!(RecordHeader::decode(&rec).is_none(), "declares 10 bytes, holds 9");
        assert!(RecordHeader::decode(&rec[..23]).is_none());
        assert!(RecordHeader::decode(&[]).is_none());
        let huge = RecordHeader { caplen: u32::MAX, ..Default::default() };
        assert!(RecordHeader::decode(&huge.encode()).is_none());
    }

    #[test]
    fn classes_and_capture_lengths() {
        assert_eq!(class_for(0), Some(0));
        assert_eq!(class_for(128), Some(0));
        assert_eq!(class_for(129), Some(1));
        assert_eq!(class_for(1514), Some(2), "an MTU-sized Ethernet frame");
        assert_eq!(class_for(1601), Some(3));
        assert_eq!(class_for(33_000), Some(8));
        assert_eq!(class_for(65_549), Some(11), "a 64 KiB IP packet with its Ethernet header fits");
        assert_eq!(class_for(MAX_SNAPLEN + 1), None);
        assert!(CLASSES.windows(2).all(|w| w[0] < w[1]));
        // Beyond the MTU classes no step is over 8 KiB: the ring holds super-packets nearly at their size.
        assert!(CLASSES.windows(2).skip(4).all(|w| w[1] - w[0] <= 8192 + 256), "{CLASSES:?}");
        assert_eq!(capture_len(1514, 0), 1514);
        assert_eq!(capture_len(1514, 96), 96);
        assert_eq!(capture_len(60, 262_144), 60);
        assert_eq!(capture_len(200_000, 262_144), MAX_SNAPLEN);
    }
}
