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
//! The monitor only reads the sequence (a plain load, each tick) to see
//! whether a poll has lasted too long. Who then owns the slot's work is
//! decided by the owner's CAS at the end of the poll and the monitor's CAS
//! together: exactly one of them succeeds for a given poll. If the monitor
//! wins, the owner learns it from its failed CAS, hands whatever it still
//! holds to the injector, gives the slot back as a spare, and exits. The
//! sequence grows while one thread owns the slot, so a monitor that
//! observed poll `s` cannot retake a later poll by mistake; it starts again
//! from 0 when the slot is given back as a spare, and the monitor forgets
//! what it saw of a slot it hands off.
//!
//! ## Why the owner pays a CAS
//!
//! The owner's side could be plain stores: an asymmetric Dekker pair, the
//! owner's store and load split by a compiler fence and the monitor's by
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which runs a barrier on
//! every CPU that runs one of the process's threads. It was built, modelled
//! and measured: it takes the locked instruction out of every poll. But
//! the monitor runs on the netpoll thread, and `membarrier` waits until
//! each of those CPUs has answered an interrupt: on a shared 2-vCPU machine
//! whose virtual CPUs the host deschedules, a call took 36 µs at the median
//! and 64 ms at the 99th percentile, time in which no descriptor and no
//! timer is served. A locked instruction per poll (some 20 cycles, on a
//! line only the owner writes) is the price of a netpoll thread that never
//! waits on other CPUs. (Moving the barrier to the replacement thread the
//! monitor starts anyway would have both.)
//!
//! # The LIFO slot
//!
//! The task to run next is kept in an atomic pointer rather than in the
//! owner's private state, so that a task woken just before its worker got
//! stuck (a message sent, then a blocking call) can be taken by the
//! monitor. The monitor takes it with a swap, and so does an owner that
//! leaves a retaken slot, so it is run exactly once. Between two of its
//! polls the owner takes it with a load and a store instead
//! ([`Slot::take_lifo_between_polls`]): the sequence is even then, so no
//! retake, and no take by the monitor, can happen meanwhile.
//!
//! A task that the owner queues *inside* a poll (woken by the task being
//! polled) may meet a monitor that is retaking that very poll and has
//! already emptied the queues: it would wait there until the stuck poll
//! returns. So the owner pushes first, with a swap, and then looks at the
//! sequence ([`Slot::retaken_after_push`]). Both looks are `SeqCst`, as are
//! the monitor's CAS and its take: in their single order, either the
//! owner's look comes after the retake and sees `RETAKEN` (it takes back
//! what it can and hands it to the injector), or its push comes before the
//! monitor's take, which then finds the task.
//!
//! # Models
//!
//! `scheduler/loom_tests.rs` runs both hand-shakes under loom, over every
//! interleaving: the end of a poll against a retake (exactly one side
//! keeps the work, the LIFO task is taken once, a later poll is never
//! retaken by an old observation), and a task queued inside a poll being
//! retaken (never left in the retaken slot); loom treats `SeqCst`
//! accesses as acquire/release, so a fence under `cfg(loom)` stands for
//! their single order. Seeded bugs show the models bite: an end of poll that CASes from whatever it reads keeps a retaken
//! slot, and a look before the push (the first `schedule_local`) leaves
//! the task behind.

use std::ptr::{self, NonNull};

use crossbeam_deque::{Stealer, Worker};

use super::idle::Parker;
use crate::loom::{AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::task::Notified;

/// The poll sequence of a slot whose work the monitor took.
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
    /// Written seldom (a new owner); read by stealers.
    pub(crate) stealer: Stealer<Notified>,
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
    /// The poll sequence (see the module docs).
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
        Slot {
            hot: Hot {
                poll: AtomicU64::new(0),
                current: AtomicUsize::new(0),
                lifo: Lifo::new(),
            },
            stealer: local.stealer(),
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

    /// Keeps `local` as a spare slot's queue.
    pub(crate) fn make_spare(&self, local: Worker<Notified>) {
        // Relaxed: published by the mutex below.
        self.hot.poll.store(0, Ordering::Relaxed);
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
        // Only the owner writes while the value is even; Release: a monitor
        // that sees the odd value sees the LIFO pushes made before it.
        let s = self.hot.poll.load(Ordering::Relaxed);
        debug_assert!(s % 2 == 0, "a poll inside a poll");
        self.hot.poll.store(s + 1, Ordering::Release);
    }

    /// The owner's poll returned. `false` if the monitor retook the slot
    /// meanwhile: the owner must leave it.
    #[inline]
    #[must_use = "`false` means the slot was retaken: the owner must leave it"]
    pub(crate) fn end_poll(&self) -> bool {
        // The owner knows the value it stored; anything else is `RETAKEN`.
        let s = self.hot.poll.load(Ordering::Relaxed);
        if s == RETAKEN {
            // Acquire: pairs with `retake`'s CAS, so the monitor's moves
            // (the queue stolen, the LIFO taken) are visible.
            crate::loom::fence(Ordering::Acquire);
            return false;
        }
        // AcqRel: pairs with `retake`'s CAS, which this one beats or loses
        // to (a monitor that retakes between the load and here).
        self.hot
            .poll
            .compare_exchange(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The first version of `end_poll`: it CASes from whatever it reads,
    /// so after a retake it "succeeds" from `RETAKEN` and the owner stays
    /// on a slot the monitor gave away. Kept for the model test that
    /// shows the model catches it.
    #[cfg(all(test, loom))]
    pub(crate) fn end_poll_blind_for_test(&self) -> bool {
        let s = self.hot.poll.load(Ordering::Relaxed);
        self.hot
            .poll
            .compare_exchange(s, s.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The poll the owner is inside, if any: its sequence number, for
    /// the monitor to see whether it changes.
    pub(crate) fn current_poll(&self) -> Option<u64> {
        // Acquire: pairs with `begin_poll`.
        let s = self.hot.poll.load(Ordering::Acquire);
        (s % 2 == 1 && s != RETAKEN).then_some(s)
    }

    /// `true` while a thread runs a poll on this slot: its owner, or a
    /// thread handed off from it that has not left yet.
    pub(crate) fn is_polling(&self) -> bool {
        // Acquire: pairs with `begin_poll`.
        self.hot.poll.load(Ordering::Acquire) % 2 == 1
    }

    /// `true` once the monitor retook the slot (for the models).
    #[cfg(all(test, loom))]
    pub(crate) fn is_retaken(&self) -> bool {
        // Relaxed: the owner reads its own slot; a stale `false` only sends
        // one more task to the LIFO, which the owner hands on as it leaves.
        self.hot.poll.load(Ordering::Relaxed) == RETAKEN
    }

    /// The owner, inside a poll, has just pushed to the LIFO slot: `true`
    /// if the monitor retook the slot meanwhile, in which case the caller
    /// takes back what it can and hands it to the injector. Otherwise the
    /// monitor, if it retakes this poll later, finds what was pushed (see
    /// the module docs).
    #[inline]
    pub(crate) fn retaken_after_push(&self) -> bool {
        seq_cst_order_for_loom();
        // SeqCst: after the push's SeqCst swap, against `retake`'s SeqCst
        // CAS and the monitor's SeqCst take (see the module docs).
        self.hot.poll.load(Ordering::SeqCst) == RETAKEN
    }

    /// The monitor takes the slot from an owner stuck in poll `seen`.
    /// `false` if that poll has ended meanwhile.
    #[must_use = "`true` means the monitor now owns the slot's work"]
    pub(crate) fn retake(&self, seen: u64) -> bool {
        debug_assert!(seen % 2 == 1);
        // SeqCst: pairs with `end_poll` (AcqRel would do) and orders the
        // take that follows against the owner's push and look (see
        // `retaken_after_push`).
        let won = self
            .hot
            .poll
            .compare_exchange(seen, RETAKEN, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        seq_cst_order_for_loom();
        won
    }

    /// Puts `task` in the LIFO slot; returns the task it displaced.
    #[inline]
    pub(crate) fn push_lifo(&self, task: Notified) -> Option<Notified> {
        self.hot.lifo.swap(Some(task))
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

    /// Takes the LIFO slot's task, on the owner's thread between two of
    /// its polls: with a load and a store rather than a swap (a locked
    /// instruction on every task run). Between polls the sequence is even,
    /// so the monitor cannot retake the slot and take the task meanwhile;
    /// a retake of the next poll sees this store (it comes before that
    /// poll's `begin_poll`, which the monitor's CAS acquires). Nobody else
    /// takes from a slot whose owner runs (`drain_injector` leaves the
    /// slots to their owners, which drain them as they exit).
    #[inline]
    pub(crate) fn take_lifo_between_polls(&self) -> Option<Notified> {
        self.hot.lifo.take_owned()
    }

    #[inline]
    pub(crate) fn has_lifo(&self) -> bool {
        self.hot.lifo.is_some()
    }
}

/// Nothing, except under loom: a `SeqCst` fence. The push-then-look
/// argument rests on the single order of `SeqCst` operations (a swap and
/// a load on one side, a CAS and a load on the other: the store-buffering
/// outcome is forbidden), which loom does not model for accesses (it
/// treats them as acquire/release) but does for fences. A fence after each
/// side's store stands for that order in the model; the real code needs
/// none.
#[inline(always)]
fn seq_cst_order_for_loom() {
    #[cfg(loom)]
    crate::loom::fence(Ordering::SeqCst);
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
        // SeqCst: the task's state written before the push is visible to
        // whoever takes it (AcqRel would do), and the owner's push and the
        // monitor's take are ordered against the retake (see the module
        // docs).
        let old = self.0.swap(new, Ordering::SeqCst);
        // SAFETY: a non-null value here was put by `swap` from a
        // `Notified` whose reference it carries, and the swap just took
        // it out, so this is its only owner.
        NonNull::new(old).map(|p| unsafe { Notified::from_ptr(p) })
    }

    /// Takes the task without a read-modify-write: only for a caller that
    /// no other taker can race (see `Slot::take_lifo_between_polls`).
    #[inline]
    fn take_owned(&self) -> Option<Notified> {
        // Acquire: the task's state written before the push is visible.
        let old = NonNull::new(self.0.load(Ordering::Acquire))?;
        // Relaxed: no other thread takes meanwhile; the next `begin_poll`'s
        // Release store publishes the empty slot to a monitor that retakes
        // that poll.
        self.0.store(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: as in `swap`: the pointer came from a `Notified` pushed
        // here, and this thread is its only taker.
        Some(unsafe { Notified::from_ptr(old) })
    }

    #[inline]
    fn is_some(&self) -> bool {
        // SeqCst: the monitor's look after a retake must see a push that
        // came before the owner's look at the sequence (see the module
        // docs); on the owner's side, it sees its own pushes, and a task
        // the monitor took meanwhile makes the swap that follows find
        // nothing, which it reports.
        !self.0.load(Ordering::SeqCst).is_null()
    }
}

impl Drop for Lifo {
    fn drop(&mut self) {
        drop(self.swap(None));
    }
}
