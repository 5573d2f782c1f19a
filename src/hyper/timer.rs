//! [`Timer`]: hyper's `rt::Timer` on gopark's timers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gopark_runtime::time;

/// hyper's timeouts (`header_read_timeout`, HTTP/2 keep-alive pings, a
/// client pool's idle timeout) as gopark timers: [`time::sleep`] and
/// [`time::sleep_until`], which the netpoll thread fires with the I/O it
/// finds. hyper-util's `TokioTimer`, for gopark.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// use gopark::hyper::Timer;
/// use hyper::rt::Timer as _;
///
/// gopark::runtime::block_on(async {
///     let timer = Timer::new();
///     let start = Instant::now();
///     let mut sleep = timer.sleep(Duration::from_secs(3600));
///     // `reset` moves a sleep hyper already holds, here to 10 ms from now.
///     timer.reset(&mut sleep, start + Duration::from_millis(10));
///     sleep.await;
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer {
    _private: (),
}

impl Timer {
    /// A timer on gopark's clock.
    pub fn new() -> Timer {
        Timer { _private: () }
    }
}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(time::sleep_until(deadline)))
    }

    /// The runtime's clock, virtual while paused ([`time::Instant`]), so
    /// that hyper's deadlines and gopark's timers read one clock.
    fn now(&self) -> Instant {
        time::now()
    }

    /// Moves the deadline of a sleep this timer made in place (no new
    /// allocation); replaces any other sleep with a new one.
    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Sleep>() {
            Some(mine) => mine.get_mut().0.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// gopark's [`time::Sleep`] as a `hyper::rt::Sleep`.
#[derive(Debug)]
struct Sleep(time::Sleep);

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for Sleep {}
