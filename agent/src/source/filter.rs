//! `--filter` on capture files and pipes (`agent --pcap F --filter 'tcp port 80'`, as `tcpdump -r F 'tcp port
//! 80'`): which packets of a file the pipeline reads on.
//!
//! With libpcap (the `libpcap` cargo feature, default) the expression is compiled by libpcap itself
//! (`pcap_compile` on a dead handle, one program per link type met) and run on every frame's bytes: exactly
//! tcpdump's meaning, full BPF syntax (but `len`, `greater` and `less` see the captured length: the `pcap` crate
//! runs programs on the bytes alone). Without libpcap, the subset the eBPF backend understands is accepted
//! (`tcp`, `tcp port N`, `port N` joined by `or`; [`super::ebpf::EbpfFilter`]) and checked on each decoded TCP segment's
//! ports; anything else is refused with a message saying the build has no libpcap.
//!
//! Rejected frames (libpcap) or TCP segments (subset) are counted in [`PacketFilter::rejected`] (the summary's
//! `source.filtered_out`).

#[cfg(feature = "libpcap")]
use std::collections::HashMap;

use super::Frame;
#[cfg(not(feature = "libpcap"))]
use super::ebpf::EbpfFilter;
use crate::decode::TcpSegment;

/// A compiled `--filter` for frames read from files and pipes.
pub struct PacketFilter {
    expr: String,
    kind: Kind,
    /// Frames (libpcap) or TCP segments (built-in subset) the filter rejected.
    pub rejected: u64,
}

enum Kind {
    /// libpcap's programs, by link type (LINKTYPE_ value), compiled when a link type is first met.
    #[cfg(feature = "libpcap")]
    Libpcap(HashMap<u32, ::pcap::BpfProgram>),
    /// The built-in subset.
    #[cfg(not(feature = "libpcap"))]
    Ports(EbpfFilter),
}

/// Checks a `--filter` expression (a clap value parser): with libpcap, that it compiles for Ethernet; without,
/// that it is in the subset understood without libpcap.
pub fn check_expression(expr: &str) -> Result<String, String> {
    PacketFilter::new(expr).map(|_| expr.to_string())
}

impl PacketFilter {
    /// Compiles `expr` (see the module documentation); the error says what is wrong with it.
    pub fn new(expr: &str) -> Result<Self, String> {
        #[cfg(feature = "libpcap")]
        {
            let ethernet = compile(expr, super::LinkType::ETHERNET).map_err(|e| format!("{expr:?}: {e}"))?;
            let programs = HashMap::from([(super::LinkType::ETHERNET.0, ethernet)]);
            Ok(PacketFilter { expr: expr.to_string(), kind: Kind::Libpcap(programs), rejected: 0 })
        }
        #[cfg(not(feature = "libpcap"))]
        {
            let ports = EbpfFilter::from_bpf_expression(expr).map_err(|e| {
                format!(
                    "{expr:?}: this agent was built without libpcap (cargo feature `libpcap`), which runs full BPF \
                     expressions; without it --filter understands only 'tcp', 'tcp port N' or 'port N' terms joined \
                     by 'or' ({})",
                    e.why
                )
            })?;
            Ok(PacketFilter { expr: expr.to_string(), kind: Kind::Ports(ports), rejected: 0 })
        }
    }

    /// The expression.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// Whether `frame` passes (libpcap; the subset passes every frame and looks at segments). The error says
    /// why the expression cannot apply to the frame's link type (e.g. `ether host` on raw IP).
    pub fn frame(&mut self, frame: &Frame<'_>) -> Result<bool, String> {
        #[cfg(feature = "libpcap")]
        {
            let Kind::Libpcap(programs) = &mut self.kind;
            let program = match programs.entry(frame.link.0) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let program = compile(&self.expr, frame.link)
                        .map_err(|e| format!("{:?} does not apply to link type {}: {e}", self.expr, frame.link.0))?;
                    v.insert(program)
                }
            };
            let keep = program.filter(frame.data);
            self.rejected += u64::from(!keep);
            Ok(keep)
        }
        #[cfg(not(feature = "libpcap"))]
        {
            let _ = frame;
            Ok(true)
        }
    }

    /// Whether a decoded TCP segment passes (the subset; with libpcap the frame was already checked).
    pub fn segment(&mut self, seg: &TcpSegment<'_>) -> bool {
        #[cfg(not(feature = "libpcap"))]
        {
            let Kind::Ports(f) = &self.kind;
            let keep = f.matches(seg.src, seg.dst);
            self.rejected += u64::from(!keep);
            keep
        }
        #[cfg(feature = "libpcap")]
        {
            let _ = seg;
            true
        }
    }
}

/// libpcap's program for `expr` on frames of link type `link`.
#[cfg(feature = "libpcap")]
fn compile(expr: &str, link: super::LinkType) -> Result<::pcap::BpfProgram, String> {
    // pcap_open_dead takes a DLT_ value; files carry LINKTYPE_ values, which differ only for raw IP among the
    // link types decoded here (LINKTYPE_RAW 101 is DLT_RAW 12 on Linux).
    let dlt = if link == super::LinkType::RAW { 12 } else { link.0 as i32 };
    let dead = ::pcap::Capture::dead(::pcap::Linktype(dlt)).map_err(|e| e.to_string())?;
    dead.compile(expr, true).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_model::Timestamp;

    /// An Ethernet/IPv4/TCP frame from 10.0.0.1:`sport` to 10.0.0.2:`dport` (checksums zero: filters do not
    /// look at them).
    fn frame_bytes(sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let tcp = &mut f[34..54];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x10;
        f
    }

    fn frame(data: &[u8]) -> Frame<'_> {
        Frame {
            ts: Timestamp(0),
            link: super::super::LinkType::ETHERNET,
            data,
            orig_len: data.len() as u32,
            interface: 0,
            number: 1,
        }
    }

    fn segment(sport: u16, dport: u16) -> TcpSegment<'static> {
        TcpSegment {
            ts: Timestamp(0),
            src: ([10, 0, 0, 1], sport).into(),
            dst: ([10, 0, 0, 2], dport).into(),
            seq: 0,
            ack: 0,
            flags: Default::default(),
            payload: &[],
            missing: 0,
            auth_option: false,
        }
    }

    /// Whether a 10.0.0.1:`sport` → 10.0.0.2:`dport` packet passes, by whichever check this build runs.
    fn passes(f: &mut PacketFilter, sport: u16, dport: u16) -> bool {
        let bytes = frame_bytes(sport, dport);
        f.frame(&frame(&bytes)).unwrap() && f.segment(&segment(sport, dport))
    }

    #[test]
    fn tcp_port_filters_keep_either_direction_and_count_what_they_reject() {
        let mut f = PacketFilter::new("tcp port 80").unwrap();
        assert!(passes(&mut f, 40000, 80));
        assert!(passes(&mut f, 80, 40000));
        assert!(!passes(&mut f, 40000, 443));
        assert_eq!(f.rejected, 1);
        assert_eq!(f.expression(), "tcp port 80");
    }

    #[cfg(feature = "libpcap")]
    #[test]
    fn with_libpcap_any_bpf_expression_runs_and_bad_ones_are_refused() {
        let mut f = PacketFilter::new("tcp dst port 80 and host 10.0.0.2").unwrap();
        assert!(passes(&mut f, 40000, 80));
        assert!(!passes(&mut f, 80, 40000), "dst port only");
        let e = check_expression("tcp port banana").unwrap_err();
        assert!(e.contains("tcp port banana"), "{e}");
        // Raw IP frames get a program of their own link type.
        let mut f = PacketFilter::new("tcp port 80").unwrap();
        let bytes = frame_bytes(40000, 80);
        let raw = Frame { link: super::super::LinkType::RAW, ..frame(&bytes[14..]) };
        assert!(f.frame(&raw).unwrap());
        let e = PacketFilter::new("ether host 00:01:02:03:04:05").unwrap().frame(&raw).unwrap_err();
        assert!(e.contains("link type 101"), "{e}");
    }

    #[cfg(not(feature = "libpcap"))]
    #[test]
    fn without_libpcap_only_the_port_subset_is_understood() {
        let e = check_expression("tcp port 80 and host 10.0.0.2").unwrap_err();
        assert!(e.contains("without libpcap") && e.contains("tcp port N"), "{e}");
    }
}
