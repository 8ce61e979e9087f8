//! The decoder's counters: what it delivered, what it skipped on purpose (non-TCP traffic, by kind), and every
//! malformed or unusual case under a named anomaly (in the spirit of Zeek's "weirds").

/// Counters of a [`super::Decoder`]. Plain `u64`s; [`DecodeStats::counters`] lists them by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeStats {
    // ===== delivered =====
    /// Frames given to the decoder.
    pub frames: u64,
    /// TCP segments returned.
    pub tcp_segments: u64,
    /// Of those, segments whose payload the snaplen cut (`missing > 0`).
    pub snaplen_truncated_segments: u64,

    // ===== skipped on purpose: not TCP =====
    /// ARP packets.
    pub arp: u64,
    /// Other non-IP link payloads (LLDP, STP, 802.3/LLC, IPX, netlink, ...).
    pub non_ip: u64,
    /// UDP datagrams (other than VXLAN).
    pub udp: u64,
    /// ICMP and ICMPv6 messages.
    pub icmp: u64,
    /// IP packets of any other protocol (ESP, SCTP, OSPF, ...).
    pub other_ip_protocol: u64,

    // ===== tunnels and tags (informational) =====
    /// 802.1Q / 802.1ad / QinQ tags stripped.
    pub vlan_tags: u64,
    /// MPLS label stacks removed.
    pub mpls: u64,
    /// PPPoE session headers removed.
    pub pppoe: u64,
    /// GRE (also over UDP, and ERSPAN) headers removed.
    pub gre: u64,
    /// VXLAN, Geneve, GTP-U and AYIYA headers removed.
    pub vxlan: u64,
    /// IP-in-IP (4in4, 6in4, 4in6, 6in6) headers removed.
    pub ip_in_ip: u64,

    // ===== anomalies: malformed or unsupported input, dropped =====
    /// A link type the decoder does not know.
    pub unknown_link_type: u64,
    /// Ethernet frame shorter than its 14-byte header.
    pub truncated_ethernet: u64,
    /// A VLAN tag cut off.
    pub truncated_vlan: u64,
    /// More stacked VLAN tags than the decoder follows (8).
    pub too_many_vlan_tags: u64,
    /// Linux cooked (SLL/SLL2) header cut off.
    pub truncated_sll: u64,
    /// BSD loopback / NFLOG / C-HDLC / PPPoE header cut off or malformed.
    pub truncated_link_header: u64,
    /// BSD loopback address family that is neither IPv4 nor IPv6.
    pub unknown_address_family: u64,
    /// MPLS label stack cut off, or too deep.
    pub truncated_mpls: u64,
    /// MPLS payload that is neither IPv4, IPv6 nor Ethernet behind a control word.
    pub mpls_unknown_payload: u64,
    /// IP version nibble that is not 4 or 6, or disagrees with the link's protocol field.
    pub bad_ip_version: u64,
    /// IP header (or IPv6 extension header) cut off.
    pub truncated_ip_header: u64,
    /// IP header with impossible content (IHL below 5, ...).
    pub bad_ip_header: u64,
    /// Malformed IPv6 extension header chain (or IPv4 AH).
    pub bad_ip_extension: u64,
    /// IPv4 total length 0 or below the header length (TSO/GSO super-segments): the captured length was used.
    pub ipv4_length_from_capture: u64,
    /// IP declares more bytes than the frame had on the wire; `missing` was limited to the wire loss.
    pub ip_length_exceeds_capture: u64,
    /// TCP header cut off by the snaplen.
    pub truncated_tcp_header: u64,
    /// TCP header with impossible content (data offset below 5).
    pub bad_tcp_header: u64,
    /// GRE header cut off.
    pub truncated_gre: u64,
    /// IEEE 802.11 frame (tunnelled by a wireless controller) cut off before its payload.
    pub truncated_80211: u64,
    /// GRE version, routing or payload type the decoder does not follow.
    pub gre_unsupported: u64,
    /// VXLAN, Geneve, GTP-U or AYIYA header cut off or malformed.
    pub bad_vxlan: u64,
    /// ARCNET RFC 1201 split packets (link-layer fragments; not reassembled, dropped).
    pub arcnet_split_packets: u64,
    /// Encapsulation deeper than the decoder follows (8 layers).
    pub too_many_encapsulations: u64,

    // ===== IP fragments =====
    /// IP fragments seen.
    pub fragments: u64,
    /// Datagrams rebuilt from fragments.
    pub fragments_reassembled: u64,
    /// Fragments the snaplen cut (they cannot be reassembled; dropped).
    pub fragments_truncated: u64,
    /// Fragments that conflict with their datagram (bad length, conflicting end, too big); the datagram is dropped.
    pub fragment_errors: u64,
    /// Fragments of a protocol the decoder would skip anyway (ICMP, ESP, ...): dropped without reassembly.
    pub fragments_ignored: u64,
    /// Fragments inside an already reassembled datagram (not supported; dropped).
    pub fragments_nested: u64,
    /// Incomplete datagrams dropped because their first fragment is older than the timeout.
    pub fragment_timeouts: u64,
    /// Incomplete datagrams dropped to stay under the datagram count cap.
    pub fragment_evicted_count_cap: u64,
    /// Incomplete datagrams dropped to stay under the byte cap.
    pub fragment_evicted_byte_cap: u64,
    /// Datagrams dropped for having more fragments than the per-datagram limit.
    pub fragment_too_many: u64,
}

impl DecodeStats {
    /// Every counter with its name, in declaration order.
    pub fn counters(&self) -> [(&'static str, u64); 47] {
        [
            ("frames", self.frames),
            ("tcp_segments", self.tcp_segments),
            ("snaplen_truncated_segments", self.snaplen_truncated_segments),
            ("arp", self.arp),
            ("non_ip", self.non_ip),
            ("udp", self.udp),
            ("icmp", self.icmp),
            ("other_ip_protocol", self.other_ip_protocol),
            ("vlan_tags", self.vlan_tags),
            ("mpls", self.mpls),
            ("pppoe", self.pppoe),
            ("gre", self.gre),
            ("vxlan", self.vxlan),
            ("ip_in_ip", self.ip_in_ip),
            ("unknown_link_type", self.unknown_link_type),
            ("truncated_ethernet", self.truncated_ethernet),
            ("truncated_vlan", self.truncated_vlan),
            ("too_many_vlan_tags", self.too_many_vlan_tags),
            ("truncated_sll", self.truncated_sll),
            ("truncated_link_header", self.truncated_link_header),
            ("unknown_address_family", self.unknown_address_family),
            ("truncated_mpls", self.truncated_mpls),
            ("mpls_unknown_payload", self.mpls_unknown_payload),
            ("bad_ip_version", self.bad_ip_version),
            ("truncated_ip_header", self.truncated_ip_header),
            ("bad_ip_header", self.bad_ip_header),
            ("bad_ip_extension", self.bad_ip_extension),
            ("ipv4_length_from_capture", self.ipv4_length_from_capture),
            ("ip_length_exceeds_capture", self.ip_length_exceeds_capture),
            ("truncated_tcp_header", self.truncated_tcp_header),
            ("bad_tcp_header", self.bad_tcp_header),
            ("truncated_gre", self.truncated_gre),
            ("truncated_80211", self.truncated_80211),
            ("gre_unsupported", self.gre_unsupported),
            ("bad_vxlan", self.bad_vxlan),
            ("arcnet_split_packets", self.arcnet_split_packets),
            ("too_many_encapsulations", self.too_many_encapsulations),
            ("fragments", self.fragments),
            ("fragments_reassembled", self.fragments_reassembled),
            ("fragments_truncated", self.fragments_truncated),
            ("fragment_errors", self.fragment_errors),
            ("fragments_ignored", self.fragments_ignored),
            ("fragments_nested", self.fragments_nested),
            ("fragment_timeouts", self.fragment_timeouts),
            ("fragment_evicted_count_cap", self.fragment_evicted_count_cap),
            ("fragment_evicted_byte_cap", self.fragment_evicted_byte_cap),
            ("fragment_too_many", self.fragment_too_many),
        ]
    }

    /// The sum of the anomaly counters (malformed or unsupported input).
    pub fn anomalies(&self) -> u64 {
        self.unknown_link_type
            + self.truncated_ethernet
            + self.truncated_vlan
            + self.too_many_vlan_tags
            + self.truncated_sll
            + self.truncated_link_header
            + self.unknown_address_family
            + self.truncated_mpls
            + self.mpls_unknown_payload
            + self.bad_ip_version
            + self.truncated_ip_header
            + self.bad_ip_header
            + self.bad_ip_extension
            + self.truncated_tcp_header
            + self.bad_tcp_header
            + self.truncated_gre
            + self.truncated_80211
            + self.gre_unsupported
            + self.bad_vxlan
            + self.arcnet_split_packets
            + self.too_many_encapsulations
            + self.fragments_truncated
            + self.fragment_errors
            + self.fragments_nested
    }
}

crate::impl_merge!(DecodeStats {
    frames,
    tcp_segments,
    snaplen_truncated_segments,
    arp,
    non_ip,
    udp,
    icmp,
    other_ip_protocol,
    vlan_tags,
    mpls,
    pppoe,
    gre,
    vxlan,
    ip_in_ip,
    unknown_link_type,
    truncated_ethernet,
    truncated_vlan,
    too_many_vlan_tags,
    truncated_sll,
    truncated_link_header,
    unknown_address_family,
    truncated_mpls,
    mpls_unknown_payload,
    bad_ip_version,
    truncated_ip_header,
    bad_ip_header,
    bad_ip_extension,
    ipv4_length_from_capture,
    ip_length_exceeds_capture,
    truncated_tcp_header,
    bad_tcp_header,
    truncated_gre,
    truncated_80211,
    gre_unsupported,
    bad_vxlan,
    arcnet_split_packets,
    too_many_encapsulations,
    fragments,
    fragments_reassembled,
    fragments_truncated,
    fragment_errors,
    fragments_ignored,
    fragments_nested,
    fragment_timeouts,
    fragment_evicted_count_cap,
    fragment_evicted_byte_cap,
    fragment_too_many
});
