//! Tunnels decapsulated to reach an inner TCP packet: GRE (RFC 2784/2890, with ERSPAN types I-III), VXLAN
//! (RFC 7348) and Geneve (RFC 8926). MPLS, PPPoE and IP-in-IP are in the link and IP layers.

use super::walk::{Outcome, Walker, be16};

/// GRE protocol types with an ERSPAN header before the mirrored Ethernet frame.
const ERSPAN_II: u16 = 0x88BE;
const ERSPAN_III: u16 = 0x22EB;

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
                let Some(&flags3) = rest.get(11) else { return self.truncated_gre() };
                let skip = if flags3 & 0x01 != 0 { 20 } else { 12 };
                match rest.get(skip..) {
                    Some(inner) => self.ethernet(inner),
                    None => self.truncated_gre(),
                }
            }
            _ => self.ethertype(proto, rest),
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
}
