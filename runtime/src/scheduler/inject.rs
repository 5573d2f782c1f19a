//! The global injection queue: where tasks woken off the workers go.
//!
//! A `VecDeque` behind a lock, with its length mirrored in an atomic so the
//! common question — "is there anything?" — takes no lock. The lock is
//! taken once per *batch*: the netpoll thread pushes every task of one
//! `epoll_wait` at once, and a worker takes up to half the queue (at most
//! [`MAX_BATCH`]) into its local queue at once. The ring buffer keeps its
//! capacity, so after warm-up injecting allocates nothing (a linked-block
//! queue such as `crossbeam_deque::Injector` allocates a block every few
//! dozen pushes).

use std::collections::VecDeque;

use crate::counter::Counter;
use crate::loom::{AtomicUsize, Mutex, Ordering};
use crate::task::Notified;
use crossbeam_deque::Worker;

/// Most tasks a worker takes from the injector at once.
const MAX_BATCH: usize = 64;

pub(crate) struct Inject {
    queue: Mutex<VecDeque<Notified>>,
    len: AtomicUsize,
    /// Tasks spawned off the workers and pushed here
    /// ([`push_spawned`](Inject::push_spawned)): counted under the lock
    /// that the push takes anyway, where a counter of their own would cost
    /// each such spawn a locked instruction on a line all spawners share.
    spawns: Counter,
}

impl Inject {
    pub(crate) fn new() -> Inject {
        Inject {
            queue: Mutex::new(VecDeque::with_capacity(256)),
            len: AtomicUsize::new(0),
            spawns: Counter::default(),
        }
    }

    /// Tasks pushed by [`push_spawned`](Inject::push_spawned) so far.
    pub(crate) fn spawns(&self) -> u64 {
        self.spawns.get()
    }

    /// [`push`](Inject::push) of a task just spawned off the workers,
    /// counted as such.
    pub(crate) fn push_spawned(&self, task: Notified) {
        task.share_spawn_time();
        let mut q = self.queue.lock();
        q.push_back(task);
        // The lock makes this thread the counter's one writer.
        self.spawns.add(1);
        self.len.store(q.len(), Ordering::SeqCst);
    }

    /// `true` if the queue looks empty. SeqCst: read by parking workers on
    /// one side of the Dekker pair with producers (see `idle`).
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }

    /// Tasks queued (a hint: it may change at once).
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub(crate) fn push(&self, task: Notified) {
        let mut q = self.queue.lock();
        q.push_back(task);
        self.len.store(q.len(), Ordering::SeqCst);
    }

    /// Pushes every task of `batch` under one lock, leaving it empty.
    pub(crate) fn push_batch(&self, batch: &mut Vec<Notified>) {
        if batch.is_empty() {
            return;
        }
        let mut q = self.queue.lock();
        q.extend(batch.drain(..));
        self.len.store(q.len(), Ordering::SeqCst);
    }

    /// Moves up to half the queue (at most `MAX_BATCH` tasks) into `local`
    /// and returns one more to run now.
    pub(crate) fn pop_into(&self, local: &Worker<Notified>) -> Option<Notified> {
        if self.is_empty() {
            return None;
        }
        let mut q = self.queue.lock();
        let first = q.pop_front()?;
        let n = (q.len() / 2).min(MAX_BATCH);
        for task in q.drain(..n) {
            local.push(task);
        }
        self.len.store(q.len(), Ordering::SeqCst);
        Some(first)
    }

    /// Takes everything (shutdown).
    pub(crate) fn take_all(&self) -> VecDeque<Notified> {
        let mut q = self.queue.lock();
        self.len.store(0, Ordering::SeqCst);
        std::mem::take(&mut *q)
    }
}
