//! JUnit XML for CI (`--junit FILE`), written with the `quick-junit` crate: one test suite for the run, one test
//! case per endpoint (failed when any of its exchanges failed, with the differences of the first failing
//! exchanges as the failure text), and one test case per quality gate.

use std::path::Path;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::results::JudgeReport;

/// The JUnit document for a judgement of a replay against `target` that took `duration`.
pub fn junit_xml(j: &JudgeReport, target: &str, duration: Duration) -> Result<String, String> {
    let mut report = Report::new("tapedeck");
    let mut suite = TestSuite::new(format!("replay against {target}"));
    for e in &j.endpoints {
        let status = if e.failed == 0 {
            TestCaseStatus::success()
        } else {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(format!(
                "{} of {} exchanges failed (pass rate {:.2}%)",
                e.failed,
                e.judged,
                e.pass_rate * 100.0
            ));
            st.set_type("response differs");
            st.set_description(e.samples.join("\n"));
            st
        };
        let mut tc = TestCase::new(e.endpoint.clone(), status);
        tc.set_classname("tapedeck.endpoint");
        tc.set_assertions(e.judged as usize);
        suite.add_test_case(tc);
    }
    for g in &j.gates {
        let status = if g.failed {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(match g.value {
                Some(v) => format!("gate failed: {} (value {v:.4})", g.gate),
                None => format!("gate failed: {} (no value to check)", g.gate),
            });
            st.set_type("quality gate");
            st
        } else {
            TestCaseStatus::success()
        };
        let mut tc = TestCase::new(format!("gate: {}", g.gate), status);
        tc.set_classname("tapedeck.gate");
        suite.add_test_case(tc);
    }
    suite.set_time(duration);
    report.add_test_suite(suite);
    report.set_time(duration);
    report.to_string().map_err(|e| format!("JUnit: {e}"))
}

/// Writes [`junit_xml`] to `path`.
pub fn write_junit(path: &Path, j: &JudgeReport, target: &str, duration: Duration) -> Result<(), String> {
    let xml = junit_xml(j, target, duration)?;
    std::fs::write(path, xml).map_err(|e| format!("{}: writing JUnit: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::gates::GateResult;
    use crate::judge::results::{Results, Verdict};

    #[test]
    fn one_case_per_endpoint_and_gate() {
        let mut r = Results::default();
        let v = |id, ep: &str, passed| Verdict {
            exchange_id: id,
            endpoint: ep.into(),
            passed,
            status: Some(200),
            recorded_status: Some(200),
            error: if passed { None } else { Some("reset <&>".into()) },
            diffs: vec![],
            excused: 0,
        };
        r.add(v(1, "GET /ok", true), None);
        r.add(v(2, "POST /bad", false), None);
        let mut j = r.finish();
        j.gates = vec![GateResult { gate: "errors > 0".into(), value: Some(1.0), failed: true }];
        let xml = junit_xml(&j, "http://x", Duration::from_millis(1500)).unwrap();
        assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
        assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
        assert!(xml.contains("name=\"POST /bad\"") && xml.contains("reset &lt;&amp;&gt;"), "{xml}");
        assert!(xml.contains("name=\"gate: errors &gt; 0\""), "{xml}");
    }
}
