//! The runtime's list of owned tasks, so shutdown can cancel every task,
//! including those parked on I/O or timers that no queue holds.
//!
//! Sharded by task address so that spawns on different workers rarely meet
//! on one lock. Each entry holds one task reference.

use slab::Slab;

use super::raw::{Header, RawTask};
#[cfg(loom)]
use crate::loom::Mutex as ShardLock;
use crate::loom::{AtomicBool, Ordering};

const SHARD_BITS: usize = 5;
const SHARDS: usize = 1 << SHARD_BITS;

pub(crate) struct OwnedTasks {
    shards: Box<[Shard]>,
    closed: AtomicBool,
}

/// One shard, on cache lines of its own: every spawn and every completion
/// takes a shard's lock, and two workers doing so on neighbouring shards
/// must not pass one line back and forth.
#[repr(align(128))]
struct Shard(ShardLock<Slab<RawTask>>);

impl std::ops::Deref for Shard {
    type Target = ShardLock<Slab<RawTask>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl OwnedTasks {
    pub(crate) fn new() -> OwnedTasks {
        OwnedTasks {
            shards: (0..SHARDS)
                .map(|_| Shard(ShardLock::new(Slab::new())))
                .collect(),
            closed: AtomicBool::new(false),
        }
    }

    fn shard_of(addr: usize) -> usize {
        // Tasks are at least 64-byte aligned allocations; mix the address so
        // neighbours land on different shards.
        ((addr >> 6).wrapping_mul(0x9E37_79B9) >> 7) & (SHARDS - 1)
    }

    /// Adds a task, taking over the reference it carries for this list.
    /// Gives it back if the runtime is shutting down: the caller must then
    /// cancel the task and drop that reference itself.
    #[must_use = "a refused task must be cancelled and its reference dropped"]
    pub(crate) fn bind(&self, task: RawTask) -> Result<(), RawTask> {
        let shard = Self::shard_of(task.addr());
        let mut slab = self.shards[shard].lock();
        // Checked under the shard lock: `close_and_shutdown_all` sets the flag
        // and then takes every lock, so no task slips in after the drain.
        if self.closed.load(Ordering::Acquire) {
            return Err(task);
        }
        let entry = slab.vacant_entry();
        task.header()
            .set_owned_key(entry.key() << SHARD_BITS | shard);
        entry.insert(task);
        Ok(())
    }

    /// Removes a task; returns the list's reference if it was still
    /// listed (the caller drops it).
    #[must_use = "the list's reference must be dropped"]
    pub(crate) fn remove(&self, task: &Header) -> Option<RawTask> {
        let id = task.owned_key();
        if id == usize::MAX {
            return None;
        }
        let mut slab = self.shards[id & (SHARDS - 1)].lock();
        let key = id >> SHARD_BITS;
        match slab.get(key) {
            Some(t) if t.addr() == task.addr() => Some(slab.remove(key)),
            _ => None,
        }
    }

    /// Refuses new tasks and cancels every listed one.
    pub(crate) fn close_and_shutdown_all(&self) {
        self.closed.store(true, Ordering::Release);
        for shard in self.shards.iter() {
            loop {
                // Take a batch out under the lock, cancel outside it:
                // dropping a future may spawn or drop other tasks.
                let batch: Vec<RawTask> = {
                    let mut slab = shard.lock();
                    let keys: Vec<usize> = slab.iter().map(|(k, _)| k).take(256).collect();
                    keys.into_iter().map(|k| slab.remove(k)).collect()
                };
                if batch.is_empty() {
                    break;
                }
                for task in batch {
                    task.shutdown();
                    task.drop_reference();
                }
            }
        }
    }

    /// Calls `f` with every listed task, one shard's lock at a time (a
    /// spawn or a completion on that shard waits meanwhile; other shards
    /// go on).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Header)) {
        for shard in self.shards.iter() {
            let slab = shard.lock();
            for (_, task) in slab.iter() {
                f(task.header());
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// A shard's lock: a flag taken with one compare-and-swap and given back
/// with a plain store. Every spawn and every completion takes one, and a
/// mutex's unlock is a second locked instruction (a `parking_lot` mutex
/// unlocks with a compare-and-swap, to see whether a thread sleeps on it);
/// here a waiter never sleeps, it spins a little and then yields its CPU,
/// which the few instructions any holder but the dump and shutdown spends
/// inside make rare. (Under loom, a mutex of the shim.)
#[cfg(not(loom))]
struct ShardLock<T> {
    locked: std::sync::atomic::AtomicBool,
    value: std::cell::UnsafeCell<T>,
}

// SAFETY: the value is only reached through a guard, and one guard exists
// at a time (the flag); `T: Send` lets it be used from whichever thread
// holds the guard.
#[cfg(not(loom))]
unsafe impl<T: Send> Sync for ShardLock<T> {}

#[cfg(not(loom))]
impl<T> ShardLock<T> {
    fn new(value: T) -> ShardLock<T> {
        ShardLock {
            locked: std::sync::atomic::AtomicBool::new(false),
            value: std::cell::UnsafeCell::new(value),
        }
    }

    #[inline]
    fn lock(&self) -> ShardGuard<'_, T> {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        // Acquire: pairs with the Release store of the previous holder's
        // unlock, so its writes to the value are visible.
        if self
            .locked
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        ShardGuard { lock: self }
    }

    #[cold]
    fn lock_contended(&self) {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        let mut spins = 0u32;
        loop {
            while self.locked.load(Relaxed) {
                if spins < 100 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    // The holder may have lost its CPU: give it ours.
                    std::thread::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Acquire, Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// The holder of a [`ShardLock`]; unlocks when dropped.
#[cfg(not(loom))]
struct ShardGuard<'a, T> {
    lock: &'a ShardLock<T>,
}

#[cfg(not(loom))]
impl<T> std::ops::Deref for ShardGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard is the one holder of the flag.
        unsafe { &*self.lock.value.get() }
    }
}

#[cfg(not(loom))]
impl<T> std::ops::DerefMut for ShardGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` makes this the one borrow.
        unsafe { &mut *self.lock.value.get() }
    }
}

#[cfg(not(loom))]
impl<T> Drop for ShardGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Release: the writes made under the lock are visible to the next
        // holder (its Acquire).
        self.lock
            .locked
            .store(false, std::sync::atomic::Ordering::Release);
    }
}
