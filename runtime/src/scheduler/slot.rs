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
//! # Two words: the poll sequence and the claim
//!
//! A poll is the common path, a retake happens after a worker sat in one
//! poll for 10 ms. So the owner's side of the hand-shake is plain loads and
//! stores, and the monitor's side pays for both.
//!
//! `poll` counts the owner's polls and has one writer, the owner: odd
//! while one runs, even between. `begin_poll` stores `+1`, `end_poll`
//! stores `+1` again. It grows for as long as the slot has owners (a new
//! owner goes on from where the last one left it), so a monitor that
//! observed poll `s` cannot retake a later poll by mistake.
//!
//! `claim` is the monitor's, and says what it is doing to the slot:
//!
//! | value | meaning | who stores it |
//! |---|---|---|
//! | `NONE` | nothing | the monitor, withdrawing; the owner giving the slot back as a spare |
//! | `s` (odd) | the monitor is taking poll `s` and has not decided yet | the monitor |
//! | `RETAKEN` | the monitor took the slot's work; the owner leaves when its poll returns | the monitor |
//!
//! # Why exactly one side gets the work
//!
//! The monitor saw the owner inside poll `s` for too long. It stores the
//! claim `s`, then looks at `poll` again; the owner, ending poll `s`,
//! stores `s + 1`, then looks at `claim`:
//!
//! ```text
//! owner (end_poll)            monitor (retake)
//! poll = s + 1                claim = s
//! ---- light barrier ----     ---- heavy barrier ----
//! read claim                  read poll: still s? RETAKEN : NONE
//! ```
//!
//! This is Dekker's pattern: with a full barrier between each side's store
//! and its load, at least one side sees the other's store.
//!
//! * The monitor reads `s`: the owner's store was not visible, so the
//!   owner's read must see the claim. The monitor decides `RETAKEN`; the
//!   owner, seeing the claim `s`, waits for that verdict and leaves.
//! * The monitor reads `s + 1` (or more): the poll ended, it decides
//!   `NONE` and hands nothing off. The owner may or may not have seen the
//!   claim; if it did, it waited for the verdict, which says it keeps the
//!   slot.
//!
//! A claim for an older poll `t < s` is always withdrawn (the owner ended
//! poll `t` without seeing it, so the monitor sees `poll != t`): the owner
//! goes on without waiting. The owner waits only when a retake meets the
//! very nanoseconds in which a 10 ms poll ends, and then for the monitor's
//! next few instructions.
//!
//! The barrier is asymmetric, as in Linux's `membarrier(2)` and folly's
//! `asymmetricHeavyBarrier`: the owner's "light" half is a compiler fence
//! only, and the monitor's "heavy" half is
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which runs a full memory
//! barrier on every thread of the process that is running at that moment
//! (a thread that is not running passed through one when it was switched
//! out). So the owner's store and load are ordered as if it had a fence of
//! its own, and a poll costs two plain stores and a load: no locked
//! instruction. Where `membarrier` is refused (a kernel before 4.14, a
//! seccomp filter), both halves are `fence(SeqCst)`, decided once before
//! the first worker starts. Under loom both halves are `fence(SeqCst)`,
//! which is what the asymmetric pair stands for.
//!
//! # The LIFO slot
//!
//! The task to run next is kept in an atomic pointer rather than in the
//! owner's private state, so that a task woken just before its worker got
//! stuck (a message sent, then a blocking call) can be taken by the
//! monitor. Both sides take it with a swap, so it is run exactly once.
//! Only the owner pushes, so a push into an empty slot is a plain store (a
//! racing swap finds either nothing or the new task); a push that
//! displaces a task is a swap, since the monitor may be taking that one.
//!
//! A task that the owner queues *inside* a poll (the LIFO slot or the
//! local queue) may meet a monitor that is retaking that very poll and has
//! already emptied the queues: it would wait there until the stuck poll
//! returns. So the owner pushes first, then looks at `claim` through the
//! same light barrier ([`Slot::claimed_after_push`]); the same argument
//! says that either the monitor's emptying sees the push, or the owner sees
//! the claim and hands what it queued to the injector itself.
//!
//! # Models
//!
//! `scheduler/loom_tests.rs` runs both hand-shakes under loom, over every
//! interleaving and every value a relaxed load may return: the end of a
//! poll against a retake (exactly one side keeps the work, the LIFO task
//! is taken once, a later poll is never retaken by an old observation),
//! and a task queued inside a poll being retaken (never left in the
//! retaken slot). Seeded bugs show the models bite: without the owner's
//! half of the barrier both sides keep the slot, and a look before the
//! push (the first `schedule_local`) leaves the task behind.

use std::ptr::{self, NonNull};

use crossbeam_deque::{Stealer, Worker};

use super::idle::Parker;
use crate::loom::{AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::task::Notified;

/// `claim`: the monitor is not taking the slot.
const NONE: u64 = 0;
/// `claim`: the monitor took the slot's work.
const RETAKEN: u64 = u64::MAX;

/// A slot's fields, grouped by who writes them, each group on cache lines
/// of its own (slots sit side by side in one array): the owner's every
/// poll writes `poll` and `current`, and must not pass a line back and forth
/// with a neighbouring slot's owner, nor with threads that wake this
/// slot's parker.
#[repr(align(128))]
pub(crate) struct Slot {
    /// Written by the owner on every poll; read by the monitor.
    hot: Hot,
    /// Written seldom (a retake, a new owner); read by the owner on every
    /// poll and by stealers.
    pub(crate) stealer: Stealer<Notified>,
    /// The monitor's claim on the slot (see the module docs).
    claim: AtomicU64,
    /// The worker (by number, for its metrics) whose thread owns the slot.
    worker: AtomicUsize,
    /// The local queue of a spare slot, which no thread owns.
    spare: Mutex<Option<Worker<Notified>>>,
    /// Written by whoever wakes the owner.
    pub(crate) parker: Padded<Parker>,
}

/// The owner's side of a slot.
#[repr(align(128))]
struct Hot {
    /// The owner's poll sequence; the owner is its only writer.
    poll: AtomicU64,
    /// The task the owner polls now (its header's address), for the task
    /// dump; stale between polls.
    current: AtomicUsize,
    lifo: Lifo,
}

/// A value on cache lines of its own.
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl Slot {
    /// A slot whose local queue is `local`'s; `spare` if no thread is to
    /// own it yet (the queue is then kept here until one does).
    pub(crate) fn new(local: &Worker<Notified>) -> Slot {
        barrier::init();
        Slot {
            hot: Hot {
                poll: AtomicU64::new(0),
                current: AtomicUsize::new(0),
                lifo: Lifo::new(),
            },
            stealer: local.stealer(),
            claim: AtomicU64::new(NONE),
            worker: AtomicUsize::new(usize::MAX),
            spare: Mutex::new(None),
            parker: Padded::default(),
        }
    }

    /// A thread takes the slot for worker `worker`.
    pub(crate) fn set_worker(&self, worker: usize) {
        // Relaxed: read by the monitor after it saw a poll on this slot,
        // which the owner began after this store (Release in `begin_poll`).
        self.worker.store(worker, Ordering::Relaxed);
    }

    /// The worker whose thread owns the slot.
    pub(crate) fn worker(&self) -> usize {
        self.worker.load(Ordering::Relaxed)
    }

    /// The task being polled, if the owner is inside a poll: its header's
    /// address.
    pub(crate) fn polling_task(&self) -> Option<usize> {
        // Relaxed: a diagnostic; `is_polling`'s Acquire orders it after the
        // `begin_poll` that stored it.
        self.is_polling()
            .then(|| self.hot.current.load(Ordering::Relaxed))
    }

    /// Keeps `local` as a spare slot's queue. The caller owns the slot: its
    /// thread leaving, or the monitor giving back a slot it took as spare.
    pub(crate) fn make_spare(&self, local: Worker<Notified>) {
        // Relaxed: published by the mutex below to the next owner. The
        // monitor no longer touches `claim` of a retaken slot, and has
        // none on a spare one, so the caller is its only writer here.
        self.claim.store(NONE, Ordering::Relaxed);
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
        self.hot.current.store(task, Ordering::Relaxed);
        // Relaxed load: the owner is the only writer. Release store: a
        // monitor that sees the odd value sees the LIFO pushes and the
        // `worker` made before it.
        let s = self.hot.poll.load(Ordering::Relaxed);
        debug_assert!(s % 2 == 0, "a poll inside a poll");
        self.hot.poll.store(s.wrapping_add(1), Ordering::Release);
    }

    /// The owner's poll returned. `false` if the monitor retook the slot
    /// meanwhile: the owner must leave it.
    #[inline]
    #[must_use = "`false` means the slot was retaken: the owner must leave it"]
    pub(crate) fn end_poll(&self) -> bool {
        let s = self.hot.poll.load(Ordering::Relaxed);
        // Release: pairs with the monitor's Acquire look at `poll`.
        self.hot.poll.store(s.wrapping_add(1), Ordering::Release);
        // The owner's half of the Dekker pair (see the module docs).
        barrier::light();
        // Relaxed: ordered by the barrier; a claim found is re-read with
        // Acquire below.
        if self.claim.load(Ordering::Relaxed) == NONE {
            return true;
        }
        self.end_poll_claimed(s)
    }

    /// `end_poll` found a claim: waits for the monitor's verdict if the
    /// claim is on the poll that just ended.
    #[cold]
    fn end_poll_claimed(&self, ended: u64) -> bool {
        let mut spins = 0u32;
        loop {
            // Acquire: pairs with the verdict's Release store, so that the
            // monitor's moves (the queue stolen, the LIFO taken) are seen.
            match self.claim.load(Ordering::Acquire) {
                RETAKEN => return false,
                // Undecided on the poll that just ended: the monitor is
                // between its two stores, a few instructions apart.
                c if c == ended => wait_a_little(&mut spins),
                // Withdrawn, or a claim on an older poll (always withdrawn).
                _ => return true,
            }
        }
    }

    /// `end_poll` without the owner's half of the barrier: its look at
    /// `claim` may be served before its store is seen. Kept for the model
    /// test that shows the model catches it (both sides keep the slot).
    #[cfg(all(test, loom))]
    pub(crate) fn end_poll_without_barrier_for_test(&self) -> bool {
        let s = self.hot.poll.load(Ordering::Relaxed);
        self.hot.poll.store(s.wrapping_add(1), Ordering::Release);
        if self.claim.load(Ordering::Relaxed) == NONE {
            return true;
        }
        self.end_poll_claimed(s)
    }

    /// The poll the owner is inside, if any: its sequence number, for
    /// the monitor to see whether it changes.
    pub(crate) fn current_poll(&self) -> Option<u64> {
        // Acquire: pairs with `begin_poll`.
        let s = self.hot.poll.load(Ordering::Acquire);
        (s % 2 == 1 && !self.is_retaken()).then_some(s)
    }

    /// `true` while a thread runs a poll on this slot: its owner, or a
    /// thread handed off from it that has not left yet.
    pub(crate) fn is_polling(&self) -> bool {
        // Acquire: pairs with `begin_poll`.
        self.hot.poll.load(Ordering::Acquire) % 2 == 1 || self.is_retaken()
    }

    /// `true` once the monitor retook the slot, until the thread it took
    /// it from leaves.
    #[inline]
    pub(crate) fn is_retaken(&self) -> bool {
        // Acquire: pairs with the verdict's Release store.
        self.claim.load(Ordering::Acquire) == RETAKEN
    }

    /// The owner, inside a poll, has just queued tasks (the LIFO slot, the
    /// local queue): `true` if the monitor may be taking the slot's work
    /// (a claim or a retake), in which case the caller takes back what it
    /// can and hands it to the injector. Otherwise the monitor, if it
    /// retakes this poll later, sees what was queued (see the module docs).
    #[inline]
    pub(crate) fn claimed_after_push(&self) -> bool {
        barrier::light();
        // Relaxed: ordered by the barrier.
        self.claim.load(Ordering::Relaxed) != NONE
    }

    /// The monitor takes the slot from an owner stuck in poll `seen`.
    /// `false` if that poll has ended meanwhile. Only the monitor calls it,
    /// under its lock, one slot at a time.
    #[must_use = "`true` means the monitor now owns the slot's work"]
    pub(crate) fn retake(&self, seen: u64) -> bool {
        debug_assert!(seen % 2 == 1);
        // Relaxed: ordered by the barrier.
        self.claim.store(seen, Ordering::Relaxed);
        // The monitor's half of the Dekker pair (see the module docs).
        if !barrier::heavy() {
            // No barrier, no decision: withdraw (an owner waiting on the
            // verdict keeps the slot).
            self.claim.store(NONE, Ordering::Release);
            return false;
        }
        // Acquire: pairs with `end_poll`'s Release store.
        let won = self.hot.poll.load(Ordering::Acquire) == seen;
        // Release: an owner waiting on the verdict sees it, and what the
        // monitor did before.
        self.claim
            .store(if won { RETAKEN } else { NONE }, Ordering::Release);
        won
    }

    /// Puts `task` in the LIFO slot; returns the task it displaced. Only
    /// the owner calls it.
    #[inline]
    pub(crate) fn push_lifo(&self, task: Notified) -> Option<Notified> {
        if self.hot.lifo.is_some() {
            self.hot.lifo.swap(Some(task))
        } else {
            self.hot.lifo.put(task);
            None
        }
    }

    /// Takes the LIFO slot's task.
    #[inline]
    pub(crate) fn take_lifo(&self) -> Option<Notified> {
        // Most looks find it empty: a load, not a swap, says so.
        if !self.hot.lifo.is_some() {
            return None;
        }
        self.hot.lifo.swap(None)
    }

    #[inline]
    pub(crate) fn has_lifo(&self) -> bool {
        self.hot.lifo.is_some()
    }
}

/// Spins, then yields, while the monitor finishes a retake.
fn wait_a_little(spins: &mut u32) {
    *spins += 1;
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        // The monitor's thread may have been switched out between its
        // two stores.
        std::thread::yield_now();
    }
}

/// The asymmetric barrier of the hand-shake: [`light`] on the owner's
/// every poll, [`heavy`] on the monitor's rare retake.
mod barrier {
    /// `membarrier(2)` commands (`linux/membarrier.h`).
    #[cfg(not(loom))]
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    #[cfg(not(loom))]
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    /// Whether the heavy half is `membarrier`: decided once, before the
    /// first slot exists, so before any worker starts (a thread's start
    /// orders this store before everything it reads).
    #[cfg(not(loom))]
    static EXPEDITED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    #[cfg(not(loom))]
    static INIT: std::sync::Once = std::sync::Once::new();

    /// Registers the process for expedited private barriers, once.
    pub(super) fn init() {
        #[cfg(not(loom))]
        INIT.call_once(|| {
            let registered = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
            // Relaxed: published by `call_once` and by the thread starts
            // that follow it.
            EXPEDITED.store(registered, std::sync::atomic::Ordering::Relaxed);
        });
    }

    #[cfg(not(loom))]
    fn expedited() -> bool {
        // Relaxed: stored once before any reader existed (see `EXPEDITED`).
        EXPEDITED.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[cfg(not(loom))]
    fn membarrier(cmd: libc::c_int) -> bool {
        // SAFETY: `membarrier` takes two integers and touches no memory of
        // ours; an unknown command or a refusal is an error return.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) == 0 }
    }

    /// The owner's half: keeps the compiler from moving the owner's load
    /// above its store; the heavy half orders them in the processor.
    #[inline(always)]
    pub(super) fn light() {
        #[cfg(not(loom))]
        if expedited() {
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        } else {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        }
        #[cfg(loom)]
        loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
    }

    /// The monitor's half: a full barrier on every running thread of the
    /// process, this one included. `false` if the kernel refused it (it
    /// cannot once the process registered, but nothing on the netpoll
    /// thread may panic): the caller then decides nothing.
    #[must_use]
    pub(super) fn heavy() -> bool {
        #[cfg(not(loom))]
        {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            let ok = !expedited() || membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            ok
        }
        #[cfg(loom)]
        {
            loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
            true
        }
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

    /// Puts `task` in the empty slot with a plain store. Only the owner,
    /// the slot's one pusher, may: it saw the slot empty, and nobody else
    /// makes it non-empty, so the store replaces nothing. A taker's swap
    /// racing with it finds either nothing or `task`, never both.
    #[inline]
    fn put(&self, task: Notified) {
        // Release: pairs with the taker's swap (AcqRel), so the task's
        // state written before the push is visible to whoever takes it.
        self.0.store(task.into_ptr().as_ptr(), Ordering::Release);
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
