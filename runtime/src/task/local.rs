//! [`LocalSet`] and [`spawn_local`]: tasks that are not `Send`.
//!
//! tokio's semantics. A `LocalSet` is a set of tasks that all run on the
//! thread that drives the set, so their futures may hold `Rc`, `RefCell`
//! and other `!Send` state. The set runs while something drives it:
//! [`LocalSet::run_until`] (a future: the set's tasks run each time it is
//! polled, until the future given to it completes),
//! [`LocalSet::block_on`] (the same on a [`Runtime`]'s `block_on`), or
//! awaiting the `LocalSet` itself (until all its tasks are done). Inside,
//! [`spawn_local`] adds a task to the set; outside every set it panics.
//! Go has no counterpart: any goroutine may move between threads.
//!
//! # Mechanism
//!
//! A local task is an ordinary task (one allocation, a `JoinHandle`, an
//! [`Id`](super::Id), abort, panics caught) whose scheduler is the set's
//! queue instead of the runtime's workers. Its wakers are `Send + Sync`
//! like every waker: a wake-up from any thread — a channel fed by a task
//! on a worker, a timer, the netpoll thread — puts the task on the set's
//! queue (under a short lock) and wakes the task or thread that drives the
//! set, which runs it on its own thread at its next poll. A wake-up from
//! inside the set's own run loop only queues.
//!
//! The future of a local task is touched only on the set's thread: only
//! the driver runs the queue, and dropping the `LocalSet` (which cannot
//! leave its thread) cancels every task still in it, dropping their
//! futures there. After that, a late wake-up from another thread finds the
//! set closed and drops its reference; the allocation may then be freed on
//! that thread, but it no longer holds the future.
//!
//! Local tasks belong to their set, not to a runtime: the runtime's
//! [`Handle::dump`](crate::Handle::dump) and task count do not list them,
//! and a runtime's shutdown does not cancel them (dropping the set does).
//!
//! # Cost
//!
//! One allocation for the set, and per task what a spawned task costs plus
//! one uncontended lock per wake-up. The driver runs at most
//! [`TICK`] tasks per poll before it yields to its own executor.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use super::{Header, JoinHandle, Notified, RawTask, Schedule};
use crate::loom::Mutex;
use crate::Runtime;

/// Tasks the driver runs per poll before it lets its own executor run
/// something else.
const TICK: usize = 61;

thread_local! {
    /// The set that `spawn_local` on this thread spawns onto: the one being
    /// driven or dropped here, or entered with [`LocalSet::enter`].
    static CURRENT: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
    /// The address of the set whose run loop is on this thread's stack (0
    /// for none): a wake-up of one of its tasks only queues, as the loop
    /// will find it.
    static DRIVING: Cell<usize> = const { Cell::new(0) };
}

/// A set of `!Send` tasks that run on the thread that drives the set.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use gopark_runtime::task::{self, LocalSet};
///
/// let rt = gopark_runtime::Runtime::new().unwrap();
/// let local = LocalSet::new();
/// let total = local.block_on(&rt, async {
///     let total = Rc::new(RefCell::new(0));
///     let mut handles = Vec::new();
///     for i in 1..=3 {
///         let total = Rc::clone(&total);
///         handles.push(task::spawn_local(async move {
///             task::yield_now().await;
///             *total.borrow_mut() += i;
///         }));
///     }
///     for h in handles {
///         h.await.unwrap();
///     }
///     let sum = *total.borrow();
///     sum
/// });
/// assert_eq!(total, 6);
/// ```
pub struct LocalSet {
    shared: Arc<Shared>,
    /// Stays on the thread that made it.
    _not_send: PhantomData<*const ()>,
}

/// The part of a set that its tasks' wakers reach, from any thread.
struct Shared {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Tasks woken and waiting for the driver.
    queue: VecDeque<Notified>,
    /// Every task of the set not yet complete, with one reference each, so
    /// that dropping the set can cancel them.
    owned: Slab<RawTask>,
    /// The waker of whoever drives the set; taken by the first wake-up
    /// that needs it.
    driver: Option<Waker>,
    /// The set was dropped: no task is queued or added any more.
    closed: bool,
}

/// A local task's scheduler: the set's queue.
struct LocalScheduler(Arc<Shared>);

impl Schedule for LocalScheduler {
    fn schedule(&self, task: Notified) {
        // Once the task is queued, the driver may run it, complete it and
        // free it — and with it this scheduler — before this returns: work
        // on an `Arc` of our own.
        let shared = Arc::clone(&self.0);
        let driving_here = shared.is_current();
        let driver = {
            let mut inner = shared.inner.lock();
            if inner.closed {
                drop(inner);
                // The set was dropped and its tasks cancelled; this reference
                // is the last use of the task.
                drop(task);
                return;
            }
            inner.queue.push_back(task);
            // The run loop on this thread will find it; anyone else wakes
            // the driver.
            if driving_here {
                None
            } else {
                inner.driver.take()
            }
        };
        if let Some(waker) = driver {
            waker.wake();
        }
    }

    fn release(&self, task: &Header) -> Option<RawTask> {
        let key = task.owned_key();
        let mut inner = self.0.inner.lock();
        match inner.owned.get(key) {
            Some(t) if t.addr() == task.addr() => Some(inner.owned.remove(key)),
            _ => None,
        }
    }
}

impl Shared {
    /// Whether this thread is inside this set's run loop (or drop).
    fn is_current(self: &Arc<Self>) -> bool {
        let me = Arc::as_ptr(self) as usize;
        DRIVING.try_with(|d| d.get() == me).unwrap_or(false)
    }

    /// Adds a task to the set.
    ///
    /// # Safety
    ///
    /// Called on the set's own thread (the one its `LocalSet` lives on).
    #[track_caller]
    unsafe fn spawn<F>(self: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let at = std::panic::Location::caller();
        // SAFETY: the set's queue is only run by its driver, on the set's
        // thread, which the caller is on; dropping the `LocalSet` there
        // cancels every task it owns before the set lets them go (see the
        // module docs).
        let (notified, owned_ref, join) =
            unsafe { super::new_local_task(future, LocalScheduler(Arc::clone(self)), at) };
        let refused = {
            let mut inner = self.inner.lock();
            if inner.closed {
                Some(owned_ref)
            } else {
                let entry = inner.owned.vacant_entry();
                owned_ref.header().set_owned_key(entry.key());
                entry.insert(owned_ref);
                None
            }
        };
        if let Some(owned_ref) = refused {
            // Spawned while the set is being dropped: cancelled at once, here.
            notified.shutdown();
            owned_ref.drop_reference();
            return join;
        }
        LocalScheduler(Arc::clone(self)).schedule(notified);
        join
    }

    /// Runs up to [`TICK`] queued tasks. Returns `true` if tasks are still
    /// queued.
    ///
    /// Called on the set's thread, with the set entered.
    fn tick(&self) -> bool {
        for _ in 0..TICK {
            let task = self.inner.lock().queue.pop_front();
            match task {
                Some(task) => task.run(),
                None => return false,
            }
        }
        !self.inner.lock().queue.is_empty()
    }

    /// Stores the driver's waker for wake-ups from other threads.
    fn register(&self, waker: &Waker) {
        let mut inner = self.inner.lock();
        match &inner.driver {
            Some(w) if w.will_wake(waker) => {}
            _ => inner.driver = Some(waker.clone()),
        }
    }
}

/// Makes `shared` this thread's current set until the guard drops.
fn enter(shared: &Arc<Shared>) -> Entered {
    let prev = CURRENT
        .try_with(|c| c.replace(Some(Arc::clone(shared))))
        .ok()
        .flatten();
    Entered {
        prev,
        _not_send: PhantomData,
    }
}

/// Restores the previous current set (on the thread that entered it).
struct Entered {
    prev: Option<Arc<Shared>>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

/// Enters `shared` and marks its run loop as on this thread's stack.
fn drive(shared: &Arc<Shared>) -> Driving {
    let entered = enter(shared);
    let me = Arc::as_ptr(shared) as usize;
    let prev = DRIVING.try_with(|d| d.replace(me)).unwrap_or(0);
    Driving {
        prev,
        _entered: entered,
    }
}

/// Restores the previous run loop, then (dropped after) the current set.
struct Driving {
    prev: usize,
    _entered: Entered,
}

impl Drop for Driving {
    fn drop(&mut self) {
        let _ = DRIVING.try_with(|d| d.set(self.prev));
    }
}

/// The guard [`LocalSet::enter`] returns: while it lives, `spawn_local` on
/// this thread spawns onto that set.
pub struct LocalEnterGuard {
    _entered: Entered,
}

impl fmt::Debug for LocalEnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEnterGuard").finish_non_exhaustive()
    }
}

impl LocalSet {
    /// An empty set, for the calling thread.
    pub fn new() -> LocalSet {
        LocalSet {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    queue: VecDeque::new(),
                    owned: Slab::new(),
                    driver: None,
                    closed: false,
                }),
            }),
            _not_send: PhantomData,
        }
    }

    /// Adds a `!Send` task to the set. It runs when the set is driven
    /// ([`run_until`](LocalSet::run_until), [`block_on`](LocalSet::block_on),
    /// or awaiting the set), not before.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use gopark_runtime::task::LocalSet;
    ///
    /// let rt = gopark_runtime::Runtime::new().unwrap();
    /// let local = LocalSet::new();
    /// let shared = Rc::new(5);
    /// let handle = local.spawn_local({
    ///     let shared = Rc::clone(&shared);
    ///     async move { *shared * 2 }
    /// });
    /// // Awaiting the set runs its tasks to completion.
    /// rt.block_on(local);
    /// assert!(handle.is_finished());
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        // SAFETY: `self` is `!Send`, so this is the set's thread.
        unsafe { self.shared.spawn(future) }
    }

    /// Runs `future` on this thread, and the set's tasks with it, until
    /// `future` completes; tasks still in the set then stay there (they run
    /// again the next time the set is driven).
    ///
    /// Awaited from a runtime's `block_on`, or from another local task:
    /// the set runs inside the poll of whatever awaits this.
    ///
    /// ```
    /// use gopark_runtime::task::{self, LocalSet};
    ///
    /// let rt = gopark_runtime::Runtime::new().unwrap();
    /// rt.block_on(async {
    ///     let local = LocalSet::new();
    ///     let out = local
    ///         .run_until(async {
    ///             let rc = std::rc::Rc::new("local");
    ///             task::spawn_local(async move { *rc }).await.unwrap()
    ///         })
    ///         .await;
    ///     assert_eq!(out, "local");
    /// });
    /// ```
    pub fn run_until<F: Future>(&self, future: F) -> RunUntil<'_, F> {
        RunUntil {
            local: self,
            future,
        }
    }

    /// Makes this set the one [`spawn_local`] spawns onto, on this thread,
    /// until the guard drops. The tasks run when the set is next driven.
    ///
    /// ```
    /// use gopark_runtime::task::{self, LocalSet};
    ///
    /// let rt = gopark_runtime::Runtime::new().unwrap();
    /// let local = LocalSet::new();
    /// let handle = {
    ///     let _guard = local.enter();
    ///     task::spawn_local(async { std::rc::Rc::new(3) })
    /// };
    /// let three = local.block_on(&rt, handle).unwrap();
    /// assert_eq!(*three, 3);
    /// ```
    pub fn enter(&self) -> LocalEnterGuard {
        LocalEnterGuard {
            _entered: enter(&self.shared),
        }
    }

    /// Runs `future` and the set's tasks on the calling thread with `rt`'s
    /// `block_on`: `rt.block_on(self.run_until(future))`.
    ///
    /// # Panics
    ///
    /// Panics on a worker thread, as [`Runtime::block_on`] does.
    #[track_caller]
    pub fn block_on<F: Future>(&self, rt: &Runtime, future: F) -> F::Output {
        rt.block_on(self.run_until(future))
    }
}

impl Default for LocalSet {
    fn default() -> LocalSet {
        LocalSet::new()
    }
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.shared.inner.lock();
        f.debug_struct("LocalSet")
            .field("tasks", &inner.owned.len())
            .field("queued", &inner.queue.len())
            .finish()
    }
}

/// Awaiting the set runs its tasks until every one of them finished.
impl Future for LocalSet {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = &self.shared;
        shared.register(cx.waker());
        let _driving = drive(shared);
        if shared.tick() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if shared.inner.lock().owned.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for LocalSet {
    fn drop(&mut self) {
        // Entered, so that a future dropped here may still call
        // `spawn_local` (the task is refused and cancelled at once).
        let _driving = drive(&self.shared);
        let queued = {
            let mut inner = self.shared.inner.lock();
            inner.closed = true;
            inner.driver = None;
            std::mem::take(&mut inner.queue)
        };
        // Cancel every task here, on the set's thread: each future is
        // dropped now. A few at a time, without the lock: a destructor may
        // wake or abort other tasks of the set.
        loop {
            let batch: Vec<RawTask> = {
                let mut inner = self.shared.inner.lock();
                let keys: Vec<usize> = inner.owned.iter().map(|(k, _)| k).take(64).collect();
                keys.into_iter().map(|k| inner.owned.remove(k)).collect()
            };
            if batch.is_empty() {
                break;
            }
            for task in batch {
                task.shutdown();
                task.drop_reference();
            }
        }
        drop(queued);
    }
}

/// The future [`LocalSet::run_until`] returns.
pub struct RunUntil<'a, F> {
    local: &'a LocalSet,
    future: F,
}

impl<F: Future> Future for RunUntil<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out
        // of `self`, and `RunUntil` has no `Drop` that could move it.
        let this = unsafe { self.get_unchecked_mut() };
        let shared = &this.local.shared;
        shared.register(cx.waker());
        let _driving = drive(shared);
        // SAFETY: as above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(out) = future.poll(cx) {
            return Poll::Ready(out);
        }
        if shared.tick() {
            // More queued than one tick runs: come back after the rest of
            // the executor had a turn.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for RunUntil<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntil").finish_non_exhaustive()
    }
}

/// Spawns a `!Send` task on the [`LocalSet`] this code runs in.
///
/// # Panics
///
/// Panics outside a `LocalSet` (not inside `run_until`, `block_on` or an
/// awaited set, nor in one of its tasks).
///
/// ```
/// use std::rc::Rc;
/// use gopark_runtime::task::{self, LocalSet};
///
/// let rt = gopark_runtime::Runtime::new().unwrap();
/// LocalSet::new().block_on(&rt, async {
///     let name = Rc::new(String::from("rc"));
///     let len = task::spawn_local(async move { name.len() }).await.unwrap();
///     assert_eq!(len, 2);
/// });
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let current = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten();
    match current {
        // SAFETY: `CURRENT` is a thread-local, set only on the set's own
        // thread (by its driver or its drop).
        Some(shared) => unsafe { shared.spawn(future) },
        None => panic!("`spawn_local` called from outside of a `task::LocalSet`"),
    }
}
