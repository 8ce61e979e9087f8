//! Finding a packet's addresses and TCP ports, reading through a [`Loader`] (in the kernel,
//! `bpf_skb_load_bytes`; in tests, a slice). Only what the filter needs is read: Ethernet with up to two VLAN
//! tags (or a raw IP packet), IPv4 or IPv6 with up to four extension headers, and the TCP ports. Every loop is
//! bounded (the verifier needs it) and every read is checked (a short packet is simply not TCP).

use crate::maps::LINK_RAW;

/// Reads `N` bytes at `offset` of the packet, `None` past its end.
pub trait Loader {
    /// The bytes at `offset..offset + N`.
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;
}

impl Loader for [u8] {
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.get(offset..offset.checked_add(N)?)?.try_into().ok()
    }
}

/// A TCP packet's addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addrs {
    /// IPv4 source and destination.
    V4([u8; 4], [u8; 4]),
    /// IPv6 source and destination.
    V6([u8; 16], [u8; 16]),
}

/// What the filter looks at in a TCP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFlow {
    /// Source and destination addresses.
    pub addrs: Addrs,
    /// Source and destination ports; `None` for a fragment after the first (it carries no TCP header).
    pub ports: Option<(u16, u16)>,
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;

fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// The TCP flow of a packet, or `None` when it is not TCP over IPv4/IPv6 or is too short to tell. `link` is a
/// `LINK_*` value from [`crate::maps`].
#[inline(always)]
pub fn tcp_flow<L: Loader + ?Sized>(pkt: &L, link: u64) -> Option<TcpFlow> {
    let (l3, ethertype) = if link == LINK_RAW {
        let v = pkt.load::<1>(0)?[0] >> 4;
        (0, if v == 6 { ETH_P_IPV6 } else { ETH_P_IP })
    } else {
        let mut off = 12usize;
        let mut et = be16(pkt.load::<2>(off)?);
        // 802.1Q, 802.1ad and the old QinQ type: at most two tags.
        let mut tags = 0;
        while tags < 2 && (et == 0x8100 || et == 0x88a8 || et == 0x9100) {
            off += 4;
            et = be16(pkt.load::<2>(off)?);
            tags += 1;
        }
        (off + 2, et)
    };
    match ethertype {
        ETH_P_IP => ipv4(pkt, l3),
        ETH_P_IPV6 => ipv6(pkt, l3),
        _ => None,
    }
}

#[inline(always)]
fn ipv4<L: Loader + ?Sized>(pkt: &L, l3: usize) -> Option<TcpFlow> {
    let h = pkt.load::<20>(l3)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || ihl < 20 || h[9] != IPPROTO_TCP {
        return None;
    }
    let addrs = Addrs::V4([h[12], h[13], h[14], h[15]], [h[16], h[17], h[18], h[19]]);
    let fragment_offset = be16([h[6], h[7]]) & 0x1fff;
    let ports = if fragment_offset != 0 { None } else { Some(ports(pkt.load::<4>(l3 + ihl)?)) };
    Some(TcpFlow { addrs, ports })
}

#[inline(always)]
fn ipv6<L: Loader + ?Sized>(pkt: &L, l3: usize) -> Option<TcpFlow> {
    let h = pkt.load::<40>(l3)?;
    if h[0] >> 4 != 6 {
        return None;
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    let mut next = h[6];
    let mut off = l3 + 40;
    let mut later_fragment = false;
    let mut hops = 0;
    while next != IPPROTO_TCP && hops < 4 {
        match next {
            // Hop-by-hop options, routing, destination options: length in 8-byte units after the first 8.
            0 | 43 | 60 => {
                let e = pkt.load::<2>(off)?;
                next = e[0];
                off += (usize::from(e[1]) + 1) * 8;
            }
            // Fragment header: 8 bytes; a non-zero offset means no TCP header follows.
            44 => {
                let e = pkt.load::<4>(off)?;
                next = e[0];
                later_fragment = be16([e[2], e[3]]) >> 3 != 0;
                off += 8;
            }
            _ => return None,
        }
        hops += 1;
    }
    if next != IPPROTO_TCP {
        return None;
    }
    let ports = if later_fragment { None } else { Some(ports(pkt.load::<4>(off)?)) };
    Some(TcpFlow { addrs: Addrs::V6(src, dst), ports })
}

fn ports(b: [u8; 4]) -> (u16, u16) {
    (be16([b[0], b[1]]), be16([b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use etherparse::{IpNumber, PacketBuilder};

    use super::*;
    use crate::maps::LINK_ETHERNET;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(MAC, MAC).ipv4(src, dst, 64).tcp(sport, dport, 1, 1000);
        let mut out = Vec::new();
        b.write(&mut out, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        out
    }

    #[test]
    fn ipv4_tcp_over_ethernet() {
        let p = tcp4([10, 0, 0, 1], [10, 0, 0, 2], 40_000, 80);
        let f = tcp_flow(&p[..], LINK_ETHERNET).unwrap();
        assert_eq!(f.addrs, Addrs::V4([10, 0, 0, 1], [10, 0, 0, 2]));
        assert_eq!(f.ports, Some((40_000, 80)));
        // The same packet without its Ethernet header, as a raw-IP interface delivers it.
        let f = tcp_flow(&p[14..], LINK_RAW).unwrap();
        assert_eq!(f.ports, Some((40_000, 80)));
    }

    #[test]
    fn ipv4_options_move_the_tcp_header() {
        let b = PacketBuilder::ethernet2(MAC, MAC).ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64).tcp(1234, 8080, 1, 1000);
        let mut p = Vec::new();
        b.write(&mut p, b"x").unwrap();
        // Insert 8 bytes of options (NOPs) by hand: IHL 5 -> 7.
        p.splice(34..34, [1u8; 8]);
        p[14] = 0x47;
        let f = tcp_flow(&p[..], LINK_ETHERNET).unwrap();
        assert_eq!(f.ports, Some((1234, 8080)));
    }

    #[test]
    fn ipv6_tcp_with_vlan_tags_and_extension_headers() {
        let src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let b = PacketBuilder::ethernet2(MAC, MAC)
            .single_vlan(100.try_into().unwrap())
            .ipv6(src, dst, 64)
            .tcp(5555, 443, 1, 1000);
        let mut p = Vec::new();
        b.write(&mut p, b"hello").unwrap();
        let f = tcp_flow(&p[..], LINK_ETHERNET).unwrap();
        assert_eq!(f.addrs, Addrs::V6(src, dst));
        assert_eq!(f.ports, Some((5555, 443)));
        // Insert a hop-by-hop options header (8 bytes) between IPv6 (at 18) and TCP (at 58).
        let l3 = 18;
        p[l3 + 6] = 0;
        p.splice(l3 + 40..l3 + 40, [6u8, 0, 1, 4, 0, 0, 0, 0]);
        let f = tcp_flow(&p[..], LINK_ETHERNET).unwrap();
        assert_eq!(f.ports, Some((5555, 443)));
    }

    #[test]
    fn later_fragments_have_addresses_but_no_ports() {
        let mut p = tcp4([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        // Fragment offset 185 (x8 bytes), no more fragments.
        p[20] = 0x00;
        p[21] = 185;
        let f = tcp_flow(&p[..], LINK_ETHERNET).unwrap();
        assert_eq!(f.ports, None);
        assert_eq!(f.addrs, Addrs::V4([10, 0, 0, 1], [10, 0, 0, 2]));
    }

    #[test]
    fn not_tcp_or_too_short_is_none() {
        let b = PacketBuilder::ethernet2(MAC, MAC).ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64).udp(53, 53);
        let mut udp = Vec::new();
        b.write(&mut udp, b"q").unwrap();
        assert_eq!(tcp_flow(&udp[..], LINK_ETHERNET), None);
        let icmp6 = PacketBuilder::ethernet2(MAC, MAC).ipv6([1; 16], [2; 16], 64);
        let mut p = Vec::new();
        icmp6.write(&mut p, IpNumber::IPV6_ICMP, b"ping").unwrap();
        assert_eq!(tcp_flow(&p[..], LINK_ETHERNET), None);
        let tcp = tcp4([10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
        for cut in [0, 13, 14, 33, 35] {
            assert_eq!(tcp_flow(&tcp[..cut], LINK_ETHERNET), None, "cut at {cut}");
        }
        // ARP.
        let mut arp = tcp.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(tcp_flow(&arp[..], LINK_ETHERNET), None);
        // An IPv4 header length below 20 bytes is nonsense.
        let mut bad = tcp.clone();
        bad[14] = 0x44;
        assert_eq!(tcp_flow(&bad[..], LINK_ETHERNET), None);
    }
}
