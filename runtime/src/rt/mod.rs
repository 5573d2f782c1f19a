//! The runtime layer: [`Builder`], [`Runtime`], [`Handle`], the default
//! runtime behind the free functions ([`block_on`], [`spawn`],
//! [`spawn_blocking`]), and which runtime a thread is in.
//!
//! It builds the parts below it — a scheduler, a netpoller with its
//! timers, a blocking pool — starts their threads, and enters each thread
//! into the runtime's context. Nothing below reaches back up: a `Sleep`
//! finds its timers through the timers' own thread-local, a worker knows
//! itself through the scheduler's, and [`PollDesc::new`](crate::PollDesc::new)
//! is defined here, where the current runtime is known.

mod context;
mod dump;
mod handle;
mod metrics;
mod poll_desc;
mod trace;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle as ThreadHandle, Thread};
use std::time::Duration;

use crossbeam_deque::Worker;

pub use dump::{Dump, TaskDump, TaskId, TaskState};
pub use handle::Handle;
pub use metrics::{MetricsSnapshot, RuntimeMetrics, WorkerSnapshot};

use crate::blocking::BlockingPool;
use crate::loom::AtomicBool;
use crate::netpoll::Netpoller;
use crate::scheduler::{self, Shared, Slot};
use crate::task::{JoinHandle, Notified};
use crate::time::driver::{self as time_driver, TimeDriver};

/// Configures and builds a [`Runtime`].
///
/// ```
/// let rt = gopark_runtime::Builder::new()
///     .worker_threads(2)
///     .thread_name("server")
///     .build()
///     .unwrap();
/// assert_eq!(rt.block_on(rt.spawn(async { 1 + 1 })).unwrap(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    worker_threads: Option<usize>,
    thread_name: String,
    max_blocking_threads: usize,
    blocking_keep_alive: Duration,
    start_paused: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

/// Worker count for a runtime that does not set one: `GOPARK_WORKERS` if it
/// is a positive integer (like Go's `GOMAXPROCS`), else one per core.
fn default_workers() -> usize {
    std::env::var("GOPARK_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Builder {
    /// A builder with the defaults: one worker per core (or
    /// `GOPARK_WORKERS`), threads named `gopark`, up to 512 blocking
    /// threads that exit after 10 s idle.
    pub fn new() -> Builder {
        Builder {
            worker_threads: None,
            thread_name: "gopark".to_string(),
            max_blocking_threads: 512,
            blocking_keep_alive: Duration::from_secs(10),
            start_paused: false,
        }
    }

    /// Sets the number of worker threads.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    pub fn worker_threads(&mut self, n: usize) -> &mut Builder {
        assert!(n > 0, "a runtime needs at least one worker thread");
        self.worker_threads = Some(n);
        self
    }

    /// Sets the name prefix of the runtime's threads.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        self.thread_name = name.into();
        self
    }

    /// Sets the most threads the blocking pool may run at once.
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Builder {
        self.max_blocking_threads = n.max(1);
        self
    }

    /// Sets how long an idle blocking thread waits for work before it exits.
    pub fn blocking_keep_alive(&mut self, d: Duration) -> &mut Builder {
        self.blocking_keep_alive = d;
        self
    }

    /// Starts the runtime with its clock paused: time moves only by
    /// [`time::advance`](crate::time::advance) or by jumping to the next
    /// timer whenever every task is blocked (see
    /// [virtual time](crate::time#virtual-time)). For tests.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = gopark_runtime::Builder::new().start_paused(true).build().unwrap();
    /// let waited = rt.block_on(async {
    ///     let start = gopark_runtime::time::now();
    ///     gopark_runtime::time::sleep(Duration::from_secs(24 * 3600)).await;
    ///     gopark_runtime::time::now() - start
    /// });
    /// assert_eq!(waited, Duration::from_secs(24 * 3600));
    /// ```
    pub fn start_paused(&mut self, paused: bool) -> &mut Builder {
        self.start_paused = paused;
        self
    }

    /// Starts the workers and the netpoll thread.
    pub fn build(&self) -> io::Result<Runtime> {
        let n = self
            .worker_threads
            .unwrap_or_else(default_workers)
            .min(0xFFFF);
        let io = Netpoller::new()?;
        if self.start_paused {
            io.time.pause();
        }
        // `n` active slots and as many spare ones, for workers handed off
        // while stuck (see the scheduler's monitor).
        let mut locals: Vec<Worker<_>> = (0..2 * n).map(|_| Worker::new_fifo()).collect();
        let slots: Box<[Slot]> = locals.iter().map(Slot::new).collect();
        let spares = locals.split_off(n);
        let name = self.thread_name.clone();
        let shared = Arc::new_cyclic(|me: &std::sync::Weak<Shared>| {
            // A blocking thread enters the runtime while it lives, if the
            // runtime still does.
            let weak = me.clone();
            let enter = move || {
                weak.upgrade()
                    .map(|shared| Box::new(context::enter(Handle { shared })) as Box<dyn Any>)
            };
            let weak = me.clone();
            let start_worker = move |start, local| match weak.upgrade() {
                Some(shared) => match start_worker(&name, shared.clone(), start, local) {
                    Ok(thread) => {
                        let mut extra = shared.extra_threads.lock();
                        // Threads handed off earlier have left by now, most
                        // of them: keep only the handles still worth joining.
                        extra.retain(|t| !t.is_finished());
                        extra.push(thread);
                        Ok(())
                    }
                    Err(local) => Err(local),
                },
                None => Err(local),
            };
            Shared::new(
                slots,
                n,
                io,
                BlockingPool::new(
                    self.max_blocking_threads,
                    self.blocking_keep_alive,
                    self.thread_name.clone(),
                    Box::new(enter),
                ),
                Box::new(start_worker),
            )
        });
        for (i, local) in spares.into_iter().enumerate() {
            shared.slots[n + i].make_spare(local);
        }
        // From now on a timer polled off every runtime falls back on the
        // default runtime's.
        time_driver::set_default(default_time_driver);
        let handle = Handle {
            shared: shared.clone(),
        };
        let tracing = trace::Tracing::from_env(&handle);
        let hook = tracing.hook(handle.clone());
        let mut rt = Runtime {
            handle,
            threads: Vec::with_capacity(n + 1),
            tracing,
        };
        for (index, local) in locals.into_iter().enumerate() {
            let start = scheduler::Start {
                slot: index,
                worker: index,
            };
            let t = start_worker(&self.thread_name, shared.clone(), start, local)
                .map_err(|_| io::Error::other("could not start a worker thread"))?;
            rt.threads.push(t);
        }
        let poller = shared.clone();
        let t = thread::Builder::new()
            .name(format!("{}-netpoll", self.thread_name))
            .spawn(move || poller.io.run(&*poller, hook))?;
        rt.threads.push(t);
        Ok(rt)
    }
}

/// Starts a worker thread, entered into the runtime. Gives the local queue
/// back if the thread could not start.
fn start_worker(
    name: &str,
    shared: Arc<Shared>,
    start: scheduler::Start,
    local: Worker<Notified>,
) -> Result<ThreadHandle<()>, Worker<Notified>> {
    // The queue travels through a slot the new thread takes it from, so it
    // can be given back if the spawn fails.
    let cell = Arc::new(parking_lot::Mutex::new(Some(local)));
    let theirs = cell.clone();
    let spawned = thread::Builder::new()
        .name(format!("{name}-worker-{}", start.slot))
        .spawn(move || {
            let Some(local) = theirs.lock().take() else {
                return;
            };
            let _enter = context::enter(Handle {
                shared: shared.clone(),
            });
            scheduler::run_worker(shared, start, local);
        });
    match spawned {
        Ok(thread) => Ok(thread),
        Err(_) => Err(cell.lock().take().expect("the thread never started")),
    }
}

/// A gopark runtime: worker threads, a netpoll thread, a blocking pool.
///
/// Dropping it shuts it down: the netpoll thread and the workers exit and
/// are joined, every task's future is dropped (awaiting its `JoinHandle`
/// yields a cancelled error), descriptors registered with it fail their
/// operations with an error, and its timers complete.
pub struct Runtime {
    handle: Handle,
    threads: Vec<ThreadHandle<()>>,
    /// `GOPARK_SCHEDTRACE` and `GOPARK_DUMP_ON_SIGQUIT`.
    tracing: trace::Tracing,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("handle", &self.handle)
            .finish()
    }
}

impl Runtime {
    /// Builds a runtime with the default settings.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A handle for spawning onto this runtime from anywhere.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task on this runtime.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a blocking function on this runtime's blocking pool.
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// Runs `future` to completion on the calling thread, inside this
    /// runtime: tasks it spawns run on this runtime's workers, and sockets
    /// and timers it creates use this runtime's netpoller.
    ///
    /// # Panics
    ///
    /// Panics when called from a worker thread: blocking a worker on a
    /// future could deadlock the tasks that future waits for. Spawn it and
    /// await its `JoinHandle` instead.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on_handle(&self.handle, future)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let shared = &self.handle.shared;
        if scheduler::is_worker_of(shared) {
            // Joining our own thread would deadlock; fail loudly instead.
            panic!("a gopark Runtime cannot be dropped from one of its own worker threads");
        }
        self.tracing.uninstall();
        shared.begin_shutdown();
        let mut wakers = Vec::new();
        shared.io.close_all(&mut wakers);
        // Tasks of this runtime woken here are cancelled below; a thread
        // blocked in `block_on` on a descriptor of ours wakes to an error.
        wakers.into_iter().for_each(Waker::wake);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Threads started on spare slots; the netpoll thread, which starts
        // them, has exited, so the list is final.
        let extra = std::mem::take(&mut *shared.extra_threads.lock());
        for t in extra {
            let _ = t.join();
        }
        shared.owned.close_and_shutdown_all();
        shared.drain_injector();
        shared.blocking.shutdown(Duration::from_secs(1));
        // A task dropped above may have woken another into the injector.
        shared.drain_injector();
    }
}

/// The waker of a `block_on` thread.
struct ThreadWaker {
    thread: Thread,
    notified: AtomicBool,
    /// The runtime's count of runnable `block_on` futures (see
    /// `block_on_handle`).
    shared: Arc<Shared>,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        use crate::loom::Ordering;
        // Release: pairs with the Acquire swap before the next poll.
        if !self.notified.swap(true, Ordering::Release) {
            // Runnable from this instant, not from when the thread wakes.
            self.shared.outside_polls.fetch_add(1, Ordering::SeqCst);
            self.thread.unpark();
        }
    }
}

/// Takes one from the runtime's count of runnable `block_on` futures when
/// dropped, also when the poll panics.
struct Runnable<'a>(&'a crate::loom::AtomicUsize);

impl Drop for Runnable<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, crate::loom::Ordering::SeqCst);
    }
}

fn block_on_handle<F: Future>(handle: &Handle, future: F) -> F::Output {
    use crate::loom::Ordering;
    if scheduler::is_worker() {
        panic!(
            "`block_on` called from a gopark worker thread: it would block the worker and \
             could deadlock the tasks the future waits for; spawn the future and await its \
             JoinHandle instead"
        );
    }
    let _enter = context::enter(handle.clone());
    let waker_state = Arc::new(ThreadWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
        shared: handle.shared.clone(),
    });
    let waker = Waker::from(waker_state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    // The future counts as runnable (a paused clock does not jump) from
    // its first poll, and from each wake-up, until the poll that follows
    // returns: the first count is taken here, the others by the waker.
    let polls = &handle.shared.outside_polls;
    polls.fetch_add(1, Ordering::SeqCst);
    // On the way out (returning or unwinding), later wake-ups count no more,
    // and one that came during the last poll is taken back.
    struct Done<'a>(&'a ThreadWaker);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            if self.0.notified.swap(true, Ordering::AcqRel) {
                self.0.shared.outside_polls.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    let _done = Done(&waker_state);
    loop {
        let running = Runnable(polls);
        let res = crate::coop::with_budget(|| future.as_mut().poll(&mut cx));
        drop(running);
        if let Poll::Ready(v) = res {
            return v;
        }
        // Acquire: pairs with the Release in `wake_by_ref`.
        while !waker_state.notified.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}

static DEFAULT: OnceLock<Runtime> = OnceLock::new();

/// The default runtime, created on first use and never shut down.
pub(crate) fn default_handle() -> &'static Handle {
    DEFAULT
        .get_or_init(|| {
            Builder::new()
                .build()
                .unwrap_or_else(|e| panic!("failed to start the default gopark runtime: {e}"))
        })
        .handle()
}

/// The netpoller of the current runtime, or of the default runtime.
fn current_netpoller() -> Arc<Netpoller> {
    context::with_current(|h| match h {
        Some(h) => h.shared.io.clone(),
        None => default_handle().shared.io.clone(),
    })
}

/// The default runtime's timers, for a timer polled off every runtime.
fn default_time_driver() -> Arc<TimeDriver> {
    default_handle().shared.io.time.clone()
}

/// Runs `future` to completion on the calling thread, on the default
/// runtime (one worker per core, or `GOPARK_WORKERS`), which is created on
/// first use. Inside, [`spawn`] puts tasks on that runtime's workers.
///
/// ```
/// let v = gopark_runtime::block_on(async {
///     let a = gopark_runtime::spawn(async { 20 });
///     let b = gopark_runtime::spawn(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(v, 42);
/// ```
///
/// # Panics
///
/// Panics when called from a worker thread; see [`Runtime::block_on`].
pub fn block_on<F: Future>(future: F) -> F::Output {
    let handle = context::with_current(|h| h.cloned());
    match handle {
        Some(h) => block_on_handle(&h, future),
        None => block_on_handle(default_handle(), future),
    }
}

/// Spawns a task, like `go f()`: it always works. On a runtime's thread (a
/// worker, a blocking thread, inside `block_on`) the task goes to that
/// runtime; anywhere else, to the default runtime.
///
/// The task starts running at once; awaiting the returned [`JoinHandle`]
/// gives its output, and dropping the handle detaches it.
///
/// ```
/// # gopark_runtime::block_on(async {
/// let handle = gopark_runtime::spawn(async { "done" });
/// assert_eq!(handle.await.unwrap(), "done");
/// # });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // Taken here: the closure below would report itself as the caller.
    let at = std::panic::Location::caller();
    let mut future = Some(future);
    let spawned = context::with_current(|h| {
        h.map(|h| h.shared.spawn(future.take().expect("spawned once"), at))
    });
    match spawned {
        Some(join) => join,
        None => default_handle()
            .shared
            .spawn(future.take().expect("spawned once"), at),
    }
}

/// Runs a blocking function on a thread of the blocking pool, so it does
/// not stall a worker. Threads are started on demand, up to a cap, and exit
/// after 10 s idle.
///
/// ```
/// # gopark_runtime::block_on(async {
/// let sum = gopark_runtime::spawn_blocking(|| (1..=100u32).sum::<u32>()).await.unwrap();
/// assert_eq!(sum, 5050);
/// # });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let mut f = Some(f);
    let spawned =
        context::with_current(|h| h.map(|h| h.spawn_blocking(f.take().expect("spawned once"))));
    match spawned {
        Some(join) => join,
        None => default_handle().spawn_blocking(f.take().expect("spawned once")),
    }
}

/// Yields to the scheduler once: the task goes to the back of its worker's
/// queue, letting the tasks queued there run first.
///
/// ```
/// # gopark_runtime::block_on(async {
/// gopark_runtime::yield_now().await;
/// # });
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
