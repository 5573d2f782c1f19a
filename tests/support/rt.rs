//! Runtimes and bounded runs.
//!
//! Every test is bounded twice: a runtime `timeout` around its body, and a
//! plain-thread [`Watchdog`] that aborts the process if even that cannot
//! fire (a hung runtime, a shutdown that never returns). The bounds are
//! hang detectors, far above what any body needs on a loaded machine.

use std::future::Future;
use std::io;
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use gopark::runtime::{self, time::timeout, Builder, Handle, JoinHandle, Runtime};

/// Worker counts every [`rt_test!`] body runs on.
pub const WORKERS: [usize; 2] = [1, 4];

/// Default bound of one test body on one runtime.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A runtime with `workers` workers whose threads are named `name-…`.
pub fn runtime(workers: usize, name: &str) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .thread_name(name)
        .build()
        .expect("build runtime")
}

/// Runs `body()` as a task on a fresh runtime with `workers` workers named
/// `rt_name`, bounded by `limit` (a runtime timer) and a watchdog of twice
/// that (wall clock). A panic in the body fails the test with the body's
/// own message; `what` names the run in the other failures.
fn bounded<F, Fut>(
    workers: usize,
    rt_name: &str,
    what: &str,
    limit: Duration,
    body: F,
) -> Fut::Output
where
    F: FnOnce() -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let dog = Watchdog::start(what, limit * 2);
    let rt = runtime(workers, rt_name);
    let fut = body();
    let res = rt.block_on(async move { timeout(limit, runtime::spawn(fut)).await });
    drop(rt);
    dog.disarm();
    match res {
        Err(_) => panic!("{what}: timed out after {limit:?} (a hang)"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("{what}: task failed: {e}"),
        Ok(Ok(v)) => v,
    }
}

/// What a test body may return: nothing, or an `io::Result<()>` whose
/// error fails the test with its message and kind.
pub trait Outcome {
    /// Panics if the body failed.
    fn check(self, what: &str);
}

impl Outcome for () {
    fn check(self, _what: &str) {}
}

impl Outcome for io::Result<()> {
    fn check(self, what: &str) {
        if let Err(e) = self {
            panic!("{what}: {e} ({:?})", e.kind());
        }
    }
}

/// Runs one [`rt_test!`] body on a runtime with `workers` workers (threads
/// named `rt1-…`, `rt4-…`), bounded by `limit`.
pub fn run_test<F, Fut>(workers: usize, name: &str, limit: Duration, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Outcome + Send + 'static,
{
    let what = format!("{name} on {workers} worker(s)");
    bounded(workers, &format!("rt{workers}"), &what, limit, body).check(&what);
}

/// Runs `body()` as a task on a fresh runtime with `workers` workers,
/// bounded by [`LIMIT`] and a watchdog.
pub fn run<F, Fut>(workers: usize, name: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_test(workers, name, LIMIT, body);
}

/// Runs `body()` as a task on a fresh runtime whose threads are named
/// `name-…` (so a test can find them in `/proc`), bounded by `limit` and a
/// watchdog, and returns what it returned. An `Err` fails the test with
/// its message.
pub fn run_io<F, Fut, T>(workers: usize, name: &str, limit: Duration, body: F) -> T
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = io::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let what = format!("{name} on {workers} worker(s)");
    match bounded(workers, name, &what, limit, body) {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e} ({:?})", e.kind()),
    }
}

/// Awaits a task, re-raising its panic with the task's own message.
pub async fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.await {
        Ok(v) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("task failed: {e}"),
    }
}

/// Runs `body` (which builds the runtimes it needs itself) under a
/// watchdog of twice [`LIMIT`].
pub fn guard(workers: usize, name: &str, body: impl FnOnce()) {
    let dog = Watchdog::start(format!("{name} on {workers} worker(s)"), LIMIT * 2);
    body();
    dog.disarm();
}

/// Test bodies, each run on a 1-worker and a 4-worker runtime:
///
/// ```ignore
/// rt_test! {
///     async fn values() {
///         assert_eq!(runtime::spawn(async { 1 }).await.unwrap(), 1);
///     }
/// }
///
/// rt_test! {
///     limit = Duration::from_secs(60);
///     async fn echo() -> io::Result<()> {
///         let (a, b) = support::net::pair().await?;
///         ...;
///         Ok(())
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
/// Each body expands to a module `name` with tests `one_worker` and
/// `four_workers`. An `async fn` body runs as a task on a fresh runtime,
/// bounded by [`LIMIT`]; it returns nothing or an `io::Result<()>` (see
/// [`Outcome`]). A `fn name(workers: usize)` body builds what it needs
/// itself, under a watchdog. Attributes before `fn` (e.g. `#[ignore =
/// "..."]`) go on each of its tests.
///
/// Settings before the bodies apply to every body of the invocation, in
/// this order: `limit = <Duration>;` bounds each run, and
/// `workers = [two_workers: 2, eight_workers: 8];` names the tests and
/// their worker counts instead of the default
/// `[one_worker: 1, four_workers: 4]`.
macro_rules! rt_test {
    // The settings; then the bodies, one at a time.
    (@cfg $limit:tt $workers:tt limit = $l:expr; $($rest:tt)*) => {
        rt_test!(@cfg [$l] $workers $($rest)*);
    };
    (@cfg $limit:tt $workers:tt workers = [$($w:tt)*]; $($rest:tt)*) => {
        rt_test!(@cfg $limit [$($w)*] $($rest)*);
    };
    (@cfg $limit:tt $workers:tt
        $(#[$attr:meta])* async fn $name:ident() $(-> $ret:ty)? $body:block $($rest:tt)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() $(-> $ret)? $body

            rt_test!(@async $name $limit [$(#[$attr])*] $workers);
        }
        rt_test!(@cfg $limit $workers $($rest)*);
    };
    (@cfg $limit:tt $workers:tt
        $(#[$attr:meta])* fn $name:ident($w:ident: usize) $body:block $($rest:tt)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($w: usize) $body

            rt_test!(@guard $name [$(#[$attr])*] $workers);
        }
        rt_test!(@cfg $limit $workers $($rest)*);
    };
    (@cfg $limit:tt $workers:tt) => {};
    // One test per worker count.
    (@async $name:ident [$l:expr] $attrs:tt [$($test:ident: $n:expr),+ $(,)?]) => {
        $(rt_test!(@attrs $attrs
            #[test]
            fn $test() {
                crate::support::rt::run_test($n, stringify!($name), $l, body)
            }
        );)+
    };
    (@guard $name:ident $attrs:tt [$($test:ident: $n:expr),+ $(,)?]) => {
        $(rt_test!(@attrs $attrs
            #[test]
            fn $test() {
                crate::support::rt::guard($n, stringify!($name), || body($n))
            }
        );)+
    };
    (@attrs [$(#[$attr:meta])*] $item:item) => {
        $(#[$attr])*
        $item
    };
    // The entry: the defaults, then the invocation's settings and bodies.
    ($($input:tt)*) => {
        rt_test!(@cfg [crate::support::rt::LIMIT] [one_worker: 1, four_workers: 4] $($input)*);
    };
}

/// Aborts the process if not disarmed within its limit: the last line of
/// defence when a runtime hangs so badly that its own timers cannot fire.
pub struct Watchdog {
    tx: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl Watchdog {
    pub fn start(what: impl Into<String>, limit: Duration) -> Watchdog {
        let what = what.into();
        let (tx, rx) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("WATCHDOG: {what} still running after {limit:?}; aborting");
                std::process::abort();
            }
        });
        Watchdog { tx, thread }
    }

    pub fn disarm(self) {
        let _ = self.tx.send(());
        let _ = self.thread.join();
    }
}

/// Takes this test binary's lock, for test files whose tests must run one
/// at a time: they count the whole process's descriptors, threads and CPU
/// time, or time wake-ups, which tests running beside them would disturb.
/// A failed test poisons nothing.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The current runtime's handle (tests run inside one).
pub fn handle() -> Handle {
    Handle::current()
}

/// Waits (bounded, 20 s: generous, for a machine under load; a leak never
/// comes back) until `cond` holds, re-checking every millisecond.
///
/// Only for counters that lag the event a test can await: a task's
/// `JoinHandle` resolves just before the task leaves the runtime's owned
/// list, so `num_alive_tasks` may still count it for a moment (as in tokio).
pub async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    eventually_explained(what, cond, String::new).await;
}

/// [`eventually`], with `explain()` (what the state is) in the failure's
/// message.
pub async fn eventually_explained(
    what: &str,
    mut cond: impl FnMut() -> bool,
    explain: impl Fn() -> String,
) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what}: still false after 20 s{}",
            explain()
        );
        runtime::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Silences the default panic message of deliberate panics: those whose
/// message starts with `deliberate`. Other panics print as usual.
pub fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !msg.starts_with("deliberate") {
                default(info);
            }
        }));
    });
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
