//! Helpers shared by the replayer's integration tests.

use std::path::Path;
use std::process::Command;

/// Reads a HAR file with Python's haralyzer (an independent HAR parser) and returns, per entry,
/// `[method, url, status, http_version, started_iso]`, in file order. `None` (with a printed skip reason) when
/// python3 or haralyzer is missing, unless `TAPEDECK_CI=1`, where that is a failure.
#[allow(dead_code)]
pub fn haralyzer_entries(har: &Path) -> Option<Vec<serde_json::Value>> {
    const SCRIPT: &str = r#"
import json, sys
from haralyzer import HarParser, HarEntry
with open(sys.argv[1]) as f:
    parser = HarParser(json.load(f))
assert parser.version == "1.2", parser.version
out = []
for page in parser.pages:
    for e in page.entries:
        out.append([e.request.method, e.request.url, e.response.status, e.request.httpVersion,
                    e.startTime.isoformat() if e.startTime else None])
print(json.dumps(out))
"#;
    let probe = Command::new("python3").args(["-c", "import haralyzer"]).output();
    let available = matches!(&probe, Ok(o) if o.status.success());
    if !available {
        let why = match probe {
            Err(e) => format!("python3 not runnable: {e}"),
            Ok(o) => format!("haralyzer not importable: {}", String::from_utf8_lossy(&o.stderr).trim()),
        };
        if std::env::var("TAPEDECK_CI").as_deref() == Ok("1") {
            panic!("TAPEDECK_CI=1 and the HAR check cannot run: {why} (pip install haralyzer)");
        }
        eprintln!("SKIP haralyzer check: {why} (pip install haralyzer)");
        return None;
    }
    let o = Command::new("python3").args(["-c", SCRIPT]).arg(har).output().expect("python3 runs");
    assert!(o.status.success(), "haralyzer could not read {}: {}", har.display(), String::from_utf8_lossy(&o.stderr));
    Some(serde_json::from_slice(&o.stdout).expect("the script prints JSON"))
}
