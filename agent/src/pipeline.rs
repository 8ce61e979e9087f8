//! The capture pipeline for capture files: sources → decode on this thread, segments sharded by connection over
//! `workers` worker threads ([`crate::shard`]: reassembly, sessions, masking), exchanges in batches over a
//! bounded channel to a writer thread that encodes, compresses and writes segments.
//!
//! Reading a file never drops for lack of room: when a worker or the writer falls behind, the reader waits
//! (back-pressure), so the channels bound memory. Several inputs are read in the order given as one continuous capture, the way
//! `mergecap -a` would join them (rotated tcpdump files keep their connections).
//!
//! Streaming inputs (stdin, FIFOs) can stay open and quiet: for them every stage hands over on a tick and the
//! writer seals and syncs its open block every `--flush-interval` (see [`run_files`]). `--filter` is applied to
//! every input's frames ([`PacketFilter`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use serde::Serialize;
use tapedeck_model::segment::{SegmentError, SegmentWriterConfig, WriterStats};
use tapedeck_model::{Exchange, Timestamp};

use crate::decode::{DecodeConfig, DecodeStats, Decoder};
use crate::mask::{MaskStats, Masker};
use crate::reassembly::{ReassemblyConfig, ReassemblyStats};
use crate::reload::{Reloadable, SharedMasking, WorkerMasker};
use crate::service::ServiceMap;
use crate::session::SessionConfig;
use crate::shard::{Overflow, Sharder, WorkerOptions, start_workers};
use crate::source::filter::PacketFilter;
use crate::source::pipe::is_streaming;
use crate::source::{PcapSource, SourceError, SourceStats};
use crate::stats::{ExchangeTally, Merge, SessionStats};
use crate::writers::{ServiceSplit, ServiceStats, ServiceWriters, SharedServiceMap};

/// Everything the capture pipeline needs to know.
#[derive(Clone, Debug, Default)]
pub struct CaptureConfig {
    /// Link and IP decoding (fragment reassembly caps).
    pub decode: DecodeConfig,
    /// TCP reassembly caps and timeouts.
    pub reassembly: ReassemblyConfig,
    /// Protocol detection and parser settings.
    pub session: SessionConfig,
    /// Segment files: where, rotation, compression.
    pub writer: SegmentWriterConfig,
    /// Labels added to every exchange (node, interface, ...).
    pub labels: Vec<(String, String)>,
    /// The masking applied (by the workers) before every write; None writes exchanges as seen. Its policy
    /// fingerprint replaces `writer.masking_fingerprint`.
    pub masking: Option<Masker>,
    /// Worker threads that reassemble and parse, connections sharded among them (0 is taken as 1). The flow and
    /// buffered-bytes caps of `reassembly` are split among them.
    pub workers: usize,
    /// Split segments into a directory per service (`--split-by-service`); None writes every segment in
    /// `writer.dir`.
    pub services: Option<ServicesConfig>,
    /// Streaming inputs (stdin, FIFOs; `--flush-interval`): exchanges reach the segment file's `.seg.tmp` at
    /// most about this long after their last packet was read, however quiet the input. None:
    /// [`DEFAULT_FLUSH_INTERVAL`].
    pub flush_interval: Option<Duration>,
    /// A BPF filter expression (`--filter`) applied to every input's frames ([`PacketFilter`]).
    pub filter: Option<String>,
}

/// The default `--flush-interval`: a kill loses at most about a second of exchanges, as `tcpdump -U` users
/// expect, for at most one small block and one fsync per second per open segment (only when exchanges came).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How often the reader, workers and writer of a streaming input hand over what they hold: a quarter of the
/// flush interval, between 10 and 100 ms, so that the flush interval bounds the loss.
fn stream_tick(flush_interval: Duration) -> Duration {
    (flush_interval / 4).clamp(Duration::from_millis(10), Duration::from_millis(100))
}

/// The writer's tick for a streaming input: the open block of every segment that got exchanges since the last
/// flush is sealed and synced once `flush_interval` has passed since that flush.
fn flush_tick(every: Duration, flush_interval: Duration) -> WriterTick {
    let mut last_flush = Instant::now();
    WriterTick {
        every,
        hook: Box::new(move |writers: &mut ServiceWriters| {
            if last_flush.elapsed() >= flush_interval {
                let (flushed, result) = writers.flush_written();
                if flushed > 0 {
                    last_flush = Instant::now();
                }
                result?;
            }
            Ok(())
        }),
    }
}

/// Splitting segments by service (see [`crate::writers`]).
#[derive(Clone, Debug, Default)]
pub struct ServicesConfig {
    /// Labels for server endpoints (empty: every service is named `<address>_<port>`).
    pub map: ServiceMap,
    /// The file `map` was read from (`--service-map`), re-read on SIGHUP in live capture.
    pub map_file: Option<PathBuf>,
    /// Service writers open at once, at most (`--max-open-services`).
    pub max_open: usize,
}

impl ServicesConfig {
    /// The shared (reloadable) map and the writer thread's settings.
    pub fn split(&self) -> (SharedServiceMap, ServiceSplit) {
        let map: SharedServiceMap = Arc::new(Reloadable::new(Arc::new(self.map.clone())));
        (Arc::clone(&map), ServiceSplit { map, max_open: self.max_open })
    }
}

/// What happened to one input.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InputSummary {
    /// The path given (`-` for standard input).
    pub name: String,
    /// Frames read from it.
    pub frames: u64,
    /// Whether it could be read at all.
    pub opened: bool,
    /// The error that stopped reading it, if any (names the file, byte offset and packet number).
    pub error: Option<String>,
    /// How many seconds its first packet is older than the newest packet of the inputs read before it, when
    /// that is more than [`OUT_OF_ORDER_SECS`]: inputs are read as one capture in the order given, so such an
    /// input moves the clock back (connections of the earlier inputs may already have been closed as idle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_before_previous_secs: Option<f64>,
}

/// How far back (seconds) an input may start before the inputs read before it end without a warning.
pub const OUT_OF_ORDER_SECS: f64 = 1.0;

/// The summary of a run, printed at the end and written by `--stats-json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    /// Per input.
    pub inputs: Vec<InputSummary>,
    /// Capture file reading, summed over inputs.
    pub source: SourceStats,
    /// Link/IP/TCP decoding.
    pub decode: DecodeStats,
    /// TCP reassembly.
    pub reassembly: ReassemblyStats,
    /// Protocol detection and parsers.
    pub sessions: SessionStats,
    /// Exchanges produced.
    pub exchanges: ExchangeTally,
    /// Masking (None when masking is off).
    pub masking: Option<MaskStats>,
    /// Segment writing.
    pub writer: WriterStats,
    /// Segment files finished.
    pub segments: Vec<PathBuf>,
    /// Wall-clock seconds the run took.
    pub seconds: f64,
    /// The process's peak resident memory (VmHWM) at the end of the run, in bytes, where the OS tells it.
    pub peak_rss_bytes: Option<u64>,
    /// Live capture only: interfaces (kernel and queue drops), retention.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<crate::live::LiveSummary>,
    /// Per worker thread (their counters are included in the totals above).
    pub workers: Vec<crate::shard::WorkerSummary>,
    /// Splitting by service (`--split-by-service` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<ServiceStats>,
}

impl RunSummary {
    /// Whether no input could be read at all (the run failed).
    pub fn nothing_read(&self) -> bool {
        self.inputs.iter().all(|i| !i.opened)
    }
    /// Whether some input could not be opened (missing file, not a capture).
    pub fn some_input_unreadable(&self) -> bool {
        self.inputs.iter().any(|i| !i.opened)
    }
}

/// Errors that stop a run (input errors do not: they are recorded per input).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The segment writer failed (disk full, permissions).
    #[error("writing segments: {0}")]
    Writer(#[from] tapedeck_model::segment::SegmentError),
    /// The writer thread died.
    #[error("the segment writer thread stopped unexpectedly")]
    WriterGone,
    /// A live capture could not start or failed (interface, filter, permissions).
    #[error("{0}")]
    Capture(String),
}

/// How many exchanges travel together to the writer thread.
const BATCH: usize = 512;
/// Batches in flight between the threads (bounds memory, with [`BATCH_BYTES`]).
const CHANNEL_BATCHES: usize = 8;
/// A batch is also sent once its exchanges hold this many bytes (by [`Exchange::approx_bytes`]), so that batches of large
/// exchanges (bodies at the cap, huge header lists) do not multiply the memory in flight: at most
/// `CHANNEL_BATCHES + 2` batches of about this size (plus one exchange) exist at once.
const BATCH_BYTES: usize = 1 << 20;

/// Called now and then with bytes read so far (for a progress display).
pub trait Progress {
    /// `bytes` of input read so far, `exchanges` produced so far.
    fn update(&mut self, input: &str, bytes: u64, exchanges: u64);
}

impl Progress for () {
    fn update(&mut self, _: &str, _: u64, _: u64) {}
}

/// Reads the given capture files (or `-` for standard input) to segments.
///
/// When an input is streaming (stdin, a FIFO: it can stay open and quiet), nothing waits for full batches: the
/// reader hands its segments to the workers every tick (a quarter of the flush interval, 10 to 100 ms) and
/// whenever the input goes quiet, the workers hand their exchanges to the writer, and the writer seals and syncs
/// its open block every `cfg.flush_interval`, so that a kill loses at most about that much.
pub fn run_files(
    inputs: &[PathBuf],
    cfg: CaptureConfig,
    progress: &mut dyn Progress,
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let mut filter = cfg
        .filter
        .as_deref()
        .map(PacketFilter::new)
        .transpose()
        .map_err(|e| PipelineError::Capture(format!("--filter {e}")))?;
    let flush_interval = cfg.flush_interval.unwrap_or(DEFAULT_FLUSH_INTERVAL);
    let tick = inputs.iter().any(|p| is_streaming(p)).then(|| stream_tick(flush_interval));
    let shared_masking = Arc::new(Reloadable::new(cfg.masking.clone()));
    let split = cfg.services.as_ref().map(|s| s.split().1);
    let writer_tick = tick.map(|t| flush_tick(t, flush_interval));
    let (batcher, writer) = start_masked_writer(&cfg, &shared_masking, split, writer_tick)?;
    let opts = WorkerOptions {
        workers: cfg.workers.max(1),
        queue_batches: WORKER_QUEUE_BATCHES,
        batch_bytes: WORKER_BATCH_BYTES,
        tick,
        wall_clock: false,
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (queues, workers) = start_workers(&cfg, &batcher, &opts, None, stop)
        .map_err(|e| PipelineError::Capture(format!("starting worker threads: {e}")))?;
    drop(batcher);
    let mut sharder = Sharder::new(queues, Overflow::Block);

    let mut summary = RunSummary::default();
    let mut decoder = Decoder::new(cfg.decode);
    let mut frames_seen = 0u64;

    // The newest packet so far, and the input it came from.
    let mut newest: Option<(Timestamp, String)> = None;
    'inputs: for path in inputs {
        let mut input = InputSummary { name: path.display().to_string(), ..Default::default() };
        let mut input_newest: Option<Timestamp> = None;
        let opened = match tick {
            Some(t) => {
                // Opening a pipe waits for its writer: what earlier inputs left pending goes on meanwhile.
                sharder.flush();
                PcapSource::open_polled(path, t)
            }
            None => PcapSource::open(path),
        };
        let mut source = match opened {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                input.error = Some(e.to_string());
                summary.inputs.push(input);
                continue;
            }
        };
        input.opened = true;
        let mut last_report = Instant::now();
        let mut last_handover = Instant::now();
        loop {
            match source.next_frame() {
                Ok(Some(frame)) => {
                    if input.frames == 0 {
                        check_input_order(&mut input, frame.ts, newest.as_ref());
                    }
                    input.frames += 1;
                    input_newest = input_newest.max(Some(frame.ts));
                    sharder.saw(frame.ts);
                    let keep = match filter.as_mut().map(|f| f.frame(&frame)) {
                        None | Some(Ok(true)) => true,
                        Some(Ok(false)) => false,
                        Some(Err(e)) => {
                            let e = format!("{}: packet {}: --filter {e}", input.name, frame.number);
                            tracing::error!("{e}");
                            input.error = Some(e);
                            break;
                        }
                    };
                    if keep
                        && let Some(seg) = decoder.decode(&frame)
                        && filter.as_mut().is_none_or(|f| f.segment(&seg))
                    {
                        sharder.push(&seg);
                    }
                    // A streaming input that trickles never goes quiet for a whole tick: hand over on time too.
                    if let Some(t) = tick
                        && last_handover.elapsed() >= t
                    {
                        sharder.flush();
                        last_handover = Instant::now();
                    }
                }
                Ok(None) => break,
                Err(SourceError::Idle { .. }) => {
                    // A quiet pipe: what was read goes to the workers now, not when a batch fills.
                    sharder.flush();
                    last_handover = Instant::now();
                }
                Err(e) => {
                    report_source_error(&e);
                    input.error = Some(e.to_string());
                    break;
                }
            }
            if sharder.workers_gone {
                summary.source.merge(source.stats());
                summary.inputs.push(input);
                break 'inputs;
            }
            frames_seen += 1;
            if frames_seen.is_multiple_of(4096) && last_report.elapsed() > Duration::from_millis(500) {
                let produced: u64 = workers.metrics.iter().map(|m| m.exchanges_sent.load(Ordering::Relaxed)).sum();
                progress.update(&input.name, source.stats().bytes_read, produced);
                last_report = Instant::now();
            }
        }
        progress.update(&input.name, source.stats().bytes_read, 0);
        summary.source.merge(source.stats());
        if let Some(ts) = input_newest
            && newest.as_ref().is_none_or(|(n, _)| ts > *n)
        {
            newest = Some((ts, input.name.clone()));
        }
        summary.inputs.push(input);
    }
    sharder.finish();
    summary.source.filtered_out = filter.as_ref().map_or(0, |f| f.rejected);
    let totals = workers.join();
    summary.decode = decoder.stats().clone();
    summary.reassembly = totals.reassembly;
    summary.sessions = totals.sessions;
    summary.exchanges = totals.tally;
    summary.workers = totals.per_worker;
    let done = writer.join()?;
    if totals.writer_gone {
        return Err(PipelineError::WriterGone);
    }
    summary.writer = done.stats;
    summary.services = done.services;
    summary.masking = totals.masking;
    summary.segments = done.files;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.peak_rss_bytes = peak_rss_bytes();
    Ok(summary)
}

/// Warns (once per input) when `input`, whose first packet is at `first`, starts more than [`OUT_OF_ORDER_SECS`]
/// before `newest`, the newest packet of the inputs read before it and where it came from.
fn check_input_order(input: &mut InputSummary, first: Timestamp, newest: Option<&(Timestamp, String)>) {
    let Some((end, previous)) = newest else { return };
    let back = end.0.saturating_sub(first.0) as f64 / 1e9;
    if back <= OUT_OF_ORDER_SECS {
        return;
    }
    input.starts_before_previous_secs = Some(back);
    tracing::warn!(
        "{}: starts {back:.0} s before the end of {previous}, given before it: inputs are read as one capture in \
         the order given, so give rotated files in capture order (connections of earlier inputs may have been \
         closed as idle and their later packets read as new, mid-stream connections)",
        input.name
    );
}

/// Batches of segments queued per worker: reading a file never drops, so a short queue only needs to cover the
/// reader's jitter.
const WORKER_QUEUE_BATCHES: usize = 4;
/// Payload bytes per batch of segments.
const WORKER_BATCH_BYTES: usize = 64 << 10;

/// Starts the writer for a sharded pipeline: masking runs on the workers (through `masking`), so the writer
/// gets none, but its segment headers carry the policy's fingerprint.
pub(crate) fn start_masked_writer(
    cfg: &CaptureConfig,
    masking: &SharedMasking,
    split: Option<ServiceSplit>,
    tick: Option<WriterTick>,
) -> Result<(Batcher, WriterThread), PipelineError> {
    let mut writer_cfg = cfg.writer.clone();
    writer_cfg.masking_fingerprint = cfg.masking.as_ref().map(|m| m.fingerprint().to_vec()).unwrap_or_default();
    let (mut batcher, writer) = start_writer(writer_cfg, split, cfg.labels.clone(), None, tick)?;
    batcher.masking = Some(Arc::clone(masking));
    Ok((batcher, writer))
}

/// Peak resident set size of this process (Linux `VmHWM`), or None where it cannot be read.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn report_source_error(e: &SourceError) {
    tracing::warn!("{e}; keeping what was read before it");
}

/// The writer thread, as [`start_writer`] started it.
pub(crate) struct WriterThread {
    handle: std::thread::JoinHandle<Result<WriterResult, PipelineError>>,
}

impl WriterThread {
    /// Waits for the writer to finish (after the [`Batcher`] was dropped): its counters and the files finished
    /// and not taken by a tick hook.
    pub(crate) fn join(self) -> Result<WriterResult, PipelineError> {
        self.handle.join().map_err(|_| PipelineError::WriterGone)?
    }
}

/// Work the writer thread does between batches, at least every `every` (live capture: age rotation in quiet
/// periods, retention, metrics). An error from the hook stops the writer like a write error.
pub(crate) struct WriterTick {
    /// How often the hook runs.
    pub every: Duration,
    /// The hook, given the writer.
    pub hook: WriterHook,
}

/// The work of a [`WriterTick`].
pub(crate) type WriterHook = Box<dyn FnMut(&mut ServiceWriters) -> Result<(), PipelineError> + Send>;

/// Starts the writer thread and returns the [`Batcher`] that feeds it. Without a tick the writer only waits for
/// batches (capture files); with one it also runs the hook when batches are slow to come.
pub(crate) fn start_writer(
    mut writer_cfg: SegmentWriterConfig,
    split: Option<ServiceSplit>,
    labels: Vec<(String, String)>,
    masker: Option<Masker>,
    tick: Option<WriterTick>,
) -> Result<(Batcher, WriterThread), PipelineError> {
    if let Some(m) = &masker {
        writer_cfg.masking_fingerprint = m.fingerprint().to_vec();
    }
    let (tx, rx) = bounded::<Vec<Exchange>>(CHANNEL_BATCHES);
    // Emptied batch vectors travel back so that their memory is reused instead of fresh pages per batch.
    let (recycle_tx, recycle_rx) = bounded::<Vec<Exchange>>(CHANNEL_BATCHES + 2);
    let handle = std::thread::Builder::new()
        .name("segment-writer".into())
        .spawn(move || write_segments(writer_cfg, split, masker, rx, recycle_tx, tick))
        .map_err(|_| PipelineError::WriterGone)?;
    Ok((Batcher::new(tx, recycle_rx, labels), WriterThread { handle }))
}

/// Gives exchanges their ids and labels, masks them (sharded pipelines) and sends them to the writer in batches.
/// Workers each hold a clone ([`Batcher::clone_for_worker`]); exchange ids come from one shared counter.
pub(crate) struct Batcher {
    tx: Sender<Vec<Exchange>>,
    recycled: Receiver<Vec<Exchange>>,
    next_id: Arc<AtomicU64>,
    /// The shared masking policy, applied before sending (None: the writer masks, or nothing does).
    pub(crate) masking: Option<SharedMasking>,
    /// This batcher's copy of the masking policy.
    masker: Option<WorkerMasker>,
    /// Exchanges produced since the last send; stages push into it.
    pub(crate) pending: Vec<Exchange>,
    /// Of `pending`, how many are tallied and masked (a prefix; see [`Batcher::settle`]).
    settled: usize,
    /// Of `pending`, how many are counted in `pending_bytes` (never more than `settled`).
    measured: usize,
    /// [`Exchange::approx_bytes`] of `pending[..measured]`.
    pending_bytes: usize,
    labels: Vec<(String, String)>,
}

impl Batcher {
    fn new(tx: Sender<Vec<Exchange>>, recycled: Receiver<Vec<Exchange>>, labels: Vec<(String, String)>) -> Self {
        Batcher {
            tx,
            recycled,
            next_id: Arc::new(AtomicU64::new(1)),
            masking: None,
            masker: None,
            pending: Vec::with_capacity(BATCH),
            settled: 0,
            measured: 0,
            pending_bytes: 0,
            labels,
        }
    }

    /// Another batcher to the same writer, sharing the id counter and the masking policy.
    pub(crate) fn clone_for_worker(&self) -> Batcher {
        Batcher {
            tx: self.tx.clone(),
            recycled: self.recycled.clone(),
            next_id: Arc::clone(&self.next_id),
            masking: self.masking.clone(),
            masker: self.masking.as_ref().map(|m| WorkerMasker::new(Arc::clone(m))),
            pending: Vec::with_capacity(BATCH),
            settled: 0,
            measured: 0,
            pending_bytes: 0,
            labels: self.labels.clone(),
        }
    }

    /// Counters of the masking this batcher applied (None when it masks nothing).
    pub(crate) fn mask_stats(&self) -> Option<MaskStats> {
        self.masker.as_ref().and_then(WorkerMasker::stats)
    }

    /// Tallies and masks the exchanges pushed since the last call. A worker calls this (through
    /// [`Batcher::full`]) after each batch of segments, while the new exchanges are still in the CPU's caches:
    /// masking them at send time instead, a whole batch (up to [`BATCH_BYTES`]) later, makes every header and body
    /// a cache miss again. Exchanges a `drop_exchange` rule drops are removed (they are tallied, as seen).
    pub(crate) fn settle(&mut self, tally: &mut ExchangeTally) {
        let from = self.settled.min(self.pending.len());
        for ex in &self.pending[from..] {
            tally.add(ex);
        }
        if let Some(m) = &mut self.masker {
            m.mask_tail(&mut self.pending, from);
        }
        self.settled = self.pending.len();
    }

    /// Settles the new exchanges ([`Batcher::settle`]) and says whether the pending batch should go now:
    /// [`BATCH`] exchanges, or [`BATCH_BYTES`] of them.
    pub(crate) fn full(&mut self, tally: &mut ExchangeTally) -> bool {
        self.settle(tally);
        for ex in &self.pending[self.measured..] {
            self.pending_bytes += ex.approx_bytes();
        }
        self.measured = self.pending.len();
        self.pending.len() >= BATCH || self.pending_bytes >= BATCH_BYTES
    }

    /// Settles ([`Batcher::settle`]), numbers and labels the pending exchanges and sends them (waiting while the
    /// channel is full). Fails only when the writer thread is gone.
    pub(crate) fn send(&mut self, tally: &mut ExchangeTally) -> Result<(), ()> {
        self.settle(tally);
        self.settled = 0;
        self.measured = 0;
        self.pending_bytes = 0;
        if self.pending.is_empty() {
            return Ok(());
        }
        let first = self.next_id.fetch_add(self.pending.len() as u64, Ordering::Relaxed);
        for (id, ex) in (first..).zip(self.pending.iter_mut()) {
            ex.id = id;
            if !self.labels.is_empty() {
                ex.labels.extend(self.labels.iter().cloned());
            }
        }
        let empty = self.recycled.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let batch = std::mem::replace(&mut self.pending, empty);
        self.tx.send(batch).map_err(|_| ())
    }
}

/// What the writer thread returns.
pub(crate) struct WriterResult {
    /// Writer counters, summed over every segment writer.
    pub stats: WriterStats,
    /// Files finished and not taken by a tick hook.
    pub files: Vec<PathBuf>,
    /// Splitting by service (None without it).
    pub services: Option<ServiceStats>,
}

/// How long the writer waits after a write error before it tries a new file (exchanges that arrive meanwhile are
/// dropped and counted in [`WriterStats::exchanges_dropped`]).
pub(crate) const WRITE_RETRY: Duration = Duration::from_secs(1);

/// The writer thread: exchanges in, masked (when configured), segment files out. Masking runs here, not on the
/// capture thread, so that reading keeps its speed and masking overlaps with it.
///
/// A write error (disk full, quota, permissions) does not stop the run: the writer closes its file cleanly (see
/// [`tapedeck_model::segment::SegmentWriter`]), one error naming the directory and the OS error is logged,
/// exchanges are dropped and counted while writing fails, and a new file is tried every [`WRITE_RETRY`]; when one
/// succeeds (space came back, e.g. retention or an operator deleted files) writing resumes and a warning says how
/// many were dropped. With `--split-by-service` the writers of every service share that state.
fn write_segments(
    cfg: SegmentWriterConfig,
    split: Option<ServiceSplit>,
    mut masker: Option<Masker>,
    rx: Receiver<Vec<Exchange>>,
    recycle: Sender<Vec<Exchange>>,
    tick: Option<WriterTick>,
) -> Result<WriterResult, PipelineError> {
    let mut failing = WriteFailure::new(cfg.dir.clone());
    let mut writer = ServiceWriters::new(cfg, split)?;
    let mut write_batch = |writer: &mut ServiceWriters, failing: &mut WriteFailure, mut batch: Vec<Exchange>| {
        if let Some(m) = &mut masker {
            m.mask_batch(&mut batch);
        }
        if let Err(e) = writer.check_map() {
            failing.failed(&e, writer.progress());
        }
        for ex in &batch {
            if failing.waiting() {
                writer.note_dropped(1);
                continue;
            }
            match writer.write(ex) {
                Ok(()) => failing.succeeded(writer),
                Err(e) => failing.failed(&e, writer.progress()),
            }
        }
        batch.clear();
        let _ = recycle.try_send(batch);
    };
    match tick {
        None => {
            for batch in rx {
                write_batch(&mut writer, &mut failing, batch);
            }
        }
        Some(mut tick) => {
            let mut last = Instant::now();
            loop {
                let wait = tick.every.saturating_sub(last.elapsed());
                match rx.recv_timeout(wait) {
                    Ok(batch) => write_batch(&mut writer, &mut failing, batch),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if last.elapsed() >= tick.every {
                    match (tick.hook)(&mut writer) {
                        Ok(()) => {}
                        Err(PipelineError::Writer(e)) => failing.failed(&e, writer.progress()),
                        Err(e) => return Err(e),
                    }
                    last = Instant::now();
                }
            }
        }
    }
    // The last block and footer: an error here is reported and counted like any other (the run still ends with
    // its summary).
    if let Err(e) = writer.close_all() {
        failing.failed(&e, writer.progress());
    }
    let files = writer.take_finished();
    let stats = writer.stats();
    let services = writer.splitting().then(|| writer.service_stats().clone());
    drop(writer);
    if stats.exchanges_dropped + stats.exchanges_lost > 0 {
        tracing::warn!(
            "{} exchange(s) were not written to {} because of write errors ({} error(s))",
            stats.exchanges_dropped + stats.exchanges_lost,
            failing.dir.display(),
            stats.write_errors
        );
    }
    Ok(WriterResult { stats, files, services })
}

/// The writer thread's state after a write error: when to retry, what to say.
struct WriteFailure {
    /// The segment directory (named in the messages).
    dir: PathBuf,
    /// When writing started failing (None while it works).
    since: Option<Instant>,
    /// No write is tried before this.
    retry_at: Instant,
    /// Dropped + lost when writing started failing, to say how many the outage cost.
    lost_before: u64,
    /// Blocks written when writing started failing: writing has resumed once a block more is on disk (a file
    /// that opens is not enough: a full disk still takes a header).
    blocks_before: u64,
}

impl WriteFailure {
    fn new(dir: PathBuf) -> Self {
        WriteFailure { dir, since: None, retry_at: Instant::now(), lost_before: 0, blocks_before: 0 }
    }

    /// Whether writing is failing and the next retry is not due yet.
    fn waiting(&self) -> bool {
        self.since.is_some() && Instant::now() < self.retry_at
    }

    /// A write worked: if writing was failing and a block reached the disk since, say that it resumed.
    fn succeeded(&mut self, writers: &ServiceWriters) {
        if self.since.is_none() {
            return;
        }
        let (blocks, lost) = writers.progress();
        if blocks > self.blocks_before {
            let since = self.since.take().unwrap_or_else(Instant::now);
            tracing::warn!(
                "writing segments to {} resumed after {:.1} s; {} exchange(s) dropped meanwhile",
                self.dir.display(),
                since.elapsed().as_secs_f64(),
                lost.saturating_sub(self.lost_before)
            );
        }
    }

    /// A write failed: an I/O error starts (or continues) the failing state, logged once; an exchange the writer
    /// refused (too large to encode) is only that exchange's loss.
    /// `progress` is the writers' (blocks written, exchanges dropped or lost) so far.
    fn failed(&mut self, e: &SegmentError, progress: (u64, u64)) {
        let io = match e {
            SegmentError::Io { source, .. } | SegmentError::IoAt { source, .. } => source,
            other => {
                tracing::warn!("{other}; exchange not written");
                return;
            }
        };
        self.retry_at = Instant::now() + WRITE_RETRY;
        if self.since.is_some() {
            tracing::debug!("writing segments to {} still fails: {e}", self.dir.display());
            return;
        }
        self.since = Some(Instant::now());
        (self.blocks_before, self.lost_before) = progress;
        let errno = io.raw_os_error().and_then(errno_name).map(|n| format!(" [{n}]")).unwrap_or_default();
        tracing::error!(
            "cannot write segments to {}: {e}{errno}; dropping exchanges (counted as writer exchanges_dropped) and \
             retrying a new file every {} s",
            self.dir.display(),
            WRITE_RETRY.as_secs()
        );
    }
}

/// The symbolic name of the errno values a writer meets.
fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        5 => "EIO",
        13 => "EACCES",
        2 => "ENOENT",
        24 => "EMFILE",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        122 => "EDQUOT",
        _ => return None,
    })
}

/// Whether `path` names standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_model::{Body, Flags, Protocol, Request, Timing};

    /// An HTTP/1.1 exchange of connection 1 holding `request` and no response.
    pub(super) fn exchange_of(request: Request) -> Exchange {
        let addr = std::net::SocketAddr::from(([10, 0, 0, 1], 80));
        Exchange {
            id: 0,
            connection_id: 1,
            order: 0,
            stream_id: None,
            proto: Protocol::Http11,
            client: addr,
            server: addr,
            timing: Timing::default(),
            request: Some(request),
            response: None,
            flags: Flags::NONE,
            labels: Vec::new(),
            masked_by: Vec::new(),
        }
    }

    fn exchange_with_body(n: usize) -> Exchange {
        exchange_of(Request { body: Body { bytes: vec![b'x'; n], full_len: n as u64 }, ..Request::default() })
    }

    #[test]
    fn batches_are_cut_by_bytes_as_well_as_by_count() {
        let (tx, rx) = bounded(CHANNEL_BATCHES);
        let (_recycle_tx, recycle_rx) = bounded(1);
        let mut b = Batcher::new(tx, recycle_rx, Vec::new());
        // 64 KiB bodies: the byte limit (1 MiB) is reached at the 16th exchange, long before 512.
        let mut sent_at = None;
        for i in 1..=BATCH {
            b.pending.push(exchange_with_body(64 << 10));
            if b.full(&mut ExchangeTally::default()) {
                sent_at = Some(i);
                break;
            }
        }
        assert_eq!(sent_at, Some(16));
        b.send(&mut ExchangeTally::default()).unwrap();
        assert_eq!(rx.try_recv().unwrap().len(), 16);
        // Small exchanges still go by count, and the byte tally started again from zero.
        for i in 1..=BATCH {
            b.pending.push(exchange_with_body(10));
            assert_eq!(b.full(&mut ExchangeTally::default()), i == BATCH, "at {i}");
        }
    }
}

#[cfg(test)]
mod settle_tests {
    use super::*;
    use crate::mask::{Masker, Policy};
    use crate::reload::Reloadable;
    use tapedeck_model::{Header, Request};

    fn exchange(path: &str, headers: Vec<Header>) -> Exchange {
        super::tests::exchange_of(Request { path: path.into(), headers, ..Request::default() })
    }

    fn masking(policy: Policy) -> SharedMasking {
        let key = crate::mask::MaskKey::new(b"pipeline-test-key-0123456789".to_vec()).unwrap();
        Arc::new(Reloadable::new(Some(Masker::new(policy, Some(&key)).unwrap())))
    }

    #[test]
    fn new_exchanges_are_masked_when_settled_and_dropped_ones_leave_the_batch_but_are_tallied() {
        let file = Policy::parse_file(
            "t.toml",
            "[[rule]]\nname = \"no-admin\"\ntarget = \"path\"\npatterns = [\"^/admin\"]\naction = \"drop_exchange\"\n",
        )
        .unwrap();
        let (tx, rx) = bounded(CHANNEL_BATCHES);
        let (_recycle_tx, recycle_rx) = bounded(1);
        let mut b = Batcher::new(tx, recycle_rx, Vec::new());
        b.masking = Some(masking(Policy::build(true, Some(file)).unwrap()));
        let mut b = b.clone_for_worker();
        let mut tally = ExchangeTally::default();
        b.pending.push(exchange("/a", vec![Header::new("Authorization", "Bearer s3cr3t")]));
        b.pending.push(exchange("/admin/x", vec![]));
        b.pending.push(exchange("/b", vec![Header::new("Accept", "*/*")]));
        assert!(!b.full(&mut tally));
        // Masked at once, before the batch goes: the secret is gone, the dropped exchange is out, order is kept.
        let paths: Vec<&[u8]> = b.pending.iter().map(|e| e.request.as_ref().unwrap().path.as_slice()).collect();
        assert_eq!(paths, [&b"/a"[..], b"/b"]);
        assert!(b.pending[0].request.as_ref().unwrap().headers[0].value.starts_with(b"Bearer tdk_"));
        assert_eq!(tally.total, 3);
        // Settled exchanges are not masked or tallied twice; later ones are settled at send.
        b.pending.push(exchange("/c", vec![Header::new("X-Api-Key", "k")]));
        b.send(&mut tally).unwrap();
        let sent = rx.try_recv().unwrap();
        assert_eq!(sent.len(), 3);
        assert_eq!(tally.total, 4);
        assert_eq!(sent[0].masked_by, ["auth-headers"]);
        assert!(sent[2].request.as_ref().unwrap().headers[0].value.starts_with(b"tdk_"));
        assert!(sent[1].masked_by.is_empty());
        let stats = b.mask_stats().unwrap();
        // The dropped exchange counts as masked too (its rule fired).
        assert_eq!((stats.exchanges_seen, stats.exchanges_dropped, stats.exchanges_masked), (4, 1, 3));
    }
}
