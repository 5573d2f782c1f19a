//! The work-stealing scheduler.
//!
//! N workers, each with a local FIFO queue (`crossbeam_deque::Worker`) and a
//! one-task LIFO slot, share one global [`Injector`] and can steal half of
//! each other's queues:
//!
//! * A task woken *on a worker* (by another task running there) goes to that
//!   worker's LIFO slot, so a message sent to a task is handled next, while
//!   the data is hot in cache; the task it displaces goes to the back of the
//!   local queue. Landing in the LIFO slot wakes no other worker: the slot
//!   cannot be stolen, and the current worker runs it right after the
//!   current poll. At most [`MAX_LIFO_POLLS`] LIFO runs happen in a row, so
//!   two tasks passing a message back and forth cannot starve the queue.
//! * A task woken *from outside* (the netpoll thread, a `std::thread`, a
//!   blocking thread) is pushed to the injector and at most one parked worker
//!   is woken (see [`idle`]).
//! * A local queue past [`LOCAL_QUEUE_CAPACITY`] moves half of its tasks to
//!   the injector, where any worker can take them.
//! * Every [`GLOBAL_POLL_INTERVAL`] ticks a worker looks at the injector
//!   before its own queue, so remote work is never starved by local work.
//!
//! An idle worker first steals (half of a victim's queue,
//! `steal_batch_and_pop`), then parks on its own [`idle::Parker`]. Nothing
//! spins: an idle runtime's workers sleep in `futex`.

pub(crate) mod idle;
mod inject;
#[cfg(all(test, loom))]
mod loom_tests;
mod worker;

use std::future::Future;
use std::sync::Arc;
use std::task::Waker;

use crossbeam_deque::Stealer;

use crate::blocking::BlockingPool;
use crate::loom::{AtomicBool, Ordering};
use crate::netpoll::{Netpoller, PollHost};
use crate::task::{self, Header, JoinHandle, Notified, OwnedTasks, RawTask, Schedule};

pub(crate) use inject::Inject;
pub(crate) use worker::{is_worker, is_worker_of, run_worker};

/// Check the injector first once every this many ticks (as Go and tokio do).
pub(crate) const GLOBAL_POLL_INTERVAL: u32 = 61;
/// LIFO-slot runs allowed in a row before the slot's task is queued instead.
pub(crate) const MAX_LIFO_POLLS: usize = 3;
/// A local queue longer than this sends half of itself to the injector.
pub(crate) const LOCAL_QUEUE_CAPACITY: usize = 256;

/// State shared by a runtime's workers, its netpoll thread and its handles.
pub(crate) struct Shared {
    pub(crate) injector: inject::Inject,
    pub(crate) remotes: Box<[Remote]>,
    pub(crate) idle: idle::Idle,
    pub(crate) owned: OwnedTasks,
    pub(crate) shutdown: AtomicBool,
    pub(crate) io: Arc<Netpoller>,
    pub(crate) blocking: BlockingPool,
}

/// What other threads may touch of a worker.
pub(crate) struct Remote {
    pub(crate) stealer: Stealer<Notified>,
    pub(crate) parker: idle::Parker,
}

impl Shared {
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (notified, owned_ref, join) = task::new_task(future, self.clone());
        if let Err(owned_ref) = self.owned.bind(owned_ref) {
            // Shut down: the task is cancelled before it ever runs.
            notified.shutdown();
            owned_ref.drop_reference();
            return join;
        }
        self.schedule_task(notified, false);
        join
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    fn schedule_task(&self, task: Notified, is_yield: bool) {
        if let Err(task) = worker::schedule_local(self, task, is_yield) {
            self.schedule_remote(task);
        }
    }

    /// Schedules a task woken off the workers (see [`hand_off`](Self::hand_off)).
    pub(crate) fn schedule_remote(&self, task: Notified) {
        // On the netpoll thread, delivering a batch: queue it with the rest.
        let Err(task) = batch::push(self, task) else {
            return;
        };
        self.hand_off(task, &mut Vec::new());
    }

    /// Schedules tasks woken off the workers: `first` goes straight to one
    /// parked worker, which runs it as soon as it wakes, and `rest` to the
    /// injector. The worker woken is one that last ran on this CPU if any
    /// (see [`Idle::worker_to_wake`](idle::Idle::worker_to_wake)), and it
    /// searches for more work only if there is more: a single delivered
    /// task wakes exactly one worker and makes no trip through the
    /// injector. With no worker to wake (some worker is searching, or none
    /// is parked), everything goes to the injector, where the running
    /// workers find it.
    fn hand_off(&self, first: Notified, rest: &mut Vec<Notified>) {
        let more = !rest.is_empty();
        if more {
            // Pushed before the idle check below (the Dekker pair of `idle`).
            self.injector.push_batch(rest);
        }
        let to_wake = if self.is_shutdown() {
            None
        } else {
            self.idle.worker_to_wake(idle::current_cpu(), more)
        };
        if let Some(w) = to_wake {
            self.remotes[w].parker.unpark_with(first, more);
        } else {
            // Push, then check again: a searcher seen above may have parked
            // since without seeing `first`.
            self.injector.push(first);
            self.notify_parked();
        }
        if self.shutdown.load(Ordering::SeqCst) {
            // The runtime is going away and may already have drained the
            // injector: drop what we pushed (and anything else) ourselves.
            // A worker handed `first` drops it as it exits. SeqCst pairs
            // with the store in `begin_shutdown`.
            self.drain_injector();
        }
    }

    /// Wakes one parked worker, unless a worker is already searching.
    pub(crate) fn notify_parked(&self) {
        if let Some(w) = self.idle.worker_to_notify() {
            self.remotes[w].parker.unpark();
        }
    }

    /// Returns `true` if any queue a worker could take from is non-empty.
    pub(crate) fn has_pending_work(&self) -> bool {
        !self.injector.is_empty() || self.remotes.iter().any(|r| !r.stealer.is_empty())
    }

    /// Drops every queued `Notified`. The tasks themselves are cancelled by
    /// `Runtime::drop` through the owned-task list, on the dropping thread,
    /// so that `drop` returns only once every future is gone; a thread that
    /// wakes a task during shutdown only lets go of its reference.
    pub(crate) fn drain_injector(&self) {
        drop(self.injector.take_all());
        // And any task handed to a worker that exited before it woke.
        for remote in self.remotes.iter() {
            drop(remote.parker.take_task());
        }
    }

    /// Tells every worker to exit. The caller joins them afterwards.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for remote in self.remotes.iter() {
            remote.parker.unpark();
        }
    }
}

impl PollHost for Shared {
    fn active_workers(&self) -> usize {
        self.idle.num_unparked()
    }

    fn num_workers(&self) -> usize {
        self.remotes.len()
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
/// `schedule`, which lands in [`Shared::schedule_remote`]. Rather than hand
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
