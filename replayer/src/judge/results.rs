//! Verdicts in, results out: per exchange pass or fail with its field-level diff, per endpoint pass rate and
//! failing fields, the overall pass rate, and the recorded against replayed latency of the same requests; the
//! terminal summary (worst endpoints, a few diffs, coloured on a terminal) and the JSON carried by `--report`.
//!
//! Memory is bounded: endpoints past [`MAX_ENDPOINTS`] are pooled under `(other)`, at most
//! [`MAX_KEPT_VERDICTS`] exchange verdicts are kept for the report (failures first), and each endpoint keeps at
//! most [`MAX_FIELDS`] distinct failing fields; everything past a cap is counted.

use std::collections::BTreeMap;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::compare::{CompareStats, FieldDiff};
use super::gates::GateResult;
use crate::correlate::CorrelationReport;

/// Most endpoints tracked one by one.
pub const MAX_ENDPOINTS: usize = 1000;
/// Most exchange verdicts kept in the report.
pub const MAX_KEPT_VERDICTS: usize = 10_000;
/// Most distinct failing fields counted per endpoint.
pub const MAX_FIELDS: usize = 200;
/// Failing exchanges whose diffs go into an endpoint's JUnit failure text.
pub const MAX_SAMPLES: usize = 5;
const MAX_MICROS: u64 = 3_600_000_000;

/// The judgement of one exchange.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// The recorded exchange id.
    pub exchange_id: u64,
    /// Endpoint of the recorded request (method and path without query).
    pub endpoint: String,
    /// Whether it passed.
    pub passed: bool,
    /// The live status, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The recorded status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_status: Option<u16>,
    /// Why there was no live response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The differences held against the candidate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diffs: Vec<FieldDiff>,
    /// Differences not held against it (learned noise, correlated values).
    #[serde(skip_serializing_if = "is_zero")]
    pub excused: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// One endpoint's results.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointResult {
    /// Method and path.
    pub endpoint: String,
    /// Exchanges judged.
    pub judged: u64,
    /// Passed.
    pub passed: u64,
    /// Failed (errors included).
    pub failed: u64,
    /// Requests without a live response.
    pub errors: u64,
    /// passed / judged.
    pub pass_rate: f64,
    /// Failing fields (array indices as `[*]`) and how often each failed.
    pub failing_fields: BTreeMap<String, u64>,
    /// Replay latency p95 (ms) of the requests that also have a recorded latency.
    pub p95_latency_ms: f64,
    /// Recorded latency p95 (ms) of the same requests.
    pub p95_recorded_latency_ms: f64,
    /// Diff text of the first failing exchanges (for JUnit).
    #[serde(skip)]
    pub samples: Vec<String>,
}

/// The whole judgement, carried in the run report under `judge`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JudgeReport {
    /// Exchanges judged (a recorded response to compare with).
    pub judged: u64,
    /// Passed.
    pub passed: u64,
    /// Failed (errors included).
    pub failed: u64,
    /// Requests without a live response.
    pub errors: u64,
    /// Exchanges not judged: no recorded response.
    pub unjudged: u64,
    /// Live responses with a 4xx status.
    pub status_4xx: u64,
    /// Live responses with a 5xx status.
    pub status_5xx: u64,
    /// passed / judged (1 when nothing was judged).
    pub pass_rate: f64,
    /// Replay and recorded latency percentiles (ms) over the requests that have both, and their relative
    /// difference ((replay - recorded) / recorded); `None` without such requests.
    pub latency: LatencyCompare,
    /// Per endpoint, worst pass rate first.
    pub endpoints: Vec<EndpointResult>,
    /// Endpoints pooled under `(other)`.
    pub endpoints_pooled: u64,
    /// Exchange verdicts (failures first), up to [`MAX_KEPT_VERDICTS`].
    pub exchanges: Vec<Verdict>,
    /// Verdicts not kept past the cap.
    pub exchanges_not_kept: u64,
    /// Failing fields past [`MAX_FIELDS`] per endpoint, not counted by name.
    pub fields_not_kept: u64,
    /// Differences excused as learned noise.
    pub noise_ignored: u64,
    /// Differences excused because the live value is the correlated replacement of the recorded one.
    pub correlated_ignored: u64,
    /// Noise learned from the baseline: endpoint → fields.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub noise: BTreeMap<String, Vec<String>>,
    /// Noise learning counters (baseline runs).
    pub noise_stats: super::noise::NoiseStats,
    /// Values substituted by correlation.
    pub correlation: CorrelationReport,
    /// Comparison counters.
    pub compare: CompareStats,
    /// Gate outcomes.
    pub gates: Vec<GateResult>,
}

/// Latency of the replay against the recording, over the same requests.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencyCompare {
    /// Requests with both latencies.
    pub count: u64,
    /// Replay p50/p95/p99 (ms).
    pub replay_ms: [f64; 3],
    /// Recorded p50/p95/p99 (ms).
    pub recorded_ms: [f64; 3],
    /// Relative differences at p50/p95/p99.
    pub delta: [Option<f64>; 3],
}

impl JudgeReport {
    /// Whether a gate failed.
    pub fn gates_failed(&self) -> bool {
        self.gates.iter().any(|g| g.failed)
    }

    /// A metric by its gate name (see [`super::gates::METRICS`]).
    pub fn metric(&self, name: &str, requests: u64) -> Option<f64> {
        Some(match name {
            "pass_rate" if self.judged > 0 => self.pass_rate,
            "failed" => self.failed as f64,
            "errors" => self.errors as f64,
            "status_5xx" => self.status_5xx as f64,
            "status_4xx" => self.status_4xx as f64,
            "requests" => requests as f64,
            "p50_latency_delta" => self.latency.delta[0]?,
            "p95_latency_delta" => self.latency.delta[1]?,
            "p99_latency_delta" => self.latency.delta[2]?,
            "p95_latency_ms" if self.latency.count > 0 => self.latency.replay_ms[1],
            "noise_ignored" => self.noise_ignored as f64,
            _ => return None,
        })
    }
}

struct Ep {
    judged: u64,
    passed: u64,
    failed: u64,
    errors: u64,
    fields: BTreeMap<String, u64>,
    replay: Histogram<u64>,
    recorded: Histogram<u64>,
    samples: Vec<String>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(MAX_MICROS).clamp(1, MAX_MICROS)
}

/// Accumulates verdicts.
pub struct Results {
    eps: BTreeMap<String, Ep>,
    replay: Histogram<u64>,
    recorded: Histogram<u64>,
    failures: Vec<Verdict>,
    passes: Vec<Verdict>,
    report: JudgeReport,
}

impl Default for Results {
    fn default() -> Self {
        Results {
            eps: BTreeMap::new(),
            replay: histogram(),
            recorded: histogram(),
            failures: Vec::new(),
            passes: Vec::new(),
            report: JudgeReport { pass_rate: 1.0, ..Default::default() },
        }
    }
}

impl Results {
    /// Counts a live status (judged or not).
    pub fn status(&mut self, status: u16) {
        match status / 100 {
            4 => self.report.status_4xx += 1,
            5 => self.report.status_5xx += 1,
            _ => {}
        }
    }

    /// Counts an exchange without a recorded response.
    pub fn unjudged(&mut self) {
        self.report.unjudged += 1;
    }

    /// Counts excused differences.
    pub fn excused(&mut self, noise: u64, correlated: u64) {
        self.report.noise_ignored += noise;
        self.report.correlated_ignored += correlated;
    }

    /// Adds a verdict with the replay and recorded latencies when both are known.
    pub fn add(&mut self, v: Verdict, latency: Option<(Duration, Duration)>) {
        let r = &mut self.report;
        r.judged += 1;
        // Endpoints already seen (nearly every verdict): no key allocated.
        let known = self.eps.contains_key(&v.endpoint);
        let key: &str = if known || self.eps.len() < MAX_ENDPOINTS {
            &v.endpoint
        } else {
            r.endpoints_pooled += 1;
            "(other)"
        };
        if !known && !self.eps.contains_key(key) {
            let ep = Ep {
                judged: 0,
                passed: 0,
                failed: 0,
                errors: 0,
                fields: BTreeMap::new(),
                replay: histogram(),
                recorded: histogram(),
                samples: Vec::new(),
            };
            self.eps.insert(key.to_string(), ep);
        }
        let Some(ep) = self.eps.get_mut(key) else { return };
        ep.judged += 1;
        if let Some((live, rec)) = latency {
            let _ = self.replay.record(micros(live));
            let _ = self.recorded.record(micros(rec));
            let _ = ep.replay.record(micros(live));
            let _ = ep.recorded.record(micros(rec));
        }
        if v.error.is_some() {
            r.errors += 1;
            ep.errors += 1;
        }
        if v.passed {
            r.passed += 1;
            ep.passed += 1;
        } else {
            r.failed += 1;
            ep.failed += 1;
            let fields: Vec<String> = match &v.error {
                Some(_) => vec!["(no response)".to_string()],
                None => v.diffs.iter().map(|d| super::jsonpath::normalize(&d.field)).collect(),
            };
            for f in fields {
                if ep.fields.contains_key(&f) || ep.fields.len() < MAX_FIELDS {
                    *ep.fields.entry(f).or_default() += 1;
                } else {
                    r.fields_not_kept += 1;
                }
            }
            if ep.samples.len() < MAX_SAMPLES {
                ep.samples.push(verdict_text(&v));
            }
        }
        let kept = self.failures.len() + self.passes.len();
        if kept < MAX_KEPT_VERDICTS {
            if v.passed { self.passes.push(v) } else { self.failures.push(v) }
        } else if !v.passed && !self.passes.is_empty() {
            // Failures are worth more than passes: one replaces a kept pass.
            self.passes.pop();
            self.failures.push(v);
            r.exchanges_not_kept += 1;
        } else {
            r.exchanges_not_kept += 1;
        }
    }

    /// The report (gates, noise, correlation and compare counters are filled in by the caller).
    pub fn finish(mut self) -> JudgeReport {
        let r = &mut self.report;
        r.pass_rate = if r.judged == 0 { 1.0 } else { r.passed as f64 / r.judged as f64 };
        r.latency = compare_latency(&self.replay, &self.recorded);
        let mut eps: Vec<EndpointResult> = self
            .eps
            .into_iter()
            .map(|(endpoint, e)| {
                let l = compare_latency(&e.replay, &e.recorded);
                EndpointResult {
                    endpoint,
                    judged: e.judged,
                    passed: e.passed,
                    failed: e.failed,
                    errors: e.errors,
                    pass_rate: if e.judged == 0 { 1.0 } else { e.passed as f64 / e.judged as f64 },
                    failing_fields: e.fields,
                    p95_latency_ms: l.replay_ms[1],
                    p95_recorded_latency_ms: l.recorded_ms[1],
                    samples: e.samples,
                }
            })
            .collect();
        eps.sort_by(|a, b| {
            a.pass_rate.total_cmp(&b.pass_rate).then(b.failed.cmp(&a.failed)).then_with(|| a.endpoint.cmp(&b.endpoint))
        });
        r.endpoints = eps;
        self.failures.sort_by_key(|v| v.exchange_id);
        self.passes.sort_by_key(|v| v.exchange_id);
        r.exchanges = self.failures;
        r.exchanges.append(&mut self.passes);
        self.report
    }
}

fn compare_latency(replay: &Histogram<u64>, recorded: &Histogram<u64>) -> LatencyCompare {
    if replay.is_empty() {
        return LatencyCompare::default();
    }
    let q = [0.50, 0.95, 0.99];
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let replay_ms = q.map(|q| ms(replay, q));
    let recorded_ms = q.map(|q| ms(recorded, q));
    let mut delta = [None; 3];
    for i in 0..3 {
        if recorded_ms[i] > 0.0 {
            delta[i] = Some((replay_ms[i] - recorded_ms[i]) / recorded_ms[i]);
        }
    }
    LatencyCompare { count: replay.len(), replay_ms, recorded_ms, delta }
}

/// One failing exchange as text: a header line and one line per difference.
pub fn verdict_text(v: &Verdict) -> String {
    let mut s = format!("exchange {} {}", v.exchange_id, v.endpoint);
    if let Some(e) = &v.error {
        s.push_str(&format!(": no response: {e}"));
    }
    for d in &v.diffs {
        s.push_str(&format!("\n  {d}"));
    }
    s
}

/// Terminal styles, or none when not writing to a terminal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Colours on when `on`.
    pub fn new(on: bool) -> Self {
        Paint { on }
    }

    /// Colours on when standard output is a terminal and `NO_COLOR` is not set.
    pub fn stdout() -> Self {
        use std::io::IsTerminal;
        Paint { on: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
    }

    fn paint(&self, style: Style, s: &str) -> String {
        if self.on { format!("{}{s}{}", style.render(), style.render_reset()) } else { s.to_string() }
    }

    fn red(&self, s: &str) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), s)
    }

    fn green(&self, s: &str) -> String {
        self.paint(AnsiColor::Green.on_default().bold(), s)
    }

    fn dim(&self, s: &str) -> String {
        self.paint(Style::new().dimmed(), s)
    }
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

impl JudgeReport {
    /// The terminal summary: totals, latency against the recording, the worst endpoints, up to `diffs` failing
    /// exchanges with their differences, learned noise, substitutions, and gates.
    pub fn text(&self, paint: Paint, diffs: usize) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let rate = match self.judged {
            0 => "n/a".to_string(),
            _ if self.failed == 0 => paint.green(&pct(self.pass_rate)),
            _ => paint.red(&pct(self.pass_rate)),
        };
        let _ = writeln!(
            s,
            "judged {} exchanges: {} passed, {} failed (pass rate {rate}); {} errors; {} without a recorded response",
            self.judged, self.passed, self.failed, self.errors, self.unjudged
        );
        if self.latency.count > 0 {
            let d = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{:+.1}%", v * 100.0));
            let _ = writeln!(
                s,
                "  latency vs recorded ({} requests): p50 {:.1} ms vs {:.1} ms ({})  p95 {:.1} ms vs {:.1} ms ({})",
                self.latency.count,
                self.latency.replay_ms[0],
                self.latency.recorded_ms[0],
                d(self.latency.delta[0]),
                self.latency.replay_ms[1],
                self.latency.recorded_ms[1],
                d(self.latency.delta[1]),
            );
        }
        let worst: Vec<&EndpointResult> = self.endpoints.iter().filter(|e| e.failed > 0).take(5).collect();
        if !worst.is_empty() {
            let _ = writeln!(s, "  worst endpoints:");
            for e in worst {
                let mut fields: Vec<(&String, &u64)> = e.failing_fields.iter().collect();
                fields.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let top: Vec<String> = fields.iter().take(3).map(|(f, n)| format!("{f} ×{n}")).collect();
                let _ = writeln!(
                    s,
                    "    {} {:>4}/{:<4} {}  {}",
                    paint.red(&format!("{:>7}", pct(e.pass_rate))),
                    e.passed,
                    e.judged,
                    e.endpoint,
                    paint.dim(&top.join(", "))
                );
            }
        }
        let failing: Vec<&Verdict> = self.exchanges.iter().filter(|v| !v.passed).take(diffs).collect();
        if !failing.is_empty() {
            let _ = writeln!(s, "  first differences:");
            for v in failing {
                for (i, line) in verdict_text(v).lines().enumerate() {
                    let line = if i == 0 { line.to_string() } else { paint.red(line) };
                    let _ = writeln!(s, "    {line}");
                }
            }
        }
        if !self.noise.is_empty() {
            let n: usize = self.noise.values().map(Vec::len).sum();
            let _ = writeln!(
                s,
                "  noise learned from the baseline ({n} fields, {} differences excused):",
                self.noise_ignored
            );
            for (ep, fields) in self.noise.iter().take(10) {
                let _ = writeln!(s, "    {ep}: {}", fields.join(", "));
            }
        }
        if self.correlation.substituted > 0 {
            let _ = writeln!(s, "  correlation: {} values substituted", self.correlation.substituted);
            for (field, n) in self.correlation.by_field.iter().take(10) {
                let _ = writeln!(s, "    {field}: {n}");
            }
        }
        for g in &self.gates {
            let status = if g.failed { paint.red("FAILED") } else { paint.green("ok") };
            let _ = writeln!(s, "  gate {status}: {}", g.outcome());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::compare::DiffKind;

    fn v(id: u64, ep: &str, passed: bool) -> Verdict {
        Verdict {
            exchange_id: id,
            endpoint: ep.into(),
            passed,
            status: Some(200),
            recorded_status: Some(200),
            error: None,
            diffs: if passed {
                vec![]
            } else {
                vec![FieldDiff {
                    field: format!("$.items[{id}].x"),
                    kind: DiffKind::Changed,
                    recorded: Some("1".into()),
                    live: Some("2".into()),
                }]
            },
            excused: 0,
        }
    }

    #[test]
    fn rates_worst_endpoints_and_fields() {
        let mut r = Results::default();
        for i in 0..4 {
            r.add(v(i, "GET /a", true), Some((Duration::from_millis(20), Duration::from_millis(10))));
        }
        r.add(v(10, "GET /b", false), None);
        r.add(v(11, "GET /b", false), None);
        r.add(v(12, "GET /b", true), None);
        let rep = r.finish();
        assert_eq!((rep.judged, rep.passed, rep.failed), (7, 5, 2));
        assert!((rep.pass_rate - 5.0 / 7.0).abs() < 1e-9);
        assert_eq!(rep.endpoints[0].endpoint, "GET /b", "worst first");
        assert_eq!(rep.endpoints[0].failing_fields.get("$.items[*].x"), Some(&2));
        assert!((rep.latency.delta[1].unwrap() - 1.0).abs() < 0.01, "{:?}", rep.latency);
        assert!(!rep.exchanges[0].passed && !rep.exchanges[1].passed, "failures first");
        let text = rep.text(Paint::new(false), 1);
        assert!(text.contains("pass rate 71.43%") && text.contains("GET /b") && text.contains("$.items[10].x: 1 -> 2"));
        assert!(!text.contains("$.items[11].x"), "only one diff shown: {text}");
        assert!(!text.contains('\u{1b}'));
        assert!(rep.text(Paint::new(true), 1).contains('\u{1b}'));
    }

    #[test]
    fn nothing_judged_is_a_pass_rate_of_na() {
        let rep = Results::default().finish();
        let text = rep.text(Paint::new(false), 3);
        assert!(text.contains("judged 0 exchanges: 0 passed, 0 failed (pass rate n/a)"), "{text}");
    }

    #[test]
    fn kept_verdicts_are_capped_failures_first() {
        let mut r = Results::default();
        for i in 0..MAX_KEPT_VERDICTS as u64 {
            r.add(v(i, "GET /a", true), None);
        }
        r.add(v(99_999, "GET /a", false), None);
        r.add(v(100_000, "GET /a", true), None);
        let rep = r.finish();
        assert_eq!(rep.exchanges.len(), MAX_KEPT_VERDICTS);
        assert_eq!(rep.exchanges_not_kept, 2);
        assert_eq!(rep.exchanges[0].exchange_id, 99_999);
    }
}
