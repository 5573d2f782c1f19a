//! Per-thread accounting from `/proc/self/task`: how many threads a
//! runtime has, how much CPU they used and how often they were switched.

use std::fs;
use std::time::{Duration, Instant};

/// The summed counters of a set of threads.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub threads: usize,
    /// Their names.
    pub names: Vec<String>,
    /// Time on a CPU (`schedstat`, nanosecond resolution).
    pub cpu: Duration,
    /// `utime + stime` (`stat`), in clock ticks: the same time as `cpu`
    /// as the tick accounting samples it.
    pub cpu_ticks: u64,
    /// Voluntary plus involuntary context switches.
    pub switches: u64,
}

impl Usage {
    /// CPU time and switches since `earlier` (same set of threads).
    pub fn since(&self, earlier: &Usage) -> (Duration, u64) {
        (
            self.cpu.saturating_sub(earlier.cpu),
            self.switches.saturating_sub(earlier.switches),
        )
    }
}

/// Sums the counters of every thread whose name (as the kernel keeps it:
/// the first 15 bytes) starts with `prefix`.
/// A runtime's threads besides its workers: the netpoll thread and the
/// watchdog that stands in for it while it polls a task itself.
pub const SERVICE_THREADS: usize = 2;

pub fn usage(prefix: &str) -> Usage {
    let mut total = Usage::default();
    let Ok(dir) = fs::read_dir("/proc/self/task") else {
        return total;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(comm) = fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let comm = comm.trim_end();
        if !comm.starts_with(prefix) {
            continue;
        }
        // A thread that exits between the reads is skipped.
        let (Ok(schedstat), Ok(stat), Ok(status)) = (
            fs::read_to_string(path.join("schedstat")),
            fs::read_to_string(path.join("stat")),
            fs::read_to_string(path.join("status")),
        ) else {
            continue;
        };
        total.threads += 1;
        total.names.push(comm.to_string());
        let ns: u64 = schedstat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .expect("schedstat run time");
        total.cpu += Duration::from_nanos(ns);
        // Fields after the parenthesised name: state is field 3, utime and
        // stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')').expect("stat has a comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields[11].parse().expect("utime");
        let stime: u64 = fields[12].parse().expect("stime");
        total.cpu_ticks += utime + stime;
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches")
                || line.starts_with("nonvoluntary_ctxt_switches")
            {
                let n: u64 = line
                    .split_whitespace()
                    .last()
                    .and_then(|v| v.parse().ok())
                    .expect("ctxt switches");
                total.switches += n;
            }
        }
    }
    total
}

/// Waits (bounded, 5 s) until at least `n` threads named `prefix…` exist.
/// A new thread names itself once it starts running, which nothing lets us
/// await, so this polls.
pub fn wait_for(prefix: &str, n: usize) -> Usage {
    let start = Instant::now();
    loop {
        let u = usage(prefix);
        if u.threads >= n {
            return u;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "only {u:?} of {n} threads named {prefix:?} started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (bounded, 5 s) until exactly `n` threads named `prefix…` exist.
/// Besides a thread still starting (see [`wait_for`]), a runtime that was
/// just busy may have one more for a moment: a worker thread preempted
/// mid-poll on a loaded machine looks stuck to the monitor, which starts a
/// thread in its place; the old one leaves when its poll returns.
pub fn wait_exactly(prefix: &str, n: usize) -> Usage {
    let start = Instant::now();
    loop {
        let u = usage(prefix);
        if u.threads == n {
            return u;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{u:?}, not {n} threads named {prefix:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (bounded, 5 s) until no thread named `prefix…` is left; returns
/// how long that took. A dropped runtime joins its workers and netpoll
/// thread, but its blocking-pool threads exit on their own a moment later,
/// and until then they hold the runtime's shared state (its epoll and wake
/// descriptors).
pub fn wait_gone(prefix: &str) -> Duration {
    let start = Instant::now();
    while usage(prefix).threads > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "threads still alive: {:?}",
            usage(prefix)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

/// Waits until the threads named `prefix…` have not been switched in or
/// out for `quiet` (the stragglers of work that just finished have parked),
/// then returns their counters. Gives up after `limit` and returns the
/// counters as they are: a thread that keeps waking up never gets quiet,
/// and the caller's measurement then shows it. There is nothing to await,
/// so this polls.
pub fn wait_quiet(prefix: &str, quiet: Duration, limit: Duration) -> Usage {
    let start = Instant::now();
    let mut last = usage(prefix);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let now = usage(prefix);
        let moved = now.switches != last.switches || now.threads != last.threads;
        if (!moved && since.elapsed() >= quiet) || start.elapsed() >= limit {
            return now;
        }
        if moved {
            (last, since) = (now, Instant::now());
        }
    }
}

/// Number of threads of the whole process.
pub fn count_all() -> usize {
    fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}
