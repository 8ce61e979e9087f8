//! Packet sources: pcap and pcapng files or pipes, read without libpcap. A source yields [`Frame`]s.
//! (Being written.)

use tapedeck_model::Timestamp;

/// A link-layer header type (the pcap LINKTYPE_ value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback (4-byte address family in host byte order).
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II, possibly with 802.1Q / QinQ tags.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP (v4 or v6 by the version nibble).
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback (4-byte address family in network byte order).
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// One captured packet, borrowed from the source's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// How to decode `data`.
    pub link: LinkType,
    /// The captured bytes (at most the snaplen).
    pub data: &'a [u8],
    /// The packet's length on the wire (larger than `data.len()` when the snaplen cut it).
    pub orig_len: u32,
    /// The interface index (pcapng) or 0.
    pub interface: u32,
    /// The packet's number in its file, from 1, for messages.
    pub number: u64,
}
