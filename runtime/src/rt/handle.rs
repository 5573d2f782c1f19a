//! [`Handle`]: a runtime as code on any thread reaches it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::scheduler::Shared;
use crate::task::JoinHandle;

/// A handle to a runtime: spawn onto it from any thread.
///
/// Cheap to clone. It does not keep the runtime running: once the
/// [`Runtime`](crate::Runtime) is dropped, tasks spawned through a handle
/// are cancelled at once.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared.remotes.len())
            .finish()
    }
}

impl Handle {
    /// Returns the handle of the runtime this thread is in (a worker, a
    /// blocking thread, or inside `block_on`).
    ///
    /// # Panics
    ///
    /// Panics outside a runtime; see [`try_current`](Handle::try_current).
    pub fn current() -> Handle {
        Handle::try_current().expect("`Handle::current()` called outside a gopark runtime")
    }

    /// Returns the current runtime's handle, or `None` outside one.
    pub fn try_current() -> Option<Handle> {
        super::context::with_current(|h| h.cloned())
    }

    /// Spawns a task on this runtime. See [`spawn`](crate::spawn).
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(future)
    }

    /// Runs a blocking function on this runtime's blocking pool. See
    /// [`spawn_blocking`](crate::spawn_blocking).
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.shared.blocking.spawn(f)
    }

    /// Number of worker threads.
    pub fn num_workers(&self) -> usize {
        self.shared.remotes.len()
    }

    /// Number of descriptors registered with this runtime's netpoller
    /// (live [`PollDesc`](crate::PollDesc)s).
    pub fn num_poll_descs(&self) -> usize {
        self.shared.io.registered()
    }

    /// Number of tasks spawned and not yet finished. A task leaves the count
    /// just after it completes, so right after its `JoinHandle` resolves it
    /// may still be counted for a moment.
    pub fn num_alive_tasks(&self) -> usize {
        self.shared.owned.len()
    }
}
