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
//!
//! Connection ids are unique in a run: worker `w` of `N` numbers its connections `w + 1`, `w + 1 + N`,
//! `w + 1 + 2N` ... (one worker: 1, 2, 3 ...), the same for the same input and worker count.

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
            ids: (i as u64 + 1, n as u64),
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
            t.reassembly.merge(&r.reassembly);
            t.sessions.merge(&r.sessions);
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
    /// The first connection id and the step between this worker's ids: worker `w` of `n` numbers its
    /// connections `w + 1`, `w + 1 + n`, ... so that ids are unique in the run (and deterministic).
    ids: (u64, u64),
    session: crate::session::SessionConfig,
    batcher: Batcher,
    opts: WorkerOptions,
    metrics: Arc<WorkerMetrics>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) -> WorkerResult {
        let mut table = FlowTable::new(self.reassembly.clone(), SessionFactory::new(self.session.clone()))
            .with_connection_ids(self.ids.0, self.ids.1);
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
        sum.merge(&ReassemblyStats { packets: 4, flows_expired_idle: 2, ..Default::default() });
        assert_eq!((sum.packets, sum.gaps, sum.flows_expired_idle), (7, 1, 2));
    }
}
