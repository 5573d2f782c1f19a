//! The runtime's list of owned tasks, so shutdown can cancel every task,
//! including those parked on I/O or timers that no queue holds.
//!
//! Sharded by task address so that spawns on different workers rarely meet
//! on one lock. Each entry holds one task reference.

use slab::Slab;

use super::raw::{Header, RawTask};
use crate::loom::{AtomicBool, Mutex, Ordering};

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
struct Shard(Mutex<Slab<RawTask>>);

impl std::ops::Deref for Shard {
    type Target = Mutex<Slab<RawTask>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl OwnedTasks {
    pub(crate) fn new() -> OwnedTasks {
        OwnedTasks {
            shards: (0..SHARDS)
                .map(|_| Shard(Mutex::new(Slab::new())))
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
