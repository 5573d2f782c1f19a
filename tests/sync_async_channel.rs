//! `async-channel` on gopark's scheduler.
//!
//! async-channel is a multi-producer, multi-consumer channel that parks
//! through the `Waker` alone: the closest thing to Go's `chan`. Each test
//! moves 1,000,000 messages from many producers to many consumers on a
//! 4-worker and a 2-worker runtime and checks that each number arrived
//! exactly once.

mod net_support;

use std::panic::resume_unwind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gopark::runtime::{spawn, yield_now, JoinHandle};

/// Messages per test and runtime.
const TOTAL: u64 = 1_000_000;
/// Producer tasks per test.
const PRODUCERS: u64 = 8;
/// Consumer tasks per test.
const CONSUMERS: usize = 4;
/// What each producer sends.
const PER_PRODUCER: u64 = TOTAL / PRODUCERS;

/// Bound of one test on one runtime: a hang detector, far above the few
/// seconds each needs, even on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(120);

/// One test body, run on a 4-worker and on a 2-worker runtime, each bounded
/// by `net_support::run` (a runtime timeout of [`LIMIT`] and a watchdog
/// thread).
macro_rules! sync_test {
    ($(async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() $body

            #[test]
            fn four_workers() {
                crate::net_support::run(4, stringify!($name), super::LIMIT, || async {
                    body().await;
                    Ok(())
                })
            }

            #[test]
            fn two_workers() {
                crate::net_support::run(2, stringify!($name), super::LIMIT, || async {
                    body().await;
                    Ok(())
                })
            }
        }
    )*};
}

/// Awaits a task, re-raising its panic with the task's own message.
async fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.await {
        Ok(v) => v,
        Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
        Err(e) => panic!("task failed: {e}"),
    }
}

/// Which of `0..n` have arrived, from any number of tasks; one number
/// twice is a failure.
struct Seen {
    bits: Vec<AtomicU64>,
    count: AtomicU64,
    n: u64,
}

impl Seen {
    fn new(n: u64) -> Seen {
        Seen {
            bits: (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            n,
        }
    }

    fn mark(&self, v: u64) {
        assert!(v < self.n, "received {v}, which was never sent");
        let bit = 1u64 << (v % 64);
        let before = self.bits[(v / 64) as usize].fetch_or(bit, Ordering::Relaxed);
        assert_eq!(before & bit, 0, "{v} arrived twice");
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Every number arrived (exactly once: `mark` refused repeats).
    fn assert_all(&self) {
        assert_eq!(self.count(), self.n, "messages lost");
        for (i, w) in self.bits.iter().enumerate() {
            let lo = i as u64 * 64;
            let want = if self.n - lo >= 64 {
                u64::MAX
            } else {
                (1u64 << (self.n - lo)) - 1
            };
            assert_eq!(
                w.load(Ordering::Relaxed),
                want,
                "a number in {lo}..{} is missing",
                lo + 64
            );
        }
    }
}

/// Sends producer `p`'s numbers on `tx`; the task ends when all are sent.
fn produce(p: u64, tx: async_channel::Sender<u64>) -> JoinHandle<()> {
    spawn(async move {
        for v in p * PER_PRODUCER..(p + 1) * PER_PRODUCER {
            tx.send(v).await.expect("receivers alive");
        }
    })
}

/// Receives until the channel is closed and empty, marking each number.
fn consume(rx: async_channel::Receiver<u64>, seen: Arc<Seen>) -> JoinHandle<u64> {
    spawn(async move {
        let mut got = 0;
        while let Ok(v) = rx.recv().await {
            seen.mark(v);
            got += 1;
        }
        got
    })
}

/// Runs PRODUCERS producers and CONSUMERS consumers over `tx`/`rx` and
/// checks that every number arrived exactly once.
async fn many_to_many(tx: async_channel::Sender<u64>, rx: async_channel::Receiver<u64>) {
    let seen = Arc::new(Seen::new(TOTAL));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| consume(rx.clone(), seen.clone()))
        .collect();
    drop(rx);
    let producers: Vec<_> = (0..PRODUCERS).map(|p| produce(p, tx.clone())).collect();
    // The channel closes when the last sender is dropped: the consumers
    // then drain what is left and stop.
    drop(tx);
    for p in producers {
        join(p).await;
    }
    let mut total = 0;
    for c in consumers {
        total += join(c).await;
    }
    assert_eq!(total, TOTAL);
    seen.assert_all();
}

sync_test! {
    async fn bounded_many_to_many() {
        let (tx, rx) = async_channel::bounded(256);
        many_to_many(tx, rx).await;
    }

    async fn unbounded_many_to_many() {
        let (tx, rx) = async_channel::unbounded();
        many_to_many(tx, rx).await;
    }

    async fn close_mid_stream() {
        // A consumer closes the channel half-way through. Every number is
        // then either received or handed back to its producer in the
        // `SendError`, never both and never neither: nothing is lost in the
        // close.
        let (tx, rx) = async_channel::bounded::<u64>(64);
        let seen = Arc::new(Seen::new(TOTAL));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (tx, seen) = (tx.clone(), seen.clone());
                spawn(async move {
                    let mut returned = 0u64;
                    for v in p * PER_PRODUCER..(p + 1) * PER_PRODUCER {
                        if let Err(e) = tx.send(v).await {
                            assert_eq!(e.0, v, "the error carries the unsent value");
                            seen.mark(v);
                            returned += 1;
                        }
                    }
                    returned
                })
            })
            .collect();
        drop(tx);
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let (rx, seen) = (rx.clone(), seen.clone());
                spawn(async move {
                    let mut got = 0u64;
                    while let Ok(v) = rx.recv().await {
                        seen.mark(v);
                        got += 1;
                        if seen.count() >= TOTAL / 2 {
                            // Later receives still drain what was queued
                            // before the close.
                            rx.close();
                        }
                        if got % 128 == 0 {
                            yield_now().await;
                        }
                    }
                    got
                })
            })
            .collect();
        drop(rx);
        let mut returned = 0;
        for p in producers {
            returned += join(p).await;
        }
        let mut received = 0;
        for c in consumers {
            received += join(c).await;
        }
        assert!(received >= TOTAL / 2, "closed after {received}");
        assert!(returned > 0, "the close came after every send");
        assert_eq!(received + returned, TOTAL);
        seen.assert_all();
    }
}
