//! [`Runtime`]: a running runtime, what it offers its owner, and its
//! shutdown — when dropped (waiting for every worker), or with a deadline
//! ([`Runtime::shutdown_timeout`], tokio's name), after which a thread
//! still stuck in a blocking call is left to finish on its own.

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::task::Waker;
use std::thread::JoinHandle as ThreadHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{block_on::block_on_handle, context, trace, Builder, Handle};
use crate::scheduler;
use crate::task::JoinHandle;

/// How long dropping a runtime waits for blocking-pool jobs to return.
const DROP_BLOCKING_WAIT: Duration = Duration::from_secs(1);

/// A gopark runtime: worker threads, a netpoll thread, a blocking pool.
///
/// Dropping it shuts it down: the netpoll thread and the workers exit and
/// are joined, every task's future is dropped (awaiting its `JoinHandle`
/// yields a cancelled error), descriptors registered with it fail their
/// operations with an error, and its timers complete. A worker stuck in a
/// blocking call holds the drop up until the call returns; jobs of the
/// blocking pool get a second to finish. [`shutdown_timeout`] bounds the
/// whole of it instead.
///
/// [`shutdown_timeout`]: Runtime::shutdown_timeout
pub struct Runtime {
    pub(super) handle: Handle,
    pub(super) threads: Vec<ThreadHandle<()>>,
    /// `GOPARK_SCHEDTRACE` and `GOPARK_DUMP_ON_SIGQUIT`.
    pub(super) tracing: trace::Tracing,
    /// The runtime's threads still running.
    pub(super) exits: std::sync::Arc<Exits>,
    /// Set once shut down, so that `Drop` after `shutdown_timeout` does
    /// nothing.
    pub(super) shut_down: bool,
}

/// Counts a runtime's threads, from just before each starts until it
/// exits, so a shutdown can wait for them with a deadline (a
/// `JoinHandle` cannot).
#[derive(Default)]
pub(super) struct Exits {
    running: Mutex<usize>,
    exited: Condvar,
}

/// Held by a running thread of the runtime; dropping it counts the exit.
pub(super) struct Running(std::sync::Arc<Exits>);

impl Exits {
    /// Counts a thread about to start; its closure holds the guard.
    pub(super) fn start(self: &std::sync::Arc<Self>) -> Running {
        *self.running.lock() += 1;
        Running(self.clone())
    }

    /// Waits until every counted thread has exited, or until `deadline`;
    /// returns `true` if they all did.
    fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut running = self.running.lock();
        while *running > 0 {
            match deadline {
                Some(d) => {
                    if self.exited.wait_until(&mut running, d).timed_out() {
                        return *running == 0;
                    }
                }
                None => self.exited.wait(&mut running),
            }
        }
        true
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.0.running.lock();
        *running -= 1;
        if *running == 0 {
            self.0.exited.notify_all();
        }
    }
}

/// The runtime entered by [`Runtime::enter`] or [`Handle::enter`]: while
/// it lives, [`spawn`](crate::spawn), timers and sockets created on this
/// thread use that runtime. Dropping it restores the runtime entered
/// before, if any. It stays on the thread that made it.
#[must_use = "the runtime is entered only while the guard lives"]
pub struct EnterGuard<'a> {
    _inner: context::EnterGuard,
    /// Borrows the runtime, and is `!Send`: the guard restores this
    /// thread's state.
    _marker: PhantomData<(&'a Handle, *const ())>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}

impl EnterGuard<'_> {
    pub(super) fn new(handle: &Handle) -> EnterGuard<'_> {
        EnterGuard {
            _inner: context::enter(handle.clone()),
            _marker: PhantomData,
        }
    }
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

    /// Enters this runtime on the calling thread until the guard drops:
    /// meanwhile [`spawn`](crate::spawn) from this thread (a plain
    /// thread, say, which is in no runtime) goes to this runtime, and so do
    /// the timers and sockets it creates.
    ///
    /// ```
    /// let rt = gopark_runtime::Builder::new().worker_threads(1).build().unwrap();
    /// let task = {
    ///     let _guard = rt.enter();
    ///     gopark_runtime::spawn(async { gopark_runtime::Handle::current().num_workers() })
    /// };
    /// assert_eq!(rt.block_on(task).unwrap(), 1);
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard::new(&self.handle)
    }

    /// Shuts the runtime down, waiting at most `timeout` for its threads
    /// and its blocking-pool jobs, then returns.
    ///
    /// Everything [`Drop`](#impl-Drop-for-Runtime) does happens here: every
    /// task is cancelled and its future dropped, descriptors fail, timers
    /// complete. A task stuck inside one poll (a blocking call, a loop that
    /// never awaits) cannot be dropped while it runs: its thread is left to
    /// finish the poll on its own, drops the future then, and exits. So does
    /// a blocking-pool job that is still running.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let rt = gopark_runtime::Runtime::new().unwrap();
    /// rt.spawn(async { std::thread::sleep(Duration::from_secs(2)) });
    /// let start = Instant::now();
    /// rt.shutdown_timeout(Duration::from_millis(100));
    /// assert!(start.elapsed() < Duration::from_secs(2));
    /// ```
    ///
    /// # Panics
    ///
    /// Panics when called from one of the runtime's own worker threads, as
    /// dropping it does.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(Instant::now() + timeout));
    }

    /// Shuts the runtime down without waiting for its threads: the same
    /// as [`shutdown_timeout`](Runtime::shutdown_timeout) with a zero
    /// timeout.
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO);
    }

    /// The shutdown of `Drop` and `shutdown_timeout`: with no deadline, it
    /// joins every thread, and gives blocking jobs a second.
    fn shutdown(&mut self, deadline: Option<Instant>) {
        if std::mem::replace(&mut self.shut_down, true) {
            return;
        }
        let shared = &self.handle.shared;
        if scheduler::is_worker_of(shared) {
            // Joining our own thread would deadlock; fail loudly instead.
            panic!(
                "a gopark Runtime cannot be dropped or shut down from one of its own worker threads"
            );
        }
        self.tracing.uninstall();
        shared.begin_shutdown();
        let mut wakers = Vec::new();
        shared.io.close_all(&mut wakers);
        // Tasks of this runtime woken here are cancelled below; a thread
        // blocked in `block_on` on a descriptor of ours wakes to an error.
        wakers.into_iter().for_each(Waker::wake);
        if self.exits.wait(deadline) {
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
            // Threads started on spare slots; the netpoll thread, which
            // starts them, has exited, so the list is final.
            let extra = std::mem::take(&mut *shared.extra_threads.lock());
            for t in extra {
                let _ = t.join();
            }
        } else {
            // Past the deadline: the threads still running are detached.
            // Each holds the runtime's shared state alive until it exits.
            self.threads.clear();
            shared.extra_threads.lock().clear();
        }
        // A task whose poll is still running is cancelled when the poll
        // returns, by the thread running it.
        shared.owned.close_and_shutdown_all();
        shared.drain_injector();
        let blocking_wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => DROP_BLOCKING_WAIT,
        };
        shared.blocking.shutdown(blocking_wait);
        // A task dropped above may have woken another into the injector.
        shared.drain_injector();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}
