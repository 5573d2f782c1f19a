//! [`AbortHandle`]: the right to cancel a task, without its output.
//!
//! tokio's semantics: `abort` asks the task to stop exactly as
//! [`JoinHandle::abort`](super::JoinHandle::abort) does (a parked task has
//! its future dropped by the next worker that takes it, a running one when
//! its poll returns), aborting a finished task does nothing, and the
//! handle may be cloned, sent to any thread and kept after the task is
//! gone. Go has no way to stop a goroutine from outside; this is the
//! `context.CancelFunc` of a task that did not ask for one.
//!
//! Cost: one reference in the task's state word per handle (an atomic
//! increment to make one, a decrement to drop it). The task's memory, not
//! its future or output, lives until the last handle goes.

use std::fmt;

use super::raw::RawTask;
use super::Id;

/// An owned permission to abort a task, without the right to await its
/// output (tokio's `AbortHandle`).
///
/// Made by [`JoinHandle::abort_handle`](super::JoinHandle::abort_handle)
/// or [`JoinSet::spawn`](super::JoinSet::spawn). It holds one reference to
/// the task's allocation (the task's memory stays until the last handle
/// goes; its future and output do not), and dropping it does nothing to
/// the task.
///
/// ```
/// # gopark_runtime::block_on(async {
/// let handle = gopark_runtime::spawn(std::future::pending::<()>());
/// let abort = handle.abort_handle();
/// assert_eq!(abort.id(), handle.id());
/// abort.abort();
/// assert!(handle.await.unwrap_err().is_cancelled());
/// // Aborting a finished task does nothing.
/// abort.abort();
/// assert!(abort.is_finished());
/// # });
/// ```
pub struct AbortHandle {
    raw: RawTask,
}

impl AbortHandle {
    /// A handle for the task `raw` refers to; adds a reference of its own.
    pub(crate) fn new(raw: &RawTask) -> AbortHandle {
        raw.header().state.ref_inc();
        // SAFETY: the reference `ref_inc` just counted is this handle's.
        let raw = unsafe { raw.duplicate() };
        AbortHandle { raw }
    }

    /// Asks the task to stop, as [`JoinHandle::abort`](super::JoinHandle::abort)
    /// does. Aborting a task that already finished does nothing: its
    /// `JoinHandle` still yields its output.
    pub fn abort(&self) {
        self.raw.remote_abort();
    }

    /// Returns `true` once the task has finished, whether by returning,
    /// panicking or being cancelled.
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.load().is_complete()
    }

    /// The task's id.
    pub fn id(&self) -> Id {
        self.raw.header().id
    }
}

impl Clone for AbortHandle {
    fn clone(&self) -> AbortHandle {
        AbortHandle::new(&self.raw)
    }
}

impl Drop for AbortHandle {
    fn drop(&mut self) {
        // SAFETY: `self.raw` is not used again: this is its owner's drop.
        let raw = unsafe { std::ptr::read(&self.raw) };
        raw.drop_reference();
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("id", &self.id())
            .field("finished", &self.is_finished())
            .finish()
    }
}
