//! Decoder tests on packets built with etherparse's `PacketBuilder` or by hand, and on real captures from the
//! shared corpus when present.

use std::net::SocketAddr;
use std::path::Path;

use etherparse::{IpFragOffset, IpNumber, Ipv4Header, LinuxSllPacketType, PacketBuilder, VlanId};
use proptest::prelude::*;
use tapedeck_model::Timestamp;

use super::*;
use crate::source::{Frame, LinkType, PcapSource};

const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn frame(link: LinkType, data: &[u8]) -> Frame<'_> {
    Frame { ts: Timestamp(42), link, data, orig_len: data.len() as u32, interface: 0, number: 1 }
}

fn decoder() -> Decoder {
    Decoder::new(DecodeConfig::default())
}

/// An IPv4 TCP packet (no link header) carrying `payload`.
fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 65535)
        .ack(77)
        .psh()
        .write(&mut out, payload)
        .unwrap();
    out
}

/// An Ethernet frame with `ethertype` around `inner`.
fn ether(ethertype: u16, inner: &[u8]) -> Vec<u8> {
    let mut out = [MAC_B, MAC_A].concat();
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(inner);
    out
}

/// Decodes and checks the segment is the one of [`ipv4_tcp`] with `PAYLOAD`.
fn assert_v4_segment(link: LinkType, data: &[u8]) -> DecodeStats {
    let mut d = decoder();
    let got = d.decode(&frame(link, data)).map(|seg| {
        assert_eq!(seg.src, "10.0.0.1:40000".parse::<SocketAddr>().unwrap());
        assert_eq!(seg.dst, "10.0.0.2:80".parse::<SocketAddr>().unwrap());
        assert_eq!((seg.seq, seg.ack, seg.missing), (1000, 77, 0));
        assert_eq!(seg.flags, TcpFlags { syn: false, ack: true, fin: false, rst: false });
        assert_eq!(seg.payload, PAYLOAD);
        assert_eq!(seg.ts, Timestamp(42));
    });
    assert!(got.is_some(), "no segment: {:?}", d.stats());
    let stats = d.stats().clone();
    assert_eq!((stats.frames, stats.tcp_segments, stats.anomalies()), (1, 1, 0));
    stats
}

// ===== link types =====

#[test]
fn ethernet_ipv4_tcp() {
    let mut pkt = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 65535)
        .ack(77)
        .write(&mut pkt, PAYLOAD)
        .unwrap();
    // Ethernet padding after the IP packet is not payload.
    pkt.extend_from_slice(&[0; 6]);
    assert_v4_segment(LinkType::ETHERNET, &pkt);
}

#[test]
fn ieee_802_3_with_llc_snap() {
    // An 802.3 frame: the type field is a length, then LLC/SNAP (RFC 1042) carries the EtherType.
    let inner = ipv4_tcp(PAYLOAD);
    let llc = [&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00][..], &inner].concat();
    let frame_bytes = ether(llc.len() as u16, &llc);
    assert_v4_segment(LinkType::ETHERNET, &frame_bytes);
    // Plain LLC without SNAP (e.g. spanning tree) is not IP.
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::ETHERNET, &ether(38, &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]))).is_none());
    assert_eq!(d.stats().non_ip, 1);
}

#[test]
fn vlan_qinq_and_old_qinq_tags() {
    let mut pkt = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 65535)
        .ack(77)
        .write(&mut pkt, PAYLOAD)
        .unwrap();
    assert_eq!(assert_v4_segment(LinkType::ETHERNET, &pkt).vlan_tags, 2);

    // Three tags by hand: 0x9100, 0x88a8, 0x8100.
    let mut inner = vec![0x00, 0x05, 0x88, 0xa8, 0x00, 0x06, 0x81, 0x00, 0x00, 0x07, 0x08, 0x00];
    inner.extend_from_slice(&ipv4_tcp(PAYLOAD));
    assert_eq!(assert_v4_segment(LinkType::ETHERNET, &ether(0x9100, &inner)).vlan_tags, 3);

    // A tag cut off.
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::ETHERNET, &ether(0x8100, &[0, 1]))).is_none());
    assert_eq!(d.stats().truncated_vlan, 1);
}

#[test]
fn linux_sll_and_sll2() {
    let mut pkt = Vec::new();
    PacketBuilder::linux_sll(LinuxSllPacketType::OUTGOING, 6, [2, 0, 0, 0, 0, 1, 0, 0])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 1000, 65535)
        .ack(77)
        .write(&mut pkt, PAYLOAD)
        .unwrap();
    assert_v4_segment(LinkType::LINUX_SLL, &pkt);

    // SLL2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, address length, address.
    let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 3, 0x00, 0x01, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll2.extend_from_slice(&ipv4_tcp(PAYLOAD));
    assert_v4_segment(LinkType::LINUX_SLL2, &sll2);

    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::LINUX_SLL2, &sll2[..19])).is_none());
    assert_eq!(d.stats().truncated_sll, 1);
}

#[test]
fn raw_ip_link_types() {
    let v4 = ipv4_tcp(PAYLOAD);
    assert_v4_segment(LinkType::RAW, &v4);
    assert_v4_segment(LinkType::IPV4, &v4);
    assert_v4_segment(LinkType(12), &v4);
    // An IPv4 packet on the IPv6-only link type is refused.
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::IPV6, &v4)).is_none());
    assert_eq!(d.stats().bad_ip_version, 1);
}

#[test]
fn bsd_null_and_loop_in_both_byte_orders() {
    for family in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
        let pkt = [&family[..], &ipv4_tcp(PAYLOAD)].concat();
        assert_v4_segment(LinkType::NULL, &pkt);
        assert_v4_segment(LinkType::LOOP, &pkt);
    }
    let mut v6 = Vec::new();
    PacketBuilder::ipv6([1; 16], [2; 16], 64).tcp(1, 2, 3, 4).write(&mut v6, b"x").unwrap();
    for family in [30u32.to_le_bytes(), 24u32.to_be_bytes(), 28u32.to_le_bytes()] {
        let mut d = decoder();
        let pkt = [&family[..], &v6].concat();
        assert_eq!(d.decode(&frame(LinkType::NULL, &pkt)).map(|s| s.payload), Some(&b"x"[..]));
    }
    let mut d = decoder();
    let pkt = [&7u32.to_le_bytes()[..], &v6].concat();
    assert!(d.decode(&frame(LinkType::NULL, &pkt)).is_none());
    assert_eq!(d.stats().unknown_address_family, 1);
}

// ===== IPv6 =====

#[test]
fn ipv6_with_extension_headers() {
    let mut pkt = Vec::new();
    PacketBuilder::ipv6(
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        64,
    )
    .tcp(443, 50000, 7, 100)
    .syn()
    .write(&mut pkt, b"")
    .unwrap();
    // Insert a hop-by-hop header (next: TCP, length 0, PadN of 4) after the fixed header.
    pkt[6] = 0;
    let plen = u16::from_be_bytes([pkt[4], pkt[5]]) + 8;
    pkt[4..6].copy_from_slice(&plen.to_be_bytes());
    pkt.splice(40..40, [6, 0, 1, 4, 0, 0, 0, 0]);
    let mut d = decoder();
    let framed = ether(0x86DD, &pkt);
    let seg = d.decode(&frame(LinkType::ETHERNET, &framed)).unwrap();
    assert_eq!(seg.src, "[2001:db8::1]:443".parse::<SocketAddr>().unwrap());
    assert_eq!(seg.dst, "[2001:db8::2]:50000".parse::<SocketAddr>().unwrap());
    assert!(seg.flags.syn && !seg.flags.ack);
    assert_eq!(seg.seq, 7);
}

// ===== lengths: snaplen, offload, lies =====

#[test]
fn snaplen_truncation_reports_missing_bytes() {
    let body = vec![b'a'; 100];
    let full = ether(0x0800, &ipv4_tcp(&body));
    let cut = &full[..14 + 20 + 20 + 30];
    let mut d = decoder();
    let f = Frame { orig_len: full.len() as u32, ..frame(LinkType::ETHERNET, cut) };
    let seg = d.decode(&f).unwrap();
    assert_eq!((seg.payload.len(), seg.missing), (30, 70));
    assert_eq!(d.stats().snaplen_truncated_segments, 1);

    // The TCP header itself cut off: dropped and counted.
    let f = Frame { orig_len: full.len() as u32, ..frame(LinkType::ETHERNET, &full[..14 + 20 + 10]) };
    assert!(d.decode(&f).is_none());
    assert_eq!(d.stats().truncated_tcp_header, 1);
}

#[test]
fn tso_super_segment_with_zero_total_length_is_kept() {
    let body = vec![b'z'; 3000];
    let mut pkt = ipv4_tcp(&body);
    pkt[2..4].copy_from_slice(&[0, 0]);
    let mut d = decoder();
    let seg = d.decode(&frame(LinkType::RAW, &pkt)).unwrap();
    assert_eq!((seg.payload.len(), seg.missing), (3000, 0));
    assert_eq!(d.stats().ipv4_length_from_capture, 1);
}

#[test]
fn ip_length_beyond_a_complete_frame_invents_no_gap() {
    let mut pkt = ipv4_tcp(PAYLOAD);
    let total = u16::from_be_bytes([pkt[2], pkt[3]]) + 500;
    pkt[2..4].copy_from_slice(&total.to_be_bytes());
    let mut d = decoder();
    let seg = d.decode(&frame(LinkType::RAW, &pkt)).unwrap();
    assert_eq!((seg.payload, seg.missing), (PAYLOAD, 0));
    assert_eq!(d.stats().ip_length_exceeds_capture, 1);
}

// ===== fragments =====

/// IPv4 fragments of `ipv4_tcp(body)`'s payload, 24 bytes each (the last one shorter).
fn v4_fragments(body: &[u8], id: u16) -> Vec<Vec<u8>> {
    let whole = ipv4_tcp(body);
    let l4 = &whole[20..];
    l4.chunks(24)
        .enumerate()
        .map(|(i, chunk)| {
            let mut h = Ipv4Header::new(chunk.len() as u16, 64, IpNumber::TCP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
            h.identification = id;
            h.fragment_offset = IpFragOffset::try_new((i * 3) as u16).unwrap();
            h.more_fragments = (i + 1) * 24 < l4.len();
            let mut out = Vec::new();
            h.write(&mut out).unwrap();
            out.extend_from_slice(chunk);
            out
        })
        .collect()
}

#[test]
fn ipv4_fragments_in_order_and_out_of_order() {
    let body: Vec<u8> = (0..70u8).collect();
    for order in [vec![0, 1, 2, 3], vec![3, 1, 0, 2], vec![2, 3, 1, 0]] {
        let frags = v4_fragments(&body, 9);
        assert_eq!(frags.len(), 4);
        let mut d = decoder();
        for (n, &i) in order.iter().enumerate() {
            let out = d.decode(&frame(LinkType::RAW, &frags[i])).map(|s| (s.payload.to_vec(), s.seq, s.src));
            if n + 1 < order.len() {
                assert!(out.is_none(), "order {order:?}: early completion");
            } else {
                let (payload, seq, src) = out.unwrap_or_else(|| panic!("order {order:?}: {:?}", d.stats()));
                assert_eq!((payload, seq), (body.clone(), 1000));
                assert_eq!(src, "10.0.0.1:40000".parse::<SocketAddr>().unwrap());
            }
        }
        assert_eq!((d.stats().fragments, d.stats().fragments_reassembled), (4, 1));
    }
}

#[test]
fn ipv6_fragments() {
    let mut whole = Vec::new();
    PacketBuilder::ipv6([1; 16], [2; 16], 64).tcp(8080, 9090, 5, 100).write(&mut whole, &[7u8; 50]).unwrap();
    let l4 = whole[40..].to_vec();
    let (a, b) = l4.split_at(32);
    let frag = |offset: u16, more: bool, data: &[u8]| {
        let mut p = whole[..40].to_vec();
        p[6] = 44; // fragment header
        p[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[6, 0]);
        p.extend_from_slice(&((offset / 8) << 3 | u16::from(more)).to_be_bytes());
        p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        p.extend_from_slice(data);
        p
    };
    let (f1, f2) = (frag(0, true, a), frag(32, false, b));
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::IPV6, &f2)).is_none());
    assert_eq!(d.stats().fragments, 1, "{:?}", d.stats());
    let seg = d.decode(&frame(LinkType::IPV6, &f1)).unwrap();
    assert_eq!((seg.payload, seg.seq, seg.dst.port()), (&[7u8; 50][..], 5, 9090));
}

#[test]
fn truncated_fragment_is_dropped_and_counted() {
    let frags = v4_fragments(&[1u8; 70], 3);
    let mut d = decoder();
    let f = Frame { orig_len: frags[0].len() as u32, ..frame(LinkType::RAW, &frags[0][..30]) };
    assert!(d.decode(&f).is_none());
    assert_eq!(d.stats().fragments_truncated, 1);
}

// ===== tunnels =====

/// An IPv4 header (protocol GRE) in front of `gre` (a GRE header and its payload).
fn gre_outer(gre: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let h = Ipv4Header::new(gre.len() as u16, 64, IpNumber::GRE, [192, 168, 0, 1], [192, 168, 0, 2]).unwrap();
    h.write(&mut out).unwrap();
    out.extend_from_slice(gre);
    out
}

#[test]
fn gre_plain_and_with_key_and_bridged_ethernet() {
    let inner = ipv4_tcp(PAYLOAD);
    let outer = gre_outer;
    let plain = outer(&[&[0, 0, 0x08, 0x00][..], &inner].concat());
    assert_eq!(assert_v4_segment(LinkType::RAW, &plain).gre, 1);
    // Key and sequence number present, payload is an Ethernet frame.
    let keyed = outer(&[&[0x30, 0, 0x65, 0x58, 0, 0, 0, 1, 0, 0, 0, 2][..], &ether(0x0800, &inner)].concat());
    assert_v4_segment(LinkType::RAW, &keyed);
    // Version 1 (PPTP) is not followed.
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::RAW, &outer(&[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0]))).is_none());
    assert_eq!(d.stats().gre_unsupported, 1);
}

#[test]
fn aruba_gre_with_80211_data_frames() {
    // Wireless controllers tunnel client traffic as GRE type 0x8200 around IEEE 802.11 data frames with LLC/SNAP.
    let inner = ipv4_tcp(PAYLOAD);
    let outer = gre_outer;
    let snap = [0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
    let addrs = [0x11u8; 18];
    // QoS data, To DS: frame control 0x88 0x01, duration, 3 addresses, sequence control, QoS control.
    let qos = [&[0x88, 0x01, 0, 0][..], &addrs, &[0x80, 0x7d], &[0, 0], &snap, &inner].concat();
    let stats = assert_v4_segment(LinkType::RAW, &outer(&[&[0, 0, 0x82, 0x00][..], &qos].concat()));
    assert_eq!(stats.gre, 1);
    // Plain data, To DS and From DS (four addresses).
    let wds = [&[0x08, 0x03, 0, 0][..], &addrs, &[0, 0], &[0x22; 6], &snap, &inner].concat();
    assert_v4_segment(LinkType::RAW, &outer(&[&[0, 0, 0x82, 0x00][..], &wds].concat()));
    // A protected (encrypted) data frame cannot be decoded: counted, not guessed.
    let protected = [&[0x88, 0x41, 0, 0][..], &addrs, &[0, 0], &[0, 0], &snap, &inner].concat();
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::RAW, &outer(&[&[0, 0, 0x82, 0x00][..], &protected].concat()))).is_none());
    assert_eq!(d.stats().non_ip, 1);
    // Cut before the SNAP header.
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::RAW, &outer(&[0, 0, 0x82, 0x00, 0x88, 0x01, 0, 0]))).is_none());
    assert_eq!(d.stats().truncated_80211, 1);
}

#[test]
fn vxlan_and_mpls() {
    let inner = ether(0x0800, &ipv4_tcp(PAYLOAD));
    let mut pkt = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64)
        .udp(5555, 4789)
        .write(&mut pkt, &[&[0x08, 0, 0, 0, 0, 0, 1, 0][..], &inner].concat())
        .unwrap();
    assert_eq!(assert_v4_segment(LinkType::ETHERNET, &pkt).vxlan, 1);

    // Two MPLS labels (the second with bottom-of-stack), then IPv4.
    let mpls = [&[0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40][..], &ipv4_tcp(PAYLOAD)].concat();
    assert_eq!(assert_v4_segment(LinkType::ETHERNET, &ether(0x8847, &mpls)).mpls, 1);
    // A label stack that never ends.
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::ETHERNET, &ether(0x8847, &[0, 1, 0, 0x40]))).is_none());
    assert_eq!(d.stats().truncated_mpls, 1);
}

#[test]
fn linux_arcnet_rfc1051_and_rfc1201() {
    // Source 0x01, destination 0x02, offset 0, then protocol 240 (RFC 1051 IP): a 5-byte header.
    let old = [&[0x01, 0x02, 0x00, 0x00, 240][..], &ipv4_tcp(PAYLOAD)].concat();
    assert_v4_segment(LinkType(129), &old);
    // Protocol 212 (RFC 1201 IP), split flag 0 and a sequence number: an 8-byte header.
    let new = [&[0x01, 0x02, 0x00, 0x00, 212, 0x00, 0x12, 0x34][..], &ipv4_tcp(PAYLOAD)].concat();
    assert_v4_segment(LinkType(129), &new);

    let mut d = decoder();
    let split = [&[0x01, 0x02, 0x00, 0x00, 212, 0x03, 0x12, 0x34][..], &ipv4_tcp(PAYLOAD)].concat();
    assert!(d.decode(&frame(LinkType(129), &split)).is_none());
    assert!(d.decode(&frame(LinkType(129), &[0x01, 0x02, 0x00, 0x00, 241, 0, 1])).is_none(), "RFC 1051 ARP");
    assert!(d.decode(&frame(LinkType(129), &[0x01, 0x02, 0x00])).is_none());
    assert!(d.decode(&frame(LinkType(129), &[0x01, 0x02, 0x00, 0x00, 212, 0x00])).is_none());
    let s = d.stats();
    assert_eq!((s.arcnet_split_packets, s.non_ip, s.truncated_link_header), (1, 1, 2));
}

/// An AYIYA header: identity length 2^idlen bytes, signature 4*siglen bytes, opcode 1 (forward), next header.
fn ayiya(idlen: u8, siglen: u8, next: u8, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![idlen << 4 | 1, siglen << 4 | 2, 0x10 | 1, next, 0, 0, 0, 7];
    out.extend(std::iter::repeat_n(0xAA, 1 << idlen));
    out.extend(std::iter::repeat_n(0xBB, 4 * usize::from(siglen)));
    out.extend_from_slice(inner);
    out
}

#[test]
fn ayiya_in_both_directions() {
    for (src, dst) in [(40001, 5072), (5072, 40001)] {
        let mut pkt = Vec::new();
        PacketBuilder::ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64)
            .udp(src, dst)
            .write(&mut pkt, &ayiya(4, 5, 4, &ipv4_tcp(PAYLOAD)))
            .unwrap();
        assert_eq!(assert_v4_segment(LinkType::RAW, &pkt).vxlan, 1);
    }
    let mut d = decoder();
    for inner in [ayiya(4, 5, 4, &[]), ayiya(4, 5, 59, b"other")] {
        let mut pkt = Vec::new();
        PacketBuilder::ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64).udp(40001, 5072).write(&mut pkt, &inner).unwrap();
        assert!(d.decode(&frame(LinkType::RAW, &pkt)).is_none());
    }
    let mut cut = Vec::new();
    PacketBuilder::ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64)
        .udp(40001, 5072)
        .write(&mut cut, &[0x41, 0x52, 0x11])
        .unwrap();
    assert!(d.decode(&frame(LinkType::RAW, &cut)).is_none());
    let s = d.stats();
    assert_eq!((s.bad_ip_version + s.truncated_ip_header, s.udp, s.bad_vxlan), (1, 1, 1), "{s:?}");
}

// ===== non-TCP and garbage =====

#[test]
fn non_tcp_is_counted_by_kind() {
    let mut d = decoder();
    let mut udp = Vec::new();
    PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9).udp(53, 53).write(&mut udp, b"dns").unwrap();
    let mut icmp = Vec::new();
    PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9).icmpv4_echo_request(1, 1).write(&mut icmp, b"").unwrap();
    assert!(d.decode(&frame(LinkType::RAW, &udp)).is_none());
    assert!(d.decode(&frame(LinkType::RAW, &icmp)).is_none());
    assert!(d.decode(&frame(LinkType::ETHERNET, &ether(0x0806, &[0; 28]))).is_none());
    assert!(d.decode(&frame(LinkType::ETHERNET, &ether(0x88cc, &[0; 28]))).is_none());
    assert!(d.decode(&frame(LinkType(147), &[0; 40])).is_none());
    let s = d.stats();
    assert_eq!((s.udp, s.icmp, s.arp, s.non_ip, s.unknown_link_type), (1, 1, 1, 1, 1));
    assert_eq!(s.tcp_segments, 0);
}

#[test]
fn garbage_is_counted_under_named_anomalies() {
    let mut d = decoder();
    assert!(d.decode(&frame(LinkType::ETHERNET, &[0; 10])).is_none());
    assert_eq!(d.stats().truncated_ethernet, 1);
    // IHL 3.
    let mut bad = ipv4_tcp(PAYLOAD);
    bad[0] = 0x43;
    assert!(d.decode(&frame(LinkType::RAW, &bad)).is_none());
    assert_eq!(d.stats().bad_ip_header, 1);
    assert!(d.decode(&frame(LinkType::RAW, &bad[..0])).is_none());
    assert!(d.decode(&frame(LinkType::RAW, &[0x45, 0, 0])).is_none());
    assert_eq!(d.stats().truncated_ip_header, 2);
    // TCP data offset 2.
    let mut bad = ipv4_tcp(PAYLOAD);
    bad[20 + 12] = 0x20;
    assert!(d.decode(&frame(LinkType::RAW, &bad)).is_none());
    assert_eq!(d.stats().bad_tcp_header, 1);
    assert_eq!(d.stats().anomalies(), 5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200), link in 0usize..12) {
        let links = [0, 1, 12, 101, 104, 108, 113, 228, 229, 239, 276, 9999];
        let mut d = decoder();
        let f = Frame { orig_len: data.len() as u32 + 10, ..frame(LinkType(links[link]), &data) };
        let _ = d.decode(&f);
    }

    #[test]
    fn mutated_packets_never_panic(at in 0usize..120, value in any::<u8>(), cut in 0usize..120) {
        let mut pkt = ether(0x0800, &ipv4_tcp(PAYLOAD));
        let n = pkt.len();
        pkt[at % n] = value;
        pkt.truncate(cut.max(1).min(n));
        let mut d = decoder();
        if let Some(seg) = d.decode(&frame(LinkType::ETHERNET, &pkt)) {
            prop_assert!(seg.payload.len() <= pkt.len());
        }
    }
}

// ===== real captures =====

/// Decodes a corpus file, or `None` (with a printed reason) when it is absent.
fn decode_corpus(rel: &str) -> Option<DecodeStats> {
    let path = Path::new("/work/shared/corpus").join(rel);
    if !path.exists() {
        eprintln!("skipped: {} is absent", path.display());
        return None;
    }
    let mut src = PcapSource::open(&path).unwrap();
    let mut d = decoder();
    while let Some(f) = src.next_frame().unwrap() {
        let _ = d.decode(&f);
    }
    Some(d.stats().clone())
}

#[test]
fn corpus_link_types_and_tunnels_decode_like_tshark() {
    // (file, frames, TCP segments): the counts are `tshark -r FILE | wc -l` and `tshark -r FILE -Y tcp | wc -l`
    // (tshark 4.0.17); a reassembled datagram is one segment, on the frame that completes it, as in tshark.
    for (rel, frames, tcp) in [
        ("filesamples/simple_http_sll2.pcap", 24, 24),
        ("pcap_file_ex/sample_multi_nanosecond.pcapng", 50, 50),
        ("zeek/http-qinq-0.pcap", 14, 14),
        ("zeek/mixed-vlan-mpls.pcap", 47, 47),
        ("zeek/nflog-http.pcap", 13, 13),
        ("zeek/tunnels/vxlan-encapsulated-http.pcap", 12, 12),
        ("suricata-verify/vxlan-non-zero-reserved-fields/input.pcap", 10, 10),
        ("zeek/tunnels/gre-over-udp-4754.pcap", 14, 10),
        ("suricata-verify/bug-4810/pppoe-session-http.pcap", 30, 30),
        ("zeek/conn-size.pcap", 21, 12),
        ("zeek/tunnels/gtp/gtp1_gn_normal_incl_fragmentation.pcap", 108, 68),
    ] {
        let Some(s) = decode_corpus(rel) else {
            continue;
        };
        assert_eq!((s.frames, s.tcp_segments), (frames, tcp), "{rel}: {s:?}");
        assert_eq!(s.anomalies(), 0, "{rel}: {s:?}");
    }
}

/// Reads and decodes every capture of the corpus, printing damage and anomalies per file. Run by hand:
/// `cargo test -p agent --lib corpus_sweep -- --ignored --nocapture`.
#[test]
#[ignore = "reads the whole shared corpus"]
fn corpus_sweep() {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng" || x == "cap") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new("/work/shared/corpus"), &mut files);
    files.sort();
    for path in files {
        let mut src = match PcapSource::open(&path) {
            Ok(s) => s,
            Err(e) => {
                println!("OPEN {e}");
                continue;
            }
        };
        let mut d = decoder();
        let err = loop {
            match src.next_frame() {
                Ok(Some(f)) => {
                    let _ = d.decode(&f);
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        let s = d.stats();
        let named: Vec<String> = s.counters()[14..]
            .iter()
            .filter(|(n, v)| *v > 0 && !n.starts_with("fragments") && !n.starts_with("ipv4_length"))
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        if err.is_some() || s.anomalies() > 0 {
            println!(
                "{} frames={} tcp={} {:?} {}",
                path.display(),
                s.frames,
                s.tcp_segments,
                err.map(|e| e.to_string()),
                named.join(" ")
            );
        }
    }
}
