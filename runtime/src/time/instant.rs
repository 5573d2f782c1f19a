//! [`Instant`]: a point in time by the runtime's clock, which is virtual
//! while paused.
//!
//! tokio's `tokio::time::Instant`, for gopark: `std::time::Instant::now()`
//! reads the real clock whatever a runtime does, so a test that pauses the
//! clock and sleeps an hour would still see a few microseconds pass.
//! `Instant::now()` reads [`now`](super::now) instead: the clock of the
//! runtime the calling thread is in, frozen while paused and moved by
//! [`advance`](super::advance) and by the jump to the next timer; outside
//! any runtime, the real clock.
//!
//! It is a thin wrapper: both clocks count on the same timeline (a paused
//! clock is the real one shifted), so converting to and from
//! `std::time::Instant` costs nothing, and every timer API that takes a
//! deadline ([`sleep_until`](super::sleep_until),
//! [`timeout_at`](super::timeout_at), [`interval_at`](super::interval_at))
//! takes either.

use std::fmt;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::time::Duration;

/// A measurement of the runtime's clock: like `std::time::Instant`, but
/// [`Instant::now`] follows a [paused](super#virtual-time) clock.
///
/// ```
/// use std::time::Duration;
/// use gopark_runtime::time::{self, Instant};
///
/// let rt = gopark_runtime::Builder::new().start_paused(true).build().unwrap();
/// rt.block_on(async {
///     let start = Instant::now();
///     time::sleep(Duration::from_secs(60)).await;
///     // A minute by the runtime's clock, however little real time passed.
///     assert_eq!(start.elapsed(), Duration::from_secs(60));
///     assert_eq!(Instant::now() - start, Duration::from_secs(60));
/// });
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    std: std::time::Instant,
}

impl Instant {
    /// The current time by the runtime's clock (see the
    /// [type's docs](Instant)).
    pub fn now() -> Instant {
        Instant { std: super::now() }
    }

    /// The `Instant` of a `std::time::Instant`.
    pub fn from_std(std: std::time::Instant) -> Instant {
        Instant { std }
    }

    /// The `std::time::Instant` of this `Instant`.
    pub fn into_std(self) -> std::time::Instant {
        self.std
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(&self, earlier: Instant) -> Duration {
        self.std.saturating_duration_since(earlier.std)
    }

    /// The time from `earlier` to `self`, `None` if `earlier` is later.
    pub fn checked_duration_since(&self, earlier: Instant) -> Option<Duration> {
        self.std.checked_duration_since(earlier.std)
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.std.saturating_duration_since(earlier.std)
    }

    /// The time since `self` by the runtime's clock.
    pub fn elapsed(&self) -> Duration {
        Instant::now().duration_since(*self)
    }

    /// `self + duration`, `None` on overflow.
    pub fn checked_add(&self, duration: Duration) -> Option<Instant> {
        self.std.checked_add(duration).map(Instant::from_std)
    }

    /// `self - duration`, `None` on overflow.
    pub fn checked_sub(&self, duration: Duration) -> Option<Instant> {
        self.std.checked_sub(duration).map(Instant::from_std)
    }
}

impl From<std::time::Instant> for Instant {
    fn from(std: std::time::Instant) -> Instant {
        Instant::from_std(std)
    }
}

impl From<Instant> for std::time::Instant {
    fn from(instant: Instant) -> std::time::Instant {
        instant.into_std()
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        Instant::from_std(self.std + rhs)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        self.std += rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, rhs: Duration) -> Instant {
        Instant::from_std(self.std - rhs)
    }
}

impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, rhs: Duration) {
        self.std -= rhs;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    /// The time from `rhs` to `self`, zero if `rhs` is later (as
    /// `std::time::Instant` does).
    fn sub(self, rhs: Instant) -> Duration {
        self.duration_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.std.fmt(f)
    }
}
