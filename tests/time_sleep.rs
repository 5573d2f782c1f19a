//! Timers: `sleep` never fires early, `timeout`, `interval`, many
//! concurrent sleeps, and dropped timers leave no work behind.

#[macro_use]
mod support;

use std::future::pending;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gopark::runtime::{self, time};
use support::future::poll_once;
use time::{sleep, sleep_until, timeout, Elapsed, Instant};

/// Generous: a loaded 2-core CI machine may be slow to run a woken task.
/// (The bound catches timers that never fire, or fire a tick late.)
const SLACK: Duration = Duration::from_millis(1500);

#[track_caller]
fn assert_between(took: Duration, low: Duration, what: &str) {
    assert!(took >= low, "{what}: fired early, after {took:?} < {low:?}");
    assert!(took < low + SLACK, "{what}: fired late, after {took:?}");
}

rt_test! {
    async fn sleep_never_fires_early() {
        for ms in [1u64, 5, 10, 25, 50] {
            let d = Duration::from_millis(ms);
            let start = Instant::now();
            sleep(d).await;
            assert_between(start.elapsed(), d, "sleep");
        }
        // Sub-millisecond: epoll's millisecond timeout must round up.
        for us in [1u64, 100, 999, 1_001, 1_500] {
            let d = Duration::from_micros(us);
            let start = Instant::now();
            sleep(d).await;
            assert_between(start.elapsed(), d, "sleep");
        }
        // Many at once, each checked against its own deadline.
        let tasks: Vec<_> = (0..50u64)
            .map(|i| {
                runtime::spawn(async move {
                    let d = Duration::from_micros(300 * i + 7);
                    let start = Instant::now();
                    sleep(d).await;
                    (start.elapsed(), d)
                })
            })
            .collect();
        for t in tasks {
            let (took, d) = t.await.unwrap();
            assert_between(took, d, "concurrent sleep");
        }
    }
}

rt_test! {
    /// A sleep's first poll compares its deadline with the thread's last
    /// reading of the runtime's clock, not with a new one: a deadline that
    /// passed since that reading is left to the timer heap, and must
    /// still complete there (the netpoll thread fires it at its next
    /// look, which the insert asks for), on every kind of thread.
    async fn a_deadline_passed_since_the_last_clock_reading_completes() {
        for _ in 0..20 {
            let read = time::now();
            // Passed by the time the sleep is polled, but after `read`.
            let deadline = read + Duration::from_micros(50);
            while std::time::Instant::now() < deadline {
                std::hint::spin_loop();
            }
            timeout(SLACK, sleep_until(deadline))
                .await
                .expect("a passed deadline completes");
            // And on a worker, where the next poll may be the netpoll
            // thread's own inline one.
            runtime::spawn(async move {
                let deadline = time::now() + Duration::from_micros(50);
                while std::time::Instant::now() < deadline {
                    std::hint::spin_loop();
                }
                timeout(SLACK, sleep_until(deadline)).await
            })
            .await
            .unwrap()
            .expect("a passed deadline completes on a worker");
        }
    }
}

rt_test! {
    async fn sleep_until_and_zero_sleeps() {
        let start = Instant::now();
        sleep(Duration::ZERO).await;
        sleep_until(start).await;
        sleep_until(start - Duration::from_secs(1)).await;
        assert!(start.elapsed() < SLACK);

        let deadline = Instant::now() + Duration::from_millis(20);
        let s = sleep_until(deadline);
        assert_eq!(s.deadline(), deadline);
        assert!(!s.is_elapsed());
        let mut s = pin!(s);
        s.as_mut().await;
        assert!(Instant::now() >= deadline);
        assert!(s.is_elapsed());
        // A completed sleep stays complete.
        s.as_mut().await;

        // `reset` re-arms it.
        let start = Instant::now();
        let new = start + Duration::from_millis(15);
        s.as_mut().reset(new);
        assert!(!s.is_elapsed());
        s.as_mut().await;
        assert!(Instant::now() >= new);
    }
}

rt_test! {
    async fn reset_moves_a_pending_sleep() {
        // Reset while registered: to later, then to earlier.
        let start = Instant::now();
        let mut s = Box::pin(sleep(Duration::from_millis(10)));
        assert!(poll_once(&mut s).is_pending());
        s.as_mut().reset(start + Duration::from_millis(40));
        s.as_mut().await;
        assert_between(start.elapsed(), Duration::from_millis(40), "reset later");

        let start = Instant::now();
        let mut s = Box::pin(sleep(Duration::from_secs(3600)));
        assert!(poll_once(&mut s).is_pending());
        s.as_mut().reset(start + Duration::from_millis(10));
        s.as_mut().await;
        assert_between(start.elapsed(), Duration::from_millis(10), "reset earlier");
    }
}

rt_test! {
    async fn timeout_elapses_and_passes_through() {
        let d = Duration::from_millis(20);
        let start = Instant::now();
        let res: Result<(), Elapsed> = timeout(d, pending()).await;
        assert!(res.is_err());
        assert_between(start.elapsed(), d, "timeout");

        // Ready futures pass straight through, even with a zero deadline.
        assert_eq!(timeout(Duration::from_secs(10), async { 7 }).await, Ok(7));
        assert_eq!(timeout(Duration::ZERO, async { 8 }).await, Ok(8));
        // A future that finishes before the deadline wins.
        let start = Instant::now();
        let res = timeout(Duration::from_secs(5), sleep(Duration::from_millis(10))).await;
        assert!(res.is_ok());
        assert!(start.elapsed() < Duration::from_secs(1));
        // One that finishes after it loses.
        let res = timeout(Duration::from_millis(5), sleep(Duration::from_secs(5))).await;
        assert!(res.is_err());
        // A spawned task's handle under a timeout.
        let h = runtime::spawn(async { 1 });
        assert_eq!(timeout(Duration::from_secs(5), h).await.unwrap().unwrap(), 1);

        let e = timeout(Duration::ZERO, pending::<()>()).await.unwrap_err();
        assert_eq!(e.to_string(), "deadline has elapsed");
        let io: std::io::Error = e.into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    }
}

rt_test! {
    async fn timeout_at_deadline() {
        let deadline = Instant::now() + Duration::from_millis(15);
        let res = time::timeout_at(deadline, pending::<()>()).await;
        assert!(res.is_err());
        assert!(Instant::now() >= deadline);
    }
}

rt_test! {
    async fn interval_ticks() {
        let period = Duration::from_millis(10);
        let start = Instant::now();
        let mut ticks = time::interval(period);
        assert_eq!(ticks.period(), period);
        let first = ticks.tick().await;
        assert!(start.elapsed() < SLACK, "first tick is immediate");
        let mut last = first;
        for i in 1..=5u32 {
            let t = ticks.tick().await;
            assert!(Instant::now() >= t, "tick {i} reported before its time");
            // A period apart, unless this task ran so late that the
            // interval skipped a tick (a loaded machine).
            assert!(t - last >= period, "tick {i}: {:?} after the last", t - last);
            assert_eq!((t - first).as_nanos() % period.as_nanos(), 0, "tick {i} off the grid");
            assert!(t > last);
            last = t;
        }
        let took = start.elapsed();
        assert!(took >= period * 5, "5 periods took {took:?}");
        assert!(took < period * 5 + SLACK, "5 periods took {took:?}");

        // With `Skip` (Go's ticker), a slow consumer gets the tick it
        // missed, then skips ahead instead of receiving a burst of stale
        // ones. Six ticks fell due while it slept; the one after the missed
        // tick lies past the moment it woke, however late the machine let
        // it run.
        let period = Duration::from_millis(5);
        let mut ticks = time::interval(period);
        ticks.set_missed_tick_behavior(time::MissedTickBehavior::Skip);
        let t0 = ticks.tick().await;
        thread::sleep(Duration::from_millis(30)); // a consumer busy elsewhere
        let woke = Instant::now();
        let t1 = ticks.tick().await;
        assert_eq!(t1, t0 + period, "the missed tick comes first");
        assert!(t1 < woke);
        let t2 = ticks.tick().await;
        assert!(t2 >= woke, "a stale tick came in a burst: {:?} before waking", woke - t2);
        assert!(Instant::now() >= t2);
        assert_eq!((t2 - t1).as_nanos() % period.as_nanos(), 0);
    }
}

#[test]
#[should_panic(expected = "period must be non-zero")]
fn interval_rejects_zero_period() {
    let _ = time::interval(Duration::ZERO);
}

rt_test! {
    async fn hundred_thousand_concurrent_sleeps() {
        const N: usize = 100_000;
        let done = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let done = done.clone();
                runtime::spawn(async move {
                    // 1..=50 ms, all different deadlines.
                    sleep(Duration::from_micros(1_000 + (i as u64 * 7919) % 49_000)).await;
                    done.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(done.load(Ordering::Relaxed), N);
        assert!(start.elapsed() >= Duration::from_millis(1));
    }
}

rt_test! {
    async fn hundred_thousand_sleeps_in_one_task() {
        // One task owns them all: one waker registered 100,000 times.
        const N: usize = 100_000;
        let sleeps: Vec<_> = (0..N)
            .map(|i| sleep(Duration::from_micros(500 + (i as u64 * 31) % 20_000)))
            .collect();
        let start = Instant::now();
        futures_util::future::join_all(sleeps).await;
        assert!(start.elapsed() >= Duration::from_micros(500));
    }
}

rt_test! {
    fn dropped_sleeps_leave_no_work_behind(workers: usize) {
        // Register many timers with distinct deadlines, then drop them all.
        // If they lingered in the heap, the netpoll thread would wake up
        // once per deadline; count its context switches while idle.
        let name = format!("tdrop{workers}");
        let rt = support::runtime(workers, &name);
        rt.block_on(async {
            for i in 0..2_000u64 {
                let d = Duration::from_millis(10 + i % 200) + Duration::from_micros(i * 37 % 1000);
                // A polled sleep and a polled timeout, then dropped. (On a
                // very loaded machine a deadline may pass before the poll;
                // that one is then simply done.)
                let mut s = Box::pin(sleep(d));
                let _ = poll_once(&mut s);
                drop(s);
                let mut t = Box::pin(timeout(d, pending::<()>()));
                let _ = poll_once(&mut t);
                drop(t);
            }
            // The same from inside tasks.
            let tasks: Vec<_> = (0..1_000u64)
                .map(|i| {
                    runtime::spawn(async move {
                        let d = Duration::from_millis(5 + i % 200);
                        let r = timeout(d, async {}).await;
                        assert!(r.is_ok());
                        let _ = timeout(Duration::from_micros(1), sleep(d)).await;
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let poller = format!("{name}-netpoll");
        let before = support::threads::wait_for(&poller, 1);
        assert_eq!(before.threads, 1, "one netpoll thread");
        // Idle for longer than every dropped deadline.
        thread::sleep(Duration::from_millis(250));
        let after = support::threads::usage(&poller);
        let woke = after.switches - before.switches;
        assert!(
            woke <= 5,
            "the netpoll thread woke {woke} times while idle: dropped timers linger"
        );
    }
}

#[test]
fn sleep_of_a_dropped_runtime_completes() {
    support::guard(1, "sleep_of_a_dropped_runtime_completes", || {
        // A sleep registered with a runtime that is then dropped completes
        // at once when polled again (elsewhere), rather than never.
        let a = support::runtime(1, "tdeadrt");
        let mut s = Box::pin(sleep(Duration::from_secs(3600)));
        a.block_on(async {
            assert!(poll_once(&mut s).is_pending());
        });
        drop(a);
        let b = support::runtime(1, "tlivert");
        let start = Instant::now();
        b.block_on(async move {
            runtime::spawn(s).await.unwrap();
        });
        assert!(start.elapsed() < SLACK);
    });
}

#[test]
fn sleep_in_block_on_without_tasks() {
    support::guard(0, "sleep_in_block_on_without_tasks", || {
        // The default runtime's timers drive a plain thread's `block_on`.
        let start = Instant::now();
        runtime::block_on(sleep(Duration::from_millis(15)));
        assert_between(start.elapsed(), Duration::from_millis(15), "block_on sleep");
        let r = runtime::block_on(timeout(Duration::from_millis(5), pending::<()>()));
        assert!(r.is_err());
    });
}
