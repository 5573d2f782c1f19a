use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::Instant;

use super::driver::{self, TimeDriver};
use super::heap::{Action, TimerKey};

/// Waits until `duration` has passed.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// gopark_runtime::block_on(async {
///     let start = Instant::now();
///     gopark_runtime::time::sleep(Duration::from_millis(20)).await;
///     assert!(start.elapsed() >= Duration::from_millis(20));
/// });
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    let now = super::now();
    sleep_until(
        now.checked_add(duration)
            .unwrap_or(now + Duration::from_secs(86400 * 365 * 30)),
    )
}

/// Waits until `deadline`, by the runtime's clock: a [`time::Instant`](Instant)
/// or a `std::time::Instant`.
pub fn sleep_until(deadline: impl Into<Instant>) -> Sleep {
    Sleep {
        deadline: deadline.into().into_std(),
        timer: None,
        fired: false,
    }
}

/// Future returned by [`sleep`] and [`sleep_until`].
///
/// Its timer is registered on first poll with the runtime the polling thread
/// is in (or the default runtime), and removed when it is dropped. If that
/// runtime shuts down, the sleep completes at once rather than never.
///
/// # Panics
///
/// Polling it outside any runtime, in a process that has not started one
/// yet (no `block_on`, `spawn` or `Runtime` so far), panics: there is no
/// runtime whose timers it could use.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: std::time::Instant,
    timer: Option<(Arc<TimeDriver>, TimerKey)>,
    fired: bool,
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        Instant::from_std(self.deadline)
    }

    /// Returns `true` once the deadline has been reached and observed.
    pub fn is_elapsed(&self) -> bool {
        self.fired
    }

    /// Moves the deadline, re-arming a sleep that already completed.
    pub fn reset(&mut self, deadline: impl Into<Instant>) {
        self.cancel();
        self.deadline = deadline.into().into_std();
        self.fired = false;
    }

    fn cancel(&mut self) {
        if let Some((driver, key)) = self.timer.take() {
            driver.remove(key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.fired {
            return Poll::Ready(());
        }
        // A sleep spends budget like an I/O operation: a loop of sleeps
        // that complete at once (a deadline already past, a runtime shut
        // down) must still yield, or it never leaves its poll.
        if !crate::coop::poll_proceed(cx) {
            return Poll::Pending;
        }
        match &this.timer {
            None => {
                let driver = driver::current();
                if driver.has_passed(this.deadline) {
                    this.fired = true;
                    return Poll::Ready(());
                }
                let inserted = driver.insert(this.deadline, Action::Wake(Some(cx.waker().clone())));
                let Some(key) = inserted else {
                    // The runtime has shut down: no thread would fire it.
                    this.fired = true;
                    return Poll::Ready(());
                };
                this.timer = Some((driver, key));
                let until = this.deadline;
                crate::task::record_wait(cx.waker(), || crate::task::Wait::Sleep { until });
                Poll::Pending
            }
            Some((driver, key)) => {
                if driver.lock().poll_sleep(*key, cx.waker()) {
                    this.cancel();
                    this.fired = true;
                    Poll::Ready(())
                } else {
                    let until = this.deadline;
                    crate::task::record_wait(cx.waker(), || crate::task::Wait::Sleep { until });
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("elapsed", &self.fired)
            .finish()
    }
}
