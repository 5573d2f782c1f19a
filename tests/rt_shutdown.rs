//! Dropping a `Runtime`: every task's future is dropped, its threads exit,
//! the drop returns promptly, and handles of cancelled tasks say so.

#[macro_use]
mod support;

use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use futures_util::FutureExt;
use gopark::runtime::{self, JoinHandle};
use support::DropCount;

/// How long dropping a runtime may take.
const DROP_LIMIT: Duration = Duration::from_secs(1);

/// Drops `rt`, asserting it takes less than [`DROP_LIMIT`].
fn drop_timed(rt: runtime::Runtime) {
    let start = Instant::now();
    drop(rt);
    let took = start.elapsed();
    assert!(took < DROP_LIMIT, "runtime drop took {took:?}");
}

/// Waits (bounded) until `n` tasks have reported that they started.
fn wait_started(rx: &mpsc::Receiver<()>, n: usize) {
    for i in 0..n {
        rx.recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("only {i} of {n} tasks started"));
    }
}

rt_test! {
    fn drop_runtime_with_parked_tasks(workers: usize) {
        let rt = support::runtime(workers, "shutpark");
        let drops = DropCount::new();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let mut handles: Vec<JoinHandle<()>> = Vec::new();
        // Kept alive so the receivers below never complete.
        let mut senders = Vec::new();
        const EACH: usize = 50;
        for i in 0..EACH {
            // Parked on nothing at all.
            let (g, s) = (drops.guard(), started_tx.clone());
            handles.push(rt.spawn(async move {
                let _g = g;
                s.send(()).unwrap();
                pending::<()>().await;
            }));
            // Parked on a channel whose sender lives on.
            let (tx, rx) = oneshot::channel::<()>();
            senders.push(tx);
            let (g, s) = (drops.guard(), started_tx.clone());
            handles.push(rt.spawn(async move {
                let _g = g;
                s.send(()).unwrap();
                let _ = rx.await;
            }));
            // Parked on a long timer. The timer is armed before the task
            // says it started: a sleep first polled once the runtime is
            // shutting down completes at once (no thread would fire it),
            // which would let a task still in its first poll finish.
            let (g, s) = (drops.guard(), started_tx.clone());
            handles.push(rt.spawn(async move {
                let _g = g;
                let mut sleep = std::pin::pin!(runtime::time::sleep(Duration::from_secs(
                    3600 + i as u64
                )));
                let armed = futures_util::poll!(sleep.as_mut());
                assert!(armed.is_pending());
                s.send(()).unwrap();
                sleep.await;
            }));
            // Parked on another parked task's handle.
            let inner = rt.spawn(pending::<()>());
            let (g, s) = (drops.guard(), started_tx.clone());
            handles.push(rt.spawn(async move {
                let _g = g;
                s.send(()).unwrap();
                let _ = inner.await;
            }));
        }
        // And some that never got polled at all (queued behind the rest).
        for _ in 0..EACH {
            let g = drops.guard();
            handles.push(rt.spawn(async move {
                let _g = g;
                pending::<()>().await;
            }));
        }
        wait_started(&started_rx, 4 * EACH);
        // Each task said it started just before it parks: wait until none
        // is still inside that first poll (a poll under way when the
        // runtime shuts down may finish the task).
        let start = std::time::Instant::now();
        while rt
            .handle()
            .dump()
            .tasks()
            .iter()
            .any(|t| matches!(t.state, runtime::TaskState::Running { .. }))
        {
            assert!(start.elapsed() < Duration::from_secs(10), "tasks never parked");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(rt.handle().num_alive_tasks() >= 6 * EACH);

        drop_timed(rt);
        assert_eq!(drops.get(), 5 * EACH, "every future was dropped");
        for h in handles {
            assert!(h.is_finished());
            let res = h.now_or_never().expect("a cancelled task's handle is ready");
            assert!(res.unwrap_err().is_cancelled());
        }
        drop(senders);
    }
}

rt_test! {
    fn spawn_through_handle_after_drop_is_cancelled(workers: usize) {
        let rt = support::runtime(workers, "shutlate");
        let handle = rt.handle().clone();
        drop_timed(rt);
        let drops = DropCount::new();
        let g = drops.guard();
        let polled = Arc::new(AtomicBool::new(false));
        let p = polled.clone();
        let h = handle.spawn(async move {
            let _g = g;
            p.store(true, Ordering::SeqCst);
        });
        let res = h.now_or_never().expect("cancelled at once");
        assert!(res.unwrap_err().is_cancelled());
        assert_eq!(drops.get(), 1);
        assert!(!polled.load(Ordering::SeqCst));
        assert_eq!(handle.num_alive_tasks(), 0);
        // A blocking job after shutdown is cancelled without running.
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let h = handle.spawn_blocking(move || r.store(true, Ordering::SeqCst));
        let res = h.now_or_never().expect("cancelled at once");
        assert!(res.unwrap_err().is_cancelled());
        assert!(!ran.load(Ordering::SeqCst));
    }
}

rt_test! {
    fn spawn_while_the_runtime_drops(workers: usize) {
        // Plain threads spawn through a handle while the runtime is being
        // dropped: every future spawned is dropped exactly once, and every
        // handle resolves, whichever side of the shutdown it landed on.
        let rt = support::runtime(workers, "shutrace");
        let handle = rt.handle().clone();
        let drops = DropCount::new();
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let spawners: Vec<_> = (0..2)
            .map(|t| {
                let (handle, drops, stop) = (handle.clone(), drops.clone(), stop.clone());
                let started_tx = started_tx.clone();
                thread::spawn(move || {
                    let mut handles = Vec::new();
                    let mut i = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        let g = drops.guard();
                        handles.push(handle.spawn(async move {
                            let _g = g;
                            if (i + t) % 2 == 0 {
                                pending::<()>().await;
                            }
                            runtime::yield_now().await;
                        }));
                        i += 1;
                        if i == 100 {
                            started_tx.send(()).unwrap();
                        }
                    }
                    handles
                })
            })
            .collect();
        wait_started(&started_rx, 2);
        drop_timed(rt);
        stop.store(true, Ordering::SeqCst);
        // Join every spawner before checking: a spawner that pushed a task
        // during the shutdown cancels whatever it found in the injector
        // itself, possibly after the drop returned (see the ignored test
        // below).
        let spawned: Vec<_> = spawners.into_iter().map(|s| s.join().unwrap()).collect();
        let mut total = 0;
        for handles in spawned {
            for h in handles {
                total += 1;
                let res = h.now_or_never().expect("every handle resolves after shutdown");
                if let Err(e) = res {
                    assert!(e.is_cancelled());
                }
            }
        }
        assert_eq!(drops.get(), total, "every spawned future dropped once");
    }
}

rt_test! {
    fn drop_runtime_whose_futures_spawn_and_wake_on_drop(workers: usize) {
        // Dropping a future during shutdown runs user code that spawns onto
        // the dying runtime and wakes other tasks: no deadlock, no leak.
        let rt = support::runtime(workers, "shutspawn");
        let handle = rt.handle().clone();
        let drops = DropCount::new();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        const N: usize = 100;
        for _ in 0..N {
            let (tx, rx) = oneshot::channel::<()>();
            let g = drops.guard();
            rt.spawn(async move {
                let _g = g;
                let _ = rx.await;
            });
            let (h, g, s) = (handle.clone(), drops.guard(), started_tx.clone());
            let d = drops.clone();
            rt.spawn(async move {
                let _g = g;
                let _tx = tx; // dropping it wakes the task above
                let _spawner = support::OnDrop(move || {
                    let late = d.guard();
                    drop(h.spawn(async move {
                        let _late = late;
                    }));
                });
                s.send(()).unwrap();
                pending::<()>().await;
            });
        }
        wait_started(&started_rx, N);
        drop_timed(rt);
        // Two futures per iteration, plus one late spawn from each drop.
        assert_eq!(drops.get(), 3 * N);
    }
}

rt_test! {
    fn drop_runtime_while_foreign_threads_wake_tasks(workers: usize) {
        // Plain threads keep waking tasks while the runtime shuts down.
        //
        // The drop waits for a running poll to return and then drops each
        // future, channel and backlog included, so both are kept short by
        // construction, whatever the race between senders and receivers:
        // a receiver takes at most `BATCH` messages per poll, and a channel
        // holds at most `CAP`. (A receiver that drains for as long as its
        // sender keeps up, or a backlog of millions of messages to free,
        // would make the drop as slow as the machine is busy.)
        const CAP: usize = 64;
        const BATCH: usize = 64;
        /// Messages each receiver takes before the runtime is dropped.
        const WARM_UP: usize = 1000;
        let rt = support::runtime(workers, "shutwake");
        let drops = DropCount::new();
        let stop = Arc::new(AtomicBool::new(false));
        let mut wakers = Vec::new();
        let mut counts = Vec::new();
        for _ in 0..2 {
            let (mut tx, mut rx) = futures_channel::mpsc::channel::<u32>(CAP);
            let g = drops.guard();
            let received = Arc::new(AtomicUsize::new(0));
            counts.push(received.clone());
            rt.spawn(async move {
                let _g = g;
                loop {
                    for _ in 0..BATCH {
                        if futures_util::StreamExt::next(&mut rx).await.is_none() {
                            return;
                        }
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    runtime::yield_now().await;
                }
            });
            let stop = stop.clone();
            wakers.push(thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    match tx.try_send(n) {
                        Ok(()) => n = n.wrapping_add(1),
                        Err(e) if e.is_disconnected() => break,
                        Err(_) => thread::yield_now(), // full
                    }
                }
            }));
        }
        // Let the senders get going (each receiver has been woken by its
        // sender many times), then shut down under them.
        let start = Instant::now();
        while counts.iter().any(|c| c.load(Ordering::Relaxed) < WARM_UP) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the receivers took {:?} messages in 10 s",
                counts.iter().map(|c| c.load(Ordering::Relaxed)).collect::<Vec<_>>()
            );
            thread::yield_now();
        }
        drop_timed(rt);
        stop.store(true, Ordering::Relaxed);
        for w in wakers {
            w.join().unwrap();
        }
        assert_eq!(drops.get(), 2);
    }
}

rt_test! {
    fn drop_runtime_waits_for_running_poll(workers: usize) {
        // A task blocking its worker when the runtime is dropped: the drop
        // waits for that poll to return, then drops the future.
        let rt = support::runtime(workers, "shutbusy");
        let drops = DropCount::new();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let g = drops.guard();
        let polls = Arc::new(AtomicUsize::new(0));
        let p = polls.clone();
        let h = rt.spawn(async move {
            let _g = g;
            started_tx.send(()).unwrap();
            p.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(100));
            // Would run forever if polled again.
            loop {
                p.fetch_add(1, Ordering::SeqCst);
                runtime::yield_now().await;
            }
        });
        wait_started(&started_rx, 1);
        drop_timed(rt);
        assert_eq!(drops.get(), 1);
        assert!(h.now_or_never().unwrap().unwrap_err().is_cancelled());
        let n = polls.load(Ordering::SeqCst);
        thread::sleep(Duration::from_millis(20));
        assert_eq!(polls.load(Ordering::SeqCst), n, "polled after shutdown");
    }
}

rt_test! {
    fn drop_runtime_with_blocking_job_in_flight(workers: usize) {
        let rt = support::runtime(workers, "shutblk");
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        let h = rt.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            thread::sleep(Duration::from_millis(100));
            f.store(true, Ordering::SeqCst);
            5
        });
        wait_started(&started_rx, 1);
        drop_timed(rt);
        // The job was allowed to finish (the pool waits up to 1 s).
        assert!(finished.load(Ordering::SeqCst));
        assert_eq!(h.now_or_never().expect("finished").unwrap(), 5);
    }
}

rt_test! {
    fn runtime_threads_exit_on_drop(workers: usize) {
        let name = format!("shutexit{workers}");
        let rt = support::runtime(workers, &name);
        rt.block_on(async {
            runtime::spawn(async {}).await.unwrap();
            runtime::spawn_blocking(|| ()).await.unwrap();
        });
        // Workers, netpoll and watchdog, and the blocking thread.
        support::threads::wait_for(&name, workers + support::threads::SERVICE_THREADS + 1);
        drop_timed(rt);
        // Workers and the netpoll thread are joined by the drop, but the
        // kernel may list a joined thread for a moment longer; blocking-pool
        // threads are not joined at all (they leave the pool, then exit).
        // Nothing to await: poll, bounded.
        let start = Instant::now();
        while support::threads::usage(&name).threads > 0 {
            assert!(
                start.elapsed() < DROP_LIMIT,
                "threads still alive: {:?}",
                support::threads::usage(&name)
            );
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Slows its own drop down, then counts it (a future holding a resource
/// whose release takes a while).
struct SlowGuard(#[allow(dead_code)] support::DropGuard);

impl Drop for SlowGuard {
    fn drop(&mut self) {
        thread::sleep(Duration::from_millis(20));
        // The count goes up when the field drops, after the sleep.
    }
}

#[test]
fn drop_returns_after_every_future_is_dropped_despite_concurrent_spawns() {
    support::guard(1, "drop_returns_after_every_future_is_dropped", || {
        let rt = support::runtime(1, "shutdrain");
        let handle = rt.handle().clone();
        // Hold the only worker, so that what we spawn stays in the injector.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (blocked_tx, blocked_rx) = mpsc::channel::<()>();
        rt.spawn(async move {
            blocked_tx.send(()).unwrap();
            // Shutdown cancels tasks only after the workers are joined, so
            // this worker is released by the timeout.
            let _ = release_rx.recv_timeout(Duration::from_millis(300));
        });
        blocked_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        const N: usize = 10;
        let drops = DropCount::new();
        let mut release_tx = Some(release_tx);
        for _ in 0..N {
            let slow = SlowGuard(drops.guard());
            // The first task cancelled lets the worker go, so the drop
            // proceeds while the rest are being cancelled.
            let release = release_tx.take();
            drop(handle.spawn(async move {
                let _slow = slow;
                let _release = support::OnDrop(move || {
                    if let Some(tx) = &release {
                        let _ = tx.send(());
                    }
                });
                pending::<()>().await;
            }));
        }
        let d = drops.clone();
        let dropper = thread::spawn(move || {
            drop(rt);
            d.get()
        });
        // Spawn and wake from this thread while the runtime drops: these
        // spawns find it shutting down and must neither hang nor cancel
        // the runtime's tasks here, behind `drop`'s back.
        let start = Instant::now();
        while !dropper.is_finished() {
            drop(handle.spawn(async {}));
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "Runtime::drop never returned"
            );
            thread::yield_now();
        }
        let probe = handle.spawn(async {});
        assert!(
            probe.is_finished(),
            "a spawn after shutdown is cancelled at once"
        );
        let at_drop_return = dropper.join().unwrap();
        assert_eq!(drops.get(), N, "every future dropped in the end");
        assert_eq!(
            at_drop_return, N,
            "Runtime::drop returned before every future was dropped"
        );
    });
}
