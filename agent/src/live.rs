//! The live run (`agent --iface`): one capture thread per interface reads libpcap without blocking and hands
//! packets, copied into owned batches, to the processing thread over a bounded queue. The capture thread never
//! waits for room: when the queue is full the batch is dropped and counted (`queue_drops`). The processing thread
//! (the caller's) decodes, reassembles and parses as the file pipeline does, and feeds the same [`Batcher`] and
//! writer thread ([`crate::pipeline`]); the writer thread also rotates quiet segments by age (wall clock), applies
//! retention and publishes writer counters.
//!
//! Stopping: the stop flag (set by SIGTERM/SIGINT, see [`install_signal_handlers`]) makes the capture threads
//! send what they hold and end; the processing thread drains the queue, closes every connection (their open
//! exchanges are written, flagged), sends the last batch; the writer finishes and renames every open segment.
//!
//! Unlike the file pipeline, this module reads the clock: for age rotation and retention in quiet periods, and for
//! publishing metrics. Capture timestamps come from the kernel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use serde::Serialize;
use tapedeck_model::Timestamp;
use tapedeck_model::segment::{SegmentWriter, WriterStats};

use crate::decode::Decoder;
use crate::metrics::Metrics;
use crate::pipeline::{
    CaptureConfig, InputSummary, PipelineError, RunSummary, WriterTick, peak_rss_bytes, start_writer,
};
use crate::reassembly::{FlowTable, ReassemblyStats};
use crate::retention::{self, RetentionConfig, RetentionStats};
use crate::session::SessionFactory;
use crate::source::capture::{self, BackendOptions, Capture};
use crate::source::ebpf::EbpfCounters;
use crate::source::live::{KernelStats, LiveConfig};
use crate::source::{Frame, LinkType};
use crate::stats::{ExchangeTally, SessionStats};

/// Everything a live run needs.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// One entry per interface (name, filter, snaplen, kernel buffer).
    pub interfaces: Vec<LiveConfig>,
    /// Decode, reassembly, parsers, segment writer, labels.
    pub capture: CaptureConfig,
    /// Segment retention in the output directory.
    pub retention: RetentionConfig,
    /// Packet batches queued between the capture threads and the processing thread (all interfaces).
    pub queue_batches: usize,
    /// A capture thread sends its batch once it holds this many bytes (or 1024 packets, or nothing is ready).
    pub batch_bytes: usize,
    /// How often quiet periods are handled: pending exchanges sent to the writer, metrics published, age
    /// rotation checked, the stop flag looked at by the capture threads.
    pub tick: Duration,
    /// How often retention runs besides after each rotation.
    pub retention_every: Duration,
    /// The capture backend (libpcap, eBPF, or auto) and the eBPF settings.
    pub backend: BackendOptions,
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
            backend: BackendOptions::default(),
        }
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
    /// Packets dropped because the queue to the processing thread was full.
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

/// Packets of one interface, copied out of libpcap's ring into one buffer.
struct PacketBatch {
    interface: u32,
    link: LinkType,
    data: Vec<u8>,
    packets: Vec<PacketMeta>,
}

struct PacketMeta {
    ts: Timestamp,
    end: usize,
    orig_len: u32,
    number: u64,
}

/// Most packets per batch.
const BATCH_PACKETS: usize = 1024;

impl PacketBatch {
    fn empty(link: LinkType) -> Self {
        PacketBatch { interface: 0, link, data: Vec::new(), packets: Vec::new() }
    }
    fn push(&mut self, f: &Frame<'_>) {
        self.data.extend_from_slice(f.data);
        self.packets.push(PacketMeta { ts: f.ts, end: self.data.len(), orig_len: f.orig_len, number: f.number });
    }
    fn clear(&mut self) {
        self.data.clear();
        self.packets.clear();
    }
    fn frames(&self) -> impl Iterator<Item = Frame<'_>> {
        let mut start = 0;
        self.packets.iter().map(move |m| {
            let data = self.data.get(start..m.end).unwrap_or(&[]);
            start = m.end;
            Frame { ts: m.ts, link: self.link, data, orig_len: m.orig_len, interface: self.interface, number: m.number }
        })
    }
}

/// Registers SIGTERM and SIGINT: the first sets the returned flag (stop and drain), a second one while the flag
/// is set exits the process at once with status 130.
pub fn install_signal_handlers() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Order matters: the conditional exit is checked before the flag is set by the same signal.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// Opens every interface (all errors before any capture starts), then captures until `stop` is set, and returns
/// the run's summary once every segment is finished. `metrics` must have been made for the same interfaces in
/// the same order.
pub fn run_live(opts: LiveOptions, stop: Arc<AtomicBool>, metrics: Arc<Metrics>) -> Result<RunSummary, PipelineError> {
    let started = Instant::now();
    let sources = capture::open_all(&opts.interfaces, &opts.backend).map_err(PipelineError::Capture)?;
    for src in &sources {
        tracing::info!(interface = %src.interface(), link_type = src.link().0, backend = src.backend(), "capturing");
    }

    let retention_stats = Arc::new(std::sync::Mutex::new(RetentionStats::default()));
    let tick = writer_tick(&opts, Arc::clone(&metrics), Arc::clone(&retention_stats));
    let (mut batcher, writer) = start_writer(
        opts.capture.writer.clone(),
        opts.capture.labels.clone(),
        opts.capture.masking.clone(),
        Some(tick),
    )?;

    let (tx, rx) = bounded::<PacketBatch>(opts.queue_batches.max(1));
    let (recycle_tx, recycle_rx) = bounded::<PacketBatch>(opts.queue_batches.max(1) + 2 * sources.len());
    let mut threads = Vec::with_capacity(sources.len());
    for (i, src) in sources.into_iter().enumerate() {
        let ctx = CaptureThread {
            tx: tx.clone(),
            recycle: recycle_rx.clone(),
            stop: Arc::clone(&stop),
            metrics: Arc::clone(&metrics),
            index: i,
            batch_bytes: opts.batch_bytes.max(1),
            tick: opts.tick,
        };
        let name = format!("capture-{}", src.interface());
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || ctx.run(src))
            .map_err(|e| PipelineError::Capture(format!("starting a capture thread: {e}")))?;
        threads.push(handle);
    }
    drop(tx);
    drop(recycle_rx);
    metrics.capturing.store(true, Relaxed);

    let mut decoder = Decoder::new(opts.capture.decode);
    let mut table = FlowTable::new(opts.capture.reassembly.clone(), SessionFactory::new(opts.capture.session.clone()));
    let mut tally = ExchangeTally::default();
    let mut last_ts = Timestamp(0);
    let mut send_failed = false;
    let mut last_tick = Instant::now();
    loop {
        match rx.recv_timeout(opts.tick) {
            Ok(mut batch) => {
                for frame in batch.frames() {
                    last_ts = last_ts.max(frame.ts);
                    if let Some(seg) = decoder.decode(&frame) {
                        table.process(&seg, &mut batcher.pending);
                    }
                }
                batch.clear();
                let _ = recycle_tx.try_send(batch);
            }
            Err(RecvTimeoutError::Timeout) => {}
            // Every capture thread has ended (stop, or errors on all interfaces).
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let due = last_tick.elapsed() >= opts.tick;
        if (batcher.full() || (due && !batcher.pending.is_empty())) && batcher.send(&mut tally).is_err() {
            send_failed = true;
            break;
        }
        if due {
            let sessions = table.factory_mut().stats();
            publish(&metrics, table.stats(), &sessions, &tally, table.open_flows());
            last_tick = Instant::now();
        }
    }
    // Drain: capture threads have stopped (or the writer died and we stop them).
    stop.store(true, Relaxed);
    let mut interfaces = Vec::with_capacity(threads.len());
    for t in threads {
        interfaces.push(t.join().unwrap_or_else(|_| InterfaceSummary {
            error: Some("capture thread panicked".into()),
            ..Default::default()
        }));
    }
    let flush_ts = last_ts.max(wall_clock());
    table.flush_all(flush_ts, &mut batcher.pending);
    if !send_failed {
        send_failed = batcher.send(&mut tally).is_err();
    }
    let sessions = table.factory_mut().stats();
    publish(&metrics, table.stats(), &sessions, &tally, table.open_flows());
    drop(batcher);
    let joined = writer.join();
    metrics.capturing.store(false, Relaxed);
    let (writer_stats, files, mask_stats) = joined?;
    if send_failed {
        return Err(PipelineError::WriterGone);
    }
    // Last pass: the files just finished count towards the limits.
    let mut retention = retention_stats.lock().map(|r| r.clone()).unwrap_or_default();
    retention::enforce(&opts.capture.writer.dir, &opts.retention, SystemTime::now(), 0, &mut retention);
    publish_writer(&metrics, &writer_stats, &retention);

    let mut summary = RunSummary {
        inputs: interfaces
            .iter()
            .map(|i| InputSummary { name: i.name.clone(), frames: i.packets, opened: true, error: i.error.clone() })
            .collect(),
        decode: decoder.stats().clone(),
        reassembly: table.stats().clone(),
        sessions,
        exchanges: tally,
        masking: mask_stats,
        ..Default::default()
    };
    summary.source.frames = interfaces.iter().map(|i| i.packets).sum();
    summary.source.frame_bytes = interfaces.iter().map(|i| i.bytes).sum();
    summary.source.bytes_read = summary.source.frame_bytes;
    summary.source.truncated_records = interfaces.iter().map(|i| i.truncated).sum();
    summary.writer = writer_stats.clone();
    summary.segments = files.into_iter().filter(|f| f.exists()).collect();
    summary.seconds = started.elapsed().as_secs_f64();
    summary.peak_rss_bytes = peak_rss_bytes();
    summary.live = Some(LiveSummary { interfaces, retention, segment_files: writer_stats.files_finished });
    Ok(summary)
}

/// Now as a capture timestamp.
fn wall_clock() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Stores the processing thread's totals into the shared counters.
fn publish(m: &Metrics, r: &ReassemblyStats, s: &SessionStats, tally: &ExchangeTally, open_flows: usize) {
    m.flows_open.store(open_flows as u64, Relaxed);
    m.flows_created.store(r.flows_created, Relaxed);
    m.flows_evicted.store(r.flows_evicted, Relaxed);
    m.gaps.store(r.gaps, Relaxed);
    m.gap_bytes.store(r.gap_bytes, Relaxed);
    m.parse_errors_http1.store(s.http1.parse_errors, Relaxed);
    m.parse_errors_h2
        .store(s.h2.preface_errors + s.h2.malformed_frames + s.h2.protocol_errors + s.h2.hpack_errors, Relaxed);
    if let Ok(mut map) = m.exchanges.lock() {
        map.clone_from(&tally.by_proto);
    }
}

/// Stores the writer's and retention's totals into the shared counters.
fn publish_writer(m: &Metrics, w: &WriterStats, r: &RetentionStats) {
    m.segment_bytes.store(w.file_bytes, Relaxed);
    m.segment_exchanges.store(w.exchanges, Relaxed);
    m.segment_files.store(w.files_finished, Relaxed);
    m.retention_deletions.store(r.deleted(), Relaxed);
    m.retention_bytes.store(r.bytes_deleted, Relaxed);
}

/// The writer thread's periodic work: age rotation by the wall clock, retention after rotations (and every
/// `retention_every`), metrics.
fn writer_tick(opts: &LiveOptions, metrics: Arc<Metrics>, stats: Arc<std::sync::Mutex<RetentionStats>>) -> WriterTick {
    let dir = opts.capture.writer.dir.clone();
    let cfg = opts.retention.clone();
    let every = opts.retention_every;
    let mut last_pass: Option<Instant> = None;
    WriterTick {
        every: opts.tick,
        hook: Box::new(move |writer: &mut SegmentWriter| {
            writer.advance_time(wall_clock())?;
            let rotated = !writer.take_finished().is_empty();
            let mut st = stats.lock().map(|s| s.clone()).unwrap_or_default();
            if cfg.enabled() && (rotated || last_pass.is_none_or(|t| t.elapsed() >= every)) {
                let open = writer.current_tmp_path().and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len());
                retention::enforce(&dir, &cfg, SystemTime::now(), open, &mut st);
                last_pass = Some(Instant::now());
                if let Ok(mut s) = stats.lock() {
                    *s = st.clone();
                }
            }
            publish_writer(&metrics, writer.stats(), &st);
            Ok(())
        }),
    }
}

/// One interface's capture thread.
struct CaptureThread {
    tx: Sender<PacketBatch>,
    recycle: Receiver<PacketBatch>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    index: usize,
    batch_bytes: usize,
    tick: Duration,
}

impl CaptureThread {
    fn run(self, mut src: Capture) -> InterfaceSummary {
        let mut out = InterfaceSummary {
            name: src.interface().to_string(),
            link_type: src.link().0,
            backend: src.backend().to_string(),
            ..Default::default()
        };
        let mut batch = self.fresh_batch(&src);
        // Publishes the backend (and its counters) before the first packet.
        self.kernel_stats(&mut src, &mut out);
        let mut last_stats = Instant::now();
        'outer: while !self.stop.load(Relaxed) {
            let mut got = 0usize;
            loop {
                match src.next_frame() {
                    Ok(Some(f)) => {
                        batch.push(&f);
                        got += 1;
                        if batch.packets.len() >= BATCH_PACKETS || batch.data.len() >= self.batch_bytes {
                            self.send(&mut batch, &src, &mut out);
                        }
                        if got >= 4 * BATCH_PACKETS {
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
            if !batch.packets.is_empty() {
                self.send(&mut batch, &src, &mut out);
            }
            if last_stats.elapsed() >= self.tick * 5 {
                self.kernel_stats(&mut src, &mut out);
                last_stats = Instant::now();
            }
            if got == 0
                && let Err(e) = src.wait(self.tick)
            {
                tracing::error!("{e}");
                out.error = Some(e.to_string());
                break;
            }
        }
        if !batch.packets.is_empty() {
            self.send(&mut batch, &src, &mut out);
        }
        self.kernel_stats(&mut src, &mut out);
        out.truncated = src.truncated_frames();
        if let Some(m) = self.metrics.interfaces.get(self.index) {
            m.up.store(false, Relaxed);
        }
        out
    }

    fn fresh_batch(&self, src: &Capture) -> PacketBatch {
        let mut b = self.recycle.try_recv().unwrap_or_else(|_| PacketBatch {
            interface: 0,
            link: src.link(),
            data: Vec::with_capacity(self.batch_bytes + (64 << 10)),
            packets: Vec::with_capacity(BATCH_PACKETS),
        });
        b.interface = self.index as u32;
        b.link = src.link();
        b
    }

    /// Hands the batch over without waiting; a full queue drops it (counted).
    fn send(&self, batch: &mut PacketBatch, src: &Capture, out: &mut InterfaceSummary) {
        let n = batch.packets.len() as u64;
        let bytes = batch.data.len() as u64;
        out.packets += n;
        out.bytes += bytes;
        let m = self.metrics.interfaces.get(self.index);
        if let Some(m) = m {
            m.packets.fetch_add(n, Relaxed);
            m.bytes.fetch_add(bytes, Relaxed);
        }
        let full = std::mem::replace(batch, PacketBatch::empty(src.link()));
        match self.tx.try_send(full) {
            Ok(()) => *batch = self.fresh_batch(src),
            Err(TrySendError::Full(mut back)) => {
                out.queue_drops += n;
                if let Some(m) = m {
                    m.queue_drops.fetch_add(n, Relaxed);
                }
                back.clear();
                *batch = back;
            }
            Err(TrySendError::Disconnected(mut back)) => {
                back.clear();
                *batch = back;
                // The processing thread is gone (writer failure): stop capturing.
                out.queue_drops += n;
                self.stop.store(true, Relaxed);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_gives_back_its_frames_in_order() {
        let mut b = PacketBatch { interface: 2, link: LinkType::RAW, data: Vec::new(), packets: Vec::new() };
        for (i, payload) in [&b"abc"[..], b"", b"defgh"].iter().enumerate() {
            let f = Frame {
                ts: Timestamp(i as u64 * 10),
                link: LinkType::RAW,
                data: payload,
                orig_len: payload.len() as u32 + 1,
                interface: 2,
                number: i as u64 + 1,
            };
            b.push(&f);
        }
        let got: Vec<(u64, Vec<u8>, u32, u64, u32)> =
            b.frames().map(|f| (f.ts.0, f.data.to_vec(), f.orig_len, f.number, f.interface)).collect();
        assert_eq!(
            got,
            vec![(0, b"abc".to_vec(), 4, 1, 2), (10, Vec::new(), 1, 2, 2), (20, b"defgh".to_vec(), 6, 3, 2)]
        );
        b.clear();
        assert_eq!(b.frames().count(), 0);
    }
}
