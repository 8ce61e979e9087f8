//! Giving up privileges once live capture has started: opening a capture socket needs `CAP_NET_RAW` (and
//! `CAP_NET_ADMIN` for promiscuous mode), but reading from an open handle, writing segments and serving metrics
//! need no capability at all. [`drop_after_capture_open`] is called right after every live capture handle is
//! open and before the capture and writer threads start; from then on a bug in a parser (which reads what anyone
//! on the network sends) runs without privileges.
//!
//! What is dropped, on the calling thread (Linux capabilities belong to threads; threads started afterwards
//! inherit the result, threads started before keep theirs and are reported):
//! - the bounding set (when `CAP_SETPCAP` allows it), so that nothing executed later can regain a capability;
//! - the ambient and inheritable sets (nothing is passed on through `execve`);
//! - the effective and permitted sets: nothing remains. libpcap needs no capability once its handle is open
//!   (reads, `poll` and statistics on an open packet socket are not checked), and the eBPF backend has loaded,
//!   attached and opened its ring buffer before the drop (reading an open map needs no capability). The consequence: an interface that goes away cannot be reopened (it is
//!   reported as failed, as before).
//!
//! and `no_new_privs` is set (set-uid binaries and file capabilities grant nothing to `execve` from now on).
//! A process that runs without privileges (file capabilities, or none) gets the same treatment: reducing sets
//! needs no privilege; only the bounding set is left as it is without `CAP_SETPCAP`.

use std::collections::BTreeSet;

use caps::{CapSet, Capability};

/// What [`drop_after_capture_open`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropReport {
    /// Capabilities that were effective before (names such as `CAP_NET_RAW`), now none.
    pub effective: Vec<String>,
    /// Capabilities that were permitted before, now none.
    pub permitted: Vec<String>,
    /// Capabilities that were inheritable or ambient before, now none.
    pub inheritable_or_ambient: Vec<String>,
    /// Capabilities removed from the bounding set.
    pub bounding_dropped: usize,
    /// Whether the bounding set had to be left as it was (no `CAP_SETPCAP`).
    pub bounding_kept: bool,
    /// Other threads of the process that still hold effective capabilities (started before the drop), as
    /// `name (tid)`.
    pub threads_still_privileged: Vec<String>,
}

/// Capabilities could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A capability set could not be read or changed.
    #[error("dropping capabilities ({what}): {message}")]
    Caps {
        /// Which set, and what was done.
        what: &'static str,
        /// The system's message.
        message: String,
    },
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("setting no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    /// A set still holds capabilities after clearing it.
    #[error("capabilities still held after dropping them: {0}")]
    StillHeld(String),
}

fn names(set: &caps::CapsHashSet) -> Vec<String> {
    set.iter().map(ToString::to_string).collect::<BTreeSet<_>>().into_iter().collect()
}

fn read(set: CapSet, what: &'static str) -> Result<caps::CapsHashSet, PrivilegeError> {
    caps::read(None, set).map_err(|e| PrivilegeError::Caps { what, message: e.to_string() })
}

fn clear(set: CapSet, what: &'static str) -> Result<(), PrivilegeError> {
    caps::clear(None, set).map_err(|e| PrivilegeError::Caps { what, message: e.to_string() })
}

/// Drops every capability of the calling thread (see the module documentation), sets `no_new_privs`, checks the
/// result and logs what was dropped. Call it once the live capture handles are open, before starting threads.
pub fn drop_after_capture_open() -> Result<DropReport, PrivilegeError> {
    let report = drop_all()?;
    if report.effective.is_empty() && report.permitted.is_empty() {
        tracing::info!("no capabilities held; no_new_privs set");
    } else {
        tracing::info!(
            effective = %report.effective.join(","),
            permitted = %report.permitted.join(","),
            inheritable_or_ambient = %report.inheritable_or_ambient.join(","),
            bounding_dropped = report.bounding_dropped,
            "capture open: dropped every capability; no_new_privs set"
        );
    }
    if report.bounding_kept {
        tracing::info!("bounding set left as it is (no CAP_SETPCAP); no_new_privs stops execve from using it");
    }
    if !report.threads_still_privileged.is_empty() {
        tracing::warn!(
            threads = %report.threads_still_privileged.join(", "),
            "threads started before the capture was opened still hold capabilities"
        );
    }
    Ok(report)
}

/// The work of [`drop_after_capture_open`], without logging.
pub fn drop_all() -> Result<DropReport, PrivilegeError> {
    let mut report = DropReport {
        effective: names(&read(CapSet::Effective, "reading the effective set")?),
        permitted: names(&read(CapSet::Permitted, "reading the permitted set")?),
        ..DropReport::default()
    };
    let mut passed_on = read(CapSet::Inheritable, "reading the inheritable set")?;
    // The ambient set does not exist before Linux 4.3.
    if caps::runtime::ambient_set_supported().is_ok() {
        passed_on.extend(read(CapSet::Ambient, "reading the ambient set")?);
        clear(CapSet::Ambient, "clearing the ambient set")?;
    }
    report.inheritable_or_ambient = names(&passed_on);
    // The bounding set first: removing from it needs CAP_SETPCAP, which goes with the effective set.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        report.bounding_dropped = read(CapSet::Bounding, "reading the bounding set")?.len();
        clear(CapSet::Bounding, "clearing the bounding set")?;
    } else {
        report.bounding_kept = !read(CapSet::Bounding, "reading the bounding set")?.is_empty();
    }
    clear(CapSet::Inheritable, "clearing the inheritable set")?;
    clear(CapSet::Effective, "clearing the effective set")?;
    clear(CapSet::Permitted, "clearing the permitted set")?;
    rustix::thread::set_no_new_privs(true).map_err(|e| PrivilegeError::NoNewPrivs(e.into()))?;

    let mut left = Vec::new();
    for (set, what) in
        [(CapSet::Effective, "effective"), (CapSet::Permitted, "permitted"), (CapSet::Inheritable, "inheritable")]
    {
        let held = read(set, "checking")?;
        if !held.is_empty() {
            left.push(format!("{what}: {}", names(&held).join(",")));
        }
    }
    if !left.is_empty() {
        return Err(PrivilegeError::StillHeld(left.join("; ")));
    }
    report.threads_still_privileged = privileged_threads();
    Ok(report)
}

/// Starts a thread named `name` that gives up every capability before it runs `work`, and returns once it has
/// (so that a later [`drop_after_capture_open`] never finds it still privileged). For threads started before the
/// capture is open that need no capability (metrics, shutdown watchdog). A failure to drop is ignored here: the
/// capture thread's own drop reports and checks what remains.
pub fn spawn_unprivileged<F>(name: &str, work: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new().name(name.into()).spawn(move || {
        let _ = drop_all();
        let _ = dropped_tx.send(());
        work();
    })?;
    // An error only means the thread ended (panicked) before it sent: nothing left to wait for.
    let _ = dropped_rx.recv();
    Ok(handle)
}

/// The effective capability mask of a `/proc/.../status` text (`CapEff:` line, hexadecimal).
pub fn effective_mask(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// Threads of this process other than the caller whose effective set is not empty, as `name (tid)`.
pub fn privileged_threads() -> Vec<String> {
    let me = rustix::thread::gettid().as_raw_nonzero().get().to_string();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let tid = t.file_name().to_string_lossy().into_owned();
        if tid == me {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        if effective_mask(&status).is_some_and(|m| m != 0) {
            let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            out.push(format!("{} ({tid})", name.trim()));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_mask_is_read_from_status_text() {
        let status = "Name:\tagent\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000002000\n";
        assert_eq!(effective_mask(status), Some(0x2000));
        assert_eq!(effective_mask("CapEff:\t0000000000000000\n"), Some(0));
        assert_eq!(effective_mask("Name:\tx\n"), None);
        assert_eq!(effective_mask("CapEff:\tzz\n"), None);
    }

    /// Capabilities belong to threads: the drop runs in a thread of its own, which must end with every set
    /// empty and no_new_privs set, whatever the test runs as (root or not); the test's own thread is untouched.
    #[test]
    fn a_thread_that_drops_holds_nothing_afterwards() {
        let before = caps::read(None, CapSet::Effective).unwrap();
        let nnp_before = rustix::thread::no_new_privs().unwrap();
        let (report, after, status, nnp) = std::thread::spawn(|| {
            let report = drop_all().unwrap();
            let after: Vec<_> = [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable]
                .into_iter()
                .map(|s| caps::read(None, s).unwrap().len())
                .collect();
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            (report, after, status, rustix::thread::no_new_privs().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(after, [0, 0, 0]);
        assert_eq!(effective_mask(&status), Some(0), "{status}");
        assert!(nnp, "no_new_privs set in the dropping thread");
        // The report lists what the thread had (a thread inherits its creator's sets).
        assert_eq!(report.effective.len(), before.len());
        if before.contains(&Capability::CAP_NET_RAW) {
            assert!(report.effective.iter().any(|c| c == "CAP_NET_RAW"), "{report:?}");
        }
        // The caller's thread keeps what it had.
        assert_eq!(caps::read(None, CapSet::Effective).unwrap(), before);
        assert_eq!(rustix::thread::no_new_privs().unwrap(), nnp_before);
    }

    #[test]
    fn threads_holding_capabilities_are_reported() {
        let privileged = !caps::read(None, CapSet::Effective).unwrap().is_empty();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::Builder::new().name("cap-holder".into()).spawn(move || rx.recv()).unwrap();
        let listed = std::thread::spawn(privileged_threads).join().unwrap();
        tx.send(()).unwrap();
        let _ = holder.join();
        // Run as root, the thread holding capabilities is listed; run without, nothing is.
        assert_eq!(listed.iter().any(|t| t.starts_with("cap-holder (")), privileged, "{listed:?}");
    }
}
