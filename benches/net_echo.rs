//! Network benchmark: a loopback TCP echo ping-pong, gopark against tokio,
//! side by side, in one process.
//!
//! The workload is written once, against the [`NetRt`] trait of
//! `benches/common`, and monomorphised for each runtime: both run the very
//! same code.
//!
//! For every row (message size `S` × `C` connections) one runtime runs both
//! ends: an echo server (an accept loop spawning one task per connection,
//! each the natural sequential loop: `read` into a [`SERVER_BUF`]-byte
//! buffer, `write_all` what came in) and `C` client tasks. Each client loops:
//! write a message of `S` bytes, read exactly `S` bytes back, record the
//! round-trip time in an `hdrhistogram`. After [`WARMUP`] the round trips
//! completed during the next [`DEFAULT_SECS`] seconds are counted; the row
//! reports messages (round trips) per second over all connections, the
//! ratio gopark/tokio of those (above 1: gopark is faster), and the
//! p50/p99/max round-trip latency. `TCP_NODELAY` is on for every socket of both
//! runtimes.
//!
//! gopark and tokio get the same worker count (`GOPARK_BENCH_WORKERS`,
//! default [`DEFAULT_WORKERS`]) and run alternately, [`DEFAULT_ROUNDS`]
//! rounds each per row (alternating which goes first), so that drift on a
//! shared machine hits both alike. The table shows the median throughput of
//! the rounds and the percentiles of all rounds' latencies merged. Every run
//! builds a fresh runtime, binds a fresh listener, and before the next run
//! stops every client (a stop flag), awaits every client and server task and
//! drops the runtime, so rows do not pollute each other.
//!
//! ```text
//! cargo bench --bench net_echo                  # every row
//! cargo bench --bench net_echo -- 64B           # rows whose name contains "64B"
//! cargo bench --bench net_echo -- 64B-100conns  # one row
//! ```
//!
//! Row names are `{64B,16KiB}-{1,100,1000}conns`. Environment:
//!
//! * `GOPARK_BENCH_WORKERS`: worker threads of each runtime (default 2).
//! * `GOPARK_BENCH_SECS`: measured seconds per run (default 2; fractions ok).
//! * `GOPARK_BENCH_ROUNDS`: runs per runtime per row (default 2).
//! * `GOPARK_BENCH_ONLY=gopark|tokio`: run one runtime alone (for `strace -c
//!   -f` or `perf stat`); the run then also prints the total number of round
//!   trips, warm-up included, to divide the process's counts by.
//! * `GOPARK_BENCH_STALL=1`: one more task blocks the worker that runs it,
//!   again and again, for the whole run: `std::thread::sleep` for
//!   [`STALL_SLICE`], then a yield, so that it lands on each worker in turn
//!   with that worker's queue full, as a handler that makes a blocking call
//!   does. The round trips then show what such a task costs
//!   the others: gopark hands the stuck worker's queue to a fresh thread
//!   (see "A blocked worker is handed off" in the runtime crate's docs), tokio leaves it where it is.
//!
//! A 1000-connection row holds 2000 sockets (both ends are in-process), well
//! under a typical `ulimit -n`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

mod common;
use common::{env_secs, env_usize, median, Gopark, NetRt, Rt, Tokio};

/// Worker threads of each runtime unless `GOPARK_BENCH_WORKERS` says otherwise.
const DEFAULT_WORKERS: usize = 2;
/// Measured seconds per run unless `GOPARK_BENCH_SECS` says otherwise.
const DEFAULT_SECS: f64 = 2.0;
/// Runs per runtime per row unless `GOPARK_BENCH_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: usize = 2;
/// Unmeasured ping-pong at the start of every run.
const WARMUP: Duration = Duration::from_millis(500);
/// Message sizes, with their labels.
const SIZES: [(usize, &str); 2] = [(64, "64B"), (16 * 1024, "16KiB")];
/// Concurrent client connections.
const CONNS: [usize; 3] = [1, 100, 1000];
/// Read buffer of one server connection.
const SERVER_BUF: usize = 16 * 1024;
/// Largest round trip the histograms hold (ns); longer ones are clamped.
const HIST_MAX_NS: u64 = 10_000_000_000;
/// Significant digits of the histograms: 1% resolution keeps one per
/// connection small (tens of KiB) even with 1000 connections.
const HIST_SIGFIG: u8 = 2;
/// A run that takes longer than this (setup, measurement and teardown) is
/// taken to be hung: the benchmark exits with an error instead of hanging.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// How long the stalling task (`GOPARK_BENCH_STALL=1`) blocks its worker
/// each time it runs.
const STALL_SLICE: Duration = Duration::from_millis(50);

/// Phases of a run, shared by the main thread and every client.
const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPING: u8 = 2;

/// What the clients of one run saw.
struct Stats {
    /// Round-trip times (ns) of the round trips completed while measuring.
    hist: Histogram<u64>,
    /// Round trips completed while measuring.
    measured: u64,
    /// Round trips completed at all (warm-up included).
    total: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            hist: Histogram::new_with_bounds(1, HIST_MAX_NS, HIST_SIGFIG)
                .expect("histogram bounds"),
            measured: 0,
            total: 0,
        }
    }

    /// Counts one round trip that completed in `phase`.
    fn record(&mut self, phase: u8, rtt: Duration) {
        self.total += 1;
        if phase == MEASURING {
            self.measured += 1;
            let ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
            self.hist.saturating_record(ns.max(1));
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.measured += other.measured;
        self.total += other.total;
    }
}

/// One run of one runtime on one row.
struct Sample {
    stats: Stats,
    /// Length of the measurement window.
    window: Duration,
}

impl Sample {
    fn msgs_per_sec(&self) -> f64 {
        self.stats.measured as f64 / self.window.as_secs_f64()
    }
}

/// Run parameters.
#[derive(Clone, Copy)]
struct Params {
    workers: usize,
    size: usize,
    conns: usize,
    secs: Duration,
    stall: bool,
}

/// Lets the clients warm up, measures for `secs`, then tells them to stop.
/// Runs on the main thread (not a worker), so it takes no CPU from either
/// runtime. Returns the measurement window.
fn drive(phase: &AtomicU8, secs: Duration) -> Duration {
    std::thread::sleep(WARMUP);
    phase.store(MEASURING, Relaxed);
    let start = Instant::now();
    std::thread::sleep(secs);
    phase.store(STOPPING, Relaxed);
    start.elapsed()
}

/// Exits the process if the returned sender is not dropped within
/// [`RUN_LIMIT`]: a hung run should fail the benchmark, not stall it.
fn watchdog(what: String) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(RUN_LIMIT) {
            eprintln!("net_echo: {what} did not finish within {RUN_LIMIT:?}");
            std::process::exit(1);
        }
    });
    tx
}

// ------------------------------------------------------------- workload --

/// The server's handler: read into a [`SERVER_BUF`]-byte buffer, write back
/// what came in, until end of stream.
async fn echo<R: NetRt>(mut stream: R::Stream) -> io::Result<()> {
    let mut buf = vec![0u8; SERVER_BUF];
    loop {
        let n = R::read(&mut stream, &mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        R::write_all(&mut stream, &buf[..n]).await?;
    }
}

/// One client: write `size` bytes, read `size` bytes back, until stopped.
async fn client<R: NetRt>(
    mut stream: R::Stream,
    size: usize,
    phase: Arc<AtomicU8>,
) -> io::Result<Stats> {
    let msg = vec![0xa5u8; size];
    let mut buf = vec![0u8; size];
    let mut stats = Stats::new();
    while phase.load(Relaxed) != STOPPING {
        let t0 = Instant::now();
        R::write_all(&mut stream, &msg).await?;
        R::read_exact(&mut stream, &mut buf).await?;
        stats.record(phase.load(Relaxed), t0.elapsed());
    }
    Ok(stats)
}

/// Blocks the worker thread that runs it for [`STALL_SLICE`], yields, and
/// again, until the run stops.
async fn stall<R: Rt>(phase: Arc<AtomicU8>) {
    while phase.load(Relaxed) != STOPPING {
        std::thread::sleep(STALL_SLICE);
        R::yield_now().await;
    }
}

/// Accepts exactly `conns` connections, then hands back their handlers.
async fn accept_all<R: NetRt>(listener: R::Listener, conns: usize) -> Vec<R::Join<io::Result<()>>> {
    let mut handlers = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (stream, _) = R::accept(&listener)
            .await
            .unwrap_or_else(|e| panic!("{} accept: {e}", R::NAME));
        R::set_nodelay(&stream, true).unwrap_or_else(|e| panic!("{} set_nodelay: {e}", R::NAME));
        handlers.push(R::spawn(echo::<R>(stream)));
    }
    handlers
}

/// One run of runtime `R` on one row: a fresh runtime, listener and
/// connections; warm-up, measurement, then every task stopped and awaited
/// and the runtime dropped.
fn run<R: NetRt>(p: Params) -> Sample {
    let name = R::NAME;
    let rt = R::build(p.workers);
    let phase = Arc::new(AtomicU8::new(WARMING));
    let (stalled, server, clients) = rt.block_on(async {
        let stalled = p.stall.then(|| R::spawn(stall::<R>(phase.clone())));
        let any: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
        let listener = R::bind(any)
            .await
            .unwrap_or_else(|e| panic!("{name} bind: {e}"));
        let addr = R::local_addr(&listener).unwrap_or_else(|e| panic!("{name} local_addr: {e}"));
        let server = R::spawn(accept_all::<R>(listener, p.conns));
        let mut streams = Vec::with_capacity(p.conns);
        for _ in 0..p.conns {
            let stream = R::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("{name} connect: {e}"));
            R::set_nodelay(&stream, true).unwrap_or_else(|e| panic!("{name} set_nodelay: {e}"));
            streams.push(stream);
        }
        let clients: Vec<_> = streams
            .into_iter()
            .map(|s| R::spawn(client::<R>(s, p.size, phase.clone())))
            .collect();
        (stalled, server, clients)
    });
    let window = drive(&phase, p.secs);
    let stats = rt.block_on(async {
        let mut stats = Stats::new();
        for c in clients {
            let s = c
                .await
                .unwrap_or_else(|e| panic!("{name} client task: {e:?}"))
                .unwrap_or_else(|e| panic!("{name} client io: {e}"));
            stats.merge(&s);
        }
        let handlers = server
            .await
            .unwrap_or_else(|e| panic!("{name} accept task: {e:?}"));
        for h in handlers {
            h.await
                .unwrap_or_else(|e| panic!("{name} echo task: {e:?}"))
                .unwrap_or_else(|e| panic!("{name} echo io: {e}"));
        }
        if let Some(stalled) = stalled {
            stalled
                .await
                .unwrap_or_else(|e| panic!("{name} stalling task: {e:?}"));
        }
        stats
    });
    drop(rt);
    Sample { stats, window }
}

// ------------------------------------------------------------------ main --

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Gopark,
    Tokio,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Gopark => Gopark::NAME,
            Which::Tokio => Tokio::NAME,
        }
    }

    fn run(self, p: Params) -> Sample {
        let _guard = watchdog(format!(
            "{} run ({} B × {} conns)",
            self.name(),
            p.size,
            p.conns
        ));
        match self {
            Which::Gopark => run::<Gopark>(p),
            Which::Tokio => run::<Tokio>(p),
        }
    }
}

/// The rounds of one runtime on one row, summarised.
struct Summary {
    msgs_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    total: u64,
}

fn summarise(samples: &[Sample]) -> Summary {
    let mut all = Stats::new();
    for s in samples {
        all.merge(&s.stats);
    }
    Summary {
        msgs_per_sec: median(samples.iter().map(Sample::msgs_per_sec).collect()),
        p50_us: all.hist.value_at_quantile(0.50) as f64 / 1e3,
        p99_us: all.hist.value_at_quantile(0.99) as f64 / 1e3,
        max_us: all.hist.max() as f64 / 1e3,
        total: all.total,
    }
}

fn main() {
    let workers = env_usize("GOPARK_BENCH_WORKERS", DEFAULT_WORKERS);
    let secs = env_secs("GOPARK_BENCH_SECS", DEFAULT_SECS);
    let rounds = env_usize("GOPARK_BENCH_ROUNDS", DEFAULT_ROUNDS);
    let only = match std::env::var("GOPARK_BENCH_ONLY").as_deref() {
        Err(_) | Ok("") => None,
        Ok("gopark") => Some(Which::Gopark),
        Ok("tokio") => Some(Which::Tokio),
        Ok(v) => panic!("GOPARK_BENCH_ONLY must be gopark or tokio, got {v:?}"),
    };
    let stall = std::env::var("GOPARK_BENCH_STALL").is_ok_and(|v| v == "1");
    // `cargo bench` passes `--bench`; every other argument is a filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let who = match only {
        None => "gopark and tokio interleaved".to_string(),
        Some(w) => format!("{} only", w.name()),
    };
    println!(
        "net_echo: loopback echo ping-pong, {workers} workers per runtime, {cores} cores, \
         {} ms warm-up + {:.1} s measured per run, {rounds} runs per runtime per row ({who}); \
         msg/s = median over runs, latency percentiles over all runs{}",
        WARMUP.as_millis(),
        secs.as_secs_f64(),
        if stall {
            "; one task blocks a worker throughout (GOPARK_BENCH_STALL=1)"
        } else {
            ""
        }
    );
    println!();
    println!(
        "| size | conns | gopark msg/s | tokio msg/s | ratio | gopark p50/p99/max µs | tokio p50/p99/max µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");

    let mut totals = 0u64;
    for &(size, label) in &SIZES {
        for &conns in &CONNS {
            let name = format!("{label}-{conns}conns");
            if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            let p = Params {
                workers,
                size,
                conns,
                secs,
                stall,
            };
            let mut gs = Vec::with_capacity(rounds);
            let mut ts = Vec::with_capacity(rounds);
            for i in 0..rounds {
                let order = if i % 2 == 0 {
                    [Which::Gopark, Which::Tokio]
                } else {
                    [Which::Tokio, Which::Gopark]
                };
                for w in order {
                    if only.is_some_and(|o| o != w) {
                        continue;
                    }
                    let sample = w.run(p);
                    match w {
                        Which::Gopark => gs.push(sample),
                        Which::Tokio => ts.push(sample),
                    }
                }
            }
            let g = (!gs.is_empty()).then(|| summarise(&gs));
            let t = (!ts.is_empty()).then(|| summarise(&ts));
            totals += g.as_ref().map_or(0, |s| s.total) + t.as_ref().map_or(0, |s| s.total);
            let rate = |s: &Option<Summary>| {
                s.as_ref()
                    .map_or("-".into(), |s| format!("{:.0}", s.msgs_per_sec))
            };
            let lat = |s: &Option<Summary>| {
                s.as_ref().map_or("-".into(), |s| {
                    format!("{:.1} / {:.1} / {:.0}", s.p50_us, s.p99_us, s.max_us)
                })
            };
            let ratio = match (&g, &t) {
                (Some(g), Some(t)) => format!("{:.2}", g.msgs_per_sec / t.msgs_per_sec),
                _ => "-".into(),
            };
            println!(
                "| {label} | {conns} | {} | {} | {ratio} | {} | {} |",
                rate(&g),
                rate(&t),
                lat(&g),
                lat(&t)
            );
        }
    }
    if only.is_some() {
        println!();
        println!("round trips completed in this process (warm-up included): {totals}");
    }
}
