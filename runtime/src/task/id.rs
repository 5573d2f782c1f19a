//! Task ids: [`Id`], [`id()`] and [`try_id()`].
//!
//! tokio's semantics: every task gets an id at spawn that no other task of
//! the process ever has, for the life of the process — unlike the task's
//! address, which the allocator hands to a later task once this one is
//! freed. Ids are what [`JoinError::id`](super::JoinError::id),
//! [`JoinHandle::id`](super::JoinHandle::id), [`AbortHandle::id`](super::AbortHandle::id)
//! and the task dump ([`Handle::dump`](crate::Handle::dump)) show.
//!
//! # Cost
//!
//! Eight bytes in each task's header, and no contended atomic per spawn:
//! one process-wide counter hands out blocks of [`BLOCK`] ids, and each
//! thread spends its block from a thread-local, so a spawn reads and writes
//! one thread-local cell and touches the shared counter once every
//! [`BLOCK`] spawns on that thread. Ids are therefore unique but not in
//! spawn order across threads (tokio promises no order either).
//!
//! [`id()`] reads a thread-local that the poll of a task sets and restores
//! (a store before the poll and one after): the id of the task being
//! polled on this thread, if any. `block_on`'s future is not a task and
//! has none.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
// The counter only hands out numbers: it orders nothing else, so it is a
// plain std atomic even under loom (a model sees each thread's block as
// its own, which is what the ids need).
use std::sync::atomic::{AtomicU64, Ordering};

/// Ids one thread takes from the shared counter at a time.
const BLOCK: u64 = 256;

/// The first id of the next block. Id 0 is never handed out: it stands for
/// "no task" in [`CURRENT`].
static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The rest of this thread's block: the next id and the end (exclusive).
    static BLOCK_LEFT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    /// The id of the task being polled on this thread, or 0.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

/// A task's id: unique among all tasks of the process, for its whole life.
///
/// Shown as a plain number. Ids are not handed out in spawn order across
/// threads; comparing two says nothing about which task is older.
///
/// ```
/// # gopark_runtime::block_on(async {
/// let a = gopark_runtime::spawn(async { gopark_runtime::task::id() });
/// let b = gopark_runtime::spawn(async {});
/// assert_ne!(a.id(), b.id());
/// let id = a.id();
/// assert_eq!(a.await.unwrap(), id);
/// # });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(NonZeroU64);

impl Id {
    /// A fresh id.
    #[inline]
    pub(crate) fn next() -> Id {
        let n = BLOCK_LEFT
            .try_with(|left| {
                let (next, end) = left.get();
                if next < end {
                    left.set((next + 1, end));
                    next
                } else {
                    // Relaxed: only uniqueness matters, which the RMW alone
                    // gives.
                    let start = NEXT_BLOCK.fetch_add(BLOCK, Ordering::Relaxed);
                    left.set((start + 1, start + BLOCK));
                    start
                }
            })
            // A thread that is exiting (its thread-locals gone) takes ids
            // one at a time.
            .unwrap_or_else(|_| NEXT_BLOCK.fetch_add(1, Ordering::Relaxed));
        Id(NonZeroU64::new(n).expect("task ids never wrap: 2^64 spawns"))
    }

    /// The id a number stands for (0 stands for none).
    pub(crate) fn from_u64(n: u64) -> Option<Id> {
        NonZeroU64::new(n).map(Id)
    }

    /// The number, as the `Display` output shows it.
    pub fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

/// Makes `id` the current task's id on this thread until the guard drops
/// (also when the poll panics); the previous one is restored, so a task
/// polled inside another's poll (a `LocalSet`'s) nests.
#[inline]
pub(crate) fn enter(id: Id) -> CurrentGuard {
    let prev = CURRENT.try_with(|c| c.replace(id.as_u64())).unwrap_or(0);
    CurrentGuard { prev }
}

/// Restores the previous current id.
pub(crate) struct CurrentGuard {
    prev: u64,
}

impl Drop for CurrentGuard {
    #[inline]
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.prev));
    }
}

/// The id of the task that calls it.
///
/// # Panics
///
/// Panics outside a task (in `block_on`'s own future, or on a thread that
/// is not polling one); see [`try_id`].
///
/// ```
/// # gopark_runtime::block_on(async {
/// let handle = gopark_runtime::spawn(async { gopark_runtime::task::id() });
/// let id = handle.id();
/// assert_eq!(handle.await.unwrap(), id);
/// # });
/// ```
#[track_caller]
pub fn id() -> Id {
    try_id().expect("`task::id()` called outside a task")
}

/// The id of the task that calls it, or `None` outside a task.
///
/// ```
/// assert!(gopark_runtime::task::try_id().is_none());
/// # gopark_runtime::block_on(async {
/// let inside = gopark_runtime::spawn(async { gopark_runtime::task::try_id() });
/// assert!(inside.await.unwrap().is_some());
/// # });
/// ```
pub fn try_id() -> Option<Id> {
    let n = CURRENT.try_with(Cell::get).unwrap_or(0);
    NonZeroU64::new(n).map(Id)
}
