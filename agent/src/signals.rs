//! Process signals of the agent: SIGTERM and SIGINT stop a live capture (drain and finish every segment; a
//! second one exits at once with status 130), SIGHUP asks for a reload (masking policy, log file). Handlers only
//! set flags; the threads that own the work look at them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
    // One counter for both signals, bumped atomically: two signals handled at the same time on two threads still
    // see distinct counts, so exactly one of them is "the second" (a check-then-set flag would let both pass).
    let received = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let stop = Arc::clone(&s.stop);
        let received = Arc::clone(&received);
        let handler = move || {
            if received.fetch_add(1, Ordering::SeqCst) > 0 {
                signal_hook::low_level::exit(130);
            }
            stop.store(true, Ordering::SeqCst);
        };
        // SAFETY: the handler only does atomic operations and `_exit`, both async-signal-safe; it allocates nothing
        // and takes no lock. The only unsafe code in the agent: the safe `flag` API cannot count atomically.
        #[allow(unsafe_code)]
        unsafe { signal_hook::low_level::register(sig, handler) }?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&s.reload))?;
    Ok(s)
}
