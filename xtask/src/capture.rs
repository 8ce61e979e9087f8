//! tcpdump as a capture daemon: started inside the namespace, considered ready once it reports "listening
//! on", stopped with SIGINT (it flushes and closes the file), and its final packet counters parsed.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::netns::Netns;
use crate::proc::{self, Daemon};

/// What to capture and how.
#[derive(Clone, Debug)]
pub struct CaptureSpec {
    /// Interface (`lo` or `any`).
    pub iface: &'static str,
    /// Snapshot length; `None` leaves tcpdump's default (262144).
    pub snaplen: Option<u32>,
    /// Nanosecond timestamps (`--time-stamp-precision=nano`).
    pub nano: bool,
    /// Link-layer type to request (`-y`), e.g. `LINUX_SLL2`.
    pub linktype: Option<&'static str>,
    /// Kernel buffer in KiB (`-B`).
    pub buffer_kib: Option<u32>,
    /// Write each packet as it arrives (`-U --immediate-mode`); off for throughput captures.
    pub immediate: bool,
    /// The capture filter.
    pub filter: String,
}

/// tcpdump's closing counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct CaptureStats {
    /// "packets captured": written to the file.
    pub captured: u64,
    /// "packets received by filter".
    pub received_by_filter: u64,
    /// "packets dropped by kernel".
    pub dropped_by_kernel: u64,
}

/// A running tcpdump.
#[derive(Debug)]
pub struct Tcpdump {
    daemon: Daemon,
    /// The tcpdump command line as shown in the README.
    pub shown: String,
}

impl Tcpdump {
    /// Starts tcpdump writing `out` and waits (at most 15 s) until it is listening.
    pub fn start(ns: &Netns, spec: &CaptureSpec, out: &Path, log_dir: &Path, label: &str) -> Result<Self> {
        let mut cmd = ns.command("tcpdump");
        cmd.args(["-i", spec.iface, "-n", "-Z", "root"]);
        if let Some(s) = spec.snaplen {
            cmd.args(["-s", &s.to_string()]);
        }
        if spec.nano {
            cmd.arg("--time-stamp-precision=nano");
        }
        if let Some(y) = spec.linktype {
            cmd.args(["-y", y]);
        }
        if let Some(b) = spec.buffer_kib {
            cmd.args(["-B", &b.to_string()]);
        }
        if spec.immediate {
            cmd.args(["-U", "--immediate-mode"]);
        }
        cmd.arg("-w").arg(out).arg(&spec.filter);
        let shown = ns.show(&cmd);
        let mut daemon = Daemon::spawn(&format!("tcpdump-{label}"), &mut cmd, "INT", log_dir)?;
        proc::wait_until("tcpdump to report `listening on`", Duration::from_secs(15), || {
            daemon.ensure_running()?;
            Ok(daemon.stderr_text().contains("listening on"))
        })?;
        Ok(Tcpdump { daemon, shown })
    }

    /// Fails if tcpdump has exited on its own.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.daemon.ensure_running()
    }

    /// Lets in-flight packets (final FIN/ACKs) arrive for `settle`, then SIGINT; waits up to `timeout` for
    /// tcpdump to flush and exit, and returns its counters.
    pub fn stop(mut self, settle: Duration, timeout: Duration) -> Result<CaptureStats> {
        std::thread::sleep(settle);
        let status = self.daemon.stop(timeout)?;
        let text = self.daemon.stderr_text();
        if !status.success() {
            bail!("tcpdump exited with {status}: {}", text.trim());
        }
        parse_stats(&text).with_context(|| format!("tcpdump printed no packet counters: {}", text.trim()))
    }
}

/// Parses tcpdump's "N packets captured / received by filter / dropped by kernel" lines.
fn parse_stats(text: &str) -> Option<CaptureStats> {
    let mut stats = CaptureStats::default();
    let mut seen = 0;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(n), Some("packets" | "packet")) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        let rest: Vec<&str> = words.collect();
        match rest.as_slice() {
            ["captured"] => stats.captured = n,
            ["received", "by", "filter"] => stats.received_by_filter = n,
            ["dropped", "by", "kernel"] => stats.dropped_by_kernel = n,
            _ => continue,
        }
        seen += 1;
    }
    (seen == 3).then_some(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcpdump_counters() {
        let text = "tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 262144 bytes\n\
                    247 packets captured\n494 packets received by filter\n3 packets dropped by kernel\n";
        let s = parse_stats(text).expect("counters");
        assert_eq!((s.captured, s.received_by_filter, s.dropped_by_kernel), (247, 494, 3));
        let one = "1 packet captured\n1 packet received by filter\n0 packets dropped by kernel\n";
        let s = parse_stats(one).expect("singular counters");
        assert_eq!((s.captured, s.received_by_filter, s.dropped_by_kernel), (1, 1, 0));
        assert!(parse_stats("tcpdump: listening on lo\n").is_none());
    }
}
