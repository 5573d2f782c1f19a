//! Scheduling: wake-ups from foreign threads, spreading work over workers,
//! fairness (`yield_now`, self-waking tasks, message ping-pong), the
//! `block_on`-on-a-worker guard, and `spawn_blocking`.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use gopark::runtime::{self, Handle};

rt_test! {
    async fn wakes_from_foreign_threads() {
        // Each task parks on a oneshot that a plain thread completes.
        const THREADS: usize = 4;
        const PER_THREAD: usize = 250;
        let mut senders: Vec<Vec<oneshot::Sender<usize>>> =
            (0..THREADS).map(|_| Vec::new()).collect();
        let mut tasks = Vec::new();
        for i in 0..THREADS * PER_THREAD {
            let (tx, rx) = oneshot::channel();
            senders[i % THREADS].push(tx);
            tasks.push(runtime::spawn(async move { rx.await.unwrap() == i }));
        }
        // Let the tasks park first, so most wakes find them parked.
        runtime::yield_now().await;
        let threads: Vec<_> = senders
            .into_iter()
            .enumerate()
            .map(|(t, txs)| {
                thread::spawn(move || {
                    for (k, tx) in txs.into_iter().enumerate() {
                        tx.send(k * THREADS + t).unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
        for t in threads {
            t.join().unwrap();
        }
    }
}

rt_test! {
    async fn foreign_thread_round_trips() {
        // A plain thread and a task ping-pong, each side parking every time:
        // every wake-up of a parked task comes from outside the runtime.
        const ROUNDS: u32 = 2_000;
        let (to_task, mut task_rx) = mpsc::channel::<u32>(1);
        let (to_thread, thread_rx) = std::sync::mpsc::channel::<u32>();
        let task = runtime::spawn(async move {
            let mut n = 0;
            while let Some(v) = task_rx.next().await {
                assert_eq!(v, n);
                to_thread.send(v).unwrap();
                n += 1;
            }
            n
        });
        let pinger = thread::spawn(move || {
            let mut to_task = to_task;
            for i in 0..ROUNDS {
                loop {
                    match to_task.try_send(i) {
                        Ok(()) => break,
                        Err(e) if e.is_full() => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
                let back = thread_rx
                    .recv_timeout(Duration::from_secs(5))
                    .expect("task answered");
                assert_eq!(back, i);
            }
        });
        assert_eq!(task.await.unwrap(), ROUNDS);
        pinger.join().unwrap();
    }
}

rt_test! {
    fn remote_spawn_round_trips(workers: usize) {
        // A plain thread spawns one task at a time and waits for it: each
        // spawn must wake a parked worker (a lost unpark hangs here).
        let rt = support::runtime(workers, "remote");
        let handle = rt.handle().clone();
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        for i in 0..2_000u32 {
            let tx = tx.clone();
            drop(handle.spawn(async move { tx.send(i).unwrap() }));
            let got = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("task {i} never ran: a worker was not woken"));
            assert_eq!(got, i);
            if i % 100 == 0 {
                // Let every worker go idle and park now and then.
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

rt_test! {
    async fn work_spreads_over_workers() {
        // Tasks that hold their thread briefly: with several workers, more
        // than one must take part. Spawned from a worker (local queue) and
        // from a plain thread (injector).
        let workers = Handle::current().num_workers();
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let job = |seen: Arc<Mutex<HashSet<thread::ThreadId>>>| async move {
            // Blocks the worker on purpose: this is the work being spread.
            thread::sleep(Duration::from_millis(2));
            seen.lock().unwrap().insert(thread::current().id());
        };
        let start = Instant::now();
        let mut tasks: Vec<_> = (0..64).map(|_| runtime::spawn(job(seen.clone()))).collect();
        let handle = Handle::current();
        let s = seen.clone();
        let outside = thread::spawn(move || {
            (0..64).map(|_| handle.spawn(job(s.clone()))).collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        tasks.extend(outside);
        for t in tasks {
            t.await.unwrap();
        }
        let distinct = seen.lock().unwrap().len();
        let took = start.elapsed();
        if workers == 1 {
            assert_eq!(distinct, 1);
        } else {
            assert!(distinct > 1, "{workers} workers but all 128 tasks ran on one thread");
            // 128 x 2 ms of blocking: 256 ms in series, less spread. The
            // bound catches a stall, with room for a busy machine (each
            // task's wake-up of a sleeping worker can wait for a CPU).
            assert!(took < Duration::from_secs(10), "took {took:?}");
        }
    }
}

rt_test! {
    async fn yield_now_lets_another_task_run() {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let spinner = runtime::spawn(async move {
            let mut yields = 0u64;
            while !f.load(Ordering::SeqCst) {
                runtime::yield_now().await;
                yields += 1;
            }
            yields
        });
        // Spawned after the spinner, so on one worker it only runs if the
        // spinner's yields let it.
        let setter = runtime::spawn(async move { flag.store(true, Ordering::SeqCst) });
        setter.await.unwrap();
        spinner.await.unwrap();
    }
}

rt_test! {
    async fn self_waking_task_does_not_starve_others() {
        // A task that wakes itself and returns `Pending` forever, without
        // `yield_now`, must not keep the others off its worker.
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let hog = runtime::spawn(poll_fn(move |cx| {
            if s.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }));
        let others: Vec<_> = (0..10).map(|i| runtime::spawn(async move { i })).collect();
        for (i, o) in others.into_iter().enumerate() {
            assert_eq!(o.await.unwrap(), i);
        }
        stop.store(true, Ordering::SeqCst);
        hog.await.unwrap();
    }
}

rt_test! {
    async fn message_ping_pong_does_not_starve_the_queue() {
        // Two tasks bounce a message forever (each wake lands in the LIFO
        // slot). This task, and a third one queued behind them, must still
        // get to run while the bouncing goes on.
        let stop = Arc::new(AtomicBool::new(false));
        let bounces = Arc::new(AtomicUsize::new(0));
        let (a_tx, mut a_rx) = mpsc::unbounded::<u64>();
        let (b_tx, mut b_rx) = mpsc::unbounded::<u64>();
        let (s, n) = (stop.clone(), bounces.clone());
        let ping = runtime::spawn(async move {
            while let Some(v) = a_rx.next().await {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                n.fetch_add(1, Ordering::SeqCst);
                b_tx.unbounded_send(v + 1).unwrap();
            }
        });
        let a_tx2 = a_tx.clone();
        let pong = runtime::spawn(async move {
            while let Some(v) = b_rx.next().await {
                if a_tx2.unbounded_send(v + 1).is_err() {
                    break;
                }
            }
        });
        a_tx.unbounded_send(0).unwrap();
        while bounces.load(Ordering::SeqCst) < 1_000 {
            runtime::yield_now().await;
        }
        let third = runtime::spawn(async { 3 });
        assert_eq!(third.await.unwrap(), 3);
        assert!(bounces.load(Ordering::SeqCst) >= 1_000);
        stop.store(true, Ordering::SeqCst);
        ping.await.unwrap();
        drop(a_tx);
        pong.await.unwrap();
    }
}

rt_test! {
    async fn block_on_inside_a_worker_panics() {
        let err = runtime::spawn(async {
            runtime::block_on(async { 1 });
        })
        .await
        .unwrap_err();
        assert!(err.is_panic());
        let msg = err.to_string();
        assert!(msg.contains("block_on"), "panic message: {msg}");
        // Also through `Runtime::block_on` of another runtime.
        let err = runtime::spawn(async {
            let other = support::runtime(1, "inner");
            other.block_on(async { 1 });
        })
        .await
        .unwrap_err();
        assert!(err.is_panic());
        assert!(err.to_string().contains("block_on"), "{err}");
        // The worker is fine afterwards.
        assert_eq!(runtime::spawn(async { 4 }).await.unwrap(), 4);
    }
}

rt_test! {
    async fn spawn_blocking_returns_values_off_the_workers() {
        let worker = thread::current().id();
        assert!(support::on_worker_of("rt1") || support::on_worker_of("rt4"));
        let (v, id, name) = runtime::spawn_blocking(move || {
            (21 * 2, thread::current().id(), support::thread_name())
        })
        .await
        .unwrap();
        assert_eq!(v, 42);
        assert_ne!(id, worker);
        assert!(!name.contains("-worker-"), "blocking job ran on {name:?}");
        assert!(name.contains("-blocking-"), "blocking job ran on {name:?}");
        // Spawned from inside a blocking job, a task goes to the runtime.
        let name = runtime::spawn_blocking(|| {
            runtime::block_on(runtime::spawn(async { support::thread_name() })).unwrap()
        })
        .await
        .unwrap();
        assert!(name.contains("-worker-"), "task ran on {name:?}");
    }
}

rt_test! {
    async fn spawn_blocking_jobs_run_concurrently() {
        // Four jobs that can only finish together: a pool that ran them one
        // at a time would deadlock here (the test's bound catches it).
        const JOBS: usize = 4;
        let barrier = Arc::new(Barrier::new(JOBS));
        let jobs: Vec<_> = (0..JOBS)
            .map(|i| {
                let b = barrier.clone();
                runtime::spawn_blocking(move || {
                    b.wait();
                    i
                })
            })
            .collect();
        let mut sum = 0;
        for j in jobs {
            sum += j.await.unwrap();
        }
        assert_eq!(sum, 6);
        // Many short jobs reuse threads and all complete.
        let count = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..200)
            .map(|_| {
                let c = count.clone();
                runtime::spawn_blocking(move || c.fetch_add(1, Ordering::SeqCst))
            })
            .collect();
        for j in jobs {
            j.await.unwrap();
        }
        assert_eq!(count.load(Ordering::SeqCst), 200);
    }
}

rt_test! {
    async fn spawn_blocking_panic_is_a_join_error() {
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if info.payload().downcast_ref::<&str>() != Some(&"deliberate: blocking") {
                    default(info);
                }
            }));
        });
        let err = runtime::spawn_blocking(|| -> u32 { panic!("deliberate: blocking") })
            .await
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(
            err.into_panic().downcast_ref::<&str>(),
            Some(&"deliberate: blocking")
        );
        assert_eq!(runtime::spawn_blocking(|| 1).await.unwrap(), 1);
    }
}
