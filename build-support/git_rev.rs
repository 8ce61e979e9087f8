//! The git revision that `agent --version` and `replayer --version` print, found by their build scripts
//! (agent/build.rs and replayer/build.rs include this file with `#[path]`): `TAPEDECK_GIT_REV` when set (a Docker
//! build has no .git: `--build-arg TAPEDECK_GIT_REV=...`), else `git rev-parse --short HEAD`, else `unknown`.
//! Cargo reruns the build script when HEAD or the branch it names moves.

use std::path::Path;
use std::process::Command;

/// Sets `TAPEDECK_GIT_REV` for the crate being built (read with `env!`), for the repository at `root`.
pub fn emit_git_rev(root: &Path) {
    println!("cargo:rerun-if-env-changed=TAPEDECK_GIT_REV");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = Path::new(&dir);
        let head = dir.join("HEAD");
        // A commit moves the branch HEAD names: its loose ref, or packed-refs once packed.
        let branch =
            std::fs::read_to_string(&head).ok().and_then(|h| h.trim().strip_prefix("ref: ").map(|r| dir.join(r)));
        for file in [Some(head), branch, Some(dir.join("packed-refs"))].into_iter().flatten() {
            if file.exists() {
                println!("cargo:rerun-if-changed={}", file.display());
            }
        }
    }
    let rev = std::env::var("TAPEDECK_GIT_REV")
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TAPEDECK_GIT_REV={rev}");
}
