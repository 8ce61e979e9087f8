//! Pacing arithmetic: the time scale (`1x`, `10x`, `0.5x`, `max`), capped idle gaps, and the planned send time of
//! every request as an offset from the start of the run.
//!
//! Everything here is pure: recorded offsets in, planned offsets out. The sender sleeps until
//! `run start + planned offset` (an absolute deadline), so a request sent late never delays the ones after it:
//! lateness cannot accumulate.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How fast the recording is replayed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimeScale {
    /// Recorded offsets are divided by this factor (`10x` replays ten times faster, `0.5x` at half speed).
    Factor(f64),
    /// As fast as possible: every request is due at once (ordering constraints still hold).
    Max,
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale::Factor(1.0)
    }
}

/// The accepted forms of a time scale, for error messages.
pub const TIME_SCALE_FORMS: &str = "a positive factor followed by x (1x, 10x, 0.5x) or max";

impl FromStr for TimeScale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("max") {
            return Ok(TimeScale::Max);
        }
        let num = t.strip_suffix(['x', 'X']).unwrap_or(t);
        match num.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 && f <= 1e9 => Ok(TimeScale::Factor(f)),
            _ => Err(format!("'{s}' is not a time scale: expected {TIME_SCALE_FORMS}")),
        }
    }
}

impl fmt::Display for TimeScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeScale::Factor(x) => write!(f, "{x}x"),
            TimeScale::Max => f.write_str("max"),
        }
    }
}

/// The accepted forms of a duration, for error messages.
pub const DURATION_FORMS: &str = "a number with a unit, such as 500ms, 2s, 1m30s or 1h";

/// Parses a duration flag value (`500ms`, `2s`, `1m30s`), with a message naming the accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("'{s}' is not a duration ({e}): expected {DURATION_FORMS}"))
}

/// Pacing settings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pacing {
    /// The time scale.
    pub scale: TimeScale,
    /// Idle gaps (between one request start and the next, across the whole capture) longer than this are cut
    /// to this length before scaling. `None`: gaps are kept.
    pub max_gap: Option<Duration>,
}

impl Pacing {
    /// The planned send offsets (from the run start) of requests recorded at `recorded` offsets (from the capture
    /// start). Input order is kept; the offsets need not be sorted. Gaps are capped first, then the time scale
    /// applies, so `--max-gap 2s --time-scale 2x` leaves at most 1 s of idle time.
    pub fn schedule(&self, recorded: &[Duration]) -> Vec<Duration> {
        let capped = match self.max_gap {
            Some(gap) => cap_gaps(recorded, gap),
            None => recorded.to_vec(),
        };
        capped.into_iter().map(|d| self.scale_offset(d)).collect()
    }

    /// One offset divided by the time scale.
    pub fn scale_offset(&self, d: Duration) -> Duration {
        match self.scale {
            TimeScale::Max => Duration::ZERO,
            TimeScale::Factor(f) => Duration::try_from_secs_f64(d.as_secs_f64() / f).unwrap_or(Duration::MAX),
        }
    }
}

/// Cuts every gap between consecutive offsets (in time order) longer than `max_gap` down to `max_gap`, and shifts
/// everything after it accordingly. Equal offsets stay equal; order is never changed.
pub fn cap_gaps(recorded: &[Duration], max_gap: Duration) -> Vec<Duration> {
    let mut idx: Vec<usize> = (0..recorded.len()).collect();
    idx.sort_by_key(|&i| recorded[i]);
    let mut out = vec![Duration::ZERO; recorded.len()];
    let mut removed = Duration::ZERO;
    let mut prev: Option<Duration> = None;
    for i in idx {
        let t = recorded[i];
        if let Some(p) = prev {
            let gap = t - p;
            if gap > max_gap {
                removed += gap - max_gap;
            }
        }
        prev = Some(t);
        out[i] = t - removed;
    }
    out
}

/// Schedule lag of one send: how late it went out against its planned time (zero when early or on time).
pub fn lag(planned: Duration, actual: Duration) -> Duration {
    actual.saturating_sub(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn parses_time_scales() {
        assert_eq!("1x".parse::<TimeScale>(), Ok(TimeScale::Factor(1.0)));
        assert_eq!("10x".parse::<TimeScale>(), Ok(TimeScale::Factor(10.0)));
        assert_eq!("0.5x".parse::<TimeScale>(), Ok(TimeScale::Factor(0.5)));
        assert_eq!("2".parse::<TimeScale>(), Ok(TimeScale::Factor(2.0)));
        assert_eq!("MAX".parse::<TimeScale>(), Ok(TimeScale::Max));
        for bad in ["0x", "-1x", "fast", "", "x", "NaNx", "infx"] {
            let e = bad.parse::<TimeScale>().unwrap_err();
            assert!(e.contains("10x") && e.contains("max"), "{bad}: {e}");
        }
    }

    #[test]
    fn parses_durations_and_names_forms_on_error() {
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        let e = parse_duration("2 parsecs").unwrap_err();
        assert!(e.contains("500ms") && e.contains("2 parsecs"), "{e}");
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn scale_divides_offsets() {
        let p = Pacing { scale: TimeScale::Factor(10.0), max_gap: None };
        assert_eq!(p.schedule(&[ms(0), ms(1000), ms(2500)]), vec![ms(0), ms(100), ms(250)]);
        let half = Pacing { scale: TimeScale::Factor(0.5), max_gap: None };
        assert_eq!(half.schedule(&[ms(100)]), vec![ms(200)]);
        let max = Pacing { scale: TimeScale::Max, max_gap: None };
        assert_eq!(max.schedule(&[ms(5), ms(9000)]), vec![ms(0), ms(0)]);
    }

    #[test]
    fn gaps_are_capped_before_scaling_and_order_kept() {
        // Unsorted input: 0, 10 s, 100 ms, 10.1 s, 10.1 s. Sorted gaps: 100 ms, 9.9 s (capped to 2 s), 100 ms, 0.
        let rec = [ms(0), ms(10_000), ms(100), ms(10_100), ms(10_100)];
        assert_eq!(cap_gaps(&rec, ms(2000)), vec![ms(0), ms(2100), ms(100), ms(2200), ms(2200)]);
        let p = Pacing { scale: TimeScale::Factor(2.0), max_gap: Some(ms(2000)) };
        assert_eq!(p.schedule(&rec), vec![ms(0), ms(1050), ms(50), ms(1100), ms(1100)]);
        // A first request late in the capture keeps its offset from the capture start only if under the cap.
        assert_eq!(cap_gaps(&[ms(5000)], ms(1000)), vec![ms(5000)]);
    }

    #[test]
    fn lag_is_never_negative() {
        assert_eq!(lag(ms(100), ms(130)), ms(30));
        assert_eq!(lag(ms(100), ms(90)), ms(0));
    }
}
