//! The network and transport layers: IPv4 and IPv6 (extension headers, via etherparse's lax slices, which accept
//! snaplen-cut packets and offload super-segments), fragments handed to the fragment table, the protocol dispatch
//! (TCP, tunnels, everything else counted by kind) and the TCP header.
//!
//! `missing`: when the capture holds fewer bytes than the IP header declares, the difference is payload the
//! snaplen cut. It is limited by what the frame itself lost on the wire (`orig_len - caplen`), so a lying length
//! field cannot invent a gap. An IPv4 total length of 0 (or below the header length) is a TSO/GSO super-segment:
//! the captured length is used. Checksums are not checked: with offload they are meaningless on the capturing host.

use std::net::{IpAddr, SocketAddr};

use etherparse::err::ip::LaxHeaderSliceError;
use etherparse::err::ipv6_exts::HeaderSliceError;
use etherparse::{IpNumber, Ipv6ExtensionSlice, Ipv6ExtensionsSlice, LaxIpSlice, TcpSlice};

use super::defrag::{FragKey, Fragment};
use super::walk::{Outcome, Walker, be16};
use super::{TcpFlags, TcpSegment};

/// The VXLAN UDP port (RFC 7348).
const VXLAN_PORT: u16 = 4789;
/// The Geneve UDP port (RFC 8926).
const GENEVE_PORT: u16 = 6081;
/// GRE-in-UDP (RFC 8086).
const GRE_UDP_PORT: u16 = 4754;
/// GTP-U (3GPP TS 29.281).
const GTP_U_PORT: u16 = 2152;
/// AYIYA, "Anything In Anything" (draft-massar-v6ops-ayiya), used by tunnel brokers; either port of the datagram.
const AYIYA_PORT: u16 = 5072;

/// Protocols whose fragments are worth reassembling: TCP and what may carry TCP.
fn worth_reassembling(proto: IpNumber) -> bool {
    matches!(
        proto,
        IpNumber::TCP
            | IpNumber::UDP
            | IpNumber::GRE
            | IpNumber::IPV4
            | IpNumber::IPV6
            | IpNumber::IPV6_DESTINATION_OPTIONS
            | IpNumber::IPV6_ROUTE_HEADER
            | IpNumber::AUTHENTICATION_HEADER
    )
}

impl Walker<'_> {
    /// An IP packet; `expect` is the version the enclosing layer announced.
    pub(crate) fn ip<'p>(&mut self, data: &'p [u8], expect: Option<u8>) -> Outcome<'p> {
        let Some(&first) = data.first() else {
            self.stats.truncated_ip_header += 1;
            return Outcome::Skip;
        };
        let version = first >> 4;
        if !(version == 4 || version == 6) || expect.is_some_and(|v| v != version) {
            self.stats.bad_ip_version += 1;
            return Outcome::Skip;
        }
        let ip = match LaxIpSlice::from_slice(data) {
            Ok((ip, None)) => ip,
            Ok((_, Some((HeaderSliceError::Len(_), _)))) | Err(LaxHeaderSliceError::Len(_)) => {
                self.stats.truncated_ip_header += 1;
                return Outcome::Skip;
            }
            Ok((_, Some((HeaderSliceError::Content(_), _)))) => {
                self.stats.bad_ip_extension += 1;
                return Outcome::Skip;
            }
            Err(LaxHeaderSliceError::Content(_)) => {
                self.stats.bad_ip_header += 1;
                return Outcome::Skip;
            }
        };
        let declared = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let total = usize::from(v4.header().total_len());
                if total < v4.header().slice().len() {
                    self.stats.ipv4_length_from_capture += 1;
                    data.len()
                } else {
                    total
                }
            }
            // Payload length 0 is a jumbogram (RFC 2675) or a GSO packet: the captured length is used.
            LaxIpSlice::Ipv6(v6) => match usize::from(v6.header().payload_length()) {
                0 => data.len(),
                n => n + 40,
            },
        };
        let mut missing = u32::try_from(declared.saturating_sub(data.len())).unwrap_or(u32::MAX);
        if missing > self.wire_missing {
            self.stats.ip_length_exceeds_capture += 1;
            missing = self.wire_missing;
        }
        let fragment = match &ip {
            LaxIpSlice::Ipv4(v4) => {
                let h = v4.header();
                let start = h.slice().len();
                let end = if declared < start { data.len() } else { declared.min(data.len()) };
                h.is_fragmenting_payload().then(|| Fragment {
                    key: FragKey {
                        src: h.source_addr().into(),
                        dst: h.destination_addr().into(),
                        id: u32::from(h.identification()),
                        proto: h.protocol().0,
                    },
                    offset: h.fragments_offset(),
                    more: h.more_fragments(),
                    data: &data[start..end],
                })
            }
            LaxIpSlice::Ipv6(v6) => v6_fragment(v6, data),
        };
        if let Some(frag) = fragment {
            return self.fragment(frag, missing);
        }
        let payload = ip.payload();
        self.transport(ip.source_addr(), ip.destination_addr(), payload.ip_number, payload.payload, missing)
    }

    /// A fragment: into the table; the datagram comes back as [`Outcome::Reassembled`] when complete.
    fn fragment<'p>(&mut self, frag: Fragment<'p>, missing: u32) -> Outcome<'p> {
        self.stats.fragments += 1;
        if missing > 0 {
            self.stats.fragments_truncated += 1;
            return Outcome::Skip;
        }
        if !worth_reassembling(IpNumber(frag.key.proto)) {
            self.stats.fragments_ignored += 1;
            return Outcome::Skip;
        }
        let Some(defrag) = self.defrag.as_deref_mut() else {
            self.stats.fragments_nested += 1;
            return Outcome::Skip;
        };
        let (src, dst) = (frag.key.src, frag.key.dst);
        match defrag.add(frag, self.ts.0, self.stats) {
            Some(proto) => Outcome::Reassembled { src, dst, proto },
            None => Outcome::Skip,
        }
    }

    /// A reassembled datagram's payload (`proto` may be an IPv6 extension header that followed the fragment
    /// header).
    pub(crate) fn reassembled<'p>(&mut self, src: IpAddr, dst: IpAddr, proto: IpNumber, data: &'p [u8]) -> Outcome<'p> {
        if matches!(
            proto,
            IpNumber::IPV6_DESTINATION_OPTIONS | IpNumber::IPV6_ROUTE_HEADER | IpNumber::AUTHENTICATION_HEADER
        ) {
            let (_, next, rest, err) = Ipv6ExtensionsSlice::from_slice_lax(proto, data);
            if err.is_some() {
                self.stats.bad_ip_extension += 1;
                return Outcome::Skip;
            }
            return self.transport(src, dst, next, rest, 0);
        }
        self.transport(src, dst, proto, data, 0)
    }

    /// The payload of an IP packet, by protocol.
    fn transport<'p>(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: IpNumber,
        payload: &'p [u8],
        missing: u32,
    ) -> Outcome<'p> {
        match proto {
            IpNumber::TCP => self.tcp(src, dst, payload, missing),
            IpNumber::UDP => self.udp(payload),
            IpNumber::GRE => self.gre(payload),
            IpNumber::IPV4 | IpNumber::IPV6 => {
                if !self.deeper() {
                    return Outcome::Skip;
                }
                self.stats.ip_in_ip += 1;
                self.ip(payload, Some(if proto == IpNumber::IPV4 { 4 } else { 6 }))
            }
            IpNumber::ICMP | IpNumber::IPV6_ICMP => {
                self.stats.icmp += 1;
                Outcome::Skip
            }
            _ => {
                self.stats.other_ip_protocol += 1;
                Outcome::Skip
            }
        }
    }

    /// UDP: VXLAN, Geneve, GRE-in-UDP, GTP-U and AYIYA are followed, anything else is counted.
    fn udp<'p>(&mut self, payload: &'p [u8]) -> Outcome<'p> {
        if payload.len() >= 8 {
            match be16(payload, 2) {
                VXLAN_PORT => return self.vxlan(&payload[8..]),
                GENEVE_PORT => return self.geneve(&payload[8..]),
                GRE_UDP_PORT => return self.gre(&payload[8..]),
                GTP_U_PORT => return self.gtp_u(&payload[8..]),
                AYIYA_PORT => return self.ayiya(&payload[8..]),
                _ if be16(payload, 0) == AYIYA_PORT => return self.ayiya(&payload[8..]),
                _ => {}
            }
        }
        self.stats.udp += 1;
        Outcome::Skip
    }

    /// A TCP header and its payload.
    fn tcp<'p>(&mut self, src: IpAddr, dst: IpAddr, data: &'p [u8], missing: u32) -> Outcome<'p> {
        let tcp = match TcpSlice::from_slice(data) {
            Ok(t) => t,
            Err(etherparse::err::tcp::HeaderSliceError::Len(_)) => {
                self.stats.truncated_tcp_header += 1;
                return Outcome::Skip;
            }
            Err(etherparse::err::tcp::HeaderSliceError::Content(_)) => {
                self.stats.bad_tcp_header += 1;
                return Outcome::Skip;
            }
        };
        self.stats.tcp_segments += 1;
        if missing > 0 {
            self.stats.snaplen_truncated_segments += 1;
        }
        Outcome::Segment(TcpSegment {
            ts: self.ts,
            src: SocketAddr::new(src, tcp.source_port()),
            dst: SocketAddr::new(dst, tcp.destination_port()),
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            flags: TcpFlags { syn: tcp.syn(), ack: tcp.ack(), fin: tcp.fin(), rst: tcp.rst() },
            payload: tcp.payload(),
            missing,
            auth_option: has_auth_option(tcp.options()),
        })
    }
}

/// TCP option kinds of a signature or MAC: TCP-MD5 (RFC 2385) and TCP-AO (RFC 5925).
const TCP_MD5_OPTION: u8 = 19;
const TCP_AO_OPTION: u8 = 29;

/// Whether TCP options hold a TCP-MD5 or TCP-AO option. Options are kind-length-value except End (0) and No-op
/// (1); a malformed list ends the walk (what was found before counts).
fn has_auth_option(mut options: &[u8]) -> bool {
    while let Some((&kind, rest)) = options.split_first() {
        match kind {
            0 => return false,
            1 => options = rest,
            TCP_MD5_OPTION | TCP_AO_OPTION => return true,
            _ => match rest.first() {
                Some(&len) if len >= 2 && usize::from(len) <= options.len() => options = &options[usize::from(len)..],
                _ => return false,
            },
        }
    }
    false
}

/// The IPv6 fragment header of a packet, when it fragments it (RFC 8200 §4.5: 13-bit offset, 2 reserved bits,
/// the M flag in the lowest bit). Read here, not with etherparse 0.18's `Ipv6FragmentHeaderSlice`, whose
/// `fragment_offset`, `more_fragments` and `is_fragmenting_payload` use another bit layout (M at 0x80 of the
/// fourth byte) than the RFC and tshark.
fn v6_fragment<'p>(v6: &etherparse::LaxIpv6Slice<'p>, data: &'p [u8]) -> Option<Fragment<'p>> {
    let mut at = 40;
    for ext in v6.extensions().clone() {
        let raw = match &ext {
            Ipv6ExtensionSlice::HopByHop(s)
            | Ipv6ExtensionSlice::Routing(s)
            | Ipv6ExtensionSlice::DestinationOptions(s) => s.slice(),
            Ipv6ExtensionSlice::Authentication(s) => s.slice(),
            Ipv6ExtensionSlice::Fragment(s) => s.slice(),
        };
        at += raw.len();
        if let Ipv6ExtensionSlice::Fragment(_) = ext {
            let field = u16::from_be_bytes([raw[2], raw[3]]);
            let (units, more) = (field >> 3, field & 1 == 1);
            if units == 0 && !more {
                // An atomic fragment (RFC 6946): the whole packet.
                return None;
            }
            let end = 40 + v6.extensions().slice().len() + v6.payload().payload.len();
            let h = v6.header();
            return Some(Fragment {
                key: FragKey {
                    src: h.source_addr().into(),
                    dst: h.destination_addr().into(),
                    id: u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
                    proto: raw[0],
                },
                offset: etherparse::IpFragOffset::try_new(units).ok()?,
                more,
                data: data.get(at..end).unwrap_or_default(),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::has_auth_option;

    #[test]
    fn auth_options_are_found_after_other_options_and_not_in_malformed_lists() {
        // MSS, NOP, NOP, TCP-MD5 (18 bytes).
        let mut md5 = vec![2, 4, 0x05, 0xb4, 1, 1, 19, 18];
        md5.resize(4 + 2 + 18, 0);
        assert!(has_auth_option(&md5));
        // TCP-AO (kind 29) after a timestamp option.
        let mut ao = vec![8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 29, 4, 0, 0];
        assert!(has_auth_option(&ao));
        // End of options before it, a zero length, a length past the end: not found, no panic.
        ao[0] = 0;
        assert!(!has_auth_option(&ao));
        assert!(!has_auth_option(&[3, 0, 19, 18]));
        assert!(!has_auth_option(&[3, 40, 19, 18]));
        assert!(!has_auth_option(&[2, 4, 0x05, 0xb4, 1, 1, 4, 2]));
        assert!(!has_auth_option(&[]));
    }
}
