use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::sleep::{sleep_until, Sleep};

/// Ticks every `period`, the first tick at once.
///
/// Like Go's `time.Ticker`, a slow consumer does not get a burst of missed
/// ticks: the next tick is the first multiple of `period` after now.
///
/// # Panics
///
/// Panics if `period` is zero.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// gopark_runtime::block_on(async {
///     let start = Instant::now();
///     let mut ticks = gopark_runtime::time::interval(Duration::from_millis(5));
///     for _ in 0..3 {
///         ticks.tick().await;
///     }
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(super::now(), period)
}

/// Ticks every `period`, the first tick at `start`.
///
/// # Panics
///
/// Panics if `period` is zero.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(
        period > Duration::ZERO,
        "`interval` period must be non-zero"
    );
    Interval {
        sleep: sleep_until(start),
        period,
    }
}

/// Stream of ticks returned by [`interval`].
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled time.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let scheduled = self.sleep.deadline();
        let now = super::now();
        let mut next = scheduled + self.period;
        if next <= now {
            // Skip the ticks that were missed.
            let behind = (now - scheduled).as_nanos() / self.period.as_nanos();
            next = scheduled + self.period * (behind as u32 + 1);
        }
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}
