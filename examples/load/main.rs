//! A load generator built on gopark itself, for the echo and http examples
//! (or any echo or HTTP/1.1 server).
//!
//! ```text
//! cargo run --release --example load -- http [--addr ADDR] [-c N] [-d DURATION]
//!                                            [--pipeline K] [--path PATH] [--workers N]
//! cargo run --release --example load -- light [--addr ADDR] [-c N] [-n COUNT]
//!                                             [--gap-us G]
//! cargo run --release --example load -- echo [--addr ADDR] [-c N] [-s BYTES]
//!                                            [-d DURATION] [--workers N]
//!
//! --addr ADDR           server address (default 127.0.0.1:8080 for http,
//!                       127.0.0.1:7000 for echo)
//! -c, --connections N   concurrent connections (default 100)
//! -d, --duration D      how long to send: 10s, 500ms, 2m, or seconds (default 10s)
//! -s, --size BYTES      echo: message size (default 64)
//! --pipeline K          http: requests written together per batch (default 1)
//! --path PATH           http: request target (default /)
//! --workers N           worker threads (default: one per core, or GOPARK_WORKERS)
//! -h, --help            print the help
//! ```
//!
//! `light` is different: the latency of sporadic echoes to an idle server,
//! on blocking sockets with no runtime (see `light.rs`); `-n` echoes
//! (default 2000), each after a pause of up to `--gap-us` µs (default
//! 3000), over `-c` connections (default 4).
//!
//! Each connection is a closed loop: http mode writes `K` keep-alive
//! `GET PATH` requests at once and reads `K` responses (parsed with
//! `httparse`, bodies skipped by `Content-Length`); echo mode writes a
//! message, reads it back and checks every byte. A latency is measured from
//! the write to the answer and recorded in an HDR histogram.
//!
//! While it runs, a progress line per second goes to stderr. At the end it
//! prints to stdout:
//!
//! ```text
//! load http://127.0.0.1:8080/, 100 connections, pipeline 1, 10.00 s
//! requests:   1234567 total, 123456.7 req/s
//! throughput: 15.31 MiB/s in, 5.65 MiB/s out
//! latency:    p50 0.771 ms, p90 1.043 ms, p99 1.991 ms, max 12.345 ms
//! errors:     0 (connect 0, i/o 0, protocol 0), non-2xx responses 0
//! ```
//!
//! `requests` counts every answer received, whatever its status. When the
//! time is up, connections stop sending and wait (up to 5 s) for the
//! answers still owed, so the total matches what the server answered.
//! A failed connection is counted as an error and reconnected.
//!
//! Ctrl-C (or SIGTERM) stops early and prints the summary, exit status 0;
//! a second one exits at once. Bad arguments exit with status 2; a run that
//! got no answer at all exits with status 1.

mod args;
mod echo;
mod http;
mod light;
mod stats;

#[path = "../support/nofile.rs"]
mod nofile;
#[path = "../support/signals.rs"]
mod signals;

use std::io;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use gopark::runtime::{self, time::timeout_at, Builder};
use signals::Signals;

use args::{Command, Config, Mode};
use stats::{Report, Stats};

/// How long connections get, once the time is up, to receive the answers
/// still owed to them.
const DRAIN: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cfg = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Run(cfg)) => cfg,
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("load: {msg}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    if cfg.mode == Mode::Light {
        return match light::run(&cfg) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("load: {e}");
                ExitCode::FAILURE
            }
        };
    }
    nofile::raise_limit();
    let mut builder = Builder::new();
    builder.thread_name("load");
    if let Some(n) = cfg.workers {
        builder.worker_threads(n);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cfg = Arc::new(cfg);
    match rt.block_on(run(cfg.clone())) {
        Ok(report) => {
            report.print(&cfg);
            if report.counts.requests == 0 {
                eprintln!("load: no answers from {}", cfg.target);
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: Arc<Config>) -> io::Result<Report> {
    let mut signals = Signals::new()?;
    let stats = Arc::new(Stats::new());
    let stop = Arc::new(AtomicBool::new(false));

    let start = Instant::now();
    let end = start + cfg.duration;
    let conns: Vec<_> = (0..cfg.connections)
        .map(|id| {
            let (cfg, stats, stop) = (cfg.clone(), stats.clone(), stop.clone());
            match cfg.mode {
                Mode::Http => runtime::spawn(http::run(id, cfg, stats, stop)),
                Mode::Echo => runtime::spawn(echo::run(id, cfg, stats, stop)),
                Mode::Light => unreachable!("light mode runs without a runtime"),
            }
        })
        .collect();

    // A progress line each second until the time is up or a signal comes.
    let mut last = (start, stats.counts());
    let mut next = start + Duration::from_secs(1);
    loop {
        if let Ok(signal) = timeout_at(next.min(end), signals.recv()).await {
            eprintln!("{signal}: stopping early");
            break;
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        let counts = stats.counts();
        let secs = (now - last.0).as_secs_f64();
        eprintln!("{}", stats::progress(now - start, &last.1, &counts, secs));
        last = (now, counts);
        next += Duration::from_secs(1);
    }
    let elapsed = start.elapsed();
    // Relaxed: see the connections' loops.
    stop.store(true, Ordering::Relaxed);

    // Collect the answers still owed, for a while; a signal cuts it short.
    let deadline = Instant::now() + DRAIN;
    let drain = pin!(async {
        let mut unfinished = 0;
        for conn in conns {
            if timeout_at(deadline, conn).await.is_err() {
                unfinished += 1;
            }
        }
        unfinished
    });
    let unfinished = match select(drain, pin!(signals.recv())).await {
        Either::Left((unfinished, _)) => unfinished,
        Either::Right((signal, _)) => {
            eprintln!("{signal}: exiting now");
            std::process::exit(130);
        }
    };
    Ok(stats.report(elapsed, unfinished))
}
