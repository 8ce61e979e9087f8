//! Live capture through tapedeck's own eBPF program (`agent-ebpf`): TC classifiers on an interface's ingress and
//! egress copy matching TCP packets into a ring buffer, and an [`EbpfSource`] reads the records back as the same
//! [`Frame`]s a libpcap [`super::live::LiveSource`] yields, so everything after the source is unchanged.
//!
//! One [`EbpfSource`] per interface: each loads its own copy of the program, with its own ring (size from
//! [`EbpfConfig::ring_size`]), counters and filter tables, and detaches when dropped.
//!
//! Wakeups are batched: the kernel wakes the reader only once [`EbpfConfig::wakeup_bytes`] are waiting;
//! [`EbpfSource::wait`] never sleeps longer than [`EbpfConfig::drain_interval`], so records below the threshold
//! wait at most that long. Kernel timestamps (`CLOCK_MONOTONIC`) are turned into wall-clock time with an offset
//! measured when the source opens and refreshed on every wait.
//!
//! Every loss is counted: in the kernel ([`EbpfCounters`]: reserve failures when the ring is full, copy failures)
//! and here ([`EbpfSourceStats`]: malformed records). The object is embedded at build time by `agent/build.rs`;
//! an agent built without the BPF toolchain has none, and [`EbpfSource::open`] says so ([`EbpfError::NotBuilt`]).

pub mod filter;

use std::time::Duration;

use agent_ebpf_common::filter::{FILTER_CIDR4, FILTER_CIDR6, FILTER_PORTS};
use agent_ebpf_common::maps as m;
use agent_ebpf_common::record::RecordHeader;
use aya::maps::lpm_trie::Key;
use aya::maps::{Array, LpmTrie, MapData, MapError, PerCpuArray, RingBuf};
use aya::programs::{ProgramError, SchedClassifier, TcAttachType, tc};
use aya::{Ebpf, EbpfLoader};
use ipnet::IpNet;
use rustix::event::{PollFd, PollFlags, Timespec};
use tapedeck_model::Timestamp;

pub use filter::{EbpfFilter, UnsupportedFilter};

use super::{Frame, LinkType};

/// The compiled program, when the build had the BPF toolchain.
#[cfg(tapedeck_ebpf)]
fn object() -> Option<&'static [u8]> {
    Some(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf")))
}

/// The compiled program, when the build had the BPF toolchain.
#[cfg(not(tapedeck_ebpf))]
fn object() -> Option<&'static [u8]> {
    None
}

/// Whether this agent carries the eBPF program (built with the BPF toolchain).
pub fn built_in() -> bool {
    object().is_some()
}

/// What to open on one interface.
#[derive(Clone, Debug)]
pub struct EbpfConfig {
    /// Interface name (not `any`: programs attach to one interface each).
    pub interface: String,
    /// What the kernel keeps (TCP only in any case).
    pub filter: EbpfFilter,
    /// Bytes kept of each packet (at most `agent_ebpf_common::record::MAX_SNAPLEN`).
    pub snaplen: u32,
    /// The ring buffer's size in bytes; rounded up to a power of two, at least one page. Default 16 MiB.
    pub ring_size: u32,
    /// The kernel wakes the reader once this many bytes wait in the ring. Default: a quarter of the ring, at
    /// most 256 KiB.
    pub wakeup_bytes: Option<u32>,
    /// The longest a record below the wakeup threshold waits before being read. Default 10 ms.
    pub drain_interval: Duration,
}

impl EbpfConfig {
    /// The defaults for `interface`.
    pub fn new(interface: impl Into<String>) -> Self {
        EbpfConfig {
            interface: interface.into(),
            filter: EbpfFilter::default(),
            snaplen: 262_144,
            ring_size: 16 << 20,
            wakeup_bytes: None,
            drain_interval: Duration::from_millis(10),
        }
    }

    /// The ring size the kernel gets: a power of two, at least 4096.
    pub fn ring_bytes(&self) -> u32 {
        self.ring_size.max(4096).checked_next_power_of_two().unwrap_or(1 << 31)
    }

    /// The wakeup threshold in bytes.
    pub fn wakeup_threshold(&self) -> u32 {
        self.wakeup_bytes.unwrap_or_else(|| (self.ring_bytes() / 4).min(256 << 10))
    }
}

/// Errors of the eBPF backend; each names the interface when there is one.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// This agent was built without the eBPF program.
    #[error(
        "this agent was built without its eBPF program (bpf-linker or nightly with rust-src missing at build \
         time, or TAPEDECK_NO_EBPF=1): rebuild with the BPF toolchain (docs/ebpf.md) or use --backend pcap"
    )]
    NotBuilt,
    /// The interface or configuration cannot be served by the eBPF backend.
    #[error("eBPF capture on {interface}: {reason}")]
    Unsupported {
        /// The interface.
        interface: String,
        /// Why.
        reason: String,
    },
    /// Loading the object or its maps failed.
    #[error("eBPF capture on {interface}: loading the program: {source}{hint}")]
    Load {
        /// The interface.
        interface: String,
        /// aya's reason.
        #[source]
        source: Box<aya::EbpfError>,
        /// A hint about privileges, or empty.
        hint: &'static str,
    },
    /// Loading (verifying) or attaching a program failed.
    #[error("eBPF capture on {interface}: {what} {program}: {source}{hint}")]
    Program {
        /// The interface.
        interface: String,
        /// "loading" or "attaching".
        what: &'static str,
        /// The program's name.
        program: &'static str,
        /// aya's reason (with the verifier's log when verification failed).
        #[source]
        source: Box<ProgramError>,
        /// A hint about privileges, or empty.
        hint: &'static str,
    },
    /// A map was missing or could not be read or written.
    #[error("eBPF capture on {interface}: map {map}: {reason}")]
    Map {
        /// The interface.
        interface: String,
        /// The map's name.
        map: &'static str,
        /// What failed.
        reason: String,
    },
    /// Waiting on the ring failed.
    #[error("reading from {interface}: {reason}")]
    Read {
        /// The interface.
        interface: String,
        /// What failed.
        reason: String,
    },
}

const PRIVILEGE_HINT: &str = " (the eBPF backend needs root, or CAP_BPF with CAP_NET_ADMIN and CAP_PERFMON)";

fn hint_for(e: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::PermissionDenied
        {
            return PRIVILEGE_HINT;
        }
        cur = err.source();
    }
    let text = e.to_string();
    if text.contains("Operation not permitted") || text.contains("Permission denied") { PRIVILEGE_HINT } else { "" }
}

/// The kernel program's counters, summed over CPUs, and the reader's count of malformed records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EbpfCounters {
    /// Packets the classifiers saw (every packet on the interface, both directions).
    pub seen: u64,
    /// TCP packets that passed the filter.
    pub matched: u64,
    /// Records submitted to the ring.
    pub submitted: u64,
    /// Matched packets lost because the ring was full (the reader was too slow or the ring too small).
    pub reserve_failures: u64,
    /// Matched packets lost because copying their bytes failed.
    pub copy_failures: u64,
    /// Submitted packets cut at the snaplen.
    pub truncated: u64,
    /// Submissions that woke the reader (past the wakeup threshold); the rest were read on the drain timer or
    /// along with a woken batch.
    pub wakeups: u64,
    /// Records the reader skipped as malformed (shorter than their header or declared length; never expected).
    pub malformed_records: u64,
}

/// Counters of the user side of an eBPF source.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EbpfSourceStats {
    /// Frames returned.
    pub frames: u64,
    /// Captured bytes in those frames.
    pub frame_bytes: u64,
    /// Frames cut by the snaplen (captured length below the length on the wire).
    pub truncated_frames: u64,
    /// Ring records too short for their header or their declared length (skipped).
    pub malformed_records: u64,
}

/// `CLOCK_MONOTONIC` to wall-clock time.
#[derive(Clone, Copy, Debug)]
struct Clock {
    /// Realtime minus monotonic, in nanoseconds.
    offset: i128,
}

impl Clock {
    fn now() -> Self {
        let nanos = |t: rustix::time::Timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
        let mono = nanos(rustix::time::clock_gettime(rustix::time::ClockId::Monotonic));
        let real = nanos(rustix::time::clock_gettime(rustix::time::ClockId::Realtime));
        Clock { offset: real - mono }
    }

    fn wall(&self, mono_ns: u64) -> Timestamp {
        let t = i128::from(mono_ns) + self.offset;
        Timestamp(u64::try_from(t.max(0)).unwrap_or(u64::MAX))
    }
}

/// One interface captured by the eBPF program. See the module docs.
pub struct EbpfSource {
    interface: String,
    index: u32,
    link: LinkType,
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    /// Owns the programs and their attachments: dropping it detaches them.
    _ebpf: Ebpf,
    /// The last record's packet bytes (the ring slot is released before the frame is returned).
    buf: Vec<u8>,
    clock: Clock,
    drain: Duration,
    stats: EbpfSourceStats,
}

impl std::fmt::Debug for EbpfSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EbpfSource").field("interface", &self.interface).field("link", &self.link).finish()
    }
}

/// What an interface looks like to the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Link {
    /// The link type of the records.
    link: LinkType,
    /// What the program finds in front of IP (`LINK_*`).
    program: u64,
    /// Loopback: every packet leaves and comes back through the same interface, so only ingress is attached
    /// (libpcap likewise skips loopback's outgoing copies); elsewhere both directions are.
    loopback: bool,
}

/// The link of an interface, from its ARPHRD type.
fn link_of(interface: &str) -> Result<Link, EbpfError> {
    let unsupported = |reason: String| EbpfError::Unsupported { interface: interface.to_string(), reason };
    if interface == "any" {
        return Err(unsupported(
            "programs attach to one interface each: name the interfaces (--iface eth0 --iface eth1), or use \
             --backend pcap for 'any'"
                .into(),
        ));
    }
    let path = format!("/sys/class/net/{interface}/type");
    let text = std::fs::read_to_string(&path).map_err(|e| unsupported(format!("no such interface ({path}: {e})")))?;
    match text.trim().parse::<u32>() {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK: an Ethernet header.
        Ok(t @ (1 | 772)) => Ok(Link { link: LinkType::ETHERNET, program: m::LINK_ETHERNET, loopback: t == 772 }),
        // ARPHRD_NONE (tun, wireguard), ARPHRD_RAWIP: the IP header first.
        Ok(65534 | 519) => Ok(Link { link: LinkType::RAW, program: m::LINK_RAW, loopback: false }),
        Ok(t) => Err(unsupported(format!("link type {t} (ARPHRD) is not supported; use --backend pcap"))),
        Err(_) => Err(unsupported(format!("unreadable link type {:?} in {path}", text.trim()))),
    }
}

impl EbpfSource {
    /// Loads the program, fills its filter tables, attaches it to the interface's ingress and egress. `index` is
    /// put in every frame's `interface` field.
    pub fn open(cfg: &EbpfConfig, index: u32) -> Result<Self, EbpfError> {
        let obj = object().ok_or(EbpfError::NotBuilt)?;
        let link = link_of(&cfg.interface)?;
        let iface = cfg.interface.clone();
        let mut ebpf = load(obj, cfg.ring_bytes(), &iface)?;
        configure(&mut ebpf, cfg, link.program)?;
        let directions: &[(&'static str, TcAttachType)] = if link.loopback {
            &[(m::PROG_INGRESS, TcAttachType::Ingress)]
        } else {
            &[(m::PROG_INGRESS, TcAttachType::Ingress), (m::PROG_EGRESS, TcAttachType::Egress)]
        };
        for &(program, kind) in directions {
            let prog = classifier(&mut ebpf, program, &iface)?;
            let perr = |what, source: ProgramError| {
                let hint = hint_for(&source);
                EbpfError::Program { interface: iface.clone(), what, program, source: Box::new(source), hint }
            };
            prog.load().map_err(|e| perr("loading", e))?;
            if let Err(first) = prog.attach(&cfg.interface, kind) {
                // Kernels before 6.6 attach through a clsact qdisc, which may need adding first.
                if tc::qdisc_add_clsact(&cfg.interface).is_err() {
                    return Err(perr("attaching", first));
                }
                prog.attach(&cfg.interface, kind).map_err(|e| perr("attaching", e))?;
            }
        }
        let map_err = |map: &'static str, reason: String| EbpfError::Map { interface: iface.clone(), map, reason };
        let ring = ebpf.take_map(m::EVENTS).ok_or_else(|| map_err("EVENTS", "missing".into()))?;
        let ring = RingBuf::try_from(ring).map_err(|e| map_err("EVENTS", e.to_string()))?;
        let counters = ebpf.take_map(m::COUNTERS).ok_or_else(|| map_err("COUNTERS", "missing".into()))?;
        let counters = PerCpuArray::try_from(counters).map_err(|e| map_err("COUNTERS", e.to_string()))?;
        Ok(EbpfSource {
            interface: cfg.interface.clone(),
            index,
            link: link.link,
            ring,
            counters,
            _ebpf: ebpf,
            buf: Vec::with_capacity(64 << 10),
            clock: Clock::now(),
            drain: cfg.drain_interval.max(Duration::from_millis(1)),
            stats: EbpfSourceStats::default(),
        })
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The link type of the records (Ethernet, or raw IP for tun-like interfaces).
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The user-side counters.
    pub fn stats(&self) -> &EbpfSourceStats {
        &self.stats
    }

    /// The next record in the ring, or `None` when there is none now. Never blocks.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, EbpfError> {
        let header = loop {
            let Some(item) = self.ring.next() else {
                return Ok(None);
            };
            match RecordHeader::decode(&item) {
                Some((h, data)) => {
                    self.buf.clear();
                    self.buf.extend_from_slice(data);
                    break h;
                }
                None => self.stats.malformed_records += 1,
            }
        };
        self.stats.frames += 1;
        self.stats.frame_bytes += self.buf.len() as u64;
        let orig_len = header.len.max(header.caplen);
        if header.caplen < orig_len {
            self.stats.truncated_frames += 1;
        }
        Ok(Some(Frame {
            ts: self.clock.wall(header.ts_ns),
            link: self.link,
            data: &self.buf,
            orig_len,
            interface: self.index,
            number: self.stats.frames,
        }))
    }

    /// Waits until the kernel wakes the reader (a batch is waiting) or the drain interval passes, whichever comes
    /// first, and at most `timeout`. Returns `true` ("read now"): records below the wakeup threshold are only
    /// found by reading.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, EbpfError> {
        let mut fds = [PollFd::new(&self.ring, PollFlags::IN)];
        let t = timeout.min(self.drain);
        let ts = Timespec::try_from(t).unwrap_or(Timespec { tv_sec: 0, tv_nsec: 10_000_000 });
        let polled = rustix::event::poll(&mut fds, Some(&ts));
        self.clock = Clock::now();
        match polled {
            Ok(_) => {
                let rev = fds[0].revents();
                if rev.intersects(PollFlags::ERR | PollFlags::NVAL) {
                    return Err(EbpfError::Read {
                        interface: self.interface.clone(),
                        reason: format!("poll reported {rev:?}"),
                    });
                }
                Ok(true)
            }
            Err(rustix::io::Errno::INTR) => Ok(true),
            Err(e) => Err(EbpfError::Read { interface: self.interface.clone(), reason: format!("poll: {e}") }),
        }
    }

    /// The kernel program's counters (summed over CPUs), with the reader's malformed records.
    pub fn counters(&self) -> Result<EbpfCounters, EbpfError> {
        let get = |slot: u32| -> Result<u64, EbpfError> {
            let v = self.counters.get(&slot, 0).map_err(|e| EbpfError::Map {
                interface: self.interface.clone(),
                map: "COUNTERS",
                reason: e.to_string(),
            })?;
            Ok(v.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
        };
        Ok(EbpfCounters {
            seen: get(m::C_SEEN)?,
            matched: get(m::C_MATCHED)?,
            submitted: get(m::C_SUBMITTED)?,
            reserve_failures: get(m::C_RESERVE_FAILED)?,
            copy_failures: get(m::C_COPY_FAILED)?,
            truncated: get(m::C_TRUNCATED)?,
            wakeups: get(m::C_WAKEUPS)?,
            malformed_records: self.stats.malformed_records,
        })
    }
}

/// Loads the object with the ring resized (maps created; programs not yet loaded).
fn load(obj: &[u8], ring_bytes: u32, iface: &str) -> Result<Ebpf, EbpfError> {
    EbpfLoader::new().map_max_entries(m::EVENTS, ring_bytes).load(obj).map_err(|source| {
        let hint = hint_for(&source);
        EbpfError::Load { interface: iface.to_string(), source: Box::new(source), hint }
    })
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
    iface: &str,
) -> Result<&'a mut SchedClassifier, EbpfError> {
    let missing = |reason: String| EbpfError::Unsupported {
        interface: iface.to_string(),
        reason: format!("{program}: {reason}"),
    };
    let p = ebpf.program_mut(program).ok_or_else(|| missing("the program is missing from the object".into()))?;
    p.try_into().map_err(|e: ProgramError| missing(e.to_string()))
}

/// Writes the configuration and the filter tables.
fn configure(ebpf: &mut Ebpf, cfg: &EbpfConfig, link: u64) -> Result<(), EbpfError> {
    let iface = cfg.interface.as_str();
    let map_err = |map: &'static str| {
        move |e: MapError| EbpfError::Map { interface: iface.to_string(), map, reason: e.to_string() }
    };
    let missing = |map: &'static str| EbpfError::Map { interface: iface.to_string(), map, reason: "missing".into() };
    let mut flags = 0u64;
    {
        let map = ebpf.map_mut(m::PORTS).ok_or_else(|| missing("PORTS"))?;
        let mut ports: Array<&mut MapData, u8> = Array::try_from(map).map_err(map_err("PORTS"))?;
        for p in &cfg.filter.ports {
            ports.set(u32::from(*p), 1u8, 0).map_err(map_err("PORTS"))?;
            flags |= FILTER_PORTS;
        }
    }
    let (v4, v6): (Vec<&IpNet>, Vec<&IpNet>) = cfg.filter.cidrs.iter().partition(|n| matches!(n, IpNet::V4(_)));
    if v4.len() > m::MAX_CIDRS as usize || v6.len() > m::MAX_CIDRS as usize {
        return Err(EbpfError::Unsupported {
            interface: iface.to_string(),
            reason: format!("at most {} prefixes per address family", m::MAX_CIDRS),
        });
    }
    {
        let map = ebpf.map_mut(m::CIDR4).ok_or_else(|| missing("CIDR4"))?;
        let mut t: LpmTrie<&mut MapData, [u8; 4], u8> = LpmTrie::try_from(map).map_err(map_err("CIDR4"))?;
        for n in &v4 {
            if let IpNet::V4(n) = n {
                t.insert(&Key::new(u32::from(n.prefix_len()), n.network().octets()), 1u8, 0)
                    .map_err(map_err("CIDR4"))?;
                flags |= FILTER_CIDR4;
            }
        }
    }
    {
        let map = ebpf.map_mut(m::CIDR6).ok_or_else(|| missing("CIDR6"))?;
        let mut t: LpmTrie<&mut MapData, [u8; 16], u8> = LpmTrie::try_from(map).map_err(map_err("CIDR6"))?;
        for n in &v6 {
            if let IpNet::V6(n) = n {
                t.insert(&Key::new(u32::from(n.prefix_len()), n.network().octets()), 1u8, 0)
                    .map_err(map_err("CIDR6"))?;
                flags |= FILTER_CIDR6;
            }
        }
    }
    let map = ebpf.map_mut(m::CONFIG).ok_or_else(|| missing("CONFIG"))?;
    let mut config: Array<&mut MapData, u64> = Array::try_from(map).map_err(map_err("CONFIG"))?;
    for (slot, value) in [
        (m::CFG_LINK, link),
        (m::CFG_SNAPLEN, u64::from(cfg.snaplen)),
        (m::CFG_WAKEUP_BYTES, u64::from(cfg.wakeup_threshold())),
        (m::CFG_FILTER, flags),
    ] {
        config.set(slot, value, 0).map_err(map_err("CONFIG"))?;
    }
    Ok(())
}

/// Loads the program into the kernel and has the verifier check both classifiers, without attaching anything.
/// For tests and `agent --backend` diagnostics.
pub fn verify() -> Result<(), EbpfError> {
    let obj = object().ok_or(EbpfError::NotBuilt)?;
    let mut ebpf = load(obj, 4096, "-")?;
    for program in [m::PROG_INGRESS, m::PROG_EGRESS] {
        let prog = classifier(&mut ebpf, program, "-")?;
        prog.load().map_err(|source| {
            let hint = hint_for(&source);
            EbpfError::Program { interface: "-".into(), what: "loading", program, source: Box::new(source), hint }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_round_up_to_pages_and_powers_of_two() {
        let mut c = EbpfConfig::new("eth0");
        for (asked, got) in [(0, 4096), (4096, 4096), (5000, 8192), (16 << 20, 16 << 20), (u32::MAX, 1 << 31)] {
            c.ring_size = asked;
            assert_eq!(c.ring_bytes(), got, "asked {asked}");
        }
        c.ring_size = 4096;
        assert_eq!(c.wakeup_threshold(), 1024);
        c.ring_size = 64 << 20;
        assert_eq!(c.wakeup_threshold(), 256 << 10);
        c.wakeup_bytes = Some(1);
        assert_eq!(c.wakeup_threshold(), 1);
    }

    #[test]
    fn any_and_missing_interfaces_are_refused_by_name() {
        let e = link_of("any").unwrap_err().to_string();
        assert!(e.contains("any") && e.contains("--backend pcap"), "{e}");
        let e = link_of("tapedeck-no-such0").unwrap_err().to_string();
        assert!(e.contains("tapedeck-no-such0"), "{e}");
        let lo = link_of("lo").unwrap();
        assert_eq!((lo.link, lo.loopback), (LinkType::ETHERNET, true));
    }

    #[test]
    fn monotonic_times_become_wall_clock_times() {
        let c = Clock { offset: 1_700_000_000_000_000_000 };
        assert_eq!(c.wall(5).0, 1_700_000_000_000_000_005);
        let now = Clock::now();
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let mono = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let mono = mono.tv_sec as u64 * 1_000_000_000 + mono.tv_nsec as u64;
        let got = now.wall(mono).0;
        assert!(got.abs_diff(wall) < 1_000_000_000, "{got} vs {wall}");
    }
}
