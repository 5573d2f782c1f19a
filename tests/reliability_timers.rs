//! Timers and deadlines (issue 5): deadlines never fire early, how late a
//! 50 ms deadline fires, sub-millisecond sleeps that round up without
//! spinning, and Go's `TestReadWriteDeadlineRace` shape (deadlines reset
//! every few microseconds under a read and a write).
//!
//! Each test prints its figure on a `FIGURE` line (`--nocapture`). Lower
//! bounds (never early) are strict; upper bounds are generous in the default
//! run (a shared 2-core machine), and the issue's own bounds are asserted by
//! the `#[ignore]`d `*_full` tests that `scripts/reliability.sh` runs in
//! release.

mod support;

use std::io::{self, ErrorKind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gopark::net::TcpListener;
use gopark::runtime::{self, time::sleep, time::timeout};
use support::net::pair_on;
use support::rt::{run_io, serial, Watchdog};
use support::stats::{figure, Stats};
use support::threads;

// ---------------------------------------------------------------------
// Deadlines never fire early.
// ---------------------------------------------------------------------

const TRIALS: usize = 1_000;
const LANES: usize = 10;

/// The duration of trial `i`: from 1 µs to ~5 ms, many below a millisecond
/// (where epoll's millisecond timeout has to round up).
fn trial_duration(i: usize) -> Duration {
    Duration::from_micros(1 + ((i as u64 * 7_919) % 5_000))
}

/// How early (negative) or late each of `TRIALS` timers fired, for one kind
/// of timer; run in `LANES` concurrent tasks.
#[derive(Debug)]
struct Early {
    early: usize,
    worst_early: Duration,
    lateness: Vec<Duration>,
}

fn tally(results: Vec<(Instant, Instant)>) -> Early {
    let mut e = Early {
        early: 0,
        worst_early: Duration::ZERO,
        lateness: Vec::new(),
    };
    for (deadline, fired) in results {
        if fired < deadline {
            e.early += 1;
            e.worst_early = e.worst_early.max(deadline - fired);
        } else {
            e.lateness.push(fired - deadline);
        }
    }
    e
}

#[test]
fn deadlines_never_fire_early_in_1000_trials() {
    let _serial = serial();
    let results = run_io(2, "early", Duration::from_secs(60), || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut kinds = Vec::new();
        for kind in ["read deadline", "write deadline", "sleep", "timeout"] {
            let mut lanes = Vec::new();
            for lane in 0..LANES {
                let (c, s) = pair_on(&listener).await?;
                lanes.push(runtime::spawn(async move {
                    let mut out = Vec::new();
                    for t in 0..TRIALS / LANES {
                        let i = lane * (TRIALS / LANES) + t;
                        let deadline = Instant::now() + trial_duration(i);
                        match kind {
                            "read deadline" => {
                                c.set_read_deadline(Some(deadline))?;
                                let e = c.read(&mut [0u8; 8]).await.unwrap_err();
                                assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                            }
                            "write deadline" => {
                                // The peer never reads: fill the buffers
                                // until the write parks, then it times out.
                                c.set_write_deadline(Some(deadline))?;
                                let chunk = [0u8; 64 * 1024];
                                let e = loop {
                                    if let Err(e) = c.write(&chunk).await {
                                        break e;
                                    }
                                };
                                assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                            }
                            "sleep" => runtime::time::sleep_until(deadline).await,
                            _ => {
                                let r = runtime::time::timeout_at(
                                    deadline,
                                    std::future::pending::<()>(),
                                )
                                .await;
                                assert!(r.is_err());
                            }
                        }
                        out.push((deadline, Instant::now()));
                    }
                    drop(s);
                    Ok::<_, io::Error>(out)
                }));
            }
            let mut all = Vec::new();
            for l in lanes {
                all.extend(l.await.expect("lane")?);
            }
            kinds.push((kind, tally(all)));
        }
        Ok(kinds)
    });
    for (kind, e) in &results {
        let late = Stats::new(e.lateness.clone());
        figure(
            "timers.never_early",
            format!(
                "{kind}: {TRIALS} trials of 1 us..5 ms ({LANES} at once): {} early (worst \
                 {:?}); lateness {}",
                e.early,
                e.worst_early,
                late.summary()
            ),
        );
    }
    for (kind, e) in results {
        assert_eq!(
            e.early, 0,
            "{kind}: fired early {} times, worst by {:?}",
            e.early, e.worst_early
        );
    }
}

// ---------------------------------------------------------------------
// A 50 ms deadline fires within 50-55 ms.
// ---------------------------------------------------------------------

/// Asserts that no deadline fired early, that the median fired within
/// `p50_bound` and the 95th percentile within `p95_bound`.
fn fifty_ms_deadline(trials: usize, p50_bound: Duration, p95_bound: Duration) {
    let _serial = serial();
    let d = Duration::from_millis(50);
    let (fired, early) = run_io(
        2,
        "fifty",
        Duration::from_secs(60 + trials as u64),
        move || async move {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let (c, _s) = pair_on(&listener).await?;
            let mut fired = Vec::with_capacity(trials);
            let mut early = 0;
            for _ in 0..trials {
                let start = Instant::now();
                c.set_read_deadline(Some(start + d))?;
                let e = c.read(&mut [0u8; 8]).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::TimedOut);
                let took = start.elapsed();
                if took < d {
                    early += 1;
                }
                fired.push(took);
            }
            Ok((Stats::new(fired), early))
        },
    );
    figure(
        "timers.fifty_ms",
        format!(
            "50 ms read deadline, time from setting it to the read failing: {} ({early} early)",
            fired.summary()
        ),
    );
    assert_eq!(early, 0, "fired early");
    assert!(
        fired.pct(50.0) <= p50_bound,
        "p50 {:?} > {p50_bound:?}: {}",
        fired.pct(50.0),
        fired.summary()
    );
    assert!(
        fired.pct(95.0) <= p95_bound,
        "p95 {:?} > {p95_bound:?}: {}",
        fired.pct(95.0),
        fired.summary()
    );
}

#[test]
fn fifty_ms_deadline_fires_on_time() {
    // The bound is 55 ms at p95 on an idle machine (the full
    // variant). The default run shares the machine with builds and other
    // tests, so it catches what that bound is for: a deadline that waits
    // for something else to wake the netpoll thread (a 10 ms check or a
    // later event) is late on most trials, which moves the median. A busy
    // machine delays some trials by tens of milliseconds, not the median
    // by ten.
    fifty_ms_deadline(40, Duration::from_millis(60), Duration::from_millis(500));
}

#[test]
#[ignore = "full size (release): scripts/reliability.sh"]
fn fifty_ms_deadline_fires_on_time_full() {
    fifty_ms_deadline(200, Duration::from_millis(55), Duration::from_millis(55));
}

// ---------------------------------------------------------------------
// Sub-millisecond sleeps round up and never busy-spin.
// ---------------------------------------------------------------------

#[test]
fn sub_millisecond_sleeps_round_up_without_spinning() {
    let _serial = serial();
    let name = "subms";
    const SLEEPS: usize = 300;
    let asked = [
        Duration::from_nanos(1),
        Duration::from_micros(1),
        Duration::from_micros(100),
        Duration::from_micros(500),
        Duration::from_micros(999),
    ];
    let dog = Watchdog::start("sub-ms sleeps", Duration::from_secs(120));
    let rt = support::rt::runtime(1, name);
    rt.block_on(async {
        // Warm up, so every runtime thread exists and has parked once.
        runtime::spawn(sleep(Duration::from_millis(2)))
            .await
            .unwrap();
    });
    let mut rows = Vec::new();
    for d in asked {
        let before = threads::usage(name);
        let start = Instant::now();
        let (early, took) = rt.block_on(async move {
            runtime::spawn(async move {
                let mut early = 0;
                let mut took = Vec::with_capacity(SLEEPS);
                for _ in 0..SLEEPS {
                    let t = Instant::now();
                    sleep(d).await;
                    let e = t.elapsed();
                    if e < d {
                        early += 1;
                    }
                    took.push(e);
                }
                (early, Stats::new(took))
            })
            .await
            .unwrap()
        });
        let wall = start.elapsed();
        let (cpu, switches) = threads::usage(name).since(&before);
        rows.push((d, early, took, wall, cpu, switches));
    }
    drop(rt);
    dog.disarm();
    for (d, early, took, wall, cpu, switches) in &rows {
        figure(
            "timers.sub_ms",
            format!(
                "{SLEEPS} x sleep({d:?}) on 1 worker: {early} early, each took {}; runtime \
                 threads used {:.1}% of the wall time ({cpu:?} CPU in {wall:.2?}), {:.1} context \
                 switches per sleep",
                took.summary(),
                cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
                *switches as f64 / SLEEPS as f64
            ),
        );
    }
    for (d, early, took, wall, cpu, switches) in rows {
        assert_eq!(early, 0, "sleep({d:?}) returned early");
        assert!(
            switches < (SLEEPS * 20) as u64,
            "sleep({d:?}): {switches} context switches for {SLEEPS} sleeps"
        );
        // A runtime that turns a sub-millisecond timeout into a 0 ms
        // epoll_wait spins until the deadline: its threads are busy for the
        // whole sleep. (Sleeps of a few microseconds are over before the
        // runtime could wait at all: they are all work, and not checked.)
        if d >= Duration::from_micros(100) {
            let share = cpu.as_secs_f64() / wall.as_secs_f64();
            assert!(
                share < 0.5,
                "sleep({d:?}): runtime threads busy {:.0}% of the time ({})",
                share * 100.0,
                took.summary()
            );
        }
    }
}

// ---------------------------------------------------------------------
// Go's TestReadWriteDeadlineRace.
// ---------------------------------------------------------------------

#[derive(Debug, Default)]
struct Race {
    reads_ok: usize,
    reads_timed_out: usize,
    writes_ok: usize,
    writes_timed_out: usize,
    sets: usize,
    took: Duration,
}

/// A reader and a writer do `n` operations each on one connection while a
/// plain thread and a task reset both deadlines to ~2 µs ahead every few
/// microseconds. The peer sends a little now and then, so some reads
/// succeed. It must end, without a panic, and every error be `TimedOut`.
fn deadline_race(workers: usize, n: usize) -> Race {
    run_io(
        workers,
        "race",
        Duration::from_secs(60),
        move || async move {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let (c, s) = pair_on(&listener).await?;
            let c = Arc::new(c);
            let stop = Arc::new(AtomicBool::new(false));
            let sets = Arc::new(AtomicUsize::new(0));
            let start = Instant::now();
            // A plain thread (deadline setters take &self and work from
            // anywhere), as Go's goroutine with a 2 µs ticker.
            let setter = {
                let (c, stop, sets) = (c.clone(), stop.clone(), sets.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let d = Instant::now() + Duration::from_micros(2);
                        c.set_read_deadline(Some(d)).unwrap();
                        c.set_write_deadline(Some(d)).unwrap();
                        sets.fetch_add(2, Ordering::Relaxed);
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(2) {
                            std::hint::spin_loop();
                        }
                    }
                })
            };
            // And a task doing the same on the runtime.
            let task_setter = {
                let (c, stop, sets) = (c.clone(), stop.clone(), sets.clone());
                runtime::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let d = Instant::now() + Duration::from_micros(3);
                        c.set_read_deadline(Some(d)).unwrap();
                        c.set_write_deadline(Some(d)).unwrap();
                        sets.fetch_add(2, Ordering::Relaxed);
                        runtime::yield_now().await;
                    }
                })
            };
            let peer = runtime::spawn(async move {
                let mut buf = [0u8; 64];
                for i in 0..n {
                    if i % 8 == 0 {
                        s.write_all(b"x").await?;
                    }
                    // Drain what the writer sends, now and then.
                    if i % 16 == 0 {
                        let _ = timeout(Duration::from_micros(50), s.read(&mut buf)).await;
                    }
                    runtime::yield_now().await;
                }
                Ok::<_, io::Error>(s)
            });
            let rc = c.clone();
            let reader = runtime::spawn(async move {
                let (mut ok, mut timed_out) = (0, 0);
                let mut b = [0u8; 1];
                for _ in 0..n {
                    match rc.read(&mut b).await {
                        Ok(_) => ok += 1,
                        Err(e) if e.kind() == ErrorKind::TimedOut => timed_out += 1,
                        Err(e) => panic!("read: {e}"),
                    }
                }
                (ok, timed_out)
            });
            let wc = c.clone();
            let writer = runtime::spawn(async move {
                let (mut ok, mut timed_out) = (0, 0);
                for _ in 0..n {
                    match wc.write(&[1u8]).await {
                        Ok(_) => ok += 1,
                        Err(e) if e.kind() == ErrorKind::TimedOut => timed_out += 1,
                        Err(e) => panic!("write: {e}"),
                    }
                }
                (ok, timed_out)
            });
            let (reads_ok, reads_timed_out) = reader.await.expect("reader");
            let (writes_ok, writes_timed_out) = writer.await.expect("writer");
            let took = start.elapsed();
            stop.store(true, Ordering::Relaxed);
            setter.join().expect("setter thread");
            task_setter.await.expect("setter task");
            drop(peer.await.expect("peer")?);
            Ok(Race {
                reads_ok,
                reads_timed_out,
                writes_ok,
                writes_timed_out,
                sets: sets.load(Ordering::Relaxed),
                took,
            })
        },
    )
}

fn deadline_race_all(n: usize) {
    let _serial = serial();
    for workers in [1, 2, 4] {
        let r = deadline_race(workers, n);
        figure(
            "timers.deadline_race",
            format!(
                "{workers} worker(s): {n} reads + {n} writes while deadlines were reset {} \
                 times (every ~2 us, from a thread and a task): finished in {:.2?}, no hang, \
                 no panic; reads {} ok / {} timed out, writes {} ok / {} timed out",
                r.sets, r.took, r.reads_ok, r.reads_timed_out, r.writes_ok, r.writes_timed_out
            ),
        );
        assert_eq!(r.reads_ok + r.reads_timed_out, n);
        assert_eq!(r.writes_ok + r.writes_timed_out, n);
    }
}

#[test]
fn read_write_deadline_race() {
    deadline_race_all(1_000);
}

#[test]
#[ignore = "full size (release): scripts/reliability.sh"]
fn read_write_deadline_race_full() {
    deadline_race_all(100_000);
}
