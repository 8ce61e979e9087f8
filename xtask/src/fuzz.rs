//! `cargo xtask fuzz`: regenerates the seed corpora from the captures, then runs every cargo-fuzz target of
//! `fuzz/` (or one) for a fixed time each, and fails naming the targets that crashed and their crash files.
//!
//! Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). Targets are built without a
//! sanitizer (the code under test forbids `unsafe`, but for the SSE2 loads of `mask::digits`, which read whole
//! 16-byte arrays borrowed from a slice and are checked against a byte loop by the `mask` target) but with debug
//! assertions, so arithmetic overflow is a crash.
//! Seeds go to `fuzz/corpus/<target>/` (git-ignored): made by `fuzz/examples/make_seeds.rs` from `testdata/`
//! and, when it exists, the shared capture corpus next to the checkout; libFuzzer adds what it finds there too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// A target: its name (`fuzz/fuzz_targets/<name>.rs`), its `-max_len`, and its dictionary in `fuzz/dicts/`.
type Target = (&'static str, usize, Option<&'static str>);

/// The targets, in the order they run.
pub const TARGETS: &[Target] = &[
    ("pcap_reader", 65_536, None),
    ("decode", 65_536, None),
    ("reassembly", 65_536, Some("http.dict")),
    ("http1", 65_536, Some("http.dict")),
    ("http2", 65_536, Some("http.dict")),
    ("grpc", 8_192, None),
    ("mask", 8_192, Some("http.dict")),
    ("segment_reader", 65_536, None),
    ("segment_blocks", 65_536, None),
    ("replayer_args", 4_096, Some("replayer.dict")),
    ("judge_rules", 16_384, None),
];

/// What `cargo xtask fuzz` was asked to do.
#[derive(Debug)]
pub struct FuzzOptions {
    /// Seconds per target.
    pub secs: u64,
    /// Only this target.
    pub target: Option<String>,
    /// Extra capture directories to make seeds from (read only; nothing is copied into the repository).
    pub seed_dirs: Vec<PathBuf>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The shared capture corpus, if this checkout has one next to it (`../shared/corpus` or `../../shared/corpus`).
fn shared_corpus(root: &Path) -> Option<PathBuf> {
    ["../shared/corpus", "../../shared/corpus"].iter().map(|p| root.join(p)).find(|p| p.is_dir())
}

/// Crash files of a target: libFuzzer's `crash-*`, `oom-*`, `timeout-*` and `leak-*` artifacts.
fn artifacts(dir: &Path) -> BTreeSet<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeSet::new() };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            ["crash-", "oom-", "timeout-", "leak-"].iter().any(|k| name.starts_with(k))
        })
        .collect()
}

fn cargo_fuzz_available() -> bool {
    Command::new("cargo").args(["+nightly", "fuzz", "--version"]).output().is_ok_and(|o| o.status.success())
}

/// Writes the seed corpora (idempotent: seeds are named by content).
pub fn make_seeds(root: &Path, extra: &[PathBuf]) -> Result<()> {
    let fuzz = root.join("fuzz");
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&fuzz).args(["run", "--quiet", "--example", "make_seeds", "--"]);
    cmd.arg(fuzz.join("corpus")).arg(root.join("testdata"));
    cmd.args(extra);
    let status = cmd.status().context("running make_seeds")?;
    if !status.success() {
        bail!("make_seeds failed ({status})");
    }
    Ok(())
}

/// Runs the targets; fails listing the ones that crashed with their crash files.
pub fn fuzz(opts: &FuzzOptions) -> Result<()> {
    let root = repo_root();
    let targets: Vec<Target> = match &opts.target {
        Some(t) => match TARGETS.iter().find(|(n, _, _)| n == t) {
            Some(&x) => vec![x],
            None => bail!("no target {t}; targets: {}", TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")),
        },
        None => TARGETS.to_vec(),
    };
    if !cargo_fuzz_available() {
        bail!("`cargo +nightly fuzz` does not work: install nightly and `cargo install cargo-fuzz --locked`");
    }
    let mut seed_dirs = opts.seed_dirs.clone();
    if seed_dirs.is_empty() {
        seed_dirs.extend(shared_corpus(&root));
    }
    make_seeds(&root, &seed_dirs)?;

    let fuzz = root.join("fuzz");
    let build = Command::new("cargo")
        .current_dir(&fuzz)
        .args(["+nightly", "fuzz", "build", "--sanitizer", "none", "--debug-assertions"])
        .status()
        .context("cargo fuzz build")?;
    if !build.success() {
        bail!("cargo fuzz build failed ({build})");
    }

    let mut crashed: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for (name, max_len, dict) in targets {
        let art_dir = fuzz.join("artifacts").join(name);
        std::fs::create_dir_all(&art_dir).with_context(|| format!("creating {}", art_dir.display()))?;
        // Targets without seeds (the rules parser) start from an empty corpus, which libFuzzer needs to exist.
        let corpus = fuzz.join("corpus").join(name);
        std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
        let before = artifacts(&art_dir);
        let started = Instant::now();
        eprintln!("fuzz: {name} for {} s", opts.secs);
        let status = Command::new("cargo")
            .current_dir(&fuzz)
            .args(["+nightly", "fuzz", "run", "--sanitizer", "none", "--debug-assertions", name])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={}", opts.secs))
            .arg(format!("-max_len={max_len}"))
            .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
            .args(dict.map(|d| format!("-dict={}", fuzz.join("dicts").join(d).display())))
            .status()
            .with_context(|| format!("running target {name}"))?;
        let new: Vec<PathBuf> = artifacts(&art_dir).difference(&before).cloned().collect();
        eprintln!("fuzz: {name} ran {:.0} s, {status}", started.elapsed().as_secs_f64());
        if !status.success() || !new.is_empty() {
            crashed.push((name.to_string(), new));
        }
    }
    if crashed.is_empty() {
        eprintln!("fuzz: no crash");
        return Ok(());
    }
    let mut msg = String::from("fuzz targets crashed:");
    for (name, files) in &crashed {
        msg.push_str(&format!("\n  {name}:"));
        if files.is_empty() {
            msg.push_str(" (failed without a crash file)");
        }
        for f in files {
            msg.push_str(&format!("\n    {}", f.display()));
        }
    }
    msg.push_str("\nreproduce on stable: cd fuzz && cargo run --example reproduce -- <target> <file>");
    bail!(msg)
}
