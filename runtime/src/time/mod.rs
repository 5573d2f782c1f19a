//! Timers: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`].
//!
//! Timers have no thread of their own: they live in one heap per runtime,
//! and the netpoll thread sleeps in `epoll_wait` exactly until the earliest
//! of them, then fires every timer that is due in the same batch as the I/O
//! it found. A timer never fires early: `epoll_wait`'s millisecond timeout
//! is rounded up, and a sleep checks the clock before it reports done.
//! Dropping a `Sleep` removes its timer at once (O(log n)), so a `timeout`
//! around every request costs a heap insert and a heap removal.
//!
//! # Virtual time
//!
//! A runtime's clock can be paused, for tests: with
//! [`Builder::start_paused`](crate::Builder::start_paused), or [`pause`]
//! from inside the runtime. While it is paused, [`now`] stands still, and
//! so do sleeps, timeouts, intervals and socket deadlines, which all read
//! this clock. It moves in two ways:
//!
//! * [`advance`] moves it forward by a duration, firing every timer due on
//!   the way;
//! * when the runtime is **idle**, it jumps to the next timer by itself,
//!   the rule of Go's `testing/synctest`. A runtime is idle when every
//!   task is blocked: every worker is parked with nothing queued, no
//!   thread is polling a future of the runtime in `block_on`, no
//!   blocking-pool job is queued or running, and the netpoller finds no
//!   descriptor ready. A task parked on a socket counts as blocked as long
//!   as nothing is ready for it: keep a test's peers inside the runtime
//!   (or wait for their bytes first), since bytes on their way from
//!   elsewhere are invisible until they arrive. The jump is never taken
//!   while a task is runnable.
//!
//! The decisions live in one place, `virtual_time.rs`; its opening
//! essay says which part of the runtime reports what.
//!
//! So a test that sleeps an hour finishes in milliseconds, with its timers
//! firing in deadline order:
//!
//! ```
//! use std::time::Duration;
//! use gopark_runtime::{time, Builder};
//!
//! let rt = Builder::new().worker_threads(2).start_paused(true).build().unwrap();
//! rt.block_on(async {
//!     let start = time::now();
//!     let real = std::time::Instant::now();
//!     time::sleep(Duration::from_secs(3600)).await;
//!     assert_eq!(time::now() - start, Duration::from_secs(3600));
//!     assert!(real.elapsed() < Duration::from_secs(60));
//! });
//! ```
//!
//! `std::time::Instant::now()` reads the real clock whatever a runtime
//! does; code that should follow a paused clock reads [`Instant::now`]
//! (tokio's `tokio::time::Instant`) or [`now`].

use std::time::Duration;

pub(crate) mod driver;
pub(crate) mod heap;
mod instant;
mod interval;
mod sleep;
mod timeout;
pub(crate) mod virtual_time;

#[cfg(all(test, loom))]
mod loom_tests;

pub use instant::Instant;
pub use interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use sleep::{sleep, sleep_until, Sleep};
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};

/// The current time by the clock of the runtime this thread is in (real
/// time, unless paused: see [virtual time](self#virtual-time)); outside
/// any runtime, the real clock's.
///
/// [`Instant::now`] reads the same clock, as a [`time::Instant`](Instant).
pub fn now() -> std::time::Instant {
    driver::with_current(|d| d.map_or_else(std::time::Instant::now, driver::TimeDriver::now))
}

/// The driver of the runtime this thread is in, for the clock controls.
fn controls(what: &str) -> std::sync::Arc<driver::TimeDriver> {
    driver::try_current()
        .unwrap_or_else(|| panic!("`gopark_runtime::time::{what}` called outside a gopark runtime"))
}

/// Stops this runtime's clock: from now on it moves only by [`advance`]
/// or by jumping to the next timer when the runtime is idle (see
/// [virtual time](self#virtual-time)).
///
/// # Panics
///
/// Panics outside a runtime.
pub fn pause() {
    controls("pause").pause();
}

/// Lets this runtime's clock run again, from the time it shows.
///
/// # Panics
///
/// Panics outside a runtime.
pub fn resume() {
    controls("resume").resume();
}

/// Moves this runtime's paused clock forward by `duration`, firing every
/// timer due on the way, then yields so the tasks they woke can run.
///
/// ```
/// use std::time::Duration;
/// use gopark_runtime::time;
///
/// let rt = gopark_runtime::Builder::new().start_paused(true).build().unwrap();
/// rt.block_on(async {
///     let start = time::now();
///     time::advance(Duration::from_secs(5)).await;
///     assert_eq!(time::now() - start, Duration::from_secs(5));
/// });
/// ```
///
/// # Panics
///
/// Panics outside a runtime, or if the clock is not paused.
pub async fn advance(duration: Duration) {
    let driver = controls("advance");
    assert!(
        driver.is_paused(),
        "`time::advance` needs a paused clock: `time::pause()` or `Builder::start_paused(true)`"
    );
    let mut wakers = Vec::new();
    let to = driver.now() + duration;
    driver.advance_to(to, &mut wakers);
    wakers.into_iter().for_each(std::task::Waker::wake);
    // Yield once, behind the tasks just woken.
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}
