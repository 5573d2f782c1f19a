//! [`JoinSet`]: a set of tasks, awaited in the order they finish.
//!
//! tokio's `JoinSet`, with tokio's documented behaviour: tasks spawned into
//! the set run at once; [`join_next`](JoinSet::join_next) yields each
//! result as its task finishes, and `None` once the set is empty; dropping
//! the set aborts every task still in it. Go's nearest is an `errgroup`
//! or a `sync.WaitGroup` plus a results channel.
//!
//! # How `join_next` finds a finished task
//!
//! Every task in the set has an entry: its `JoinHandle` and a waker of its
//! own ([`Notify`]), which the handle leaves in the task as its join waker.
//! When the task finishes, that waker puts the entry on the set's *ready
//! list* (once: a flag says it is already there) and wakes whoever awaits
//! `join_next`. `join_next` polls only the entries on the ready list —
//! each a task that finished, or was just spawned and has not yet left its
//! waker — so its cost does not grow with the number of tasks in the set,
//! and a wake-up costs a short lock on the list, not a poll of every
//! handle. A new entry starts on the ready list, so its first poll leaves
//! the waker.
//!
//! Each call to `join_next` that finds a result spends one unit of the
//! task's cooperative budget, like awaiting one `JoinHandle`.

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use slab::Slab;

use super::{AbortHandle, Id, JoinError, JoinHandle, LocalSet};
use crate::loom::{AtomicBool, Mutex, Ordering};
use crate::Handle;

/// A collection of tasks spawned on the runtime, awaited in the order they
/// finish.
///
/// All tasks must have the same output type `T`. Dropping the set aborts
/// every task in it; [`detach_all`](JoinSet::detach_all) lets them run on
/// instead.
///
/// ```
/// use gopark_runtime::task::JoinSet;
///
/// # gopark_runtime::block_on(async {
/// let mut set = JoinSet::new();
/// for i in 0..3u32 {
///     set.spawn(async move { i });
/// }
/// let mut seen = [false; 3];
/// while let Some(res) = set.join_next().await {
///     seen[res.unwrap() as usize] = true;
/// }
/// assert_eq!(seen, [true; 3]);
/// # });
/// ```
pub struct JoinSet<T> {
    entries: Slab<Entry<T>>,
    ready: Arc<Ready>,
}

struct Entry<T> {
    handle: JoinHandle<T>,
    /// The entry's waker, as a `Waker` (made once).
    waker: Waker,
    /// The same waker: to tell a current entry from a removed one whose
    /// key was reused.
    notify: Arc<Notify>,
}

/// The set's ready list and the waker of whoever awaits it.
struct Ready {
    inner: Mutex<ReadyInner>,
}

struct ReadyInner {
    /// Entries whose task finished (or that were never polled). An entry
    /// removed from the set may still be here; it is skipped.
    list: VecDeque<Arc<Notify>>,
    /// The task awaiting `join_next`.
    waker: Option<Waker>,
    /// The set is gone: wakers do nothing (a waker still held by a task
    /// must not put itself on a list nobody empties).
    closed: bool,
}

/// One entry's waker.
struct Notify {
    ready: Arc<Ready>,
    key: usize,
    /// On the ready list (or being put there).
    queued: AtomicBool,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // AcqRel, against the AcqRel swap of `next_ready` that takes the
        // entry off the list: one of the two swaps comes first. If this one
        // does, it finds `true` and stops, and the other reads what it
        // wrote: its poll then sees everything before this wake-up, the
        // task's completion included. If that one does, this one finds
        // `false` and queues the entry again.
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let waker = {
            let mut inner = self.ready.inner.lock();
            if inner.closed {
                return;
            }
            inner.list.push_back(Arc::clone(self));
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            entries: Slab::new(),
            ready: Arc::new(Ready {
                inner: Mutex::new(ReadyInner {
                    list: VecDeque::new(),
                    waker: None,
                    closed: false,
                }),
            }),
        }
    }

    /// Number of tasks in the set (finished ones too, until they are
    /// joined).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a task's handle to the set.
    fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        let entry = self.entries.vacant_entry();
        let notify = Arc::new(Notify {
            ready: Arc::clone(&self.ready),
            key: entry.key(),
            // It goes on the list now, so its first poll leaves the waker.
            queued: AtomicBool::new(true),
        });
        self.ready.inner.lock().list.push_back(Arc::clone(&notify));
        entry.insert(Entry {
            handle,
            waker: Waker::from(Arc::clone(&notify)),
            notify,
        });
        abort
    }

    /// Spawns a task on the current runtime (the default one outside a
    /// runtime, as [`spawn`](crate::spawn)) into the set. The returned
    /// [`AbortHandle`] cancels it without taking it out of the set.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.insert(crate::spawn(future))
    }

    /// Spawns a task on the runtime behind `handle` into the set.
    #[track_caller]
    pub fn spawn_on<F>(&mut self, future: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.insert(handle.spawn(future))
    }

    /// Runs a blocking function on the blocking pool, as a task of the set.
    /// Aborting it has no effect once it started running (as for any
    /// blocking job).
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.insert(crate::spawn_blocking(f))
    }

    /// Runs a blocking function on the blocking pool of the runtime behind
    /// `handle`, as a task of the set.
    #[track_caller]
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.insert(handle.spawn_blocking(f))
    }

    /// Spawns a `!Send` task on the current [`LocalSet`] into the set.
    ///
    /// # Panics
    ///
    /// Panics outside a `LocalSet`, as [`spawn_local`](super::spawn_local).
    #[track_caller]
    pub fn spawn_local<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
        T: 'static,
    {
        self.insert(super::spawn_local(future))
    }

    /// Spawns a `!Send` task on `local` into the set.
    #[track_caller]
    pub fn spawn_local_on<F>(&mut self, future: F, local: &LocalSet) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
        T: 'static,
    {
        self.insert(local.spawn_local(future))
    }

    /// Waits for one of the tasks to finish and returns its result, in the
    /// order they finish; `None` once the set is empty. The task leaves the
    /// set.
    ///
    /// Cancel-safe: if the returned future is dropped before it completes,
    /// no result is lost.
    ///
    /// ```
    /// use gopark_runtime::task::JoinSet;
    ///
    /// # gopark_runtime::block_on(async {
    /// let mut set = JoinSet::new();
    /// set.spawn(async { panic!("bad input") });
    /// let err = set.join_next().await.unwrap().unwrap_err();
    /// assert!(err.is_panic());
    /// assert!(set.join_next().await.is_none());
    /// # });
    /// ```
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// As [`join_next`](JoinSet::join_next), with the task's id beside its
    /// output.
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        poll_fn(|cx| self.poll_join_next_with_id(cx)).await
    }

    /// Returns the result of a task that already finished, without
    /// waiting; `None` if none has (or the set is empty).
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        self.try_join_next_with_id()
            .map(|res| res.map(|(_, out)| out))
    }

    /// As [`try_join_next`](JoinSet::try_join_next), with the task's id.
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        self.next_ready()
    }

    /// Polls for the next result, as [`join_next`](JoinSet::join_next)
    /// does: `Ready(None)` when the set is empty.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.poll_join_next_with_id(cx)
            .map(|res| res.map(|res| res.map(|(_, out)| out)))
    }

    /// As [`poll_join_next`](JoinSet::poll_join_next), with the task's id.
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>> {
        if self.entries.is_empty() {
            return Poll::Ready(None);
        }
        if !crate::coop::poll_proceed(cx) {
            return Poll::Pending;
        }
        {
            // Registered before the list is read: a task that finishes
            // after the read finds this waker.
            let mut inner = self.ready.inner.lock();
            match &inner.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => inner.waker = Some(cx.waker().clone()),
            }
        }
        match self.next_ready() {
            Some(res) => Poll::Ready(Some(res)),
            None => Poll::Pending,
        }
    }

    /// Polls the entries on the ready list (those there when it starts, so
    /// an entry that keeps waking itself cannot hold it) until one has a
    /// result.
    fn next_ready(&mut self) -> Option<Result<(Id, T), JoinError>> {
        let mut budget = self.ready.inner.lock().list.len();
        while budget > 0 {
            budget -= 1;
            let notify = self.ready.inner.lock().list.pop_front()?;
            let Some(entry) = self
                .entries
                .get_mut(notify.key)
                .filter(|e| Arc::ptr_eq(&e.notify, &notify))
            else {
                // The entry left the set after its waker queued it.
                continue;
            };
            // A swap, not a store: a wake-up that found the entry still
            // queued must be seen by the poll below (see
            // `Notify::wake_by_ref`); a store could be ordered after the
            // poll's read of the task's state, and that completion lost.
            notify.queued.swap(false, Ordering::AcqRel);
            let mut cx = Context::from_waker(&entry.waker);
            if let Poll::Ready(res) = entry.handle.poll_unbudgeted(&mut cx) {
                let id = entry.handle.id();
                self.entries.remove(notify.key);
                return Some(res.map(|out| (id, out)));
            }
        }
        None
    }

    /// Aborts every task in the set. They stay in it: awaiting
    /// [`join_next`](JoinSet::join_next) yields each one's result (a
    /// cancelled [`JoinError`], or the output of a task that had already
    /// finished).
    pub fn abort_all(&mut self) {
        for (_, entry) in self.entries.iter() {
            entry.handle.abort();
        }
    }

    /// Removes every task from the set without aborting it: they run on,
    /// detached, as a dropped [`JoinHandle`]'s task does.
    pub fn detach_all(&mut self) {
        self.entries.clear();
        self.ready.inner.lock().list.clear();
    }

    /// Aborts every task and waits for them all to stop; the set is then
    /// empty. Results are dropped.
    ///
    /// ```
    /// use gopark_runtime::task::JoinSet;
    ///
    /// # gopark_runtime::block_on(async {
    /// let mut set = JoinSet::new();
    /// for _ in 0..10 {
    ///     set.spawn(std::future::pending::<()>());
    /// }
    /// set.shutdown().await;
    /// assert!(set.is_empty());
    /// # });
    /// ```
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Waits for every task and returns their outputs, in the order they
    /// finished.
    ///
    /// # Panics
    ///
    /// If a task panicked, resumes its panic here; if one was cancelled,
    /// panics. Either way the tasks left in the set are aborted (the set is
    /// dropped). Use [`join_next`](JoinSet::join_next) to handle failures
    /// one by one.
    ///
    /// ```
    /// use gopark_runtime::task::JoinSet;
    ///
    /// # gopark_runtime::block_on(async {
    /// let set: JoinSet<u32> = (1..=4).map(|i| async move { i * 10 }).collect();
    /// let mut out = set.join_all().await;
    /// out.sort();
    /// assert_eq!(out, [10, 20, 30, 40]);
    /// # });
    /// ```
    pub async fn join_all(mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        while let Some(res) = self.join_next().await {
            match res {
                Ok(v) => out.push(v),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("`JoinSet::join_all`: {e}"),
            }
        }
        out
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        {
            let mut inner = self.ready.inner.lock();
            inner.closed = true;
            inner.waker = None;
            // Breaks the cycle of the list's wakers holding the list.
            inner.list.clear();
        }
        for entry in self.entries.drain() {
            entry.handle.abort();
        }
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}

/// Spawns each future into the set, as [`JoinSet::spawn`].
impl<T, F> Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    #[track_caller]
    fn extend<I: IntoIterator<Item = F>>(&mut self, iter: I) {
        for future in iter {
            self.spawn(future);
        }
    }
}

/// Spawns each future into a new set, as [`JoinSet::spawn`].
impl<T, F> FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> JoinSet<T> {
        let mut set = JoinSet::new();
        set.extend(iter);
        set
    }
}

/// Model tests of the ready list (run with `RUSTFLAGS="--cfg loom"`, as the
/// task module's): a task that completes on another thread while the set
/// polls is never lost.
#[cfg(all(test, loom))]
mod loom_tests {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use loom::thread;

    use super::JoinSet;
    use crate::loom::{AtomicBool, Ordering};
    use crate::task;
    use crate::task::model::Nowhere;

    /// The waker of whoever awaits `join_next`.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A task completes on another thread while the set polls; with
    /// `polled_before`, the set has left the entry's waker in the task
    /// first (else the poll that races is the entry's first).
    fn completion_vs_join_next(polled_before: bool) {
        loom::model(move || {
            let (notified, owned, join) =
                task::new_task(async { 7u32 }, Nowhere, std::panic::Location::caller());
            owned.drop_reference();
            let mut set = JoinSet::new();
            set.insert(join);
            let flag = Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(flag.clone());
            let mut cx = Context::from_waker(&waker);
            if polled_before {
                assert!(set.poll_join_next(&mut cx).is_pending());
            }

            let runner = thread::spawn(move || notified.run());
            let first = set.poll_join_next(&mut cx);
            runner.join().unwrap();
            match first {
                Poll::Ready(Some(Ok(7))) => {}
                Poll::Pending => {
                    // The completion woke the set, and the entry is on the
                    // ready list for the next poll.
                    assert!(flag.0.load(Ordering::SeqCst), "wake-up lost");
                    assert!(matches!(
                        set.poll_join_next(&mut cx),
                        Poll::Ready(Some(Ok(7)))
                    ));
                }
                other => panic!("unexpected {other:?}"),
            }
            assert!(set.is_empty());
        });
    }

    #[test]
    fn loom_completion_vs_join_next() {
        completion_vs_join_next(true);
    }

    #[test]
    fn loom_completion_vs_first_join_next() {
        completion_vs_join_next(false);
    }
}
