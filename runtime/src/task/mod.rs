//! Tasks: spawning, joining, aborting, task ids, task-local values and
//! tasks that stay on one thread — tokio's `task` module, on gopark.
//!
//! # The public face
//!
//! Everything here has tokio's name and tokio's documented behaviour, so a
//! service moving over changes its `use` lines and nothing else:
//!
//! * [`spawn`], [`spawn_blocking`], [`yield_now`], [`JoinHandle`] and
//!   [`JoinError`] — the runtime's own, gathered here. Like Go's `go f()`,
//!   [`spawn`] always works: outside a runtime it uses the default one.
//! * [`JoinSet`]: a set of tasks awaited in the order they finish (Go's
//!   `errgroup`, or a `sync.WaitGroup` that also collects results). Dropping
//!   the set aborts its tasks. Each task's completion puts it on a ready
//!   list through a waker of its own, so [`JoinSet::join_next`] costs the
//!   same with ten tasks in the set or a hundred thousand.
//! * [`AbortHandle`]: cancel a task without owning its output.
//! * [`Id`], [`id()`], [`try_id()`]: ids unique for the life of the
//!   process (not addresses, which a later task reuses); the task dump
//!   ([`Handle::dump`](crate::Handle::dump)) names tasks by them. They cost
//!   eight bytes per task and no shared atomic per spawn (see [`Id`]).
//! * [`task_local!`](crate::task_local) and [`LocalKey`]: a value scoped to
//!   a future (a request id), kept across every `.await` on whichever
//!   worker the task resumes. It lives in the future that
//!   [`LocalKey::scope`] returns, which moves it into a thread-local around
//!   each poll: tasks that use no task-local pay nothing.
//! * [`LocalSet`] and [`spawn_local`]: `!Send` futures (state in an `Rc`)
//!   that all run on the thread that drives the set, while their wakers
//!   may be called from any thread. Go has no counterpart: every goroutine
//!   may move between threads.
//!
//! ```
//! use gopark_runtime::task::JoinSet;
//!
//! # gopark_runtime::block_on(async {
//! let mut set = JoinSet::new();
//! for i in 0..10u64 {
//!     set.spawn(async move { i * i });
//! }
//! let mut sum = 0;
//! while let Some(res) = set.join_next().await {
//!     sum += res.unwrap();
//! }
//! assert_eq!(sum, 285);
//! # });
//! ```
//!
//! The rest of this page is how a task is built underneath.
//!
//! # Shape
//!
//! A task is a single allocation (`raw::Cell`) holding, in order: the
//! header (the state word of `state.rs`, a vtable, the owned-list key, the
//! dump's trace, the task [`Id`]), the
//! scheduler handle, the *stage* — first the future, then its output — and
//! the join waker. The rest of the runtime sees it through three handles,
//! each standing for one reference in the state word:
//!
//! * `Notified`: "this task should be polled". At most one exists at a
//!   time (the `NOTIFIED` bit guards its creation); it lives in a run queue.
//! * [`JoinHandle`]: the caller's right to the output.
//! * `Waker`s: created by the poll's `Context`; each clone is a reference.
//!
//! A fourth reference belongs to the runtime's owned-task list, so shutdown
//! can cancel tasks that no queue holds (parked on I/O or a timer). Each
//! [`AbortHandle`] holds one more: it keeps the allocation, not the future.
//!
//! # Who touches what, and when
//!
//! * The **future** is touched only by the thread that set `RUNNING`: a
//!   worker polling the task, a worker cancelling it, or the thread shutting
//!   the runtime down.
//! * The **output** is written under `RUNNING`, then published by
//!   `COMPLETE`. From then on it belongs to the `JoinHandle` if
//!   `JOIN_INTEREST` was set at that instant, else to the task side, which
//!   drops it at once. A `JoinHandle` dropped after completion drops it.
//! * The **join waker** is written by the `JoinHandle` only while
//!   `JOIN_WAKER` is clear, and read by the task side only once `COMPLETE`
//!   is set with `JOIN_WAKER`. Replacing it means clearing `JOIN_WAKER`
//!   first, which fails once the task is complete.
//!
//! # Wake-ups
//!
//! A wake-up of an idle task sets `NOTIFIED`, adds a reference and queues a
//! `Notified`. A wake-up of a running task only sets `NOTIFIED`; when the
//! poll returns `Pending`, the poller sees the bit and re-queues the task
//! once (at the back of the queue, so a self-waking task cannot starve its
//! neighbours). A wake-up of a queued or complete task does nothing. So a
//! task is queued at most once, and never after it completed.
//!
//! # Cancellation and panics
//!
//! `abort()` sets `CANCELLED` and, if the task is idle, queues it; the
//! worker that takes it drops the future instead of polling it. Panics in
//! `poll`, or in the future's destructor, are caught and stored as the
//! task's [`JoinError`]; they never unwind into a worker.

mod abort;
mod id;
mod join;
mod join_set;
mod list;
mod local;
mod raw;
mod state;
mod task_local;
mod trace;

#[cfg(all(test, loom))]
mod loom_tests;

/// What the loom models of other modules need of a task: one that no
/// scheduler ever runs, to move around.
#[cfg(all(test, loom))]
pub(crate) mod model {
    use super::{Header, Notified, RawTask, Schedule};

    /// A scheduler that never runs anything: the model moves or runs its
    /// tasks itself.
    pub(crate) struct Nowhere;

    impl Schedule for Nowhere {
        fn schedule(&self, task: Notified) {
            drop(task);
        }

        fn release(&self, _task: &Header) -> Option<RawTask> {
            None
        }
    }

    /// A task whose `Notified` the model hands around; the other two
    /// references are let go at once.
    pub(crate) fn a_task() -> Notified {
        let (notified, owned, join) =
            super::new_task(async {}, Nowhere, std::panic::Location::caller());
        owned.drop_reference();
        drop(join);
        notified
    }
}

use std::future::Future;

pub use crate::rt::{spawn, spawn_blocking, yield_now};
pub use abort::AbortHandle;
pub use id::{id, try_id, Id};
pub use join::{JoinError, JoinHandle};
pub use join_set::JoinSet;
pub(crate) use list::OwnedTasks;
pub use local::{spawn_local, LocalEnterGuard, LocalSet, RunUntil};
pub(crate) use raw::{Header, RawTask};
pub use task_local::{AccessError, LocalKey, TaskLocalFuture};
pub(crate) use trace::{
    decode_instant, encode_instant, forget_clock, record_wait, refresh_clock, TaskInfo, Wait,
};

/// What a task needs from whoever runs it.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Queues a task that was woken.
    fn schedule(&self, task: Notified);

    /// Re-queues a task that woke itself during its own poll; it goes behind
    /// the work already queued.
    fn yield_now(&self, task: Notified) {
        self.schedule(task);
    }

    /// Takes a completed task off the owned-task list. Returns the list's
    /// reference if it was listed; the caller drops it.
    fn release(&self, task: &Header) -> Option<RawTask>;
}

/// A task that should be polled; owns one reference.
pub(crate) struct Notified(pub(crate) RawTask);

impl Notified {
    /// Polls the task (or cancels it, if it was aborted).
    pub(crate) fn run(self) {
        self.into_raw().poll();
    }

    /// Cancels the task without polling it (runtime shutdown), then drops
    /// this reference.
    pub(crate) fn shutdown(self) {
        self.0.shutdown();
    }

    /// The task's address: its identity while it lives.
    pub(crate) fn addr(&self) -> usize {
        self.0.addr()
    }

    /// Lets the spawns that follow copy this task's spawn time (see
    /// `trace::share_spawn_time`): for a task spawned off the workers,
    /// about to be queued for them.
    pub(crate) fn share_spawn_time(&self) {
        trace::share_spawn_time(&self.0.header().since);
    }

    /// The task's pointer, carrying this reference (for a slot that keeps
    /// one task in an atomic pointer).
    pub(crate) fn into_ptr(self) -> std::ptr::NonNull<()> {
        self.into_raw().into_ptr()
    }

    /// Takes back a reference made by [`into_ptr`](Notified::into_ptr).
    ///
    /// # Safety
    ///
    /// `ptr` came from `into_ptr`, and its reference is given up to the
    /// returned value (each pointer is turned back once).
    pub(crate) unsafe fn from_ptr(ptr: std::ptr::NonNull<()>) -> Notified {
        // SAFETY: forwarded from the caller.
        Notified(unsafe { RawTask::from_raw(ptr.cast()) })
    }

    /// The reference, without dropping it.
    fn into_raw(self) -> RawTask {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the reference
        // is moved out exactly once.
        unsafe { std::ptr::read(&this.0) }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        // SAFETY: `self.0` is not used again: this is its owner's drop.
        let raw = unsafe { std::ptr::read(&self.0) };
        raw.drop_reference();
    }
}

/// Allocates a task spawned at `spawned_at`. Returns the first `Notified`,
/// the reference for the owned-task list, and the `JoinHandle`.
#[inline]
pub(crate) fn new_task<F, S>(
    future: F,
    scheduler: S,
    spawned_at: &'static std::panic::Location<'static>,
) -> (Notified, RawTask, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the future and its output are `Send`.
    let raw = unsafe { RawTask::new(future, scheduler, spawned_at) };
    // SAFETY: a new task's state counts three references (see
    // `RawTask::new`); these stand for the list's and the JoinHandle's.
    let (owned, join) = unsafe { (raw.duplicate(), raw.duplicate()) };
    (Notified(raw), owned, JoinHandle::new(join))
}

/// [`new_task`] for a future that need not be `Send` (a `LocalSet`'s).
///
/// # Safety
///
/// As for [`RawTask::new`]: `scheduler` runs and cancels the task only on
/// the calling thread, and cancels it there before that thread lets it go.
pub(crate) unsafe fn new_local_task<F, S>(
    future: F,
    scheduler: S,
    spawned_at: &'static std::panic::Location<'static>,
) -> (Notified, RawTask, JoinHandle<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
    // SAFETY: forwarded from the caller.
    let raw = unsafe { RawTask::new(future, scheduler, spawned_at) };
    // SAFETY: as in `new_task`.
    let (owned, join) = unsafe { (raw.duplicate(), raw.duplicate()) };
    (Notified(raw), owned, JoinHandle::new(join))
}
