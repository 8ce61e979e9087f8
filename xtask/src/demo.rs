//! `cargo xtask demo`: the main job end to end on the bundled captures. Builds the release binaries, records
//! every capture in testdata/ into segments under target/demo/, and lists what was recorded. Where libpcap does
//! not link (no libpcap-dev), the agent is built without it ([`crate::libpcap`]): files need no libpcap.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace) or `target`.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d))
}

/// Builds `agent` and `replayer` in release mode and returns the directory holding them. Without libpcap, the
/// agent is built without its `libpcap` feature, and one line says so.
pub fn build_release(root: &Path) -> Result<PathBuf> {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.current_dir(root).args(["build", "--release", "--quiet", "-p", "agent", "-p", "replayer"]);
    if !crate::libpcap::links() {
        println!(
            "libpcap does not link here (no libpcap-dev): building the agent without it (files and pipes work; \
             --iface needs --backend ebpf). For libpcap capture: {}",
            crate::libpcap::INSTALL
        );
        cargo.arg("--no-default-features");
    }
    let status = cargo.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    Ok(target_dir(root).join("release"))
}

/// Runs the demo.
pub fn demo() -> Result<()> {
    let root = workspace_root();
    let bin = build_release(&root)?;
    let mut captures: Vec<PathBuf> = std::fs::read_dir(root.join("testdata"))
        .context("reading testdata/")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    captures.sort();
    if captures.is_empty() {
        bail!("no .pcap or .pcapng file in {}", root.join("testdata").display());
    }
    let out = target_dir(&root).join("demo");
    let _ = std::fs::remove_dir_all(&out);
    let mut dirs = Vec::new();
    for capture in &captures {
        let name = capture.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let dir = out.join(&name);
        println!("== agent --pcap {} --out {}", rel(&root, capture), rel(&root, &dir));
        let status = Command::new(bin.join("agent")).arg("--pcap").arg(capture).arg("--out").arg(&dir).status()?;
        if !status.success() {
            bail!("agent failed on {}", capture.display());
        }
        dirs.push(dir);
    }
    println!("\n== replayer inspect target/demo/*");
    let status = Command::new(bin.join("replayer")).arg("inspect").args(&dirs).status()?;
    if !status.success() {
        bail!("replayer inspect failed");
    }
    println!(
        "\nSegments are in {}; try `{} inspect --json {}`",
        rel(&root, &out),
        rel(&root, &bin.join("replayer")),
        rel(&root, &dirs[0])
    );
    Ok(())
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
