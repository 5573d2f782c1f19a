//! `async-channel` on gopark's scheduler.
//!
//! async-channel is a multi-producer, multi-consumer channel that parks
//! through the `Waker` alone: the closest thing to Go's `chan`. Each test
//! moves 1,000,000 messages from many producers to many consumers on a
//! 4-worker and a 2-worker runtime and checks that each number arrived
//! exactly once.

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use gopark::runtime::{spawn, yield_now, JoinHandle};
use support::data::Seen;
use support::rt::join;

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

rt_test! {
    limit = LIMIT;
    workers = [four_workers: 4, two_workers: 2];

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
