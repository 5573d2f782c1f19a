//! `tokio::sync` on gopark's scheduler, with no tokio runtime anywhere.
//!
//! tokio's `sync` module is runtime-agnostic: its channels and locks park a
//! task through its `Waker` and nothing else, so they run on gopark's
//! workers unchanged. Each test here moves 1,000,000 messages (or lock
//! acquisitions, or notifications) between many tasks on a 4-worker and a
//! 2-worker runtime, under contention (small capacities, locks held across
//! an `.await`), and checks that nothing is lost or duplicated: every
//! producer sends its own range of numbers and the receiving side marks
//! each one in a bitmap, failing on the first number seen twice or never.

#[macro_use]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gopark::runtime::{spawn, yield_now};
use support::data::Seen;
use support::rt::join;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Mutex, Notify, RwLock, Semaphore};

/// Messages (or acquisitions) per test and runtime.
const TOTAL: u64 = 1_000_000;
/// Producer (or contender) tasks per test.
const TASKS: u64 = 8;
/// What each of them sends.
const PER_TASK: u64 = TOTAL / TASKS;

/// Bound of one test on one runtime: a hang detector, far above the few
/// seconds each needs, even on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(120);

/// The numbers producer `p` sends.
fn range(p: u64) -> std::ops::Range<u64> {
    p * PER_TASK..(p + 1) * PER_TASK
}

rt_test! {
    limit = LIMIT;
    workers = [four_workers: 4, two_workers: 2];

    async fn mpsc_bounded() {
        // A capacity far below the producer count keeps the producers
        // parked on a full channel most of the time.
        let (tx, mut rx) = mpsc::channel::<u64>(256);
        for p in 0..TASKS {
            let tx = tx.clone();
            spawn(async move {
                for v in range(p) {
                    tx.send(v).await.expect("receiver alive");
                }
            });
        }
        drop(tx);
        let seen = Seen::new(TOTAL);
        // `None` only once every producer has sent all and dropped its
        // sender.
        while let Some(v) = rx.recv().await {
            seen.mark(v);
        }
        seen.assert_all();
    }

    async fn mpsc_unbounded() {
        // Two producers, not TASKS: a tokio unbounded sender that loses its
        // thread half-way through a send holds back the list's tail, and
        // every other sender then walks the whole distance on each send.
        // With more sending threads than cores (4 workers on 2 cores)
        // that walk, not the channel's real work, took most of the time.
        const PRODUCERS: u64 = 2;
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        for p in 0..PRODUCERS {
            let tx = tx.clone();
            // An unbounded send never waits: each producer runs through
            // its half in one go while the consumer drains the other end.
            spawn(async move {
                for v in p * TOTAL / PRODUCERS..(p + 1) * TOTAL / PRODUCERS {
                    tx.send(v).expect("receiver alive");
                }
            });
        }
        drop(tx);
        let seen = Seen::new(TOTAL);
        while let Some(v) = rx.recv().await {
            seen.mark(v);
        }
        seen.assert_all();
    }

    async fn oneshot_many() {
        // Each of TASKS groups runs rounds of ROUND channels: a sender task
        // gets the senders, the group awaits the receivers in order, so
        // some receivers park before their value is sent and some find it
        // waiting. One extra channel per round has its sender dropped
        // unsent: its receiver must see the error, not hang.
        const ROUND: u64 = 1000;
        let seen = Arc::new(Seen::new(TOTAL));
        let groups: Vec<_> = (0..TASKS)
            .map(|g| {
                let seen = seen.clone();
                spawn(async move {
                    let mut next = g * PER_TASK;
                    while next < (g + 1) * PER_TASK {
                        let (txs, rxs): (Vec<_>, Vec<_>) =
                            (0..=ROUND).map(|_| oneshot::channel::<u64>()).unzip();
                        let first = next;
                        let sender = spawn(async move {
                            let mut txs = txs;
                            drop(txs.pop());
                            for (i, tx) in txs.into_iter().enumerate() {
                                tx.send(first + i as u64).expect("receiver alive");
                                if i % 100 == 0 {
                                    yield_now().await;
                                }
                            }
                        });
                        let mut rxs = rxs;
                        let unsent = rxs.pop().expect("ROUND + 1 receivers");
                        for rx in rxs {
                            seen.mark(rx.await.expect("every kept sender sends"));
                        }
                        unsent.await.expect_err("a dropped sender is an error");
                        join(sender).await;
                        next += ROUND;
                    }
                })
            })
            .collect();
        for g in groups {
            join(g).await;
        }
        seen.assert_all();
    }

    async fn broadcast_fan_out() {
        // Every receiver sees every message, except those it reports as
        // skipped with `Lagged(n)`: what it got plus what it was told it
        // missed is the whole stream, and each producer's numbers arrive
        // in order, each once.
        const RECEIVERS: usize = 4;
        const PRODUCERS: u64 = 4;
        let per = TOTAL / PRODUCERS;
        let (tx, _) = broadcast::channel::<u64>(1024);
        let receivers: Vec<_> = (0..RECEIVERS)
            .map(|_| {
                let mut rx = tx.subscribe();
                spawn(async move {
                    let mut last = [None::<u64>; PRODUCERS as usize];
                    let (mut got, mut skipped) = (0u64, 0u64);
                    loop {
                        match rx.recv().await {
                            Ok(v) => {
                                let p = (v / per) as usize;
                                assert!(p < PRODUCERS as usize, "received {v}, never sent");
                                if let Some(prev) = last[p] {
                                    assert!(v > prev, "{v} after {prev} from producer {p}");
                                }
                                last[p] = Some(v);
                                got += 1;
                            }
                            Err(broadcast::error::RecvError::Lagged(n)) => skipped += n,
                            Err(broadcast::error::RecvError::Closed) => break,
                        }
                    }
                    (got, skipped)
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                spawn(async move {
                    for v in p * per..(p + 1) * per {
                        tx.send(v).expect("receivers alive");
                        if v % 64 == 0 {
                            yield_now().await;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        for p in producers {
            join(p).await;
        }
        for r in receivers {
            let (got, skipped) = join(r).await;
            assert_eq!(got + skipped, TOTAL, "got {got}, told of {skipped} skipped");
            assert!(got > 0);
        }
    }

    async fn watch_updates() {
        // Many writers bump one value; no update is lost (the final value
        // is the number of updates), and every reader sees the value only
        // grow and ends on the final one.
        const READERS: usize = 4;
        let (tx, _) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let mut rx = tx.subscribe();
                spawn(async move {
                    let mut last = 0;
                    // `changed` reports a newer value before it reports
                    // that every sender is gone.
                    while rx.changed().await.is_ok() {
                        let v = *rx.borrow_and_update();
                        assert!(v > last, "value went from {last} to {v}");
                        last = v;
                    }
                    last
                })
            })
            .collect();
        let writers: Vec<_> = (0..TASKS)
            .map(|_| {
                let tx = tx.clone();
                spawn(async move {
                    for i in 0..PER_TASK {
                        tx.send_modify(|v| *v += 1);
                        if i % 64 == 0 {
                            yield_now().await;
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        for w in writers {
            join(w).await;
        }
        for r in readers {
            let last = join(r).await;
            assert_eq!(last, TOTAL, "a reader missed the final value");
        }
    }

    async fn mutex_contended() {
        // The lock is sometimes held across an `.await`, so contenders park
        // on it; the flag catches two holders at once, the count a lost
        // update.
        let lock = Arc::new(Mutex::new(0u64));
        let inside = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (lock, inside) = (lock.clone(), inside.clone());
                spawn(async move {
                    for i in 0..PER_TASK {
                        let mut n = lock.lock().await;
                        assert!(!inside.swap(true, Ordering::Relaxed), "two holders");
                        *n += 1;
                        if i % 32 == 0 {
                            yield_now().await;
                        }
                        inside.store(false, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            join(t).await;
        }
        assert_eq!(*lock.lock().await, TOTAL);
    }

    async fn rwlock_contended() {
        // One acquisition in eight is a write that updates two fields with
        // an `.await` between them; a reader that ever sees them differ, or
        // a writer that meets anyone inside, fails.
        let lock = Arc::new(RwLock::new((0u64, 0u64)));
        let readers_in = Arc::new(AtomicUsize::new(0));
        let writer_in = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (lock, readers_in, writer_in) =
                    (lock.clone(), readers_in.clone(), writer_in.clone());
                spawn(async move {
                    for i in 0..PER_TASK {
                        if i % 8 == 0 {
                            let mut g = lock.write().await;
                            assert!(!writer_in.swap(true, Ordering::Relaxed), "two writers");
                            assert_eq!(readers_in.load(Ordering::Relaxed), 0, "reader beside a writer");
                            g.0 += 1;
                            yield_now().await;
                            g.1 += 1;
                            writer_in.store(false, Ordering::Relaxed);
                        } else {
                            let g = lock.read().await;
                            readers_in.fetch_add(1, Ordering::Relaxed);
                            assert!(!writer_in.load(Ordering::Relaxed), "writer beside a reader");
                            assert_eq!(g.0, g.1, "torn write seen");
                            if i % 64 == 1 {
                                yield_now().await;
                            }
                            readers_in.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            join(t).await;
        }
        let g = lock.read().await;
        assert_eq!(*g, (TOTAL / 8, TOTAL / 8));
    }

    async fn semaphore_permits() {
        // PERMITS permits, taken one or two at a time; the permits in use
        // never exceed PERMITS and every one comes back.
        const PERMITS: usize = 4;
        let sem = Arc::new(Semaphore::new(PERMITS));
        let in_use = Arc::new(AtomicUsize::new(0));
        let taken = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (sem, in_use, taken) = (sem.clone(), in_use.clone(), taken.clone());
                spawn(async move {
                    for i in 0..PER_TASK {
                        let want = if (t + i) % 16 == 0 { 2 } else { 1 };
                        let permit = sem.acquire_many(want as u32).await.expect("not closed");
                        let now = in_use.fetch_add(want, Ordering::Relaxed) + want;
                        assert!(now <= PERMITS, "{now} permits in use");
                        taken.fetch_add(1, Ordering::Relaxed);
                        if i % 32 == 0 {
                            yield_now().await;
                        }
                        in_use.fetch_sub(want, Ordering::Relaxed);
                        drop(permit);
                    }
                })
            })
            .collect();
        for t in tasks {
            join(t).await;
        }
        assert_eq!(taken.load(Ordering::Relaxed), TOTAL);
        assert_eq!(sem.available_permits(), PERMITS);
    }

    async fn notify_ping_pong() {
        // Pairs of tasks pass a ball back and forth with `notify_one`: each
        // notification wakes the other side exactly once, so the ball's
        // count proves strict turns, and a lost notification would hang
        // (and fail on the timeout).
        let round_trips = TOTAL / TASKS / 2;
        let pairs: Vec<_> = (0..TASKS)
            .map(|_| {
                let ball = Arc::new(AtomicU64::new(0));
                let (to_a, to_b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
                let b = {
                    let (ball, to_a, to_b) = (ball.clone(), to_a.clone(), to_b.clone());
                    spawn(async move {
                        for i in 0..round_trips {
                            to_b.notified().await;
                            assert_eq!(ball.load(Ordering::Acquire), 2 * i + 1);
                            ball.store(2 * i + 2, Ordering::Release);
                            to_a.notify_one();
                        }
                    })
                };
                let a = spawn(async move {
                    for i in 0..round_trips {
                        assert_eq!(ball.load(Ordering::Acquire), 2 * i);
                        ball.store(2 * i + 1, Ordering::Release);
                        to_b.notify_one();
                        to_a.notified().await;
                    }
                    ball.load(Ordering::Acquire)
                });
                (a, b)
            })
            .collect();
        for (a, b) in pairs {
            assert_eq!(join(a).await, 2 * round_trips);
            join(b).await;
        }
    }
}
