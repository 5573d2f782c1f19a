//! [`Handle`]: a runtime as code on any thread reaches it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::runtime::EnterGuard;
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
            .field("workers", &self.shared.num_workers())
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

    /// Returns the current runtime's handle, or an error outside one.
    ///
    /// ```
    /// use gopark_runtime::Handle;
    ///
    /// assert!(Handle::try_current().is_err());
    /// gopark_runtime::block_on(async {
    ///     assert!(Handle::try_current().is_ok());
    /// });
    /// ```
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        super::context::with_current(|h| h.cloned()).ok_or(TryCurrentError(()))
    }

    /// Enters this runtime on the calling thread until the guard drops;
    /// see [`Runtime::enter`](crate::Runtime::enter).
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard::new(self)
    }

    /// Runs `future` to completion on the calling thread, inside this
    /// runtime; see [`Runtime::block_on`](crate::Runtime::block_on).
    ///
    /// ```
    /// let rt = gopark_runtime::Runtime::new().unwrap();
    /// let handle = rt.handle().clone();
    /// let v = std::thread::spawn(move || handle.block_on(async { 6 * 7 }))
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(v, 42);
    /// ```
    ///
    /// # Panics
    ///
    /// Panics when called from a worker thread of any runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        super::block_on::block_on_handle(self, future)
    }

    /// Spawns a task on this runtime. See [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.shared.spawn(future, std::panic::Location::caller())
    }

    /// Runs a blocking function on this runtime's blocking pool. See
    /// [`spawn_blocking`](crate::spawn_blocking).
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.shared.blocking.spawn(f)
    }

    /// Number of worker threads.
    pub fn num_workers(&self) -> usize {
        self.shared.num_workers()
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

/// The error of [`Handle::try_current`] outside a runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryCurrentError(());

impl TryCurrentError {
    /// `true`: the thread is in no runtime (the only reason there is).
    pub fn is_missing_context(&self) -> bool {
        true
    }
}

impl fmt::Display for TryCurrentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this thread is in no gopark runtime")
    }
}

impl std::error::Error for TryCurrentError {}
