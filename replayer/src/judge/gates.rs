//! Quality gates: `--fail-if 'METRIC OP VALUE'` expressions (`pass_rate < 0.99`, `p95_latency_delta > 10%`,
//! `errors > 0`, `status_5xx > 0`), parsed with errors that name the gate and list the accepted metrics and
//! operators, and evaluated against the run's metrics. A gate whose metric has no value (no latency to compare,
//! say) fails: a gate that cannot be checked does not pass.

use serde::Serialize;

/// The metrics a gate can name, with what they mean.
pub const METRICS: &[(&str, &str)] = &[
    ("pass_rate", "passed / judged exchanges, 0..1 (or a percentage: 99%); no value when nothing was judged"),
    ("failed", "judged exchanges that failed (errors included)"),
    ("errors", "requests that got no response"),
    ("status_5xx", "live responses with a 5xx status"),
    ("status_4xx", "live responses with a 4xx status"),
    ("requests", "requests sent"),
    ("p50_latency_delta", "(replay p50 - recorded p50) / recorded p50 over the same requests (10% = 0.1)"),
    ("p95_latency_delta", "the same for p95"),
    ("p99_latency_delta", "the same for p99"),
    ("p95_latency_ms", "replay latency p95 in milliseconds"),
    ("noise_ignored", "differences not held against the candidate because the baseline showed them as noise"),
];

/// Comparison operators.
pub const OPERATORS: &[&str] = &["<", "<=", ">", ">=", "==", "!="];

/// One parsed gate.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    /// As written.
    pub text: String,
    /// Metric name (one of [`METRICS`]).
    pub metric: String,
    /// Operator (one of [`OPERATORS`]).
    pub op: String,
    /// Threshold (percentages already divided by 100).
    pub value: f64,
}

/// A gate's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct GateResult {
    /// The gate as written.
    pub gate: String,
    /// The metric's value, when it has one.
    pub value: Option<f64>,
    /// Whether the gate failed (its condition held, or the metric had no value).
    pub failed: bool,
}

impl GateResult {
    /// What happened, as read: `errors > 0 is false (0)`, `pass_rate < 0.99 is true (0.42)`, `pass_rate < 0.99
    /// cannot be checked: pass_rate has no value`.
    pub fn outcome(&self) -> String {
        match self.value {
            Some(v) => format!("{} is {} ({})", self.gate, self.failed, number(v)),
            None => {
                let metric = self.gate.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next();
                format!("{} cannot be checked: {} has no value", self.gate, metric.unwrap_or(&self.gate))
            }
        }
    }
}

/// A metric's value as short as it is exact to 4 decimals: `0`, `12`, `0.42`, `0.1235`.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

impl std::str::FromStr for Gate {
    type Err = String;

    fn from_str(s: &str) -> Result<Gate, String> {
        let help = || {
            format!(
                "metrics: {}; operators: {}; e.g. 'pass_rate < 0.99', 'p95_latency_delta > 10%'",
                METRICS.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", "),
                OPERATORS.join(" ")
            )
        };
        let t = s.trim();
        let name_end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(t.len());
        let metric = &t[..name_end];
        if metric.is_empty() {
            return Err(format!("gate '{s}': expected METRIC OP VALUE; {}", help()));
        }
        if !METRICS.iter().any(|(m, _)| *m == metric) {
            return Err(format!("gate '{s}': unknown metric '{metric}'; {}", help()));
        }
        let rest = t[name_end..].trim_start();
        let op = ["<=", ">=", "==", "!=", "<", ">"].into_iter().find(|o| rest.starts_with(o));
        let Some(op) = op else {
            return Err(format!("gate '{s}': expected an operator after '{metric}'; {}", help()));
        };
        let num = rest[op.len()..].trim();
        let (num, scale) = match num.strip_suffix('%') {
            Some(n) => (n.trim(), 0.01),
            None => (num.strip_suffix("ms").map(str::trim).unwrap_or(num), 1.0),
        };
        let value: f64 = num
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("gate '{s}': '{num}' is not a number; {}", help()))?;
        Ok(Gate { text: t.to_string(), metric: metric.to_string(), op: op.to_string(), value: value * scale })
    }
}

impl Gate {
    /// Whether the condition holds for `v` (the gate fails then).
    pub fn holds(&self, v: f64) -> bool {
        match self.op.as_str() {
            "<" => v < self.value,
            "<=" => v <= self.value,
            ">" => v > self.value,
            ">=" => v >= self.value,
            "==" => (v - self.value).abs() < 1e-12,
            _ => (v - self.value).abs() >= 1e-12,
        }
    }
}

/// Evaluates every gate with `metric` giving each metric's value.
pub fn evaluate(gates: &[Gate], metric: &dyn Fn(&str) -> Option<f64>) -> Vec<GateResult> {
    gates
        .iter()
        .map(|g| {
            let value = metric(&g.metric);
            GateResult { gate: g.text.clone(), value, failed: value.is_none_or(|v| g.holds(v)) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let g: Gate = "pass_rate < 0.99".parse().unwrap();
        assert_eq!((g.metric.as_str(), g.op.as_str(), g.value), ("pass_rate", "<", 0.99));
        let g: Gate = "p95_latency_delta>10%".parse().unwrap();
        assert!((g.value - 0.10).abs() < 1e-12 && g.op == ">");
        let g: Gate = " errors >= 1 ".parse().unwrap();
        assert_eq!((g.op.as_str(), g.value), (">=", 1.0));
        let g: Gate = "p95_latency_ms > 250ms".parse().unwrap();
        assert_eq!(g.value, 250.0);
    }

    #[test]
    fn errors_name_the_gate_and_the_choices() {
        for (bad, what) in [
            ("pass_rat < 1", "unknown metric 'pass_rat'"),
            ("errors => 1", "expected an operator"),
            ("errors > lots", "'lots' is not a number"),
            ("", "expected METRIC OP VALUE"),
        ] {
            let e = bad.parse::<Gate>().unwrap_err();
            assert!(e.contains(what) && e.contains(&format!("gate '{bad}'")), "{bad}: {e}");
            assert!(e.contains("status_5xx") && e.contains("<="), "{e}");
        }
    }

    #[test]
    fn evaluation_fails_when_the_condition_holds_or_nothing_is_known() {
        let gates: Vec<Gate> =
            ["pass_rate < 0.99", "errors > 0", "p95_latency_delta > 10%"].iter().map(|g| g.parse().unwrap()).collect();
        let r = evaluate(&gates, &|m| match m {
            "pass_rate" => Some(0.995),
            "errors" => Some(1.0),
            _ => None,
        });
        assert_eq!(r.iter().map(|r| r.failed).collect::<Vec<_>>(), vec![false, true, true]);
    }

    #[test]
    fn outcomes_read_as_what_happened() {
        let g = |text: &str, value: Option<f64>, failed: bool| GateResult { gate: text.into(), value, failed };
        assert_eq!(g("errors > 0", Some(0.0), false).outcome(), "errors > 0 is false (0)");
        assert_eq!(g("pass_rate < 0.99", Some(0.42), true).outcome(), "pass_rate < 0.99 is true (0.42)");
        assert_eq!(
            g("p95_latency_delta > 10%", Some(0.123456), true).outcome(),
            "p95_latency_delta > 10% is true (0.1235)"
        );
        assert_eq!(
            g("pass_rate < 0.99", None, true).outcome(),
            "pass_rate < 0.99 cannot be checked: pass_rate has no value"
        );
    }
}
