//! The task state word.
//!
//! One `AtomicUsize` decides every transition of a task. The low bits are
//! flags, the rest is a reference count:
//!
//! | bit | name | set when | cleared when |
//! |---|---|---|---|
//! | 0 | `RUNNING` | a thread takes the task to poll (or cancel) it | the poll returns |
//! | 1 | `COMPLETE` | the output (or the cancellation) is stored | never |
//! | 2 | `NOTIFIED` | a wake-up is pending: a `Notified` is queued, or will be queued when the running poll returns | a worker takes the task to run it |
//! | 3 | `CANCELLED` | `abort()` or runtime shutdown asked the task to stop | never |
//! | 4 | `JOIN_INTEREST` | at spawn: a `JoinHandle` exists | the `JoinHandle` is dropped |
//! | 5 | `JOIN_WAKER` | the `JoinHandle` stored a waker the task side may read | the `JoinHandle` replaces its waker (only before `COMPLETE`) |
//!
//! `RUNNING` and `COMPLETE` are never set together. While `RUNNING` is set,
//! the thread that set it owns the future exclusively. After `COMPLETE` the
//! output belongs to whoever the `JOIN_INTEREST` bit names at that instant:
//! the `JoinHandle` if it was set, the task side otherwise.
//!
//! References are held by: the `JoinHandle`, each `Waker`, the queued
//! `Notified` (at most one, guarded by `NOTIFIED`), and the runtime's list of
//! owned tasks. The allocation is freed when the count reaches zero.

use crate::loom::{AtomicUsize, Ordering};

const RUNNING: usize = 1 << 0;
const COMPLETE: usize = 1 << 1;
const NOTIFIED: usize = 1 << 2;
const CANCELLED: usize = 1 << 3;
const JOIN_INTEREST: usize = 1 << 4;
const JOIN_WAKER: usize = 1 << 5;
const LIFECYCLE: usize = RUNNING | COMPLETE;
const REF_SHIFT: usize = 6;
const REF_ONE: usize = 1 << REF_SHIFT;

/// Three references at spawn: the owned-task list's, the first `Notified`,
/// and the `JoinHandle`.
const INITIAL: usize = (3 * REF_ONE) | JOIN_INTEREST | NOTIFIED;

pub(crate) struct State(AtomicUsize);

/// A copy of the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

impl Snapshot {
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(crate) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    pub(crate) fn is_join_waker_set(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    pub(crate) fn ref_count(self) -> usize {
        self.0 >> REF_SHIFT
    }
    fn is_idle(self) -> bool {
        self.0 & LIFECYCLE == 0
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("notified", &self.is_notified())
            .field("cancelled", &self.is_cancelled())
            .field("join_interest", &self.is_join_interested())
            .field("join_waker", &self.is_join_waker_set())
            .field("refs", &self.ref_count())
            .finish()
    }
}

/// What a worker does with a task it took from a queue.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToRunning {
    /// Poll the future.
    Success,
    /// Cancellation was requested: drop the future instead of polling it.
    Cancelled,
    /// The task is already running or complete: drop the `Notified` reference.
    Failed,
}

/// What the poller does after a poll returned `Pending`.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToIdle {
    /// Nothing woke the task during the poll: drop the `Notified` reference.
    Ok,
    /// A wake-up arrived during the poll: queue the task again, reusing the
    /// `Notified` reference.
    OkNotified,
    /// `abort()` arrived during the poll: cancel the task now.
    Cancelled,
}

/// What a waker does.
#[must_use]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToNotified {
    /// Nothing: the task is queued, running, or complete.
    DoNothing,
    /// Queue the task (a reference was added for the `Notified`).
    Submit,
    /// `wake()` by value only: that was the last reference; free the task.
    Dealloc,
}

impl State {
    pub(crate) fn new() -> State {
        State(AtomicUsize::new(INITIAL))
    }

    pub(crate) fn load(&self) -> Snapshot {
        // Acquire: pairs with the AcqRel of every transition, so whatever the
        // transition published (e.g. the output before `COMPLETE`) is visible.
        Snapshot(self.0.load(Ordering::Acquire))
    }

    /// Applies `f` with a CAS loop; `f` returns the new word and a result,
    /// or `None` to leave the word as it is.
    fn fetch_update<R>(&self, mut f: impl FnMut(Snapshot) -> (Option<Snapshot>, R)) -> R {
        let mut curr = self.load();
        loop {
            let (next, res) = f(curr);
            let Some(next) = next else { return res };
            // AcqRel: every transition both publishes the writes made under
            // the old state (the future, the output, the join waker) and
            // acquires those of the previous transition.
            match self
                .0
                .compare_exchange_weak(curr.0, next.0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return res,
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }

    /// Called with the `Notified` reference in hand, before polling.
    pub(crate) fn transition_to_running(&self) -> TransitionToRunning {
        self.fetch_update(|s| {
            debug_assert!(s.is_notified());
            if !s.is_idle() {
                // Already running or complete; the caller drops its reference.
                let next = Snapshot(s.0 & !NOTIFIED);
                return (Some(next), TransitionToRunning::Failed);
            }
            let next = Snapshot((s.0 & !NOTIFIED) | RUNNING);
            let res = if s.is_cancelled() {
                TransitionToRunning::Cancelled
            } else {
                TransitionToRunning::Success
            };
            (Some(next), res)
        })
    }

    /// Called after a poll returned `Pending`.
    pub(crate) fn transition_to_idle(&self) -> TransitionToIdle {
        self.fetch_update(|s| {
            debug_assert!(s.is_running());
            if s.is_cancelled() {
                // Keep RUNNING: the caller still owns the future and cancels it.
                return (None, TransitionToIdle::Cancelled);
            }
            let next = Snapshot(s.0 & !RUNNING);
            if s.is_notified() {
                // The `Notified` reference in hand is reused for the re-queue.
                (Some(next), TransitionToIdle::OkNotified)
            } else {
                (Some(next), TransitionToIdle::Ok)
            }
        })
    }

    /// Marks the task complete. Returns the word as it was before.
    pub(crate) fn transition_to_complete(&self) -> Snapshot {
        // AcqRel: publishes the stored output to the JoinHandle (which loads
        // with Acquire) and acquires the join waker it wrote before setting
        // `JOIN_WAKER`.
        let prev = Snapshot(self.0.fetch_xor(RUNNING | COMPLETE, Ordering::AcqRel));
        debug_assert!(prev.is_running() && !prev.is_complete());
        prev
    }

    /// A waker that keeps its own reference (`wake_by_ref`).
    pub(crate) fn transition_to_notified_by_ref(&self) -> TransitionToNotified {
        self.fetch_update(|s| {
            if s.is_complete() {
                (None, TransitionToNotified::DoNothing)
            } else if s.is_notified() {
                // Already queued: still write the word (unchanged), so that
                // what the waker published before waking is released to the
                // poll that takes the task. A plain load would let the poll
                // miss it (store buffering) and the wake-up be lost. Found
                // by the loom model `loom_wake_by_ref_publishes_to_queued_poll`.
                (Some(s), TransitionToNotified::DoNothing)
            } else if s.is_running() {
                // The poller re-queues the task when its poll returns.
                (
                    Some(Snapshot(s.0 | NOTIFIED)),
                    TransitionToNotified::DoNothing,
                )
            } else {
                let next = Snapshot((s.0 | NOTIFIED) + REF_ONE);
                (Some(next), TransitionToNotified::Submit)
            }
        })
    }

    /// A waker that gives up its reference (`wake`).
    pub(crate) fn transition_to_notified_by_val(&self) -> TransitionToNotified {
        self.fetch_update(|s| {
            if s.is_complete() || s.is_notified() || s.is_running() {
                let mut next = s.0 - REF_ONE;
                if s.is_running() {
                    next |= NOTIFIED;
                }
                let res = if next >> REF_SHIFT == 0 {
                    TransitionToNotified::Dealloc
                } else {
                    TransitionToNotified::DoNothing
                };
                (Some(Snapshot(next)), res)
            } else {
                // The waker's reference becomes the `Notified` reference.
                (Some(Snapshot(s.0 | NOTIFIED)), TransitionToNotified::Submit)
            }
        })
    }

    /// `abort()`: asks the task to stop and makes sure a worker sees it.
    pub(crate) fn transition_to_notified_and_cancel(&self) -> TransitionToNotified {
        self.fetch_update(|s| {
            if s.is_complete() || s.is_cancelled() {
                (None, TransitionToNotified::DoNothing)
            } else if s.is_running() || s.is_notified() {
                // Whoever runs it next (or is running it) sees CANCELLED.
                let next = Snapshot(s.0 | CANCELLED | NOTIFIED);
                (Some(next), TransitionToNotified::DoNothing)
            } else {
                let next = Snapshot((s.0 | CANCELLED | NOTIFIED) + REF_ONE);
                (Some(next), TransitionToNotified::Submit)
            }
        })
    }

    /// Runtime shutdown: sets `CANCELLED`, and returns `true` if the caller
    /// took `RUNNING` and so must cancel the task itself.
    #[must_use = "`true` means the caller owns the future and must cancel it"]
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        self.fetch_update(|s| {
            if s.is_idle() {
                (Some(Snapshot(s.0 | CANCELLED | RUNNING)), true)
            } else {
                (Some(Snapshot(s.0 | CANCELLED)), false)
            }
        })
    }

    /// Fast path of dropping a `JoinHandle` of a task that never ran.
    /// Returns `true` if it gave up the handle's interest and reference.
    #[must_use = "`false` means the slow path must drop the handle"]
    pub(crate) fn drop_join_handle_fast(&self) -> bool {
        self.0
            .compare_exchange(
                INITIAL,
                (INITIAL - REF_ONE) & !JOIN_INTEREST,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Clears `JOIN_INTEREST`. Fails (returns the word) if the task is
    /// already complete: the output is then the caller's to drop.
    pub(crate) fn unset_join_interested(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|s| {
            debug_assert!(s.is_join_interested());
            if s.is_complete() {
                return (None, Err(s));
            }
            let next = Snapshot(s.0 & !(JOIN_INTEREST | JOIN_WAKER));
            (Some(next), Ok(next))
        })
    }

    /// Publishes the join waker. Fails if the task completed meanwhile.
    pub(crate) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|s| {
            debug_assert!(s.is_join_interested() && !s.is_join_waker_set());
            if s.is_complete() {
                return (None, Err(s));
            }
            let next = Snapshot(s.0 | JOIN_WAKER);
            (Some(next), Ok(next))
        })
    }

    /// Takes back the join waker so it can be replaced. Fails if the task
    /// completed meanwhile (the task side may be reading it).
    pub(crate) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.fetch_update(|s| {
            debug_assert!(s.is_join_interested() && s.is_join_waker_set());
            if s.is_complete() {
                return (None, Err(s));
            }
            let next = Snapshot(s.0 & !JOIN_WAKER);
            (Some(next), Ok(next))
        })
    }

    pub(crate) fn ref_inc(&self) {
        // Relaxed: a new reference is made from an existing one, which
        // already keeps the task alive (as in `Arc::clone`).
        let prev = self.0.fetch_add(REF_ONE, Ordering::Relaxed);
        if prev > isize::MAX as usize {
            std::process::abort();
        }
    }

    /// Drops one reference; returns `true` if it was the last.
    #[must_use = "`true` means the caller must free the task"]
    pub(crate) fn ref_dec(&self) -> bool {
        self.ref_dec_n(1)
    }

    /// Drops `n` references; returns `true` if they were the last.
    #[must_use = "`true` means the caller must free the task"]
    pub(crate) fn ref_dec_n(&self, n: usize) -> bool {
        // AcqRel: the last owner must see every other owner's writes before
        // it frees the task (as in `Arc::drop`).
        let prev = Snapshot(self.0.fetch_sub(n * REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= n, "task ref count underflow");
        prev.ref_count() == n
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spawn_poll_complete_lifecycle() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert!(s.load().is_running());
        // A wake-up while running is remembered, not submitted.
        assert_eq!(
            s.transition_to_notified_by_ref(),
            TransitionToNotified::DoNothing
        );
        assert_eq!(s.transition_to_idle(), TransitionToIdle::OkNotified);
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        let prev = s.transition_to_complete();
        assert!(prev.is_join_interested());
        assert!(s.load().is_complete());
        // Wake after completion does nothing.
        assert_eq!(
            s.transition_to_notified_by_ref(),
            TransitionToNotified::DoNothing
        );
    }

    #[test]
    fn abort_idle_task_submits_once() {
        let s = State::new();
        assert_eq!(s.transition_to_running(), TransitionToRunning::Success);
        assert_eq!(s.transition_to_idle(), TransitionToIdle::Ok);
        assert_eq!(
            s.transition_to_notified_and_cancel(),
            TransitionToNotified::Submit
        );
        assert_eq!(
            s.transition_to_notified_and_cancel(),
            TransitionToNotified::DoNothing
        );
        assert_eq!(s.transition_to_running(), TransitionToRunning::Cancelled);
    }

    #[test]
    fn join_handle_fast_drop() {
        let s = State::new();
        assert!(s.drop_join_handle_fast());
        assert!(!s.load().is_join_interested());
        assert_eq!(s.load().ref_count(), 2);
    }
}
