//! Model tests of a PollDesc half (run with `RUSTFLAGS="--cfg loom"`).
//!
//! Each model checks one race of the state machine described in
//! `poll_desc.rs` under every interleaving loom explores:
//! readiness ∥ park, close ∥ park, deadline fire ∥ deadline reset.

use std::sync::Arc;
use std::task::{Poll, Wake, Waker};
use std::time::{Duration, Instant};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::half::{Half, HalfError};

/// A waker that counts its wake-ups.
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    (count, waker)
}

/// Parks on a half that is not ready (the edge was used up).
fn drained_half() -> Half {
    let half = Half::new();
    let Poll::Ready(Ok(tick)) = half.poll_ready(Waker::noop()) else {
        unreachable!("a new half starts ready")
    };
    half.clear_ready(tick);
    half
}

#[test]
fn readiness_and_park_never_lose_the_edge() {
    loom::model(|| {
        let half = Arc::new(drained_half());
        let (count, waker) = counting_waker();

        let notifier = {
            let half = half.clone();
            thread::spawn(move || {
                let mut wakers = Vec::new();
                half.notify(false, &mut wakers);
                wakers.into_iter().for_each(Waker::wake);
            })
        };
        let parked = half.poll_ready(&waker);
        notifier.join().unwrap();

        match parked {
            // It saw the edge: it retries its syscall.
            Poll::Ready(res) => assert!(res.is_ok()),
            // It parked: the notifier must have woken it, exactly once.
            Poll::Pending => assert_eq!(count.0.load(Ordering::SeqCst), 1),
        }
    });
}

#[test]
fn two_edges_wake_a_parked_task_once() {
    loom::model(|| {
        let half = Arc::new(drained_half());
        let (count, waker) = counting_waker();
        assert!(half.poll_ready(&waker).is_pending());

        let threads: Vec<_> = (0..2)
            .map(|_| {
                let half = half.clone();
                thread::spawn(move || {
                    let mut wakers = Vec::new();
                    half.notify(false, &mut wakers);
                    wakers.into_iter().for_each(Waker::wake);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "no double wake-up");
    });
}

#[test]
fn close_wakes_a_parking_task_with_an_error() {
    loom::model(|| {
        let half = Arc::new(drained_half());
        let (count, waker) = counting_waker();

        let closer = {
            let half = half.clone();
            thread::spawn(move || {
                let mut wakers = Vec::new();
                half.close(&mut wakers);
                wakers.into_iter().for_each(Waker::wake);
            })
        };
        let first = half.poll_ready(&waker);
        closer.join().unwrap();

        match first {
            Poll::Ready(res) => assert_eq!(res, Err(HalfError::Closed)),
            Poll::Pending => {
                assert_eq!(
                    count.0.load(Ordering::SeqCst),
                    1,
                    "close must wake the parked task"
                );
                // The retry after the wake-up fails instead of parking again.
                assert_eq!(half.poll_ready(&waker), Poll::Ready(Err(HalfError::Closed)));
            }
        }
    });
}

#[test]
fn stale_deadline_timer_never_times_out_a_reset_half() {
    loom::model(|| {
        let half = Arc::new(drained_half());
        let now = Instant::now();
        let mut wakers = Vec::new();
        // Arm a deadline: sequence 1.
        half.set_deadline(
            Some(now + Duration::from_secs(1)),
            now,
            |_| {},
            |_| None,
            &mut wakers,
        );
        let armed = half.deadline_seq();

        let timer = {
            let half = half.clone();
            thread::spawn(move || {
                let mut wakers = Vec::new();
                half.fire_deadline(armed, &mut wakers);
                wakers.into_iter().for_each(Waker::wake);
            })
        };
        // Meanwhile the application clears the deadline.
        half.set_deadline(None, now, |_| {}, |_| None, &mut wakers);
        timer.join().unwrap();

        // Whichever came first, the cleared deadline wins.
        assert!(!half.is_timed_out(), "a stale timer timed out the half");
    });
}

#[test]
fn deadline_fire_wakes_a_parking_task() {
    loom::model(|| {
        let half = Arc::new(drained_half());
        let now = Instant::now();
        let mut wakers = Vec::new();
        half.set_deadline(
            Some(now + Duration::from_secs(1)),
            now,
            |_| {},
            |_| None,
            &mut wakers,
        );
        let armed = half.deadline_seq();
        let (count, waker) = counting_waker();

        let timer = {
            let half = half.clone();
            thread::spawn(move || {
                let mut wakers = Vec::new();
                half.fire_deadline(armed, &mut wakers);
                wakers.into_iter().for_each(Waker::wake);
            })
        };
        let first = half.poll_ready(&waker);
        timer.join().unwrap();
        match first {
            Poll::Ready(res) => assert_eq!(res, Err(HalfError::TimedOut)),
            Poll::Pending => assert_eq!(count.0.load(Ordering::SeqCst), 1),
        }
    });
}

/// The model catches a seeded bug: a notifier that sets `READY` with a
/// plain store and checks for waiters with a separate load (instead of one
/// read-modify-write) loses the wake-up in some interleaving.
#[test]
#[should_panic]
fn seeded_bug_split_notify_loses_wakeup() {
    loom::model(|| {
        let half = Arc::new(drained_half());
        let (count, waker) = counting_waker();
        let notifier = {
            let half = half.clone();
            thread::spawn(move || {
                let mut wakers = Vec::new();
                half.notify_split_for_test(&mut wakers);
                wakers.into_iter().for_each(Waker::wake);
            })
        };
        let parked = half.poll_ready(&waker);
        notifier.join().unwrap();
        if parked.is_pending() {
            assert_eq!(count.0.load(Ordering::SeqCst), 1, "lost wake-up");
        }
    });
}

mod wake_signal {
    use std::sync::Arc;

    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::thread;

    use crate::netpoll::wake::WakeSignal;

    /// Two wakers and the netpoll thread draining once: at most one byte is
    /// ever outstanding, and a wake-up raised after the drain is not lost.
    #[test]
    fn at_most_one_byte_outstanding_and_none_lost() {
        loom::model(|| {
            let sig = Arc::new(WakeSignal::new());
            // The eventfd's counter, and the most it ever held.
            let bytes = Arc::new(AtomicUsize::new(0));
            let max = Arc::new(AtomicUsize::new(0));
            let write = |bytes: &AtomicUsize, max: &AtomicUsize| {
                let now = bytes.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
            };
            let wakers: Vec<_> = (0..2)
                .map(|_| {
                    let (sig, bytes, max) = (sig.clone(), bytes.clone(), max.clone());
                    thread::spawn(move || {
                        if sig.raise() {
                            write(&bytes, &max);
                        }
                    })
                })
                .collect();
            // The netpoll thread: if a byte is there, drain it, then lower.
            let drained = bytes.swap(0, Ordering::SeqCst);
            if drained > 0 {
                sig.lower();
            }
            for w in wakers {
                w.join().unwrap();
            }
            assert!(
                max.load(Ordering::SeqCst) <= 1,
                "two wake bytes outstanding"
            );
            // Every raise is covered: by the byte drained, or by a byte (or a
            // raised flag) still there for the next epoll_wait.
            let pending = bytes.load(Ordering::SeqCst);
            assert!(drained + pending >= 1, "wake-up lost");
            if pending == 0 {
                // Nothing left to drain: the flag must be down, or the next
                // wake-up would write no byte and be lost.
                assert!(
                    sig.raise(),
                    "flag left raised with no byte behind it (drained {drained})"
                );
            }
        });
    }
}

// ---------------------------------------------------------------------
// The netpoll thread's mode (`mode.rs`): never is every worker parked
// while the thread stands by. A thread that stands by with nobody to end
// its wait shows up as a deadlock, which loom reports (a model has no
// clock, so the standby tick never ends the wait by itself).
// ---------------------------------------------------------------------

use super::mode::{Blocking, ModeMachine, StandBy};
use crate::scheduler::idle::Idle;

/// The netpoll thread decides to stand by while `workers` workers park
/// at once; each worker publishes its park in `Idle`, then tells the mode.
fn standby_races_parking(workers: usize) {
    loom::model(move || {
        let idle = Arc::new(Idle::new(workers));
        let mode = Arc::new(ModeMachine::new());
        let parkers: Vec<_> = (0..workers)
            .map(|w| {
                let (idle, mode) = (idle.clone(), mode.clone());
                thread::spawn(move || {
                    let parked = idle.transition_worker_to_parked(w, false, None);
                    mode.worker_parked(parked.last_unparked);
                })
            })
            .collect();
        // Whatever it decides, it returns: it saw no workers, or the last
        // one to park ended its standby.
        let ended = mode.stand_by(|| idle.num_unparked(), Instant::now(), false);
        for p in parkers {
            p.join().unwrap();
        }
        assert!(matches!(ended, StandBy::Ended | StandBy::NoWorkers));
        assert!(!mode.workers_should_poll(), "standby over");
    });
}

#[test]
fn the_last_worker_to_park_ends_standby() {
    standby_races_parking(1);
}

#[test]
fn the_last_of_two_workers_to_park_ends_standby() {
    standby_races_parking(2);
}

/// The design this replaced: the thread counted workers before taking the
/// lock, and the worker read the mode without it. Loom finds the
/// interleaving where the worker parks between the thread's count and its
/// standby, sees no standby yet, and leaves the thread waiting for good.
#[test]
#[should_panic(expected = "deadlock")]
fn seeded_bug_counting_outside_the_lock_strands_the_thread() {
    loom::model(|| {
        let idle = Arc::new(Idle::new(1));
        let mode = Arc::new(ModeMachine::new());
        let parker = {
            let (idle, mode) = (idle.clone(), mode.clone());
            thread::spawn(move || {
                let parked = idle.transition_worker_to_parked(0, false, None);
                mode.worker_parked_unlocked_for_test(parked.last_unparked);
            })
        };
        let _ = mode.stand_by_counting_first_for_test(idle.num_unparked());
        parker.join().unwrap();
    });
}

/// A wake-up (a new earliest timer, shutdown) reaches the thread whatever
/// mode it is about to enter: blocking sees it as `Skip` or gets the
/// eventfd byte; an awake thread finds it pending.
#[test]
fn a_wake_up_is_never_lost() {
    use super::mode::Wake;
    use loom::sync::atomic::AtomicBool;

    loom::model(|| {
        let mode = Arc::new(ModeMachine::new());
        let eventfd = Arc::new(AtomicBool::new(false));
        let waker = {
            let (mode, eventfd) = (mode.clone(), eventfd.clone());
            thread::spawn(move || {
                if mode.wake() == Wake::Eventfd {
                    eventfd.store(true, Ordering::SeqCst);
                }
            })
        };
        let slept = mode.begin_blocking(false, || true) == Blocking::Sleep;
        waker.join().unwrap();
        if slept {
            // The wake-up came after the thread committed to block: it must
            // have been told through the eventfd, or else it is still
            // pending for the thread's next turn.
            let told = eventfd.load(Ordering::SeqCst);
            mode.end_blocking();
            assert!(told, "a wake-up sent while blocking must write the eventfd");
        } else {
            // `Skip`: the wake-up was seen before sleeping.
            assert_eq!(
                mode.begin_blocking(false, || true),
                Blocking::Sleep,
                "consumed once"
            );
        }
    });
}

/// A worker woken from outside (a spawn from `block_on`) while the thread
/// goes to block with no timeout is never left unwatched: either the
/// thread counts it and blocks with a timeout, or the waker arms the
/// watch timer, which ends that block within a tick.
#[test]
fn a_worker_woken_from_outside_is_never_left_unwatched() {
    use super::mode::Wake;

    loom::model(|| {
        let idle = Arc::new(Idle::new(1));
        let _ = idle.transition_worker_to_parked(0, false, None);
        let mode = Arc::new(ModeMachine::new());
        let waker = {
            let (idle, mode) = (idle.clone(), mode.clone());
            thread::spawn(move || {
                idle.worker_to_notify()
                    .map(|_| mode.worker_unparked() == Wake::WatchTimer)
            })
        };
        let blocking = mode.begin_blocking(true, || idle.num_unparked() == 0);
        let told = waker.join().unwrap();
        assert_eq!(
            told.is_some(),
            idle.num_unparked() == 1,
            "the worker was woken"
        );
        if told == Some(false) {
            // Nobody told the thread: it must have seen the worker itself
            // and blocked only until its next look.
            assert_eq!(blocking, Blocking::Watch, "a running worker nobody watches");
        }
    });
}

// ---------------------------------------------------------------------
// The wake eventfd and the workers' looks. A worker that read the standby
// flag just before the thread went back to blocking looks at epoll after
// it; a wake-up sent meanwhile (a timer insert, `resume`, shutdown) is a
// byte in the eventfd that the thread's `epoll_wait` must see. A thread
// that waits for a byte nobody left it shows up as a deadlock (the real
// one waits until its timeout: up to 10 ms late).
// ---------------------------------------------------------------------

/// The wake eventfd: its counter, and the thread's `epoll_wait` on it.
/// `answered` stands for whatever else ends that wait in the model: the
/// wake-up was answered without a byte (the thread was standing by or
/// awake, and runs its loop again anyway).
struct EventFd {
    state: loom::sync::Mutex<(u64, bool)>,
    readable: loom::sync::Condvar,
}

impl EventFd {
    fn new() -> EventFd {
        EventFd {
            state: loom::sync::Mutex::new((0, false)),
            readable: loom::sync::Condvar::new(),
        }
    }

    fn write(&self) {
        self.state.lock().unwrap().0 += 1;
        self.readable.notify_all();
    }

    /// The wake-up needed no byte.
    fn answered(&self) {
        self.state.lock().unwrap().1 = true;
        self.readable.notify_all();
    }

    fn is_readable(&self) -> bool {
        self.state.lock().unwrap().0 > 0
    }

    fn drain(&self) {
        self.state.lock().unwrap().0 = 0;
    }

    /// `epoll_wait` with no other event to end it.
    fn wait_readable(&self) {
        let mut state = self.state.lock().unwrap();
        while state.0 == 0 && !state.1 {
            state = self.readable.wait(state).unwrap();
        }
    }
}

/// The netpoll thread ends a standby and blocks, a worker that saw the
/// standby looks at epoll, and someone wakes the thread; `worker_drains`
/// says whether a worker's look drains the eventfd.
fn worker_look_races_a_wake(worker_drains: bool) {
    use super::mode::Wake;
    use super::wake::WakeSignal;

    loom::model(move || {
        let mode = Arc::new(ModeMachine::standing_by_for_test());
        let sig = Arc::new(WakeSignal::new());
        let efd = Arc::new(EventFd::new());
        let waker = {
            let (mode, sig, efd) = (mode.clone(), sig.clone(), efd.clone());
            thread::spawn(move || match mode.wake() {
                Wake::Eventfd => {
                    if sig.raise() {
                        efd.write();
                    }
                }
                Wake::Done => efd.answered(),
                Wake::WatchTimer => unreachable!("a wake-up never arms the watch timer"),
            })
        };
        let worker = {
            let (mode, sig, efd) = (mode.clone(), sig.clone(), efd.clone());
            thread::spawn(move || {
                if mode.workers_should_poll() && efd.is_readable() && worker_drains {
                    efd.drain();
                    sig.lower();
                }
            })
        };
        // The netpoll thread: its standby tick passes, it blocks.
        mode.tick_ends_standby_for_test();
        if mode.begin_blocking(false, || true) == Blocking::Sleep {
            efd.wait_readable();
            efd.drain();
            sig.lower();
            mode.end_blocking();
        }
        waker.join().unwrap();
        worker.join().unwrap();
    });
}

#[test]
fn a_worker_look_never_swallows_the_threads_wake_up() {
    worker_look_races_a_wake(super::Looker::Worker.drains_wake());
}

/// The old look: a worker drained the eventfd like the thread. Loom finds
/// the worker that saw the standby flag, looks after the thread blocked,
/// and takes the byte of a wake-up sent meanwhile.
#[test]
#[should_panic(expected = "deadlock")]
fn seeded_bug_a_draining_worker_look_swallows_the_wake_up() {
    worker_look_races_a_wake(true);
}

// ---------------------------------------------------------------------
// An inline poll and its watchdog (`watch.rs`, with the slot of
// `scheduler/slot.rs`). The netpoll thread polls a task on a spare slot
// (`begin_poll`, then `Watch::begin`), the task queues another in the
// slot's LIFO, the poll returns (`end_poll`, then `Watch::end`) and, if
// the watchdog stands in, the thread wakes it and waits for the loop to
// be handed back. The watchdog, whose timer fired at any moment, takes
// over, retakes the slot's poll, and runs the loop until the thread is
// back. Never do both run the loop at once; the slot's work is kept by
// exactly one side; nobody waits for good. A run may go on with the LIFO
// task as a second poll on the slot, unless `Watch::next` says the
// watchdog stood in: no task ever runs on the netpoll thread, unwatched,
// while the stand-in runs the loop.
// ---------------------------------------------------------------------

mod inline {
    use std::sync::Arc;

    use crossbeam_deque::Worker;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::thread;

    use crate::netpoll::watch::{End, Watch};
    use crate::scheduler::Slot;
    use crate::task::model::a_task;
    use crate::task::Notified;

    /// The netpoll loop: a turn of it, by whoever runs it. Counts its
    /// runners; two at once is the failure the models look for.
    struct Loop {
        runners: AtomicUsize,
    }

    impl Loop {
        fn new() -> Loop {
            Loop {
                runners: AtomicUsize::new(0),
            }
        }

        fn turn(&self) {
            let before = self.runners.fetch_add(1, Ordering::SeqCst);
            assert_eq!(before, 0, "two threads run the netpoll loop");
            self.runners.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The wake eventfd the stand-in blocks on in `epoll_wait`: a wake-up
    /// stays until a wait takes it.
    struct Wake {
        pending: loom::sync::Mutex<bool>,
        cv: loom::sync::Condvar,
    }

    impl Wake {
        fn new() -> Wake {
            Wake {
                pending: loom::sync::Mutex::new(false),
                cv: loom::sync::Condvar::new(),
            }
        }

        fn wake(&self) {
            *self.pending.lock().unwrap() = true;
            self.cv.notify_all();
        }

        fn wait(&self) {
            let mut pending = self.pending.lock().unwrap();
            while !*pending {
                pending = self.cv.wait(pending).unwrap();
            }
            *pending = false;
        }
    }

    /// What the netpoll thread and the watchdog share.
    struct Shared {
        watch: Watch,
        slot: Slot,
        the_loop: Loop,
        wake: Wake,
        /// The LIFO task, counted each time a side takes it.
        taken: AtomicUsize,
        /// Set once the stand-in, past its retake, begins to run the loop.
        stand_in_began: loom::sync::Mutex<bool>,
    }

    impl Shared {
        /// `local` is the slot's queue (kept by the model's main thread).
        fn new(local: &Worker<Notified>) -> Arc<Shared> {
            Arc::new(Shared {
                watch: Watch::new().expect("a model's watch"),
                slot: Slot::new(local),
                the_loop: Loop::new(),
                wake: Wake::new(),
                taken: AtomicUsize::new(0),
                stand_in_began: loom::sync::Mutex::new(false),
            })
        }

        fn take_lifo(&self) {
            if self.slot.take_lifo().is_some() {
                self.taken.fetch_add(1, Ordering::SeqCst);
            }
        }

        /// A task's poll on the netpoll thread has run and returns
        /// (`end_poll`). If the stand-in began to run the loop before
        /// that, the poll ran beside it: it must be one the stand-in
        /// retook, so that the slot's work went to the workers.
        fn end_run(&self) -> bool {
            let beside_the_stand_in = *self.stand_in_began.lock().unwrap();
            let kept = self.slot.end_poll();
            assert!(
                !(beside_the_stand_in && kept),
                "a task ran on the netpoll thread, unwatched, while the stand-in ran the loop"
            );
            kept
        }
    }

    /// The netpoll thread's inline poll (`worker::run_inline` and
    /// `Netpoller::run_inline`), with `end` for `Watch::end`; then a turn
    /// of the loop unless the runtime shut down. Returns whether it kept
    /// the slot.
    fn netpoll_thread(sh: &Shared, end: fn(&Watch) -> End) -> bool {
        sh.slot.begin_poll(0);
        sh.watch.begin(0, std::time::Instant::now());
        // The poll wakes a task onto this slot (`schedule_local`).
        assert!(sh.slot.push_lifo(a_task()).is_none());
        if sh.slot.retaken_after_push() {
            sh.take_lifo();
        }
        let kept = sh.slot.end_poll();
        if end(&sh.watch) == End::StandingIn {
            sh.wake.wake();
            sh.watch.wait_handed_back();
        }
        // Kept: what the poll queued goes to the workers; retaken: the
        // thread leaves the slot with what is left (`leave`).
        sh.take_lifo();
        if !sh.watch.is_closed() {
            sh.the_loop.turn();
        }
        kept
    }

    /// The watchdog, its timer fired (`Netpoller::run_watchdog`, once):
    /// takes over if the poll still runs, retakes the slot's poll, and
    /// runs the loop until the thread is back. Returns whether it retook
    /// the slot.
    fn watchdog(sh: &Shared) -> bool {
        let Some(slot) = sh.watch.take_over() else {
            return false;
        };
        assert_eq!(slot, 0);
        // `retake_inline`.
        let retook = match sh.slot.current_poll() {
            Some(poll) => sh.slot.retake(poll),
            None => false,
        };
        if retook {
            // `move_queued`.
            sh.take_lifo();
        }
        // From here on the watchdog runs the loop. A poll the netpoll
        // thread still runs must be the one just retaken: one that ended
        // first made the retake fail, and one begun after the take-over
        // must not run at all (`Watch::next`).
        *sh.stand_in_began.lock().unwrap() = true;
        // Its first turn: `epoll_wait` found events at once.
        sh.the_loop.turn();
        while !sh.watch.stand_in_done() {
            // The next: `epoll_wait` until the thread (or the shutdown)
            // wakes it, then what it found.
            sh.wake.wait();
            sh.the_loop.turn();
        }
        sh.watch.hand_back();
        retook
    }

    /// Starts the watchdog of `sh` on a thread of the model; it returns
    /// whether it retook the slot.
    fn spawn_watchdog(sh: &Arc<Shared>) -> thread::JoinHandle<bool> {
        let sh = sh.clone();
        thread::spawn(move || watchdog(&sh))
    }

    /// A model of the netpoll thread's side (`netpoll`, which returns
    /// whether it kept the slot) against the watchdog, then the runtime's
    /// shutdown (`close_all`: the watchdog, if it still stands in,
    /// leaves). Exactly one side kept the slot, the task the poll queued
    /// was taken once (`lost` says otherwise), and none is left behind.
    fn against_the_watchdog(
        netpoll: impl Fn(&Shared) -> bool + Send + Sync + 'static,
        lost: &'static str,
    ) {
        loom::model(move || {
            let local = Worker::new_fifo();
            let sh = Shared::new(&local);
            let dog = spawn_watchdog(&sh);
            let kept = netpoll(&sh);
            sh.watch.close();
            sh.wake.wake();
            let retook = dog.join().unwrap();

            assert_ne!(kept, retook, "both or neither kept the slot");
            assert_eq!(sh.taken.load(Ordering::SeqCst), 1, "{lost}");
            assert!(!sh.slot.has_lifo());
        });
    }

    fn inline_poll_and_watchdog(end: fn(&Watch) -> End) {
        against_the_watchdog(
            move |sh| netpoll_thread(sh, end),
            "the task the poll queued was lost or taken twice",
        );
    }

    #[test]
    fn inline_poll_and_stand_in_never_run_the_loop_together() {
        inline_poll_and_watchdog(Watch::end);
    }

    /// The seeded bug: an `end` that lets the netpoll thread go on at once
    /// while the stand-in still runs the loop.
    #[test]
    #[should_panic(expected = "two threads run the netpoll loop")]
    fn seeded_bug_an_end_that_does_not_wait_runs_the_loop_twice() {
        inline_poll_and_watchdog(Watch::end_without_waiting_for_test);
    }

    /// The netpoll thread's inline run of two polls (`worker::run_inline`
    /// with `Netpoller::run_inline`'s steps), `next` standing for
    /// `Watch::next`: the first task's poll wakes a second onto the slot's
    /// LIFO, which the thread polls next, on the same slot, unless `next`
    /// says the watchdog stood in; then the end of the run, and a turn of
    /// the loop. Returns whether it kept the slot. With `Second::Look`,
    /// the first poll wakes nothing, and the run's look at epoll
    /// (`InlineStep::Look`) wakes the second task onto the slot between
    /// the two polls instead.
    fn netpoll_thread_two_polls(sh: &Shared, next: fn(&Watch) -> bool, second: Second) -> bool {
        sh.slot.begin_poll(1);
        sh.watch.begin(0, std::time::Instant::now());
        let wake_second = || {
            // `schedule_local`.
            assert!(sh.slot.push_lifo(a_task()).is_none());
            if sh.slot.retaken_after_push() {
                sh.take_lifo();
            }
        };
        if second == Second::Woken {
            wake_second();
        }
        let mut kept = sh.end_run();
        if second == Second::Look {
            if kept {
                wake_second();
            } else {
                // Retaken: no look; the event stays in epoll for the
                // loop, whose next turn (the stand-in's) takes it.
                sh.taken.fetch_add(1, Ordering::SeqCst);
            }
        }
        // The LIFO chain: one more poll.
        if kept {
            if let Some(task) = sh.slot.take_lifo() {
                sh.taken.fetch_add(1, Ordering::SeqCst);
                sh.slot.begin_poll(2);
                if next(&sh.watch) {
                    // It runs here.
                    drop(task);
                    kept = sh.end_run();
                } else {
                    // Handed on unrun.
                    drop(task);
                    kept = sh.slot.end_poll();
                }
            }
        }
        if sh.watch.end() == End::StandingIn {
            sh.wake.wake();
            sh.watch.wait_handed_back();
        }
        // What is left goes to the workers (`take_all`).
        sh.take_lifo();
        if !sh.watch.is_closed() {
            sh.the_loop.turn();
        }
        kept
    }

    /// A run of two polls against a watchdog whose take-over comes before
    /// the run (it finds nothing to take), during either poll (it retakes
    /// that poll, or finds it just ended), between the two (nothing to
    /// retake: the second must not run), or after the run. No task runs
    /// on the netpoll thread unwatched while the stand-in runs the loop
    /// (`Shared::end_run`); the second task is taken from the LIFO once,
    /// and run or handed on; nobody waits for good.
    fn inline_run_of_two_polls_and_watchdog(next: fn(&Watch) -> bool, second: Second) {
        let lost = match second {
            Second::Woken => "the second task was lost or taken twice",
            Second::Look => "the task the look found was lost or taken twice",
        };
        against_the_watchdog(move |sh| netpoll_thread_two_polls(sh, next, second), lost);
    }

    /// How the second task of a run of two polls reaches the slot.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Second {
        /// The first poll wakes it (the LIFO chain).
        Woken,
        /// The run's own look at epoll finds it, between the polls.
        Look,
    }

    #[test]
    fn a_stand_in_between_two_polls_stops_the_run() {
        inline_run_of_two_polls_and_watchdog(Watch::next, Second::Woken);
    }

    /// As above, the second task found by the run's look at epoll after
    /// the first poll: a stand-in before the look, between the look and
    /// the poll, or during it, stops the run the same way.
    #[test]
    fn a_stand_in_around_the_runs_look_stops_the_run() {
        inline_run_of_two_polls_and_watchdog(Watch::next, Second::Look);
    }

    /// The seeded bug, with the task the look found.
    #[test]
    #[should_panic(expected = "unwatched, while the stand-in ran the loop")]
    fn seeded_bug_a_next_that_does_not_look_runs_the_looks_task_unwatched() {
        inline_run_of_two_polls_and_watchdog(Watch::next_without_looking_for_test, Second::Look);
    }

    /// The seeded bug: a `next` that does not look. Loom finds the take-
    /// over between the two polls, with no poll to retake, after which the
    /// second task runs on the netpoll thread while the stand-in runs the
    /// loop, and nobody can retake it.
    #[test]
    #[should_panic(expected = "unwatched, while the stand-in ran the loop")]
    fn seeded_bug_a_next_that_does_not_look_runs_a_task_unwatched() {
        inline_run_of_two_polls_and_watchdog(Watch::next_without_looking_for_test, Second::Woken);
    }

    /// The runtime shuts down (`Watch::close`) while the watchdog stands
    /// in and the netpoll thread, back from its poll, waits for the hand-
    /// back, or at any moment around them: nobody waits for good, and the
    /// watch ends closed.
    #[test]
    fn close_races_a_stand_in_and_a_waiting_thread() {
        loom::model(|| {
            let local = Worker::new_fifo();
            let sh = Shared::new(&local);
            let dog = spawn_watchdog(&sh);
            let closer = {
                let sh = sh.clone();
                thread::spawn(move || {
                    sh.watch.close();
                    sh.wake.wake();
                })
            };
            let kept = netpoll_thread(&sh, Watch::end);
            let retook = dog.join().unwrap();
            closer.join().unwrap();
            assert_ne!(kept, retook, "both or neither kept the slot");
            assert_eq!(sh.taken.load(Ordering::SeqCst), 1);
            assert!(sh.watch.is_closed());
        });
    }

    /// The runtime shuts down (`close_all`: `Watch::close`, which fires
    /// the timer so that a sleeping watchdog looks) while the netpoll
    /// thread polls a task inline (`begin` arms the timer, `end` disarms
    /// it), `end` standing for `Watch::end`. The watchdog
    /// (`run_watchdog`'s loop) must see the watch closed and exit; one
    /// that sleeps on a timer nobody will fire again keeps the runtime's
    /// drop waiting for good, which loom reports as a deadlock.
    fn shutdown_during_an_inline_poll(end: fn(&Watch) -> End) {
        loom::model(move || {
            let watch = Arc::new(Watch::new().expect("a model's watch"));
            let dog = {
                let watch = watch.clone();
                thread::spawn(move || {
                    while !watch.is_closed() {
                        watch.sleep();
                        // The limit never runs out in the model.
                        assert_eq!(watch.take_over(), None);
                    }
                })
            };
            let closer = {
                let watch = watch.clone();
                thread::spawn(move || watch.close())
            };
            watch.begin(0, std::time::Instant::now());
            // The task's poll.
            assert_eq!(end(&watch), End::InTime, "nobody stood in");
            closer.join().unwrap();
            dog.join().unwrap();
        });
    }

    #[test]
    fn shutdown_during_an_inline_poll_always_wakes_the_watchdog() {
        shutdown_during_an_inline_poll(Watch::end);
    }

    /// The first `end`: its disarm, after the lock, could land between the
    /// shutdown's firing and the watchdog's look.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn seeded_bug_a_disarm_outside_the_lock_strands_the_watchdog() {
        shutdown_during_an_inline_poll(Watch::end_disarming_outside_the_lock_for_test);
    }

    /// The runtime shuts down while the netpoll thread, back from a run,
    /// sets the watchdog's timer before its next sleeps: afresh after a
    /// spell shorter than the limit (`prime`, standing for `Watch::prime`),
    /// then disarmed after a longer one (`Watch::settle`). Neither may
    /// undo the shutdown's firing of the timer, or the watchdog sleeps for
    /// good (a deadlock to loom).
    fn shutdown_while_the_timer_is_set_before_a_sleep(prime: fn(&Watch)) {
        loom::model(move || {
            let watch = Arc::new(Watch::new().expect("a model's watch"));
            let dog = {
                let watch = watch.clone();
                thread::spawn(move || {
                    while !watch.is_closed() {
                        watch.sleep();
                        assert_eq!(watch.take_over(), None);
                    }
                })
            };
            let closer = {
                let watch = watch.clone();
                thread::spawn(move || watch.close())
            };
            watch.begin(0, std::time::Instant::now());
            assert_eq!(watch.end(), End::InTime, "nobody stood in");
            prime(&watch);
            watch.settle();
            closer.join().unwrap();
            dog.join().unwrap();
        });
    }

    #[test]
    fn setting_the_timer_before_a_sleep_never_strands_the_watchdog() {
        shutdown_while_the_timer_is_set_before_a_sleep(Watch::prime);
    }

    /// The seeded bug: a `prime` that arms the timer whatever the state,
    /// after the shutdown fired it.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn seeded_bug_a_prime_after_the_shutdown_strands_the_watchdog() {
        shutdown_while_the_timer_is_set_before_a_sleep(Watch::prime_whatever_the_state_for_test);
    }
}
