//! Flow sharding: decoded TCP segments spread over `--workers` worker threads by a symmetric hash of their
//! address pair, so that both directions of a connection reach the same worker, each worker with its own flow
//! table, parsers and masking, all feeding the one writer thread.
//!
//! The decoding side ([`Sharder`], on the file reader or on each live capture thread) copies each segment into
//! the pending [`SegBatch`] of its worker and hands full batches over bounded channels. IP fragments are
//! reassembled by the decoder before sharding, so a fragmented segment is sharded like any other. Two policies
//! when a worker's queue is full: [`Overflow::Block`] (capture files: the reader waits, nothing is lost) and
//! [`Overflow::Drop`] (live capture: the batch is dropped and counted in `queue_drops` of that worker, the
//! capture thread never waits).
//!
//! Each batch carries the highest capture time its sender has seen, and the worker moves its flow table's clock
//! there after the batch: idle flows expire on a quiet worker as they would on a single table. In live capture a
//! worker also moves its clock to the wall clock on every tick without packets ([`WorkerOptions::wall_clock`]).
//!
//! Memory caps are split: [`split_config`] gives each worker `1/N` of the flow cap and of the buffered-bytes cap.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use serde::Serialize;
use tapedeck_model::Timestamp;

use crate::decode::{TcpFlags, TcpSegment};
use crate::metrics::WorkerMetrics;
use crate::pipeline::{Batcher, CaptureConfig};
use crate::reassembly::{FlowTable, ReassemblyConfig, ReassemblyStats};
use crate::session::SessionFactory;
use crate::stats::{ExchangeTally, Merge, SessionStats};

/// Most segments per batch.
const BATCH_SEGMENTS: usize = 512;
/// Live capture: exchanges ready on an idle worker are handed to the writer at most this often (and at every tick).
const HANDOVER_EVERY: Duration = Duration::from_millis(5);

/// The worker (0-based) of a connection between `a` and `b`, the same for both directions: a hash of the two
/// endpoints in a fixed order. Deterministic across runs (FxHash, no random state).
pub fn shard_of(a: SocketAddr, b: SocketAddr, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = rustc_hash::FxHasher::default();
    lo.hash(&mut h);
    hi.hash(&mut h);
    // Fx leaves the low bits weak; mix before reducing.
    let x = h.finish();
    let x = (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    ((x ^ (x >> 32)) % workers as u64) as usize
}

/// The per-worker share of a pipeline's reassembly caps: flow cap and total buffered bytes divided by the number
/// of workers (at least 1 each), and the remembered closed connections likewise, so that the total stays what
/// the configuration says.
pub fn split_config(cfg: &ReassemblyConfig, workers: usize) -> ReassemblyConfig {
    let n = workers.max(1);
    ReassemblyConfig {
        max_flows: (cfg.max_flows / n).max(1),
        max_buffered_bytes_total: (cfg.max_buffered_bytes_total / n).max(1),
        max_tombstones: (cfg.max_tombstones / n).max(1),
        ..cfg.clone()
    }
}

/// One segment of a [`SegBatch`]: the header fields, and where its payload lies in the batch buffer.
#[derive(Clone, Copy, Debug)]
struct SegMeta {
    ts: Timestamp,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    end: usize,
    missing: u32,
    auth_option: bool,
}

/// Decoded segments for one worker, their payloads copied into one buffer.
#[derive(Debug, Default)]
pub struct SegBatch {
    /// Send once `data` holds this many bytes.
    limit: usize,
    data: Vec<u8>,
    segs: Vec<SegMeta>,
    /// The highest capture time the sender had seen when it sent the batch.
    now: Timestamp,
}

impl SegBatch {
    fn push(&mut self, s: &TcpSegment<'_>) {
        self.data.extend_from_slice(s.payload);
        self.segs.push(SegMeta {
            ts: s.ts,
            src: s.src,
            dst: s.dst,
            seq: s.seq,
            ack: s.ack,
            flags: s.flags,
            end: self.data.len(),
            missing: s.missing,
            auth_option: s.auth_option,
        });
    }
    fn clear(&mut self) {
        self.data.clear();
        self.segs.clear();
    }
    fn is_full(&self) -> bool {
        self.segs.len() >= BATCH_SEGMENTS || self.data.len() >= self.limit
    }
    /// The segments, in the order pushed.
    fn segments(&self) -> impl Iterator<Item = TcpSegment<'_>> {
        let mut start = 0;
        self.segs.iter().map(move |m| {
            let payload = self.data.get(start..m.end).unwrap_or(&[]);
            start = m.end;
            TcpSegment {
                ts: m.ts,
                src: m.src,
                dst: m.dst,
                seq: m.seq,
                ack: m.ack,
                flags: m.flags,
                payload,
                missing: m.missing,
                auth_option: m.auth_option,
            }
        })
    }
}

/// What a [`Sharder`] does when a worker's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for room (capture files: back-pressure, nothing lost).
    Block,
    /// Drop the batch and count its segments in the worker's `queue_drops` (live capture).
    Drop,
}

/// The sending ends of the worker queues, cloned into every sharder.
#[derive(Clone)]
pub struct WorkerQueues {
    batch_bytes: usize,
    tx: Vec<Sender<SegBatch>>,
    recycle: Vec<Receiver<SegBatch>>,
    drops: Vec<Arc<WorkerMetrics>>,
}

/// The decoding side of sharding: pushes segments into per-worker batches and sends full ones.
pub struct Sharder {
    queues: WorkerQueues,
    pending: Vec<SegBatch>,
    overflow: Overflow,
    now: Timestamp,
    /// Segments dropped because a worker queue was full, by this sharder (all workers).
    pub dropped: u64,
    /// Set when every worker is gone (the writer failed): the reader should stop.
    pub workers_gone: bool,
}

impl Sharder {
    /// A sharder over these queues.
    pub fn new(queues: WorkerQueues, overflow: Overflow) -> Self {
        let limit = queues.batch_bytes;
        let pending = queues.tx.iter().map(|_| SegBatch { limit, ..SegBatch::default() }).collect();
        Sharder { queues, pending, overflow, now: Timestamp(0), dropped: 0, workers_gone: false }
    }

    /// Queues one segment for its worker; sends that worker's batch when full.
    pub fn push(&mut self, seg: &TcpSegment<'_>) {
        self.now = self.now.max(seg.ts);
        let w = shard_of(seg.src, seg.dst, self.pending.len());
        let Some(batch) = self.pending.get_mut(w) else { return };
        batch.push(seg);
        if batch.is_full() {
            self.send(w);
        }
    }

    /// Notes capture time without a segment (a frame that did not decode to TCP still moves time on).
    pub fn saw(&mut self, ts: Timestamp) {
        self.now = self.now.max(ts);
    }

    /// Sends every non-empty pending batch (live capture: when the interface goes quiet).
    pub fn flush(&mut self) {
        for w in 0..self.pending.len() {
            if self.pending.get(w).is_some_and(|b| !b.segs.is_empty()) {
                self.send(w);
            }
        }
    }

    /// End of input: sends what is pending and then, to every worker, an empty batch carrying the last capture
    /// time (so that each worker's clock reaches it before the final flush), blocking for room.
    pub fn finish(mut self) {
        self.flush();
        for w in 0..self.pending.len() {
            let batch = SegBatch { now: self.now, ..SegBatch::default() };
            if let Some(tx) = self.queues.tx.get(w) {
                let _ = tx.send(batch);
            }
        }
    }

    fn send(&mut self, w: usize) {
        let mut fresh = self.queues.recycle.get(w).and_then(|r| r.try_recv().ok()).unwrap_or_default();
        fresh.limit = self.queues.batch_bytes;
        let Some(slot) = self.pending.get_mut(w) else { return };
        let mut batch = std::mem::replace(slot, fresh);
        batch.now = self.now;
        let Some(tx) = self.queues.tx.get(w) else { return };
        let n = batch.segs.len() as u64;
        let back = match self.overflow {
            Overflow::Block => tx.send(batch).err().map(|e| e.into_inner()),
            Overflow::Drop => match tx.try_send(batch) {
                Ok(()) => None,
                Err(TrySendError::Full(b)) => {
                    self.dropped += n;
                    if let Some(m) = self.queues.drops.get(w) {
                        m.queue_drops.fetch_add(n, Relaxed);
                    }
                    Some(b)
                }
                Err(TrySendError::Disconnected(b)) => {
                    self.workers_gone = true;
                    self.dropped += n;
                    Some(b)
                }
            },
        };
        if let Some(mut b) = back {
            if self.overflow == Overflow::Block {
                self.workers_gone = true;
            }
            // Reuse the dropped batch's buffers.
            b.clear();
            if let Some(slot) = self.pending.get_mut(w)
                && slot.segs.is_empty()
            {
                *slot = b;
            }
        }
    }
}

/// How workers run.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Batches queued per worker.
    pub queue_batches: usize,
    /// A batch of segments is handed over once its payloads hold this many bytes (or 512 segments).
    pub batch_bytes: usize,
    /// Live capture: how often a worker sends pending exchanges, moves its clock to the wall clock (idle expiry
    /// while quiet) and publishes its metrics. None for capture files (workers only wait for batches).
    pub tick: Option<Duration>,
    /// Live capture: move the flow table clock to the wall clock on each tick.
    pub wall_clock: bool,
}

/// What one worker did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerSummary {
    /// Segments processed.
    pub segments: u64,
    /// Segments dropped because this worker's queue was full (live capture).
    pub queue_drops: u64,
    /// Connections opened.
    pub flows: u64,
    /// Exchanges produced.
    pub exchanges: u64,
}

/// What a worker thread returns.
pub(crate) struct WorkerResult {
    pub reassembly: ReassemblyStats,
    pub sessions: SessionStats,
    pub tally: ExchangeTally,
    pub masking: Option<crate::mask::MaskStats>,
    pub segments: u64,
    pub writer_gone: bool,
}

/// The running workers.
pub(crate) struct Workers {
    handles: Vec<std::thread::JoinHandle<WorkerResult>>,
    /// Per-worker counters, also exported on /metrics.
    pub metrics: Vec<Arc<WorkerMetrics>>,
}

/// The workers' results added up.
#[derive(Default)]
pub(crate) struct WorkerTotals {
    pub reassembly: ReassemblyStats,
    pub sessions: SessionStats,
    pub tally: ExchangeTally,
    pub masking: Option<crate::mask::MaskStats>,
    pub per_worker: Vec<WorkerSummary>,
    pub writer_gone: bool,
}

/// Starts `opts.workers` workers, each with its own flow table and parsers (from `cfg`, caps split) and its own
/// [`Batcher`] (cloned from `batcher`) to the writer. Returns the queues to shard into and the workers.
pub(crate) fn start_workers(
    cfg: &CaptureConfig,
    batcher: &Batcher,
    opts: &WorkerOptions,
    metrics: Option<&[Arc<WorkerMetrics>]>,
    stop: Arc<AtomicBool>,
) -> Result<(WorkerQueues, Workers), std::io::Error> {
    let n = opts.workers.max(1);
    let reassembly = split_config(&cfg.reassembly, n);
    let mut queues =
        WorkerQueues { batch_bytes: opts.batch_bytes.max(1), tx: Vec::new(), recycle: Vec::new(), drops: Vec::new() };
    let mut workers = Workers { handles: Vec::new(), metrics: Vec::new() };
    for i in 0..n {
        let (tx, rx) = bounded::<SegBatch>(opts.queue_batches.max(1));
        // Few batches travel back for reuse: a recycled batch keeps its buffers' capacity.
        let (recycle_tx, recycle_rx) = bounded::<SegBatch>(4);
        let m = metrics.and_then(|m| m.get(i)).cloned().unwrap_or_default();
        queues.tx.push(tx);
        queues.recycle.push(recycle_rx);
        queues.drops.push(Arc::clone(&m));
        workers.metrics.push(Arc::clone(&m));
        let w = Worker {
            rx,
            recycle: recycle_tx,
            reassembly: reassembly.clone(),
            session: cfg.session.clone(),
            batcher: batcher.clone_for_worker(),
            opts: opts.clone(),
            metrics: m,
            stop: Arc::clone(&stop),
        };
        workers.handles.push(std::thread::Builder::new().name(format!("worker-{i}")).spawn(move || w.run())?);
    }
    Ok((queues, workers))
}

impl Workers {
    /// Waits for every worker (after every sharder was finished or dropped) and adds up their counters.
    pub(crate) fn join(self) -> WorkerTotals {
        let mut t = WorkerTotals::default();
        for (h, m) in self.handles.into_iter().zip(&self.metrics) {
            let r = match h.join() {
                Ok(r) => r,
                Err(_) => {
                    t.writer_gone = true;
                    continue;
                }
            };
            merge_reassembly(&mut t.reassembly, &r.reassembly);
            merge_sessions(&mut t.sessions, &r.sessions);
            merge_tally(&mut t.tally, &r.tally);
            if let Some(ms) = &r.masking {
                t.masking.get_or_insert_with(Default::default).merge(ms);
            }
            t.writer_gone |= r.writer_gone;
            t.per_worker.push(WorkerSummary {
                segments: r.segments,
                queue_drops: m.queue_drops.load(Relaxed),
                flows: r.reassembly.flows_created,
                exchanges: r.tally.total,
            });
        }
        t
    }
}

/// One worker thread's state.
struct Worker {
    rx: Receiver<SegBatch>,
    recycle: Sender<SegBatch>,
    reassembly: ReassemblyConfig,
    session: crate::session::SessionConfig,
    batcher: Batcher,
    opts: WorkerOptions,
    metrics: Arc<WorkerMetrics>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) -> WorkerResult {
        let mut table = FlowTable::new(self.reassembly.clone(), SessionFactory::new(self.session.clone()));
        let mut tally = ExchangeTally::default();
        let mut segments = 0u64;
        let mut writer_gone = false;
        let mut last_tick = Instant::now();
        let mut last_handover = Instant::now();
        let mut now = Timestamp(0);
        loop {
            let got = match self.opts.tick {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(t) => self.rx.recv_timeout(t.saturating_sub(last_tick.elapsed())),
            };
            match got {
                Ok(mut batch) => {
                    for seg in batch.segments() {
                        table.process(&seg, &mut self.batcher.pending);
                    }
                    segments += batch.segs.len() as u64;
                    now = now.max(batch.now);
                    table.advance(batch.now, &mut self.batcher.pending);
                    batch.clear();
                    let _ = self.recycle.try_send(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let due = self.opts.tick.is_some_and(|t| last_tick.elapsed() >= t);
            // Live capture: nothing more waiting, so hand over what is ready rather than hold it until the tick.
            // At most every HANDOVER_EVERY, though: a handover per few exchanges costs the writer more in wakeups.
            let idle = self.opts.tick.is_some() && self.rx.is_empty() && last_handover.elapsed() >= HANDOVER_EVERY;
            if due && self.opts.wall_clock {
                table.advance(wall_clock(), &mut self.batcher.pending);
            }
            if self.batcher.full(&mut tally) || ((due || idle) && !self.batcher.pending.is_empty()) {
                if self.batcher.send(&mut tally).is_err() {
                    writer_gone = true;
                    self.stop.store(true, Relaxed);
                    break;
                }
                self.metrics.exchanges_sent.store(tally.total, Relaxed);
                last_handover = Instant::now();
            }
            if due {
                self.publish(&mut table, &tally, segments);
                last_tick = Instant::now();
            }
        }
        let end = if self.opts.wall_clock { now.max(wall_clock()) } else { now };
        table.flush_all(end, &mut self.batcher.pending);
        if !writer_gone {
            writer_gone = self.batcher.send(&mut tally).is_err();
        }
        self.publish(&mut table, &tally, segments);
        WorkerResult {
            reassembly: table.stats().clone(),
            sessions: table.factory_mut().stats(),
            tally,
            masking: self.batcher.mask_stats(),
            segments,
            writer_gone,
        }
    }

    fn publish(&self, table: &mut FlowTable<SessionFactory>, tally: &ExchangeTally, segments: u64) {
        let m = &self.metrics;
        let r = table.stats();
        m.segments.store(segments, Relaxed);
        m.flows_open.store(table.open_flows() as u64, Relaxed);
        m.flows_created.store(r.flows_created, Relaxed);
        m.flows_evicted.store(r.flows_evicted, Relaxed);
        m.flows_idle.store(r.flows_expired_idle, Relaxed);
        m.gaps.store(r.gaps, Relaxed);
        m.gap_bytes.store(r.gap_bytes, Relaxed);
        let s = table.factory_mut().stats();
        m.parse_errors_http1.store(s.http1.parse_errors, Relaxed);
        m.parse_errors_h2
            .store(s.h2.preface_errors + s.h2.malformed_frames + s.h2.protocol_errors + s.h2.hpack_errors, Relaxed);
        if let Ok(mut map) = m.exchanges.lock() {
            map.clone_from(&tally.by_proto);
        }
    }
}

/// Now as a capture timestamp.
pub(crate) fn wall_clock() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The default number of workers: the cores available to this process, at least 1.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Adds exchange tallies.
pub(crate) fn merge_tally(a: &mut ExchangeTally, b: &ExchangeTally) {
    a.total += b.total;
    a.with_request += b.with_request;
    a.with_response += b.with_response;
    for (k, v) in &b.by_proto {
        *a.by_proto.entry(k.clone()).or_default() += v;
    }
    for (k, v) in &b.by_flag {
        *a.by_flag.entry(k.clone()).or_default() += v;
    }
}

/// Adds session counters (detection decisions and both parsers').
pub(crate) fn merge_sessions(a: &mut SessionStats, b: &SessionStats) {
    // Destructured so that a new counter cannot be left out.
    let SessionStats {
        flows_http1,
        flows_h2,
        h2c_upgrades,
        tunnels,
        socks_handshakes,
        flows_tls,
        flows_ssh,
        flows_not_http,
        flows_undecided,
        ignored_bytes,
        http1,
        h2,
    } = b;
    a.flows_http1 += flows_http1;
    a.flows_h2 += flows_h2;
    a.h2c_upgrades += h2c_upgrades;
    a.tunnels += tunnels;
    a.socks_handshakes += socks_handshakes;
    a.flows_tls += flows_tls;
    a.flows_ssh += flows_ssh;
    a.flows_not_http += flows_not_http;
    a.flows_undecided += flows_undecided;
    a.ignored_bytes += ignored_bytes;
    a.http1.merge(http1);
    a.h2.merge(h2);
}

/// Adds ReassemblyStats counters. The destructuring names every field, so a new counter fails to compile here
/// until it is added.
pub(crate) fn merge_reassembly(a: &mut crate::reassembly::ReassemblyStats, b: &crate::reassembly::ReassemblyStats) {
    let crate::reassembly::ReassemblyStats {
        packets,
        payload_bytes,
        flows_created,
        flows_closed,
        flows_replaced,
        flows_expired_idle,
        flows_evicted,
        flows_end_of_input,
        resets,
        resets_without_flow,
        resets_ignored_signed,
        late_segments_after_close,
        delivered_bytes,
        retransmitted_segments,
        retransmitted_bytes,
        overlap_conflicts,
        gaps,
        gap_bytes,
        gaps_acked_unseen,
        gaps_cap,
        gaps_at_close,
        gaps_snaplen,
        snaplen_truncated_segments,
        snaplen_missing_bytes,
        out_of_window_segments,
        out_of_window_bytes,
        ooo_segments_buffered,
        peak_buffered_bytes,
        cap_hits_direction_bytes,
        cap_hits_direction_segments,
        cap_hits_total_bytes,
        fins,
    } = b;
    a.packets += packets;
    a.payload_bytes += payload_bytes;
    a.flows_created += flows_created;
    a.flows_closed += flows_closed;
    a.flows_replaced += flows_replaced;
    a.flows_expired_idle += flows_expired_idle;
    a.flows_evicted += flows_evicted;
    a.flows_end_of_input += flows_end_of_input;
    a.resets += resets;
    a.resets_without_flow += resets_without_flow;
    a.resets_ignored_signed += resets_ignored_signed;
    a.late_segments_after_close += late_segments_after_close;
    a.delivered_bytes += delivered_bytes;
    a.retransmitted_segments += retransmitted_segments;
    a.retransmitted_bytes += retransmitted_bytes;
    a.overlap_conflicts += overlap_conflicts;
    a.gaps += gaps;
    a.gap_bytes += gap_bytes;
    a.gaps_acked_unseen += gaps_acked_unseen;
    a.gaps_cap += gaps_cap;
    a.gaps_at_close += gaps_at_close;
    a.gaps_snaplen += gaps_snaplen;
    a.snaplen_truncated_segments += snaplen_truncated_segments;
    a.snaplen_missing_bytes += snaplen_missing_bytes;
    a.out_of_window_segments += out_of_window_segments;
    a.out_of_window_bytes += out_of_window_bytes;
    a.ooo_segments_buffered += ooo_segments_buffered;
    a.peak_buffered_bytes += peak_buffered_bytes;
    a.cap_hits_direction_bytes += cap_hits_direction_bytes;
    a.cap_hits_direction_segments += cap_hits_direction_segments;
    a.cap_hits_total_bytes += cap_hits_total_bytes;
    a.fins += fins;
}

/// Adds DecodeStats counters. The destructuring names every field, so a new counter fails to compile here
/// until it is added.
pub(crate) fn merge_decode(a: &mut crate::decode::DecodeStats, b: &crate::decode::DecodeStats) {
    let crate::decode::DecodeStats {
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
        fragment_too_many,
    } = b;
    a.frames += frames;
    a.tcp_segments += tcp_segments;
    a.snaplen_truncated_segments += snaplen_truncated_segments;
    a.arp += arp;
    a.non_ip += non_ip;
    a.udp += udp;
    a.icmp += icmp;
    a.other_ip_protocol += other_ip_protocol;
    a.vlan_tags += vlan_tags;
    a.mpls += mpls;
    a.pppoe += pppoe;
    a.gre += gre;
    a.vxlan += vxlan;
    a.ip_in_ip += ip_in_ip;
    a.unknown_link_type += unknown_link_type;
    a.truncated_ethernet += truncated_ethernet;
    a.truncated_vlan += truncated_vlan;
    a.too_many_vlan_tags += too_many_vlan_tags;
    a.truncated_sll += truncated_sll;
    a.truncated_link_header += truncated_link_header;
    a.unknown_address_family += unknown_address_family;
    a.truncated_mpls += truncated_mpls;
    a.mpls_unknown_payload += mpls_unknown_payload;
    a.bad_ip_version += bad_ip_version;
    a.truncated_ip_header += truncated_ip_header;
    a.bad_ip_header += bad_ip_header;
    a.bad_ip_extension += bad_ip_extension;
    a.ipv4_length_from_capture += ipv4_length_from_capture;
    a.ip_length_exceeds_capture += ip_length_exceeds_capture;
    a.truncated_tcp_header += truncated_tcp_header;
    a.bad_tcp_header += bad_tcp_header;
    a.truncated_gre += truncated_gre;
    a.truncated_80211 += truncated_80211;
    a.gre_unsupported += gre_unsupported;
    a.bad_vxlan += bad_vxlan;
    a.arcnet_split_packets += arcnet_split_packets;
    a.too_many_encapsulations += too_many_encapsulations;
    a.fragments += fragments;
    a.fragments_reassembled += fragments_reassembled;
    a.fragments_truncated += fragments_truncated;
    a.fragment_errors += fragment_errors;
    a.fragments_ignored += fragments_ignored;
    a.fragments_nested += fragments_nested;
    a.fragment_timeouts += fragment_timeouts;
    a.fragment_evicted_count_cap += fragment_evicted_count_cap;
    a.fragment_evicted_byte_cap += fragment_evicted_byte_cap;
    a.fragment_too_many += fragment_too_many;
}

/// The queue drops of every worker, summed (live capture).
pub fn total_queue_drops(metrics: &[Arc<WorkerMetrics>]) -> u64 {
    metrics.iter().map(|m| m.queue_drops.load(Relaxed)).sum()
}

/// A counter shared by the sharders of several capture threads.
pub type SharedCounter = Arc<AtomicU64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_go_to_the_same_worker_and_all_workers_are_used() {
        let mut used = [0usize; 3];
        for port in 1000..1300u16 {
            let a: SocketAddr = format!("10.0.0.1:{port}").parse().unwrap();
            let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
            let w = shard_of(a, b, 3);
            assert_eq!(w, shard_of(b, a, 3), "{a} {b}");
            used[w] += 1;
        }
        assert!(used.iter().all(|&n| n > 60), "{used:?}");
        assert_eq!(shard_of("1.1.1.1:1".parse().unwrap(), "2.2.2.2:2".parse().unwrap(), 1), 0);
    }

    #[test]
    fn caps_are_split_so_the_total_stays() {
        let cfg = ReassemblyConfig { max_flows: 1000, max_buffered_bytes_total: 90, ..Default::default() };
        let s = split_config(&cfg, 3);
        assert_eq!((s.max_flows, s.max_buffered_bytes_total), (333, 30));
        assert_eq!(s.max_ooo_bytes_per_direction, cfg.max_ooo_bytes_per_direction);
        assert_eq!(split_config(&cfg, 5000).max_flows, 1);
    }

    #[test]
    fn a_batch_gives_back_its_segments() {
        let mut b = SegBatch::default();
        let src: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let dst: SocketAddr = "10.0.0.2:2".parse().unwrap();
        for (i, p) in [&b"hello"[..], b"", b"xy"].iter().enumerate() {
            let seg = TcpSegment {
                ts: Timestamp(i as u64),
                src,
                dst,
                seq: 7 + i as u32,
                ack: 0,
                flags: TcpFlags { ack: true, ..Default::default() },
                payload: p,
                missing: i as u32,
                auth_option: i == 1,
            };
            b.push(&seg);
        }
        let got: Vec<(u64, u32, Vec<u8>, u32, bool)> =
            b.segments().map(|s| (s.ts.0, s.seq, s.payload.to_vec(), s.missing, s.auth_option)).collect();
        assert_eq!(
            got,
            vec![(0, 7, b"hello".to_vec(), 0, false), (1, 8, vec![], 1, true), (2, 9, b"xy".to_vec(), 2, false)]
        );
    }

    #[test]
    fn counter_merge_adds_fields() {
        let a = ReassemblyStats { packets: 3, gaps: 1, ..Default::default() };
        let mut sum = a.clone();
        merge_reassembly(&mut sum, &ReassemblyStats { packets: 4, flows_expired_idle: 2, ..Default::default() });
        assert_eq!((sum.packets, sum.gaps, sum.flows_expired_idle), (7, 1, 2));
    }
}
