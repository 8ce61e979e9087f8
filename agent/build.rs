//! Builds the eBPF capture program (`agent-ebpf`) with aya-build and embeds it, or, when the BPF toolchain is
//! missing (nightly with rust-src, bpf-linker) or `TAPEDECK_NO_EBPF=1` is set, builds the agent without it:
//! a cargo warning says so, and `--backend ebpf` then fails with a clear message (`auto` falls back to libpcap).
//! With `TAPEDECK_CI=1` a missing toolchain or a failed eBPF build is an error instead. See docs/ebpf.md.
//! Also embeds the git revision for `agent --version` (build-support/git_rev.rs).

#[path = "../build-support/git_rev.rs"]
mod git_rev;

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "agent-ebpf";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tapedeck_ebpf)");
    for var in ["TAPEDECK_NO_EBPF", "TAPEDECK_CI"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.parent().unwrap_or(Path::new("..")).to_path_buf();
    git_rev::emit_git_rev(&root);
    let ebpf_dir = root.join(PACKAGE);
    println!("cargo:rerun-if-changed={}", root.join("agent-ebpf-common/src").display());
    let ci = env::var("TAPEDECK_CI").is_ok_and(|v| v == "1");

    if env::var("TAPEDECK_NO_EBPF").is_ok_and(|v| v == "1") {
        println!("cargo:warning=TAPEDECK_NO_EBPF=1: building the agent without the eBPF capture backend");
        return;
    }
    if let Some(missing) = missing_toolchain() {
        let msg = format!(
            "{missing}: building the agent without the eBPF capture backend (see docs/ebpf.md; \
             TAPEDECK_NO_EBPF=1 silences this)"
        );
        if ci {
            panic!("TAPEDECK_CI=1 and {msg}");
        }
        println!("cargo:warning={msg}");
        return;
    }
    // aya-build runs `cargo build --package agent-ebpf` in the current directory; the eBPF crate is outside the
    // workspace (it builds only for the BPF target), so run it from the crate's own directory.
    if let Err(e) = env::set_current_dir(&ebpf_dir) {
        panic!("entering {}: {e}", ebpf_dir.display());
    }
    let root_dir = ebpf_dir.to_string_lossy().into_owned();
    let pkg = aya_build::Package { name: PACKAGE, root_dir: &root_dir, ..Default::default() };
    let built = aya_build::build_ebpf([pkg], aya_build::Toolchain::Nightly);
    let object = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join(PACKAGE);
    match built {
        Ok(()) if object.is_file() => println!("cargo:rustc-cfg=tapedeck_ebpf"),
        Ok(()) => println!("cargo:warning=no eBPF object was built (AYA_BUILD_SKIP?): no eBPF capture backend"),
        Err(e) if ci => panic!("building the eBPF program failed: {e:#}"),
        Err(e) => {
            let e = format!("{e:#}").replace('\n', " ");
            println!("cargo:warning=building the eBPF program failed, so the agent has no eBPF backend: {e}");
        }
    }
}

/// What is missing to build the eBPF program, if anything.
fn missing_toolchain() -> Option<String> {
    let on_path = |name: &str| {
        env::var_os("PATH").is_some_and(|p| env::split_paths(&p).any(|d| d.join(name).is_file()))
            || env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
                .is_some_and(|c| c.join("bin").join(name).is_file())
    };
    if !on_path("bpf-linker") {
        return Some("bpf-linker not found (cargo install bpf-linker --version 0.10.4 --locked)".into());
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else {
        return Some("no nightly toolchain (rustup toolchain install nightly --profile minimal)".into());
    };
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        return Some("nightly has no rust-src (rustup component add rust-src --toolchain nightly)".into());
    }
    None
}
