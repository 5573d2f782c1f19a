//! The wake-pipe flag: at most one wake-up byte outstanding.
//!
//! Anyone may ask the netpoll thread to wake up; only the caller that flips
//! the flag from clear to set writes the eventfd. The netpoll thread clears
//! the flag after it has drained the eventfd, so a request that comes after
//! the drain writes a new byte, and one that comes before it is covered by
//! the byte being drained (Go's `netpollWakeSig`).

use crate::loom::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub(crate) struct WakeSignal(AtomicBool);

impl WakeSignal {
    pub(crate) fn new() -> WakeSignal {
        WakeSignal(AtomicBool::new(false))
    }

    /// Returns `true` if the caller must write the wake-up byte.
    #[must_use]
    pub(crate) fn raise(&self) -> bool {
        // AcqRel: pairs with the Release in `lower`, so a raise that sees
        // the flag clear comes after the drain that preceded the clear.
        self.0
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Called by the netpoll thread after it drained the byte.
    pub(crate) fn lower(&self) {
        self.0.store(false, Ordering::Release);
    }
}
