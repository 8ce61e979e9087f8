//! Edits of real captures that no ordinary program produces: [`inject_signed_rst`] adds, after a given frame, a
//! forged RST carrying a TCP-MD5 signature option (RFC 2385), the evasion of suricata-verify's security-4710:
//! a host whose connection does not use TCP-MD5 discards such a segment, so the connection goes on, and a
//! passive reader that believes the RST loses the rest of it.

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
    if pcap.len() < 24 || pcap[0..4] != MAGIC_LE_MICROS {
        return Err(bad("not a little-endian microsecond pcap".into()));
    }
    let link = u32::from_le_bytes([pcap[20], pcap[21], pcap[22], pcap[23]]);
    if link != LINKTYPE_ETHERNET {
        return Err(bad(format!("link type {link}, not Ethernet")));
    }
    let mut out = pcap[..24].to_vec();
    let mut at = 24;
    let mut frame_no = 0u32;
    while at < pcap.len() {
        let header = pcap.get(at..at + 16).ok_or_else(|| bad(format!("record header cut at offset {at}")))?;
        let caplen = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        let frame = pcap.get(at + 16..at + 16 + caplen).ok_or_else(|| bad(format!("record cut at offset {at}")))?;
        out.extend_from_slice(&pcap[at..at + 16 + caplen]);
        frame_no += 1;
        if frame_no == after {
            let rst = signed_rst(frame).map_err(|e| bad(format!("frame {after}: {e}")))?;
            let secs = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let micros = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let (secs, micros) = if micros >= 999_999 { (secs + 1, 0) } else { (secs, micros + 1) };
            let len = rst.len() as u32;
            for v in [secs, micros, len, len] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&rst);
        }
        at += 16 + caplen;
    }
    if frame_no < after {
        return Err(bad(format!("only {frame_no} frames, no frame {after}")));
    }
    Ok(out)
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

    #[test]
    fn a_missing_frame_is_an_error() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_frame(1, &ack_frame(1, b"")).unwrap();
        let pcap = w.finish().unwrap();
        assert!(inject_signed_rst(&pcap, 2).unwrap_err().to_string().contains("no frame 2"));
        assert!(inject_signed_rst(&pcap[..10], 1).is_err());
    }
}
