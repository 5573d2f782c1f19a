//! The blocked-worker monitor: Go's `sysmon` retake and `handoffp`.
//!
//! A task that blocks its thread (a blocking syscall, `std::thread::sleep`,
//! a long loop that never awaits) holds up its worker, and with it every
//! task queued there. The netpoll thread, which wakes periodically while
//! any worker is running anyway, calls [`Shared::check_blocked`] after each
//! wake-up. A worker seen inside the *same* poll for [`BLOCKED_AFTER`] or
//! longer is handed off:
//!
//! 1. its slot is retaken ([`Slot::retake`](super::slot::Slot::retake)):
//!    the owner, when its poll finally returns, finds it out and leaves;
//! 2. its queued tasks, LIFO slot included, move to the injector;
//! 3. a new worker thread starts on a spare slot, so `worker_threads`
//!    threads keep running tasks, and a parked worker is woken if one is
//!    needed for the moved tasks.
//!
//! The thread that was stuck, when its poll returns, hands on anything it
//! queued meanwhile, gives its slot back as a spare and exits, so the
//! thread count returns to `worker_threads` (plus the netpoll thread).
//! There are as many spare slots as active ones: at most
//! `2 × worker_threads` worker threads exist at once. With every spare in
//! use, a stuck worker's queued tasks still move to the injector, but no
//! new thread starts until a stuck one returns.
//!
//! A replacement whose thread cannot start (`EAGAIN` from `clone(2)`:
//! `RLIMIT_NPROC`, a pids cgroup — the very limits that piling up threads
//! reaches) is owed, not lost: the stuck worker no longer counts as
//! running, and every later look ([`RETRY_START`] apart at most) tries
//! the start again until it succeeds (Go's `startm` in `handoffp` has no
//! such fallback: it throws). The stuck thread, once its poll returns,
//! gives its slot back as usual, so the retry finds a spare even with
//! every other one in use; and its exit frees the thread that the limit
//! refused.
//!
//! [`BLOCKED_AFTER`] is 10 ms, Go's limit for a goroutine running without
//! a pause before `sysmon` preempts it. Anything shorter would hand off
//! the polls of ordinary CPU-heavy tasks (a large JSON body, a
//! compression block) and start threads for nothing; the cost of a stuck
//! worker is bounded by it instead: a task queued behind one waits at most
//! `BLOCKED_AFTER` plus one monitor tick.

use std::time::{Duration, Instant};

use crossbeam_deque::Steal;

use super::Shared;
use crate::task::Notified;

/// How long a worker may stay inside one poll before it is handed off.
pub(crate) const BLOCKED_AFTER: Duration = Duration::from_millis(10);

/// How soon the monitor tries again to start a worker thread that could
/// not start.
pub(crate) const RETRY_START: Duration = Duration::from_millis(10);

/// What the monitor keeps between its looks (under its lock).
#[derive(Default)]
pub(crate) struct Monitor {
    /// Each slot's last look, by slot.
    pub(crate) seen: Vec<Seen>,
    /// Workers (by number) handed off with no thread started in their
    /// place: started again on a later look.
    owed: Vec<usize>,
}

impl Monitor {
    pub(crate) fn new(slots: usize) -> Monitor {
        Monitor {
            seen: vec![Seen::default(); slots],
            owed: Vec::new(),
        }
    }
}

/// What the monitor remembers of one slot between its looks.
#[derive(Clone, Copy, Default)]
pub(crate) struct Seen {
    /// The poll the slot's owner was inside, and since when.
    poll: Option<(u64, Instant)>,
}

impl Shared {
    /// Looks for workers stuck in one poll and hands them off. Returns when
    /// to look again: `None` if every worker is parked (none can get stuck
    /// before one is woken).
    pub(crate) fn check_blocked(&self, now: Instant) -> Option<Instant> {
        let mut monitor = self.monitor.lock();
        let mut next: Option<Instant> = None;
        if !monitor.owed.is_empty() {
            monitor.owed.retain(|&worker| !self.start_owed(worker));
            if !monitor.owed.is_empty() && !self.is_shutdown() {
                next = Some(now + RETRY_START);
            }
        }
        let Monitor { seen, owed } = &mut *monitor;
        for (i, slot) in self.slots.iter().enumerate() {
            // The netpoll thread's inline poll is the watchdog's to watch
            // (it runs this loop itself when it stands in).
            // (The poll first: a replacement's `set_worker` comes before
            // its first poll.)
            let poll = slot.current_poll();
            let inline = slot.worker() == self.num_workers();
            let Some(poll) = poll.filter(|_| !inline) else {
                seen[i].poll = None;
                continue;
            };
            let since = match seen[i].poll {
                Some((p, since)) if p == poll => since,
                _ => {
                    seen[i].poll = Some((poll, now));
                    now
                }
            };
            if now.duration_since(since) >= BLOCKED_AFTER {
                seen[i].poll = None;
                if let Some(worker) = self.hand_off_blocked(i, poll) {
                    owed.push(worker);
                    next = Some(next.map_or(now + RETRY_START, |n| n.min(now + RETRY_START)));
                }
            } else {
                let due = since + BLOCKED_AFTER;
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        if next.is_none() && self.idle.num_unparked() > 0 {
            // A running worker between polls may start one that blocks.
            next = Some(now + BLOCKED_AFTER);
        }
        next
    }

    /// Hands off the worker of slot `i`, stuck in poll `poll`. Returns
    /// the worker's number if it was handed off but no thread could start
    /// in its place: the caller owes it a start.
    fn hand_off_blocked(&self, i: usize, poll: u64) -> Option<usize> {
        let spare = self
            .slots
            .iter()
            .enumerate()
            .find_map(|(j, s)| s.take_spare().map(|local| (j, local)));
        let Some((j, local)) = spare else {
            // No spare slot: free the stuck worker's queue at least. Not
            // its LIFO task: the slot is not retaken, so its poll may have
            // ended just now, and between polls the owner takes that task
            // without a swap (`Slot::take_lifo_between_polls`).
            self.move_queued(i, false);
            return None;
        };
        if !self.slots[i].retake(poll) {
            // The poll ended just now: nothing to hand off.
            self.slots[j].make_spare(local);
            return None;
        }
        self.handoffs.add(1);
        self.move_queued(i, true);
        let worker = self.slots[i].worker();
        let start = super::Start { slot: j, worker };
        let Err(local) = self.start_thread(start, local) else {
            return None;
        };
        // No thread: the slot stays spare, and the stuck worker, which
        // leaves when it returns, is no longer counted as running; a later
        // look starts one in its place.
        self.slots[j].make_spare(local);
        let last = self.idle.worker_left();
        self.io.worker_parked(last);
        Some(worker)
    }

    /// Tries again to start a thread for `worker`, which was handed off
    /// with none started in its place. Returns `true` if it is settled: a
    /// thread started, or the runtime is shutting down.
    fn start_owed(&self, worker: usize) -> bool {
        if self.is_shutdown() {
            return true;
        }
        let spare = self
            .slots
            .iter()
            .enumerate()
            .find_map(|(j, s)| s.take_spare().map(|local| (j, local)));
        let Some((j, local)) = spare else {
            return false;
        };
        // Counted as running before it starts, as the workers built with
        // the runtime are: the new thread may park before this returns.
        self.idle.worker_returned();
        match self.start_thread(super::Start { slot: j, worker }, local) {
            Ok(()) => {
                self.io.worker_unparked();
                true
            }
            Err(local) => {
                self.slots[j].make_spare(local);
                let last = self.idle.worker_left();
                self.io.worker_parked(last);
                false
            }
        }
    }

    /// Starts a worker thread on a spare slot; gives its queue back if no
    /// thread could start.
    fn start_thread(
        &self,
        start: super::Start,
        local: crossbeam_deque::Worker<Notified>,
    ) -> Result<(), crossbeam_deque::Worker<Notified>> {
        #[cfg(test)]
        if take_one(&self.fail_starts) {
            return Err(local);
        }
        (self.start_worker)(start, local)
    }

    /// Moves slot `i`'s queued tasks, LIFO slot first if `lifo` (only on
    /// a retaken slot, whose owner is inside its poll), to the injector and
    /// wakes a worker for them.
    pub(super) fn move_queued(&self, i: usize, lifo: bool) {
        let slot = &self.slots[i];
        let mut tasks: Vec<Notified> = Vec::new();
        if lifo {
            tasks.extend(slot.take_lifo());
        }
        loop {
            match slot.stealer.steal() {
                Steal::Success(task) => tasks.push(task),
                Steal::Empty => break,
                Steal::Retry => {}
            }
        }
        if !tasks.is_empty() {
            self.injector.push_batch(&mut tasks);
            self.notify_parked();
        }
    }
}

/// Takes one from `n` unless it is zero; `true` if it did.
#[cfg(test)]
pub(crate) fn take_one(n: &std::sync::atomic::AtomicUsize) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    n.fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1))
        .is_ok()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use crate::{time, Builder};

    /// A worker stuck in a poll is handed off, but its replacement's
    /// thread cannot start (`EAGAIN`): once the stuck poll returns, the
    /// runtime still has a worker running tasks.
    #[test]
    fn a_failed_replacement_start_is_retried() {
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let shared = rt.handle().shared.clone();
        shared.fail_starts.store(1, Relaxed);
        rt.block_on(async {
            let stuck = crate::spawn(async {
                // Blocks its worker long past `BLOCKED_AFTER`.
                std::thread::sleep(Duration::from_millis(200));
            });
            stuck.await.unwrap();
            assert_eq!(shared.fail_starts.load(Relaxed), 0, "no start was tried");
            assert_eq!(shared.handoffs.get(), 1);
            for i in 0..10u32 {
                let v = time::timeout(Duration::from_secs(10), crate::spawn(async move { i }))
                    .await
                    .expect("a task spawned after the failed start never ran")
                    .unwrap();
                assert_eq!(v, i);
            }
        });
    }
}
