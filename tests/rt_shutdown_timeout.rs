//! `Runtime::shutdown_timeout` and `shutdown_background`: the shutdown
//! returns within its deadline even when a task or a blocking job is stuck
//! in a blocking call; the stuck thread finishes on its own, drops its
//! future then, and leaves no descriptor behind. `#[gopark::main]` exits
//! within its one-second bound.

mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gopark::net::TcpListener;
use gopark::runtime::{self, Builder};
use support::future::DropCount;

/// How long the stuck calls block: far longer than any bound asserted.
const STUCK: Duration = Duration::from_secs(3);

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Waits (bounded) until `drops` reaches `n`.
fn wait_drops(drops: &DropCount, n: usize, limit: Duration) {
    let start = Instant::now();
    while drops.get() < n {
        assert!(
            start.elapsed() < limit,
            "{} of {n} futures dropped after {limit:?}",
            drops.get()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn returns_within_the_deadline_with_a_task_stuck_in_a_blocking_call() {
    let fds_before = support::proc::fd_count();
    let rt = Builder::new()
        .worker_threads(1)
        .thread_name("sdt")
        .build()
        .unwrap();
    let drops = DropCount::new();
    let (started_tx, started_rx) = mpsc::channel();
    let g = drops.guard();
    rt.spawn(async move {
        let _g = g;
        started_tx.send(()).unwrap();
        std::thread::sleep(STUCK);
    });
    // A task parked on a socket, and one on a timer: both are cancelled.
    let listener = rt
        .block_on(async { TcpListener::bind("127.0.0.1:0") })
        .unwrap();
    let g = drops.guard();
    rt.spawn(async move {
        let _g = g;
        let _ = listener.accept().await;
    });
    let g = drops.guard();
    rt.spawn(async move {
        let _g = g;
        runtime::time::sleep(Duration::from_secs(3600)).await;
    });
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the stuck task started");

    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(200));
    let took = start.elapsed();
    // The bound is the deadline plus scheduling noise, far from STUCK.
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    // The stuck task's future goes when its poll returns; the others are
    // dropped by then too, and their descriptors closed.
    wait_drops(&drops, 3, STUCK + Duration::from_secs(10));
    let start = Instant::now();
    loop {
        let now = support::proc::fd_count();
        if now <= fds_before {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "descriptors {fds_before} -> {now} after the stuck thread finished"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn returns_within_the_deadline_with_a_blocking_job_stuck() {
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let job = rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        std::thread::sleep(STUCK);
    });
    drop(job);
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the job started");
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(100));
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
}

#[test]
fn shutdown_background_does_not_wait() {
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    for _ in 0..2 {
        let tx = started_tx.clone();
        rt.spawn(async move {
            tx.send(()).unwrap();
            std::thread::sleep(STUCK);
        });
    }
    for _ in 0..2 {
        started_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a stuck task started");
    }
    let start = Instant::now();
    rt.shutdown_background();
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1000), "shutdown took {took:?}");
}

#[test]
fn an_idle_runtime_shuts_down_completely_and_promptly() {
    // With nothing stuck, shutdown_timeout joins everything: the
    // runtime's threads are gone when it returns.
    let rt = Builder::new()
        .worker_threads(2)
        .thread_name("sdidle")
        .build()
        .unwrap();
    let n = rt.block_on(async {
        let hs: Vec<_> = (0..100u64)
            .map(|i| runtime::spawn(async move { i }))
            .collect();
        let mut n = 0;
        for h in hs {
            n += h.await.unwrap();
        }
        n
    });
    assert_eq!(n, 4950);
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_secs(10));
    assert!(start.elapsed() < Duration::from_secs(5));
    // Joined, each thread has done its work; the kernel takes its /proc
    // entry away a moment later (after the join's wake-up, a preempted
    // exit on a busy machine can take milliseconds): look again, bounded.
    let joined = Instant::now();
    let mut left = threads_named("sdidle");
    while left > 0 && joined.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(1));
        left = threads_named("sdidle");
    }
    assert_eq!(left, 0, "a thread of the runtime is left");
}

/// A `#[gopark::main]`-style entry point run as the child role below: it
/// leaves a task stuck in a blocking call and returns.
#[gopark::test(worker_threads = 1)]
#[ignore = "a child role of main_exits_within_its_bound"]
async fn role_main_with_a_stuck_task() {
    if std::env::var_os("GOPARK_ROLE_STUCK_MAIN").is_none() {
        return;
    }
    let (tx, rx) = futures_channel::oneshot::channel();
    runtime::spawn(async move {
        let _ = tx.send(());
        std::thread::sleep(Duration::from_secs(30));
    });
    rx.await.unwrap();
}

#[test]
fn main_exits_within_its_bound() {
    let cmd = support::child::command(
        "role_main_with_a_stuck_task",
        &[("GOPARK_ROLE_STUCK_MAIN", "1".to_string())],
    );
    let start = Instant::now();
    let out = support::child::run(cmd, Duration::from_secs(25));
    out.assert_passed("a test body that leaves a task stuck for 30 s");
    let took = start.elapsed();
    // One second of bound, plus a process start on a busy machine.
    assert!(took < Duration::from_secs(15), "the child took {took:?}");
}

#[test]
fn a_retry_loop_of_failing_io_and_sleeps_does_not_hold_the_drop() {
    // Once the runtime shuts down, new sockets fail at once and sleeps
    // complete at once: a task that retries "connect, then back off" and is
    // running when the shutdown begins would spin inside that one poll, and
    // the drop would wait for it for ever, unless the sleeps spend the
    // task's budget and make it yield.
    let rt = Builder::new()
        .worker_threads(1)
        .thread_name("retry")
        .build()
        .unwrap();
    let closed = support::net::closed_port().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    rt.spawn(async move {
        started_tx.send(()).unwrap();
        // Inside this one poll, wait until the shutdown has begun: from
        // then on the netpoller refuses new descriptors.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if gopark::net::TcpListener::bind("127.0.0.1:0").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..10_000_000u64 {
            let _ = gopark::net::TcpStream::connect(closed).await;
            runtime::time::sleep(Duration::from_millis(1)).await;
        }
    });
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the task runs");
    let start = Instant::now();
    drop(rt);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "the drop took {took:?}");
}
