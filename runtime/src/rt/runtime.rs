//! [`Runtime`]: a running runtime, what it offers its owner, and its
//! shutdown when dropped.

use std::fmt;
use std::future::Future;
use std::io;
use std::task::Waker;
use std::thread::JoinHandle as ThreadHandle;
use std::time::Duration;

use super::{block_on::block_on_handle, trace, Builder, Handle};
use crate::scheduler;
use crate::task::JoinHandle;

/// A gopark runtime: worker threads, a netpoll thread, a blocking pool.
///
/// Dropping it shuts it down: the netpoll thread and the workers exit and
/// are joined, every task's future is dropped (awaiting its `JoinHandle`
/// yields a cancelled error), descriptors registered with it fail their
/// operations with an error, and its timers complete.
pub struct Runtime {
    pub(super) handle: Handle,
    pub(super) threads: Vec<ThreadHandle<()>>,
    /// `GOPARK_SCHEDTRACE` and `GOPARK_DUMP_ON_SIGQUIT`.
    pub(super) tracing: trace::Tracing,
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
