//! `GOPARK_SCHEDTRACE` and `GOPARK_DUMP_ON_SIGQUIT`: the runtime telling
//! an operator what it does, with no code in the program, as Go's
//! `GODEBUG=schedtrace=MS` and its SIGQUIT goroutine dump do.
//!
//! # `GOPARK_SCHEDTRACE=MS`
//!
//! Every `MS` milliseconds the netpoll thread writes one line to stderr:
//!
//! ```text
//! gopark 1000ms: workers=2 running=1 parked=1 searching=0 handoffs=+0 globalq=0 localq=[0 3] tasks=12 spawned=+5 polls=+1020 steals=+3 parks=+40 netpoll: wakeups=+12 events=+300 by_workers=+80 standby=800ms inline=+9 stand_ins=+0 fds=14 timers: armed=+10 fired=+8 cancelled=+2 deadlines=+0 blocking=1/1
//! ```
//!
//! | field | meaning | Go's `schedtrace` |
//! |---|---|---|
//! | `1000ms` | age of the runtime | `SCHED 1000ms` |
//! | `workers`, `running`, `parked`, `searching` | worker threads; unparked; parked; looking for work to steal | `gomaxprocs`, `idleprocs`, `spinningthreads` |
//! | `handoffs` | since the last line: workers handed off while stuck in a poll | — |
//! | `globalq`, `localq=[..]` | tasks queued in the injector; in each worker's queue | `runqueue`, `[..]` |
//! | `tasks` | live tasks | — |
//! | `spawned`, `polls`, `steals`, `parks` | since the last line: tasks spawned, polled, stolen; worker parks | — |
//! | `netpoll: wakeups`, `events`, `by_workers`, `standby` | since the last line: netpoll thread wake-ups, readiness events, looks at epoll taken by workers, time the thread stood by | — |
//! | `inline`, `stand_ins` | since the last line: tasks the netpoll thread polled itself; times its watchdog stood in for it | — |
//! | `fds` | registered descriptors | — |
//! | `timers: armed`, `fired`, `cancelled`, `deadlines` | since the last line | — |
//! | `blocking=T/I` | blocking-pool threads, of which idle | — |
//!
//! A `+` marks a figure counted since the previous line.
//!
//! # `GOPARK_DUMP_ON_SIGQUIT=1`
//!
//! SIGQUIT (Ctrl-\\ in a terminal, `kill -QUIT`) writes [`Handle::dump`]'s
//! text to stderr, and the process goes on running. The handler itself only
//! raises a flag and wakes the netpoll thread (both async-signal-safe); the
//! dump is taken and written there.
//!
//! Once every runtime that asked for the dump is dropped, SIGQUIT does
//! what it did before: a process that had the default action terminates
//! (with a core dump, if allowed). The signal registry keeps its handler
//! installed for good, so a handler-side fallback, registered with the
//! first dump, restores the default action and raises the signal again
//! whenever no runtime is left to dump.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use super::{Handle, MetricsSnapshot};
use crate::netpoll::Hook;

/// The environment variable of the schedtrace line.
const SCHEDTRACE: &str = "GOPARK_SCHEDTRACE";
/// The environment variable of the SIGQUIT dump.
const DUMP_ON_SIGQUIT: &str = "GOPARK_DUMP_ON_SIGQUIT";

/// What the environment asks of a runtime being built.
pub(super) struct Tracing {
    every: Option<Duration>,
    sigquit: Option<(Arc<AtomicBool>, signal_hook_registry::SigId)>,
}

impl Tracing {
    /// Reads the environment. For the SIGQUIT dump, installs the handler,
    /// which raises a flag and wakes the netpoll thread.
    pub(super) fn from_env(handle: &Handle) -> Tracing {
        let every = std::env::var(SCHEDTRACE)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        let sigquit = std::env::var(DUMP_ON_SIGQUIT)
            .is_ok_and(|v| v.trim() == "1")
            .then(|| install_sigquit(handle))
            .flatten();
        Tracing { every, sigquit }
    }

    /// The netpoll thread's hook, if anything is asked for.
    pub(super) fn hook(&self, handle: Handle) -> Option<Hook> {
        if self.every.is_none() && self.sigquit.is_none() {
            return None;
        }
        let every = self.every;
        let dump_asked = self.sigquit.as_ref().map(|(flag, _)| flag.clone());
        let started = Instant::now();
        let mut last = handle.metrics().snapshot();
        let mut next = every.map(|e| started + e);
        Some(Box::new(move |now: Instant| {
            if dump_asked
                .as_ref()
                .is_some_and(|flag| flag.swap(false, Ordering::AcqRel))
            {
                eprint!("{}", handle.dump());
            }
            if let (Some(every), Some(due)) = (every, next) {
                if now >= due {
                    let snap = handle.metrics().snapshot();
                    eprintln!("{}", line(now.duration_since(started), &snap, &last));
                    last = snap;
                    // The next line one period on, not one period after a
                    // late wake-up.
                    let mut n = due + every;
                    while n <= now {
                        n += every;
                    }
                    next = Some(n);
                }
            }
            next
        }))
    }

    /// Removes the SIGQUIT handler (runtime shutdown).
    pub(super) fn uninstall(&mut self) {
        if let Some((_, id)) = self.sigquit.take() {
            signal_hook_registry::unregister(id);
            DUMPING.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Runtimes whose SIGQUIT dump is installed now.
static DUMPING: AtomicUsize = AtomicUsize::new(0);

/// Registers, once per process, the action that gives SIGQUIT its default
/// back when no runtime dumps any more, if the default was what the
/// process had before.
fn install_fallback() {
    static FALLBACK: Once = Once::new();
    FALLBACK.call_once(|| {
        // SAFETY: `sigaction` with a null new action only reads the
        // current one into `old`, a zeroed, valid `sigaction`.
        let default = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGQUIT, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
        };
        if !default {
            // Ignored or handled before: the registry calls that action.
            return;
        }
        // SAFETY: the action loads an atomic and calls `signal(2)` and
        // `raise(3)`, all async-signal-safe; it allocates nothing and
        // takes no lock. The raised signal is blocked while the handler
        // runs, and delivered with the default action once it returns.
        let registered = unsafe {
            signal_hook_registry::register(libc::SIGQUIT, || {
                if DUMPING.load(Ordering::SeqCst) == 0 {
                    libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                    libc::raise(libc::SIGQUIT);
                }
            })
        };
        if let Err(e) = registered {
            eprintln!("gopark: {DUMP_ON_SIGQUIT}: SIGQUIT may not terminate the process once the runtime is gone: {e}");
        }
    });
}

/// Installs the SIGQUIT handler; `None` (and a line on stderr) if the
/// registry refuses.
fn install_sigquit(handle: &Handle) -> Option<(Arc<AtomicBool>, signal_hook_registry::SigId)> {
    install_fallback();
    // Counted before the action exists: the fallback must never see none
    // while this runtime's action runs.
    DUMPING.fetch_add(1, Ordering::SeqCst);
    let flag = Arc::new(AtomicBool::new(false));
    let io = handle.shared.io.clone();
    let raised = flag.clone();
    // SAFETY: the action only stores to an atomic and writes the eventfd
    // (`write(2)`), both async-signal-safe; it allocates nothing and takes
    // no lock.
    let registered = unsafe {
        signal_hook_registry::register(libc::SIGQUIT, move || {
            raised.store(true, Ordering::Release);
            io.wake_from_signal_handler();
        })
    };
    match registered {
        Ok(id) => Some((flag, id)),
        Err(e) => {
            DUMPING.fetch_sub(1, Ordering::SeqCst);
            eprintln!("gopark: {DUMP_ON_SIGQUIT}: cannot handle SIGQUIT: {e}");
            None
        }
    }
}

/// One schedtrace line: gauges as they are, counters since `last`.
///
/// It runs on the netpoll thread, where nothing may panic, so no figure
/// here can overflow: every difference saturates at 0 (a counter read as
/// an older value than the line before it would otherwise underflow) and
/// every sum saturates at `u64::MAX`.
fn line(age: Duration, now: &MetricsSnapshot, last: &MetricsSnapshot) -> String {
    let sum = |s: &MetricsSnapshot, f: fn(&super::WorkerSnapshot) -> u64| -> u64 {
        s.workers.iter().map(f).fold(0, u64::saturating_add)
    };
    let since = |now: u64, last: u64| now.saturating_sub(last);
    let localq: Vec<String> = now
        .workers
        .iter()
        .map(|w| w.local_queue_depth.to_string())
        .collect();
    let workers = now.workers.len();
    format!(
        "gopark {}ms: workers={workers} running={} parked={} searching={} handoffs=+{} globalq={} \
         localq=[{}] tasks={} spawned=+{} polls=+{} steals=+{} parks=+{} netpoll: wakeups=+{} events=+{} \
         by_workers=+{} standby={}ms inline=+{} stand_ins=+{} fds={} timers: armed=+{} fired=+{} cancelled=+{} \
         deadlines=+{} blocking={}/{}",
        age.as_millis(),
        workers.saturating_sub(now.parked_workers),
        now.parked_workers,
        now.searching_workers,
        since(now.blocked_worker_handoffs, last.blocked_worker_handoffs),
        now.global_queue_depth,
        localq.join(" "),
        now.alive_tasks,
        since(now.spawned_tasks, last.spawned_tasks),
        since(sum(now, |w| w.polls), sum(last, |w| w.polls)),
        since(sum(now, |w| w.steals), sum(last, |w| w.steals)),
        since(sum(now, |w| w.parks), sum(last, |w| w.parks)),
        since(now.netpoll_wakeups, last.netpoll_wakeups),
        since(now.netpoll_events, last.netpoll_events),
        since(now.netpoll_polls_by_workers, last.netpoll_polls_by_workers),
        now.netpoll_standby
            .saturating_sub(last.netpoll_standby)
            .as_millis(),
        since(now.netpoll_inline_polls, last.netpoll_inline_polls),
        since(now.netpoll_stand_ins, last.netpoll_stand_ins),
        now.registered_fds,
        since(now.timers_armed, last.timers_armed),
        since(now.timers_fired, last.timers_fired),
        since(now.timers_cancelled, last.timers_cancelled),
        since(now.deadlines_expired, last.deadlines_expired),
        now.blocking_threads,
        now.blocking_idle,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter that reads lower than on the line before (a lost update,
    /// or a worker's figures read mid-hand-off) must not panic the netpoll
    /// thread: the line says `+0`.
    #[test]
    fn a_counter_going_backwards_prints_zero() {
        let last = MetricsSnapshot {
            spawned_tasks: 10,
            netpoll_wakeups: 5,
            workers: vec![
                super::super::WorkerSnapshot {
                    polls: 7,
                    ..Default::default()
                };
                2
            ],
            ..Default::default()
        };
        let now = MetricsSnapshot {
            spawned_tasks: 9,
            workers: vec![Default::default(); 2],
            parked_workers: 3,
            ..Default::default()
        };
        let text = line(Duration::from_millis(1), &now, &last);
        assert!(text.contains("spawned=+0"), "{text}");
        assert!(text.contains("polls=+0"), "{text}");
        assert!(text.contains("wakeups=+0"), "{text}");
        assert!(text.contains("running=0"), "{text}");
    }
}
