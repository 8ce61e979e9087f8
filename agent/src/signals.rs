//! Process signals of the agent: SIGTERM and SIGINT stop a live capture (drain and finish every segment; a
//! second one exits at once with status 130), SIGHUP asks for a reload (masking policy, log file). Handlers only
//! set flags; the threads that own the work look at them.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The flags the signal handlers set.
#[derive(Clone, Debug, Default)]
pub struct Signals {
    /// Set by the first SIGTERM or SIGINT.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGHUP; cleared by whoever does the reload.
    pub reload: Arc<AtomicBool>,
}

/// Registers the handlers.
pub fn install() -> std::io::Result<Signals> {
    let s = Signals::default();
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        // Order matters: the conditional exit is checked before the flag is set by the same signal, so the first
        // signal only sets the flag and a second one (flag already set) exits.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&s.stop))?;
        signal_hook::flag::register(sig, Arc::clone(&s.stop))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&s.reload))?;
    Ok(s)
}
