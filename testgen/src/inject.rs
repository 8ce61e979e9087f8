//! Edits of real captures that no ordinary program produces:
//! - [`inject_signed_rst`] adds, after a given frame, a forged RST carrying a TCP-MD5 signature option (RFC 2385),
//!   the evasion of suricata-verify's security-4710: a host whose connection does not use TCP-MD5 discards such a
//!   segment, so the connection goes on, and a passive reader that believes the RST loses the rest of it.
//! - [`acks_before_data`] moves every pure ACK that directly follows the data segment it acknowledges in front of
//!   it, as a capture taken at a mirror port or on several interfaces can show them (suricata-verify bug-5392): a
//!   reader that calls acknowledged-but-unseen bytes lost at once loses data that arrives a moment later.
//! - [`shift_time`] moves every timestamp by whole seconds, as `editcap -t` does (without needing Wireshark's
//!   tools): a rotated file given out of capture order.

use std::io;

use etherparse::{Ethernet2Header, SlicedPacket, TransportSlice};

/// TCP option kind of a TCP-MD5 signature, and its length (kind, length, 16 bytes of digest).
const TCP_MD5_KIND: u8 = 19;
const TCP_MD5_LEN: u8 = 18;

/// Classic pcap, as tcpdump writes it on a little-endian host: magic, then the link type at offset 20.
const MAGIC_LE_MICROS: [u8; 4] = [0xd4, 0xc3, 0xb2, 0xa1];
const LINKTYPE_ETHERNET: u32 = 1;

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Returns `pcap` (classic, little-endian, microseconds, Ethernet) with one frame inserted after frame `after`
/// (1-based, as tshark and editcap count): a copy of that frame's Ethernet/IPv4/TCP headers with the payload
/// removed, RST+ACK set, and a TCP-MD5 option whose digest is zeros; same timestamp plus one microsecond.
pub fn inject_signed_rst(pcap: &[u8], after: u32) -> io::Result<Vec<u8>> {
    let recs = records(pcap)?;
    let index = usize::try_from(after).unwrap_or(usize::MAX);
    if index == 0 || index > recs.len() {
        return Err(bad(format!("only {} frames, no frame {after}", recs.len())));
    }
    let mut out = pcap[..24].to_vec();
    for (i, r) in recs.iter().enumerate() {
        out.extend_from_slice(r.header);
        out.extend_from_slice(r.frame);
        if i + 1 == index {
            let rst = signed_rst(r.frame).map_err(|e| bad(format!("frame {after}: {e}")))?;
            let h = r.header;
            let secs = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let micros = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let (secs, micros) = if micros >= 999_999 { (secs + 1, 0) } else { (secs, micros + 1) };
            let len = rst.len() as u32;
            for v in [secs, micros, len, len] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&rst);
        }
    }
    Ok(out)
}

/// One record of a classic pcap: its 16-byte header and its frame.
struct Record<'a> {
    header: &'a [u8],
    frame: &'a [u8],
}

/// The records of a classic little-endian microsecond Ethernet pcap, after its 24-byte header.
fn records(pcap: &[u8]) -> io::Result<Vec<Record<'_>>> {
    if pcap.len() < 24 || pcap[0..4] != MAGIC_LE_MICROS {
        return Err(bad("not a little-endian microsecond pcap".into()));
    }
    let link = u32::from_le_bytes([pcap[20], pcap[21], pcap[22], pcap[23]]);
    if link != LINKTYPE_ETHERNET {
        return Err(bad(format!("link type {link}, not Ethernet")));
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at < pcap.len() {
        let header = pcap.get(at..at + 16).ok_or_else(|| bad(format!("record header cut at offset {at}")))?;
        let caplen = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let frame = pcap.get(at + 16..at + 16 + caplen).ok_or_else(|| bad(format!("record cut at offset {at}")))?;
        out.push(Record { header, frame });
        at += 16 + caplen;
    }
    Ok(out)
}

/// Returns `pcap` (classic, little-endian, microseconds, Ethernet) with every timestamp moved by `secs` seconds.
pub fn shift_time(pcap: &[u8], secs: i64) -> io::Result<Vec<u8>> {
    let mut out = pcap[..24.min(pcap.len())].to_vec();
    for (i, r) in records(pcap)?.iter().enumerate() {
        let ts = u32::from_le_bytes([r.header[0], r.header[1], r.header[2], r.header[3]]);
        let moved = u32::try_from(i64::from(ts) + secs)
            .map_err(|_| bad(format!("frame {}: timestamp {ts} moved by {secs} s is out of range", i + 1)))?;
        out.extend_from_slice(&moved.to_le_bytes());
        out.extend_from_slice(&r.header[4..]);
        out.extend_from_slice(r.frame);
    }
    Ok(out)
}

/// Source and destination (address, port), sequence and acknowledgement numbers, ACK bit and payload length of
/// an IPv4 or IPv6 TCP frame.
type TcpView = ((Vec<u8>, u16), (Vec<u8>, u16), u32, u32, bool, usize);

fn tcp_view(frame: &[u8]) -> Option<TcpView> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst) = match p.net? {
        etherparse::NetSlice::Ipv4(v4) => (v4.header().source().to_vec(), v4.header().destination().to_vec()),
        etherparse::NetSlice::Ipv6(v6) => (v6.header().source().to_vec(), v6.header().destination().to_vec()),
        _ => return None,
    };
    let Some(TransportSlice::Tcp(t)) = p.transport else { return None };
    if t.syn() || t.fin() || t.rst() {
        return None;
    }
    Some((
        (src, t.source_port()),
        (dst, t.destination_port()),
        t.sequence_number(),
        t.acknowledgment_number(),
        t.ack(),
        t.payload().len(),
    ))
}

/// Returns `pcap` (classic, little-endian, microseconds, Ethernet) with every pure ACK that directly follows the
/// data segment it acknowledges (the reverse 4-tuple, ack = that segment's end) moved in front of it; records keep
/// their timestamps in file order (the two swap frames, not times). Also returns how many pairs were swapped.
pub fn acks_before_data(pcap: &[u8]) -> io::Result<(Vec<u8>, usize)> {
    let recs = records(pcap)?;
    let views: Vec<Option<TcpView>> = recs.iter().map(|r| tcp_view(r.frame)).collect();
    let mut order: Vec<usize> = (0..recs.len()).collect();
    let mut swapped = 0;
    let mut i = 0;
    while i + 1 < recs.len() {
        if let (Some(d), Some(a)) = (&views[i], &views[i + 1])
            && d.5 > 0
            && a.5 == 0
            && a.4
            && a.0 == d.1
            && a.1 == d.0
            && a.3 == d.2.wrapping_add(d.5 as u32)
        {
            order.swap(i, i + 1);
            swapped += 1;
            i += 2;
        } else {
            i += 1;
        }
    }
    let mut out = pcap[..24].to_vec();
    for (slot, &from) in order.iter().enumerate() {
        // The record header of the slot (its time), with the lengths of the frame that moves there.
        let header = recs[slot].header;
        out.extend_from_slice(&header[..8]);
        out.extend_from_slice(&recs[from].header[8..16]);
        out.extend_from_slice(recs[from].frame);
    }
    Ok((out, swapped))
}

/// The forged RST built from the headers of `frame`.
fn signed_rst(frame: &[u8]) -> Result<Vec<u8>, String> {
    let sliced = SlicedPacket::from_ethernet(frame).map_err(|e| e.to_string())?;
    let eth: Ethernet2Header = match sliced.link {
        Some(etherparse::LinkSlice::Ethernet2(e)) => e.to_header(),
        _ => return Err("not Ethernet II".into()),
    };
    let mut ip = match sliced.net {
        Some(etherparse::NetSlice::Ipv4(v4)) => v4.header().to_header(),
        _ => return Err("not IPv4".into()),
    };
    let mut tcp = match sliced.transport {
        Some(TransportSlice::Tcp(t)) => t.to_header(),
        _ => return Err("not TCP".into()),
    };
    tcp.rst = true;
    tcp.ack = true;
    tcp.psh = false;
    tcp.syn = false;
    tcp.fin = false;
    let mut options = vec![1u8, 1, TCP_MD5_KIND, TCP_MD5_LEN];
    options.resize(2 + usize::from(TCP_MD5_LEN), 0);
    tcp.set_options_raw(&options).map_err(|e| e.to_string())?;
    ip.set_payload_len(tcp.header_len()).map_err(|e| e.to_string())?;
    ip.header_checksum = ip.calc_header_checksum();
    tcp.checksum = tcp.calc_checksum_ipv4(&ip, &[]).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(14 + ip.header_len() + tcp.header_len());
    eth.write(&mut out).map_err(|e| e.to_string())?;
    ip.write(&mut out).map_err(|e| e.to_string())?;
    tcp.write(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::PcapWriter;
    use etherparse::PacketBuilder;

    fn ack_frame(seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, seq, 512)
            .ack(77)
            .write(&mut f, payload)
            .unwrap();
        f
    }

    #[test]
    fn shifting_time_moves_every_second_and_nothing_else() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(5_000_007, &ack_frame(100, b"")).unwrap();
        w.write_frame(9_000_000, &ack_frame(100, b"GET")).unwrap();
        let pcap = w.finish().unwrap();
        let out = shift_time(&pcap, -3).unwrap();
        assert_eq!(out.len(), pcap.len());
        let second_at = 24 + 16 + u32::from_le_bytes(pcap[24 + 8..24 + 12].try_into().unwrap()) as usize;
        for (at, secs) in [(24, 2u32), (second_at, 6)] {
            assert_eq!(u32::from_le_bytes(out[at..at + 4].try_into().unwrap()), secs);
            assert_eq!(out[at + 4..at + 16], pcap[at + 4..at + 16]);
        }
        assert_eq!(out[..24], pcap[..24]);
        assert_eq!(out[second_at + 16..], pcap[second_at + 16..]);
        assert!(shift_time(&pcap, -6).is_err());
    }

    #[test]
    fn the_rst_follows_the_frame_with_its_numbers_and_an_md5_option() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(1_000_000, &ack_frame(100, b"")).unwrap();
        w.write_frame(2_000_000, &ack_frame(100, b"GET")).unwrap();
        let pcap = w.finish().unwrap();
        let out = inject_signed_rst(&pcap, 1).unwrap();
        // Frame 2 of the output is the forged one.
        let first_len = u32::from_le_bytes(out[24 + 8..24 + 12].try_into().unwrap()) as usize;
        let at = 24 + 16 + first_len;
        let micros = u32::from_le_bytes(out[at + 4..at + 8].try_into().unwrap());
        assert_eq!(micros, 1);
        let len = u32::from_le_bytes(out[at + 8..at + 12].try_into().unwrap()) as usize;
        let forged = SlicedPacket::from_ethernet(&out[at + 16..at + 16 + len]).unwrap();
        let Some(TransportSlice::Tcp(t)) = forged.transport else { panic!("no TCP") };
        assert!(t.rst() && t.ack() && !t.syn() && !t.fin());
        assert_eq!((t.sequence_number(), t.acknowledgment_number(), t.payload().len()), (100, 77, 0));
        assert_eq!(&t.options()[2..4], &[TCP_MD5_KIND, TCP_MD5_LEN]);
        // The rest of the file is unchanged.
        assert_eq!(&out[at + 16 + len..], &pcap[24 + 16 + first_len..]);
        assert_eq!(out.len(), pcap.len() + 16 + len);
    }

    fn frame(src: [u8; 4], dst: [u8; 4], ports: (u16, u16), seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .tcp(ports.0, ports.1, seq, 512)
            .ack(ack)
            .write(&mut f, payload)
            .unwrap();
        f
    }

    #[test]
    fn an_ack_right_after_the_data_it_acknowledges_moves_before_it() {
        let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let frames = [
            frame(c, s, (40000, 80), 100, 7, b"GET /"),
            frame(s, c, (80, 40000), 7, 105, b""),
            // Data again, then an ACK that acknowledges less than all of it: left alone.
            frame(c, s, (40000, 80), 105, 7, b"x"),
            frame(s, c, (80, 40000), 7, 105, b""),
            // An ACK of another connection: left alone.
            frame(c, s, (40000, 80), 106, 7, b"y"),
            frame(s, c, (80, 40001), 7, 107, b""),
        ];
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for (i, f) in frames.iter().enumerate() {
            w.write_frame(1_000_000 + i as u64, f).unwrap();
        }
        let pcap = w.finish().unwrap();
        let (out, swapped) = acks_before_data(&pcap).unwrap();
        assert_eq!(swapped, 1);
        let recs = records(&out).unwrap();
        let got: Vec<&[u8]> = recs.iter().map(|r| r.frame).collect();
        let want: Vec<&[u8]> = [1, 0, 2, 3, 4, 5].iter().map(|&i| frames[i].as_slice()).collect();
        assert_eq!(got, want);
        // Times stay in file order.
        let micros: Vec<u32> = recs.iter().map(|r| u32::from_le_bytes(r.header[4..8].try_into().unwrap())).collect();
        assert_eq!(micros, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_missing_frame_is_an_error() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(1, &ack_frame(1, b"")).unwrap();
        let pcap = w.finish().unwrap();
        assert!(inject_signed_rst(&pcap, 2).unwrap_err().to_string().contains("no frame 2"));
        assert!(inject_signed_rst(&pcap[..10], 1).is_err());
    }
}
