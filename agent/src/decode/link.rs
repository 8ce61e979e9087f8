//! Link layers: Ethernet II (802.1Q, 802.1ad, QinQ tags), Linux cooked SLL and SLL2, raw IP (101, 12, 14, 228,
//! 229), BSD null/loop (either byte order of the family field), Cisco HDLC, NFLOG, Linux ARCNET; and the EtherType dispatch
//! shared with tunnels (MPLS, PPPoE session, transparent Ethernet bridging).

use super::walk::{Outcome, Walker, be16};
use crate::source::LinkType;

/// EtherTypes the decoder follows.
mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86DD;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88A8;
    pub const QINQ_OLD1: u16 = 0x9100;
    pub const QINQ_OLD2: u16 = 0x9200;
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const TRANSPARENT_ETHERNET: u16 = 0x6558;
}

/// Stacked VLAN tags followed.
const MAX_VLAN_TAGS: u32 = 8;
/// MPLS labels followed.
const MAX_MPLS_LABELS: usize = 16;

impl Walker<'_> {
    /// Decodes a frame of the given link type.
    pub(crate) fn link<'p>(&mut self, link: LinkType, data: &'p [u8]) -> Outcome<'p> {
        match link.0 {
            1 => self.ethernet(data),
            0 | 108 => self.loopback(data),
            101 | 12 | 14 => self.ip(data, None),
            228 => self.ip(data, Some(4)),
            229 => self.ip(data, Some(6)),
            113 => self.sll(data),
            276 => self.sll2(data),
            104 => self.chdlc(data),
            239 => self.nflog(data),
            129 => self.arcnet_linux(data),
            _ => {
                self.stats.unknown_link_type += 1;
                Outcome::Skip
            }
        }
    }

    /// Ethernet II.
    pub(crate) fn ethernet<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 14 {
            self.stats.truncated_ethernet += 1;
            return Outcome::Skip;
        }
        self.ethertype(be16(data, 12), &data[14..])
    }

    /// A payload announced by an EtherType, after stripping VLAN tags.
    pub(crate) fn ethertype<'p>(&mut self, mut et: u16, mut data: &'p [u8]) -> Outcome<'p> {
        let mut tags = 0;
        while matches!(et, ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD1 | ethertype::QINQ_OLD2) {
            if tags == MAX_VLAN_TAGS {
                self.stats.too_many_vlan_tags += 1;
                return Outcome::Skip;
            }
            if data.len() < 4 {
                self.stats.truncated_vlan += 1;
                return Outcome::Skip;
            }
            et = be16(data, 2);
            data = &data[4..];
            tags += 1;
            self.stats.vlan_tags += 1;
        }
        if et < 0x0600 {
            // IEEE 802.3: the field is a length and an 802.2 LLC header follows; with SNAP (AA AA 03, OUI 0) the
            // real EtherType comes after the OUI (RFC 1042).
            return match data.get(..8) {
                Some(snap) if snap[..6] == [0xaa, 0xaa, 0x03, 0, 0, 0] => {
                    let len = usize::from(et).min(data.len()).max(8);
                    self.ethertype(be16(snap, 6), &data[8..len])
                }
                _ => {
                    self.stats.non_ip += 1;
                    Outcome::Skip
                }
            };
        }
        match et {
            ethertype::IPV4 => self.ip(data, Some(4)),
            ethertype::IPV6 => self.ip(data, Some(6)),
            ethertype::ARP => {
                self.stats.arp += 1;
                Outcome::Skip
            }
            ethertype::MPLS | ethertype::MPLS_MULTICAST => self.mpls(data),
            ethertype::PPPOE_SESSION => self.pppoe(data),
            ethertype::TRANSPARENT_ETHERNET => {
                if !self.deeper() {
                    return Outcome::Skip;
                }
                self.ethernet(data)
            }
            _ => {
                self.stats.non_ip += 1;
                Outcome::Skip
            }
        }
    }

    /// An MPLS label stack (RFC 3032), then IPv4, IPv6, or Ethernet behind a pseudo-wire control word (RFC 4448).
    fn mpls<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        let mut at = 0;
        loop {
            if data.len() < at + 4 || at / 4 >= MAX_MPLS_LABELS {
                self.stats.truncated_mpls += 1;
                return Outcome::Skip;
            }
            let bottom = data[at + 2] & 1 == 1;
            at += 4;
            if bottom {
                break;
            }
        }
        self.stats.mpls += 1;
        let rest = &data[at..];
        match rest.first().map(|b| b >> 4) {
            Some(4) => self.ip(rest, Some(4)),
            Some(6) => self.ip(rest, Some(6)),
            Some(0) if rest.len() >= 4 => {
                if !self.deeper() {
                    return Outcome::Skip;
                }
                self.ethernet(&rest[4..])
            }
            _ => {
                self.stats.mpls_unknown_payload += 1;
                Outcome::Skip
            }
        }
    }

    /// Linux ARCNET (link type 129): source and destination station, a 2-byte offset, then the protocol ID. The
    /// RFC 1051 protocols (240 IP, 241 ARP) and diagnostics end the header there; the RFC 1201 ones (212 IP,
    /// 0xC4 IPv6, ...) add a split flag and a sequence number. A split flag other than 0 is a link-layer fragment
    /// (not reassembled here; counted).
    fn arcnet_linux<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        let Some(&protocol) = data.get(4) else {
            self.stats.truncated_link_header += 1;
            return Outcome::Skip;
        };
        let (header, version) = match protocol {
            240 => (5, 4),
            212 => (8, 4),
            0xC4 => (8, 6),
            _ => {
                self.stats.non_ip += 1;
                return Outcome::Skip;
            }
        };
        if data.len() < header {
            self.stats.truncated_link_header += 1;
            return Outcome::Skip;
        }
        if header == 8 && data[5] != 0 {
            self.stats.arcnet_split_packets += 1;
            return Outcome::Skip;
        }
        self.ip(&data[header..], Some(version))
    }

    /// A PPPoE session header (RFC 2516) and the PPP protocol field, which may be compressed to one byte
    /// (RFC 1661 §6.5: an odd first byte is the whole field).
    fn pppoe<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 7 || data[1] != 0 {
            self.stats.truncated_link_header += 1;
            return Outcome::Skip;
        }
        self.stats.pppoe += 1;
        let (protocol, rest) = if data[6] & 1 == 1 {
            (u16::from(data[6]), &data[7..])
        } else if data.len() >= 8 {
            (be16(data, 6), &data[8..])
        } else {
            self.stats.truncated_link_header += 1;
            return Outcome::Skip;
        };
        match protocol {
            0x0021 => self.ip(rest, Some(4)),
            0x0057 => self.ip(rest, Some(6)),
            _ => {
                self.stats.non_ip += 1;
                Outcome::Skip
            }
        }
    }

    /// BSD null/loop: a 4-byte address family, in host (null) or network (loop) order; both are accepted.
    fn loopback<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 4 {
            self.stats.truncated_link_header += 1;
            return Outcome::Skip;
        }
        let raw = [data[0], data[1], data[2], data[3]];
        let le = u32::from_le_bytes(raw);
        let family = if le <= 0xFFFF { le } else { u32::from_be_bytes(raw) };
        match family {
            2 => self.ip(&data[4..], Some(4)),
            // AF_INET6: Linux 10, Windows 23, NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30.
            10 | 23 | 24 | 28 | 30 => self.ip(&data[4..], Some(6)),
            _ => {
                self.stats.unknown_address_family += 1;
                Outcome::Skip
            }
        }
    }

    /// Linux cooked capture v1: 16 bytes, the protocol in the last two.
    fn sll<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 16 {
            self.stats.truncated_sll += 1;
            return Outcome::Skip;
        }
        self.cooked(be16(data, 2), be16(data, 14), &data[16..])
    }

    /// Linux cooked capture v2: 20 bytes, the protocol in the first two, the ARPHRD type at 8.
    fn sll2<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 20 {
            self.stats.truncated_sll += 1;
            return Outcome::Skip;
        }
        self.cooked(be16(data, 8), be16(data, 0), &data[20..])
    }

    fn cooked<'p>(&mut self, arphrd: u16, protocol: u16, payload: &'p [u8]) -> Outcome<'p> {
        // ARPHRD_NETLINK carries netlink messages; protocols below 0x0600 are 802.3/LLC/CAN pseudo-types.
        if arphrd == 824 || protocol < 0x0600 {
            self.stats.non_ip += 1;
            return Outcome::Skip;
        }
        self.ethertype(protocol, payload)
    }

    /// Cisco HDLC: address, control, then an EtherType.
    fn chdlc<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 4 {
            self.stats.truncated_link_header += 1;
            return Outcome::Skip;
        }
        self.ethertype(be16(data, 2), &data[4..])
    }

    /// Linux NFLOG: a 4-byte header, then TLVs (length and type in host order, little-endian assumed) of which
    /// type 9 (NFULA_PAYLOAD) holds the IP packet.
    fn nflog<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 4 {
            self.stats.truncated_link_header += 1;
            return Outcome::Skip;
        }
        let version = match data[0] {
            2 => 4,
            10 => 6,
            _ => {
                self.stats.unknown_address_family += 1;
                return Outcome::Skip;
            }
        };
        let mut rest = &data[4..];
        while rest.len() >= 4 {
            let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            let kind = u16::from_le_bytes([rest[2], rest[3]]);
            if len < 4 {
                break;
            }
            if kind == 9 {
                return self.ip(&rest[4..len.min(rest.len())], Some(version));
            }
            let padded = (len + 3) & !3;
            if padded >= rest.len() {
                break;
            }
            rest = &rest[padded..];
        }
        self.stats.truncated_link_header += 1;
        Outcome::Skip
    }
}
