//! The documentation says what the programs do today: no feature that exists is described as missing or "soon",
//! and `--help` names the pages the programs really serve. Each check reads the file or the help text a user
//! reads.

use std::path::Path;
use std::process::Command;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The section of a Markdown file under `heading` (to the next heading of the same level).
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let Some(start) = text.find(heading) else { return "" };
    let body = &text[start + heading.len()..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

#[test]
fn readme_does_not_promise_replay_as_future_work() {
    let readme = read("README.md");
    let intro = &readme[..readme.find("\n## ").unwrap_or(readme.len())];
    assert!(!intro.contains("(soon)"), "README intro still says something comes (soon):\n{intro}");
    assert!(readme.contains("## First session"), "README has no 'First session' for someone who has the binaries");
}

#[test]
fn architecture_lists_as_missing_only_what_is_missing() {
    let arch = read("docs/architecture.md");
    let missing = section(&arch, "## Not yet built");
    // Everything here is built: each has its own doc page and tests.
    for built in ["eBPF capture,", "the configuration file,", "deployment manifests,", "HAR export,", "mocks are"] {
        assert!(!missing.contains(built), "docs/architecture.md lists `{built}` as not yet built:\n{missing}");
    }
}

#[test]
fn masking_doc_knows_the_ebpf_backend() {
    let masking = read("docs/masking.md");
    assert!(!masking.contains("there is no eBPF backend"), "docs/masking.md says there is no eBPF backend");
}

#[test]
fn mock_help_names_both_metrics_pages() {
    let out = Command::new(env!("CARGO_BIN_EXE_replayer")).args(["mock", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "mock --help failed: {help}");
    assert!(help.contains("/__tapedeck/metrics"), "{help}");
    // `/metrics` on its own (not only as the tail of /__tapedeck/metrics).
    assert!(
        help.replace("/__tapedeck/metrics", "").contains("/metrics"),
        "mock --help names only the private page:\n{help}"
    );
}
