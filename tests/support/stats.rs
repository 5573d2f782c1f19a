//! Percentiles of measured durations, and the `FIGURE` lines of the
//! reliability tests.
//!
//! Every reliability test prints its figure on a line starting with
//! `FIGURE` (visible with `--nocapture`), so `scripts/reliability.sh` can
//! collect them, and asserts a bound on it: generous where the figure is a
//! time measured on a shared machine.

use std::time::Duration;

/// Prints one figure line: `FIGURE <name>: <text>`.
pub fn figure(name: &str, text: impl std::fmt::Display) {
    println!("FIGURE {name}: {text}");
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

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
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

/// What a latency test beside a stuck thread must show: the echoes of a
/// connection that is not stuck, and a timer, while another task holds a
/// thread (a worker, or the netpoll thread).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The 99th percentile of the echo round trips.
    pub p99: Duration,
    /// The slowest round trip.
    pub max: Duration,
    /// How late a 10 ms timer may fire.
    pub timer: Duration,
}

impl Bounds {
    /// The default run's: a hand-off (of a stuck worker, or of the stuck
    /// netpoll thread) that never happens leaves a connection without an
    /// answer until the client gives up (30 s), and one that comes late
    /// shows in the slowest round trip; a machine busy with other work
    /// delays a wake-up by tens of milliseconds, not by these.
    pub const LOOSE: Bounds = Bounds {
        p99: Duration::from_millis(250),
        max: Duration::from_secs(2),
        timer: Duration::from_millis(250),
    };
}
