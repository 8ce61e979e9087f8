//! A classic pcap writer (microsecond timestamps, little-endian, Ethernet link type) over any `Write`. Records
//! are written as they come: nothing is kept in memory but the caller's buffer.

use std::io::{self, Write};

/// Link type of the records written (LINKTYPE_ETHERNET).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snapshot length announced in the file header (frames are never longer).
pub const SNAPLEN: u32 = 65_535;

/// Writes a classic pcap file: the global header on creation, then one record per [`PcapWriter::write_frame`].
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    frames: u64,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the 24-byte global header (magic `a1b2c3d4` little-endian, version 2.4, Ethernet).
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, frames: 0, bytes: 24 })
    }

    /// Writes one record with timestamp `ts_micros` (microseconds since the epoch); the frame is stored whole.
    pub fn write_frame(&mut self, ts_micros: u64, frame: &[u8]) -> io::Result<()> {
        let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame longer than 4 GiB"))?;
        let secs = u32::try_from(ts_micros / 1_000_000).map_err(|_| io::Error::other("timestamp past 2106"))?;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&((ts_micros % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)?;
        self.frames += 1;
        self.bytes += 16 + u64::from(len);
        Ok(())
    }

    /// Records written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written so far (header included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(1_700_000_000_123_456, &[1, 2, 3]).unwrap();
        assert_eq!((w.frames(), w.bytes()), (1, 24 + 16 + 3));
        let v = w.finish().unwrap();
        assert_eq!(&v[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&v[20..24], &[1, 0, 0, 0]);
        assert_eq!(u32::from_le_bytes(v[24..28].try_into().unwrap()), 1_700_000_000);
        assert_eq!(u32::from_le_bytes(v[28..32].try_into().unwrap()), 123_456);
        assert_eq!(u32::from_le_bytes(v[32..36].try_into().unwrap()), 3);
        assert_eq!(&v[40..], &[1, 2, 3]);
    }
}
