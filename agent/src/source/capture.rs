//! The capture backend of a live run: libpcap ([`LiveSource`]) or tapedeck's eBPF program ([`EbpfSource`]),
//! behind one [`Capture`] that yields the same [`Frame`]s, and the choice between them ([`open_all`]):
//! `pcap`, `ebpf`, or `auto` (eBPF when this agent carries the program and the kernel and privileges allow it,
//! else libpcap, with one log line saying which and why). [`start_line`] says what was opened.

use std::path::Path;
use std::time::Duration;

use super::Frame;
use super::LinkType;
use super::ebpf::{EbpfConfig, EbpfCounters, EbpfError, EbpfFilter, EbpfSource};
use super::live::{KernelStats, LiveConfig, LiveSource};

/// Which capture backend to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// libpcap (AF_PACKET).
    #[default]
    Pcap,
    /// tapedeck's TC eBPF program with a ring buffer.
    Ebpf,
    /// eBPF when possible, else libpcap.
    Auto,
}

/// The backend choice and the eBPF backend's settings (the libpcap settings are in each [`LiveConfig`]).
#[derive(Clone, Debug, Default)]
pub struct BackendOptions {
    /// Which backend.
    pub backend: Backend,
    /// The filter for the kernel program from `--ebpf-port`/`--ebpf-cidr`; `None` means: translate the
    /// interface's `--filter` (the supported subset), or keep every TCP packet without one.
    pub ebpf_filter: Option<EbpfFilter>,
    /// Ring buffer bytes per interface (`None`: the default).
    pub ring_size: Option<u32>,
    /// Wakeup threshold in bytes (`None`: the default).
    pub wakeup_bytes: Option<u32>,
}

impl BackendOptions {
    /// The options from the command line's flags, and the libpcap filter to use: `--ebpf-port`/`--ebpf-cidr`
    /// become the kernel filter and, written as a BPF expression, libpcap's filter (so that `auto` falling back
    /// keeps the same filter); they do not combine with `--filter`.
    pub fn from_flags(
        backend: Backend,
        ports: &[u16],
        cidrs: &[String],
        ring_size: Option<u64>,
        wakeup_bytes: Option<u64>,
        filter: Option<&str>,
    ) -> Result<(BackendOptions, Option<String>), String> {
        let mut out = BackendOptions { backend, ..Default::default() };
        let mut pcap_filter = filter.map(str::to_string);
        if !ports.is_empty() || !cidrs.is_empty() {
            if filter.is_some() {
                return Err("--filter and --ebpf-port/--ebpf-cidr: give one or the other".into());
            }
            let f = EbpfFilter::from_flags(ports, cidrs)?;
            pcap_filter = Some(f.to_bpf_expression());
            out.ebpf_filter = Some(f);
        }
        // With the eBPF backend only, a filter it cannot run is a bad flag (auto falls back instead).
        if backend == Backend::Ebpf
            && out.ebpf_filter.is_none()
            && let Some(expr) = filter
        {
            EbpfFilter::from_bpf_expression(expr).map_err(|e| e.to_string())?;
        }
        let in_u32 = |v: Option<u64>, flag: &str, min: u64| -> Result<Option<u32>, String> {
            v.map(|v| {
                u32::try_from(v)
                    .ok()
                    .filter(|v| u64::from(*v) >= min)
                    .ok_or(format!("{flag} {v} must be between {min} and 2GiB"))
            })
            .transpose()
        };
        out.ring_size = in_u32(ring_size, "--ebpf-ring-size", 4096)?;
        out.wakeup_bytes = in_u32(wakeup_bytes, "--ebpf-wakeup-bytes", 0)?;
        if out.ring_size.is_some_and(|r| r > 1 << 30) {
            return Err("--ebpf-ring-size must be at most 1GiB".into());
        }
        Ok((out, pcap_filter))
    }

    /// The eBPF configuration for one interface, or why its filter cannot run in the kernel.
    pub fn ebpf_config(&self, live: &LiveConfig) -> Result<EbpfConfig, String> {
        let filter = match (&self.ebpf_filter, &live.filter) {
            (Some(f), _) => f.clone(),
            (None, Some(expr)) => EbpfFilter::from_bpf_expression(expr).map_err(|e| e.to_string())?,
            (None, None) => EbpfFilter::default(),
        };
        let mut c = EbpfConfig::new(live.interface.clone());
        c.filter = filter;
        c.snaplen = live.snaplen;
        if let Some(r) = self.ring_size {
            c.ring_size = r;
        }
        c.wakeup_bytes = self.wakeup_bytes;
        Ok(c)
    }
}

/// One interface's open capture, whichever the backend.
pub enum Capture {
    /// libpcap.
    Pcap(LiveSource),
    /// The eBPF program.
    Ebpf(Box<EbpfSource>),
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("backend", &self.backend()).field("interface", &self.interface()).finish()
    }
}

impl Capture {
    /// The backend's name, for logs and metrics (`pcap`, `ebpf`).
    pub fn backend(&self) -> &'static str {
        match self {
            Capture::Pcap(_) => "pcap",
            Capture::Ebpf(_) => "ebpf",
        }
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        match self {
            Capture::Pcap(s) => s.interface(),
            Capture::Ebpf(s) => s.interface(),
        }
    }

    /// The link type of the frames.
    pub fn link(&self) -> LinkType {
        match self {
            Capture::Pcap(s) => s.link(),
            Capture::Ebpf(s) => s.link(),
        }
    }

    /// The next ready packet, or `None` now. Never blocks.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, String> {
        match self {
            Capture::Pcap(s) => s.next_frame().map_err(|e| e.to_string()),
            Capture::Ebpf(s) => s.next_frame().map_err(|e| e.to_string()),
        }
    }

    /// Waits at most `timeout` for packets (see each backend's `wait`).
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, String> {
        match self {
            Capture::Pcap(s) => s.wait(timeout).map_err(|e| e.to_string()),
            Capture::Ebpf(s) => s.wait(timeout).map_err(|e| e.to_string()),
        }
    }

    /// Frames cut by the snaplen so far.
    pub fn truncated_frames(&self) -> u64 {
        match self {
            Capture::Pcap(s) => s.stats().truncated_frames,
            Capture::Ebpf(s) => s.stats().truncated_frames,
        }
    }

    /// The kernel's counters in libpcap's terms: for eBPF, `received` is the packets that matched the filter,
    /// `dropped` those lost for lack of ring room or a failed copy.
    pub fn kernel_stats(&mut self) -> Result<KernelStats, String> {
        match self {
            Capture::Pcap(s) => s.kernel_stats().map_err(|e| e.to_string()),
            Capture::Ebpf(s) => {
                let c = s.counters().map_err(|e| e.to_string())?;
                Ok(KernelStats { received: c.matched, dropped: c.reserve_failures + c.copy_failures, if_dropped: 0 })
            }
        }
    }

    /// The eBPF program's own counters (`None` for libpcap).
    pub fn ebpf_counters(&self) -> Option<EbpfCounters> {
        match self {
            Capture::Pcap(_) => None,
            Capture::Ebpf(s) => s.counters().ok(),
        }
    }
}

/// Opens every interface with the chosen backend (all or nothing). With [`Backend::Auto`], the eBPF backend is
/// tried first on every interface; if any cannot use it, all use libpcap, and one log line says why.
pub fn open_all(interfaces: &[LiveConfig], opts: &BackendOptions) -> Result<Vec<Capture>, String> {
    match opts.backend {
        Backend::Pcap => open_pcap(interfaces),
        Backend::Ebpf => open_ebpf(interfaces, opts),
        Backend::Auto => match open_ebpf(interfaces, opts) {
            Ok(c) => {
                tracing::info!("capture backend: eBPF (auto: the program loaded and attached on every interface)");
                Ok(c)
            }
            Err(_) if !super::live::built_in() && !super::ebpf::built_in() => Err("this agent was built with \
                 neither capture backend: install libpcap-dev (apt-get install libpcap-dev) and rebuild, or build \
                 its eBPF program (docs/ebpf.md)"
                .into()),
            Err(why) if !super::live::built_in() => {
                Err(format!("--backend auto: eBPF unavailable ({why}), and {}", super::live::NOT_BUILT))
            }
            Err(why) => {
                tracing::warn!("capture backend: libpcap (auto: eBPF unavailable: {why})");
                open_pcap(interfaces)
            }
        },
    }
}

/// The line a live run starts with, like tcpdump's "listening on eth0, link-type EN10MB (Ethernet)": every
/// interface with its link type, the backend used, the filter, the snapshot length and where segments go.
pub fn start_line(captures: &[Capture], interfaces: &[LiveConfig], out: &Path) -> String {
    let opened: Vec<(&str, LinkType)> = captures.iter().map(|c| (c.interface(), c.link())).collect();
    let backend = captures.first().map_or("none", Capture::backend);
    describe_start(&opened, backend, interfaces.first(), out)
}

fn describe_start(opened: &[(&str, LinkType)], backend: &str, cfg: Option<&LiveConfig>, out: &Path) -> String {
    let ifaces: Vec<String> =
        opened.iter().map(|(name, link)| format!("{name}, link-type {}", link_type_name(*link))).collect();
    let backend = match backend {
        "pcap" => "libpcap",
        "ebpf" => "eBPF",
        other => other,
    };
    let filter = match cfg.and_then(|c| c.filter.as_deref()) {
        Some(f) => format!("filter '{f}'"),
        None => "no filter".to_string(),
    };
    let snaplen = cfg.map_or(0, |c| c.snaplen);
    format!(
        "listening on {} with {backend}, {filter}, snapshot length {snaplen} bytes; writing segments to {}",
        ifaces.join("; "),
        out.display()
    )
}

/// A link type as tcpdump names it (`EN10MB (Ethernet)`), or its number.
fn link_type_name(link: LinkType) -> String {
    let known = match link {
        LinkType::NULL => "NULL (BSD loopback)",
        LinkType::ETHERNET => "EN10MB (Ethernet)",
        LinkType::RAW => "RAW (Raw IP)",
        LinkType::LOOP => "LOOP (OpenBSD loopback)",
        LinkType::LINUX_SLL => "LINUX_SLL (Linux cooked v1)",
        LinkType::IPV4 => "IPV4 (Raw IPv4)",
        LinkType::IPV6 => "IPV6 (Raw IPv6)",
        LinkType::LINUX_SLL2 => "LINUX_SLL2 (Linux cooked v2)",
        LinkType(n) => return n.to_string(),
    };
    known.to_string()
}

fn open_pcap(interfaces: &[LiveConfig]) -> Result<Vec<Capture>, String> {
    let mut out = Vec::with_capacity(interfaces.len());
    for (i, cfg) in interfaces.iter().enumerate() {
        out.push(Capture::Pcap(LiveSource::open(cfg, i as u32).map_err(|e| e.to_string())?));
    }
    Ok(out)
}

fn open_ebpf(interfaces: &[LiveConfig], opts: &BackendOptions) -> Result<Vec<Capture>, String> {
    if !super::ebpf::built_in() {
        return Err(EbpfError::NotBuilt.to_string());
    }
    let configs = interfaces.iter().map(|c| opts.ebpf_config(c)).collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(configs.len());
    for (i, cfg) in configs.iter().enumerate() {
        out.push(Capture::Ebpf(Box::new(EbpfSource::open(cfg, i as u32).map_err(|e| e.to_string())?)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_filter_comes_from_flags_or_from_the_supported_filter_subset() {
        let mut live = LiveConfig::new("eth0");
        live.filter = Some("tcp port 80 or tcp port 443".into());
        let opts = BackendOptions { backend: Backend::Ebpf, ..Default::default() };
        assert_eq!(opts.ebpf_config(&live).unwrap().filter.ports, [80, 443]);
        live.filter = Some("udp".into());
        let e = opts.ebpf_config(&live).unwrap_err();
        assert!(e.contains("udp") && e.contains("tcp port N"), "{e}");
        let flags = EbpfFilter { ports: vec![8000], cidrs: Vec::new() };
        let opts = BackendOptions { ebpf_filter: Some(flags.clone()), ring_size: Some(4096), ..opts };
        let c = opts.ebpf_config(&live).unwrap();
        assert_eq!((c.filter, c.ring_size), (flags, 4096));
    }

    #[test]
    fn flags_become_options_and_the_pcap_filter() {
        let ports = [8000u16];
        let cidrs = ["10.0.0.0/8".to_string()];
        let (o, f) = BackendOptions::from_flags(Backend::Auto, &ports, &cidrs, Some(4096), None, None).unwrap();
        assert_eq!(f.as_deref(), Some("tcp and (port 8000) and (net 10.0.0.0/8)"));
        assert_eq!(o.ebpf_filter.unwrap().ports, [8000]);
        assert_eq!(o.ring_size, Some(4096));
        let e = BackendOptions::from_flags(Backend::Auto, &ports, &[], None, None, Some("tcp")).unwrap_err();
        assert!(e.contains("one or the other"), "{e}");
        let e = BackendOptions::from_flags(Backend::Ebpf, &[], &[], None, None, Some("icmp")).unwrap_err();
        assert!(e.contains("icmp") && e.contains("tcp port N"), "{e}");
        // auto and pcap accept any filter (auto falls back to libpcap when opening).
        for b in [Backend::Auto, Backend::Pcap] {
            let (_, f) = BackendOptions::from_flags(b, &[], &[], None, None, Some("icmp")).unwrap();
            assert_eq!(f.as_deref(), Some("icmp"));
        }
        let e = BackendOptions::from_flags(Backend::Ebpf, &[], &[], Some(100), None, None).unwrap_err();
        assert!(e.contains("--ebpf-ring-size"), "{e}");
    }

    #[cfg(not(feature = "libpcap"))]
    #[test]
    fn without_libpcap_pcap_and_auto_say_how_to_get_it() {
        let live = LiveConfig::new("tapedeck-no-such-if0");
        for backend in [Backend::Pcap, Backend::Auto] {
            let e =
                open_all(std::slice::from_ref(&live), &BackendOptions { backend, ..Default::default() }).unwrap_err();
            assert!(e.contains("apt-get install libpcap-dev"), "{backend:?}: {e}");
        }
    }

    #[test]
    fn the_start_line_names_interfaces_link_types_backend_filter_and_output() {
        let mut cfg = LiveConfig::new("eth0");
        cfg.filter = Some("tcp port 80".into());
        let opened = [("eth0", LinkType::ETHERNET), ("any", LinkType::LINUX_SLL2), ("tun0", LinkType(147))];
        let line = describe_start(&opened, "pcap", Some(&cfg), Path::new("/var/lib/td"));
        assert_eq!(
            line,
            "listening on eth0, link-type EN10MB (Ethernet); any, link-type LINUX_SLL2 (Linux cooked v2); tun0, \
             link-type 147 with libpcap, filter 'tcp port 80', snapshot length 262144 bytes; writing segments to \
             /var/lib/td"
        );
        cfg.filter = None;
        let line = describe_start(&opened[..1], "ebpf", Some(&cfg), Path::new("out"));
        assert!(line.contains(" with eBPF, no filter, "), "{line}");
    }

    #[test]
    fn ebpf_on_any_is_an_error() {
        let live = LiveConfig::new("any");
        let e = open_all(std::slice::from_ref(&live), &BackendOptions { backend: Backend::Ebpf, ..Default::default() })
            .unwrap_err();
        assert!(e.contains("any") || e.contains("built without"), "{e}");
    }
}
