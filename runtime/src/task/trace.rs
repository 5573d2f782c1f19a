//! What a task is waiting for, as the task dump shows it.
//!
//! Each task header carries where it was spawned (`#[track_caller]` on
//! every spawn function) and a small record of its last wait:
//!
//! * at the start of each poll the record is cleared;
//! * a leaf future that parks the task records itself through the task's
//!   waker ([`record_wait`]): a `PollDesc` half its descriptor and
//!   direction, a `Sleep` its deadline, a `JoinHandle` the task it awaits;
//! * when the poll returns `Pending`, an empty record becomes "something
//!   else" (a channel, a lock…).
//!
//! Each spawn and each park notes the time, so the dump can say how long a
//! task has waited. Not from a clock: a clock read costs a spawn or a park
//! a few percent (about 30 instructions through the vDSO, against some 900
//! for a whole spawn), and the dump prints ages in milliseconds. The
//! workers read the kernel's coarse clock when they wake and every
//! `GLOBAL_POLL_INTERVAL` polls, with their look at the injector, and
//! publish it ([`refresh_clock`]); a spawn or a park on a worker copies the
//! last value, which lags the coarse clock by at most that interval of
//! polls (the other workers keep it fresh while one is stuck in a poll).
//! The last worker to park forgets it ([`forget_clock`]): while every
//! worker sleeps, a spawn from another thread reads the clock itself and
//! shares the reading ([`share_spawn_time`]), which the worker it wakes
//! keeps fresh from then on; while one runs, such a spawn copies the value
//! too. The start of a poll notes nothing. All of it is relaxed
//! stores to the task's own header; nothing is recorded for a waker that
//! is not a gopark task's (a future polled by another executor, or through
//! a combinator with wakers of its own): the dump then says "idle".

use std::panic::Location;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::raw::Header;

const NONE: u64 = 0;
const IO: u64 = 1;
const SLEEP: u64 = 2;
const JOIN: u64 = 3;
const OTHER: u64 = 4;
const KIND_MASK: u64 = 0xF;
const WRITE: u64 = 1 << 4;
const FD_SHIFT: u32 = 32;

/// What a task parks on, recorded by the leaf future that parks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// A descriptor's read or write half, with its deadline.
    Io {
        fd: i32,
        write: bool,
        deadline: Option<Instant>,
    },
    /// A timer.
    Sleep { until: Instant },
    /// Another task's completion.
    Join { task: super::Id },
    /// Something the runtime does not know (a channel, a lock…).
    Other,
}

/// A task's spawn site and wait record, in its header.
pub(crate) struct Trace {
    pub(crate) spawned_at: &'static Location<'static>,
    /// Kind, direction and descriptor.
    wait: AtomicU64,
    /// A deadline ([`encode_instant`]; 0 for none) or a joined task's id.
    arg: AtomicU64,
}

/// When a task last parked (or was spawned): the coarse clock
/// ([`coarse_now`]) in milliseconds, in four bytes that wrap every 49
/// days; an age is their wrapping difference, right for any task that
/// waited less than that.
pub(crate) struct Since(AtomicU32);

impl Since {
    /// Now, as the workers last read the clock.
    #[inline]
    pub(crate) fn recent() -> Since {
        Since(AtomicU32::new(recent_now()))
    }

    /// The task parks now (as the workers last read the clock).
    #[inline]
    pub(crate) fn note_recent(&self) {
        // Relaxed: as every field of the record.
        self.0.store(recent_now(), Ordering::Relaxed);
    }

    /// How long ago the task last parked, or was spawned (coarse: to a
    /// few milliseconds).
    pub(crate) fn age(&self) -> Duration {
        let since = self.0.load(Ordering::Relaxed);
        let ms = now_millis().wrapping_sub(since);
        // A value from the future (a worker's clock read racing this one)
        // reads as a wrap: call it now.
        if ms > u32::MAX / 2 {
            return Duration::ZERO;
        }
        Duration::from_millis(u64::from(ms))
    }
}

/// Nanoseconds as wrapping milliseconds.
#[inline]
fn millis(nanos: u64) -> u32 {
    (nanos / 1_000_000) as u32
}

impl Trace {
    #[inline]
    pub(crate) fn new(spawned_at: &'static Location<'static>) -> Trace {
        Trace {
            spawned_at,
            wait: AtomicU64::new(NONE),
            arg: AtomicU64::new(0),
        }
    }

    /// A poll starts: the record is about this poll only. (No clock is
    /// read here: a poll is too short and too frequent to time.)
    #[inline]
    pub(crate) fn begin_poll(&self) {
        // Relaxed: a diagnostic record; readers may see a mix of old and
        // new, which the dump shows as it is.
        self.wait.store(NONE, Ordering::Relaxed);
    }

    /// The poll returned `Pending`: the task is parked from now (the
    /// header's `Since` notes when).
    #[inline]
    pub(crate) fn parked(&self) {
        if self.wait.load(Ordering::Relaxed) == NONE {
            self.wait.store(OTHER, Ordering::Relaxed);
        }
    }

    fn record(&self, wait: Wait) {
        let (word, arg) = match wait {
            Wait::Io {
                fd,
                write,
                deadline,
            } => (
                IO | if write { WRITE } else { 0 } | (u64::from(fd as u32) << FD_SHIFT),
                deadline.map_or(0, encode_instant),
            ),
            Wait::Sleep { until } => (SLEEP, encode_instant(until)),
            Wait::Join { task } => (JOIN, task.as_u64()),
            Wait::Other => (OTHER, 0),
        };
        self.arg.store(arg, Ordering::Relaxed);
        self.wait.store(word, Ordering::Relaxed);
    }

    /// The recorded wait; `None` while nothing was recorded (the task is
    /// running, queued, or new).
    pub(crate) fn wait(&self) -> Option<Wait> {
        let word = self.wait.load(Ordering::Relaxed);
        let arg = self.arg.load(Ordering::Relaxed);
        match word & KIND_MASK {
            IO => Some(Wait::Io {
                fd: (word >> FD_SHIFT) as u32 as i32,
                write: word & WRITE != 0,
                deadline: decode_instant(arg),
            }),
            SLEEP => Some(Wait::Sleep {
                until: decode_instant(arg).unwrap_or_else(epoch),
            }),
            JOIN => super::Id::from_u64(arg).map(|task| Wait::Join { task }),
            OTHER => Some(Wait::Other),
            _ => None,
        }
    }
}

/// Records what the task behind `waker` parks on, if `waker` is a gopark
/// task's; `wait` is only called then.
#[inline]
pub(crate) fn record_wait(waker: &Waker, wait: impl FnOnce() -> Wait) {
    if let Some(header) = super::raw::header_of(waker) {
        header.trace.record(wait());
    }
}

/// The instant deadlines are counted from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// `at` as eight bytes: nanoseconds past [`epoch`], plus one (an instant
/// before the epoch is taken as the epoch); 0 is left for none.
pub(crate) fn encode_instant(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_nanos() as u64 + 1
}

/// The instant [`encode_instant`] packed, or `None` for 0.
pub(crate) fn decode_instant(v: u64) -> Option<Instant> {
    (v != 0).then(|| epoch() + Duration::from_nanos(v - 1))
}

/// The coarse clock as a worker last read it, in wrapping milliseconds
/// (as [`Since`] keeps it); 0 before any did, or once forgotten.
static RECENT: AtomicU32 = AtomicU32::new(0);

/// The coarse clock now, in wrapping milliseconds, never 0 (which stands
/// for none in [`RECENT`]; a millisecond off, once every 49 days).
fn now_millis() -> u32 {
    millis(coarse_now()).max(1)
}

/// Reads the coarse clock for [`recent_now`]: workers call it when they
/// wake and every few dozen polls.
pub(crate) fn refresh_clock() {
    let now = now_millis();
    // Relaxed: a timestamp, published by nothing; a reader that sees an
    // older one only reports an age a little longer. Stored only when the
    // coarse clock moved (every few milliseconds): a store takes the line
    // from every core that reads it at each spawn and park.
    if RECENT.load(Ordering::Relaxed) != now {
        RECENT.store(now, Ordering::Relaxed);
    }
}

/// Called by the last worker of a runtime to park: nobody may refresh the
/// clock for a long while, so spawns and parks read it themselves until a
/// worker runs again ([`refresh_clock`]).
pub(crate) fn forget_clock() {
    // Relaxed: as in `refresh_clock`; a worker that wakes meanwhile and
    // stores a fresh value either lands after this (and is kept) or before
    // (and spawns read the clock until its next refresh: slower, as exact).
    RECENT.store(0, Ordering::Relaxed);
}

/// A task spawned off the workers is about to be queued for them, and a
/// worker woken for it (or one already awake) keeps the time fresh from
/// now on, until it forgets it as the last to park. So if the time was
/// forgotten, the reading the spawn just made is shared: the spawns that
/// follow copy it instead of reading the clock each. (Only for such
/// spawns: a thread that runs tasks of its own, a `LocalSet`'s, wakes no
/// worker, and a time it shared would go stale.)
pub(crate) fn share_spawn_time(since: &Since) {
    // Relaxed: as in `refresh_clock`.
    if RECENT.load(Ordering::Relaxed) == 0 {
        RECENT.store(since.0.load(Ordering::Relaxed).max(1), Ordering::Relaxed);
    }
}

/// The coarse clock in wrapping milliseconds, as of the last
/// [`refresh_clock`] (or read now, if no worker has run yet, or the last
/// one to park forgot it).
#[inline]
fn recent_now() -> u32 {
    match RECENT.load(Ordering::Relaxed) {
        0 => now_millis(),
        t => t,
    }
}

/// `CLOCK_MONOTONIC_COARSE` in nanoseconds: a few nanoseconds to read,
/// good to the kernel's tick.
fn coarse_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One task as the dump sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskInfo {
    /// The header's address: which task a worker is polling.
    pub(crate) addr: usize,
    /// The task's id.
    pub(crate) id: super::Id,
    pub(crate) spawned_at: &'static Location<'static>,
    /// Inside a poll now.
    pub(crate) running: bool,
    /// Woken and waiting for a worker.
    pub(crate) queued: bool,
    /// What it last parked on.
    pub(crate) wait: Option<Wait>,
    /// How long since it last parked (or was spawned).
    pub(crate) age: Duration,
}

impl TaskInfo {
    pub(crate) fn of(header: &Header) -> TaskInfo {
        let state = header.state.load();
        TaskInfo {
            addr: header.addr(),
            id: header.id,
            spawned_at: header.trace.spawned_at,
            running: state.is_running(),
            queued: state.is_notified() && !state.is_running(),
            wait: header.trace.wait(),
            age: header.since.age(),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn since_ages_from_its_note() {
        let since = Since::recent();
        assert!(since.age() < Duration::from_secs(5), "{:?}", since.age());
        // Noted a minute ago: reads about a minute.
        let then = millis(coarse_now()).wrapping_sub(60_000);
        since.0.store(then, Ordering::Relaxed);
        let age = since.age();
        assert!(
            age >= Duration::from_secs(60) && age < Duration::from_secs(65),
            "{age:?}"
        );
        // A note a little ahead of this thread's clock reads as no age.
        since
            .0
            .store(millis(coarse_now()).wrapping_add(10), Ordering::Relaxed);
        assert_eq!(since.age(), Duration::ZERO);
    }
}
