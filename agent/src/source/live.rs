//! Live capture from a network interface through libpcap (the `pcap` crate). A [`LiveSource`] yields the same
//! [`Frame`]s as the file reader, with the interface's own link type, and never blocks: [`LiveSource::next_frame`]
//! returns what the kernel has ready or `None`, and [`LiveSource::wait`] sleeps on the capture descriptor (poll)
//! for at most a given time, so that the caller can check its stop flag.
//!
//! The handle is opened in block mode (TPACKET_V3: the kernel fills blocks of packets and wakes the reader when a
//! block is full or 10 ms old), not immediate mode: immediate mode means a wakeup per packet, and with libpcap's
//! TPACKET_V2 ring snaplen-sized slots, so a 16 MiB buffer held only 64 full-size packets. Non-promiscuous by
//! default, with nanosecond timestamps. Kernel counters
//! (`pcap_stats`: received, dropped for lack of buffer room, dropped by the interface) are 32-bit and wrap; they
//! are widened here so that totals keep growing.
//!
//! libpcap is the `libpcap` cargo feature (default). Without it, [`LiveSource::open`] fails with
//! [`LiveError::NotBuilt`], which says how to get it, and the types here stay so that the rest compiles unchanged.

use std::time::Duration;

/// How long the kernel may hold a partly filled block before handing it to the reader (milliseconds).
#[cfg(feature = "libpcap")]
const BLOCK_TIMEOUT_MS: i32 = 10;

#[cfg(feature = "libpcap")]
use ::pcap::{Active, Capture, Precision};
#[cfg(feature = "libpcap")]
use rustix::event::{PollFd, PollFlags, Timespec};
#[cfg(feature = "libpcap")]
use tapedeck_model::Timestamp;

use super::{Frame, LinkType};

/// Whether this agent was built with libpcap (the `libpcap` cargo feature).
pub const fn built_in() -> bool {
    cfg!(feature = "libpcap")
}

/// What to do when libpcap was left out of the build.
pub const NOT_BUILT: &str = "this agent was built without libpcap (cargo feature `libpcap`): install libpcap-dev \
     (apt-get install libpcap-dev) and rebuild, or use --backend ebpf";

/// What to open.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface name (`eth0`, `any`).
    pub interface: String,
    /// A BPF filter expression (`tcp port 80`), or none for every packet.
    pub filter: Option<String>,
    /// Bytes kept of each packet. Default 262144 (libpcap's maximum).
    pub snaplen: u32,
    /// Kernel buffer size in bytes. Default 16 MiB.
    pub buffer_size: u32,
    /// Whether to put the interface in promiscuous mode. Default false.
    pub promiscuous: bool,
}

impl LiveConfig {
    /// The defaults for `interface`.
    pub fn new(interface: impl Into<String>) -> Self {
        LiveConfig {
            interface: interface.into(),
            filter: None,
            snaplen: 262_144,
            buffer_size: 16 << 20,
            promiscuous: false,
        }
    }
}

/// Errors of a live source; each names the interface.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The agent was built without libpcap.
    #[cfg(not(feature = "libpcap"))]
    #[error("capturing on {interface}: {NOT_BUILT}")]
    NotBuilt {
        /// The interface.
        interface: String,
    },
    /// The interface could not be opened (no such device, no permission, ...).
    #[cfg(feature = "libpcap")]
    #[error("capturing on {interface}: {source}")]
    Open {
        /// The interface.
        interface: String,
        /// libpcap's reason.
        #[source]
        source: ::pcap::Error,
    },
    /// The filter expression did not compile.
    #[cfg(feature = "libpcap")]
    #[error("filter {filter:?} on {interface}: {source}")]
    Filter {
        /// The interface.
        interface: String,
        /// The expression.
        filter: String,
        /// libpcap's reason.
        #[source]
        source: ::pcap::Error,
    },
    /// Reading failed (the interface went away, ...).
    #[error("reading from {interface}: {reason}")]
    Read {
        /// The interface.
        interface: String,
        /// What failed.
        reason: String,
    },
}

/// Kernel counters of a capture, widened to 64 bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelStats {
    /// Packets the kernel passed the filter (`ps_recv`).
    pub received: u64,
    /// Packets dropped because the capture buffer was full (`ps_drop`).
    pub dropped: u64,
    /// Packets dropped by the interface or driver (`ps_ifdrop`).
    pub if_dropped: u64,
}

/// Counters of a live source.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LiveSourceStats {
    /// Frames returned.
    pub frames: u64,
    /// Captured bytes in those frames.
    pub frame_bytes: u64,
    /// Frames cut by the snaplen (captured length below the length on the wire).
    pub truncated_frames: u64,
    /// Frames whose timestamp was negative (set to 0).
    pub bad_timestamps: u64,
}

/// One open interface. See the module docs.
#[cfg(feature = "libpcap")]
pub struct LiveSource {
    cap: Capture<Active>,
    interface: String,
    index: u32,
    link: LinkType,
    stats: LiveSourceStats,
    kernel_last: (u32, u32, u32),
    kernel: KernelStats,
}

/// Without libpcap no interface can be opened: this type has no value.
#[cfg(not(feature = "libpcap"))]
pub struct LiveSource {
    never: std::convert::Infallible,
}

#[cfg(not(feature = "libpcap"))]
impl LiveSource {
    /// Always [`LiveError::NotBuilt`].
    pub fn open(cfg: &LiveConfig, _index: u32) -> Result<Self, LiveError> {
        Err(LiveError::NotBuilt { interface: cfg.interface.clone() })
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        match self.never {}
    }

    /// The link type of the interface.
    pub fn link(&self) -> LinkType {
        match self.never {}
    }

    /// The counters.
    pub fn stats(&self) -> &LiveSourceStats {
        match self.never {}
    }

    /// The next packet.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, LiveError> {
        match self.never {}
    }

    /// Waits for packets.
    pub fn wait(&self, _timeout: Duration) -> Result<bool, LiveError> {
        match self.never {}
    }

    /// The kernel's counters.
    pub fn kernel_stats(&mut self) -> Result<KernelStats, LiveError> {
        match self.never {}
    }
}

#[cfg(feature = "libpcap")]
impl LiveSource {
    /// Opens `cfg.interface`, applies the filter, and switches to non-blocking reads. `index` is put in every
    /// frame's `interface` field.
    pub fn open(cfg: &LiveConfig, index: u32) -> Result<Self, LiveError> {
        let open_err = |source| LiveError::Open { interface: cfg.interface.clone(), source };
        // Nanosecond timestamps: Linux libpcap (1.5 and later) always offers them.
        let cap = Capture::from_device(cfg.interface.as_str())
            .map_err(open_err)?
            .snaplen(i32::try_from(cfg.snaplen).unwrap_or(i32::MAX))
            .buffer_size(i32::try_from(cfg.buffer_size).unwrap_or(i32::MAX))
            .promisc(cfg.promiscuous)
            .immediate_mode(false)
            .timeout(BLOCK_TIMEOUT_MS)
            .precision(Precision::Nano)
            .open()
            .map_err(open_err)?;
        let mut cap = cap;
        if let Some(f) = &cfg.filter {
            cap.filter(f, true).map_err(|source| LiveError::Filter {
                interface: cfg.interface.clone(),
                filter: f.clone(),
                source,
            })?;
        }
        let cap = cap.setnonblock().map_err(open_err)?;
        let link = LinkType(u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX));
        Ok(LiveSource {
            cap,
            interface: cfg.interface.clone(),
            index,
            link,
            stats: LiveSourceStats::default(),
            kernel_last: (0, 0, 0),
            kernel: KernelStats::default(),
        })
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The link type of the interface (Ethernet, Linux cooked capture for `any`, ...).
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The counters.
    pub fn stats(&self) -> &LiveSourceStats {
        &self.stats
    }

    /// The next packet the kernel has ready, or `None` when there is none now. Never blocks.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, LiveError> {
        match self.cap.next_packet() {
            Ok(p) => {
                let secs = p.header.ts.tv_sec;
                let frac = p.header.ts.tv_usec;
                let ts = if secs < 0 || frac < 0 {
                    self.stats.bad_timestamps += 1;
                    Timestamp(0)
                } else {
                    let frac = u64::try_from(frac).unwrap_or(0);
                    let nanos = frac.min(999_999_999);
                    Timestamp(u64::try_from(secs).unwrap_or(0).saturating_mul(1_000_000_000).saturating_add(nanos))
                };
                self.stats.frames += 1;
                self.stats.frame_bytes += p.data.len() as u64;
                let orig_len = p.header.len.max(p.data.len() as u32);
                if (p.data.len() as u64) < u64::from(orig_len) {
                    self.stats.truncated_frames += 1;
                }
                Ok(Some(Frame {
                    ts,
                    link: self.link,
                    data: p.data,
                    orig_len,
                    interface: self.index,
                    number: self.stats.frames,
                }))
            }
            Err(::pcap::Error::TimeoutExpired | ::pcap::Error::NoMorePackets) => Ok(None),
            Err(e) => Err(LiveError::Read { interface: self.interface.clone(), reason: e.to_string() }),
        }
    }

    /// Waits at most `timeout` for packets to be ready. Returns whether some may be (a spurious `true` is fine:
    /// [`LiveSource::next_frame`] then returns `None`). An interrupted wait returns `true`.
    pub fn wait(&self, timeout: Duration) -> Result<bool, LiveError> {
        let mut fds = [PollFd::new(&self.cap, PollFlags::IN)];
        let ts = Timespec::try_from(timeout).unwrap_or(Timespec { tv_sec: 1, tv_nsec: 0 });
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) => {
                let rev = fds[0].revents();
                if rev.intersects(PollFlags::ERR | PollFlags::NVAL) {
                    return Err(LiveError::Read {
                        interface: self.interface.clone(),
                        reason: format!("poll reported {rev:?}"),
                    });
                }
                Ok(n > 0)
            }
            Err(rustix::io::Errno::INTR) => Ok(true),
            Err(e) => Err(LiveError::Read { interface: self.interface.clone(), reason: format!("poll: {e}") }),
        }
    }

    /// The kernel's counters since the capture started (widened across 32-bit wrap-around, as long as this is
    /// called at least once per 2^32 packets).
    pub fn kernel_stats(&mut self) -> Result<KernelStats, LiveError> {
        let s = self
            .cap
            .stats()
            .map_err(|e| LiveError::Read { interface: self.interface.clone(), reason: format!("stats: {e}") })?;
        let (r, d, i) = self.kernel_last;
        self.kernel.received += u64::from(s.received.wrapping_sub(r));
        self.kernel.dropped += u64::from(s.dropped.wrapping_sub(d));
        self.kernel.if_dropped += u64::from(s.if_dropped.wrapping_sub(i));
        self.kernel_last = (s.received, s.dropped, s.if_dropped);
        Ok(self.kernel)
    }
}

#[cfg(all(test, not(feature = "libpcap")))]
mod tests_without_libpcap {
    use super::*;

    #[test]
    fn opening_says_libpcap_was_left_out_and_how_to_get_it() {
        // LiveSource has no value without libpcap: opening can only fail.
        let Err(e) = LiveSource::open(&LiveConfig::new("eth7"), 0);
        let e = e.to_string();
        assert!(e.contains("eth7") && e.contains("without libpcap"), "{e}");
        assert!(e.contains("apt-get install libpcap-dev") && e.contains("--backend ebpf"), "{e}");
        assert!(!built_in());
    }
}

#[cfg(all(test, feature = "libpcap"))]
mod tests {
    use super::*;

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false)
    }

    #[test]
    fn a_missing_interface_is_an_error_naming_it() {
        let Err(e) = LiveSource::open(&LiveConfig::new("tapedeck-no-such-if0"), 0) else {
            panic!("opened a missing interface");
        };
        assert!(e.to_string().contains("tapedeck-no-such-if0"), "{e}");
    }

    #[test]
    fn loopback_frames_are_delivered_without_blocking() {
        if !is_root() {
            eprintln!("skipped: capturing on lo needs root (CAP_NET_RAW)");
            return;
        }
        let listener = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut cfg = LiveConfig::new("lo");
        cfg.filter = Some(format!("udp dst port {port}"));
        let mut src = LiveSource::open(&cfg, 3).unwrap();
        assert_eq!(src.link(), LinkType::ETHERNET, "Linux lo is DLT_EN10MB");
        // Nothing matches yet: no frame, and no blocking.
        let t = std::time::Instant::now();
        assert!(src.next_frame().unwrap().is_none());
        // `wait` may wake spuriously (a block retired by its timeout): only its bound is checked.
        let _ = src.wait(Duration::from_millis(50)).unwrap();
        assert!(src.next_frame().unwrap().is_none());
        assert!(t.elapsed() < Duration::from_secs(2));
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"tapedeck-live-test", ("127.0.0.1", port)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let frame = loop {
            if let Some(f) = src.next_frame().unwrap() {
                break (f.interface, f.number, f.data.to_vec(), f.ts, f.orig_len);
            }
            assert!(std::time::Instant::now() < deadline, "no frame within 5 s");
            src.wait(Duration::from_millis(100)).unwrap();
        };
        let (iface, number, data, ts, orig_len) = frame;
        assert_eq!((iface, number), (3, 1));
        assert!(data.ends_with(b"tapedeck-live-test"));
        assert_eq!(orig_len as usize, data.len());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(ts.0 <= now && now - ts.0 < 60_000_000_000, "timestamp {ts:?} is not about now ({now})");
        let k = src.kernel_stats().unwrap();
        assert!(k.received >= 1, "{k:?}");
        assert_eq!(src.stats().frames, 1);
    }

    #[test]
    fn a_bad_filter_is_an_error_naming_it() {
        if !is_root() {
            eprintln!("skipped: capturing on lo needs root (CAP_NET_RAW)");
            return;
        }
        let mut cfg = LiveConfig::new("lo");
        cfg.filter = Some("tcp port banana".into());
        let Err(e) = LiveSource::open(&cfg, 0) else { panic!("bad filter accepted") };
        assert!(matches!(e, LiveError::Filter { .. }) && e.to_string().contains("banana"), "{e}");
    }
}
