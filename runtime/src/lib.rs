//! gopark's runtime: a work-stealing scheduler and a Go-style netpoller.
//!
//! Users write one plain, sequential-looking `async` handler per connection.
//! Underneath:
//!
//! * **Tasks** ([`spawn`], [`JoinHandle`]) are single allocations whose
//!   transitions an atomic state word decides. The [`task`] module holds
//!   tokio's toolbox around them: [`JoinSet`](task::JoinSet),
//!   [`AbortHandle`](task::AbortHandle), task [`Id`](task::Id)s,
//!   [`task_local!`] and [`LocalSet`](task::LocalSet) for `!Send` futures.
//! * **Workers** (one per core, or `GOPARK_WORKERS`) run tasks from local
//!   queues, a LIFO slot and a global injector, steal from each other when
//!   idle, and park when there is nothing to do.
//! * **One netpoll thread** per runtime owns its epoll instance. Every
//!   descriptor is non-blocking and registered once, edge-triggered, through
//!   a [`PollDesc`]; an operation that gets `EAGAIN` parks its task there,
//!   and the netpoll thread hands every task that became ready (and every
//!   expired [timer](time)) back to the scheduler in one batch.
//!
//! ```
//! use std::time::Duration;
//!
//! let total = gopark_runtime::block_on(async {
//!     let mut handles = Vec::new();
//!     for i in 0..10u64 {
//!         handles.push(gopark_runtime::spawn(async move {
//!             gopark_runtime::time::sleep(Duration::from_millis(i)).await;
//!             i
//!         }));
//!     }
//!     let mut total = 0;
//!     for h in handles {
//!         total += h.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 45);
//! ```
//!
//! # A blocked worker is handed off
//!
//! Scheduling is cooperative: a task runs until it awaits something that
//! has to wait. A task that blocks its thread instead — a blocking system
//! call, `std::thread::sleep`, a loop that never awaits — would hold up its
//! worker and every task queued behind it. gopark does what Go's `sysmon`
//! does for a goroutine stuck in a syscall: the netpoll thread, which wakes
//! periodically while any worker runs, notices a worker that has been
//! inside one poll for 10 ms, moves that worker's queued tasks (its LIFO
//! slot included) to the global queue, and starts a thread in its place.
//! `worker_threads` threads keep running tasks meanwhile; the stuck thread,
//! once its poll returns, passes on what it queued and exits, so the thread
//! count returns to `worker_threads`. At most `2 × worker_threads` worker
//! threads exist at once.
//!
//! This bounds the damage of a stuck task (the tasks behind it wait about
//! 10 ms, not for as long as it blocks); it is not a licence to block:
//! work that blocks belongs on [`spawn_blocking`], whose pool is sized for
//! it.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! let rt = gopark_runtime::Builder::new().worker_threads(1).build().unwrap();
//! rt.block_on(async {
//!     // Blocks the only worker for 300 ms, never awaiting.
//!     let stuck = gopark_runtime::spawn(async {
//!         std::thread::sleep(Duration::from_millis(300));
//!     });
//!     // Runs on the thread that replaces it, long before the 300 ms are up.
//!     let start = Instant::now();
//!     gopark_runtime::spawn(async {}).await.unwrap();
//!     assert!(start.elapsed() < Duration::from_millis(290));
//!     stuck.await.unwrap();
//! });
//! ```
//!
//! # Virtual time
//!
//! A runtime's clock can be paused for tests
//! ([`Builder::start_paused`], [`time::pause`], [`time::advance`]), on the
//! multi-thread runtime: while every task is blocked, the clock jumps to
//! the next timer, as in Go's `testing/synctest`. The [`time`] module says
//! precisely when.
//!
//! # Seeing inside
//!
//! Always on, at a cost of a few relaxed counters per worker:
//!
//! * [`Handle::metrics`]: the scheduler's counters with tokio's names
//!   (`worker_poll_count`, `worker_steal_count`…), plus the netpoller's own
//!   (wake-ups, events, polls taken by workers, time in standby, timers,
//!   deadlines, descriptors, blocking threads).
//! * [`Handle::dump`]: every live task, where it was spawned, what it waits
//!   for (a descriptor and direction with its deadline, a timer, another
//!   task) and for how long.
//! * `GOPARK_SCHEDTRACE=MS`: one line on stderr every `MS` milliseconds
//!   with the workers' states, queue depths and the counters' deltas, like
//!   Go's `GODEBUG=schedtrace=MS`:
//!
//!   ```text
//!   gopark 1000ms: workers=2 running=1 parked=1 searching=0 handoffs=+0 globalq=0 localq=[0 3] tasks=12 spawned=+5 polls=+1020 steals=+3 parks=+40 netpoll: wakeups=+12 events=+300 by_workers=+80 standby=800ms fds=14 timers: armed=+10 fired=+8 cancelled=+2 deadlines=+0 blocking=1/1
//!   ```
//!
//!   `running`, `parked` and `searching` count workers; `globalq` and
//!   `localq` are queue depths; a `+` marks a count since the previous
//!   line; `by_workers` counts the looks at epoll workers took themselves,
//!   and `standby` the time the netpoll thread let them; `blocking=T/I` is
//!   blocking-pool threads, of which idle.
//! * `GOPARK_DUMP_ON_SIGQUIT=1`: SIGQUIT (`kill -QUIT`, Ctrl-\\) writes the
//!   dump to stderr and the process goes on, as a Go program's goroutine
//!   dump does (without exiting).
#![warn(missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

// The layers, top to bottom; each imports only from the ones below it:
// rt > scheduler > blocking > netpoll > time > task > coop, counter, loom.
// The `task` module's public face (`JoinSet`, `LocalSet`, and the
// re-exported `spawn`) sits on top of `rt` and spawns through it; the task
// machinery beneath it (raw, state, join, list) stays at the bottom.
mod blocking;
mod coop;
mod counter;
mod loom;
mod netpoll;
mod rt;
mod scheduler;
pub mod task;
pub mod time;

pub use netpoll::{Direction, PollDesc, ReadyEvent};
pub use rt::{
    block_on, spawn, spawn_blocking, yield_now, Builder, Dump, EnterGuard, Handle, MetricsSnapshot,
    Runtime, RuntimeMetrics, TaskDump, TaskId, TaskState, TryCurrentError, WorkerSnapshot,
};
pub use task::{JoinError, JoinHandle};
