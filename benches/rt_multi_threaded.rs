//! Scheduler benchmark: gopark's multi-threaded runtime against tokio's,
//! side by side, in one process.
//!
//! The workloads are the ones of tokio's own `benches/rt_multi_threaded.rs`,
//! with its parameters (10,000 spawns, 200 tasks × 1,000 yields, 1,000 ping
//! pongs, a chain of 1,000 spawns, 10 µs stalls), rewritten once against a
//! small [`Rt`] trait (in `benches/common`, shared with `net_echo`) so that
//! both runtimes run the very same monomorphised code:
//!
//! * `spawn_many_local`: a task spawns 10,000 tasks; each decrements a
//!   counter and the last one signals a channel. (tokio's bench spawns them
//!   from `block_on`, which on its multi-thread runtime is not a worker; here
//!   a task does it, so the spawns really are local on both runtimes.)
//! * `spawn_many_remote_idle`: the main thread spawns 10,000 empty tasks
//!   through the runtime's handle, then awaits every `JoinHandle`.
//! * `spawn_many_remote_busy1`: the same, while `2 × workers` background
//!   tasks loop on `yield_now` plus a 10 µs busy stall (yielded tasks have a
//!   lower priority than spawned ones).
//! * `spawn_many_remote_busy2`: 1,000 remote spawns, while `workers`
//!   self-respawning chains (each link stalls 10 µs, then spawns the next)
//!   keep the workers busy with freshly spawned tasks.
//! * `yield_many`: 200 tasks spawned from outside each `yield_now` 1,000
//!   times; the main thread waits for all of them.
//! * `ping_pong`: a task spawns 1,000 tasks; each spawns a partner and does
//!   one round trip with it over two oneshot channels.
//! * `chained_spawn`: a chain of 1,000 tasks, each spawning the next; the
//!   last signals done.
//!
//! Both runtimes get the same worker count (`GOPARK_BENCH_WORKERS`, default
//! [`DEFAULT_WORKERS`]); tokio is built with `enable_all`, as in its bench,
//! since gopark always runs its netpoll thread. Signals use `futures-channel`
//! on both. Each workload builds its two runtimes once, warms both up, then
//! runs [`DEFAULT_ITERS`] iterations of each (`GOPARK_BENCH_ITERS`),
//! interleaved gopark/tokio (alternating which goes first) so that drift on a
//! shared machine hits both alike, and reports the median wall time of one
//! iteration. Background load of the busy workloads is started before and
//! stopped (and joined) after every timed iteration, so the other runtime
//! never runs while the busy tasks of one are spinning.
//!
//! `GOPARK_BENCH_ONLY=gopark` (or `tokio`) runs one runtime alone: with a
//! fixed iteration count, that is what `valgrind --tool=callgrind` counts
//! (instructions per spawn or per poll: the difference between two
//! iteration counts, divided by the tasks of the extra iterations).
//!
//! ```text
//! cargo bench --bench rt_multi_threaded            # every workload
//! cargo bench --bench rt_multi_threaded -- ping    # names containing "ping"
//! ```

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_channel::oneshot;

mod common;
use common::{env_usize, median, Gopark, Rt, Tokio};

/// Worker threads of each runtime unless `GOPARK_BENCH_WORKERS` says otherwise.
const DEFAULT_WORKERS: usize = 2;
/// Timed iterations per runtime unless `GOPARK_BENCH_ITERS` says otherwise.
const DEFAULT_ITERS: usize = 30;
/// Untimed iterations per runtime before the timed ones.
const WARMUP_ITERS: usize = 3;
/// Tasks spawned by the `spawn_many_*` workloads (except `busy2`).
const NUM_SPAWN: usize = 10_000;
/// Tasks spawned by `spawn_many_remote_busy2`.
const NUM_SPAWN_BUSY2: usize = 1_000;
/// Busy time of one step of the background load.
const STALL_DUR: Duration = Duration::from_micros(10);
/// Tasks of `yield_many`.
const YIELD_TASKS: usize = 200;
/// `yield_now` calls per task of `yield_many`.
const NUM_YIELD: usize = 1_000;
/// Round trips of `ping_pong`.
const NUM_PINGS: usize = 1_000;
/// Length of the `chained_spawn` chain.
const CHAIN_LEN: usize = 1_000;

/// Counts down from `n`; the call that reaches zero fires the receiver.
struct Countdown {
    rem: AtomicUsize,
    done: Mutex<Option<oneshot::Sender<()>>>,
}

impl Countdown {
    fn new(n: usize) -> (Arc<Countdown>, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let cd = Countdown {
            rem: AtomicUsize::new(n),
            done: Mutex::new(Some(tx)),
        };
        (Arc::new(cd), rx)
    }

    fn hit(&self) {
        if self.rem.fetch_sub(1, Relaxed) == 1 {
            let tx = self.done.lock().unwrap().take().expect("fired once");
            tx.send(()).unwrap();
        }
    }
}

/// Burns `STALL_DUR` of CPU, yielding the thread in between (as tokio's
/// bench does).
fn stall() {
    let start = Instant::now();
    while start.elapsed() < STALL_DUR {
        std::thread::yield_now();
    }
}

fn spawn_many_local<R: Rt>(rt: &R) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        let (cd, done) = Countdown::new(NUM_SPAWN);
        drop(R::spawn(async move {
            for _ in 0..NUM_SPAWN {
                let cd = cd.clone();
                drop(R::spawn(async move { cd.hit() }));
            }
        }));
        done.await.unwrap();
    });
    start.elapsed()
}

/// Spawns `n` empty tasks from this (non-runtime) thread, then awaits them.
fn spawn_remote_and_join<R: Rt>(rt: &R, n: usize) -> Duration {
    let start = Instant::now();
    let handles: Vec<R::Join<()>> = (0..n).map(|_| rt.spawn_remote(async {})).collect();
    rt.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    start.elapsed()
}

fn spawn_many_remote_idle<R: Rt>(rt: &R) -> Duration {
    spawn_remote_and_join(rt, NUM_SPAWN)
}

fn spawn_many_remote_busy1<R: Rt>(rt: &R, workers: usize) -> Duration {
    let busy = 2 * workers;
    let run = Arc::new(AtomicBool::new(true));
    let (started, all_started) = Countdown::new(busy);
    let background: Vec<R::Join<()>> = (0..busy)
        .map(|_| {
            let run = run.clone();
            let started = started.clone();
            rt.spawn_remote(async move {
                started.hit();
                while run.load(Relaxed) {
                    R::yield_now().await;
                    stall();
                }
            })
        })
        .collect();
    rt.block_on(all_started).unwrap();

    let elapsed = spawn_remote_and_join(rt, NUM_SPAWN);

    run.store(false, Relaxed);
    rt.block_on(async {
        for h in background {
            h.await.unwrap();
        }
    });
    elapsed
}

/// One link of a busy2 background chain: stall, then spawn the next link.
/// Once `run` is cleared the chain ends and drops `alive`, which is how the
/// main thread learns it is gone.
fn busy_chain<R: Rt>(run: Arc<AtomicBool>, alive: oneshot::Sender<()>) {
    drop(R::spawn(async move {
        if run.load(Relaxed) {
            stall();
            busy_chain::<R>(run, alive);
        } else {
            drop(alive);
        }
    }));
}

fn spawn_many_remote_busy2<R: Rt>(rt: &R, workers: usize) -> Duration {
    let run = Arc::new(AtomicBool::new(true));
    let (started, all_started) = Countdown::new(workers);
    let mut ended = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (alive, end) = oneshot::channel::<()>();
        ended.push(end);
        let run = run.clone();
        let started = started.clone();
        drop(rt.spawn_remote(async move {
            started.hit();
            busy_chain::<R>(run, alive);
        }));
    }
    rt.block_on(all_started).unwrap();

    let elapsed = spawn_remote_and_join(rt, NUM_SPAWN_BUSY2);

    run.store(false, Relaxed);
    rt.block_on(async {
        for end in ended {
            // Never sent: the chain's end drops the sender.
            assert!(end.await.is_err());
        }
    });
    elapsed
}

fn yield_many<R: Rt>(rt: &R) -> Duration {
    let start = Instant::now();
    let (cd, done) = Countdown::new(YIELD_TASKS);
    for _ in 0..YIELD_TASKS {
        let cd = cd.clone();
        drop(rt.spawn_remote(async move {
            for _ in 0..NUM_YIELD {
                R::yield_now().await;
            }
            cd.hit();
        }));
    }
    rt.block_on(done).unwrap();
    start.elapsed()
}

fn ping_pong<R: Rt>(rt: &R) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        let (cd, done) = Countdown::new(NUM_PINGS);
        drop(R::spawn(async move {
            for _ in 0..NUM_PINGS {
                let cd = cd.clone();
                drop(R::spawn(async move {
                    let (ping_tx, ping_rx) = oneshot::channel::<()>();
                    let (pong_tx, pong_rx) = oneshot::channel::<()>();
                    drop(R::spawn(async move {
                        ping_rx.await.unwrap();
                        pong_tx.send(()).unwrap();
                    }));
                    ping_tx.send(()).unwrap();
                    pong_rx.await.unwrap();
                    cd.hit();
                }));
            }
        }));
        done.await.unwrap();
    });
    start.elapsed()
}

/// Spawns the rest of a chain of `left` tasks; the last one signals `done`.
fn chain_link<R: Rt>(left: usize, done: oneshot::Sender<()>) {
    if left == 0 {
        done.send(()).unwrap();
    } else {
        drop(R::spawn(async move { chain_link::<R>(left - 1, done) }));
    }
}

fn chained_spawn<R: Rt>(rt: &R) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        let (tx, done) = oneshot::channel();
        drop(R::spawn(async move { chain_link::<R>(CHAIN_LEN, tx) }));
        done.await.unwrap();
    });
    start.elapsed()
}

/// Runs one iteration of a workload on a runtime and returns its time.
type Workload<R> = fn(&R, usize) -> Duration;

struct Case {
    name: &'static str,
    gopark: Workload<Gopark>,
    tokio: Workload<Tokio>,
}

/// One table entry: `name` for both runtimes.
macro_rules! case {
    ($name:ident) => {
        Case {
            name: stringify!($name),
            gopark: |rt, _| $name(rt),
            tokio: |rt, _| $name(rt),
        }
    };
    ($name:ident, workers) => {
        Case {
            name: stringify!($name),
            gopark: |rt, w| $name(rt, w),
            tokio: |rt, w| $name(rt, w),
        }
    };
}

/// Builds both runtimes, warms them up and times `iters` interleaved
/// iterations of each. Returns the medians (gopark, tokio).
fn run_case(case: &Case, workers: usize, iters: usize) -> (Duration, Duration) {
    // `GOPARK_BENCH_ONLY=gopark` (or `tokio`) runs one runtime alone, e.g.
    // under `valgrind --tool=callgrind`; the other's figure is then zero.
    let only = std::env::var("GOPARK_BENCH_ONLY").unwrap_or_default();
    let (run_g, run_t) = match only.as_str() {
        "" => (true, true),
        "gopark" => (true, false),
        "tokio" => (false, true),
        other => panic!("GOPARK_BENCH_ONLY must be gopark or tokio, got {other:?}"),
    };
    let g = run_g.then(|| Gopark::build(workers));
    let t = run_t.then(|| Tokio::build(workers));
    let run_g = |gs: &mut Vec<Duration>| {
        if let Some(g) = &g {
            gs.push((case.gopark)(g, workers));
        }
    };
    let run_t = |ts: &mut Vec<Duration>| {
        if let Some(t) = &t {
            ts.push((case.tokio)(t, workers));
        }
    };
    let mut gs = Vec::with_capacity(iters);
    let mut ts = Vec::with_capacity(iters);
    for _ in 0..WARMUP_ITERS {
        run_g(&mut gs);
        run_t(&mut ts);
    }
    gs.clear();
    ts.clear();
    for i in 0..iters {
        if i % 2 == 0 {
            run_g(&mut gs);
            run_t(&mut ts);
        } else {
            run_t(&mut ts);
            run_g(&mut gs);
        }
    }
    let med = |v: Vec<Duration>| {
        if v.is_empty() {
            Duration::ZERO
        } else {
            median(v)
        }
    };
    (med(gs), med(ts))
}

fn main() {
    let workers = env_usize("GOPARK_BENCH_WORKERS", DEFAULT_WORKERS);
    let iters = env_usize("GOPARK_BENCH_ITERS", DEFAULT_ITERS);
    // `cargo bench` passes `--bench`; every other argument is a filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();

    let cases = [
        case!(spawn_many_local),
        case!(spawn_many_remote_idle),
        case!(spawn_many_remote_busy1, workers),
        case!(spawn_many_remote_busy2, workers),
        case!(yield_many),
        case!(ping_pong),
        case!(chained_spawn),
    ];

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "rt_multi_threaded: {workers} workers per runtime, {WARMUP_ITERS} warm-up + {iters} \
         timed iterations each (interleaved), median per iteration, {cores} cores"
    );
    println!();
    println!(
        "| workload | {} (µs) | {} (µs) | {}/{} |",
        Gopark::NAME,
        Tokio::NAME,
        Gopark::NAME,
        Tokio::NAME
    );
    println!("|---|---:|---:|---:|");
    for case in &cases {
        if !filters.is_empty() && !filters.iter().any(|f| case.name.contains(f.as_str())) {
            continue;
        }
        let (g, t) = run_case(case, workers, iters);
        let g_us = g.as_secs_f64() * 1e6;
        let t_us = t.as_secs_f64() * 1e6;
        let ratio = if t_us > 0.0 {
            format!("{:.2}", g_us / t_us)
        } else {
            "-".to_string()
        };
        println!("| {} | {g_us:.1} | {t_us:.1} | {ratio} |", case.name);
    }
}
