//! A private network namespace for captures: its own loopback, so no other traffic on the machine shows up in
//! a capture and fixed ports are always free. Created with `ip netns add`, deleted on drop.

use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::proc;

/// Prefix of the namespaces this tool creates; the suffix is the creating process id.
const PREFIX: &str = "tapedeck-xtask-";

/// An `ip netns` namespace owned by this process.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// The commands that set it up, for the README.
    pub setup: Vec<String>,
}

impl Netns {
    /// Creates the namespace and brings its loopback up. With `ethernet_mtu`, loopback gets MTU 1500 and GSO
    /// off (`gso_max_size 1500 gso_max_segs 1`), so TCP segments look like they do on an Ethernet link
    /// instead of 64 KB loopback super-packets.
    pub fn create(ethernet_mtu: bool) -> Result<Self> {
        remove_stale();
        let name = format!("{PREFIX}{}", std::process::id());
        let mut setup = Vec::new();
        let mut add = Command::new("ip");
        add.args(["netns", "add", &name]);
        setup.push(proc::describe(&add));
        proc::run_ok(&mut add, Duration::from_secs(10))?;
        let ns = Netns { name, setup };
        let mut lo = Command::new("ip");
        lo.args(["-n", &ns.name, "link", "set", "lo", "up"]);
        if ethernet_mtu {
            lo.args(["mtu", "1500", "gso_max_size", "1500", "gso_max_segs", "1"]);
        }
        let line = proc::describe(&lo);
        proc::run_ok(&mut lo, Duration::from_secs(10))?;
        let mut ns = ns;
        ns.setup.push(line);
        Ok(ns)
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// A README rendering of a command: the namespace name becomes `$NS`.
    pub fn show(&self, cmd: &Command) -> String {
        proc::describe(cmd).replace(&self.name, "$NS")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = proc::run(Command::new("ip").args(["netns", "del", &self.name]), Duration::from_secs(10));
    }
}

/// Deletes namespaces left behind by earlier runs that were killed (their creating process is gone).
fn remove_stale() {
    let Ok(out) = proc::run(Command::new("ip").args(["netns", "list"]), Duration::from_secs(10)) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = proc::run(Command::new("ip").args(["netns", "del", name]), Duration::from_secs(10));
        }
    }
}

/// Fails early with a clear message if namespaces cannot be created here.
pub fn check_supported() -> Result<()> {
    let out = proc::run(Command::new("ip").args(["netns", "list"]), Duration::from_secs(10))?;
    if !out.status.success() {
        bail!("`ip netns list` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
