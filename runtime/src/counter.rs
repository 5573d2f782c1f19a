//! A monotonic counter with a single writer at a time (one thread, or the
//! holder of a lock), for the runtime's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// One monotonic counter with a single writer.
#[derive(Default, Debug)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the counter's one writer may call it.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // Relaxed: nothing is published through a counter; a single writer
        // makes load-then-store exact.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
