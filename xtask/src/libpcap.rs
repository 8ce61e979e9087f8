//! Whether libpcap links on this machine (libpcap-dev installed): the agent's `libpcap` cargo feature (its
//! libpcap capture backend) needs it, nothing else does. `cargo xtask demo` and `cargo xtask test` build without
//! the feature when it does not link, and say so.

use std::process::{Command, Stdio};

/// The command that installs what the `libpcap` feature needs (Debian, Ubuntu).
pub const INSTALL: &str = "apt-get install libpcap-dev";

/// Whether a C program calling libpcap links with the system's C compiler (`$CC`, else `cc`), as rustc links the
/// agent: `-lpcap`, from `$LIBPCAP_LIBDIR` when set (the `pcap` crate's variable). Nothing is cached.
pub fn links() -> bool {
    let Ok(dir) = tempfile::tempdir() else { return false };
    let src = dir.path().join("probe.c");
    let program = "const char *pcap_lib_version(void);\nint main(void) { return pcap_lib_version() == 0; }\n";
    if std::fs::write(&src, program).is_err() {
        return false;
    }
    let mut cc = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()));
    cc.arg(&src).arg("-o").arg(dir.path().join("probe"));
    if let Some(libdir) = std::env::var_os("LIBPCAP_LIBDIR") {
        cc.arg("-L").arg(libdir);
    }
    cc.arg("-lpcap").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_agrees_with_the_presence_of_libpcap_so() {
        // Where Debian's libpcap-dev puts the linker's libpcap.so (the runtime package has only libpcap.so.0.8).
        let dev =
            ["/usr/lib/x86_64-linux-gnu/libpcap.so", "/usr/lib/aarch64-linux-gnu/libpcap.so", "/usr/lib/libpcap.so"]
                .iter()
                .any(|p| std::path::Path::new(p).exists());
        let cc = Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success());
        if !cc || std::env::var_os("LIBPCAP_LIBDIR").is_some() || std::env::var_os("CC").is_some() {
            eprintln!("skipped: no cc, or CC/LIBPCAP_LIBDIR set");
            return;
        }
        assert_eq!(links(), dev);
    }
}
