//! `Handle::metrics()`: each counter checked against what the test did —
//! spawns, polls, parks, steals, readiness events, timers — not merely
//! against zero.

mod support;

use std::io::Write;
use std::net::TcpStream as StdStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gopark::net::TcpListener;
use gopark::runtime::{self, time, Builder, Runtime};
use support::Watchdog;

fn runtime(workers: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .build()
        .expect("runtime")
}

/// Waits (bounded) until every worker is parked: the counters are at rest.
fn settle(rt: &Runtime) {
    let start = Instant::now();
    while rt.handle().metrics().snapshot().parked_workers < rt.handle().num_workers() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "workers never parked"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn spawns_and_polls_are_counted_exactly() {
    let dog = Watchdog::start("spawns", Duration::from_secs(60));
    let rt = runtime(2);
    settle(&rt);
    let m = rt.handle().metrics();
    let (spawned, polls) = (
        m.spawned_tasks_count(),
        total(&m, |w| m.worker_poll_count(w)),
    );
    const N: usize = 50;
    const YIELDS: usize = 7;
    rt.block_on(async {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                runtime::spawn(async {
                    for _ in 0..YIELDS {
                        runtime::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("task");
        }
        // Spawned from a worker this time.
        runtime::spawn(async { runtime::spawn(async {}).await })
            .await
            .expect("outer")
            .expect("inner");
    });
    settle(&rt);
    assert_eq!(m.spawned_tasks_count() - spawned, N as u64 + 2);
    // One poll to start, one after each yield; the two last tasks complete
    // in one poll each, the outer one after its JoinHandle woke it once.
    assert_eq!(
        total(&m, |w| m.worker_poll_count(w)) - polls,
        (N * (YIELDS + 1) + 1 + 2) as u64
    );
    assert!(
        total(&m, |w| m.worker_spawn_count(w)) >= 1,
        "the inner spawn ran on a worker"
    );
    assert_eq!(m.num_alive_tasks(), 0);
    drop(rt);
    dog.disarm();
}

fn total(m: &runtime::RuntimeMetrics, f: impl Fn(usize) -> u64) -> u64 {
    (0..m.num_workers()).map(f).sum()
}

#[test]
fn each_round_trip_to_an_idle_worker_is_one_park() {
    let dog = Watchdog::start("parks", Duration::from_secs(60));
    let rt = runtime(1);
    settle(&rt);
    let m = rt.handle().metrics();
    let (parks, busy) = (m.worker_park_count(0), m.worker_total_busy_duration(0));
    const K: u64 = 20;
    for _ in 0..K {
        // The worker is parked; the task wakes it, runs, and it parks again.
        rt.block_on(rt.spawn(async {})).expect("task");
        settle(&rt);
    }
    assert_eq!(m.worker_park_count(0) - parks, K);
    assert!(m.worker_total_busy_duration(0) > busy, "busy time grows");
    drop(rt);
    dog.disarm();
}

/// Worker A queues tasks and then blocks until worker B, woken for them,
/// has run all it can take; B can only get them by stealing. Every task B ran is
/// a task B stole.
///
/// A hold longer than the monitor's hand-off threshold (10 ms: B slow to
/// wake on a loaded machine) lets the monitor move A's queue instead, and
/// then B need not have stolen: that attempt proves nothing and the test
/// tries again.
#[test]
fn steals_are_the_tasks_taken_from_a_blocked_worker() {
    const ATTEMPTS: usize = 20;
    let dog = Watchdog::start("steals", Duration::from_secs(120));
    let rt = support::runtime(2, "steal");
    for attempt in 1..=ATTEMPTS {
        if steal_from_a_blocked_worker(&rt) {
            drop(rt);
            dog.disarm();
            return;
        }
        println!("attempt {attempt}: the hold outlasted the hand-off threshold");
    }
    panic!("in {ATTEMPTS} attempts, the other worker never took a task within 10 ms");
}

/// One attempt of [`steals_are_the_tasks_taken_from_a_blocked_worker`]:
/// `false` if the monitor handed the blocked worker off.
fn steal_from_a_blocked_worker(rt: &Runtime) -> bool {
    /// How long A waits for B before the test gives up on stealing.
    const WAIT: Duration = Duration::from_secs(10);
    const M: usize = 64;
    settle(rt);
    let m = rt.handle().metrics();
    let before: Vec<(u64, u64)> = (0..2)
        .map(|w| (m.worker_steal_count(w), m.worker_poll_count(w)))
        .collect();
    let handoffs = m.blocked_worker_handoffs();
    let elsewhere = Arc::new(AtomicUsize::new(0));
    let (blocker_worker, held, ran_elsewhere) = rt.block_on(async {
        let counter = elsewhere.clone();
        let (me, held, handles) = runtime::spawn(async move {
            let me = support::thread_name();
            let handles: Vec<_> = (0..M)
                .map(|_| {
                    let me = me.clone();
                    let elsewhere = counter.clone();
                    runtime::spawn(async move {
                        if support::thread_name() != me {
                            elsewhere.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            // Hold this worker until the other one has run every task it
            // can take (all but the last spawned, which waits in A's LIFO
            // slot, where no thief reaches): released earlier, A would run
            // what is left of its queue and could steal back from B what B
            // stole but had not yet polled. The handles go back to
            // `block_on`, so finishing a task wakes no worker: B polls the
            // tasks it stole and nothing else.
            let start = Instant::now();
            while counter.load(Ordering::SeqCst) < M - 1 && start.elapsed() < WAIT {
                std::thread::sleep(Duration::from_micros(100));
            }
            (me, start.elapsed(), handles)
        })
        .await
        .expect("blocker");
        for h in handles {
            h.await.expect("queued task");
        }
        (me, held, elsewhere.load(Ordering::SeqCst))
    });
    settle(rt);
    let a: usize = blocker_worker
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("worker index in the thread name");
    let b = 1 - a;
    let stolen = m.worker_steal_count(b) - before[b].0;
    let b_polls = m.worker_poll_count(b) - before[b].1;
    let handed_off = m.blocked_worker_handoffs() - handoffs;
    println!(
        "{M} tasks queued on a worker blocked for {held:?}: {ran_elsewhere} ran on the other, \
         which stole {stolen} ({handed_off} hand-offs)"
    );
    assert!(
        ran_elsewhere > 0,
        "no task left a worker blocked for {held:?}"
    );
    if handed_off > 0 {
        assert!(stolen <= ran_elsewhere as u64);
        return false;
    }
    // Held under the monitor's threshold: stealing was the only way.
    assert!(stolen > 0, "the other worker stole some of the tasks");
    assert_eq!(
        stolen, ran_elsewhere as u64,
        "every task the other worker ran, it stole"
    );
    assert_eq!(b_polls, stolen, "and it polled nothing else");
    assert_eq!(m.worker_steal_count(a) - before[a].0, 0);
    true
}

/// One byte to each of S idle sockets is one readiness event each.
#[test]
fn readiness_events_are_counted_per_socket() {
    let dog = Watchdog::start("events", Duration::from_secs(60));
    let rt = runtime(2);
    const S: usize = 40;
    let listener = rt
        .block_on(async { TcpListener::bind("127.0.0.1:0") })
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let mut peers = Vec::new();
    let readers: Vec<_> = rt.block_on(async {
        let mut readers = Vec::new();
        for _ in 0..S {
            peers.push(StdStream::connect(addr).expect("connect"));
            let (stream, _) = listener.accept().await.expect("accept");
            readers.push(runtime::spawn(async move {
                let mut buf = [0u8; 16];
                stream.read(&mut buf).await
            }));
        }
        readers
    });
    // Let registration's first edges (writable) pass and every reader park.
    let start = Instant::now();
    while rt
        .handle()
        .dump()
        .tasks()
        .iter()
        .any(|t| !matches!(t.state, runtime::TaskState::Io { .. }))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "readers never parked"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    settle(&rt);
    let m = rt.handle().metrics();
    // The sockets' first edges (writable, on registration) may still be
    // on their way to the netpoll thread on a loaded machine: wait until
    // the count rests.
    let mut events = m.netpoll_events();
    let mut still = 0;
    while still < 5 {
        std::thread::sleep(Duration::from_millis(10));
        let now = m.netpoll_events();
        still = if now == events { still + 1 } else { 0 };
        events = now;
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "events never rested"
        );
    }
    assert_eq!(m.registered_fds(), S + 1);
    for p in &mut peers {
        p.write_all(b"x").expect("write");
    }
    rt.block_on(async {
        for r in readers {
            assert_eq!(r.await.expect("reader").expect("read"), 1);
        }
    });
    settle(&rt);
    assert_eq!(m.netpoll_events() - events, S as u64);
    drop(listener);
    drop(rt);
    dog.disarm();
}

#[test]
fn timers_armed_fired_and_cancelled() {
    let dog = Watchdog::start("timers", Duration::from_secs(60));
    let rt = runtime(2);
    let m = rt.handle().metrics();
    let (armed, fired, cancelled) = (m.timers_armed(), m.timers_fired(), m.timers_cancelled());
    const T: u64 = 25;
    rt.block_on(async {
        for _ in 0..T {
            time::sleep(Duration::from_millis(1)).await;
        }
        for _ in 0..T {
            // The future wins, after one pending poll that armed the
            // timer: it is removed unfired.
            let won = time::timeout(Duration::from_secs(60), async {
                runtime::yield_now().await;
                1
            });
            assert_eq!(won.await, Ok(1));
        }
    });
    assert_eq!(m.timers_armed() - armed, 2 * T);
    assert_eq!(m.timers_fired() - fired, T);
    assert_eq!(m.timers_cancelled() - cancelled, T);
    drop(rt);
    dog.disarm();
}
