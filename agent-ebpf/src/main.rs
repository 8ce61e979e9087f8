//! tapedeck's eBPF capture program: two TC classifiers (ingress and egress) sharing one set of maps. For each
//! packet: count it; find its TCP flow (`agent_ebpf_common::parse`); test it against the filter tables
//! (`agent_ebpf_common::filter`); reserve a ring buffer record of the smallest size class that holds the packet
//! (cut at the snaplen), fill in the metadata, copy the bytes, submit. Every packet passes: the classifiers only
//! return `TC_ACT_UNSPEC` ("next program", or pass when there is none).
//!
//! Wakeups are batched: a record is submitted with `BPF_RB_NO_WAKEUP` unless it takes the ring's unread bytes
//! past `CFG_WAKEUP_BYTES`, so the reader is woken once per batch rather than once per packet; the reader also
//! drains on a short timer (see docs/ebpf.md).
//!
//! Every outcome is counted in the per-CPU `COUNTERS` map: seen, matched, submitted, reserve failures (no room in
//! the ring), copy failures, truncated, wakeups.
#![no_std]
#![no_main]

use agent_ebpf_common::filter::{self, Tables};
use agent_ebpf_common::maps::*;
use agent_ebpf_common::parse::{self, Loader};
use agent_ebpf_common::record::{CLASSES, EGRESS, HEADER_LEN, INGRESS, MAX_SNAPLEN, RecordHeader, capture_len};
use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, TC_ACT_UNSPEC};
use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes};
use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::lpm_trie::Key;
use aya_ebpf::maps::{Array, LpmTrie, PerCpuArray, RingBuf};
use aya_ebpf::programs::TcContext;

/// Resized by the loader (`--ebpf-ring-size`).
#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[map(name = "CONFIG")]
static CONFIG: Array<u64> = Array::with_max_entries(CONFIG_SLOTS, 0);

#[map(name = "PORTS")]
static PORTS: Array<u8> = Array::with_max_entries(PORT_ENTRIES, 0);

#[map(name = "CIDR4")]
static CIDR4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(MAX_CIDRS, 0);

#[map(name = "CIDR6")]
static CIDR6: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(MAX_CIDRS, 0);

#[classifier]
pub fn tapedeck_ingress(ctx: TcContext) -> i32 {
    capture(&ctx, INGRESS);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn tapedeck_egress(ctx: TcContext) -> i32 {
    capture(&ctx, EGRESS);
    TC_ACT_UNSPEC
}

/// The packet through `bpf_skb_load_bytes`.
struct Skb<'a>(&'a TcContext);

impl Loader for Skb<'_> {
    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.0.load::<[u8; N]>(offset).ok()
    }
}

/// The filter tables as maps.
struct Maps;

impl Tables for Maps {
    #[inline(always)]
    fn port(&self, port: u16) -> bool {
        PORTS.get(u32::from(port)).is_some_and(|v| *v != 0)
    }
    #[inline(always)]
    fn v4(&self, addr: [u8; 4]) -> bool {
        CIDR4.get(Key::new(32, addr)).is_some()
    }
    #[inline(always)]
    fn v6(&self, addr: [u8; 16]) -> bool {
        CIDR6.get(Key::new(128, addr)).is_some()
    }
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: a per-CPU slot: only this CPU writes it, and programs do not migrate mid-run.
        unsafe { *p += 1 }
    }
}

#[inline(always)]
fn config(slot: u32) -> u64 {
    CONFIG.get(slot).copied().unwrap_or(0)
}

#[inline(always)]
fn capture(ctx: &TcContext, direction: u32) {
    count(C_SEEN);
    let Some(flow) = parse::tcp_flow(&Skb(ctx), config(CFG_LINK)) else {
        return;
    };
    if !filter::matches(config(CFG_FILTER), &flow, &Maps) {
        return;
    }
    count(C_MATCHED);
    let len = ctx.len();
    let n = capture_len(len, config(CFG_SNAPLEN));
    // One branch per size class: the ring's reserve needs a size the verifier knows.
    macro_rules! by_class {
        ($($i:literal)*) => {$(
            if n <= CLASSES[$i] {
                submit::<{ CLASSES[$i] }>(ctx, direction, len, n);
                return;
            }
        )*};
    }
    by_class!(0 1 2 3 4 5 6 7 8 9 10);
    const _: () = assert!(CLASSES.len() == 12 && CLASSES[11] == MAX_SNAPLEN);
    submit::<MAX_SNAPLEN>(ctx, direction, len, n);
}

/// A record of one size class.
#[repr(C)]
struct Record<const N: usize> {
    header: RecordHeader,
    data: [u8; N],
}

const _: () = assert!(core::mem::offset_of!(Record<128>, data) == HEADER_LEN);

#[inline(always)]
fn submit<const N: usize>(ctx: &TcContext, direction: u32, len: u32, n: usize) {
    // Decide the wakeup before reserving: wake the reader only when this record takes the unread bytes past the
    // threshold. Above it the reader has been woken already (and is reading, or will find the ring non-empty
    // when it next polls); below it the reader's drain timer picks the records up.
    let threshold = config(CFG_WAKEUP_BYTES);
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let after = waiting.saturating_add((HEADER_LEN + N) as u64);
    let wake = threshold == 0 || (waiting < threshold && after >= threshold);
    let Some(mut entry) = EVENTS.reserve::<Record<N>>(0) else {
        count(C_RESERVE_FAILED);
        return;
    };
    // The verifier wants the copy length bounded by the record and above zero.
    let n = if n > N { N } else { n };
    let rec = entry.as_mut_ptr();
    // SAFETY: `rec` points at a reserved record of `HEADER_LEN + N` bytes; the header is written whole, and at
    // most `N` bytes are copied into `data`.
    let copied = unsafe {
        let ifindex = (*ctx.skb.skb).ifindex;
        (*rec).header = RecordHeader { ts_ns: bpf_ktime_get_ns(), len, caplen: n as u32, ifindex, direction };
        n == 0 || bpf_skb_load_bytes(ctx.skb.skb.cast(), 0, (&raw mut (*rec).data).cast(), n as u32) == 0
    };
    if !copied {
        entry.discard(BPF_RB_NO_WAKEUP as u64);
        count(C_COPY_FAILED);
        return;
    }
    if wake {
        entry.submit(BPF_RB_FORCE_WAKEUP as u64);
        count(C_WAKEUPS);
    } else {
        entry.submit(BPF_RB_NO_WAKEUP as u64);
    }
    count(C_SUBMITTED);
    if n < len as usize {
        count(C_TRUNCATED);
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The kernel only accepts GPL-compatible programs for some helpers; none used here needs it, so the program
/// carries the project's license.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 11] = *b"Apache-2.0\0";
