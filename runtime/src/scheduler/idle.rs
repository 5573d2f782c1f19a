//! Which workers are parked, which are searching, and who wakes whom.
//!
//! The rule that keeps wake-ups cheap: new work wakes at most one parked
//! worker, and none while some worker is already *searching* (looking for
//! work to steal), because that searcher will find it. A searcher that finds
//! work wakes the next parked worker, so a burst of work spreads one worker
//! at a time. At most half the workers search at once.
//!
//! The rule that keeps it correct: a worker may park without re-checking the
//! queues only if another worker is searching. The *last* searcher to park
//! re-checks every queue after it has published that it parks. Either it
//! sees the new work, or the producer, which checks the counts after its
//! push, sees no searcher and wakes a sleeper (a Dekker pair, `SeqCst` on
//! both sides).

use parking_lot::{Condvar, Mutex};

use crate::loom::{AtomicUsize, Ordering};

const UNPARKED_SHIFT: usize = 16;
const SEARCHING_MASK: usize = (1 << UNPARKED_SHIFT) - 1;
const UNPARKED_ONE: usize = 1 << UNPARKED_SHIFT;

pub(crate) struct Idle {
    /// Low 16 bits: searching workers. High bits: unparked workers.
    state: AtomicUsize,
    num_workers: usize,
    sleepers: crate::loom::Mutex<Vec<usize>>,
}

fn searching(s: usize) -> usize {
    s & SEARCHING_MASK
}

fn unparked(s: usize) -> usize {
    s >> UNPARKED_SHIFT
}

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        Idle {
            state: AtomicUsize::new(num_workers << UNPARKED_SHIFT),
            num_workers,
            sleepers: crate::loom::Mutex::new(Vec::with_capacity(num_workers)),
        }
    }

    /// Picks a parked worker to wake, if one should be woken. The chosen
    /// worker is counted as unparked and searching before it runs.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        // SeqCst: the caller's push to a queue comes before this load in the
        // single total order; pairs with the fetch_sub in
        // `transition_worker_to_parked`.
        crate::loom::fence(Ordering::SeqCst);
        if !self.should_wake() {
            return None;
        }
        let mut sleepers = self.sleepers.lock();
        if !self.should_wake() {
            return None;
        }
        let worker = sleepers.pop()?;
        self.state.fetch_add(UNPARKED_ONE | 1, Ordering::SeqCst);
        Some(worker)
    }

    fn should_wake(&self) -> bool {
        let s = self.state.load(Ordering::SeqCst);
        searching(s) == 0 && unparked(s) < self.num_workers
    }

    /// A worker with nothing to do wants to steal. Returns `false` if
    /// enough workers are searching already.
    pub(crate) fn transition_worker_to_searching(&self) -> bool {
        let s = self.state.load(Ordering::SeqCst);
        if 2 * searching(s) >= self.num_workers {
            return false;
        }
        self.state.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// A searcher found work. Returns `true` if it was the last searcher:
    /// the caller must then wake another worker so the search goes on.
    pub(crate) fn transition_worker_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(searching(prev) > 0);
        searching(prev) == 1
    }

    /// A worker is about to park. Returns whether it was the last searcher
    /// (the caller must then re-check every queue before sleeping) and
    /// whether it was the last unparked worker.
    pub(crate) fn transition_worker_to_parked(&self, worker: usize, is_searching: bool) -> Parked {
        let mut sleepers = self.sleepers.lock();
        let dec = UNPARKED_ONE + usize::from(is_searching);
        let prev = self.state.fetch_sub(dec, Ordering::SeqCst);
        // SeqCst fence: the other half of the Dekker pair with the fence in
        // `worker_to_notify`. Our decrement comes before the caller's
        // re-check of the queues in the single total order, so either we
        // see the producer's push or the producer sees us parked.
        crate::loom::fence(Ordering::SeqCst);
        sleepers.push(worker);
        Parked {
            last_searcher: is_searching && searching(prev) == 1,
            last_unparked: unparked(prev) == 1,
        }
    }

    /// Workers not parked.
    pub(crate) fn num_unparked(&self) -> usize {
        unparked(self.state.load(Ordering::SeqCst))
    }

    /// Returns `true` if `worker` is listed as parked.
    pub(crate) fn is_parked(&self, worker: usize) -> bool {
        self.sleepers.lock().contains(&worker)
    }

    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let s = self.state.load(Ordering::SeqCst);
        (searching(s), unparked(s))
    }
}

/// What [`Idle::transition_worker_to_parked`] tells the parking worker.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parked {
    pub(crate) last_searcher: bool,
    pub(crate) last_unparked: bool,
}

/// Blocks one worker thread until it is unparked. An unpark that comes
/// before the park is kept, so it is never lost.
#[derive(Default)]
pub(crate) struct Parker {
    notified: Mutex<bool>,
    cvar: Condvar,
}

impl Parker {
    pub(crate) fn park(&self) {
        let mut notified = self.notified.lock();
        while !*notified {
            self.cvar.wait(&mut notified);
        }
        *notified = false;
    }

    /// Parks for at most `timeout`; returns `true` if it was unparked.
    #[cfg(test)]
    pub(crate) fn park_timeout(&self, timeout: std::time::Duration) -> bool {
        let mut notified = self.notified.lock();
        if !*notified {
            let _ = self.cvar.wait_for(&mut notified, timeout);
        }
        std::mem::replace(&mut *notified, false)
    }

    pub(crate) fn unpark(&self) {
        *self.notified.lock() = true;
        self.cvar.notify_one();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn wakes_one_and_none_while_searching() {
        let idle = Idle::new(4);
        for w in 0..4 {
            assert!(!idle.transition_worker_to_parked(w, false).last_searcher);
        }
        assert_eq!(idle.counts(), (0, 0));
        let first = idle.worker_to_notify();
        assert!(first.is_some());
        // The woken worker counts as searching: nobody else is woken.
        assert_eq!(idle.worker_to_notify(), None);
        assert_eq!(idle.counts(), (1, 1));
        // It finds work and was the last searcher: it must wake the next.
        assert!(idle.transition_worker_from_searching());
        assert!(idle.worker_to_notify().is_some());
    }

    #[test]
    fn last_searcher_is_told_to_recheck() {
        let idle = Idle::new(2);
        assert!(idle.transition_worker_to_searching());
        assert!(!idle.transition_worker_to_searching());
        let first = idle.transition_worker_to_parked(0, true);
        assert!(first.last_searcher && !first.last_unparked);
        let second = idle.transition_worker_to_parked(1, false);
        assert!(!second.last_searcher && second.last_unparked);
    }

    #[test]
    fn unpark_before_park_is_kept() {
        let p = Parker::default();
        p.unpark();
        p.park();
        assert!(!p.park_timeout(std::time::Duration::from_millis(1)));
    }
}
