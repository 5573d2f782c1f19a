//! [`Interval`]: a ticker, with tokio's names and its three answers to a
//! consumer that falls behind ([`MissedTickBehavior`]).
//!
//! One interval is one [`Sleep`] re-armed after each tick, so a tick costs
//! a heap insert and nothing more; the deadline arithmetic is done in
//! 128-bit nanoseconds, so no number of missed periods can overflow it.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::sleep::{sleep_until, Sleep};
use super::Instant;

/// Ticks every `period`, the first tick at once.
///
/// A consumer that falls behind gets the ticks it missed at once, one
/// after another ([`MissedTickBehavior::Burst`], tokio's default); see
/// [`Interval::set_missed_tick_behavior`] for Go's `time.Ticker` behaviour
/// ([`Skip`](MissedTickBehavior::Skip)) and for
/// [`Delay`](MissedTickBehavior::Delay).
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
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first tick at `start` (a
/// [`time::Instant`](Instant) or a `std::time::Instant`).
///
/// # Panics
///
/// Panics if `period` is zero.
pub fn interval_at(start: impl Into<Instant>, period: Duration) -> Interval {
    assert!(
        period > Duration::ZERO,
        "`interval` period must be non-zero"
    );
    Interval {
        sleep: sleep_until(start),
        period,
        missed: MissedTickBehavior::default(),
    }
}

/// What an [`Interval`] does when a tick is late by more than a period —
/// its consumer was busy, or the runtime's clock jumped.
///
/// With a period of 10 ms, ticks due at 0, 10, 20, 30 … ms, and a consumer
/// that asks for the tick due at 10 ms only at 35 ms:
///
/// | behaviour | ticks returned at 35 ms | the ticks after that are due at |
/// |---|---|---|
/// | `Burst` | 10, then at once 20 and 30 | 40, 50 … |
/// | `Delay` | 10 | 45, 55 … (a period after each late tick) |
/// | `Skip` | 10 | 40, 50 … (the missed ones are dropped) |
///
/// ```
/// use std::time::Duration;
/// use gopark_runtime::time::{self, Instant, MissedTickBehavior};
///
/// let rt = gopark_runtime::Builder::new().start_paused(true).build().unwrap();
/// rt.block_on(async {
///     let start = Instant::now();
///     let mut ticks = time::interval(Duration::from_millis(10));
///     ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
///     ticks.tick().await; // at once
///     time::advance(Duration::from_millis(35)).await;
///     assert_eq!(ticks.tick().await - start, Duration::from_millis(10));
///     assert_eq!(ticks.tick().await - start, Duration::from_millis(40));
/// });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MissedTickBehavior {
    /// Return the missed ticks at once, then go on at the original
    /// schedule.
    #[default]
    Burst,
    /// Go on a whole period after the late tick was taken.
    Delay,
    /// Drop the missed ticks: go on at the next tick of the original
    /// schedule that lies in the future (Go's `time.Ticker`).
    Skip,
}

impl MissedTickBehavior {
    /// When the tick after one `scheduled` for a period `period` and taken
    /// at `now` is due.
    fn next(self, scheduled: Instant, now: Instant, period: Duration) -> Instant {
        let on_time = scheduled + period;
        if on_time > now {
            return on_time;
        }
        match self {
            MissedTickBehavior::Burst => on_time,
            MissedTickBehavior::Delay => now + period,
            MissedTickBehavior::Skip => {
                // The first multiple of `period` after `now`: in u128
                // nanoseconds, which no number of missed periods overflows.
                let behind = (now - scheduled).as_nanos();
                let period_ns = period.as_nanos();
                let ahead = period_ns - behind % period_ns;
                now + nanos(ahead)
            }
        }
    }
}

/// `ns` nanoseconds as a `Duration`, saturating at `Duration::MAX`.
fn nanos(ns: u128) -> Duration {
    let secs = ns / 1_000_000_000;
    match u64::try_from(secs) {
        Ok(secs) => Duration::new(secs, (ns % 1_000_000_000) as u32),
        Err(_) => Duration::MAX,
    }
}

/// Stream of ticks returned by [`interval`].
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: Duration,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns when it was scheduled.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let scheduled = self.sleep.deadline();
        let next = self.missed.next(scheduled, Instant::now(), self.period);
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// Starts the schedule again: the next tick is a period from now.
    pub fn reset(&mut self) {
        self.sleep.reset(Instant::now() + self.period);
    }

    /// Starts the schedule again: the next tick is due at once.
    pub fn reset_immediately(&mut self) {
        self.sleep.reset(Instant::now());
    }

    /// Starts the schedule again: the next tick is due after `after`.
    pub fn reset_after(&mut self, after: Duration) {
        self.sleep.reset(Instant::now() + after);
    }

    /// Starts the schedule again: the next tick is due at `deadline`.
    pub fn reset_at(&mut self, deadline: impl Into<Instant>) {
        self.sleep.reset(deadline);
    }

    /// What the interval does when ticks are missed.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what the interval does when ticks are missed.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn skip_does_not_overflow_after_many_missed_periods() {
        let t0 = Instant::from_std(std::time::Instant::now());
        let period = Duration::from_micros(10);
        // A day behind: 8.64e9 periods, more than u32::MAX.
        let now = t0 + Duration::from_secs(86_400) + Duration::from_nanos(3);
        let next = MissedTickBehavior::Skip.next(t0, now, period);
        assert_eq!(next - t0, Duration::from_secs(86_400) + period);
    }

    #[test]
    fn each_behaviour_schedules_as_its_table_says() {
        let t0 = Instant::from_std(std::time::Instant::now());
        let p = Duration::from_millis(10);
        let at = |ms| t0 + Duration::from_millis(ms);
        // The tick due at 10 ms is taken at 35 ms.
        assert_eq!(MissedTickBehavior::Burst.next(at(10), at(35), p), at(20));
        assert_eq!(MissedTickBehavior::Delay.next(at(10), at(35), p), at(45));
        assert_eq!(MissedTickBehavior::Skip.next(at(10), at(35), p), at(40));
        // On time, all three agree.
        for b in [
            MissedTickBehavior::Burst,
            MissedTickBehavior::Delay,
            MissedTickBehavior::Skip,
        ] {
            assert_eq!(b.next(at(10), at(12), p), at(20));
        }
        // Exactly on a multiple: Skip goes to the next one.
        assert_eq!(MissedTickBehavior::Skip.next(at(10), at(30), p), at(40));
    }
}
