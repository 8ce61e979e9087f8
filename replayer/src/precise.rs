//! Send deadlines finer than tokio's timer. tokio's timer wheel ticks every millisecond, so a task sleeping until
//! a deadline wakes up to 1 ms late (0.5 ms on average) even on an idle machine. This module keeps one thread
//! that holds every pending deadline in a heap and sleeps on a condition variable until the earliest (the kernel's
//! high-resolution timers: tens of microseconds late), then wakes the waiting task through a oneshot channel.
//!
//! Memory: one heap entry per task waiting at once (at most one per connection or HTTP/2 stream in flight).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

struct Waiter {
    at: Instant,
    seq: u64,
    tx: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiter {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Waiter>>,
    seq: u64,
    stop: bool,
}

/// The deadline thread. Dropping it stops the thread (waiters still pending are woken at once).
pub struct PreciseTimer {
    shared: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PreciseTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreciseTimer")
    }
}

impl Default for PreciseTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl PreciseTimer {
    /// Starts the thread.
    pub fn new() -> PreciseTimer {
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("replay-timer".into()).spawn(move || run(&s)).ok();
        PreciseTimer { shared, thread }
    }

    /// Waits until `at` (a tokio instant; converted to std). Returns at once when `at` has passed.
    pub async fn sleep_until(&self, at: tokio::time::Instant) {
        let at = at.into_std();
        if at <= Instant::now() {
            return;
        }
        if self.thread.is_none() {
            // The thread could not be started: fall back on tokio's timer.
            tokio::time::sleep_until(at.into()).await;
            return;
        }
        let (tx, rx) = oneshot::channel();
        {
            let (lock, cv) = &*self.shared;
            let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
            st.seq += 1;
            let seq = st.seq;
            let earliest = st.heap.peek().is_none_or(|Reverse(w)| at < w.at);
            st.heap.push(Reverse(Waiter { at, seq, tx }));
            if earliest {
                cv.notify_one();
            }
        }
        let _ = rx.await;
    }
}

impl Drop for PreciseTimer {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.shared;
            lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &(Mutex<State>, Condvar)) {
    let (lock, cv) = shared;
    let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if st.stop {
            // Wake everyone still waiting rather than leave them hanging.
            st.heap.clear();
            return;
        }
        let now = Instant::now();
        while st.heap.peek().is_some_and(|Reverse(w)| w.at <= now) {
            if let Some(Reverse(w)) = st.heap.pop() {
                let _ = w.tx.send(());
            }
        }
        st = match st.heap.peek().map(|Reverse(w)| w.at) {
            Some(at) => cv.wait_timeout(st, at.saturating_duration_since(now)).unwrap_or_else(|p| p.into_inner()).0,
            None => cv.wait(st).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_at_the_deadline_in_order_and_not_early() {
        let timer = Arc::new(PreciseTimer::new());
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for ms in [30u64, 10, 20] {
            let t = Arc::clone(&timer);
            tasks.push(tokio::spawn(async move {
                let at = start + Duration::from_millis(ms);
                t.sleep_until(at).await;
                let now = tokio::time::Instant::now();
                assert!(now >= at, "woke early");
                now - at
            }));
        }
        for t in tasks {
            let late = t.await.unwrap();
            // Generous on a busy machine; on a quiet one this is tens of microseconds.
            assert!(late < Duration::from_millis(50), "{late:?}");
        }
        // A past deadline returns at once.
        timer.sleep_until(start).await;
    }
}
