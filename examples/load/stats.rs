//! What the connections measure, and the report.
//!
//! Connections record into a few shards (connection `i` into shard
//! `i % SHARDS`), each a lock around counters and an HDR histogram, so that
//! a thousand connections do not need a thousand 100 KiB histograms and two
//! worker threads rarely want the same lock. The progress line reads the
//! counters of every shard once a second.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::args::{Config, Mode};

const SHARDS: usize = 16;
/// Latencies are kept in microseconds, up to a minute, to three
/// significant figures.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Counters of a shard, or of the whole run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Answers received (HTTP responses of any status; echo round trips).
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// HTTP responses whose status was not 2xx.
    pub non_2xx: u64,
    pub connect_errors: u64,
    pub io_errors: u64,
    pub protocol_errors: u64,
}

impl Counts {
    pub fn errors(&self) -> u64 {
        self.connect_errors + self.io_errors + self.protocol_errors
    }

    fn add(&mut self, o: &Counts) {
        self.requests += o.requests;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.non_2xx += o.non_2xx;
        self.connect_errors += o.connect_errors;
        self.io_errors += o.io_errors;
        self.protocol_errors += o.protocol_errors;
    }
}

/// Why a connection gave up (it then reconnects).
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Could not connect.
    Connect,
    /// A read or write failed, or the server closed mid-answer.
    Io,
    /// The answer was not what was expected.
    Protocol,
}

/// A cache line (or two) of its own for each shard's lock.
#[repr(align(128))]
struct Shard(Mutex<ShardInner>);

struct ShardInner {
    counts: Counts,
    latency: Histogram<u64>,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// The measurements of a run.
pub struct Stats {
    shards: Vec<Shard>,
}

impl Stats {
    pub fn new() -> Stats {
        let shards = (0..SHARDS)
            .map(|_| {
                Shard(Mutex::new(ShardInner {
                    counts: Counts::default(),
                    latency: new_histogram(),
                }))
            })
            .collect();
        Stats { shards }
    }

    fn shard(&self, conn: usize) -> std::sync::MutexGuard<'_, ShardInner> {
        self.shards[conn % SHARDS].0.lock().unwrap()
    }

    /// Connection `conn` got an answer of `bytes` bytes, `latency` after
    /// sending its request; `ok` is false for a non-2xx HTTP status.
    pub fn record(&self, conn: usize, latency: Duration, bytes: usize, ok: bool) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let mut s = self.shard(conn);
        s.latency.saturating_record(us.max(1));
        s.counts.requests += 1;
        s.counts.bytes_in += bytes as u64;
        s.counts.non_2xx += u64::from(!ok);
    }

    /// Connection `conn` wrote `bytes` bytes of requests.
    pub fn sent(&self, conn: usize, bytes: usize) {
        self.shard(conn).counts.bytes_out += bytes as u64;
    }

    pub fn fail(&self, conn: usize, failure: Failure) {
        let mut s = self.shard(conn);
        match failure {
            Failure::Connect => s.counts.connect_errors += 1,
            Failure::Io => s.counts.io_errors += 1,
            Failure::Protocol => s.counts.protocol_errors += 1,
        }
    }

    /// The counters summed over the shards.
    pub fn counts(&self) -> Counts {
        let mut total = Counts::default();
        for s in &self.shards {
            total.add(&s.0.lock().unwrap().counts);
        }
        total
    }

    /// The final figures.
    pub fn report(&self, elapsed: Duration, unfinished: usize) -> Report {
        let mut latency = new_histogram();
        for s in &self.shards {
            latency
                .add(&s.0.lock().unwrap().latency)
                .expect("histograms with the same bounds");
        }
        Report {
            counts: self.counts(),
            latency,
            elapsed,
            unfinished,
        }
    }
}

/// The one-second progress line, from the counters at the start and end
/// of the second.
pub fn progress(at: Duration, before: &Counts, now: &Counts, secs: f64) -> String {
    let requests = now.requests - before.requests;
    let bytes_in = now.bytes_in - before.bytes_in;
    format!(
        "[{:5.1}s] {:>10.0} req/s {:>9.2} MiB/s in {:>6} errors",
        at.as_secs_f64(),
        requests as f64 / secs,
        mib(bytes_in) / secs,
        now.errors(),
    )
}

/// The summary of a run.
pub struct Report {
    pub counts: Counts,
    latency: Histogram<u64>,
    /// From the start until the connections were told to stop.
    elapsed: Duration,
    /// Connections still waiting for an answer when the drain ended.
    unfinished: usize,
}

impl Report {
    pub fn print(&self, cfg: &Config) {
        let c = &self.counts;
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let what = match cfg.mode {
            Mode::Http => format!(
                "http://{}{}, {} connections, pipeline {}",
                cfg.target, cfg.path, cfg.connections, cfg.pipeline
            ),
            Mode::Echo | Mode::Light => format!(
                "echo {}, {} connections, {}-byte messages",
                cfg.target, cfg.connections, cfg.size
            ),
        };
        println!("load {what}, {:.2} s", secs);
        println!(
            "requests:   {} total, {:.1} req/s",
            c.requests,
            c.requests as f64 / secs
        );
        println!(
            "throughput: {:.2} MiB/s in, {:.2} MiB/s out",
            mib(c.bytes_in) / secs,
            mib(c.bytes_out) / secs
        );
        if self.latency.is_empty() {
            println!("latency:    no answers");
        } else {
            let q = |q: f64| ms(self.latency.value_at_quantile(q));
            println!(
                "latency:    p50 {}, p90 {}, p99 {}, max {}",
                q(0.5),
                q(0.9),
                q(0.99),
                ms(self.latency.max())
            );
        }
        println!(
            "errors:     {} (connect {}, i/o {}, protocol {}), non-2xx responses {}",
            c.errors(),
            c.connect_errors,
            c.io_errors,
            c.protocol_errors,
            c.non_2xx
        );
        if self.unfinished > 0 {
            println!(
                "warning:    {} connection(s) were still waiting for an answer at the end",
                self.unfinished
            );
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}
