//! [`Builder`]: the settings of a runtime, and the start of its threads —
//! the workers, each on its slot, and the netpoll thread.

use std::any::Any;
use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle as ThreadHandle};
use std::time::Duration;

use crossbeam_deque::Worker;

use super::runtime::Exits;
use super::{context, default, trace, Handle, Runtime};
use crate::blocking::BlockingPool;
use crate::netpoll::Netpoller;
use crate::scheduler::{self, Shared, Slot};
use crate::task::Notified;
use crate::time::driver as time_driver;

/// Configures and builds a [`Runtime`].
///
/// ```
/// let rt = gopark_runtime::Builder::new()
///     .worker_threads(2)
///     .thread_name("server")
///     .build()
///     .unwrap();
/// assert_eq!(rt.block_on(rt.spawn(async { 1 + 1 })).unwrap(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    worker_threads: Option<usize>,
    thread_name: String,
    max_blocking_threads: usize,
    blocking_keep_alive: Duration,
    start_paused: bool,
    netpoll_inline: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

/// Worker count for a runtime that does not set one: `GOPARK_WORKERS` if it
/// is a positive integer (like Go's `GOMAXPROCS`), else one per core.
fn default_workers() -> usize {
    std::env::var("GOPARK_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Whether the netpoll thread runs tasks itself unless the builder says:
/// yes, unless `GOPARK_NETPOLL_INLINE` is `0` (for A/B runs of programs
/// that do not expose the setting).
fn default_netpoll_inline() -> bool {
    std::env::var("GOPARK_NETPOLL_INLINE").map_or(true, |v| v.trim() != "0")
}

impl Builder {
    /// A builder with the defaults: one worker per core (or
    /// `GOPARK_WORKERS`), threads named `gopark`, up to 512 blocking
    /// threads that exit after 10 s idle.
    pub fn new() -> Builder {
        Builder {
            worker_threads: None,
            thread_name: "gopark".to_string(),
            max_blocking_threads: 512,
            blocking_keep_alive: Duration::from_secs(10),
            start_paused: false,
            netpoll_inline: default_netpoll_inline(),
        }
    }

    /// Sets the number of worker threads.
    ///
    /// # Panics
    ///
    /// Panics if `n` is zero.
    pub fn worker_threads(&mut self, n: usize) -> &mut Builder {
        assert!(n > 0, "a runtime needs at least one worker thread");
        self.worker_threads = Some(n);
        self
    }

    /// Whether the netpoll thread, woken at an idle runtime (every worker
    /// parked), polls the first task it made ready itself, as Go's poller
    /// does, instead of waking a worker for it: a request that reaches an
    /// idle server then costs one thread wake-up instead of two. The other
    /// tasks of the same wake-up go to the workers. Unless it slept more
    /// than 250 µs (a lone request), the thread then looks at epoll for the
    /// next ready task and runs it too, as a busy worker does, for up to 64
    /// looks and 100 µs while every worker stays parked: a ping-pong between
    /// two tasks of the runtime costs a look per message, not a wake-up.
    /// A task that blocks the netpoll thread is noticed after 10 ms by a
    /// watchdog thread, which serves I/O and timers in its place until the
    /// task returns.
    ///
    /// On by default (`GOPARK_NETPOLL_INLINE=0` turns the default off);
    /// `false` keeps user code off the netpoll thread.
    ///
    /// ```
    /// let rt = gopark_runtime::Builder::new()
    ///     .worker_threads(1)
    ///     .netpoll_inline(false)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(rt.block_on(rt.spawn(async { 7 })).unwrap(), 7);
    /// assert_eq!(rt.handle().metrics().netpoll_inline_polls(), 0);
    /// ```
    pub fn netpoll_inline(&mut self, on: bool) -> &mut Builder {
        self.netpoll_inline = on;
        self
    }

    /// Sets the name prefix of the runtime's threads.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Builder {
        self.thread_name = name.into();
        self
    }

    /// Sets the most threads the blocking pool may run at once.
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Builder {
        self.max_blocking_threads = n.max(1);
        self
    }

    /// Sets how long an idle blocking thread waits for work before it exits.
    pub fn blocking_keep_alive(&mut self, d: Duration) -> &mut Builder {
        self.blocking_keep_alive = d;
        self
    }

    /// Starts the runtime with its clock paused: time moves only by
    /// [`time::advance`](crate::time::advance) or by jumping to the next
    /// timer whenever every task is blocked (see
    /// [virtual time](crate::time#virtual-time)). For tests.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = gopark_runtime::Builder::new().start_paused(true).build().unwrap();
    /// let waited = rt.block_on(async {
    ///     let start = gopark_runtime::time::now();
    ///     gopark_runtime::time::sleep(Duration::from_secs(24 * 3600)).await;
    ///     gopark_runtime::time::now() - start
    /// });
    /// assert_eq!(waited, Duration::from_secs(24 * 3600));
    /// ```
    pub fn start_paused(&mut self, paused: bool) -> &mut Builder {
        self.start_paused = paused;
        self
    }

    /// Starts the workers and the netpoll thread.
    pub fn build(&self) -> io::Result<Runtime> {
        let n = self
            .worker_threads
            .unwrap_or_else(default_workers)
            .min(0xFFFF);
        let io = Netpoller::new(self.netpoll_inline)?;
        if self.start_paused {
            io.time.pause();
        }
        // `n` active slots and as many spare ones, for workers handed off
        // while stuck (see the scheduler's monitor).
        let mut locals: Vec<Worker<_>> = (0..2 * n).map(|_| Worker::new_fifo()).collect();
        let slots: Box<[Slot]> = locals.iter().map(Slot::new).collect();
        let spares = locals.split_off(n);
        let name = self.thread_name.clone();
        // Counts the runtime's threads until each exits, for a shutdown
        // with a deadline.
        let exits = Arc::new(Exits::default());
        let shared = Arc::new_cyclic(|me: &std::sync::Weak<Shared>| {
            // A blocking thread enters the runtime while it lives, if the
            // runtime still does.
            let weak = me.clone();
            let enter = move || {
                weak.upgrade()
                    .map(|shared| Box::new(context::enter(Handle { shared })) as Box<dyn Any>)
            };
            let weak = me.clone();
            let theirs = exits.clone();
            let start_worker = move |start, local| match weak.upgrade() {
                Some(shared) => match start_worker(&name, shared.clone(), &theirs, start, local) {
                    Ok(thread) => {
                        // Threads handed off earlier have left by now, most
                        // of them: those are joined (their function has
                        // returned, so a join only waits for the exit to
                        // end), so that none outlives a shutdown unseen, and
                        // the rest kept for the shutdown to join.
                        let done: Vec<_> = {
                            let mut extra = shared.extra_threads.lock();
                            let (done, running) = extra.drain(..).partition(|t| t.is_finished());
                            *extra = running;
                            extra.push(thread);
                            done
                        };
                        for t in done {
                            let _ = t.join();
                        }
                        Ok(())
                    }
                    Err(local) => Err(local),
                },
                None => Err(local),
            };
            Shared::new(
                slots,
                n,
                io,
                BlockingPool::new(
                    self.max_blocking_threads,
                    self.blocking_keep_alive,
                    self.thread_name.clone(),
                    Box::new(enter),
                ),
                Box::new(start_worker),
            )
        });
        for (i, local) in spares.into_iter().enumerate() {
            shared.slots[n + i].make_spare(local);
        }
        // From now on a timer polled off every runtime falls back on the
        // default runtime's.
        time_driver::set_default(default::default_time_driver);
        let handle = Handle {
            shared: shared.clone(),
        };
        let tracing = trace::Tracing::from_env(&handle);
        let hook = tracing.hook(handle.clone());
        let mut rt = Runtime {
            handle,
            threads: Vec::with_capacity(n + 1),
            tracing,
            exits: exits.clone(),
            shut_down: false,
        };
        for (index, local) in locals.into_iter().enumerate() {
            let start = scheduler::Start {
                slot: index,
                worker: index,
            };
            let t = start_worker(&self.thread_name, shared.clone(), &exits, start, local)
                .map_err(|_| io::Error::other("could not start a worker thread"))?;
            rt.threads.push(t);
        }
        let poller = shared.clone();
        let running = exits.start();
        let t = thread::Builder::new()
            .name(format!("{}-netpoll", self.thread_name))
            .spawn(move || {
                let _running = running;
                // Entered: it polls tasks itself at an idle runtime.
                let _enter = context::enter(Handle {
                    shared: poller.clone(),
                });
                poller.io.run(&poller, hook);
                scheduler::leave_netpoll_thread();
            })?;
        rt.threads.push(t);
        if self.netpoll_inline {
            let watchdog = shared.clone();
            let running = exits.start();
            let t = thread::Builder::new()
                .name(format!("{}-watchdog", self.thread_name))
                .spawn(move || {
                    let _running = running;
                    // Entered: as the netpoll thread's stand-in it wakes
                    // tasks, as the netpoll thread does.
                    let _enter = context::enter(Handle {
                        shared: watchdog.clone(),
                    });
                    watchdog.io.run_watchdog(&watchdog)
                })?;
            rt.threads.push(t);
        }
        Ok(rt)
    }
}

/// Starts a worker thread, entered into the runtime. Gives the local queue
/// back if the thread could not start.
fn start_worker(
    name: &str,
    shared: Arc<Shared>,
    exits: &Arc<Exits>,
    start: scheduler::Start,
    local: Worker<Notified>,
) -> Result<ThreadHandle<()>, Worker<Notified>> {
    // The queue travels through a slot the new thread takes it from, so it
    // can be given back if the spawn fails.
    let cell = Arc::new(parking_lot::Mutex::new(Some(local)));
    let theirs = cell.clone();
    let running = exits.start();
    let spawned = thread::Builder::new()
        .name(format!("{name}-worker-{}", start.slot))
        .spawn(move || {
            let _running = running;
            let Some(local) = theirs.lock().take() else {
                return;
            };
            let _enter = context::enter(Handle {
                shared: shared.clone(),
            });
            scheduler::run_worker(shared, start, local);
        });
    match spawned {
        Ok(thread) => Ok(thread),
        Err(_) => Err(cell.lock().take().expect("the thread never started")),
    }
}
