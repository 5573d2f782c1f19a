//! Helpers shared by the reliability tests (`reliability_*.rs`, issue 5).
//!
//! Every reliability test prints its figure on a line starting with
//! `FIGURE` (visible with `--nocapture`), so `scripts/reliability.sh` can
//! collect them; and asserts a bound on it, generous where the figure is a
//! time measured on a shared machine.
//!
//! * [`serial`]: the tests of one file run one at a time. They count the
//!   whole process's descriptors, threads and CPU time, and time wake-ups
//!   to the millisecond, which tests running beside them would disturb.
//! * [`Watchdog`]: aborts the process if a test hangs so badly that the
//!   runtime's own timers cannot end it.
//! * The sizes of the issue (10,000 connections × 1 MiB, 64 MiB each way,
//!   ...) run only in `#[ignore]`d `*_full` tests that
//!   `scripts/reliability.sh` runs in release; the default run uses
//!   CI-sized variants of the same code.
//! * [`child`]: re-executes the test binary as a child process playing a
//!   role named by an environment variable (a client with its own
//!   descriptor table, a process with a low `RLIMIT_NOFILE`, one with
//!   `SIGPIPE` back at its default).
//! * Accounting from `/proc`: descriptors, resident memory, and per-thread
//!   CPU time (nanoseconds, from `schedstat`) and context switches.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use gopark::runtime::{time::timeout, Builder, Runtime};

/// Takes this test binary's lock: the reliability tests of one file run one
/// at a time (a failed test poisons nothing).
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A runtime with `workers` workers whose threads are named `name-…`.
pub fn runtime(workers: usize, name: &str) -> Runtime {
    Builder::new()
        .worker_threads(workers)
        .thread_name(name)
        .build()
        .expect("build runtime")
}

/// Prints one figure line: `FIGURE <name>: <text>`.
pub fn figure(name: &str, text: impl std::fmt::Display) {
    println!("FIGURE {name}: {text}");
}

// The watchdog and the seeded payloads are the network tests' own.
#[path = "../net_support/mod.rs"]
mod net_support;
#[allow(unused_imports)] // not every test file uses both
pub use net_support::{pattern, Watchdog};

/// Runs `body` on a fresh runtime named `name`, under a watchdog and a
/// runtime timeout of `limit`.
pub fn run<F, Fut, T>(workers: usize, name: &str, limit: Duration, body: F) -> T
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = io::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let dog = Watchdog::start(format!("{name} on {workers} worker(s)"), limit * 2);
    let rt = runtime(workers, name);
    let fut = body();
    let res = rt.block_on(async move { timeout(limit, gopark::runtime::spawn(fut)).await });
    drop(rt);
    dog.disarm();
    match res {
        Err(_) => panic!("{name}: timed out after {limit:?} (a hang)"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("{name}: task failed: {e}"),
        Ok(Ok(Err(e))) => panic!("{name}: {e} ({:?})", e.kind()),
        Ok(Ok(Ok(v))) => v,
    }
}

/// Index of the first byte where `got` and `want` differ, if any.
pub fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    if got == want {
        return None;
    }
    Some(
        got.iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len())),
    )
}

/// Number of open descriptors of this process (entries of /proc/self/fd,
/// minus the one `read_dir` itself holds).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
        - 1
}

/// Resident set size of this process, in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm resident");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

/// User plus system CPU time of the whole process.
pub fn process_cpu() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Per-thread accounting from `/proc/self/task`.
pub mod threads {
    use std::fs;
    use std::time::Duration;

    /// The summed counters of a set of threads.
    #[derive(Debug, Clone, Default)]
    pub struct Usage {
        pub threads: usize,
        pub names: Vec<String>,
        /// Time on a CPU (`schedstat`, nanosecond resolution).
        pub cpu: Duration,
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

    /// Sums the counters of every thread whose name (as the kernel keeps
    /// it: the first 15 bytes) starts with `prefix`.
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
            let (Ok(schedstat), Ok(status)) = (
                fs::read_to_string(path.join("schedstat")),
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

    /// Waits (bounded) until no thread named `prefix…` is left. A dropped
    /// runtime joins its workers and netpoll thread, but its blocking-pool
    /// threads exit on their own a moment later, and until then they hold
    /// the runtime's shared state (its epoll and wake descriptors).
    pub fn wait_gone(prefix: &str) -> Duration {
        let start = std::time::Instant::now();
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

    /// Number of threads of the whole process.
    pub fn count_all() -> usize {
        fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Waits (bounded) until at least `n` threads named `prefix…` exist. A
    /// new thread names itself once it starts running, which nothing lets
    /// us await, so this polls.
    pub fn wait_for(prefix: &str, n: usize) -> Usage {
        let start = std::time::Instant::now();
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
}

/// Percentiles of a set of durations.
#[derive(Debug, Clone)]
pub struct Stats {
    sorted: Vec<Duration>,
}

impl Stats {
    pub fn new(mut samples: Vec<Duration>) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        samples.sort();
        Stats { sorted: samples }
    }

    /// The `p`-th percentile (nearest rank), `p` in 0..=100.
    pub fn pct(&self, p: f64) -> Duration {
        let n = self.sorted.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.sorted[rank.clamp(1, n) - 1]
    }

    pub fn min(&self) -> Duration {
        self.sorted[0]
    }

    pub fn max(&self) -> Duration {
        *self.sorted.last().unwrap()
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// `n=…, min …, p50 …, p95 …, p99 …, max …` in milliseconds.
    pub fn summary(&self) -> String {
        let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
        format!(
            "n={}, min {}, p50 {}, p95 {}, p99 {}, max {}",
            self.len(),
            ms(self.min()),
            ms(self.pct(50.0)),
            ms(self.pct(95.0)),
            ms(self.pct(99.0)),
            ms(self.max())
        )
    }
}

/// Re-executing the test binary as a child process with a role.
pub mod child {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, ExitStatus, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    /// What a child left behind.
    pub struct Outcome {
        pub status: ExitStatus,
        pub stdout: String,
        pub stderr: String,
    }

    impl Outcome {
        /// Panics, showing everything the child printed, unless it exited 0
        /// after its one test passed.
        #[track_caller]
        pub fn assert_passed(&self, what: &str) {
            assert!(
                self.status.success() && self.stdout.contains("1 passed"),
                "{what}: child {} (signal {:?})\n--- stdout\n{}\n--- stderr\n{}",
                self.status,
                self.status.signal(),
                self.stdout,
                self.stderr
            );
        }

        /// Re-prints the child's `FIGURE` lines in this process's output.
        pub fn echo_figures(&self) {
            // A line may follow libtest's `test name ... ` on the same line.
            for line in self.stdout.lines() {
                if let Some(at) = line.find("FIGURE ") {
                    println!("{}", &line[at..]);
                }
            }
        }

        /// The value of `KEY=value` printed by the child on a line of its own.
        pub fn value(&self, key: &str) -> Option<String> {
            let prefix = format!("{key}=");
            self.stdout.lines().find_map(|l| {
                let at = l.find(&prefix)?;
                Some(l[at + prefix.len()..].trim().to_string())
            })
        }
    }

    /// A command that re-runs test `name` of this binary alone, with
    /// `env_key=env_value` telling it which role to play.
    pub fn command(name: &str, env: &[(&str, String)]) -> Command {
        let exe = std::env::current_exe().expect("test binary path");
        let mut cmd = Command::new(exe);
        cmd.args([
            "--exact",
            name,
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs `cmd` to completion, killing it after `limit`.
    pub fn run(mut cmd: Command, limit: Duration) -> Outcome {
        // Its own process group, so a kill on timeout takes its threads and
        // anything it started.
        cmd.process_group(0);
        let child = cmd.spawn().expect("re-execute the test binary");
        wait(child, limit)
    }

    /// Waits for `child`, killing it after `limit`.
    pub fn wait(child: std::process::Child, limit: Duration) -> Outcome {
        let pid = child.id() as libc::pid_t;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(limit) {
            Ok(out) => {
                let out = out.expect("wait for the child");
                Outcome {
                    status: out.status,
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                }
            }
            Err(_) => {
                // SAFETY: kill(2) on the pid of our own child, which has not
                // been reaped (its waiter is still blocked in wait).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let out = rx.recv_timeout(Duration::from_secs(10));
                let (stdout, stderr) = match out {
                    Ok(Ok(o)) => (
                        String::from_utf8_lossy(&o.stdout).into_owned(),
                        String::from_utf8_lossy(&o.stderr).into_owned(),
                    ),
                    _ => Default::default(),
                };
                panic!(
                    "child did not finish in {limit:?}; killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
                );
            }
        }
    }
}
