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

use crate::loom::{AtomicUsize, Condvar, Mutex, Ordering};
use crate::task::Notified;

const UNPARKED_SHIFT: usize = 16;
const SEARCHING_MASK: usize = (1 << UNPARKED_SHIFT) - 1;
const UNPARKED_ONE: usize = 1 << UNPARKED_SHIFT;

pub(crate) struct Idle {
    /// Low 16 bits: searching workers. High bits: unparked workers.
    state: AtomicUsize,
    num_workers: usize,
    /// Parked workers, most recently parked last, each with the CPU it
    /// last ran on.
    sleepers: crate::loom::Mutex<Vec<Sleeper>>,
}

#[derive(Clone, Copy)]
struct Sleeper {
    worker: usize,
    cpu: Option<u32>,
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
    #[must_use = "the worker picked must be unparked"]
    #[inline]
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        self.worker_to_wake(false)
    }

    /// Picks a parked worker to wake, if one should be woken: with
    /// `near_caller`, preferably one that last ran on the caller's CPU (a wake-up that stays on the waker's CPU
    /// starts in microseconds; one that lands on an idle CPU waits for it
    /// to leave its idle state), else the one that parked last.
    ///
    /// The chosen worker is counted as unparked and searching, even when it
    /// is handed the task it is to run: until it runs, it is on its way to
    /// work that others may also be looking for, and new work that arrives
    /// meanwhile need not wake anyone else. Once it has found its task it
    /// stops searching and wakes a sibling only if there is more work (see
    /// [`transition_worker_from_searching`](Self::transition_worker_from_searching)),
    /// so a lone task wakes exactly one worker.
    #[must_use = "the worker picked must be unparked"]
    #[inline]
    pub(crate) fn worker_to_wake(&self, near_caller: bool) -> Option<usize> {
        // SeqCst: the caller's push to a queue comes before this load in the
        // single total order; pairs with the fences in
        // `transition_worker_to_parked` and `transition_worker_from_searching`.
        crate::loom::fence(Ordering::SeqCst);
        if !self.should_wake() {
            return None;
        }
        self.pick_sleeper(near_caller)
    }

    /// The slow half of [`worker_to_wake`](Self::worker_to_wake): under
    /// the lock, picks the sleeper. The caller's CPU is looked up only
    /// here, when there is a sleeper to choose among.
    #[inline(never)]
    fn pick_sleeper(&self, near_caller: bool) -> Option<usize> {
        let mut sleepers = self.sleepers.lock();
        if !self.should_wake() {
            return None;
        }
        let cpu = if near_caller && sleepers.len() > 1 {
            current_cpu()
        } else {
            None
        };
        let at = cpu
            .and_then(|cpu| sleepers.iter().rposition(|s| s.cpu == Some(cpu)))
            .unwrap_or(sleepers.len().checked_sub(1)?);
        let worker = sleepers.remove(at).worker;
        self.state.fetch_add(UNPARKED_ONE | 1, Ordering::SeqCst);
        Some(worker)
    }

    /// `true` if a worker may need waking: a plain look, without the
    /// fence of [`worker_to_wake`](Self::worker_to_wake), for a caller
    /// that falls back on that fenced look when this says no.
    #[inline]
    pub(crate) fn may_wake(&self) -> bool {
        self.should_wake()
    }

    #[inline]
    fn should_wake(&self) -> bool {
        let s = self.state.load(Ordering::SeqCst);
        searching(s) == 0 && unparked(s) < self.num_workers
    }

    /// A worker with nothing to do wants to steal. Returns `false` if
    /// enough workers are searching already.
    #[must_use = "`false` means the caller is not searching"]
    pub(crate) fn transition_worker_to_searching(&self) -> bool {
        let s = self.state.load(Ordering::SeqCst);
        if 2 * searching(s) >= self.num_workers {
            return false;
        }
        self.state.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// A searcher found work. Returns `true` if it was the last searcher:
    /// the caller must then re-check the queues and, if there is more work,
    /// wake another worker so the search goes on. (Either the re-check sees
    /// work pushed meanwhile, or its producer sees no searcher and wakes a
    /// worker itself.)
    #[must_use = "`true` means the caller must re-check the queues"]
    pub(crate) fn transition_worker_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(searching(prev) > 0);
        // SeqCst fence: the other half of the Dekker pair with the fence in
        // `worker_to_wake`, as in `transition_worker_to_parked`.
        crate::loom::fence(Ordering::SeqCst);
        searching(prev) == 1
    }

    /// A worker is about to park. Returns whether it was the last searcher
    /// (the caller must then re-check every queue before sleeping) and
    /// whether it was the last unparked worker.
    pub(crate) fn transition_worker_to_parked(
        &self,
        worker: usize,
        is_searching: bool,
        cpu: Option<u32>,
    ) -> Parked {
        let mut sleepers = self.sleepers.lock();
        let dec = UNPARKED_ONE + usize::from(is_searching);
        let prev = self.state.fetch_sub(dec, Ordering::SeqCst);
        // SeqCst fence: the other half of the Dekker pair with the fence in
        // `worker_to_notify`. Our decrement comes before the caller's
        // re-check of the queues in the single total order, so either we
        // see the producer's push or the producer sees us parked.
        crate::loom::fence(Ordering::SeqCst);
        sleepers.push(Sleeper { worker, cpu });
        Parked {
            last_searcher: is_searching && searching(prev) == 1,
            last_unparked: unparked(prev) == 1,
        }
    }

    /// The number of workers that run tasks.
    pub(crate) fn num_workers(&self) -> usize {
        self.num_workers
    }

    /// A running worker leaves for good without parking (it was handed off
    /// and no thread could take its place). Returns `true` if it was the
    /// last unparked worker.
    #[must_use = "`true` means no worker is left running"]
    pub(crate) fn worker_left(&self) -> bool {
        let prev = self.state.fetch_sub(UNPARKED_ONE, Ordering::SeqCst);
        unparked(prev) == 1
    }

    /// A worker that [left](Self::worker_left) is running again: a thread
    /// started in its place. Counted as unparked, not searching, as the
    /// workers a runtime starts with.
    pub(crate) fn worker_returned(&self) {
        self.state.fetch_add(UNPARKED_ONE, Ordering::SeqCst);
    }

    /// With every worker parked, returns `f()`, called with the lock that
    /// every wake-up of a worker takes, so none starts meanwhile; `false`
    /// if some worker runs.
    pub(crate) fn if_all_parked(&self, f: impl FnOnce() -> bool) -> bool {
        let _sleepers = self.sleepers.lock();
        self.num_unparked() == 0 && f()
    }

    /// Workers searching for work now.
    pub(crate) fn num_searching(&self) -> usize {
        searching(self.state.load(Ordering::SeqCst))
    }

    /// Workers not parked.
    pub(crate) fn num_unparked(&self) -> usize {
        unparked(self.state.load(Ordering::SeqCst))
    }

    /// Returns `true` if `worker` is listed as parked.
    pub(crate) fn is_parked(&self, worker: usize) -> bool {
        self.sleepers.lock().iter().any(|s| s.worker == worker)
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

/// The CPU the calling thread runs on, if the kernel says.
pub(crate) fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// Blocks one worker thread until it is unparked, and carries what it is
/// woken with. An unpark that comes before the park is kept, so it is
/// never lost. Its lock and condition variable come from the `loom` shim,
/// so the models see `unpark_with` and `park`.
#[derive(Default)]
pub(crate) struct Parker {
    slot: Mutex<Wakeup>,
    cvar: Condvar,
}

/// What a worker is woken with.
#[derive(Default)]
pub(crate) struct Wakeup {
    unparked: bool,
    /// A task handed straight to this worker, to run first.
    pub(crate) task: Option<Notified>,
}

impl Parker {
    pub(crate) fn park(&self) -> Wakeup {
        let mut slot = self.slot.lock();
        while !slot.unparked {
            slot = self.cvar.wait(slot);
        }
        std::mem::take(&mut *slot)
    }

    /// Parks for at most `timeout`; returns `true` if it was unparked.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn park_timeout(&self, timeout: std::time::Duration) -> bool {
        let mut slot = self.slot.lock();
        if !slot.unparked {
            slot = self
                .cvar
                .wait_until(slot, std::time::Instant::now() + timeout);
        }
        std::mem::take(&mut *slot).unparked
    }

    /// Wakes the worker to search for work (or to see shutdown).
    pub(crate) fn unpark(&self) {
        let mut slot = self.slot.lock();
        slot.unparked = true;
        drop(slot);
        self.cvar.notify_one();
    }

    /// `true` if a task was handed over and not yet taken.
    pub(crate) fn has_task(&self) -> bool {
        self.slot.lock().task.is_some()
    }

    /// Takes back a task handed to a worker that exited without running it
    /// (runtime shutdown).
    pub(crate) fn take_task(&self) -> Option<Notified> {
        self.slot.lock().task.take()
    }

    /// Wakes the worker with `task` to run first.
    pub(crate) fn unpark_with(&self, task: Notified) {
        let mut slot = self.slot.lock();
        debug_assert!(slot.task.is_none(), "a parked worker holds one task");
        slot.unparked = true;
        slot.task = Some(task);
        drop(slot);
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
            assert!(
                !idle
                    .transition_worker_to_parked(w, false, None)
                    .last_searcher
            );
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
        let first = idle.transition_worker_to_parked(0, true, None);
        assert!(first.last_searcher && !first.last_unparked);
        let second = idle.transition_worker_to_parked(1, false, None);
        assert!(!second.last_searcher && second.last_unparked);
    }

    #[test]
    fn unpark_before_park_is_kept() {
        let p = Parker::default();
        p.unpark();
        let wakeup = p.park();
        assert!(wakeup.task.is_none());
        assert!(!p.park_timeout(std::time::Duration::from_millis(1)));
    }
}
