//! Per-worker counters, kept where the worker writes them.
//!
//! Each worker has one [`WorkerMetrics`], on cache lines of its own, and is
//! the only thread that writes it: an increment is a plain load and store
//! (no locked instruction, no cache line shared with another writer), and
//! a reader on another thread sees each counter as some recent value. The
//! counters only grow. A worker handed off while stuck in a poll stops
//! counting when its slot is retaken; the thread that takes its place goes
//! on in the same `WorkerMetrics`, so a worker's figures are its own across
//! hand-offs.
//!
//! One writer at a time is what makes a plain store exact, so a thread
//! writes its worker's counters only where it knows it owns the slot:
//! between polls, after `end_poll` said so. What it counts *inside* a poll
//! (spawns) waits in the thread until the poll ends: the stuck thread
//! cannot know that a replacement writes the same counters meanwhile, and
//! after a retake its pending spawns go to the spawns from outside (an
//! atomic add) instead. So `spawned_tasks` never goes backwards.

use crate::counter::Counter;

/// What one worker counts.
#[derive(Default, Debug)]
#[repr(align(128))]
pub(crate) struct WorkerMetrics {
    /// Task polls.
    pub(crate) polls: Counter,
    /// Tasks taken from other workers' queues.
    pub(crate) steals: Counter,
    /// Steal attempts that took at least one task.
    pub(crate) steal_operations: Counter,
    /// Times the worker parked.
    pub(crate) parks: Counter,
    /// Nanoseconds spent unparked.
    pub(crate) busy_ns: Counter,
    /// Tasks spawned from this worker.
    pub(crate) spawns: Counter,
    /// Non-blocking looks at the epoll instance.
    pub(crate) io_polls: Counter,
    /// Readiness events those looks found.
    pub(crate) io_events: Counter,
}
