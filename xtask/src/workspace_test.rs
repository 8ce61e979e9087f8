//! `cargo xtask test [-- ARGS]`: the README's test command. Runs `cargo test --workspace ARGS` where libpcap links;
//! elsewhere says what is left out and how to add it, and runs the same with the agent built without its
//! `libpcap` feature (`--no-default-features`: no other workspace crate has default features). ARGS that select
//! packages (`-p tapedeck-model`) replace `--workspace`. cargo's output is left as it is; the exit status is cargo's.
//! `XDG_STATE_HOME` is `target/test-state` unless set, so that the agents the tests start keep their default
//! masking key there.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::libpcap;

/// What a build without libpcap leaves out of the tests.
const LEFT_OUT: &str = "the libpcap capture backend and its tests (agent tests live, privileges, ebpf, the live \
                        disk-full and start-line tests, source::live's unit tests)";

/// Runs the tests; the exit status is cargo's.
pub fn test(args: &[String]) -> Result<ExitCode> {
    let args = cargo_test_args(args, libpcap::links());
    if args.iter().any(|a| a == "--no-default-features") {
        eprintln!("xtask test: libpcap does not link here (no libpcap-dev): the agent is tested without it.");
        eprintln!("xtask test: left out: {LEFT_OUT}. To test them: {} (as root)", libpcap::INSTALL);
    }
    eprintln!("xtask test: cargo {}", args.join(" "));
    let root = crate::demo::workspace_root();
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.current_dir(&root).args(&args);
    // The agents the tests start create their default masking key under XDG_STATE_HOME: in target/, not in the
    // tester's home or (as root) /etc/tapedeck.
    if std::env::var_os("XDG_STATE_HOME").is_none() {
        cargo.env("XDG_STATE_HOME", root.join("target/test-state"));
    }
    let status = cargo.status().context("running cargo test")?;
    // A signal (no code) counts as a failure.
    Ok(ExitCode::from(status.code().map_or(1, |c| u8::try_from(c & 0xff).unwrap_or(1))))
}

/// cargo's arguments: `test`, `--workspace` unless `extra` selects packages, `--no-default-features` without
/// libpcap, then `extra`.
fn cargo_test_args(extra: &[String], libpcap: bool) -> Vec<String> {
    // Only what comes before a `--` is cargo's (after it: the test binaries' own flags).
    let cargo_part = extra.iter().take_while(|a| *a != "--");
    let selects = cargo_part.clone().any(|a| {
        a == "-p" || a == "--package" || a == "--workspace" || a.starts_with("--package=") || {
            a.starts_with("-p") && !a.starts_with("--")
        }
    });
    let mut args = vec!["test".to_string()];
    if !selects {
        args.push("--workspace".into());
    }
    if !libpcap {
        args.push("--no-default-features".into());
    }
    args.extend(extra.iter().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn with_libpcap_it_is_exactly_cargo_test_workspace() {
        assert_eq!(cargo_test_args(&[], true), s(&["test", "--workspace"]));
        assert_eq!(
            cargo_test_args(&s(&["--release", "--", "--nocapture"]), true),
            s(&["test", "--workspace", "--release", "--", "--nocapture"])
        );
    }

    #[test]
    fn without_libpcap_the_agent_is_built_without_it() {
        assert_eq!(cargo_test_args(&[], false), s(&["test", "--workspace", "--no-default-features"]));
    }

    #[test]
    fn selected_packages_replace_the_workspace() {
        assert_eq!(
            cargo_test_args(&s(&["-p", "tapedeck-model"]), false),
            s(&["test", "--no-default-features", "-p", "tapedeck-model"])
        );
        assert_eq!(cargo_test_args(&s(&["-pmodel"]), true), s(&["test", "-pmodel"]));
        assert_eq!(cargo_test_args(&s(&["--package=agent"]), true), s(&["test", "--package=agent"]));
        // After `--`, `-p` belongs to the test binary.
        assert_eq!(cargo_test_args(&s(&["--", "-p"]), true), s(&["test", "--workspace", "--", "-p"]));
    }
}
