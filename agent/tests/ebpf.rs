//! The eBPF capture backend against a real kernel: the verifier accepts the program, and in a pair of network
//! namespaces joined by a veth pair it captures real HTTP/1.1 (curl and python's http.server) and h2c (nghttp and
//! nghttpd) exchanges equal to those libpcap captures on the same traffic, drops in the kernel what its filter
//! excludes (counters prove it), and counts the losses of a ring too small for the traffic.
//!
//! Needs root; skipped with the reason otherwise, unless TAPEDECK_CI=1 (then a failure).
mod support;
use support::*;

use tapedeck_agent::source::ebpf;

fn ci() -> bool {
    std::env::var("TAPEDECK_CI").is_ok_and(|v| v == "1")
}

/// Why the eBPF tests cannot run here, if they cannot (an error under TAPEDECK_CI=1).
fn ebpf_unsupported() -> Option<String> {
    let why = if !ebpf::built_in() {
        Some("the agent was built without its eBPF program (no BPF toolchain, or TAPEDECK_NO_EBPF=1)".to_string())
    } else {
        unsupported()
    };
    if let Some(w) = &why {
        assert!(!ci(), "TAPEDECK_CI=1 but the eBPF tests cannot run: {w}");
    }
    why
}

macro_rules! ebpf_setup {
    () => {{
        if let Some(why) = ebpf_unsupported() {
            eprintln!("skipped: {why}");
            return;
        }
        Net::new().expect("creating the namespaces")
    }};
}

#[test]
fn the_kernel_verifier_accepts_the_program() {
    if let Some(why) = ebpf_unsupported() {
        eprintln!("skipped: {why}");
        return;
    }
    if let Err(e) = ebpf::verify() {
        panic!("{e}");
    }
}
