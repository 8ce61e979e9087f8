//! The live run (`agent --iface`): one capture thread per interface reads libpcap without blocking, decodes
//! (IP fragments reassembled per interface) and shards TCP segments by connection over the worker threads
//! ([`crate::shard`]); the capture thread never waits for room: when a worker's queue is full the batch is
//! dropped and counted (`queue_drops`, per worker and per interface). Workers reassemble, parse and mask, and feed
//! the writer thread ([`crate::pipeline`]); the writer thread also rotates quiet segments by age (wall clock),
//! flushes a quiet open block every `flush_interval`, applies retention and publishes writer counters. Workers
//! move their flow tables' clocks to the wall clock on every tick, so idle connections expire while the
//! interface is quiet.
//!
//! The calling thread is the control thread: it waits for the stop flag and handles reloads (SIGHUP, see
//! [`crate::signals`]): a new masking policy goes to the workers at their next batch, and the writer starts a
//! new file when the policy's fingerprint changed; with `--split-by-service --service-map FILE`, the map is
//! re-read (a bad file keeps the previous map, logged and counted) and the writer picks it up
//! ([`crate::writers`]).
//!
//! Stopping: the stop flag (set by SIGTERM/SIGINT) makes the capture threads send what they hold and end; the
//! workers drain their queues, close every connection (their open exchanges are written, flagged) and send the
//! last batch; the writer finishes and renames every open segment.
//!
//! Unlike the file pipeline, this module reads the clock: for age rotation, flushing and retention in quiet
//! periods, idle expiry, and for publishing metrics. Capture timestamps come from the kernel.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tapedeck_model::segment::WriterStats;

use crate::decode::{DecodeConfig, DecodeStats, Decoder};
use crate::mask::Masker;
use crate::metrics::Metrics;
use crate::pipeline::{
    CaptureConfig, InputSummary, PipelineError, RunSummary, WriterTick, peak_rss_bytes, start_masked_writer,
};
use crate::reload::{Reloadable, SharedMasking};
use crate::retention::{self, RetentionConfig, RetentionStats};
use crate::service::ServiceMap;
use crate::shard::{Overflow, Sharder, WorkerOptions, WorkerQueues, start_workers, wall_clock};
use crate::source::Frame;
use crate::source::capture::{self, BackendOptions, Capture};
use crate::source::ebpf::EbpfCounters;
use crate::source::live::{KernelStats, LiveConfig, LiveSource};
use crate::stats::Merge;
use crate::writers::{ServiceWriters, SharedServiceMap};

/// Everything a live run needs.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// One entry per interface (name, filter, snaplen, kernel buffer).
    pub interfaces: Vec<LiveConfig>,
    /// Decode, reassembly, parsers, segment writer, labels, workers.
    pub capture: CaptureConfig,
    /// Segment retention in the output directory.
    pub retention: RetentionConfig,
    /// Segment batches queued, over all workers (each worker gets its share, at least 8): the burst the workers
    /// can fall behind by before segments are dropped.
    pub queue_batches: usize,
    /// Payload bytes per batch of segments handed to a worker.
    pub batch_bytes: usize,
    /// How often quiet periods are handled: pending exchanges sent to the writer, idle connections expired,
    /// metrics published, age rotation checked, the stop flag looked at by the capture threads.
    pub tick: Duration,
    /// How often retention runs besides after each rotation.
    pub retention_every: Duration,
    /// How often the open segment block is flushed to disk when exchanges were written since the last flush.
    pub flush_interval: Duration,
    /// The capture backend (libpcap, eBPF, or auto) and the eBPF settings.
    pub backend: BackendOptions,
    /// Print the start line ([`capture::start_line`]) on standard error once every interface is open.
    pub announce: bool,
}

impl LiveOptions {
    /// Defaults for these interfaces and pipeline configuration.
    pub fn new(interfaces: Vec<LiveConfig>, capture: CaptureConfig) -> Self {
        LiveOptions {
            interfaces,
            capture,
            retention: RetentionConfig::default(),
            queue_batches: 128,
            batch_bytes: 256 << 10,
            tick: Duration::from_millis(100),
            retention_every: Duration::from_secs(10),
            flush_interval: crate::pipeline::DEFAULT_FLUSH_INTERVAL,
            backend: BackendOptions::default(),
            announce: false,
        }
    }
}

/// What a reload (SIGHUP) produced: the settings to apply from now on.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// The masking policy (None: mask nothing).
    pub masking: Option<Masker>,
}

/// Re-reads the reloadable settings (called on the control thread for each SIGHUP). An error keeps the
/// current settings (logged and counted in `tapedeck_reload_errors_total`).
pub type ReloadFn = Box<dyn FnMut() -> Result<Reloaded, String> + Send>;

/// How a live run is driven from outside.
pub struct LiveControl {
    /// Set to stop capturing and drain (SIGTERM/SIGINT).
    pub stop: Arc<AtomicBool>,
    /// Set to ask for a reload (SIGHUP); cleared when the reload is done.
    pub reload: Arc<AtomicBool>,
    /// What a reload does; None ignores reload requests.
    pub on_reload: Option<ReloadFn>,
}

impl LiveControl {
    /// Driven by a stop flag only.
    pub fn stop_only(stop: Arc<AtomicBool>) -> Self {
        LiveControl { stop, reload: Arc::default(), on_reload: None }
    }
}

/// What happened on one interface.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InterfaceSummary {
    /// The interface name.
    pub name: String,
    /// Its link type (LINKTYPE_ value).
    pub link_type: u32,
    /// Packets read from libpcap.
    pub packets: u64,
    /// Captured bytes of those packets.
    pub bytes: u64,
    /// Packets cut by the snaplen.
    pub truncated: u64,
    /// TCP segments of this interface dropped because a worker's queue was full.
    pub queue_drops: u64,
    /// libpcap's counters (received, dropped by the kernel, dropped by the interface); for the eBPF backend,
    /// packets matched and lost for lack of ring room.
    pub kernel: KernelStats,
    /// The capture backend used (`pcap`, `ebpf`).
    pub backend: String,
    /// The eBPF program's counters (eBPF backend only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf: Option<EbpfCounters>,
    /// The error that ended its capture early, if any.
    pub error: Option<String>,
}

/// The live part of a run's summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LiveSummary {
    /// Per interface.
    pub interfaces: Vec<InterfaceSummary>,
    /// Segment retention.
    pub retention: RetentionStats,
    /// Segment files finished during the run (including those retention later deleted).
    pub segment_files: u64,
}

/// Opens the capture source of one interface (`index` numbers it in frames and metrics). Every live source is
/// opened here.
pub fn open_source(cfg: &LiveConfig, index: u32) -> Result<LiveSource, PipelineError> {
    LiveSource::open(cfg, index).map_err(|e| PipelineError::Capture(e.to_string()))
}

/// Opens every interface (all errors before any capture starts), then captures until `control.stop` is set, and
/// returns the run's summary once every segment is finished. `metrics` must have been made for the same
/// interfaces in the same order, and for `opts.capture.workers` workers.
pub fn run_live(
    opts: LiveOptions,
    mut control: LiveControl,
    metrics: Arc<Metrics>,
) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let stop = Arc::clone(&control.stop);
    let sources = capture::open_all(&opts.interfaces, &opts.backend).map_err(PipelineError::Capture)?;
    for src in &sources {
        tracing::info!(interface = %src.interface(), link_type = src.link().0, backend = src.backend(), "capturing");
    }
    if opts.announce {
        eprintln!("agent: {}", capture::start_line(&sources, &opts.interfaces, &opts.capture.writer.dir));
    }
    crate::privileges::drop_after_capture_open().map_err(|e| PipelineError::Capture(e.to_string()))?;
    let workers_n = opts.capture.workers.max(1);

    let masking: SharedMasking = Arc::new(Reloadable::new(opts.capture.masking.clone()));
    let retention_stats = Arc::new(std::sync::Mutex::new(RetentionStats::default()));
    let tick = writer_tick(&opts, Arc::clone(&metrics), Arc::clone(&retention_stats), &masking);
    let (service_map, split) = opts.capture.services.as_ref().map(|s| s.split()).unzip();
    let map_file = opts.capture.services.as_ref().and_then(|s| s.map_file.clone());
    let (batcher, writer) = start_masked_writer(&opts.capture, &masking, split, Some(tick))?;
    let wopts = WorkerOptions {
        workers: workers_n,
        queue_batches: (opts.queue_batches / workers_n).max(8),
        batch_bytes: opts.batch_bytes,
        tick: Some(opts.tick),
        wall_clock: true,
    };
    let (queues, workers) = start_workers(&opts.capture, &batcher, &wopts, Some(&metrics.workers), Arc::clone(&stop))
        .map_err(|e| PipelineError::Capture(format!("starting worker threads: {e}")))?;
    drop(batcher);

    // Fragment caps are per decoder: split them over the interfaces so that the total stays.
    let mut decode = opts.capture.decode;
    decode.frag_max_bytes = (decode.frag_max_bytes / sources.len().max(1)).max(1);
    decode.frag_max_datagrams = (decode.frag_max_datagrams / sources.len().max(1)).max(1);
    let mut threads = Vec::with_capacity(sources.len());
    for (i, src) in sources.into_iter().enumerate() {
        let ctx = CaptureThread {
            queues: queues.clone(),
            decode,
            stop: Arc::clone(&stop),
            metrics: Arc::clone(&metrics),
            index: i,
            tick: opts.tick,
        };
        let name = format!("capture-{}", src.interface());
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || ctx.run(src))
            .map_err(|e| PipelineError::Capture(format!("starting a capture thread: {e}")))?;
        threads.push(handle);
    }
    drop(queues);
    metrics.capturing.store(true, Relaxed);

    // The control thread: reloads until stopped or until every capture thread has ended.
    while !stop.load(Relaxed) && threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(opts.tick);
        if !control.reload.swap(false, Relaxed) {
            continue;
        }
        if let Some(f) = control.on_reload.as_mut() {
            match f() {
                Ok(r) => {
                    masking.set(r.masking);
                    metrics.reloads.fetch_add(1, Relaxed);
                    tracing::info!("reloaded");
                }
                Err(e) => {
                    metrics.reload_errors.fetch_add(1, Relaxed);
                    tracing::error!("reload failed, keeping the current settings: {e}");
                }
            }
        }
        if let (Some(path), Some(shared)) = (&map_file, &service_map) {
            reload_service_map(path, shared, &metrics);
        }
    }
    // Drain: capture threads stop and hand over what they hold; workers then see their queues close.
    stop.store(true, Relaxed);
    let mut interfaces = Vec::with_capacity(threads.len());
    let mut decode_stats = DecodeStats::default();
    for t in threads {
        let (i, d) = t.join().unwrap_or_else(|_| {
            (
                InterfaceSummary { error: Some("capture thread panicked".into()), ..Default::default() },
                Default::default(),
            )
        });
        decode_stats.merge(&d);
        interfaces.push(i);
    }
    let totals = workers.join();
    let joined = writer.join();
    metrics.capturing.store(false, Relaxed);
    let done = joined?;
    if totals.writer_gone {
        return Err(PipelineError::WriterGone);
    }
    let writer_stats = done.stats;
    // Last pass: the files just finished count towards the limits.
    let mut retention = retention_stats.lock().map(|r| r.clone()).unwrap_or_default();
    retention::enforce(&opts.capture.writer.dir, &opts.retention, SystemTime::now(), 0, &mut retention);
    publish_writer(&metrics, &writer_stats, &retention);

    let mut summary = RunSummary {
        inputs: interfaces
            .iter()
            .map(|i| InputSummary {
                name: i.name.clone(),
                frames: i.packets,
                opened: true,
                error: i.error.clone(),
                ..Default::default()
            })
            .collect(),
        decode: decode_stats,
        reassembly: totals.reassembly,
        sessions: totals.sessions,
        exchanges: totals.tally,
        masking: totals.masking,
        workers: totals.per_worker,
        ..Default::default()
    };
    summary.source.frames = interfaces.iter().map(|i| i.packets).sum();
    summary.source.frame_bytes = interfaces.iter().map(|i| i.bytes).sum();
    summary.source.bytes_read = summary.source.frame_bytes;
    summary.source.truncated_records = interfaces.iter().map(|i| i.truncated).sum();
    summary.writer = writer_stats.clone();
    summary.segments = done.files.into_iter().filter(|f| f.exists()).collect();
    summary.services = done.services.map(|mut s| {
        s.map_reloads = metrics.service_map_reloads.load(Relaxed);
        s.map_reload_errors = metrics.service_map_reload_errors.load(Relaxed);
        s
    });
    summary.seconds = started.elapsed().as_secs_f64();
    summary.peak_rss_bytes = peak_rss_bytes();
    summary.live = Some(LiveSummary { interfaces, retention, segment_files: writer_stats.files_finished });
    Ok(summary)
}

/// Re-reads the service map (SIGHUP): a good file replaces the map (the writer picks it up at its next batch or
/// tick), a bad one keeps the previous map; both are logged and counted.
fn reload_service_map(path: &Path, shared: &SharedServiceMap, metrics: &Metrics) {
    match ServiceMap::load(path) {
        Ok(map) => {
            let (_, current) = shared.get();
            let changed = *current != map;
            tracing::info!(file = %path.display(), entries = map.entries().len(), changed, "service map re-read");
            if changed {
                shared.set(Arc::new(map));
            }
            metrics.service_map_reloads.fetch_add(1, Relaxed);
        }
        Err(e) => {
            metrics.service_map_reload_errors.fetch_add(1, Relaxed);
            tracing::error!("{e}; keeping the previous service map");
        }
    }
}

/// Stores the writers' open count and evictions, their summed counters and retention's into the shared counters.
fn publish_writers(m: &Metrics, writers: &ServiceWriters, r: &RetentionStats) {
    publish_writer(m, &writers.stats(), r);
    m.service_writers_open.store(writers.open_writers() as u64, Relaxed);
    m.service_writers_evicted.store(writers.service_stats().writers_evicted, Relaxed);
}

/// Stores the writer's and retention's totals into the shared counters.
fn publish_writer(m: &Metrics, w: &WriterStats, r: &RetentionStats) {
    m.segment_bytes.store(w.file_bytes, Relaxed);
    m.segment_exchanges.store(w.exchanges, Relaxed);
    m.segment_files.store(w.files_finished, Relaxed);
    m.writer_write_errors.store(w.write_errors, Relaxed);
    m.writer_dropped_exchanges.store(w.exchanges_dropped + w.exchanges_lost, Relaxed);
    m.retention_deletions.store(r.deleted(), Relaxed);
    m.retention_bytes.store(r.bytes_deleted, Relaxed);
}

/// The writer thread's periodic work: age rotation by the wall clock, flushing quiet blocks every
/// `flush_interval`, new files when a reload changed the masking fingerprint or the service map, retention after
/// rotations (and every `retention_every`), metrics.
fn writer_tick(
    opts: &LiveOptions,
    metrics: Arc<Metrics>,
    stats: Arc<std::sync::Mutex<RetentionStats>>,
    masking: &SharedMasking,
) -> WriterTick {
    let dir = opts.capture.writer.dir.clone();
    let cfg = opts.retention.clone();
    let every = opts.retention_every;
    let flush_every = opts.flush_interval;
    let masking = Arc::clone(masking);
    let mut masking_generation = masking.generation();
    let mut last_pass: Option<Instant> = None;
    let mut last_flush = Instant::now();
    WriterTick {
        every: opts.tick,
        hook: Box::new(move |writers: &mut ServiceWriters| {
            let mut rotated = false;
            if masking.generation() != masking_generation {
                let (generation, m) = masking.get();
                masking_generation = generation;
                let fingerprint = m.as_ref().map(|m| m.fingerprint().to_vec()).unwrap_or_default();
                // Segment headers name the policy: later exchanges go to new files under the new one.
                rotated |= writers.set_masking_fingerprint(fingerprint)?;
            }
            // A reloaded service map is also picked up in quiet periods.
            writers.check_map()?;
            writers.advance_time(wall_clock())?;
            rotated |= !writers.take_finished().is_empty();
            if last_flush.elapsed() >= flush_every {
                let (flushed, result) = writers.flush_written();
                if flushed > 0 {
                    last_flush = Instant::now();
                    metrics.segment_flushes.fetch_add(flushed, Relaxed);
                }
                result?;
            }
            let mut st = stats.lock().map(|s| s.clone()).unwrap_or_default();
            if cfg.enabled() && (rotated || last_pass.is_none_or(|t| t.elapsed() >= every)) {
                retention::enforce(&dir, &cfg, SystemTime::now(), writers.open_file_bytes(), &mut st);
                last_pass = Some(Instant::now());
                if let Ok(mut s) = stats.lock() {
                    *s = st.clone();
                }
            }
            publish_writers(&metrics, writers, &st);
            Ok(())
        }),
    }
}

/// One interface's capture thread: reads, decodes, shards.
struct CaptureThread {
    queues: WorkerQueues,
    decode: DecodeConfig,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    index: usize,
    tick: Duration,
}

/// Frames read before the capture thread hands its pending batches over and looks at the stop flag.
const READ_BURST: usize = 4096;
/// Pending segments are handed to the workers at least this often while packets keep coming (and at once when
/// none are ready).
const HANDOVER_EVERY: Duration = Duration::from_millis(5);
/// Frames still read from the kernel's buffer once the stop flag is set, at most.
const DRAIN_FRAMES: u64 = 65_536;

/// Decodes one frame and hands its TCP segment (if any) to its worker's pending batch; returns the frame's bytes.
fn shard_frame(f: &Frame<'_>, decoder: &mut Decoder, sharder: &mut Sharder) -> u64 {
    sharder.saw(f.ts);
    if let Some(seg) = decoder.decode(f) {
        sharder.push(&seg);
    }
    f.data.len() as u64
}

impl CaptureThread {
    fn run(self, mut src: Capture) -> (InterfaceSummary, DecodeStats) {
        let mut out = InterfaceSummary {
            name: src.interface().to_string(),
            link_type: src.link().0,
            backend: src.backend().to_string(),
            ..Default::default()
        };
        let mut decoder = Decoder::new(self.decode);
        let mut sharder = Sharder::new(self.queues.clone(), Overflow::Drop);
        let m = self.metrics.interfaces.get(self.index);
        // Publishes the backend (and its counters) before the first packet.
        self.kernel_stats(&mut src, &mut out);
        let mut last_stats = Instant::now();
        let mut last_flush = Instant::now();
        'outer: while !self.stop.load(Relaxed) {
            let (mut got, mut bytes) = (0usize, 0u64);
            loop {
                match src.next_frame() {
                    Ok(Some(f)) => {
                        got += 1;
                        bytes += shard_frame(&f, &mut decoder, &mut sharder);
                        if got >= READ_BURST {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!("{e}");
                        out.error = Some(e.to_string());
                        break 'outer;
                    }
                }
            }
            self.account(&mut out, got as u64, bytes);
            if let Some(m) = m {
                m.queue_drops.store(sharder.dropped, Relaxed);
            }
            if got == 0 || (got < READ_BURST && last_flush.elapsed() >= HANDOVER_EVERY) {
                // Nothing more ready: hand over what is pending rather than wait for full batches, but not after
                // every poll (a handover per few packets costs the workers more in wakeups than in parsing).
                sharder.flush();
                last_flush = Instant::now();
            }
            if last_stats.elapsed() >= self.tick * 5 {
                self.kernel_stats(&mut src, &mut out);
                last_stats = Instant::now();
            }
            if sharder.workers_gone {
                // The workers are gone (writer failure): stop capturing.
                self.stop.store(true, Relaxed);
                break;
            }
            if got == 0
                && let Err(e) = src.wait(self.tick)
            {
                tracing::error!("{e}");
                out.error = Some(e.to_string());
                break;
            }
        }
        if out.error.is_none() && !sharder.workers_gone {
            // Stopping: what the kernel already holds was captured before the signal; take it (bounded).
            let (mut got, mut bytes) = (0u64, 0u64);
            while got < DRAIN_FRAMES {
                match src.next_frame() {
                    Ok(Some(f)) => {
                        got += 1;
                        bytes += shard_frame(&f, &mut decoder, &mut sharder);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            self.account(&mut out, got, bytes);
        }
        sharder.flush();
        out.queue_drops = sharder.dropped;
        if let Some(m) = m {
            m.queue_drops.store(sharder.dropped, Relaxed);
        }
        self.kernel_stats(&mut src, &mut out);
        out.truncated = src.truncated_frames();
        if let Some(m) = m {
            m.up.store(false, Relaxed);
        }
        (out, decoder.stats().clone())
    }

    fn account(&self, out: &mut InterfaceSummary, packets: u64, bytes: u64) {
        out.packets += packets;
        out.bytes += bytes;
        if let Some(m) = self.metrics.interfaces.get(self.index) {
            m.packets.fetch_add(packets, Relaxed);
            m.bytes.fetch_add(bytes, Relaxed);
        }
    }

    fn kernel_stats(&self, src: &mut Capture, out: &mut InterfaceSummary) {
        if let Some(c) = src.ebpf_counters() {
            out.ebpf = Some(c);
            if let Some(m) = self.metrics.interfaces.get(self.index) {
                m.ebpf.store(&c);
            }
        }
        match src.kernel_stats() {
            Ok(k) => {
                out.kernel = k;
                if let Some(m) = self.metrics.interfaces.get(self.index) {
                    m.kernel_drops.store(k.dropped, Relaxed);
                    m.interface_drops.store(k.if_dropped, Relaxed);
                }
            }
            Err(e) => tracing::debug!("{e}"),
        }
    }
}
