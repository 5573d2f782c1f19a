//! Timers: [`sleep`], [`sleep_until`], [`timeout`] and [`interval`].
//!
//! Timers have no thread of their own: they live in one heap per runtime,
//! and the netpoll thread sleeps in `epoll_wait` exactly until the earliest
//! of them, then fires every timer that is due in the same batch as the I/O
//! it found. A timer never fires early: `epoll_wait`'s millisecond timeout
//! is rounded up, and a sleep checks the clock before it reports done.
//! Dropping a `Sleep` removes its timer at once (O(log n)), so a `timeout`
//! around every request costs a heap insert and a heap removal.

pub(crate) mod driver;
pub(crate) mod heap;
mod interval;
mod sleep;
mod timeout;

pub use interval::{interval, interval_at, Interval};
pub use sleep::{sleep, sleep_until, Sleep};
pub use timeout::{timeout, timeout_at, Elapsed, Timeout};
