//! A worker's slot: what of a worker other threads can reach, and who owns
//! it (Go's P, as opposed to the thread that runs it, Go's M).
//!
//! The runtime has `worker_threads` active slots, plus spare ones. A slot
//! is owned by one thread at a time. That thread alone pops its local
//! queue and runs its tasks; other threads steal from the queue
//! ([`Slot::stealer`]), wake a parked owner ([`Slot::parker`]), and, when
//! the owner is stuck inside one poll, the monitor takes the slot's work
//! away ([`Slot::retake`]) and gives a spare slot to a new thread, so
//! `worker_threads` threads keep running (see [`monitor`](super::monitor)).
//!
//! # The poll sequence
//!
//! `poll` counts the owner's polls: odd while one runs, even between.
//!
//! | value | meaning | who moves it |
//! |---|---|---|
//! | even | the owner is between polls | the owner: `begin_poll` stores `+1` |
//! | odd | the owner is inside a poll | the owner: `end_poll` CASes `+1`; the monitor: `retake` CASes to `RETAKEN` |
//! | `RETAKEN` | the monitor took the slot's work | nobody; the owner leaves when its poll returns |
//!
//! The owner's CAS at the end of a poll and the monitor's CAS decide
//! together: exactly one of them succeeds for a given poll. If the monitor
//! wins, the owner learns it from its failed CAS, hands whatever it still
//! holds to the injector, gives the slot back as a spare, and exits.
//! While one thread owns the slot the sequence only grows, so a monitor
//! that observed poll `s` cannot retake a later poll by mistake.
//! [`Slot::make_spare`] starts it again from zero for the next owner; the
//! monitor never compares the polls of two owners, since it forgets what
//! it saw of a slot when it retakes it, and sees no poll (`RETAKEN`, then
//! even) until a new owner starts one.
//!
//! # The LIFO slot
//!
//! The task to run next is kept in an atomic pointer rather than in the
//! owner's private state, so that a task woken just before its worker got
//! stuck (a message sent, then a blocking call) can be taken by the
//! monitor. Both sides take it with a swap, so it is run exactly once.

use std::ptr::{self, NonNull};

use crossbeam_deque::{Stealer, Worker};

use super::idle::Parker;
use crate::loom::{AtomicPtr, AtomicU64, Mutex, Ordering};
use crate::task::Notified;

/// The poll sequence of a slot whose work the monitor took.
const RETAKEN: u64 = u64::MAX;

pub(crate) struct Slot {
    pub(crate) stealer: Stealer<Notified>,
    pub(crate) parker: Parker,
    lifo: Lifo,
    poll: AtomicU64,
    /// The local queue of a spare slot, which no thread owns.
    spare: Mutex<Option<Worker<Notified>>>,
    /// The worker (by number, for its metrics) whose thread owns the slot.
    worker: std::sync::atomic::AtomicUsize,
    /// The task the owner polls now (its header's address), for the task
    /// dump; stale between polls.
    current: std::sync::atomic::AtomicUsize,
}

impl Slot {
    /// A slot whose local queue is `local`'s; `spare` if no thread is to
    /// own it yet (the queue is then kept here until one does).
    pub(crate) fn new(local: &Worker<Notified>) -> Slot {
        Slot {
            stealer: local.stealer(),
            parker: Parker::default(),
            lifo: Lifo::new(),
            poll: AtomicU64::new(0),
            spare: Mutex::new(None),
            worker: std::sync::atomic::AtomicUsize::new(usize::MAX),
            current: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// A thread takes the slot for worker `worker`.
    pub(crate) fn set_worker(&self, worker: usize) {
        // Relaxed: read by the monitor after it saw a poll on this slot,
        // which the owner began after this store (Release in `begin_poll`).
        self.worker
            .store(worker, std::sync::atomic::Ordering::Relaxed);
    }

    /// The worker whose thread owns the slot.
    pub(crate) fn worker(&self) -> usize {
        self.worker.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The task being polled, if the owner is inside a poll: its header's
    /// address.
    pub(crate) fn polling_task(&self) -> Option<usize> {
        self.is_polling()
            .then(|| self.current.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Keeps `local` as a spare slot's queue.
    pub(crate) fn make_spare(&self, local: Worker<Notified>) {
        // Relaxed: published by the mutex below.
        self.poll.store(0, Ordering::Relaxed);
        *self.spare.lock() = Some(local);
    }

    /// Takes a spare slot for a new owner, with its queue.
    pub(crate) fn take_spare(&self) -> Option<Worker<Notified>> {
        self.spare.lock().take()
    }

    /// The owner starts a poll of the task at `task` (its address).
    #[inline]
    pub(crate) fn begin_poll(&self, task: usize) {
        // Relaxed: published by the Release store below.
        self.current
            .store(task, std::sync::atomic::Ordering::Relaxed);
        // Only the owner writes while the value is even; Release: a monitor
        // that sees the odd value sees the LIFO pushes made before it.
        let s = self.poll.load(Ordering::Relaxed);
        debug_assert!(s % 2 == 0, "a poll inside a poll");
        self.poll.store(s + 1, Ordering::Release);
    }

    /// The owner's poll returned. `false` if the monitor retook the slot
    /// meanwhile: the owner must leave it.
    #[inline]
    #[must_use = "`false` means the slot was retaken: the owner must leave it"]
    pub(crate) fn end_poll(&self) -> bool {
        // The owner knows the value it stored; anything else is `RETAKEN`.
        let s = self.poll.load(Ordering::Relaxed);
        if s == RETAKEN {
            // Acquire: pairs with `retake`'s CAS, so the monitor's moves
            // (the queue stolen, the LIFO taken) are visible.
            crate::loom::fence(Ordering::Acquire);
            return false;
        }
        // AcqRel: pairs with `retake`'s CAS, which this one beats or loses
        // to (a monitor that retakes between the load and here).
        self.poll
            .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The first version of `end_poll`: it CASes from whatever it reads,
    /// so after a retake it "succeeds" from `RETAKEN` and the owner stays
    /// on a slot the monitor gave away. Kept for the model test that
    /// shows the model catches it.
    #[cfg(all(test, loom))]
    pub(crate) fn end_poll_blind_for_test(&self) -> bool {
        let s = self.poll.load(Ordering::Relaxed);
        self.poll
            .compare_exchange(s, s.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The poll the owner is inside, if any: its sequence number, for
    /// the monitor to see whether it changes.
    pub(crate) fn current_poll(&self) -> Option<u64> {
        // Acquire: pairs with `begin_poll`.
        let s = self.poll.load(Ordering::Acquire);
        (s % 2 == 1 && s != RETAKEN).then_some(s)
    }

    /// `true` while a thread runs a poll on this slot: its owner, or a
    /// thread handed off from it that has not left yet.
    pub(crate) fn is_polling(&self) -> bool {
        // Acquire: pairs with `begin_poll`.
        self.poll.load(Ordering::Acquire) % 2 == 1
    }

    /// `true` once the monitor retook the slot.
    #[inline]
    pub(crate) fn is_retaken(&self) -> bool {
        // Relaxed: the owner reads its own slot; a stale `false` only sends
        // one more task to the LIFO, which the owner hands on as it leaves.
        self.poll.load(Ordering::Relaxed) == RETAKEN
    }

    /// The monitor takes the slot from an owner stuck in poll `seen`.
    /// `false` if that poll has ended meanwhile.
    #[must_use = "`true` means the monitor now owns the slot's work"]
    pub(crate) fn retake(&self, seen: u64) -> bool {
        debug_assert!(seen % 2 == 1);
        // AcqRel: pairs with `end_poll`.
        self.poll
            .compare_exchange(seen, RETAKEN, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Puts `task` in the LIFO slot; returns the task it displaced.
    #[inline]
    pub(crate) fn push_lifo(&self, task: Notified) -> Option<Notified> {
        self.lifo.swap(Some(task))
    }

    /// Takes the LIFO slot's task.
    #[inline]
    pub(crate) fn take_lifo(&self) -> Option<Notified> {
        // Most looks find it empty: a load, not a swap, says so.
        if !self.lifo.is_some() {
            return None;
        }
        self.lifo.swap(None)
    }

    #[inline]
    pub(crate) fn has_lifo(&self) -> bool {
        self.lifo.is_some()
    }
}

/// One task, in an atomic pointer.
struct Lifo(AtomicPtr<()>);

impl Lifo {
    fn new() -> Lifo {
        Lifo(AtomicPtr::new(ptr::null_mut()))
    }

    #[inline]
    fn swap(&self, task: Option<Notified>) -> Option<Notified> {
        let new = task.map_or(ptr::null_mut(), |t| t.into_ptr().as_ptr());
        // AcqRel: the task's state written before the push is visible to
        // whoever takes it.
        let old = self.0.swap(new, Ordering::AcqRel);
        // SAFETY: a non-null value here was put by `swap` from a
        // `Notified` whose reference it carries, and the swap just took
        // it out, so this is its only owner.
        NonNull::new(old).map(|p| unsafe { Notified::from_ptr(p) })
    }

    #[inline]
    fn is_some(&self) -> bool {
        // Relaxed: the owner is the only thread that pushes, so it sees its
        // own pushes; a task the monitor took meanwhile makes the swap that
        // follows find nothing, which it reports.
        !self.0.load(Ordering::Relaxed).is_null()
    }
}

impl Drop for Lifo {
    fn drop(&mut self) {
        drop(self.swap(None));
    }
}
