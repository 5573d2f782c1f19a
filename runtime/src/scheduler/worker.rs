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
//!
//! Each poll is bracketed by [`Slot::begin_poll`] and [`Slot::end_poll`];
//! if the monitor retook the slot while the poll ran (the worker was stuck
//! in it), the worker hands on what it still holds and its thread exits.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;

use crossbeam_deque::{Steal, Worker};

use super::metrics::WorkerMetrics;
use super::{Shared, Slot, Start, GLOBAL_POLL_INTERVAL, LOCAL_QUEUE_CAPACITY, MAX_LIFO_POLLS};
use crate::netpoll::InlineStep;

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

/// Schedules a task just spawned on this thread, if it is a worker of
/// `shared`, and counts the spawn as the worker's; gives the task back
/// otherwise (the caller counts it as a spawn from outside).
///
/// A spawn happens inside a poll, and inside a poll a thread cannot know
/// whether the monitor is retaking its slot: if it is, the thread that
/// takes its place writes the same worker's counters. So the spawn is
/// counted in the thread's own `pending_spawns` and added to the worker's
/// counters after the poll, once `end_poll` said the thread still owns the
/// slot ([`WorkerCtx::poll`]); a thread that lost its slot adds them to the
/// spawns from outside as it leaves. Each counter keeps one writer.
#[inline]
pub(crate) fn schedule_spawned(shared: &Shared, task: Notified) -> Result<(), Notified> {
    schedule_on_worker(shared, task, false, true)
}

/// Returns `true` on any runtime's worker thread.
pub(crate) fn is_worker() -> bool {
    WORKER.try_with(|w| w.borrow().is_some()).unwrap_or(false)
}

/// A worker's thread-local state. Other threads reach the worker only
/// through its [`Slot`].
pub(crate) struct WorkerCtx {
    pub(crate) shared: Arc<Shared>,
    /// The slot this thread owns.
    index: usize,
    /// `&shared.slots[index]`, looked up once: the poll loop reaches it
    /// several times per task. (The netpoll thread's context moves from
    /// one spare slot to another; a worker's never changes.)
    slot: std::cell::Cell<NonNull<Slot>>,
    /// `&shared.metrics[worker]` for the worker it is, looked up once.
    metrics: NonNull<WorkerMetrics>,
    /// When it last woke from parking (or started).
    busy_since: std::cell::Cell<std::time::Instant>,
    /// Set when the monitor retook the slot: the thread leaves.
    retaken: std::cell::Cell<bool>,
    /// Spawns made since the last poll ended (see [`count_spawn`]).
    pending_spawns: std::cell::Cell<u64>,
    /// Never borrowed across a task poll: a task that wakes another task on
    /// this worker borrows it to push.
    core: RefCell<Core>,
    /// Wakers found by this worker's own look at the epoll instance.
    io_wakers: RefCell<Vec<std::task::Waker>>,
}

struct Core {
    local: Worker<Notified>,
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
#[inline]
pub(crate) fn schedule_local(
    shared: &Shared,
    task: Notified,
    is_yield: bool,
) -> Result<(), Notified> {
    schedule_on_worker(shared, task, is_yield, false)
}

/// `schedule_local`, counting a spawn if `spawned` (one look at the
/// thread-local worker for both).
#[inline]
fn schedule_on_worker(
    shared: &Shared,
    task: Notified,
    is_yield: bool,
    spawned: bool,
) -> Result<(), Notified> {
    // The task is taken out of `task` only if this thread is one of the
    // runtime's workers and can reach its queues; otherwise it is handed back.
    let mut task = Some(task);
    with_worker_of(shared, |cx| {
        // Set if tasks went to the injector on behalf of a retaken slot.
        let mut handed_on = false;
        let slot = cx.slot();
        let Ok(mut core) = cx.core.try_borrow_mut() else {
            return;
        };
        let task = task.take().expect("task scheduled twice");
        if spawned {
            cx.pending_spawns.set(cx.pending_spawns.get() + 1);
        }
        let notify = if is_yield {
            // Queued as its poll returns: if the slot was retaken
            // meanwhile, `end_poll` says so next and the thread hands its
            // queue on as it leaves.
            core.push_back(shared, task);
            core.check_injector = true;
            true
        } else {
            let prev = slot.push_lifo(task);
            // Pushed first, then a look at the sequence (see `slot.rs`): a
            // monitor retaking this very poll may already have emptied the
            // slot, and the task would wait for the stuck poll to return.
            // Hand it to the injector instead, with the task it displaced.
            if slot.retaken_after_push() {
                let mut tasks: Vec<Notified> = slot.take_lifo().into_iter().chain(prev).collect();
                if !tasks.is_empty() {
                    shared.injector.push_batch(&mut tasks);
                    drop(core);
                    shared.notify_parked();
                }
                return;
            }
            match prev {
                Some(prev) => {
                    core.push_back(shared, prev);
                    // The displaced task went to the local queue, whose
                    // push is no `SeqCst` store: with a fence, look again,
                    // so that a retake since the first look (whose steal
                    // may have missed it) does not strand it either.
                    crate::loom::fence(crate::loom::Ordering::SeqCst);
                    if slot.retaken_after_push() {
                        let mut tasks: Vec<Notified> = slot.take_lifo().into_iter().collect();
                        while let Some(t) = core.local.pop() {
                            tasks.push(t);
                        }
                        shared.injector.push_batch(&mut tasks);
                        handed_on = true;
                    }
                    true
                }
                None => false,
            }
        };
        drop(core);
        if handed_on {
            shared.notify_parked();
        } else if notify {
            offer_local_work(shared);
        }
    });
    match task {
        None => Ok(()),
        Some(task) => Err(task),
    }
}

/// Offers a task this worker queued for itself (a yield, a task the LIFO
/// slot displaced) to a parked worker. This worker runs it anyway, so a
/// plain look at the idle counts decides whether to wake anyone: a worker
/// that parks unseen meanwhile strands nothing, where `notify_parked`'s
/// fence (a locked instruction, on every yield) guards work that only a
/// woken worker would find.
#[inline]
fn offer_local_work(shared: &Shared) {
    if shared.idle.may_wake() {
        shared.notify_parked();
    }
}

/// The body of a worker thread.
pub(crate) fn run_worker(shared: Arc<Shared>, start: Start, local: Worker<Notified>) {
    let index = start.slot;
    shared.slots[index].set_worker(start.worker);
    let cx = Rc::new(WorkerCtx {
        slot: std::cell::Cell::new(NonNull::from(&shared.slots[index])),
        metrics: NonNull::from(&shared.metrics[start.worker]),
        shared: shared.clone(),
        index,
        busy_since: std::cell::Cell::new(std::time::Instant::now()),
        retaken: std::cell::Cell::new(false),
        pending_spawns: std::cell::Cell::new(0),
        core: RefCell::new(Core {
            local,
            tick: 0,
            searching: false,
            check_injector: false,
            rng: 0x9E37_79B9_7F4A_7C15 ^ ((index as u64 + 1) << 17),
        }),
        io_wakers: RefCell::new(Vec::new()),
    });
    WORKER.with(|w| *w.borrow_mut() = Some(cx.clone()));
    crate::task::refresh_clock();
    cx.run();
    WORKER.with(|w| *w.borrow_mut() = None);
    if cx.retaken.get() {
        cx.leave();
    } else {
        cx.count_pending_spawns();
        cx.drain();
    }
}

thread_local! {
    /// The netpoll thread's worker context for the tasks it polls itself,
    /// made at its first inline poll and kept, so that an inline poll
    /// allocates nothing; dropped by [`leave_netpoll_thread`].
    static INLINE: RefCell<Option<Rc<WorkerCtx>>> = const { RefCell::new(None) };
}

/// Polls `task` on this thread, the netpoll thread, as the owner of the
/// spare slot `index` (its queue is `local`) while every worker is parked
/// (see the netpoll's `watch` module). Tasks the poll wakes or spawns go
/// to the slot's LIFO slot and queue, as on a worker: the LIFO task runs
/// next, here, up to [`MAX_LIFO_POLLS`] in a row. When the chain is done,
/// the run goes on as a busy worker does: a non-blocking look at epoll
/// ([`InlineStep::Look`]) and, if it found anything, the next task of
/// the slot (the LIFO task the look woke, else the local queue's first),
/// then that task's chain, for as long as the netpoll side allows (a few
/// looks, a short span: it owes the loop its turn). What is left goes to
/// the workers. `step` learns when each poll begins and when the run ends
/// (the watchdog's timer). If the watchdog retook the slot meanwhile,
/// the thread leaves it as a handed-off worker does.
pub(crate) fn run_inline(
    shared: &Arc<Shared>,
    index: usize,
    local: Worker<Notified>,
    task: Notified,
    step: &mut dyn FnMut(InlineStep) -> bool,
) {
    let cx = INLINE.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| Rc::new(WorkerCtx::for_netpoll_thread(shared.clone())))
            .clone()
    });
    let slot = &shared.slots[index];
    slot.set_worker(shared.num_workers());
    cx.slot.set(NonNull::from(slot));
    // The slot's queue in, the context's own empty one out (both kept:
    // making a queue allocates).
    let mut local = local;
    std::mem::swap(&mut cx.core.borrow_mut().local, &mut local);
    WORKER.with(|w| *w.borrow_mut() = Some(cx.clone()));
    crate::task::refresh_clock();
    cx.metrics().polls.add(1);
    slot.begin_poll(task.addr());
    // After `begin_poll`: a watchdog that stands in finds the poll to
    // retake.
    step(InlineStep::Begin { slot: index });
    task.run();
    let mut kept = slot.end_poll();
    // Then what it woke or spawned last (the LIFO slot), as a worker runs
    // it: a connection accepted here is served here. Then, with the chain
    // done, what a look at epoll makes ready. One deadline covers the
    // whole run.
    let mut unrun = None;
    let mut chain = 0;
    while kept && !shared.is_shutdown() {
        let task = match slot.take_lifo() {
            Some(task) if chain < MAX_LIFO_POLLS => {
                chain += 1;
                task
            }
            Some(task) => {
                // The chain is long enough: the task goes to the workers.
                unrun = Some(task);
                break;
            }
            None => {
                if !step(InlineStep::Look) {
                    break;
                }
                chain = 0;
                let next = slot.take_lifo();
                let Some(task) = next.or_else(|| cx.core.borrow_mut().local.pop()) else {
                    break;
                };
                task
            }
        };
        slot.begin_poll(task.addr());
        if !step(InlineStep::Next) {
            // The watchdog stood in, perhaps between two polls, with
            // nothing to retake: this one must not run here.
            kept = slot.end_poll();
            unrun = Some(task);
            break;
        }
        cx.metrics().polls.add(1);
        task.run();
        kept = slot.end_poll();
    }
    step(InlineStep::End);
    WORKER.with(|w| *w.borrow_mut() = None);
    if kept {
        cx.count_pending_spawns();
    } else {
        // Retaken by the watchdog: the spawns count as from outside, as
        // a handed-off worker's do (`leave`).
        shared.remote_spawns.fetch_add(
            cx.pending_spawns.replace(0),
            std::sync::atomic::Ordering::Relaxed,
        );
    }
    // What the poll queued here goes to the workers, the LIFO task first
    // (straight to one parked worker): the slot goes back empty.
    let mut tasks: Vec<Notified> = unrun.into_iter().collect();
    tasks.extend(cx.take_all());
    std::mem::swap(&mut cx.core.borrow_mut().local, &mut local);
    slot.make_spare(local);
    if !tasks.is_empty() {
        let first = tasks.remove(0);
        shared.hand_off(first, &mut tasks);
    }
}

/// Drops the netpoll thread's inline context (and the scheduler it
/// holds), as the thread leaves its loop.
pub(crate) fn leave_netpoll_thread() {
    INLINE.with(|c| drop(c.borrow_mut().take()));
}

impl WorkerCtx {
    /// The netpoll thread's context: no slot of its own (each inline poll
    /// points it at a spare one), the counters after the workers'.
    fn for_netpoll_thread(shared: Arc<Shared>) -> WorkerCtx {
        let netpoll = shared.num_workers();
        WorkerCtx {
            slot: std::cell::Cell::new(NonNull::from(&shared.slots[0])),
            metrics: NonNull::from(&shared.metrics[netpoll]),
            index: usize::MAX,
            busy_since: std::cell::Cell::new(std::time::Instant::now()),
            retaken: std::cell::Cell::new(false),
            pending_spawns: std::cell::Cell::new(0),
            core: RefCell::new(Core {
                local: Worker::new_fifo(),
                tick: 0,
                searching: false,
                check_injector: false,
                rng: 0x9E37_79B9_7F4A_7C15,
            }),
            io_wakers: RefCell::new(Vec::new()),
            shared,
        }
    }

    #[inline]
    fn slot(&self) -> &Slot {
        // SAFETY: `slot` points into `shared.slots`, a boxed slice that is
        // never resized or moved and lives as long as `self.shared`.
        unsafe { self.slot.get().as_ref() }
    }

    #[inline]
    fn metrics(&self) -> &WorkerMetrics {
        // SAFETY: as for `slot`, into `shared.metrics`.
        unsafe { self.metrics.as_ref() }
    }

    fn run(&self) {
        while !self.shared.is_shutdown() && !self.retaken.get() {
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
            // The time that spawns and parks note, for the task dump.
            crate::task::refresh_clock();
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
        if let Some(task) = self.slot().take_lifo_between_polls() {
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
        if let Some(events) = io.poll_now(&mut wakers) {
            let m = self.metrics();
            m.io_polls.add(1);
            m.io_events.add(events as u64);
        }
        let found = !wakers.is_empty();
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
        let slots = &self.shared.slots;
        let n = slots.len();
        let start = (core.next_rand() % n as u64) as usize;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            loop {
                let before = core.local.len();
                match slots[victim].stealer.steal_batch_and_pop(&core.local) {
                    Steal::Success(task) => {
                        let m = self.metrics();
                        m.steal_operations.add(1);
                        m.steals.add((core.local.len() - before) as u64 + 1);
                        return Some(task);
                    }
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
                // The last searcher found work: if there is more, keep one
                // worker searching. A worker handed a lone task finds none
                // and wakes nobody.
                if self.shared.idle.transition_worker_from_searching()
                    && self.shared.has_pending_work()
                {
                    self.shared.notify_parked();
                }
            }
        }
        if !self.poll(task) {
            return;
        }
        // Message-passing fast path, bounded so the queue is not starved.
        let slot = self.slot();
        for _ in 0..MAX_LIFO_POLLS {
            if self.shared.is_shutdown() {
                // Left in the slot for `drain`.
                return;
            }
            match slot.take_lifo_between_polls() {
                Some(task) => {
                    if !self.poll(task) {
                        return;
                    }
                }
                None => return,
            }
        }
        if let Some(task) = slot.take_lifo_between_polls() {
            self.core.borrow_mut().push_back(&self.shared, task);
            offer_local_work(&self.shared);
        }
    }

    /// Polls one task, inside the slot's poll bracket. Returns `false` if
    /// the monitor retook the slot meanwhile.
    #[inline]
    fn poll(&self, task: Notified) -> bool {
        let slot = self.slot();
        self.metrics().polls.add(1);
        slot.begin_poll(task.addr());
        task.run();
        if slot.end_poll() {
            // Still the owner: the spawns of the poll are this worker's.
            if self.pending_spawns.get() != 0 {
                self.count_pending_spawns();
            }
            return true;
        }
        self.retaken.set(true);
        false
    }

    /// Adds the spawns counted since the last poll to the worker's
    /// counters. Only while this thread owns the slot.
    fn count_pending_spawns(&self) {
        self.metrics().spawns.add(self.pending_spawns.replace(0));
    }

    fn park(&self) {
        let was_searching = {
            let mut core = self.core.borrow_mut();
            if self.slot().has_lifo() || !core.local.is_empty() {
                return;
            }
            std::mem::replace(&mut core.searching, false)
        };
        let idle = &self.shared.idle;
        let m = self.metrics();
        m.parks.add(1);
        m.busy_ns
            .add(self.busy_since.get().elapsed().as_nanos() as u64);
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
        if parked.last_unparked {
            // Nobody refreshes the time that spawns copy while all sleep.
            crate::task::forget_clock();
        }
        if self.shared.is_shutdown() {
            return;
        }
        let wakeup = self.slot().parker.park();
        self.busy_since.set(std::time::Instant::now());
        crate::task::refresh_clock();
        let mut core = self.core.borrow_mut();
        // A task handed to us runs first; at shutdown `drain` drops it.
        if let Some(task) = wakeup.task {
            let displaced = self.slot().push_lifo(task);
            debug_assert!(displaced.is_none(), "parked with an empty LIFO slot");
        }
        // `worker_to_wake` counted us as searching when it picked us. After
        // shutdown's unpark we leave the loop, so the count is moot.
        if !self.shared.is_shutdown() {
            debug_assert!(!idle.is_parked(self.index));
            core.searching = true;
        }
    }

    /// Drops whatever is still queued here; the tasks themselves are
    /// cancelled through the owned-task list.
    fn drain(&self) {
        for t in self.take_all() {
            t.shutdown();
        }
    }

    /// Leaves a slot the monitor retook: hands on what this worker still
    /// holds (tasks it queued while it was stuck), gives the slot back as a
    /// spare, and lets the thread exit. The thread that took its place
    /// counts as the running worker, so nothing in `Idle` changes.
    fn leave(&self) {
        // The worker's counters are its replacement's now: the spawns of
        // the stuck poll count as spawns from outside. Relaxed: a counter.
        self.shared.remote_spawns.fetch_add(
            self.pending_spawns.replace(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut tasks = self.take_all();
        if !tasks.is_empty() {
            self.shared.injector.push_batch(&mut tasks);
            self.shared.notify_parked();
        }
        let local = std::mem::replace(&mut self.core.borrow_mut().local, Worker::new_fifo());
        self.slot().make_spare(local);
    }

    /// Takes every task this worker holds: the LIFO slot and local queue.
    fn take_all(&self) -> Vec<Notified> {
        let core = self.core.borrow_mut();
        let mut tasks: Vec<Notified> = self.slot().take_lifo().into_iter().collect();
        while let Some(t) = core.local.pop() {
            tasks.push(t);
        }
        tasks
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::{Duration, Instant};

    /// A task stuck in one poll (past the monitor's 10 ms) that spawns all
    /// the while, beside its replacement spawning too: every spawn is
    /// counted exactly once, by the worker that still owned the slot or as
    /// a spawn from outside, and the total never goes backwards.
    #[test]
    fn spawns_of_a_stuck_poll_are_counted_once() {
        let rt = crate::Builder::new()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let metrics = rt.handle().metrics();
        let before = metrics.spawned_tasks_count();
        let (stuck, beside) = rt.block_on(async {
            let stuck = crate::spawn(async {
                let start = Instant::now();
                let mut n = 0u64;
                // Blocks its worker for 60 ms, spawning every 100 µs.
                while start.elapsed() < Duration::from_millis(60) {
                    drop(crate::spawn(async {}));
                    n += 1;
                    std::thread::sleep(Duration::from_micros(100));
                }
                n
            });
            // Spawned from `block_on` (outside), runs on the replacement.
            let beside = crate::spawn(async {
                let mut n = 0u64;
                for _ in 0..200 {
                    drop(crate::spawn(async {}));
                    n += 1;
                    crate::yield_now().await;
                }
                n
            });
            (stuck.await.expect("stuck"), beside.await.expect("beside"))
        });
        let mut last = before;
        // The stuck thread counts its spawns when it leaves: wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let want = before + 2 + stuck + beside;
        loop {
            let now = metrics.spawned_tasks_count();
            assert!(now >= last, "spawned_tasks went back: {last} -> {now}");
            last = now;
            if now == want || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            metrics.blocked_worker_handoffs() >= 1,
            "the stuck worker was handed off"
        );
        assert_eq!(last, want, "every spawn counted once");
    }
}
