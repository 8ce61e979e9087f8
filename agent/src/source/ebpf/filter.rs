//! The filters the eBPF backend can run in the kernel: TCP only, a set of ports (source or destination) and a set
//! of address prefixes (source or destination), both optional and combined with "and". They come from
//! `--ebpf-port`/`--ebpf-cidr`, or from the subset of BPF filter expressions that says the same thing:
//! `tcp`, `tcp port N`, `port N`, joined by `or`, optionally in parentheses. Anything else is refused with a
//! message naming what is supported ([`UnsupportedFilter`]), so that `--backend auto` can fall back to libpcap.
//!
//! The same filter can be written back as a BPF expression ([`EbpfFilter::to_bpf_expression`]) for libpcap, so
//! that a fallback keeps the filter's meaning.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

/// What the kernel program keeps: TCP packets whose ports and addresses pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EbpfFilter {
    /// Selected ports (either side); empty selects every port.
    pub ports: Vec<u16>,
    /// Selected prefixes (either side); empty selects every address.
    pub cidrs: Vec<IpNet>,
}

/// What the eBPF backend accepts as `--filter`, for messages.
pub const SUPPORTED: &str = "the eBPF backend supports --filter only as 'tcp', 'tcp port N' or 'port N' terms \
     joined by 'or' (e.g. 'tcp port 80 or tcp port 8080'); use --ebpf-port and --ebpf-cidr for ports and \
     address ranges, or --backend pcap for full BPF expressions";

/// A `--filter` expression outside the supported subset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--filter {expr:?} cannot run in the kernel program ({why}): {SUPPORTED}")]
pub struct UnsupportedFilter {
    /// The expression.
    pub expr: String,
    /// The first thing not understood.
    pub why: String,
}

impl EbpfFilter {
    /// Whether it keeps every TCP packet.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.cidrs.is_empty()
    }

    /// A filter from `--ebpf-port` and `--ebpf-cidr` values (a bare address is a /32 or /128; host bits are
    /// cleared).
    pub fn from_flags(ports: &[u16], cidrs: &[String]) -> Result<Self, String> {
        let mut out = EbpfFilter { ports: ports.to_vec(), cidrs: Vec::with_capacity(cidrs.len()) };
        for c in cidrs {
            let net = match c.parse::<IpNet>() {
                Ok(n) => n.trunc(),
                Err(_) => match c.parse::<IpAddr>() {
                    Ok(a) => IpNet::from(a),
                    Err(_) => {
                        return Err(format!("--ebpf-cidr {c:?} is not an address or prefix (10.0.0.0/8, fd00::/8)"));
                    }
                },
            };
            out.cidrs.push(net);
        }
        out.ports.sort_unstable();
        out.ports.dedup();
        out.cidrs.sort();
        out.cidrs.dedup();
        Ok(out)
    }

    /// Parses the supported subset of BPF expressions (see the module docs).
    pub fn from_bpf_expression(expr: &str) -> Result<Self, UnsupportedFilter> {
        let refuse = |why: String| UnsupportedFilter { expr: expr.to_string(), why };
        let mut text = expr.trim();
        while let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
            text = inner.trim();
        }
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() {
            return Err(refuse("it is empty".into()));
        }
        let mut out = EbpfFilter::default();
        let mut all_ports = false;
        for term in words.split(|w| *w == "or") {
            match term {
                ["tcp"] => all_ports = true,
                ["tcp", "port", n] | ["port", n] => {
                    let port = n.parse::<u16>().map_err(|_| refuse(format!("{n:?} is not a port number")))?;
                    out.ports.push(port);
                }
                [] => return Err(refuse("an empty 'or' term".into())),
                other => return Err(refuse(format!("'{}' is not understood", other.join(" ")))),
            }
        }
        if all_ports {
            out.ports.clear();
        }
        out.ports.sort_unstable();
        out.ports.dedup();
        Ok(out)
    }

    /// Whether a TCP packet between `a` and `b` passes, as the kernel program decides it (used in user space
    /// to filter capture files and pipes without libpcap, see [`crate::source::filter`]).
    pub fn matches(&self, a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
        let port = self.ports.is_empty() || self.ports.contains(&a.port()) || self.ports.contains(&b.port());
        let addr = |ip: IpAddr| self.cidrs.iter().any(|n| n.contains(&ip.to_canonical()));
        port && (self.cidrs.is_empty() || addr(a.ip()) || addr(b.ip()))
    }

    /// The same filter as a BPF expression for libpcap.
    pub fn to_bpf_expression(&self) -> String {
        let mut out = String::from("tcp");
        let group = |out: &mut String, kw: &str, items: Vec<String>| {
            if items.is_empty() {
                return;
            }
            out.push_str(" and (");
            for (i, it) in items.iter().enumerate() {
                let _ = write!(out, "{}{kw} {it}", if i > 0 { " or " } else { "" });
            }
            out.push(')');
        };
        group(&mut out, "port", self.ports.iter().map(u16::to_string).collect());
        group(&mut out, "net", self.cidrs.iter().map(IpNet::to_string).collect());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_subset_parses() {
        let f = EbpfFilter::from_bpf_expression("tcp port 80").unwrap();
        assert_eq!(f.ports, [80]);
        let f = EbpfFilter::from_bpf_expression(" ( tcp port 8080 or port 80 or tcp port 80 ) ").unwrap();
        assert_eq!(f.ports, [80, 8080]);
        let f = EbpfFilter::from_bpf_expression("tcp").unwrap();
        assert!(f.is_empty());
        let f = EbpfFilter::from_bpf_expression("tcp or tcp port 80").unwrap();
        assert!(f.is_empty(), "'tcp or ...' is every TCP packet");
    }

    #[test]
    fn anything_else_is_refused_with_what_is_supported() {
        for (expr, why) in [
            ("udp port 53", "'udp port 53'"),
            ("tcp port 80 and host 10.0.0.1", "'tcp port 80 and host 10.0.0.1'"),
            ("tcp port http", "\"http\" is not a port number"),
            ("tcp port 70000", "\"70000\""),
            ("tcp port 80 or", "an empty 'or' term"),
            ("", "it is empty"),
            ("not tcp port 22", "'not tcp port 22'"),
        ] {
            let e = EbpfFilter::from_bpf_expression(expr).unwrap_err();
            assert!(e.why.contains(why), "{expr:?}: {}", e.why);
            let msg = e.to_string();
            assert!(msg.contains("tcp port N") && msg.contains("--backend pcap"), "{msg}");
        }
    }

    #[test]
    fn packets_match_by_either_port_and_either_address() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let f = EbpfFilter::from_bpf_expression("tcp port 80 or port 8080").unwrap();
        assert!(f.matches(at("10.0.0.1:40000"), at("10.0.0.2:80")));
        assert!(f.matches(at("10.0.0.2:8080"), at("10.0.0.1:40000")));
        assert!(!f.matches(at("10.0.0.1:40000"), at("10.0.0.2:443")));
        assert!(EbpfFilter::default().matches(at("10.0.0.1:1"), at("10.0.0.2:2")));
        let f = EbpfFilter::from_flags(&[443], &["10.1.0.0/16".into()]).unwrap();
        assert!(f.matches(at("10.1.2.3:40000"), at("192.0.2.1:443")));
        assert!(!f.matches(at("10.2.2.3:40000"), at("192.0.2.1:443")), "address outside the range");
        assert!(!f.matches(at("10.1.2.3:40000"), at("192.0.2.1:80")), "both must pass");
    }

    #[test]
    fn flags_become_a_filter_and_back_into_bpf() {
        let f = EbpfFilter::from_flags(&[8080, 80, 80], &["10.1.2.3/8".into(), "fd00::1".into()]).unwrap();
        assert_eq!(f.ports, [80, 8080]);
        let nets: Vec<String> = f.cidrs.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "fd00::1/128"]);
        assert_eq!(f.to_bpf_expression(), "tcp and (port 80 or port 8080) and (net 10.0.0.0/8 or net fd00::1/128)");
        assert_eq!(EbpfFilter::default().to_bpf_expression(), "tcp");
        let e = EbpfFilter::from_flags(&[], &["10.0.0.0/33".into()]).unwrap_err();
        assert!(e.contains("10.0.0.0/33"), "{e}");
        let e = EbpfFilter::from_flags(&[], &["banana".into()]).unwrap_err();
        assert!(e.contains("banana"), "{e}");
    }
}
