//! The filter decision: a TCP packet matches when it passes the port test and the address test, each of which is
//! on only when its table has entries. Ports: the source or the destination port is selected. Addresses: the
//! source or the destination lies in a selected prefix of its family (with prefixes of one family only, packets of
//! the other never match). The tables themselves are maps in the kernel ([`Tables`]); this is the logic around
//! them.

use crate::parse::{Addrs, TcpFlow};

/// `CFG_FILTER` bit: the port table is in use.
pub const FILTER_PORTS: u64 = 1;
/// `CFG_FILTER` bit: IPv4 prefixes are in use.
pub const FILTER_CIDR4: u64 = 2;
/// `CFG_FILTER` bit: IPv6 prefixes are in use.
pub const FILTER_CIDR6: u64 = 4;

/// Lookups in the filter tables.
pub trait Tables {
    /// Whether TCP port `port` is selected.
    fn port(&self, port: u16) -> bool;
    /// Whether `addr` lies in a selected IPv4 prefix.
    fn v4(&self, addr: [u8; 4]) -> bool;
    /// Whether `addr` lies in a selected IPv6 prefix.
    fn v6(&self, addr: [u8; 16]) -> bool;
}

/// Whether `flow` passes the filter described by the `FILTER_*` bits in `flags` and the tables.
#[inline(always)]
pub fn matches<T: Tables + ?Sized>(flags: u64, flow: &TcpFlow, t: &T) -> bool {
    let port_ok = flags & FILTER_PORTS == 0
        || match flow.ports {
            Some((s, d)) => t.port(s) || t.port(d),
            // A later fragment: its ports are unknown, so it cannot be shown to match.
            None => false,
        };
    if !port_ok {
        return false;
    }
    if flags & (FILTER_CIDR4 | FILTER_CIDR6) == 0 {
        return true;
    }
    match flow.addrs {
        Addrs::V4(s, d) => flags & FILTER_CIDR4 != 0 && (t.v4(s) || t.v4(d)),
        Addrs::V6(s, d) => flags & FILTER_CIDR6 != 0 && (t.v6(s) || t.v6(d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Port 80 and 8080; 10.0.0.0/8; 2001:db8::/32 (lookups written out, not computed by the code under test).
    struct Fixed;
    impl Tables for Fixed {
        fn port(&self, p: u16) -> bool {
            p == 80 || p == 8080
        }
        fn v4(&self, a: [u8; 4]) -> bool {
            a[0] == 10
        }
        fn v6(&self, a: [u8; 16]) -> bool {
            a[..4] == [0x20, 0x01, 0x0d, 0xb8]
        }
    }

    fn v4(s: [u8; 4], d: [u8; 4], ports: Option<(u16, u16)>) -> TcpFlow {
        TcpFlow { addrs: Addrs::V4(s, d), ports }
    }

    #[test]
    fn no_filter_matches_every_tcp_packet() {
        assert!(matches(0, &v4([1, 1, 1, 1], [2, 2, 2, 2], Some((1, 2))), &Fixed));
        assert!(matches(0, &v4([1, 1, 1, 1], [2, 2, 2, 2], None), &Fixed));
    }

    #[test]
    fn ports_match_either_side() {
        let f = FILTER_PORTS;
        assert!(matches(f, &v4([1; 4], [2; 4], Some((40_000, 80))), &Fixed));
        assert!(matches(f, &v4([1; 4], [2; 4], Some((8080, 40_000))), &Fixed));
        assert!(!matches(f, &v4([1; 4], [2; 4], Some((40_000, 81))), &Fixed));
        assert!(!matches(f, &v4([1; 4], [2; 4], None), &Fixed), "a later fragment cannot prove its port");
    }

    #[test]
    fn prefixes_match_either_side_and_only_their_family() {
        let f = FILTER_CIDR4;
        assert!(matches(f, &v4([10, 9, 9, 9], [2; 4], Some((1, 2))), &Fixed));
        assert!(matches(f, &v4([2; 4], [10, 0, 0, 1], None), &Fixed), "addresses do not need ports");
        assert!(!matches(f, &v4([11, 0, 0, 1], [2; 4], Some((1, 2))), &Fixed));
        let mut in_db8 = [0u8; 16];
        in_db8[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let v6 = TcpFlow { addrs: Addrs::V6([0xfe; 16], in_db8), ports: Some((1, 2)) };
        assert!(!matches(f, &v6, &Fixed), "only IPv4 prefixes given: IPv6 never matches");
        assert!(matches(f | FILTER_CIDR6, &v6, &Fixed));
        assert!(!matches(FILTER_CIDR6, &v4([10, 0, 0, 1], [10, 0, 0, 2], Some((1, 2))), &Fixed));
    }

    #[test]
    fn ports_and_prefixes_must_both_match() {
        let f = FILTER_PORTS | FILTER_CIDR4;
        assert!(matches(f, &v4([10, 0, 0, 1], [2; 4], Some((1, 80))), &Fixed));
        assert!(!matches(f, &v4([10, 0, 0, 1], [2; 4], Some((1, 81))), &Fixed));
        assert!(!matches(f, &v4([11, 0, 0, 1], [2; 4], Some((1, 80))), &Fixed));
    }
}
