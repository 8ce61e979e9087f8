//! External programs the tasks run: where each comes from (its Debian package), a check that all needed
//! programs are installed before anything starts, and their version strings for the README.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::proc;

/// An external program and the apt package that provides it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    /// Executable name, looked up on `PATH` (plus `/usr/sbin`, `/sbin`).
    pub program: &'static str,
    /// Debian/Ubuntu package providing it.
    pub package: &'static str,
    /// Arguments that print the version (first line of stdout or stderr is kept).
    pub version_args: &'static [&'static str],
}

pub const IP: Tool = Tool { program: "ip", package: "iproute2", version_args: &["-V"] };
pub const KILL: Tool = Tool { program: "kill", package: "procps", version_args: &["--version"] };
pub const TCPDUMP: Tool = Tool { program: "tcpdump", package: "tcpdump", version_args: &["--version"] };
pub const TSHARK: Tool = Tool { program: "tshark", package: "tshark", version_args: &["--version"] };
pub const EDITCAP: Tool = Tool { program: "editcap", package: "wireshark-common", version_args: &["--version"] };
pub const CAPINFOS: Tool = Tool { program: "capinfos", package: "wireshark-common", version_args: &["-v"] };
pub const NGINX: Tool = Tool { program: "nginx", package: "nginx", version_args: &["-v"] };
pub const CURL: Tool = Tool { program: "curl", package: "curl", version_args: &["--version"] };
pub const NGHTTP: Tool = Tool { program: "nghttp", package: "nghttp2-client", version_args: &["--version"] };
pub const NGHTTPD: Tool = Tool { program: "nghttpd", package: "nghttp2-server", version_args: &["--version"] };
pub const H2LOAD: Tool = Tool { program: "h2load", package: "nghttp2-client", version_args: &["--version"] };
pub const WRK: Tool = Tool { program: "wrk", package: "wrk", version_args: &["-v"] };
pub const MICROSOCKS: Tool = Tool { program: "microsocks", package: "microsocks", version_args: &["-h"] };
pub const PYTHON3: Tool = Tool { program: "python3", package: "python3", version_args: &["--version"] };

/// Finds `program` on `PATH`, then in the sbin directories (nginx and nghttpd live there).
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Fails with one message naming every missing program and the package to install.
pub fn require(tools: &[Tool]) -> Result<()> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| find(t.program).is_none())
        .map(|t| format!("`{}` (apt-get install {})", t.program, t.package))
        .collect();
    if !missing.is_empty() {
        bail!("missing required programs: {}", missing.join(", "));
    }
    Ok(())
}

/// Fails unless running as root (tcpdump and `ip netns` need it).
pub fn require_root() -> Result<()> {
    let out = proc::run(Command::new("id").arg("-u"), Duration::from_secs(5))?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        bail!("this task must run as root (it creates a network namespace and runs tcpdump)");
    }
    Ok(())
}

/// The first non-empty line the program prints for its version flag, or a note that it printed none.
pub fn version(tool: Tool) -> String {
    let mut cmd = Command::new(tool.program);
    cmd.args(tool.version_args);
    match proc::run(&mut cmd, Duration::from_secs(10)) {
        Ok(out) => {
            let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("Running as user"))
                .unwrap_or("(no version output)")
                .to_string()
        }
        Err(e) => format!("(version unknown: {e})"),
    }
}
