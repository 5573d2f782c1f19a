//! The netpoll thread's loop: sleep (blocking or standing by), harvest,
//! look after the workers, fire timers, move a paused clock, deliver.
//!
//! # One turn of the loop
//!
//! Each turn builds one batch of wakers and hands it to the scheduler
//! whole ([`PollHost::deliver`]), in this order:
//!
//! 1. **Sleep and harvest.** Blocking in `epoll_wait` until the nearest
//!    timer (or the next look at the workers), or standing by on the
//!    mode's condition variable while running workers look at epoll
//!    themselves (see [`mode`](super::mode)). The events found become
//!    readiness on their `PollDesc` halves, and the wakers of the tasks
//!    parked there go into the batch, in the order epoll returned them.
//! 2. **Look after the workers.** The scheduler's monitor
//!    ([`PollHost::check_blocked`], Go's `sysmon`) hands off a worker
//!    stuck in one poll and says when to look again; the runtime layer's
//!    hook (the schedtrace line, a dump asked for by SIGQUIT) runs too.
//!    Their "look again at" bounds the next sleep.
//! 3. **Fire timers.** Every timer due by the runtime's clock adds its
//!    waker after the I/O ones (a sleep's), or expires its socket
//!    deadline on the spot (a deadline's). A task woken by both an event
//!    and its deadline is woken once: the half's state machine decides.
//! 4. **Move a paused clock.** With the clock paused and the batch still
//!    empty, [`virtual_time::jump`] moves the clock to the next timer if
//!    the runtime is idle and epoll, drained, holds nothing for a waiting
//!    task; the timers it fires make the batch. Only an empty batch lets
//!    the clock move: a woken task may still arm an earlier timer or do
//!    I/O, and time must not pass before it has run.
//! 5. **Deliver.** If every worker is parked and the thread blocked to
//!    get here, it polls the first task of the batch itself, on a spare
//!    slot, watched by its watchdog (see [`watch`](super::watch)), after
//!    handing the rest to the workers; while the run's own looks at epoll
//!    find more, for a short span, it runs that too (see
//!    `Netpoller::run_inline`). Otherwise the first task goes
//!    straight to one parked worker, the rest to the injector
//!    (`Shared::hand_off`). When the
//!    thread stands by next, that happens at once. When it blocks next, it
//!    happens as the very last thing before `epoll_wait`, after the mode
//!    says `Blocking`: the worker it wakes most often lands on this CPU
//!    and runs only once this thread sleeps (see
//!    [`Netpoller::sleep_blocking`]).
//!
//! # A paused clock
//!
//! A paused clock's timers never come due by waiting, so the thread never
//! sleeps for one: it looks again every [`virtual_time::IDLE_LOOK`] whether the
//! runtime went idle, and the last worker to park wakes it at once
//! (`Netpoller::worker_parked`). A turn that finds the runtime idle moves
//! the clock in step 4; the tasks its timers wake run, and the runtime's
//! next idle moment moves it again, so timers fire in deadline order and
//! each wakes its tasks before time passes further. The rule and the idle
//! check are in [`virtual_time`].
//!
//! # Failures
//!
//! An `epoll_wait` that fails is reported on stderr (1, 2, 4, 8, …
//! failures) and followed by a pause, so a persistent error cannot make
//! the loop spin; nothing on this thread panics on a syscall error.

use std::io;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::mode::{Blocking, StandBy};
use super::watch::End;
use super::{
    sys, InlineStep, Looker, Netpoller, PollHost, EVENTS, STANDBY_TICK_ALL, STANDBY_TICK_PARTIAL,
    WATCH_TICK,
};
use crate::loom::Ordering;
use crate::time::virtual_time;

/// Work the runtime layer does on the netpoll thread after each wake-up;
/// returns when it wants to run next.
pub(crate) type Hook = Box<dyn FnMut(Instant) -> Option<Instant> + Send>;

/// Pause after an `epoll_wait` that failed, so a persistent error cannot
/// turn the loop into a spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// A blocking sleep longer than this is a quiet spell: inline runs are
/// not coming in a row, and the watchdog's timer is set afresh between
/// them (see `Watch::prime` and `Watch::settle`).
const QUIET: Duration = Duration::from_millis(1);

/// How many blocking sleeps in a row must have been shorter than
/// [`REPRIME`] before the thread arms the watchdog's timer ahead of the
/// next (`Watch::prime`). A sleep that outlasts what is left of the timer
/// fires it for nothing, a wake-up of the watchdog; a streak of short
/// ones says the next is likely short too. Requests that trickle in at
/// random rarely make one (at 100 a second, one time in 1,700), and their
/// runs arm the timer as they begin instead; requests that come steadily,
/// or in a burst, do.
const PRIME_AFTER: u32 = 8;

/// How old the timer's last arming ahead may be before the thread arms
/// it again before a sleep: half the inline limit. A younger one has more
/// than this left, longer than any sleep of a streak: it is kept, and the
/// syscall saved (on a machine whose client shares the server's CPU, the
/// work between the answer and the sleep delays the client).
const REPRIME: Duration = Duration::from_millis(5);

/// An inline run takes looks of its own only after a blocking sleep
/// shorter than this: events that come further apart would not be there
/// for a look, which would then only stand between the answer and the
/// next sleep (see [`REPRIME`]). A ping-pong inside the runtime sleeps
/// microseconds.
const LOOK_AFTER: Duration = Duration::from_micros(250);

/// Most looks at epoll an inline run takes of its own, unless it follows
/// a sleep of more than [`LOOK_AFTER`] (see `Netpoller::run_inline`).
const INLINE_LOOKS: usize = 64;

/// How long after its start an inline run may still take a look of its
/// own: about what a timer that comes due meanwhile may be late by (the
/// task the last look found, and its LIFO chain, still run after it).
const INLINE_SPAN: Duration = Duration::from_micros(100);

/// Most full looks at epoll before a paused clock's jump: past that,
/// events arrive as fast as they are taken, and the clock waits.
const DRAIN_LOOKS: usize = 64;

impl Netpoller {
    /// The netpoll thread's loop; returns at shutdown. `hook`, if any, is
    /// called after every wake-up (the runtime layer's periodic work: the
    /// schedtrace line, a dump asked for by a signal) and returns when it
    /// wants to be called next.
    pub(crate) fn run(&self, host: &dyn PollHost, hook: Option<Hook>) {
        *self.hook.lock() = hook;
        let mut turns = Turns::new(self.inline.is_some());
        while !self.is_shutdown() {
            self.turn(host, &mut turns);
        }
        turns.finish(host);
        // It may hold the runtime's handle: gone with the loop.
        drop(self.hook.lock().take());
    }

    /// The watchdog thread's loop (see [`watch`](super::watch)); returns
    /// at shutdown. Sleeps on the inline timer; when it fires with the
    /// netpoll thread still inside its poll, retakes the poll's slot and
    /// runs the netpoll loop until the thread is back.
    pub(crate) fn run_watchdog(&self, host: &dyn PollHost) {
        let Some(inline) = &self.inline else {
            return;
        };
        while !inline.watch.is_closed() {
            inline.watch.sleep();
            let Some(slot) = inline.watch.take_over() else {
                continue;
            };
            self.stats.stand_ins.add(1);
            host.retake_inline(slot);
            // Never inline itself: nobody would watch it.
            let mut turns = Turns::new(false);
            while !inline.watch.stand_in_done() && !self.is_shutdown() {
                self.turn(host, &mut turns);
            }
            turns.finish(host);
            inline.watch.hand_back();
        }
    }

    /// One turn of the loop (see the module docs).
    fn turn(&self, host: &dyn PollHost, turns: &mut Turns) {
        let Turns {
            events,
            wakers,
            errors,
            busy,
            check,
            inline,
            last_sleep,
            short_sleeps,
            primed,
            looked,
        } = turns;
        // One reading of the clock after the sleep serves the whole turn
        // (each costs tens of nanoseconds; a ping-pong inside one runtime
        // takes a turn per message).
        let now = if *busy {
            *busy = self.stand_by(host, *check, events, wakers, errors);
            Instant::now()
        } else {
            // After a quiet spell, the watchdog's timer is set before the
            // thread sleeps again: for the inline limit from now, if the
            // last sleeps were all short and the last such arming is half
            // the limit old (a sparse request's run then finds it armed,
            // see `Watch::prime`), and disarmed if they were not (see
            // `Watch::settle`).
            let slept = Instant::now();
            if *inline && *last_sleep > QUIET {
                if let Some(inline) = &self.inline {
                    if *short_sleeps < PRIME_AFTER {
                        inline.watch.settle();
                        *primed = None;
                    } else if primed.is_none_or(|at| slept.saturating_duration_since(at) >= REPRIME)
                    {
                        inline.watch.prime();
                        *primed = Some(slept);
                    }
                }
            }
            let res = self.sleep_blocking(host, *check, slept, events, wakers);
            let now = Instant::now();
            *last_sleep = now.saturating_duration_since(slept);
            *short_sleeps = if *last_sleep < REPRIME {
                short_sleeps.saturating_add(1)
            } else {
                0
            };
            match res {
                Ok(n) => *busy = n > 0 && !wakers.is_empty() && host.active_workers() > 0,
                Err(e) => errors.report(e),
            }
            now
        };
        // With no look due (the last found nothing to watch or owe) and
        // every worker parked, no worker can be stuck: the look is skipped
        // (it reads every slot's line).
        if check.is_some() || host.active_workers() > 0 {
            *check = host.check_blocked(now);
        }
        if let Some(hook) = self.hook.lock().as_mut() {
            if let Some(next) = hook(now) {
                *check = Some(check.map_or(next, |c| c.min(next)));
            }
        }
        self.time.fire(wakers);
        if wakers.is_empty() {
            self.auto_advance(host, events, wakers);
        }
        if wakers.is_empty() {
            return;
        }
        if *busy {
            // Standing by next: deliver now.
            host.deliver(wakers);
        } else if *inline && host.active_workers() == 0 {
            // Every worker parked: run the first task here (see
            // `run_inline`).
            // After a sleep of more than a few hundred microseconds the
            // run is likely a lone request's: its looks would find nothing
            // (see `run_inline`).
            let looks = if *last_sleep < LOOK_AFTER {
                INLINE_LOOKS
            } else {
                0
            };
            self.run_inline(host, wakers, events, looked, looks, now);
        }
        // Blocking next, not inline: the batch is delivered at the last
        // moment before `epoll_wait` (see `sleep_blocking`).
    }

    /// Runs the batch's first task on this thread, watched by the
    /// watchdog, and hands the rest to the workers
    /// ([`PollHost::run_inline`]). If the watchdog stood in meanwhile,
    /// waits until it gives the loop back. `now` is the turn's reading of
    /// the clock, when the run's watch begins.
    ///
    /// The run goes on with looks at epoll of its own while they find
    /// work and every worker stays parked, up to `looks` looks and
    /// [`INLINE_SPAN`] after it began: a ping-pong inside the runtime,
    /// each message making the next ready, then costs one look per
    /// message rather than a turn of this loop. Past the bounds the loop
    /// takes its turn (timers fire, the monitor looks): a timer that came
    /// due meanwhile is late by the span and the polls after the last look
    /// (the task it found and its LIFO chain; a poll that lasts is the
    /// watchdog's to notice). A run after a sleep of more than
    /// [`LOOK_AFTER`] takes no look (`looks` is 0): a lone request's would
    /// find nothing, and a ping-pong that begins then is found by the next
    /// run. Its looks are a worker's ([`Looker::Worker`]): the wake eventfd
    /// and the watch timer stay for the loop.
    fn run_inline(
        &self,
        host: &dyn PollHost,
        wakers: &mut Vec<Waker>,
        events: &mut Vec<sys::Event>,
        looked: &mut Vec<Waker>,
        looks: usize,
        now: Instant,
    ) {
        let Some(inline) = &self.inline else {
            host.deliver(wakers);
            return;
        };
        let until = now + INLINE_SPAN;
        let mut left = looks;
        host.run_inline(wakers, &mut |step| match step {
            InlineStep::Begin { slot } => {
                self.stats.inline_polls.add(1);
                inline.watch.begin(slot, now);
                true
            }
            InlineStep::Next => {
                let go = inline.watch.next();
                if go {
                    self.stats.inline_polls.add(1);
                }
                go
            }
            InlineStep::Look => {
                // A worker runs (the run handed it work): the workers
                // look at epoll from now on, and this thread goes back to
                // its loop rather than compete with them for the CPUs.
                if left == 0 || host.active_workers() > 0 || Instant::now() >= until {
                    return false;
                }
                left -= 1;
                self.stats.inline_looks.add(1);
                match self.poll(events, Some(Duration::ZERO), looked, Looker::Worker) {
                    Ok(n) => self.stats.inline_look_events.add(n as u64),
                    // The loop's own `epoll_wait` fails the same way, and
                    // reports it.
                    Err(_) => return false,
                }
                let found = !looked.is_empty();
                // On this thread, with the run's slot its worker's: into
                // the slot, as a worker's look schedules.
                super::wake_all(looked);
                found
            }
            InlineStep::End => {
                if inline.watch.end() == End::StandingIn {
                    // The stand-in may be asleep in `epoll_wait`.
                    self.wake();
                    inline.watch.wait_handed_back();
                }
                true
            }
        });
        // With a paused clock, the run may have left every task blocked
        // on a timer, and no worker parked to say so (the last one to park
        // wakes this thread, see `Netpoller::worker_parked`): look now
        // whether the clock may jump, not after the idle look's pause.
        if virtual_time::may_jump_after_park(&self.time, host.active_workers() == 0) {
            self.wake();
        }
    }

    /// Stands by for a tick, then looks at epoll itself if no worker did
    /// meanwhile. Returns whether to stand by again.
    fn stand_by(
        &self,
        host: &dyn PollHost,
        check: Option<Instant>,
        events: &mut Vec<sys::Event>,
        wakers: &mut Vec<Waker>,
        errors: &mut ErrorReport,
    ) -> bool {
        let long = host.active_workers() == host.num_workers();
        let tick = if long {
            STANDBY_TICK_ALL
        } else {
            STANDBY_TICK_PARTIAL
        };
        let since = self.now_nanos();
        let real_now = Instant::now();
        let until = {
            let mut wait = tick;
            if let Some(check) = check {
                wait = wait.min(check.saturating_duration_since(real_now));
            }
            let mut timers = self.time.lock();
            if self.time.is_paused() {
                // Its timers never come due by waiting (see
                // `sleep_blocking`).
                timers.set_sleeping(None);
            } else {
                // Timers read the runtime's clock, which may run ahead of
                // the real one (after a pause).
                let clock_now = self.time.now();
                if let Some(next) = timers.next_deadline() {
                    wait = wait.min(next.saturating_duration_since(clock_now));
                }
                timers.set_sleeping(Some(Some(clock_now + wait)));
            }
            real_now + wait
        };
        let slept = real_now;
        let ended = self.mode.stand_by(|| host.active_workers(), until, long);
        self.time.lock().set_sleeping(None);
        if ended == StandBy::NoWorkers {
            return false;
        }
        self.stats.wakeups.add(1);
        self.stats.standby_ns.add(slept.elapsed().as_nanos() as u64);
        // Relaxed: see `poll_now`; a stale value costs one look too many.
        if self.last_worker_poll.load(Ordering::Relaxed) < since {
            // No worker looked since we went to sleep: look for them.
            self.stats.polls.add(1);
            match self.poll(events, Some(Duration::ZERO), wakers, Looker::Thread) {
                Ok(n) => self.stats.events.add(n as u64),
                Err(e) => errors.report(e),
            }
        }
        host.active_workers() > 0
    }

    /// Delivers `wakers` (the batch of the last wake-up), then blocks in
    /// `epoll_wait` until an event, the nearest timer, the next look for a
    /// stuck worker (`check`), or a wake-up, collecting the new batch in
    /// `wakers`. Returns the number of events.
    ///
    /// The batch goes out as the very last thing before `epoll_wait`, with
    /// every lock and timer computation done: the worker it wakes is most
    /// often put on this thread's CPU, and there it runs only once this
    /// thread blocks — the sooner the better. (Measured with `perf sched
    /// timehist`: between the wake-up and the block, the idle CPU next door
    /// would pull the worker over, and a cross-CPU start costs tens of
    /// microseconds on this kind of machine.)
    fn sleep_blocking(
        &self,
        host: &dyn PollHost,
        check: Option<Instant>,
        now: Instant,
        events: &mut Vec<sys::Event>,
        wakers: &mut Vec<Waker>,
    ) -> io::Result<usize> {
        let timeout = {
            let mut timers = self.time.lock();
            let mut timeout = check.map(|c| c.saturating_duration_since(now));
            if self.time.is_paused() {
                // A paused clock's timers never come due by waiting: look
                // again shortly whether the runtime went idle, and let a
                // new timer wake nobody.
                timers.set_sleeping(None);
                timeout = Some(at_most(timeout, virtual_time::IDLE_LOOK));
            } else {
                let next = timers.next_deadline();
                // A timer earlier than this one must wake us.
                timers.set_sleeping(Some(next));
                if let Some(d) = next {
                    let due = d.saturating_duration_since(self.time.now());
                    timeout = Some(at_most(timeout, due));
                }
            }
            if !wakers.is_empty() {
                // A worker is about to run the batch: watch it.
                timeout = Some(at_most(timeout, WATCH_TICK));
            }
            timeout
        };
        let all_parked = || host.active_workers() == 0;
        // Blocking longer than a look at the workers takes: unwatched.
        let unwatched = timeout.is_none_or(|t| t > WATCH_TICK);
        let blocking = self.mode.begin_blocking(unwatched, all_parked);
        if !wakers.is_empty() {
            host.deliver(wakers);
        }
        let res = match blocking {
            Blocking::Skip => Ok(0),
            Blocking::Sleep | Blocking::Watch => {
                let timeout = match blocking {
                    Blocking::Watch => Some(at_most(timeout, WATCH_TICK)),
                    _ => timeout,
                };
                let res = self.poll(events, timeout, wakers, Looker::Thread);
                self.mode.end_blocking();
                self.stats.wakeups.add(1);
                self.stats.polls.add(1);
                if let Ok(n) = res {
                    self.stats.events.add(n as u64);
                }
                res
            }
        };
        self.time.lock().set_sleeping(None);
        res
    }

    /// Virtual time: with the clock paused and the runtime idle (every
    /// task blocked, see [`PollHost::is_idle`]) and nothing ready in epoll
    /// for a waiting task, the clock jumps to the next timer, which fires
    /// (the decision is [`virtual_time::jump`]'s).
    fn auto_advance(
        &self,
        host: &dyn PollHost,
        events: &mut Vec<sys::Event>,
        wakers: &mut Vec<Waker>,
    ) {
        // While an inline run goes on, the runtime is not idle, even
        // between two of its polls, when nothing else shows it (a task its
        // own look found may be in hand): a stand-in's turn must not move
        // the clock.
        let no_run = || self.inline.as_ref().is_none_or(|i| i.watch.is_idle());
        virtual_time::jump(
            &self.time,
            || no_run() && host.is_idle(),
            |wakers| self.drain_ready(events, wakers),
            wakers,
        );
    }

    /// Takes every event epoll holds now, without waiting, collecting the
    /// wakers of the tasks they make ready. Returns `false` if epoll could
    /// not be drained (an error, or events arriving as fast as they are
    /// taken).
    fn drain_ready(&self, events: &mut Vec<sys::Event>, wakers: &mut Vec<Waker>) -> bool {
        // Each look takes what it returns off epoll's ready list (edges
        // once; the level-triggered eventfd is drained), so a look that
        // comes back with room to spare has seen everything.
        for _ in 0..DRAIN_LOOKS {
            if self
                .poll(events, Some(Duration::ZERO), wakers, Looker::Thread)
                .is_err()
            {
                return false;
            }
            if events.len() < events.capacity() {
                return true;
            }
        }
        false
    }
}

/// What one runner of the loop (the netpoll thread, or the watchdog
/// standing in) keeps from turn to turn.
struct Turns {
    events: Vec<sys::Event>,
    /// The batch of the last wake-up, not yet delivered.
    wakers: Vec<Waker>,
    errors: ErrorReport,
    /// Set when events woke us although a worker was running: the
    /// workers can look for themselves, so stand by.
    busy: bool,
    /// When to look for a stuck worker next.
    check: Option<Instant>,
    /// Whether this runner polls a batch's first task itself when every
    /// worker is parked.
    inline: bool,
    /// How long its last blocking sleep lasted.
    last_sleep: Duration,
    /// How many blocking sleeps in a row lasted less than [`REPRIME`]
    /// (see [`PRIME_AFTER`]).
    short_sleeps: u32,
    /// When the thread last armed the watchdog's timer ahead of a sleep,
    /// if it has not disarmed it since.
    primed: Option<Instant>,
    /// What an inline run's own looks at epoll found (kept: it allocates
    /// once).
    looked: Vec<Waker>,
}

impl Turns {
    fn new(inline: bool) -> Turns {
        Turns {
            events: Vec::with_capacity(EVENTS),
            wakers: Vec::new(),
            errors: ErrorReport::default(),
            busy: false,
            check: None,
            inline,
            last_sleep: Duration::ZERO,
            short_sleeps: 0,
            primed: None,
            looked: Vec::new(),
        }
    }

    /// Delivers what is left of the batch as the runner leaves the loop.
    fn finish(mut self, host: &dyn PollHost) {
        if !self.wakers.is_empty() {
            host.deliver(&mut self.wakers);
        }
    }
}

/// Reports `epoll_wait` failures on stderr without flooding it, and pauses
/// after each so the loop never spins on a persistent error.
#[derive(Default)]
struct ErrorReport {
    count: u64,
}

impl ErrorReport {
    fn report(&mut self, e: io::Error) {
        self.count += 1;
        if self.count.is_power_of_two() {
            eprintln!(
                "gopark: netpoll: epoll_wait failed ({e}); {} failure(s) so far, retrying",
                self.count
            );
        }
        std::thread::sleep(ERROR_PAUSE);
    }
}

/// `timeout`, or `limit` if that is sooner (`None`: no timeout).
fn at_most(timeout: Option<Duration>, limit: Duration) -> Duration {
    timeout.map_or(limit, |t| t.min(limit))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::task::{Poll, Waker};
    use std::time::Duration;

    use super::*;
    use crate::time::heap::Action;

    /// A scheduler with every task blocked.
    struct IdleHost;

    impl PollHost for IdleHost {
        fn active_workers(&self) -> usize {
            0
        }
        fn num_workers(&self) -> usize {
            1
        }
        fn deliver(&self, wakers: &mut Vec<Waker>) {
            wakers.clear();
        }
        fn check_blocked(&self, _: Instant) -> Option<Instant> {
            None
        }
        fn is_idle(&self) -> bool {
            true
        }
        fn run_inline(&self, wakers: &mut Vec<Waker>, _: &mut dyn FnMut(InlineStep) -> bool) {
            wakers.clear();
        }
        fn retake_inline(&self, _: usize) {}
    }

    /// Seventeen descriptors ready in epoll, in registration order:
    /// sixteen that nobody waits for (their first, writable edge), more
    /// than a small look holds, and then one whose reader is parked. The
    /// clock may not jump past the last.
    #[test]
    fn auto_advance_sees_the_event_behind_many_others() {
        let np = Netpoller::new(false).unwrap();
        np.time.pause();
        let t0 = np.time.now();
        let hour = Duration::from_secs(3600);
        let _timer = np.time.insert(t0 + hour, Action::Wake(None)).unwrap();
        let mut keep = Vec::new();
        for _ in 0..16 {
            let (a, b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let pd = np.register(a.as_raw_fd()).unwrap();
            keep.push((a, b, pd));
        }
        let (r, mut w) = UnixStream::pair().unwrap();
        r.set_nonblocking(true).unwrap();
        let pd = np.register(r.as_raw_fd()).unwrap();
        // The reader tried, got EAGAIN, and parked.
        let Poll::Ready(Ok(tick)) = pd.read.poll_ready(Waker::noop()) else {
            panic!("a new half starts ready");
        };
        pd.read.clear_ready(tick);
        assert!(pd.read.poll_ready(Waker::noop()).is_pending());
        w.write_all(b"x").unwrap();

        let mut wakers = Vec::new();
        let mut events = Vec::with_capacity(8);
        np.auto_advance(&IdleHost, &mut events, &mut wakers);
        assert_eq!(
            np.time.now(),
            t0,
            "the clock jumped with a parked reader's byte in epoll"
        );
        assert_eq!(wakers.len(), 1, "the parked reader is woken");
        // With nothing left in epoll, the clock jumps.
        wakers.clear();
        np.auto_advance(&IdleHost, &mut events, &mut wakers);
        assert_eq!(np.time.now(), t0 + hour);
        drop(keep);
    }
}
