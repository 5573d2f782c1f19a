//! [`RuntimeMetrics`]: a runtime's counters, read live, with tokio's names
//! where tokio has the concept, and the netpoller's own beside them.
//!
//! Every counter is a monotonic `u64` that only grows; gauges (queue
//! depths, live tasks, registered descriptors, threads) say how things are
//! now. Counters are kept where they are written — each worker's in memory
//! that worker owns, the netpoll thread's in its own, the timers' under the
//! timer lock they already take — so keeping them costs a plain load and
//! store on the paths that count, and reading them never stops a worker.
//! A figure read while the runtime runs is some recent value; two reads
//! of different counters are not one snapshot.

use std::fmt;
use std::time::Duration;

use super::Handle;

/// A runtime's counters and gauges. Get it with [`Handle::metrics`]. It
/// holds the runtime's shared state (as a [`Handle`] does): the epoll
/// instance and its descriptors stay open until the last one is dropped.
///
/// ```
/// let rt = gopark_runtime::Builder::new().worker_threads(2).build().unwrap();
/// let m = rt.handle().metrics();
/// let spawned = m.spawned_tasks_count();
/// rt.block_on(async {
///     for _ in 0..10 {
///         gopark_runtime::spawn(async {}).await.unwrap();
///     }
/// });
/// assert_eq!(m.spawned_tasks_count() - spawned, 10);
/// assert_eq!(m.num_workers(), 2);
/// ```
#[derive(Clone)]
pub struct RuntimeMetrics {
    handle: Handle,
}

impl fmt::Debug for RuntimeMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.snapshot(), f)
    }
}

impl RuntimeMetrics {
    pub(crate) fn new(handle: Handle) -> RuntimeMetrics {
        RuntimeMetrics { handle }
    }

    /// Worker threads that run tasks (`worker_threads`).
    pub fn num_workers(&self) -> usize {
        self.handle.shared.num_workers()
    }

    /// Tasks spawned and not yet finished.
    pub fn num_alive_tasks(&self) -> usize {
        self.handle.shared.owned.len()
    }

    /// Tasks spawned since the runtime started.
    pub fn spawned_tasks_count(&self) -> u64 {
        self.handle.shared.spawned_tasks()
    }

    /// Tasks waiting in the global queue (the injector).
    pub fn global_queue_depth(&self) -> usize {
        self.handle.shared.injector.len()
    }

    /// Task polls made by worker `worker` (`0..num_workers()`).
    ///
    /// # Panics
    ///
    /// Panics if `worker` is not below [`num_workers`](Self::num_workers),
    /// as do the other `worker_*` methods.
    pub fn worker_poll_count(&self, worker: usize) -> u64 {
        self.handle.shared.metrics[worker].polls.get()
    }

    /// Tasks worker `worker` took from other workers' queues.
    pub fn worker_steal_count(&self, worker: usize) -> u64 {
        self.handle.shared.metrics[worker].steals.get()
    }

    /// Steal attempts of worker `worker` that took at least one task.
    pub fn worker_steal_operations(&self, worker: usize) -> u64 {
        self.handle.shared.metrics[worker].steal_operations.get()
    }

    /// Times worker `worker` parked (had nothing to do and slept).
    pub fn worker_park_count(&self, worker: usize) -> u64 {
        self.handle.shared.metrics[worker].parks.get()
    }

    /// Tasks in worker `worker`'s local queue now.
    pub fn worker_local_queue_depth(&self, worker: usize) -> usize {
        let shared = &self.handle.shared;
        shared
            .slots
            .iter()
            .filter(|s| s.worker() == worker)
            .map(|s| s.stealer.len() + usize::from(s.has_lifo()))
            .sum()
    }

    /// Time worker `worker` spent unparked (running tasks or looking for
    /// them), up to its last park.
    pub fn worker_total_busy_duration(&self, worker: usize) -> Duration {
        Duration::from_nanos(self.handle.shared.metrics[worker].busy_ns.get())
    }

    /// Tasks spawned from worker `worker` (the rest were spawned from
    /// other threads).
    pub fn worker_spawn_count(&self, worker: usize) -> u64 {
        self.handle.shared.metrics[worker].spawns.get()
    }

    /// Workers handed off because they stayed inside one poll too long
    /// (a blocking call, a loop that never awaits): another thread took
    /// their place (Go's `sysmon` retake).
    pub fn blocked_worker_handoffs(&self) -> u64 {
        self.handle.shared.handoffs.get()
    }

    /// Times the netpoll thread woke, from `epoll_wait` or from standby.
    pub fn netpoll_wakeups(&self) -> u64 {
        self.handle.shared.io.stats.wakeups.get()
    }

    /// Readiness events harvested from the epoll instance, by the netpoll
    /// thread and by workers together.
    pub fn netpoll_events(&self) -> u64 {
        let stats = &self.handle.shared.io.stats;
        stats.events.get() + stats.inline_look_events.get() + self.worker_sum(|m| m.io_events.get())
    }

    /// Events per wake-up of the netpoll thread, counting only the events
    /// its wake-ups harvested (not the workers' looks, nor its inline
    /// runs' own; 0 before its first wake-up).
    pub fn netpoll_events_per_wakeup(&self) -> f64 {
        let stats = &self.handle.shared.io.stats;
        let wakeups = stats.wakeups.get();
        if wakeups == 0 {
            return 0.0;
        }
        stats.events.get() as f64 / wakeups as f64
    }

    /// Looks at the epoll instance the netpoll thread took (blocking or
    /// not, its inline runs' own looks included).
    pub fn netpoll_polls_by_thread(&self) -> u64 {
        let stats = &self.handle.shared.io.stats;
        stats.polls.get() + stats.inline_looks.get()
    }

    /// Non-blocking looks at the epoll instance taken by workers while the
    /// netpoll thread stood by.
    pub fn netpoll_polls_by_workers(&self) -> u64 {
        self.worker_sum(|m| m.io_polls.get())
    }

    /// Time the netpoll thread spent standing by, while running workers
    /// looked at the epoll instance themselves.
    pub fn netpoll_standby_duration(&self) -> Duration {
        Duration::from_nanos(self.handle.shared.io.stats.standby_ns.get())
    }

    /// Tasks the netpoll thread polled itself: woken at an idle runtime,
    /// the first task of a wake-up runs there instead of on a worker woken
    /// for it (see [`Builder::netpoll_inline`](crate::Builder::netpoll_inline)).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = gopark_runtime::Builder::new().worker_threads(1).build().unwrap();
    /// let task = rt.spawn(async {
    ///     gopark_runtime::time::sleep(Duration::from_millis(5)).await;
    /// });
    /// rt.block_on(task).unwrap();
    /// // Most often the timer found the worker parked, and the task ran
    /// // on the netpoll thread; on a busy machine the worker may still
    /// // have been awake and run it.
    /// assert!(rt.handle().metrics().netpoll_inline_polls() <= 1);
    /// ```
    pub fn netpoll_inline_polls(&self) -> u64 {
        self.handle.shared.io.stats.inline_polls.get()
    }

    /// Times the netpoll thread's watchdog stood in for it: a task the
    /// thread polled itself had not returned after 10 ms, and the watchdog
    /// served I/O and timers until it did.
    pub fn netpoll_stand_ins(&self) -> u64 {
        self.handle.shared.io.stats.stand_ins.get()
    }

    /// Descriptors registered with the netpoller now (live `PollDesc`s).
    pub fn registered_fds(&self) -> usize {
        self.handle.shared.io.registered()
    }

    /// Timers armed: sleeps, timeouts, interval ticks, socket deadlines.
    pub fn timers_armed(&self) -> u64 {
        self.handle.shared.io.time.lock().stats.armed
    }

    /// Sleep timers (sleeps, timeouts, intervals) that came due.
    pub fn timers_fired(&self) -> u64 {
        self.handle.shared.io.time.lock().stats.fired
    }

    /// Timers removed before they came due (a timeout whose future won).
    pub fn timers_cancelled(&self) -> u64 {
        self.handle.shared.io.time.lock().stats.cancelled
    }

    /// Socket deadline timers that came due.
    pub fn deadlines_expired(&self) -> u64 {
        self.handle.shared.io.time.lock().stats.deadlines
    }

    /// Threads of the blocking pool now.
    pub fn blocking_threads(&self) -> usize {
        self.handle.shared.blocking.threads().0
    }

    /// Threads of the blocking pool waiting for a job now.
    pub fn blocking_idle_threads(&self) -> usize {
        self.handle.shared.blocking.threads().1
    }

    fn worker_sum(&self, f: impl Fn(&crate::scheduler::metrics::WorkerMetrics) -> u64) -> u64 {
        self.handle.shared.metrics.iter().map(f).sum()
    }

    /// Every figure at once (read one after the other), e.g. to print or to
    /// subtract from a later one.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let shared = &self.handle.shared;
        let timers = shared.io.time.lock().stats;
        let workers = (0..self.num_workers())
            .map(|w| WorkerSnapshot {
                polls: self.worker_poll_count(w),
                steals: self.worker_steal_count(w),
                parks: self.worker_park_count(w),
                local_queue_depth: self.worker_local_queue_depth(w),
                busy: self.worker_total_busy_duration(w),
            })
            .collect();
        let (blocking_threads, blocking_idle) = shared.blocking.threads();
        MetricsSnapshot {
            workers,
            alive_tasks: self.num_alive_tasks(),
            spawned_tasks: self.spawned_tasks_count(),
            global_queue_depth: self.global_queue_depth(),
            parked_workers: self.num_workers() - shared.idle.num_unparked().min(self.num_workers()),
            searching_workers: shared.idle.num_searching(),
            netpoll_wakeups: self.netpoll_wakeups(),
            netpoll_events: self.netpoll_events(),
            netpoll_polls_by_thread: self.netpoll_polls_by_thread(),
            netpoll_polls_by_workers: self.netpoll_polls_by_workers(),
            netpoll_standby: self.netpoll_standby_duration(),
            netpoll_inline_polls: self.netpoll_inline_polls(),
            netpoll_stand_ins: self.netpoll_stand_ins(),
            registered_fds: self.registered_fds(),
            blocked_worker_handoffs: self.blocked_worker_handoffs(),
            timers_armed: timers.armed,
            timers_fired: timers.fired,
            timers_cancelled: timers.cancelled,
            deadlines_expired: timers.deadlines,
            blocking_threads,
            blocking_idle,
        }
    }
}

/// One worker's figures in a [`MetricsSnapshot`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerSnapshot {
    /// Task polls.
    pub polls: u64,
    /// Tasks stolen from other workers.
    pub steals: u64,
    /// Times parked.
    pub parks: u64,
    /// Tasks in its local queue.
    pub local_queue_depth: usize,
    /// Time spent unparked.
    pub busy: Duration,
}

/// All of a runtime's figures, read one after the other
/// ([`RuntimeMetrics::snapshot`]). Its `Display` is one line per group, the
/// text `/debug/metrics` of the HTTP example serves.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Per worker.
    pub workers: Vec<WorkerSnapshot>,
    /// Tasks alive.
    pub alive_tasks: usize,
    /// Tasks spawned.
    pub spawned_tasks: u64,
    /// Tasks in the global queue.
    pub global_queue_depth: usize,
    /// Workers parked now.
    pub parked_workers: usize,
    /// Workers searching for work now.
    pub searching_workers: usize,
    /// Wake-ups of the netpoll thread.
    pub netpoll_wakeups: u64,
    /// Readiness events harvested.
    pub netpoll_events: u64,
    /// Looks at epoll by the netpoll thread.
    pub netpoll_polls_by_thread: u64,
    /// Looks at epoll by workers.
    pub netpoll_polls_by_workers: u64,
    /// Time the netpoll thread stood by.
    pub netpoll_standby: Duration,
    /// Tasks the netpoll thread polled itself.
    pub netpoll_inline_polls: u64,
    /// Times the watchdog stood in for the netpoll thread.
    pub netpoll_stand_ins: u64,
    /// Registered descriptors.
    pub registered_fds: usize,
    /// Workers handed off while stuck in a poll.
    pub blocked_worker_handoffs: u64,
    /// Timers armed.
    pub timers_armed: u64,
    /// Sleep timers fired.
    pub timers_fired: u64,
    /// Timers cancelled.
    pub timers_cancelled: u64,
    /// Socket deadlines expired.
    pub deadlines_expired: u64,
    /// Blocking-pool threads.
    pub blocking_threads: usize,
    /// Idle blocking-pool threads.
    pub blocking_idle: usize,
}

impl fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tasks: alive {} spawned {} global_queue {}",
            self.alive_tasks, self.spawned_tasks, self.global_queue_depth
        )?;
        writeln!(
            f,
            "workers: {} parked {} searching {} handoffs {}",
            self.workers.len(),
            self.parked_workers,
            self.searching_workers,
            self.blocked_worker_handoffs
        )?;
        for (i, w) in self.workers.iter().enumerate() {
            writeln!(
                f,
                "worker {i}: polls {} steals {} parks {} local_queue {} busy {:?}",
                w.polls, w.steals, w.parks, w.local_queue_depth, w.busy
            )?;
        }
        writeln!(
            f,
            "netpoll: wakeups {} events {} polls_by_thread {} polls_by_workers {} standby {:?} inline_polls {} stand_ins {} fds {}",
            self.netpoll_wakeups,
            self.netpoll_events,
            self.netpoll_polls_by_thread,
            self.netpoll_polls_by_workers,
            self.netpoll_standby,
            self.netpoll_inline_polls,
            self.netpoll_stand_ins,
            self.registered_fds
        )?;
        writeln!(
            f,
            "timers: armed {} fired {} cancelled {} deadlines_expired {}",
            self.timers_armed, self.timers_fired, self.timers_cancelled, self.deadlines_expired
        )?;
        writeln!(
            f,
            "blocking: threads {} idle {}",
            self.blocking_threads, self.blocking_idle
        )
    }
}

impl Handle {
    /// This runtime's counters and gauges; see [`RuntimeMetrics`].
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics::new(self.clone())
    }
}
