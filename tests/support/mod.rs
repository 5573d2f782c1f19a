//! Helpers shared by the runtime integration tests (`rt_*`, `time_*`).
//!
//! * [`rt_test!`] runs one test body on a 1-worker and a 4-worker runtime
//!   (tokio's `rt_common.rs` idea). An `async fn` body runs as a task on the
//!   runtime, bounded by a runtime `timeout`; a `fn name(workers: usize)`
//!   body builds what it needs itself. Both are also bounded by a
//!   [`Watchdog`] thread that aborts the process if the runtime hangs so
//!   badly that its own timers cannot fire.
//! * [`DropCount`]: drop-counting guards to put inside futures, so a test
//!   can check that shutdown or abort dropped every one of them.
//! * [`threads`]: per-thread CPU time and context switches from
//!   `/proc/self/task`, for "an idle runtime costs nothing" checks.
#![allow(dead_code, unused_macros)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gopark::runtime::{self, Builder, Runtime};

/// Worker counts every `rt_test!` body runs on.
pub const WORKERS: [usize; 2] = [1, 4];

/// Bound of one test body on one runtime: a hang detector, far above what
/// any body needs (a few seconds at most on a loaded 2-core machine).
pub const LIMIT: Duration = Duration::from_secs(30);

/// A runtime with `workers` workers whose threads are named `name-…`.
pub fn runtime(workers: usize, name: &str) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .thread_name(name)
        .build()
        .expect("build runtime")
}

/// Runs `body()` as a task on a fresh runtime with `workers` workers,
/// bounded by [`LIMIT`] (a runtime timer) and a watchdog (wall clock).
/// A panic in the body fails the test with the body's own message.
pub fn run<F, Fut>(workers: usize, name: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let what = format!("{name} on {workers} worker(s)");
    let dog = Watchdog::start(what.clone(), LIMIT * 2);
    let rt = runtime(workers, &format!("rt{workers}"));
    let fut = body();
    let res = rt.block_on(async move { runtime::time::timeout(LIMIT, runtime::spawn(fut)).await });
    drop(rt);
    dog.disarm();
    match res {
        Err(_) => panic!("{what}: timed out after {LIMIT:?}"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("{what}: task failed: {e}"),
        Ok(Ok(())) => {}
    }
}

/// Runs `body` under a watchdog of twice [`LIMIT`].
pub fn guard(workers: usize, name: &str, body: impl FnOnce()) {
    let dog = Watchdog::start(format!("{name} on {workers} worker(s)"), LIMIT * 2);
    body();
    dog.disarm();
}

/// One test body, run on 1 and 4 workers:
///
/// ```ignore
/// rt_test! {
///     async fn values() {
///         assert_eq!(runtime::spawn(async { 1 }).await.unwrap(), 1);
///     }
/// }
///
/// rt_test! {
///     fn drop_runtime(workers: usize) {
///         let rt = support::runtime(workers, "x");
///         ...
///     }
/// }
/// ```
///
/// Each expands to a module `name` with tests `one_worker` and
/// `four_workers`. Attributes before `fn` (e.g. `#[ignore = "..."]`) go on
/// both tests.
macro_rules! rt_test {
    ($(#[$attr:meta])* async fn $name:ident() $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() $body

            $(#[$attr])*
            #[test]
            fn one_worker() {
                crate::support::run(1, stringify!($name), body)
            }

            $(#[$attr])*
            #[test]
            fn four_workers() {
                crate::support::run(4, stringify!($name), body)
            }
        }
    };
    ($(#[$attr:meta])* fn $name:ident($workers:ident: usize) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($workers: usize) $body

            $(#[$attr])*
            #[test]
            fn one_worker() {
                crate::support::guard(1, stringify!($name), || body(1))
            }

            $(#[$attr])*
            #[test]
            fn four_workers() {
                crate::support::guard(4, stringify!($name), || body(4))
            }
        }
    };
}

// The watchdog is the network tests' own.
#[path = "../net_support/mod.rs"]
mod net_support;
pub use net_support::Watchdog;

/// Counts how many of its guards were dropped.
#[derive(Clone, Default)]
pub struct DropCount(Arc<AtomicUsize>);

/// Bumps its [`DropCount`] when dropped.
pub struct DropGuard(Arc<AtomicUsize>);

impl DropCount {
    pub fn new() -> DropCount {
        DropCount::default()
    }

    pub fn guard(&self) -> DropGuard {
        DropGuard(self.0.clone())
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs a closure when dropped.
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Returns `true` on a worker thread of the runtime named `prefix`.
pub fn on_worker_of(prefix: &str) -> bool {
    thread::current()
        .name()
        .is_some_and(|n| n.starts_with(&format!("{prefix}-worker-")))
}

/// The current thread's name, or `""`.
pub fn thread_name() -> String {
    thread::current().name().unwrap_or("").to_string()
}

/// Per-thread accounting from `/proc/self/task`.
pub mod threads {
    use std::fs;

    /// One thread's counters.
    #[derive(Debug, Clone, Default)]
    pub struct Usage {
        pub threads: usize,
        /// Their names.
        pub names: Vec<String>,
        /// `utime + stime`, in clock ticks.
        pub cpu_ticks: u64,
        /// Voluntary plus involuntary context switches.
        pub switches: u64,
    }

    /// Waits (bounded) until at least `n` threads named `prefix…` exist. A
    /// new thread names itself once it starts running, which nothing lets
    /// us await, so this polls.
    pub fn wait_for(prefix: &str, n: usize) -> Usage {
        let start = std::time::Instant::now();
        loop {
            let u = usage(prefix);
            if u.threads >= n {
                return u;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "only {u:?} of {n} threads named {prefix:?} started"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Sums the counters of every thread whose name (as the kernel keeps
    /// it: the first 15 bytes) starts with `prefix`.
    pub fn usage(prefix: &str) -> Usage {
        let mut total = Usage::default();
        let Ok(dir) = fs::read_dir("/proc/self/task") else {
            return total;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            let Ok(comm) = fs::read_to_string(path.join("comm")) else {
                continue;
            };
            if !comm.trim_end().starts_with(prefix) {
                continue;
            }
            let (Ok(stat), Ok(status)) = (
                fs::read_to_string(path.join("stat")),
                fs::read_to_string(path.join("status")),
            ) else {
                continue;
            };
            total.threads += 1;
            total.names.push(comm.trim_end().to_string());
            // Fields after the parenthesised name: state is field 3, utime
            // and stime are fields 14 and 15.
            let rest = &stat[stat.rfind(')').expect("stat has a comm") + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields[11].parse().expect("utime");
            let stime: u64 = fields[12].parse().expect("stime");
            total.cpu_ticks += utime + stime;
            for line in status.lines() {
                if line.starts_with("voluntary_ctxt_switches")
                    || line.starts_with("nonvoluntary_ctxt_switches")
                {
                    let n: u64 = line
                        .split_whitespace()
                        .last()
                        .and_then(|v| v.parse().ok())
                        .expect("ctxt switches");
                    total.switches += n;
                }
            }
        }
        total
    }
}
