//! One worker thread: its queues and its run loop.
//!
//! The loop, in the order a worker looks for work:
//!
//! 1. every [`GLOBAL_POLL_INTERVAL`] ticks, and right after a task yielded,
//!    the injector first;
//! 2. its own local queue, then the injector;
//! 3. as a *searcher* (if fewer than half the workers already are): half of
//!    a random victim's queue, then the injector;
//! 4. park until a producer or a searcher that found work wakes it.
//!
//! After each task it runs the LIFO slot, up to [`MAX_LIFO_POLLS`] times in
//! a row.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_deque::{Steal, Worker};

use super::{Shared, GLOBAL_POLL_INTERVAL, LOCAL_QUEUE_CAPACITY, MAX_LIFO_POLLS};

/// How long the last running worker looks for I/O before it parks.
const SPIN_FOR_IO: std::time::Duration = std::time::Duration::from_micros(25);
use crate::task::Notified;

thread_local! {
    /// This thread's worker, on worker threads, for their whole life.
    static WORKER: RefCell<Option<Rc<WorkerCtx>>> = const { RefCell::new(None) };
}

/// Calls `f` with this thread's worker if it is a worker of `shared`;
/// returns `None` otherwise.
#[inline]
fn with_worker_of<R>(shared: &Shared, f: impl FnOnce(&WorkerCtx) -> R) -> Option<R> {
    WORKER
        .try_with(|w| match &*w.borrow() {
            Some(cx) if std::ptr::eq(&*cx.shared, shared) => Some(f(cx)),
            _ => None,
        })
        .ok()
        .flatten()
}

/// Returns `true` on a worker thread of `shared`.
pub(crate) fn is_worker_of(shared: &Shared) -> bool {
    with_worker_of(shared, |_| ()).is_some()
}

/// Returns `true` on any runtime's worker thread.
pub(crate) fn is_worker() -> bool {
    WORKER.try_with(|w| w.borrow().is_some()).unwrap_or(false)
}

/// A worker's thread-local state. Other threads reach the worker only
/// through its `Remote` (stealer and parker).
pub(crate) struct WorkerCtx {
    pub(crate) shared: Arc<Shared>,
    index: usize,
    /// Never borrowed across a task poll: a task that wakes another task on
    /// this worker borrows it to push.
    core: RefCell<Core>,
    /// Wakers found by this worker's own look at the epoll instance.
    io_wakers: RefCell<Vec<std::task::Waker>>,
}

struct Core {
    local: Worker<Notified>,
    lifo: Option<Notified>,
    tick: u32,
    searching: bool,
    /// Set when a task yields: look at the injector before running it
    /// again, so yielding tasks cannot hold remote work back for a whole
    /// global-poll interval.
    check_injector: bool,
    rng: u64,
}

impl Core {
    /// Pushes to the back of the local queue; past capacity, moves half of
    /// the queue to the injector.
    fn push_back(&mut self, shared: &Shared, task: Notified) {
        if self.local.len() >= LOCAL_QUEUE_CAPACITY {
            let mut overflow = Vec::with_capacity(LOCAL_QUEUE_CAPACITY / 2);
            for _ in 0..LOCAL_QUEUE_CAPACITY / 2 {
                match self.local.pop() {
                    Some(t) => overflow.push(t),
                    None => break,
                }
            }
            shared.injector.push_batch(&mut overflow);
        }
        self.local.push(task);
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: cheap and good enough to pick steal victims.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Schedules `task` on this thread's worker if it is a worker of `shared`.
/// Gives the task back otherwise.
pub(crate) fn schedule_local(
    shared: &Shared,
    task: Notified,
    is_yield: bool,
) -> Result<(), Notified> {
    // The task is taken out of `task` only if this thread is one of the
    // runtime's workers and can reach its queues; otherwise it is handed back.
    let mut task = Some(task);
    with_worker_of(shared, |cx| {
        let Ok(mut core) = cx.core.try_borrow_mut() else {
            return;
        };
        let task = task.take().expect("task scheduled twice");
        let notify = if is_yield {
            core.push_back(shared, task);
            core.check_injector = true;
            true
        } else {
            match core.lifo.replace(task) {
                Some(prev) => {
                    core.push_back(shared, prev);
                    true
                }
                None => false,
            }
        };
        drop(core);
        if notify {
            shared.notify_parked();
        }
    });
    match task {
        None => Ok(()),
        Some(task) => Err(task),
    }
}

/// The body of a worker thread.
pub(crate) fn run_worker(shared: Arc<Shared>, index: usize, local: Worker<Notified>) {
    let cx = Rc::new(WorkerCtx {
        shared: shared.clone(),
        index,
        core: RefCell::new(Core {
            local,
            lifo: None,
            tick: 0,
            searching: false,
            check_injector: false,
            rng: 0x9E37_79B9_7F4A_7C15 ^ ((index as u64 + 1) << 17),
        }),
        io_wakers: RefCell::new(Vec::new()),
    });
    WORKER.with(|w| *w.borrow_mut() = Some(cx.clone()));
    cx.run();
    WORKER.with(|w| *w.borrow_mut() = None);
    cx.drain();
}

impl WorkerCtx {
    fn run(&self) {
        while !self.shared.is_shutdown() {
            if let Some(task) = self.next_task() {
                self.run_task(task);
                continue;
            }
            // Out of local work: look for ready I/O before stealing (Go's
            // `findrunnable` does `netpoll(0)` at this point too).
            if self.poll_io() {
                continue;
            }
            if let Some(task) = self.steal_work() {
                self.run_task(task);
                continue;
            }
            if self.spin_for_io() {
                continue;
            }
            self.park();
        }
    }

    /// Before the last running worker parks, it keeps looking at the epoll
    /// instance for a few microseconds (Go's spinning M). Under steady load
    /// the next request usually lands within that window, and finding it
    /// here saves two thread hand-offs: the netpoll thread waking for it,
    /// and then waking this worker.
    fn spin_for_io(&self) -> bool {
        let io = &self.shared.io;
        if !io.workers_should_poll() || self.shared.idle.num_unparked() > 1 {
            return false;
        }
        // Look at the queues often (a load), at epoll seldom (a syscall):
        // after 1, 2, 4, 8 and 16 µs, so a spin costs at most a handful of
        // empty `epoll_wait`s.
        let start = std::time::Instant::now();
        let mut next_poll = std::time::Duration::from_micros(1);
        loop {
            std::hint::spin_loop();
            if !self.shared.injector.is_empty() || self.shared.is_shutdown() {
                return true;
            }
            let elapsed = start.elapsed();
            if elapsed >= next_poll {
                if self.poll_io() {
                    return true;
                }
                next_poll *= 2;
            }
            if elapsed >= SPIN_FOR_IO {
                return false;
            }
        }
    }

    fn next_task(&self) -> Option<Notified> {
        let mut core = self.core.borrow_mut();
        core.tick = core.tick.wrapping_add(1);
        if core.tick % GLOBAL_POLL_INTERVAL == 0 {
            drop(core);
            self.poll_io();
            core = self.core.borrow_mut();
            if let Some(task) = self.pop_injector(&core) {
                return Some(task);
            }
        } else if std::mem::take(&mut core.check_injector) {
            if let Some(task) = self.pop_injector(&core) {
                return Some(task);
            }
        }
        if let Some(task) = core.lifo.take() {
            return Some(task);
        }
        if let Some(task) = core.local.pop() {
            return Some(task);
        }
        self.pop_injector(&core)
    }

    /// Takes a batch from the injector into the local queue and returns one.
    fn pop_injector(&self, core: &Core) -> Option<Notified> {
        self.shared.injector.pop_into(&core.local)
    }

    /// Takes a non-blocking look at the epoll instance, if the netpoll
    /// thread expects workers to; the tasks found are scheduled here.
    /// Returns `true` if any were.
    fn poll_io(&self) -> bool {
        let io = &self.shared.io;
        if !io.workers_should_poll() {
            return false;
        }
        let mut wakers = std::mem::take(&mut *self.io_wakers.borrow_mut());
        let found = io.poll_now(&mut wakers) && !wakers.is_empty();
        crate::netpoll::wake_all(&mut wakers);
        *self.io_wakers.borrow_mut() = wakers;
        found
    }

    fn steal_work(&self) -> Option<Notified> {
        let mut core = self.core.borrow_mut();
        if !core.searching {
            if !self.shared.idle.transition_worker_to_searching() {
                return None;
            }
            core.searching = true;
        }
        let remotes = &self.shared.remotes;
        let n = remotes.len();
        let start = (core.next_rand() % n as u64) as usize;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            loop {
                match remotes[victim].stealer.steal_batch_and_pop(&core.local) {
                    Steal::Success(task) => return Some(task),
                    Steal::Empty => break,
                    Steal::Retry => {}
                }
            }
        }
        self.pop_injector(&core)
    }

    fn run_task(&self, task: Notified) {
        {
            let mut core = self.core.borrow_mut();
            if core.searching {
                core.searching = false;
                drop(core);
                // The last searcher found work: there may be more, so keep
                // one worker searching.
                if self.shared.idle.transition_worker_from_searching() {
                    self.shared.notify_parked();
                }
            }
        }
        task.run();
        // Message-passing fast path, bounded so the queue is not starved.
        for _ in 0..MAX_LIFO_POLLS {
            let next = self.core.borrow_mut().lifo.take();
            match next {
                Some(task) => task.run(),
                None => return,
            }
        }
        let mut core = self.core.borrow_mut();
        if let Some(task) = core.lifo.take() {
            core.push_back(&self.shared, task);
            drop(core);
            self.shared.notify_parked();
        }
    }

    fn park(&self) {
        let was_searching = {
            let mut core = self.core.borrow_mut();
            if core.lifo.is_some() || !core.local.is_empty() {
                return;
            }
            std::mem::replace(&mut core.searching, false)
        };
        let idle = &self.shared.idle;
        let cpu = super::idle::current_cpu();
        let parked = idle.transition_worker_to_parked(self.index, was_searching, cpu);
        if parked.last_searcher && self.shared.has_pending_work() {
            // We were the last searcher and work arrived while we gave up:
            // wake a worker (possibly ourselves) to take it.
            self.shared.notify_parked();
        }
        // If nobody is left to look at the epoll instance, the netpoll
        // thread goes back to blocking mode; see `Netpoller::worker_parked`.
        self.shared.io.worker_parked(parked.last_unparked);
        if self.shared.is_shutdown() {
            return;
        }
        let wakeup = self.shared.remotes[self.index].parker.park();
        let mut core = self.core.borrow_mut();
        // A task handed to us runs first; at shutdown `drain` drops it.
        core.lifo = wakeup.task;
        // `worker_to_wake` counted us as searching, or not, when it picked
        // us. After shutdown's unpark we leave the loop, so the count is
        // moot.
        if !self.shared.is_shutdown() {
            debug_assert!(!idle.is_parked(self.index));
            core.searching = wakeup.searching;
        }
    }

    /// Drops whatever is still queued here; the tasks themselves are
    /// cancelled through the owned-task list.
    fn drain(&self) {
        let mut core = self.core.borrow_mut();
        let lifo = core.lifo.take();
        let mut tasks: Vec<Notified> = lifo.into_iter().collect();
        while let Some(t) = core.local.pop() {
            tasks.push(t);
        }
        drop(core);
        for t in tasks {
            t.shutdown();
        }
    }
}
