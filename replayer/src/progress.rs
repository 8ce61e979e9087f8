//! Progress while `replayer run` sends: shared counters the sender bumps (sent, answered, errors, worst recent
//! schedule lag), shown by a thread of its own as an indicatif bar when standard error is a terminal, or as a
//! plain line every [`LINE_EVERY`] otherwise (logs, CI). The display never blocks the sender: counters are atomics.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Interval of the plain progress lines.
pub const LINE_EVERY: Duration = Duration::from_secs(5);
const BAR_EVERY: Duration = Duration::from_millis(200);

/// How progress is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Always the bar.
    Bar,
    /// Always plain lines.
    Lines,
    /// Nothing.
    Off,
}

/// Counters shared with the sender.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests sent (or attempted).
    pub sent: AtomicU64,
    /// Responses received.
    pub answered: AtomicU64,
    /// Requests that got no response.
    pub errors: AtomicU64,
    /// Largest schedule lag (µs) since the display last looked.
    pub lag_us: AtomicU64,
}

impl Counters {
    /// Notes a finished request and its schedule lag.
    pub fn finished(&self, ok: bool, lag: Duration) {
        if ok {
            self.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.lag_us.fetch_max(us, Ordering::Relaxed);
    }
}

/// The running display; [`Progress::finish`] stops it.
pub struct Progress {
    /// The counters to bump.
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One snapshot, for display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// Sent so far.
    pub sent: u64,
    /// Answered so far.
    pub answered: u64,
    /// Errors so far.
    pub errors: u64,
    /// Requests per second since the previous snapshot.
    pub rate: f64,
    /// Worst lag since the previous snapshot, ms.
    pub lag_ms: f64,
}

/// The plain progress line.
pub fn line(s: &Snapshot, total: u64, elapsed: Duration) -> String {
    phase_line(None, s, total, elapsed)
}

/// The plain progress line of a named phase (`baseline` for the `--baseline` pass).
pub fn phase_line(phase: Option<&str>, s: &Snapshot, total: u64, elapsed: Duration) -> String {
    let phase = phase.map(|p| format!("{p}: ")).unwrap_or_default();
    format!(
        "replayer: {phase}{:.0}s: sent {}/{total}, answered {}, errors {}, {:.0} req/s, lag max {:.1} ms",
        elapsed.as_secs_f64(),
        s.sent,
        s.answered,
        s.errors,
        s.rate,
        s.lag_ms
    )
}

impl Progress {
    /// Starts the display for a run of `total` requests.
    pub fn start(mode: ProgressMode, total: u64) -> Progress {
        Progress::start_phase(mode, total, None)
    }

    /// [`Progress::start`] for a named phase of the run (shown before the counts).
    pub fn start_phase(mode: ProgressMode, total: u64, phase: Option<&'static str>) -> Progress {
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let bar = match mode {
            ProgressMode::Off => None,
            ProgressMode::Bar => Some(true),
            ProgressMode::Lines => Some(false),
            ProgressMode::Auto => Some(std::io::stderr().is_terminal()),
        };
        let thread = bar.map(|bar| {
            let (c, s) = (Arc::clone(&counters), Arc::clone(&stop));
            std::thread::spawn(move || display(&c, &s, bar, total, phase))
        });
        Progress { counters, stop, thread }
    }

    /// Stops the display (the bar is cleared; the summary follows on standard output).
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn display(c: &Counters, stop: &AtomicBool, bar: bool, total: u64, phase: Option<&str>) {
    let started = Instant::now();
    let every = if bar { BAR_EVERY } else { LINE_EVERY };
    let pb = bar.then(|| {
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix}{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        pb.set_style(style);
        if let Some(p) = phase {
            pb.set_prefix(format!("{p} "));
        }
        pb
    });
    let mut last = (Instant::now(), 0u64);
    let mut next = Instant::now() + every;
    loop {
        // Sleep in short steps so that `finish` is prompt.
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                if let Some(pb) = &pb {
                    pb.finish_and_clear();
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50).min(every));
        }
        next += every;
        let sent = c.sent.load(Ordering::Relaxed);
        let now = Instant::now();
        let dt = now.duration_since(last.0).as_secs_f64().max(1e-6);
        let snap = Snapshot {
            sent,
            answered: c.answered.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            rate: sent.saturating_sub(last.1) as f64 / dt,
            lag_ms: c.lag_us.swap(0, Ordering::Relaxed) as f64 / 1000.0,
        };
        last = (now, sent);
        match &pb {
            Some(pb) => {
                pb.set_position(sent);
                pb.set_message(format!(
                    "answered {} errors {} {:.0} req/s lag {:.1} ms",
                    snap.answered, snap.errors, snap.rate, snap.lag_ms
                ));
            }
            None => eprintln!("{}", phase_line(phase, &snap, total, started.elapsed())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_line() {
        let c = Counters::default();
        c.finished(true, Duration::from_millis(3));
        c.finished(false, Duration::from_millis(7));
        c.finished(true, Duration::from_millis(1));
        assert_eq!(c.answered.load(Ordering::Relaxed), 2);
        assert_eq!(c.errors.load(Ordering::Relaxed), 1);
        assert_eq!(c.lag_us.load(Ordering::Relaxed), 7000);
        let s = Snapshot { sent: 3, answered: 2, errors: 1, rate: 12.4, lag_ms: 7.0 };
        assert_eq!(
            line(&s, 10, Duration::from_secs(5)),
            "replayer: 5s: sent 3/10, answered 2, errors 1, 12 req/s, lag max 7.0 ms"
        );
        assert_eq!(
            phase_line(Some("baseline"), &s, 10, Duration::from_secs(5)),
            "replayer: baseline: 5s: sent 3/10, answered 2, errors 1, 12 req/s, lag max 7.0 ms"
        );
    }

    #[test]
    fn off_starts_no_thread_and_finish_is_prompt() {
        let p = Progress::start(ProgressMode::Off, 1);
        assert!(p.thread.is_none());
        p.finish();
        let p = Progress::start(ProgressMode::Lines, 1);
        let t = Instant::now();
        p.finish();
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
