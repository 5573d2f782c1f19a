//! `JoinHandle` and `JoinError`: the caller's side of a task.
//!
//! A `JoinError` is `Send + Sync + Error + 'static`, so `?` carries it into
//! `anyhow::Error` or `Box<dyn Error + Send + Sync>`. The panic payload it
//! may hold (`Box<dyn Any + Send>`) is not `Sync`; it sits in a
//! [`PanicPayload`] that gives shared access to nothing but the payload's
//! type and, for the two `Sync` payload types a `panic!` makes (`&str`,
//! `String`), its message.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::raw::{Panic, RawTask};
use super::{AbortHandle, Id};

/// An owned permission to await a task's output.
///
/// Awaiting it yields `Ok(output)`, or a [`JoinError`] if the task panicked
/// or was aborted. Dropping it detaches the task: the task keeps running and
/// its output is dropped when it finishes.
///
/// ```
/// let answer = gopark_runtime::block_on(async {
///     let handle = gopark_runtime::spawn(async { 6 * 7 });
///     handle.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub struct JoinHandle<T> {
    raw: RawTask,
    _output: PhantomData<T>,
}

// SAFETY: the handle only moves `T` (which is `Send`) out of the task.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` only reads the atomic state word.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    pub(crate) fn new(raw: RawTask) -> JoinHandle<T> {
        JoinHandle {
            raw,
            _output: PhantomData,
        }
    }

    /// Asks the task to stop. A task parked on I/O or a timer has its future
    /// dropped promptly by a worker; a running task stops when its current
    /// poll returns. Awaiting the handle then yields a cancelled
    /// [`JoinError`], unless the task had already finished.
    ///
    /// ```
    /// gopark_runtime::block_on(async {
    ///     let handle = gopark_runtime::spawn(std::future::pending::<()>());
    ///     handle.abort();
    ///     assert!(handle.await.unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort(&self) {
        self.raw.remote_abort();
    }

    /// Returns `true` once the task has finished, whether by returning,
    /// panicking or being cancelled.
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// The task's id.
    ///
    /// ```
    /// # gopark_runtime::block_on(async {
    /// let handle = gopark_runtime::spawn(async { gopark_runtime::task::id() });
    /// let id = handle.id();
    /// assert_eq!(handle.await.unwrap(), id);
    /// # });
    /// ```
    pub fn id(&self) -> Id {
        self.raw.header().id
    }

    /// A handle that can abort the task but not await it; it can be cloned
    /// and kept after this `JoinHandle` is awaited or dropped.
    ///
    /// ```
    /// # gopark_runtime::block_on(async {
    /// let handle = gopark_runtime::spawn(std::future::pending::<()>());
    /// let abort = handle.abort_handle();
    /// abort.abort();
    /// assert!(handle.await.unwrap_err().is_cancelled());
    /// assert!(abort.is_finished());
    /// # });
    /// ```
    pub fn abort_handle(&self) -> AbortHandle {
        AbortHandle::new(&self.raw)
    }

    /// Polls for the output without spending the cooperative budget (the
    /// caller has spent it, once for a batch of handles) and without
    /// recording a wait for the dump.
    pub(crate) fn poll_unbudgeted(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let mut out: Poll<Result<T, JoinError>> = Poll::Pending;
        // SAFETY: `out` has the task's output type `T`, and this handle
        // holds the join interest.
        unsafe {
            self.raw.try_read_output(
                &mut out as *mut Poll<Result<T, JoinError>> as *mut (),
                cx.waker(),
            )
        };
        out
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !crate::coop::poll_proceed(cx) {
            return Poll::Pending;
        }
        let out = self.poll_unbudgeted(cx);
        if out.is_pending() {
            let task = self.id();
            super::record_wait(cx.waker(), || super::Wait::Join { task });
        }
        out
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // SAFETY: `self.raw` is not used again: this is its owner's drop.
        let raw = unsafe { std::ptr::read(&self.raw) };
        raw.drop_join_handle();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task did not return its output: it was cancelled (aborted, or
/// its runtime shut down first), or it panicked.
///
/// `Send + Sync + Error + 'static`, so `?` turns it into an `anyhow::Error`
/// or a `Box<dyn Error + Send + Sync>`; it also converts into an
/// `io::Error`.
///
/// ```
/// # gopark_runtime::block_on(async {
/// let err = gopark_runtime::spawn(async { panic!("boom") }).await.unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.to_string(), format!("task {} panicked with message \"boom\"", err.id()));
/// let payload = err.into_panic();
/// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
/// # });
/// ```
pub struct JoinError {
    repr: Repr,
    id: Id,
}

enum Repr {
    Cancelled,
    Panic(PanicPayload),
}

/// A panic payload that may be shared between threads: `&PanicPayload`
/// reaches nothing but the payload's type and payloads that are themselves
/// `Sync`. Only an owner (by value) gets the `Box` back.
struct PanicPayload(Panic);

// SAFETY: through a shared reference the payload is only asked its type id
// (which reads no data: `Any::type_id` ignores `self`'s contents) and, when
// it is `Sync`, borrowed as that type (`downcast_sync`). Everything else
// needs `PanicPayload` by value, which a `&JoinError` cannot give.
unsafe impl Sync for PanicPayload {}

impl PanicPayload {
    /// The payload as `T`, for a `T` that may be shared between threads.
    fn downcast_sync<T: std::any::Any + Sync>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }

    /// The message of a `panic!` with a literal or a formatted string.
    fn message(&self) -> Option<&str> {
        self.downcast_sync::<&'static str>()
            .copied()
            .or_else(|| self.downcast_sync::<String>().map(String::as_str))
    }
}

impl JoinError {
    pub(crate) fn cancelled(id: Id) -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
            id,
        }
    }

    pub(crate) fn panic(id: Id, payload: Panic) -> JoinError {
        JoinError {
            repr: Repr::Panic(PanicPayload(payload)),
            id,
        }
    }

    /// The task was aborted, or its runtime shut down before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The id of the task that failed.
    pub fn id(&self) -> Id {
        self.id
    }

    /// Returns the panic payload, to inspect it or to resume the panic with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// Panics if the task was cancelled rather than panicking; see
    /// [`try_into_panic`](JoinError::try_into_panic).
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        self.try_into_panic()
            .expect("`JoinError::into_panic` called on a cancelled task")
    }

    /// Returns the panic payload, or the error itself if the task was
    /// cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn std::any::Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.0),
            Repr::Cancelled => Err(self),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "task {} was cancelled", self.id),
            Repr::Panic(p) => match p.message() {
                Some(msg) => write!(f, "task {} panicked with message {msg:?}", self.id),
                None => write!(f, "task {} panicked", self.id),
            },
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "JoinError::Cancelled({:?})", self.id),
            Repr::Panic(p) => match p.message() {
                Some(msg) => write!(f, "JoinError::Panic({:?}, {msg:?}, ..)", self.id),
                None => write!(f, "JoinError::Panic({:?}, ..)", self.id),
            },
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e)
    }
}
