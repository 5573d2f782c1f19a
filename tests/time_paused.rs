//! Virtual time: with a runtime's clock paused, sleeps, timeouts,
//! intervals and socket deadlines read a clock that stands still until
//! `advance` moves it or every task is blocked, when it jumps to the next
//! timer (Go's `testing/synctest` rule) — on the multi-thread runtime.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time, Builder, Runtime};
use support::future::signal_pending;
use support::Watchdog;

/// A runtime with its clock paused from the start.
fn paused(workers: usize) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .start_paused(true)
        .build()
        .expect("runtime")
}

/// What no paused test may take in real time: far above milliseconds, far
/// below the hours they sleep.
const REAL_LIMIT: Duration = Duration::from_secs(20);

#[test]
fn an_hour_of_sleeps_takes_milliseconds_and_fires_in_deadline_order() {
    for workers in [1, 4] {
        let dog = Watchdog::start("an hour", Duration::from_secs(60));
        let rt = paused(workers);
        let real = Instant::now();
        let (order, slept) = rt.block_on(async {
            let start = time::now();
            let order = Arc::new(Mutex::new(Vec::new()));
            // Spawned out of order, fired in deadline order.
            let secs = [3600u64, 60, 1800, 1, 600, 2, 3599, 30];
            let handles: Vec<_> = secs
                .iter()
                .map(|&s| {
                    let order = order.clone();
                    runtime::spawn(async move {
                        time::sleep(Duration::from_secs(s)).await;
                        order.lock().unwrap().push((s, time::now()));
                    })
                })
                .collect();
            for h in handles {
                h.await.expect("sleeper");
            }
            let order = Arc::try_unwrap(order).unwrap().into_inner().unwrap();
            (order, time::now() - start)
        });
        let took = real.elapsed();
        drop(rt);
        dog.disarm();
        let fired: Vec<u64> = order.iter().map(|&(s, _)| s).collect();
        let mut sorted = fired.clone();
        sorted.sort_unstable();
        assert_eq!(fired, sorted, "timers fired out of deadline order");
        assert_eq!(slept, Duration::from_secs(3600), "{workers} workers");
        // Each woke exactly at its deadline by the virtual clock.
        let base = order[0].1 - Duration::from_secs(order[0].0);
        for &(s, at) in &order {
            assert_eq!(at - base, Duration::from_secs(s), "sleep of {s} s");
        }
        assert!(took < REAL_LIMIT, "an hour took {took:?} of real time");
    }
}

#[test]
fn a_timeout_around_a_silent_socket_fires_at_the_virtual_deadline() {
    let dog = Watchdog::start("silent socket", Duration::from_secs(60));
    let rt = paused(2);
    let real = Instant::now();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .expect("connect");
        let (_server, _) = listener.accept().await.expect("accept");
        let start = time::now();
        let mut buf = [0u8; 16];
        let res = time::timeout(Duration::from_secs(30), client.read(&mut buf)).await;
        assert!(res.is_err(), "the peer never answers: {res:?}");
        assert_eq!(time::now() - start, Duration::from_secs(30));

        // A socket deadline reads the same clock.
        client
            .set_read_deadline(Some(time::now() + Duration::from_secs(45)))
            .expect("deadline");
        let start = time::now();
        let err = client
            .read(&mut buf)
            .await
            .expect_err("the deadline passes");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(time::now() - start, Duration::from_secs(45));
    });
    let took = real.elapsed();
    drop(rt);
    dog.disarm();
    assert!(took < REAL_LIMIT, "took {took:?} of real time");
}

/// While any task can run, the clock stands still: a task that keeps
/// yielding for a while of real time sees no virtual time pass, though a
/// sleeper is waiting for the clock to jump.
#[test]
fn the_clock_never_jumps_while_a_task_is_runnable() {
    let dog = Watchdog::start("runnable", Duration::from_secs(60));
    let rt = paused(2);
    rt.block_on(async {
        let start = time::now();
        let sleeper_done = Arc::new(AtomicBool::new(false));
        let (sleep, parked) = signal_pending(time::sleep(Duration::from_secs(1)));
        let sleeper = {
            let done = sleeper_done.clone();
            runtime::spawn(async move {
                sleep.await;
                done.store(true, Ordering::SeqCst);
            })
        };
        // The sleeper's timer is armed before the spinner starts: the clock
        // has somewhere to jump to all the while.
        parked.await.expect("the sleeper parked");
        let spinner = {
            let sleeper_done = sleeper_done.clone();
            runtime::spawn(async move {
                let real = Instant::now();
                let mut rounds = 0u64;
                while real.elapsed() < Duration::from_millis(300) {
                    assert_eq!(time::now(), start, "the clock moved while this task ran");
                    assert!(
                        !sleeper_done.load(Ordering::SeqCst),
                        "the sleeper woke while this task ran"
                    );
                    runtime::yield_now().await;
                    rounds += 1;
                }
                rounds
            })
        };
        let rounds = spinner.await.expect("spinner");
        println!("{rounds} rounds of a runnable task, the clock standing still");
        assert!(
            !sleeper_done.load(Ordering::SeqCst),
            "the sleeper woke while a task was runnable"
        );
        sleeper.await.expect("sleeper");
        assert_eq!(time::now() - start, Duration::from_secs(1));
    });
    drop(rt);
    dog.disarm();
}

#[test]
fn advance_fires_what_is_due_and_nothing_later() {
    let dog = Watchdog::start("advance", Duration::from_secs(60));
    let rt = paused(2);
    rt.block_on(async {
        let start = time::now();
        let (fired_tx, mut fired_rx) = tokio::sync::mpsc::unbounded_channel();
        let (armed_tx, mut armed_rx) = tokio::sync::mpsc::unbounded_channel();
        for s in [5u64, 10, 20] {
            let fired = fired_tx.clone();
            let armed = armed_tx.clone();
            runtime::spawn(async move {
                // Register the timer, then say so: the clock cannot jump
                // in between, since the message wakes the test's future.
                let mut sleep = std::pin::pin!(time::sleep(Duration::from_secs(s)));
                std::future::poll_fn(|cx| {
                    let _ = sleep.as_mut().poll(cx);
                    std::task::Poll::Ready(())
                })
                .await;
                armed.send(()).expect("test alive");
                sleep.await;
                fired.send((s, time::now())).expect("test alive");
            });
        }
        for _ in 0..3 {
            armed_rx.recv().await.expect("a sleeper armed");
        }
        assert_eq!(time::now(), start, "nothing moved the clock yet");
        time::advance(Duration::from_secs(12)).await;
        assert_eq!(time::now() - start, Duration::from_secs(12));
        // The two that were due were woken by `advance`, and run; while
        // they are runnable the clock stays where `advance` put it.
        let mut fired = Vec::new();
        for _ in 0..2 {
            fired.push(fired_rx.recv().await.expect("a sleeper fired"));
        }
        fired.sort();
        assert_eq!(
            fired.iter().map(|&(s, _)| s).collect::<Vec<_>>(),
            vec![5, 10]
        );
        for &(_, at) in &fired {
            assert_eq!(
                at - start,
                Duration::from_secs(12),
                "ran at the advanced time"
            );
        }
        // The last one comes when the runtime goes idle: the clock jumps
        // to its deadline.
        let (s, at) = fired_rx.recv().await.expect("the last sleeper");
        assert_eq!((s, at - start), (20, Duration::from_secs(20)));
    });
    drop(rt);
    dog.disarm();
}

#[test]
fn pause_and_resume_inside_a_runtime() {
    let dog = Watchdog::start("pause", Duration::from_secs(60));
    let rt = support::runtime(2, "pauseres");
    rt.block_on(async {
        time::pause();
        let start = time::now();
        time::sleep(Duration::from_secs(600)).await;
        assert_eq!(time::now() - start, Duration::from_secs(600));
        time::resume();
        // Running again, from where it stood: a short real sleep works.
        let real = Instant::now();
        time::sleep(Duration::from_millis(20)).await;
        assert!(real.elapsed() >= Duration::from_millis(20));
        assert!(time::now() - start >= Duration::from_millis(600_020));
    });
    drop(rt);
    dog.disarm();
}

#[gopark::test(start_paused = true, worker_threads = 2)]
async fn the_test_attribute_starts_paused() {
    let (start, real) = (time::now(), Instant::now());
    time::sleep(Duration::from_secs(2 * 3600)).await;
    assert_eq!(time::now() - start, Duration::from_secs(2 * 3600));
    assert!(real.elapsed() < REAL_LIMIT, "took {:?}", real.elapsed());
}
