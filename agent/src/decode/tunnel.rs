//! Tunnels decapsulated to reach an inner TCP packet: GRE (RFC 2784/2890, with ERSPAN types I-III), VXLAN
//! (RFC 7348), Geneve (RFC 8926), GTP-U (3GPP TS 29.281) and AYIYA. MPLS, PPPoE and IP-in-IP are in the link and
//! IP layers.

use super::walk::{Outcome, Walker, be16};

/// GRE protocol types with an ERSPAN header before the mirrored Ethernet frame.
const ERSPAN_II: u16 = 0x88BE;
const ERSPAN_III: u16 = 0x22EB;
/// GRE protocol types of Aruba wireless controllers: an IEEE 802.11 frame follows (the AP tunnels client traffic).
const ARUBA_WLAN: u16 = 0x8200;
const ARUBA_WLAN_ALT: u16 = 0x8210;

impl Walker<'_> {
    /// A GRE header (version 0), then its payload by protocol type.
    pub(crate) fn gre<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 4 {
            self.stats.truncated_gre += 1;
            return Outcome::Skip;
        }
        let flags = be16(data, 0);
        let proto = be16(data, 2);
        // Version (low 3 bits) must be 0; the routing bit is deprecated (RFC 2784) and not followed.
        if flags & 0x7 != 0 || flags & 0x4000 != 0 {
            self.stats.gre_unsupported += 1;
            return Outcome::Skip;
        }
        let has_seq = flags & 0x1000 != 0;
        let len = 4 + 4 * (usize::from(flags & 0x8000 != 0) + usize::from(flags & 0x2000 != 0) + usize::from(has_seq));
        if data.len() < len {
            self.stats.truncated_gre += 1;
            return Outcome::Skip;
        }
        if !self.deeper() {
            return Outcome::Skip;
        }
        self.stats.gre += 1;
        let rest = &data[len..];
        match proto {
            // ERSPAN type I has no sequence number and no ERSPAN header; type II has both (8-byte header).
            ERSPAN_II if !has_seq => self.ethernet(rest),
            ERSPAN_II => match rest.get(8..) {
                Some(inner) => self.ethernet(inner),
                None => self.truncated_gre(),
            },
            // ERSPAN type III: 12 bytes, plus an 8-byte platform subheader when the O flag is set.
            ERSPAN_III => {
                let Some(&flags3) = rest.get(11) else {
                    return self.truncated_gre();
                };
                let skip = if flags3 & 0x01 != 0 { 20 } else { 12 };
                match rest.get(skip..) {
                    Some(inner) => self.ethernet(inner),
                    None => self.truncated_gre(),
                }
            }
            ARUBA_WLAN | ARUBA_WLAN_ALT => self.ieee80211(rest),
            _ => self.ethertype(proto, rest),
        }
    }

    /// An IEEE 802.11 data frame (IEEE 802.11-2020 §9.3.2.1) carrying LLC/SNAP, as tunnelled by wireless
    /// controllers. Management and control frames, encrypted (protected) frames and frames without SNAP are
    /// counted and skipped.
    pub(crate) fn ieee80211<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        let Some(&fc0) = data.first() else {
            self.stats.truncated_80211 += 1;
            return Outcome::Skip;
        };
        let fc1 = data.get(1).copied().unwrap_or(0);
        let frame_type = (fc0 >> 2) & 0x3;
        let qos = frame_type == 2 && fc0 & 0x80 != 0;
        if frame_type != 2 || fc0 & 0x40 != 0 || fc1 & 0x40 != 0 {
            // Not data, a null-data subtype (no body), or protected: nothing to decode here.
            self.stats.non_ip += 1;
            return Outcome::Skip;
        }
        // Frame control, duration, three addresses, sequence control; a fourth address when both To DS and
        // From DS are set; QoS control for QoS subtypes; HT control when +HTC/Order is set on a QoS frame.
        let mut len = 24;
        if fc1 & 0x03 == 0x03 {
            len += 6;
        }
        if qos {
            len += 2;
            if fc1 & 0x80 != 0 {
                len += 4;
            }
        }
        match data.get(len..len + 8) {
            Some(snap) if snap[..6] == [0xaa, 0xaa, 0x03, 0, 0, 0] => self.ethertype(be16(snap, 6), &data[len + 8..]),
            Some(_) => {
                self.stats.non_ip += 1;
                Outcome::Skip
            }
            None => {
                self.stats.truncated_80211 += 1;
                Outcome::Skip
            }
        }
    }

    fn truncated_gre<'p>(&mut self) -> Outcome<'p> {
        self.stats.truncated_gre += 1;
        Outcome::Skip
    }

    /// A VXLAN header (8 bytes; flags and reserved fields are not checked), then Ethernet.
    pub(crate) fn vxlan<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 8 {
            self.stats.bad_vxlan += 1;
            return Outcome::Skip;
        }
        if !self.deeper() {
            return Outcome::Skip;
        }
        self.stats.vxlan += 1;
        self.ethernet(&data[8..])
    }

    /// A Geneve header (8 bytes plus options), then its payload by protocol type.
    pub(crate) fn geneve<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 8 {
            self.stats.bad_vxlan += 1;
            return Outcome::Skip;
        }
        let len = 8 + 4 * usize::from(data[0] & 0x3f);
        if data.len() < len || data[0] >> 6 != 0 {
            self.stats.bad_vxlan += 1;
            return Outcome::Skip;
        }
        if !self.deeper() {
            return Outcome::Skip;
        }
        self.stats.vxlan += 1;
        self.ethertype(be16(data, 2), &data[len..])
    }

    /// A GTPv1-U header; a G-PDU carries an IP packet, other messages are signalling (counted as UDP).
    pub(crate) fn gtp_u<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 8 || data[0] >> 5 != 1 {
            self.stats.bad_vxlan += 1;
            return Outcome::Skip;
        }
        if data[1] != 0xFF {
            self.stats.udp += 1;
            return Outcome::Skip;
        }
        let mut len = 8;
        if data[0] & 0x07 != 0 {
            len = 12;
            // Extension headers: length in 4-byte units, the next type in the last byte.
            let mut next = if data[0] & 0x04 != 0 { data.get(11).copied() } else { Some(0) };
            while let Some(kind) = next {
                if kind == 0 {
                    break;
                }
                let ext = data.get(len).map_or(0, |&n| usize::from(n) * 4);
                if ext == 0 || data.len() < len + ext {
                    self.stats.bad_vxlan += 1;
                    return Outcome::Skip;
                }
                next = Some(data[len + ext - 1]);
                len += ext;
            }
            if data.len() < len {
                self.stats.bad_vxlan += 1;
                return Outcome::Skip;
            }
        }
        if !self.deeper() {
            return Outcome::Skip;
        }
        self.stats.vxlan += 1;
        self.ip(&data[len..], None)
    }

    /// An AYIYA header: identity and signature lengths in its first two bytes, the operation code (1 forwards a
    /// packet) and the next protocol (IPv6 41, IPv4 4); then the encapsulated packet.
    pub(crate) fn ayiya<'p>(&mut self, data: &'p [u8]) -> Outcome<'p> {
        if data.len() < 8 {
            self.stats.bad_vxlan += 1;
            return Outcome::Skip;
        }
        let identity = 1usize << (data[0] >> 4);
        let signature = 4 * usize::from(data[1] >> 4);
        let len = 8 + identity + signature;
        let version = match data[3] {
            41 => 6,
            4 => 4,
            _ => {
                self.stats.udp += 1;
                return Outcome::Skip;
            }
        };
        if data[2] & 0x0f != 1 {
            self.stats.udp += 1;
            return Outcome::Skip;
        }
        if data.len() < len {
            self.stats.bad_vxlan += 1;
            return Outcome::Skip;
        }
        if !self.deeper() {
            return Outcome::Skip;
        }
        self.stats.vxlan += 1;
        self.ip(&data[len..], Some(version))
    }
}
