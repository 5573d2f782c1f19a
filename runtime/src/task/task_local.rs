//! Task-local values: [`task_local!`](crate::task_local), [`LocalKey`].
//!
//! tokio's semantics: a value is *scoped to a future*, not stored in the
//! task. [`LocalKey::scope`] wraps a future in a [`TaskLocalFuture`] that
//! owns the value; around each poll of the inner future it moves the value
//! into a thread-local slot and back out when the poll returns (or
//! unwinds). So the value follows the future across every `.await`, onto
//! whichever worker polls it next; code called from the future reads it
//! with [`LocalKey::with`]; a task spawned from inside the scope does not
//! inherit it (it is a different future); nested scopes of one key shadow
//! the outer value and restore it when they end, also by a panic.
//!
//! Go has no task-locals: a goroutine passes a `context.Context` down
//! explicitly. The same is available here (pass the value); this module is
//! for code that moves over from tokio.
//!
//! # Cost
//!
//! Nothing for a task that uses no task-local: there is no per-task
//! storage, and nothing in the task header. A scope costs two swaps of a
//! thread-local per poll of the future it wraps; `with` costs one
//! thread-local access and a `RefCell` borrow flag.

use std::cell::RefCell;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Declares task-local keys: `static NAME: Type;`, one or more, each with
/// attributes and a visibility of its own.
///
/// The value is set for the length of a future with
/// [`LocalKey::scope`] (or of a closure with [`LocalKey::sync_scope`]) and
/// read inside it with [`LocalKey::with`], [`LocalKey::try_with`] or
/// [`LocalKey::get`].
///
/// ```
/// gopark_runtime::task_local! {
///     /// The id of the request being served.
///     pub static REQUEST_ID: u64;
///     static USER: String;
/// }
///
/// # gopark_runtime::block_on(async {
/// REQUEST_ID
///     .scope(7, async {
///         gopark_runtime::yield_now().await;
///         assert_eq!(REQUEST_ID.get(), 7);
///     })
///     .await;
/// assert!(REQUEST_ID.try_with(|_| ()).is_err());
/// # let _ = &USER;
/// # });
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $crate::__task_local_inner!($(#[$attr])* $vis $name, $t);
        $crate::task_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty) => {
        $crate::__task_local_inner!($(#[$attr])* $vis $name, $t);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __task_local_inner {
    ($(#[$attr:meta])* $vis:vis $name:ident, $t:ty) => {
        $(#[$attr])*
        $vis static $name: $crate::task::LocalKey<$t> = {
            ::std::thread_local! {
                static __GOPARK_TASK_LOCAL: ::std::cell::RefCell<::std::option::Option<$t>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            $crate::task::LocalKey::__new(&__GOPARK_TASK_LOCAL)
        };
    };
}

/// A task-local key, declared with [`task_local!`](crate::task_local).
///
/// The slot behind it is a thread-local that holds the value only while a
/// future (or closure) that owns it is being polled (or run) on that
/// thread.
pub struct LocalKey<T: 'static> {
    slot: &'static std::thread::LocalKey<RefCell<Option<T>>>,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn __new(slot: &'static std::thread::LocalKey<RefCell<Option<T>>>) -> LocalKey<T> {
        LocalKey { slot }
    }

    /// Runs `future` with the key set to `value`: every `with` inside it,
    /// across every `.await`, sees `value`. When the future completes or is
    /// dropped, the key goes back to what it was.
    ///
    /// ```
    /// gopark_runtime::task_local! { static DEPTH: u32; }
    ///
    /// # gopark_runtime::block_on(async {
    /// DEPTH
    ///     .scope(1, async {
    ///         DEPTH.scope(2, async { assert_eq!(DEPTH.get(), 2) }).await;
    ///         assert_eq!(DEPTH.get(), 1);
    ///     })
    ///     .await;
    /// # });
    /// ```
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key: self,
            slot: Some(value),
            future: Some(future),
        }
    }

    /// Runs `f` with the key set to `value`, then sets it back, also if
    /// `f` panics.
    ///
    /// ```
    /// gopark_runtime::task_local! { static NAME: &'static str; }
    ///
    /// let len = NAME.sync_scope("gopark", || NAME.with(|n| n.len()));
    /// assert_eq!(len, 6);
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if called inside [`with`](LocalKey::with) of the same key.
    #[track_caller]
    pub fn sync_scope<F: FnOnce() -> R, R>(&'static self, value: T, f: F) -> R {
        let mut slot = Some(value);
        let _swap = Swap::enter(self, &mut slot).unwrap_or_else(|e| e.panic());
        f()
    }

    /// Calls `f` with a reference to the value.
    ///
    /// # Panics
    ///
    /// Panics outside a scope of this key; see
    /// [`try_with`](LocalKey::try_with).
    #[track_caller]
    pub fn with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(_) => panic!(
                "task-local value read outside its scope: no `LocalKey::scope` or \
                 `sync_scope` of this key is running on this thread"
            ),
        }
    }

    /// Calls `f` with a reference to the value, or returns [`AccessError`]
    /// outside a scope of this key (or while this thread's thread-locals
    /// are being destroyed).
    pub fn try_with<F: FnOnce(&T) -> R, R>(&'static self, f: F) -> Result<R, AccessError> {
        // A `with` inside `with` of the same key borrows twice, which
        // `RefCell` allows; only a new scope needs the slot exclusively.
        let borrowed = self
            .slot
            .try_with(|cell| cell.try_borrow().ok().map(|v| v.as_ref().map(f)));
        match borrowed {
            Ok(Some(Some(r))) => Ok(r),
            _ => Err(AccessError { _private: () }),
        }
    }
}

impl<T: Clone + 'static> LocalKey<T> {
    /// A copy of the value.
    ///
    /// # Panics
    ///
    /// Panics outside a scope of this key.
    #[track_caller]
    pub fn get(&'static self) -> T {
        self.with(T::clone)
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("LocalKey { .. }")
    }
}

/// The value of a task-local key is not set: the caller is outside every
/// scope of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AccessError {
    _private: (),
}

impl fmt::Debug for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessError").finish()
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task-local value not set")
    }
}

impl Error for AccessError {}

/// Why a scope could not be entered.
enum ScopeError {
    /// The slot is borrowed by a `with` of the same key on this thread.
    Borrowed,
    /// This thread's thread-locals are being destroyed.
    Destroyed,
}

impl ScopeError {
    #[track_caller]
    fn panic(self) -> ! {
        match self {
            ScopeError::Borrowed => panic!(
                "cannot enter a task-local scope while the task-local value is borrowed by \
                 `LocalKey::with` on this thread"
            ),
            ScopeError::Destroyed => panic!(
                "cannot enter a task-local scope while this thread's thread-locals are being \
                 destroyed"
            ),
        }
    }
}

/// The value swapped into the thread-local slot; swapped back on drop (so
/// also when the scope's code unwinds).
struct Swap<'a, T: 'static> {
    key: &'static LocalKey<T>,
    slot: &'a mut Option<T>,
}

impl<'a, T: 'static> Swap<'a, T> {
    fn enter(key: &'static LocalKey<T>, slot: &'a mut Option<T>) -> Result<Self, ScopeError> {
        key.slot
            .try_with(|cell| {
                let mut inner = cell.try_borrow_mut().map_err(|_| ScopeError::Borrowed)?;
                std::mem::swap(slot, &mut *inner);
                Ok(())
            })
            .map_err(|_| ScopeError::Destroyed)??;
        Ok(Swap { key, slot })
    }
}

impl<T: 'static> Drop for Swap<'_, T> {
    fn drop(&mut self) {
        // The slot was ours on entry, and every scope nested inside has
        // restored it, so this borrow cannot fail unless a `with` leaked
        // a borrow past the scope, which `RefCell` does not allow.
        let _ = self.key.slot.try_with(|cell| {
            if let Ok(mut inner) = cell.try_borrow_mut() {
                std::mem::swap(self.slot, &mut *inner);
            }
        });
    }
}

/// The future [`LocalKey::scope`] returns: runs the inner future with the
/// key set.
pub struct TaskLocalFuture<T: 'static, F> {
    key: &'static LocalKey<T>,
    /// The value while the inner future is not being polled.
    slot: Option<T>,
    /// The inner future; `None` once it completed (it is dropped at once,
    /// inside the scope). Pinned whenever the wrapper is.
    future: Option<F>,
}

/// Only the inner future is pinned (the value moves in and out on every
/// poll), so the wrapper is `Unpin` when the inner future is.
impl<T: 'static, F: Unpin> Unpin for TaskLocalFuture<T, F> {}

impl<T: 'static, F> TaskLocalFuture<T, F> {
    /// The value this future holds, if it was not taken by
    /// [`take_value`](TaskLocalFuture::take_value) (while the future is
    /// polled it sits in the thread-local instead, where `with` reads it).
    pub fn get_ref(&self) -> Option<&T> {
        self.slot.as_ref()
    }

    /// Takes the value out, for a future that is done with it: typically
    /// after it completed. A future polled after that runs outside the
    /// scope.
    pub fn take_value(self: Pin<&mut Self>) -> Option<T> {
        // SAFETY: `slot` is not structurally pinned: it is moved in and out
        // of the thread-local on every poll anyway.
        unsafe { self.get_unchecked_mut() }.slot.take()
    }
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the inner future is never moved out of `self.future`
        // while it lives: it is pinned in place and dropped in place (the
        // `Option` is only set to `None`, which drops it there).
        let this = unsafe { self.get_unchecked_mut() };
        let key = this.key;
        let swap = Swap::enter(key, &mut this.slot).unwrap_or_else(|e| e.panic());
        let Some(future) = this.future.as_mut() else {
            drop(swap);
            panic!("`TaskLocalFuture` polled after it completed");
        };
        // SAFETY: see above: the future stays where it is until dropped.
        let res = unsafe { Pin::new_unchecked(future) }.poll(cx);
        if res.is_ready() {
            // Dropped inside the scope, as a destructor that reads the
            // value expects.
            this.future = None;
        }
        drop(swap);
        res
    }
}

impl<T: 'static, F> Drop for TaskLocalFuture<T, F> {
    fn drop(&mut self) {
        if self.future.is_none() {
            return;
        }
        // A future dropped before it completed (aborted, timed out) is
        // dropped inside its scope too, when the slot can be had.
        let key = self.key;
        match Swap::enter(key, &mut self.slot) {
            Ok(swap) => {
                self.future = None;
                drop(swap);
            }
            Err(_) => self.future = None,
        }
    }
}

impl<T: 'static + fmt::Debug, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLocalFuture")
            .field("value", &self.slot)
            .field("done", &self.future.is_none())
            .finish()
    }
}
