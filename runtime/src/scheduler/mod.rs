//! The work-stealing scheduler.
//!
//! N workers, each with a local FIFO queue (`crossbeam_deque::Worker`) and a
//! one-task LIFO slot, share one global [`Injector`] and can steal half of
//! each other's queues:
//!
//! * A task woken *on a worker* (by another task running there) goes to that
//!   worker's LIFO slot, so a message sent to a task is handled next, while
//!   the data is hot in cache; the task it displaces goes to the back of the
//!   local queue. Landing in the LIFO slot wakes no other worker: other
//!   workers do not steal it, and the current worker runs it right after
//!   the current poll. At most [`MAX_LIFO_POLLS`] LIFO runs happen in a
//!   row, so two tasks passing a message back and forth cannot starve the
//!   queue.
//! * A task woken *from outside* (the netpoll thread, a `std::thread`, a
//!   blocking thread) is handed straight to one parked worker, or pushed to
//!   the injector when no worker needs waking (see [`idle`] and
//!   `Shared::hand_off`). A task *spawned* from outside goes to the
//!   injector, and wakes a worker only if none is searching
//!   (`Shared::inject`).
//! * A local queue past [`LOCAL_QUEUE_CAPACITY`] moves half of its tasks to
//!   the injector, where any worker can take them.
//! * Every [`GLOBAL_POLL_INTERVAL`] ticks a worker looks at the injector
//!   before its own queue, so remote work is never starved by local work.
//!
//! An idle worker first steals (half of a victim's queue,
//! `steal_batch_and_pop`), then parks on its own [`idle::Parker`]. Nothing
//! spins: an idle runtime's workers sleep in `futex`.
//!
//! A worker stuck inside one poll is handed off by the [`monitor`]: its
//! queued tasks move elsewhere and a new thread takes its place, on a
//! spare [`slot`].

pub(crate) mod idle;
mod inject;
#[cfg(all(test, loom))]
mod loom_tests;
pub(crate) mod metrics;
mod monitor;
mod slot;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::task::Waker;
use std::thread::JoinHandle as ThreadHandle;
use std::time::Instant;

use crossbeam_deque::Worker;

use crate::blocking::BlockingPool;
use crate::loom::{AtomicBool, Ordering};
use crate::netpoll::{InlineStep, Netpoller, PollHost};
use crate::task::{self, Header, JoinHandle, Notified, OwnedTasks, RawTask, Schedule};
use crate::time::virtual_time::Activity;

pub(crate) use inject::Inject;
#[cfg(test)]
pub(crate) use monitor::take_one;
pub(crate) use slot::Slot;
pub(crate) use worker::{is_worker, is_worker_of, leave_netpoll_thread, run_worker};

/// Starts a worker thread — worker `worker`, on slot `slot`, with the
/// slot's local queue (the runtime layer provides it: a thread must be
/// entered into its runtime). Gives the queue back if no thread could be
/// started.
pub(crate) type StartWorker =
    Box<dyn Fn(Start, Worker<Notified>) -> Result<(), Worker<Notified>> + Send + Sync>;

/// Which worker a new worker thread is, and on which slot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Start {
    pub(crate) slot: usize,
    pub(crate) worker: usize,
}

/// Check the injector first once every this many ticks (as Go and tokio do).
pub(crate) const GLOBAL_POLL_INTERVAL: u32 = 61;
/// LIFO-slot runs allowed in a row before the slot's task is queued instead.
pub(crate) const MAX_LIFO_POLLS: usize = 3;
/// A local queue longer than this sends half of itself to the injector.
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 256;

/// State shared by a runtime's workers, its netpoll thread and its handles.
pub(crate) struct Shared {
    pub(crate) injector: inject::Inject,
    /// `num_workers` active slots first, then as many spare ones.
    pub(crate) slots: Box<[Slot]>,
    pub(crate) idle: idle::Idle,
    pub(crate) owned: OwnedTasks,
    pub(crate) shutdown: AtomicBool,
    pub(crate) io: Arc<Netpoller>,
    pub(crate) blocking: BlockingPool,
    /// What the monitor saw of each slot at its last look.
    monitor: crate::loom::Mutex<monitor::Monitor>,
    /// Starts a worker on a spare slot.
    start_worker: StartWorker,
    /// Threads started on spare slots, joined at shutdown.
    pub(crate) extra_threads: parking_lot::Mutex<Vec<ThreadHandle<()>>>,
    /// Runnable work outside the workers: `block_on` futures woken or
    /// being polled, and blocking jobs (shared with the pool). The runtime
    /// is not idle while it is not zero.
    pub(crate) activity: Arc<Activity>,
    /// Each worker's counters, by worker (not slot: a worker handed off
    /// goes on counting in its own, on its new slot), then the netpoll
    /// thread's, for the tasks it polls itself (numbered `num_workers`).
    pub(crate) metrics: Box<[metrics::WorkerMetrics]>,
    /// Tasks spawned from threads that are not workers, except those the
    /// injector counts (`Inject::spawns`).
    pub(crate) remote_spawns: std::sync::atomic::AtomicU64,
    /// The slot the netpoll thread's last inline run took: where the next
    /// run looks for a spare first (a hint; any spare will do).
    inline_slot: std::sync::atomic::AtomicUsize,
    /// Workers handed off while stuck in a poll (the monitor is the one
    /// writer, under its lock, on whichever thread runs the netpoll loop).
    pub(crate) handoffs: crate::counter::Counter,
    /// Tests only: how many of the next worker-thread starts fail, as
    /// `EAGAIN` from `clone(2)` would.
    #[cfg(test)]
    pub(crate) fail_starts: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// A scheduler for `num_workers` workers, over `slots` (the active ones
    /// first, then the spare ones).
    pub(crate) fn new(
        slots: Box<[Slot]>,
        num_workers: usize,
        io: Arc<Netpoller>,
        blocking: BlockingPool,
        start_worker: StartWorker,
    ) -> Shared {
        Shared {
            injector: Inject::new(),
            monitor: crate::loom::Mutex::new(monitor::Monitor::new(slots.len())),
            slots,
            idle: idle::Idle::new(num_workers),
            owned: OwnedTasks::new(),
            shutdown: AtomicBool::new(false),
            io,
            activity: blocking.activity(),
            blocking,
            start_worker,
            extra_threads: parking_lot::Mutex::new(Vec::new()),
            // One more for the netpoll thread's inline polls.
            metrics: (0..=num_workers)
                .map(|_| metrics::WorkerMetrics::default())
                .collect(),
            remote_spawns: std::sync::atomic::AtomicU64::new(0),
            inline_slot: std::sync::atomic::AtomicUsize::new(0),
            handoffs: crate::counter::Counter::default(),
            #[cfg(test)]
            fail_starts: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Tasks spawned so far.
    pub(crate) fn spawned_tasks(&self) -> u64 {
        self.metrics.iter().map(|m| m.spawns.get()).sum::<u64>()
            + self
                .remote_spawns
                .load(std::sync::atomic::Ordering::Relaxed)
            + self.injector.spawns()
    }

    /// Number of worker threads running tasks (not counting spare slots).
    pub(crate) fn num_workers(&self) -> usize {
        self.idle.num_workers()
    }

    /// Spawns `future`, recording `spawned_at` as where (for the dump).
    pub(crate) fn spawn<F>(
        self: &Arc<Self>,
        future: F,
        spawned_at: &'static std::panic::Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (notified, owned_ref, join) = task::new_task(future, self.clone(), spawned_at);
        if let Err(owned_ref) = self.owned.bind(owned_ref) {
            // Shut down: the task is cancelled before it ever runs.
            notified.shutdown();
            owned_ref.drop_reference();
            return join;
        }
        // On a worker, queued there and counted as its spawn.
        let Err(task) = worker::schedule_spawned(self, notified) else {
            return join;
        };
        match batch::push(self, task) {
            // Counted by the injector, under the lock of its push.
            Err(task) => self.inject(task),
            // Relaxed: a counter.
            Ok(()) => {
                self.remote_spawns
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        join
    }

    /// Queues a task spawned off the workers in the injector and wakes a
    /// worker if none is searching. Not handed straight to a parked worker
    /// (`hand_off`): a thread that spawns many tasks would wake a worker
    /// for each one that finds a worker parked, where a worker woken for
    /// the injector takes a batch.
    fn inject(&self, task: Notified) {
        if self.is_shutdown() {
            // As in `hand_off`.
            drop(task);
            self.remote_spawns
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        self.injector.push_spawned(task);
        self.notify_parked();
        if self.shutdown.load(Ordering::SeqCst) {
            // As in `hand_off`.
            self.drain_injector();
        }
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    fn schedule_task(self: &Arc<Self>, task: Notified, is_yield: bool) {
        let Err(task) = self.schedule_here(task, is_yield) else {
            return;
        };
        // Off this runtime's workers (which hold the scheduler alive), the
        // task may run, complete and be freed — and with it the `Arc` that
        // `self` borrows from its cell — before `hand_off` returns: hold
        // one of our own meanwhile.
        let shared = Arc::clone(self);
        shared.hand_off(task, &mut Vec::new());
    }

    /// Queues `task` on this thread's worker, or in the netpoll thread's
    /// delivery batch (the delivering thread holds the scheduler alive);
    /// gives it back on any other thread.
    #[inline]
    fn schedule_here(&self, task: Notified, is_yield: bool) -> Result<(), Notified> {
        let Err(task) = worker::schedule_local(self, task, is_yield) else {
            return Ok(());
        };
        batch::push(self, task)
    }

    /// Schedules tasks woken off the workers: `first` goes straight to one
    /// parked worker, which runs it as soon as it wakes, and `rest` to the
    /// injector. The worker woken is one that last ran on this CPU if any
    /// (see [`Idle::worker_to_wake`](idle::Idle::worker_to_wake)). It
    /// counts as searching until it runs `first`, so work that arrives
    /// meanwhile wakes nobody else, and then wakes a sibling only if there
    /// is more: a single delivered task wakes exactly one worker and makes
    /// no trip through the injector. With no worker to wake (some worker is
    /// searching, or none is parked), everything goes to the injector,
    /// where the running workers find it.
    fn hand_off(&self, first: Notified, rest: &mut Vec<Notified>) {
        self.hand_off_near(first, rest, true);
    }

    /// [`hand_off`](Self::hand_off), preferring a worker that last ran on
    /// this CPU only if `near_caller` (not when the caller goes on running
    /// here: the worker would wait for it).
    fn hand_off_near(&self, first: Notified, rest: &mut Vec<Notified>, near_caller: bool) {
        if self.is_shutdown() {
            // The runtime is going away: `Runtime::drop` cancels every task
            // through the owned-task list. Queuing a task woken now (a
            // sleep completed by the shutdown itself) would let a worker
            // that has not yet seen the flag poll it to completion.
            drop(first);
            rest.clear();
            return;
        }
        let more = !rest.is_empty();
        if more {
            // Pushed before the idle check below (the Dekker pair of `idle`).
            self.injector.push_batch(rest);
        }
        // A plain look first: under load no worker is parked, and the
        // fenced look of `worker_to_wake` would only repeat the one of
        // `notify_parked` below.
        if let Some(w) = self
            .idle
            .may_wake()
            .then(|| self.idle.worker_to_wake(near_caller))
            .flatten()
        {
            self.slots[w].parker.unpark_with(first);
            self.io.worker_unparked();
        } else {
            // Push, then check again: a searcher seen above may have parked
            // since without seeing `first`.
            self.injector.push(first);
            self.notify_parked();
        }
        if self.shutdown.load(Ordering::SeqCst) {
            // Shut down meanwhile, and the injector may already have been
            // drained: drop what we pushed (and anything else) ourselves.
            // A worker handed `first` drops it as it exits. SeqCst pairs
            // with the store in `begin_shutdown`.
            self.drain_injector();
        }
    }

    /// Wakes one parked worker, unless a worker is already searching.
    pub(crate) fn notify_parked(&self) {
        if let Some(w) = self.idle.worker_to_notify() {
            self.slots[w].parker.unpark();
            self.io.worker_unparked();
        }
    }

    /// Returns `true` if any queue a worker could take from is non-empty.
    pub(crate) fn has_pending_work(&self) -> bool {
        !self.injector.is_empty() || self.slots.iter().any(|s| !s.stealer.is_empty())
    }

    /// Drops every queued `Notified`. The tasks themselves are cancelled by
    /// `Runtime::drop` through the owned-task list, on the dropping thread,
    /// so that `drop` returns only once every future is gone; a thread that
    /// wakes a task during shutdown only lets go of its reference.
    pub(crate) fn drain_injector(&self) {
        drop(self.injector.take_all());
        // And any task handed to a worker that exited before it woke. (A
        // LIFO slot is left to its owner, which may still run: it takes
        // from it without a swap, and drains it as it exits.)
        for slot in self.slots.iter() {
            drop(slot.parker.take_task());
        }
    }

    /// Tells every worker to exit. The caller joins them afterwards.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for slot in self.slots.iter() {
            slot.parker.unpark();
        }
    }
}

impl PollHost for Arc<Shared> {
    fn active_workers(&self) -> usize {
        self.idle.num_unparked()
    }

    fn num_workers(&self) -> usize {
        Shared::num_workers(self)
    }

    fn check_blocked(&self, now: Instant) -> Option<Instant> {
        Shared::check_blocked(self, now)
    }

    fn is_idle(&self) -> bool {
        // Under the lock every wake-up of a parked worker takes: no worker
        // can start while this looks.
        self.idle.if_all_parked(|| {
            self.injector.is_empty()
                && self.slots.iter().all(|s| {
                    // A thread handed off while stuck runs on, its slot
                    // retaken (odd, like a poll): not idle either.
                    !s.is_polling() && s.stealer.is_empty() && !s.has_lifo() && !s.parker.has_task()
                })
                // One look at all the work outside the workers: no wake-up
                // passes from one kind to another unseen (`virtual_time`).
                && self.activity.is_quiet()
        })
    }

    /// Wakes the batch's tasks, collecting this runtime's, then hands the
    /// first to one parked worker and queues the rest (see
    /// [`Shared::hand_off`]). A foreign waker that panics is skipped.
    fn deliver(&self, wakers: &mut Vec<Waker>) {
        batch::begin(self);
        crate::netpoll::wake_all(wakers);
        batch::end(|batch| {
            if !batch.is_empty() {
                let first = batch.remove(0);
                self.hand_off(first, batch);
            }
        });
    }

    /// Wakes the batch's tasks; the first runs here, on a spare slot
    /// ([`worker::run_inline`]), the rest are handed off first, so the
    /// workers woken for them start meanwhile.
    fn run_inline(&self, wakers: &mut Vec<Waker>, step: &mut dyn FnMut(InlineStep) -> bool) {
        batch::begin(self);
        crate::netpoll::wake_all(wakers);
        let mut first = None;
        batch::end(|batch| {
            if batch.is_empty() {
                return;
            }
            first = Some(batch.remove(0));
            if !batch.is_empty() {
                // This thread goes on to poll `first`: a worker on another
                // CPU starts sooner.
                let second = batch.remove(0);
                self.hand_off_near(second, batch, false);
            }
        });
        let Some(task) = first else {
            return;
        };
        // Relaxed: a hint (the spare's own lock orders the take).
        let hint = self.inline_slot.load(std::sync::atomic::Ordering::Relaxed);
        let n = self.slots.len();
        let spare = (!self.is_shutdown())
            .then(|| {
                (0..n)
                    .map(|i| (hint + i) % n)
                    .find_map(|j| self.slots[j].take_spare().map(|local| (j, local)))
            })
            .flatten();
        let Some((slot, local)) = spare else {
            // Every spare slot runs a handed-off worker (or the runtime
            // shuts down): a worker runs it.
            self.hand_off(task, &mut Vec::new());
            return;
        };
        self.inline_slot
            .store(slot, std::sync::atomic::Ordering::Relaxed);
        worker::run_inline(self, slot, local, task, step);
    }

    fn retake_inline(&self, slot: usize) {
        let s = &self.slots[slot];
        if let Some(poll) = s.current_poll() {
            if s.retake(poll) {
                self.move_queued(slot, true);
            }
        }
    }
}

impl Schedule for Arc<Shared> {
    fn schedule(&self, task: Notified) {
        self.schedule_task(task, false);
    }

    fn yield_now(&self, task: Notified) {
        self.schedule_task(task, true);
    }

    fn release(&self, task: &Header) -> Option<RawTask> {
        self.owned.remove(task)
    }
}

/// The netpoll thread's delivery batch.
///
/// While the netpoll thread wakes the wakers of one `epoll_wait`
/// ([`PollHost::deliver`]), each waker of a task of this runtime calls
/// `schedule`, which lands in `Shared::schedule_task`. Rather than hand
/// each task off on its own (a lock and maybe a worker wake-up apiece), it
/// is kept here and the whole batch is handed off at the end. The key is
/// the address of the `Shared` being delivered to: a waker in the batch
/// that belongs to *another* runtime (one netpoll thread serves one
/// runtime, but a task may wait on another's descriptor) finds a different
/// address and is scheduled on its own runtime at once. The address is
/// only compared, never dereferenced, and it cannot be reused while the
/// batch runs: the delivering thread holds that `Shared` alive.
mod batch {
    use std::cell::{Cell, RefCell};

    use super::Shared;
    use crate::task::Notified;

    thread_local! {
        static KEY: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
        static BATCH: RefCell<Vec<Notified>> = const { RefCell::new(Vec::new()) };
    }

    /// Starts batching wake-ups for `shared` on this thread.
    pub(super) fn begin(shared: &Shared) {
        KEY.with(|k| k.set(shared));
    }

    /// If this thread is batching for `shared`, keeps `task` for the
    /// batch; otherwise gives it back.
    #[inline]
    pub(super) fn push(shared: &Shared, task: Notified) -> Result<(), Notified> {
        let batching = KEY
            .try_with(|k| std::ptr::eq(k.get(), shared))
            .unwrap_or(false);
        if !batching {
            return Err(task);
        }
        BATCH.with(|b| b.borrow_mut().push(task));
        Ok(())
    }

    /// Ends the batch and hands its tasks to `f`.
    pub(super) fn end(f: impl FnOnce(&mut Vec<Notified>)) {
        KEY.with(|k| k.set(std::ptr::null()));
        BATCH.with(|b| f(&mut b.borrow_mut()));
    }
}
