//! Names of the maps and programs in the eBPF object, and the slots of its array maps. Both sides index the same
//! slots; changing one here changes both.

/// The ring buffer of captured packets (`BPF_MAP_TYPE_RINGBUF`).
pub const EVENTS: &str = "EVENTS";
/// Per-CPU counters (`BPF_MAP_TYPE_PERCPU_ARRAY` of `u64`), indexed by the `C_*` slots.
pub const COUNTERS: &str = "COUNTERS";
/// Configuration written by user space before attaching (`BPF_MAP_TYPE_ARRAY` of `u64`), indexed by `CFG_*`.
pub const CONFIG: &str = "CONFIG";
/// Selected TCP ports: an array of 65536 `u8`, non-zero for a selected port.
pub const PORTS: &str = "PORTS";
/// Selected IPv4 prefixes (`BPF_MAP_TYPE_LPM_TRIE`, key `[u8; 4]`, value `u8`).
pub const CIDR4: &str = "CIDR4";
/// Selected IPv6 prefixes (`BPF_MAP_TYPE_LPM_TRIE`, key `[u8; 16]`, value `u8`).
pub const CIDR6: &str = "CIDR6";
/// The classifier for traffic arriving at the interface.
pub const PROG_INGRESS: &str = "tapedeck_ingress";
/// The classifier for traffic leaving the interface.
pub const PROG_EGRESS: &str = "tapedeck_egress";

/// Entries of [`PORTS`].
pub const PORT_ENTRIES: u32 = 65_536;
/// Most prefixes in [`CIDR4`] and in [`CIDR6`].
pub const MAX_CIDRS: u32 = 1024;

/// `CONFIG` slot: what precedes the network header, a `LINK_*` value.
pub const CFG_LINK: u32 = 0;
/// `CONFIG` slot: most packet bytes copied into a record (clamped to [`crate::record::MAX_SNAPLEN`]; 0 means
/// the maximum).
pub const CFG_SNAPLEN: u32 = 1;
/// `CONFIG` slot: a record wakes the reader only when it takes the ring's unread bytes past this many (0: every
/// record wakes it).
pub const CFG_WAKEUP_BYTES: u32 = 2;
/// `CONFIG` slot: which filters are on, a set of [`crate::filter`] `FILTER_*` bits.
pub const CFG_FILTER: u32 = 3;
/// Slots in `CONFIG`.
pub const CONFIG_SLOTS: u32 = 4;

/// `CFG_LINK`: the packet starts with an Ethernet header (Ethernet, veth, loopback).
pub const LINK_ETHERNET: u64 = 0;
/// `CFG_LINK`: the packet starts with the IP header (tun, wireguard: `ARPHRD_NONE`).
pub const LINK_RAW: u64 = 1;

/// `COUNTERS` slot: packets the classifiers saw.
pub const C_SEEN: u32 = 0;
/// `COUNTERS` slot: TCP packets that passed the filter.
pub const C_MATCHED: u32 = 1;
/// `COUNTERS` slot: records submitted to the ring.
pub const C_SUBMITTED: u32 = 2;
/// `COUNTERS` slot: matched packets lost because the ring had no room for their record.
pub const C_RESERVE_FAILED: u32 = 3;
/// `COUNTERS` slot: matched packets lost because copying their bytes failed (the record was discarded).
pub const C_COPY_FAILED: u32 = 4;
/// `COUNTERS` slot: submitted records whose packet was longer than the snaplen (cut).
pub const C_TRUNCATED: u32 = 5;
/// `COUNTERS` slot: submissions that woke the reader (those crossing the wakeup threshold).
pub const C_WAKEUPS: u32 = 6;
/// Slots in `COUNTERS`.
pub const COUNTER_SLOTS: u32 = 7;
