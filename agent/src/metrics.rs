//! Observability for live capture: shared counters ([`Metrics`]) that the capture, processing and writer threads
//! publish into, and a small HTTP listener ([`MetricsServer`], plain `std::net`, one thread, one request at a
//! time) serving them as Prometheus text on `/metrics` and a liveness answer on `/healthz`.
//!
//! Counters are published as totals (stores of the stages' own cumulative counters), so the hot path does no
//! atomic work per packet beyond the capture threads' per-batch additions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters of one capture interface.
#[derive(Debug, Default)]
pub struct InterfaceMetrics {
    /// The interface name.
    pub name: String,
    /// Packets delivered by libpcap.
    pub packets: AtomicU64,
    /// Captured bytes of those packets.
    pub bytes: AtomicU64,
    /// Packets the kernel dropped for lack of buffer room (`ps_drop`).
    pub kernel_drops: AtomicU64,
    /// Packets the interface or driver dropped (`ps_ifdrop`).
    pub interface_drops: AtomicU64,
    /// TCP segments of this interface dropped because a worker's queue was full.
    pub queue_drops: AtomicU64,
    /// Whether its capture thread is still reading.
    pub up: AtomicBool,
    /// The eBPF program's counters, when the interface uses the eBPF backend.
    pub ebpf: EbpfMetrics,
}

/// The eBPF capture program's counters on one interface (see `source::ebpf::EbpfCounters`).
#[derive(Debug, Default)]
pub struct EbpfMetrics {
    /// Whether the interface uses the eBPF backend (else libpcap).
    pub active: AtomicBool,
    /// Packets the classifiers saw.
    pub seen: AtomicU64,
    /// TCP packets that passed the filter.
    pub matched: AtomicU64,
    /// Records submitted to the ring.
    pub submitted: AtomicU64,
    /// Matched packets lost because the ring was full.
    pub reserve_failures: AtomicU64,
    /// Matched packets lost because copying their bytes failed.
    pub copy_failures: AtomicU64,
    /// Submissions that woke the reader.
    pub wakeups: AtomicU64,
}

impl EbpfMetrics {
    /// Stores the program's totals and marks the interface as using eBPF.
    pub fn store(&self, c: &crate::source::ebpf::EbpfCounters) {
        self.active.store(true, Relaxed);
        self.seen.store(c.seen, Relaxed);
        self.matched.store(c.matched, Relaxed);
        self.submitted.store(c.submitted, Relaxed);
        self.reserve_failures.store(c.reserve_failures, Relaxed);
        self.copy_failures.store(c.copy_failures, Relaxed);
        self.wakeups.store(c.wakeups, Relaxed);
    }
}

/// Counters of one processing worker (flow table, parsers): published by the worker as totals on each tick.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    /// TCP segments processed.
    pub segments: AtomicU64,
    /// Segments dropped because this worker's queue was full (live capture; the capture thread never waits).
    pub queue_drops: AtomicU64,
    /// TCP connections tracked now (gauge).
    pub flows_open: AtomicU64,
    /// TCP connections opened.
    pub flows_created: AtomicU64,
    /// TCP connections evicted at the worker's share of the `--max-flows` cap.
    pub flows_evicted: AtomicU64,
    /// TCP connections closed after `--idle-timeout` without a packet.
    pub flows_idle: AtomicU64,
    /// Reassembly gaps (bytes the capture missed).
    pub gaps: AtomicU64,
    /// Bytes inside those gaps.
    pub gap_bytes: AtomicU64,
    /// HTTP/1 parse errors (of connections closed so far).
    pub parse_errors_http1: AtomicU64,
    /// HTTP/2 parse errors: bad prefaces, malformed frames, protocol and HPACK errors (of connections closed so
    /// far).
    pub parse_errors_h2: AtomicU64,
    /// Exchanges handed to the writer, by protocol name.
    pub exchanges: Mutex<BTreeMap<String, u64>>,
    /// Exchanges handed to the writer (updated at every batch; for progress displays).
    pub exchanges_sent: AtomicU64,
}

/// Every counter `/metrics` shows. Shared (`Arc`) between the threads of a live run and the HTTP listener.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Per capture interface.
    pub interfaces: Vec<InterfaceMetrics>,
    /// Per processing worker (`--workers`); the flow and exchange totals are their sums.
    pub workers: Vec<Arc<WorkerMetrics>>,
    /// Bytes written to segment files.
    pub segment_bytes: AtomicU64,
    /// Exchanges written to segment files.
    pub segment_exchanges: AtomicU64,
    /// Segment files finished (renamed to `.seg`).
    pub segment_files: AtomicU64,
    /// Segment blocks flushed to disk by `--flush-interval` while traffic was low.
    pub segment_flushes: AtomicU64,
    /// I/O errors of the segment writer (disk full, permissions).
    pub writer_write_errors: AtomicU64,
    /// Exchanges not written because of write errors: dropped while writing failed, or lost in a failed block.
    pub writer_dropped_exchanges: AtomicU64,
    /// Segment files deleted by retention.
    pub retention_deletions: AtomicU64,
    /// Bytes of the files deleted by retention.
    pub retention_bytes: AtomicU64,
    /// SIGHUP reloads done (masking policy, service map, log file).
    pub reloads: AtomicU64,
    /// SIGHUP reloads that failed (the previous configuration stays).
    pub reload_errors: AtomicU64,
    /// Segment writers open now (gauge): one per service with `--split-by-service`, else one.
    pub service_writers_open: AtomicU64,
    /// Service writers finished because `--max-open-services` were open and another service needed one.
    pub service_writers_evicted: AtomicU64,
    /// Service-map re-reads (SIGHUP) that succeeded.
    pub service_map_reloads: AtomicU64,
    /// Service-map re-reads that failed (the previous map stays).
    pub service_map_reload_errors: AtomicU64,
    /// Whether the run is capturing: set once every interface is open and its thread started, cleared when the
    /// run ends. `/healthz` answers 503 without it (so it also serves as a readiness check).
    pub capturing: AtomicBool,
}

impl Metrics {
    /// Counters for these interfaces and one worker, all zero, not capturing yet.
    pub fn new(interfaces: &[String]) -> Self {
        Self::with_workers(interfaces, 1)
    }

    /// Counters for these interfaces and `workers` processing workers.
    pub fn with_workers(interfaces: &[String], workers: usize) -> Self {
        Metrics {
            interfaces: interfaces
                .iter()
                .map(|n| InterfaceMetrics { name: n.clone(), up: AtomicBool::new(true), ..Default::default() })
                .collect(),
            workers: (0..workers.max(1)).map(|_| Arc::default()).collect(),
            ..Default::default()
        }
    }

    /// The sum of one worker counter over all workers.
    fn sum(&self, get: impl Fn(&WorkerMetrics) -> &AtomicU64) -> u64 {
        self.workers.iter().map(|w| get(w).load(Relaxed)).sum()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let per_iface =
            |out: &mut String, name: &str, kind: &str, help: &str, get: &dyn Fn(&InterfaceMetrics) -> u64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for i in &self.interfaces {
                    let _ = writeln!(out, "{name}{{interface=\"{}\"}} {}", escape(&i.name), get(i));
                }
            };
        per_iface(&mut out, "tapedeck_packets_total", "counter", "Packets captured.", &|i| i.packets.load(Relaxed));
        per_iface(&mut out, "tapedeck_bytes_total", "counter", "Captured bytes.", &|i| i.bytes.load(Relaxed));
        per_iface(
            &mut out,
            "tapedeck_kernel_drops_total",
            "counter",
            "Packets the kernel dropped for lack of buffer room (libpcap ps_drop).",
            &|i| i.kernel_drops.load(Relaxed),
        );
        per_iface(
            &mut out,
            "tapedeck_interface_drops_total",
            "counter",
            "Packets the interface or driver dropped (libpcap ps_ifdrop).",
            &|i| i.interface_drops.load(Relaxed),
        );
        per_iface(
            &mut out,
            "tapedeck_queue_drops_total",
            "counter",
            "TCP segments dropped because a worker's queue was full (by interface).",
            &|i| i.queue_drops.load(Relaxed),
        );
        per_iface(&mut out, "tapedeck_capture_up", "gauge", "1 while the interface's capture thread reads.", &|i| {
            u64::from(i.up.load(Relaxed))
        });
        self.render_ebpf(&mut out);
        let one = |out: &mut String, name: &str, kind: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}", v.load(Relaxed));
        };
        let total = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        total(&mut out, "tapedeck_flows_open", "gauge", "TCP connections tracked now.", self.sum(|w| &w.flows_open));
        total(
            &mut out,
            "tapedeck_flows_created_total",
            "counter",
            "TCP connections opened.",
            self.sum(|w| &w.flows_created),
        );
        total(
            &mut out,
            "tapedeck_flows_evicted_total",
            "counter",
            "TCP connections evicted at the connection cap.",
            self.sum(|w| &w.flows_evicted),
        );
        total(
            &mut out,
            "tapedeck_flows_idle_total",
            "counter",
            "TCP connections closed after the idle timeout.",
            self.sum(|w| &w.flows_idle),
        );
        total(
            &mut out,
            "tapedeck_gaps_total",
            "counter",
            "Reassembly gaps (bytes the capture missed).",
            self.sum(|w| &w.gaps),
        );
        total(
            &mut out,
            "tapedeck_gap_bytes_total",
            "counter",
            "Bytes inside reassembly gaps.",
            self.sum(|w| &w.gap_bytes),
        );
        let mut by_proto: BTreeMap<String, u64> = BTreeMap::new();
        for w in &self.workers {
            if let Ok(map) = w.exchanges.lock() {
                for (proto, n) in map.iter() {
                    *by_proto.entry(proto.clone()).or_default() += n;
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP tapedeck_exchanges_total Exchanges recorded, by protocol.\n# TYPE tapedeck_exchanges_total counter"
        );
        for (proto, n) in &by_proto {
            let _ = writeln!(out, "tapedeck_exchanges_total{{protocol=\"{}\"}} {n}", escape(proto));
        }
        let _ = writeln!(
            out,
            "# HELP tapedeck_parse_errors_total Parse errors, by protocol (counted when connections close).\n\
             # TYPE tapedeck_parse_errors_total counter\n\
             tapedeck_parse_errors_total{{protocol=\"http1\"}} {}\n\
             tapedeck_parse_errors_total{{protocol=\"h2\"}} {}",
            self.sum(|w| &w.parse_errors_http1),
            self.sum(|w| &w.parse_errors_h2)
        );
        let per_worker = |out: &mut String, name: &str, help: &str, get: &dyn Fn(&WorkerMetrics) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (i, w) in self.workers.iter().enumerate() {
                let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", get(w));
            }
        };
        per_worker(&mut out, "tapedeck_worker_segments_total", "TCP segments processed, by worker.", &|w| {
            w.segments.load(Relaxed)
        });
        per_worker(
            &mut out,
            "tapedeck_worker_queue_drops_total",
            "TCP segments dropped because the worker's queue was full.",
            &|w| w.queue_drops.load(Relaxed),
        );
        one(
            &mut out,
            "tapedeck_segment_bytes_written_total",
            "counter",
            "Bytes written to segment files.",
            &self.segment_bytes,
        );
        one(
            &mut out,
            "tapedeck_segment_exchanges_written_total",
            "counter",
            "Exchanges written to segment files.",
            &self.segment_exchanges,
        );
        one(&mut out, "tapedeck_segment_files_total", "counter", "Segment files finished.", &self.segment_files);
        one(
            &mut out,
            "tapedeck_writer_write_errors_total",
            "counter",
            "I/O errors writing segment files (disk full, permissions).",
            &self.writer_write_errors,
        );
        one(
            &mut out,
            "tapedeck_writer_dropped_exchanges_total",
            "counter",
            "Exchanges not written because of segment write errors.",
            &self.writer_dropped_exchanges,
        );
        one(
            &mut out,
            "tapedeck_segment_flushes_total",
            "counter",
            "Segment blocks flushed by the flush interval while traffic was low.",
            &self.segment_flushes,
        );
        one(&mut out, "tapedeck_reloads_total", "counter", "SIGHUP reloads done.", &self.reloads);
        one(&mut out, "tapedeck_reload_errors_total", "counter", "SIGHUP reloads that failed.", &self.reload_errors);
        one(
            &mut out,
            "tapedeck_service_writers_open",
            "gauge",
            "Segment writers open (one per service with --split-by-service).",
            &self.service_writers_open,
        );
        one(
            &mut out,
            "tapedeck_service_writers_evicted_total",
            "counter",
            "Service writers finished at the --max-open-services cap.",
            &self.service_writers_evicted,
        );
        one(
            &mut out,
            "tapedeck_service_map_reloads_total",
            "counter",
            "Service-map re-reads (SIGHUP) that succeeded.",
            &self.service_map_reloads,
        );
        one(
            &mut out,
            "tapedeck_service_map_reload_errors_total",
            "counter",
            "Service-map re-reads that failed (the previous map stays).",
            &self.service_map_reload_errors,
        );
        one(
            &mut out,
            "tapedeck_retention_deletions_total",
            "counter",
            "Segment files deleted by retention.",
            &self.retention_deletions,
        );
        one(
            &mut out,
            "tapedeck_retention_bytes_deleted_total",
            "counter",
            "Bytes of segment files deleted by retention.",
            &self.retention_bytes,
        );
        out
    }

    /// The backend of each interface, and the eBPF counters of those using eBPF.
    fn render_ebpf(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP tapedeck_capture_backend The capture backend of each interface (1 for the one in use).\n\
             # TYPE tapedeck_capture_backend gauge"
        );
        for i in &self.interfaces {
            let backend = if i.ebpf.active.load(Relaxed) { "ebpf" } else { "pcap" };
            let _ =
                writeln!(out, "tapedeck_capture_backend{{interface=\"{}\",backend=\"{backend}\"}} 1", escape(&i.name));
        }
        type Series = (&'static str, &'static str, fn(&EbpfMetrics) -> &AtomicU64);
        let series: [Series; 6] = [
            ("seen", "Packets the eBPF classifiers saw (both directions).", |e| &e.seen),
            ("matched", "TCP packets that passed the eBPF filter.", |e| &e.matched),
            ("submitted", "Packet records submitted to the eBPF ring buffer.", |e| &e.submitted),
            ("reserve_failures", "Matched packets lost because the eBPF ring buffer was full.", |e| {
                &e.reserve_failures
            }),
            ("copy_failures", "Matched packets lost because copying them into the ring failed.", |e| &e.copy_failures),
            ("wakeups", "Ring submissions that woke the reader (past the wakeup threshold).", |e| &e.wakeups),
        ];
        for (name, help, get) in series {
            let _ =
                writeln!(out, "# HELP tapedeck_ebpf_{name}_total {help}\n# TYPE tapedeck_ebpf_{name}_total counter");
            for i in self.interfaces.iter().filter(|i| i.ebpf.active.load(Relaxed)) {
                let v = get(&i.ebpf).load(Relaxed);
                let _ = writeln!(
                    out,
                    "tapedeck_ebpf_{name}_total{{interface=\"{}\",backend=\"ebpf\"}} {v}",
                    escape(&i.name)
                );
            }
        }
    }

    /// Whether every capture thread is reading and the run is healthy, with a reason when not.
    pub fn health(&self) -> Result<(), String> {
        if !self.capturing.load(Relaxed) {
            return Err("not capturing (starting, or stopped)".into());
        }
        let down: Vec<&str> = self.interfaces.iter().filter(|i| !i.up.load(Relaxed)).map(|i| i.name.as_str()).collect();
        if !down.is_empty() {
            return Err(format!("capture stopped on {}", down.join(", ")));
        }
        Ok(())
    }
}

/// Escapes a Prometheus label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The HTTP listener thread. Stops (and joins) when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request head read.
const MAX_REQUEST: usize = 8192;

impl MetricsServer {
    /// Binds `addr` and serves `metrics` on a thread named `metrics`.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        // The socket is bound: this thread needs no capability (they are per thread in Linux).
        let thread = crate::privileges::spawn_unprivileged("metrics", move || {
            for conn in listener.incoming() {
                if stop2.load(Relaxed) {
                    break;
                }
                match conn {
                    Ok(s) => {
                        if let Err(e) = answer(s, &metrics) {
                            tracing::debug!("metrics: {e}");
                        }
                    }
                    Err(e) => {
                        tracing::warn!("metrics: accept: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })?;
        Ok(MetricsServer { addr, stop, thread: Some(thread) })
    }

    /// The address bound (with the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let woke = TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok();
        if let Some(t) = self.thread.take()
            && woke
        {
            let _ = t.join();
        }
    }
}

/// Reads one request and answers it; the connection is closed afterwards.
fn answer(mut s: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut buf = [0u8; MAX_REQUEST];
    let mut len = 0;
    let (method, path) = loop {
        let n = s.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                break (req.method.unwrap_or("").to_string(), req.path.unwrap_or("").to_string());
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => return respond(&mut s, "400 Bad Request", "text/plain", "bad request\n", false),
        }
    };
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(&mut s, "405 Method Not Allowed", "text/plain", "GET only\n", false);
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => {
            let body = metrics.render();
            respond(&mut s, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &body, head_only)
        }
        "/healthz" => match metrics.health() {
            Ok(()) => respond(&mut s, "200 OK", "text/plain", "ok\n", head_only),
            Err(why) => respond(&mut s, "503 Service Unavailable", "text/plain", &format!("{why}\n"), head_only),
        },
        _ => respond(&mut s, "404 Not Found", "text/plain", "try /metrics or /healthz\n", head_only),
    }
}

fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str, head_only: bool) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(body);
    }
    s.write_all(out.as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_counters_as_prometheus_text() {
        let m = Arc::new(Metrics::new(&["eth0".into(), "lo".into()]));
        m.interfaces[0].packets.store(42, Relaxed);
        m.interfaces[1].kernel_drops.store(7, Relaxed);
        let m = Arc::new(Metrics { workers: vec![Arc::default(), Arc::default()], ..Arc::into_inner(m).unwrap() });
        m.workers[0].flows_open.store(3, Relaxed);
        m.workers[1].flows_open.store(4, Relaxed);
        m.workers[1].queue_drops.store(9, Relaxed);
        m.workers[0].exchanges.lock().unwrap().insert("http/1.1".into(), 5);
        m.workers[1].exchanges.lock().unwrap().insert("http/1.1".into(), 2);
        m.retention_deletions.store(2, Relaxed);
        m.writer_write_errors.store(4, Relaxed);
        m.writer_dropped_exchanges.store(1234, Relaxed);
        m.service_writers_open.store(3, Relaxed);
        m.service_writers_evicted.store(5, Relaxed);
        m.service_map_reloads.store(2, Relaxed);
        m.service_map_reload_errors.store(1, Relaxed);
        m.interfaces[1].ebpf.store(&crate::source::ebpf::EbpfCounters {
            seen: 10,
            matched: 6,
            submitted: 5,
            reserve_failures: 1,
            ..Default::default()
        });
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&m)).unwrap();
        let r = get(server.local_addr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("text/plain; version=0.0.4"), "{r}");
        for line in [
            "tapedeck_packets_total{interface=\"eth0\"} 42",
            "tapedeck_packets_total{interface=\"lo\"} 0",
            "tapedeck_kernel_drops_total{interface=\"lo\"} 7",
            "tapedeck_flows_open 7",
            "tapedeck_exchanges_total{protocol=\"http/1.1\"} 7",
            "tapedeck_worker_queue_drops_total{worker=\"1\"} 9",
            "tapedeck_worker_queue_drops_total{worker=\"0\"} 0",
            "tapedeck_retention_deletions_total 2",
            "tapedeck_writer_write_errors_total 4",
            "tapedeck_writer_dropped_exchanges_total 1234",
            "tapedeck_service_writers_open 3",
            "# TYPE tapedeck_service_writers_open gauge",
            "tapedeck_service_writers_evicted_total 5",
            "tapedeck_service_map_reloads_total 2",
            "tapedeck_service_map_reload_errors_total 1",
            "# TYPE tapedeck_queue_drops_total counter",
            "tapedeck_capture_backend{interface=\"eth0\",backend=\"pcap\"} 1",
            "tapedeck_capture_backend{interface=\"lo\",backend=\"ebpf\"} 1",
            "tapedeck_ebpf_seen_total{interface=\"lo\",backend=\"ebpf\"} 10",
            "tapedeck_ebpf_matched_total{interface=\"lo\",backend=\"ebpf\"} 6",
            "tapedeck_ebpf_submitted_total{interface=\"lo\",backend=\"ebpf\"} 5",
            "tapedeck_ebpf_reserve_failures_total{interface=\"lo\",backend=\"ebpf\"} 1",
        ] {
            assert!(r.lines().any(|l| l == line), "missing {line:?} in\n{r}");
        }
        // Content-Length matches the body.
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        assert!(!body.contains("tapedeck_ebpf_seen_total{interface=\"eth0\""), "eth0 uses libpcap");
        drop(server);
    }

    #[test]
    fn healthz_says_ok_until_something_stops() {
        let m = Arc::new(Metrics::new(&["eth0".into()]));
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&m)).unwrap();
        let addr = server.local_addr();
        let r = get(addr, "GET /healthz HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503") && r.contains("not capturing"), "{r}");
        m.capturing.store(true, Relaxed);
        assert!(get(addr, "GET /healthz HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
        m.interfaces[0].up.store(false, Relaxed);
        let r = get(addr, "GET /healthz HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503") && r.contains("capture stopped on eth0"), "{r}");
        assert!(get(addr, "GET /nope HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, "POST /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get(addr, "\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
        let head = get(addr, "HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    }

    #[test]
    fn dropping_the_server_stops_listening() {
        let m = Arc::new(Metrics::new(&[]));
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), m).unwrap();
        let addr = server.local_addr();
        drop(server);
        assert!(TcpStream::connect(addr).is_err(), "still listening after drop");
    }
}
