//! `futures::select!` over channels and gopark timers, on gopark's
//! scheduler: Go's `select` statement.
//!
//! `select!` polls its branches in random order and takes the first that is
//! ready; the other branches' futures are dropped. That is only safe when
//! dropping a receive that has not completed gives up nothing: tokio's
//! `mpsc` and async-channel both promise it. Each test moves 1,000,000
//! messages through two channels whose consumers select over both of them
//! and a gopark timer, on a 4-worker and a 2-worker runtime, and checks
//! that every number arrived exactly once, however often a branch lost.

#[macro_use]
mod support;

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FusedStream, StreamExt};
use futures::{select, FutureExt};
use gopark::runtime::spawn;
use gopark::runtime::time::{interval, sleep};
use support::data::Seen;
use support::rt::join;

/// Messages per test and runtime, half through each channel.
const TOTAL: u64 = 1_000_000;
/// Producer tasks per channel.
const PRODUCERS: u64 = 4;
/// What each producer sends.
const PER_PRODUCER: u64 = TOTAL / 2 / PRODUCERS;

/// Bound of one test on one runtime: a hang detector, far above the few
/// seconds each needs, even on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(120);

/// The numbers producer `p` of channel `ch` (0 or 1) sends.
fn range(ch: u64, p: u64) -> std::ops::Range<u64> {
    let first = ch * TOTAL / 2 + p * PER_PRODUCER;
    first..first + PER_PRODUCER
}

rt_test! {
    limit = LIMIT;
    workers = [four_workers: 4, two_workers: 2];

    async fn two_channels_and_an_interval() {
        // One consumer selects over a tokio mpsc channel, an async-channel
        // and a 1 ms gopark interval. The producers start first, so both
        // channels are full from the first select on: nearly every round
        // has two ready branches, and one of them loses.
        let (tx_a, mut rx_a) = tokio::sync::mpsc::channel::<u64>(256);
        let (tx_b, rx_b) = async_channel::bounded::<u64>(256);
        for p in 0..PRODUCERS {
            let tx_a = tx_a.clone();
            spawn(async move {
                for v in range(0, p) {
                    tx_a.send(v).await.expect("consumer alive");
                }
            });
            let tx_b = tx_b.clone();
            spawn(async move {
                for v in range(1, p) {
                    tx_b.send(v).await.expect("consumer alive");
                }
            });
        }
        drop((tx_a, tx_b));

        let seen = Seen::new(TOTAL);
        // A stream that has ended is skipped by `select!` from then on.
        let mut a = futures::stream::poll_fn(move |cx| rx_a.poll_recv(cx)).fuse();
        // async-channel's receiver keeps its waiting state in place, so it
        // is pinned first.
        let mut b = pin!(rx_b.fuse());
        let mut ticks = interval(Duration::from_millis(1));
        let (mut from_a, mut from_b, mut tick_wins) = (0u64, 0u64, 0u64);
        while !(a.is_terminated() && b.is_terminated()) {
            select! {
                v = a.next() => if let Some(v) = v {
                    seen.mark(v);
                    from_a += 1;
                },
                v = b.next() => if let Some(v) = v {
                    seen.mark(v);
                    from_b += 1;
                },
                _ = ticks.tick().fuse() => tick_wins += 1,
            }
        }
        assert_eq!((from_a, from_b), (TOTAL / 2, TOTAL / 2));
        // The first tick is due at once, so the timer won at least once.
        assert!(tick_wins > 0);
        seen.assert_all();
    }

    async fn many_consumers_with_a_deadline_each() {
        // Three consumers share two async-channels and select over both
        // and a fresh 1 ms `sleep` each round (Go's
        // `case <-time.After(d)`): every round arms a gopark timer and,
        // when a message wins, drops it again. Whatever wins, no message
        // goes missing or arrives twice.
        const CONSUMERS: usize = 3;
        let (tx_a, rx_a) = async_channel::bounded::<u64>(128);
        let (tx_b, rx_b) = async_channel::bounded::<u64>(128);
        let seen = Arc::new(Seen::new(TOTAL));
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let (a, b) = (rx_a.clone().fuse(), rx_b.clone().fuse());
                let seen = seen.clone();
                spawn(async move {
                    let (mut a, mut b) = (pin!(a), pin!(b));
                    let (mut got, mut idle) = (0u64, 0u64);
                    while !(a.is_terminated() && b.is_terminated()) {
                        select! {
                            v = a.next() => if let Some(v) = v {
                                seen.mark(v);
                                got += 1;
                            },
                            v = b.next() => if let Some(v) = v {
                                seen.mark(v);
                                got += 1;
                            },
                            _ = sleep(Duration::from_millis(1)).fuse() => idle += 1,
                        }
                    }
                    (got, idle)
                })
            })
            .collect();
        drop((rx_a, rx_b));
        let producers: Vec<_> = (0..PRODUCERS)
            .flat_map(|p| {
                let (tx_a, tx_b) = (tx_a.clone(), tx_b.clone());
                [
                    spawn(async move {
                        for v in range(0, p) {
                            tx_a.send(v).await.expect("consumers alive");
                        }
                    }),
                    spawn(async move {
                        for v in range(1, p) {
                            tx_b.send(v).await.expect("consumers alive");
                        }
                    }),
                ]
            })
            .collect();
        drop((tx_a, tx_b));
        for p in producers {
            join(p).await;
        }
        let mut total = 0;
        for c in consumers {
            let (got, _idle) = join(c).await;
            total += got;
        }
        assert_eq!(total, TOTAL);
        seen.assert_all();
    }
}
