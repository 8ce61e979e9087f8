//! `--max-rate N`: a ceiling on requests per second whatever the time scale, as a token bucket (GCRA form: one
//! "theoretical arrival time" advanced by `1/N` per request, with a burst of up to [`RateLimiter::burst`]
//! requests). Shared by every connection; a request waits until the bucket has a token.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The shared limiter.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    tat: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// At most `per_second` requests per second on average; bursts of `max(1, per_second / 20)` (50 ms worth).
    pub fn new(per_second: f64) -> RateLimiter {
        let per_second = per_second.clamp(1e-3, 1e9);
        let interval = Duration::from_secs_f64(1.0 / per_second);
        let burst = ((per_second / 20.0) as u32).max(1);
        RateLimiter { interval, burst, tat: Mutex::new(None) }
    }

    /// Requests allowed at once after an idle period.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// When a request arriving at `now` may go: reserves its slot. Pure apart from the reservation.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let tolerance = self.interval * (self.burst - 1);
        let t = match *tat {
            Some(t) if t > now => t,
            _ => now,
        };
        let allowed = t.checked_sub(tolerance).unwrap_or(now).max(now);
        *tat = Some(t + self.interval);
        allowed
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let at = self.reserve(Instant::now());
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_requests_after_the_burst() {
        let rl = RateLimiter::new(100.0); // 10 ms apart, burst 5
        assert_eq!(rl.burst(), 5);
        let now = Instant::now();
        let slots: Vec<Duration> = (0..10).map(|_| rl.reserve(now) - now).collect();
        let ms: Vec<u128> = slots.iter().map(|d| d.as_millis()).collect();
        // Five at once, then one every 10 ms.
        assert_eq!(ms, vec![0, 0, 0, 0, 0, 10, 20, 30, 40, 50]);
    }

    #[test]
    fn average_rate_holds_over_many_requests() {
        let rl = RateLimiter::new(1000.0);
        let now = Instant::now();
        let last = (0..5000).map(|_| rl.reserve(now)).last().unwrap();
        // 5000 requests at 1000/s with a burst of 50: the last goes out at (5000 - 50) ms.
        assert_eq!((last - now).as_millis(), 4950);
    }

    #[test]
    fn an_idle_bucket_refills_only_up_to_the_burst() {
        let rl = RateLimiter::new(10.0); // 100 ms apart, burst 1
        let t0 = Instant::now();
        assert_eq!(rl.reserve(t0), t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(rl.reserve(later), later);
        assert_eq!(rl.reserve(later) - later, Duration::from_millis(100));
    }
}
