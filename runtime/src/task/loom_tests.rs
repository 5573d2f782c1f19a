//! Model tests of the task state word (run with `RUSTFLAGS="--cfg loom"`).
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p gopark-runtime --release --lib loom
//! ```
//!
//! Each model drives the real [`State`] through a miniature task, [`Task`],
//! that follows `raw.rs` step for step — poll, complete, wake, abort,
//! `JoinHandle` poll and drop, runtime shutdown — but keeps everything the
//! state word is supposed to protect in loom-checked memory:
//!
//! * the stage (future, then output) and the join-waker slot are loom
//!   `UnsafeCell`s, so an access that the transitions do not order against
//!   another thread's write is reported as a data race;
//! * freeing the task writes a loom `UnsafeCell` that every handle reads
//!   before it touches the task, so a use after free is reported as a race
//!   (or, if ordered, an assertion) and a double free as an assertion;
//! * the future and the output are counted when they are dropped or taken;
//! * the run queue holds at most one `Notified` and asserts it never gets a
//!   second one.
//!
//! The last model runs the lost-wake-up check against a copy of the
//! `wake_by_ref` transition written as a separate load and store instead of
//! a CAS, and is expected to fail: it shows that the check has teeth.

use loom::sync::atomic::AtomicBool;
use loom::sync::Arc;
use loom::thread;

use super::state::{State, TransitionToIdle, TransitionToNotified, TransitionToRunning};
use crate::loom::{AtomicUsize, Ordering, UnsafeCell};

/// What the modelled future does when polled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Future {
    /// Returns `Ready` on its first poll.
    Ready,
    /// Returns `Ready` once `Task::event` is set, `Pending` before.
    WaitsForEvent,
    /// Never returns `Ready`.
    Pending,
}

/// How a task finished.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Output,
    Cancelled,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Running,
    Finished(Outcome),
    Consumed,
}

/// A task as `raw.rs` builds it, with the memory the state word guards made
/// visible to loom, and counters for what happened to it.
struct Task {
    state: State,
    future: Future,
    stage: UnsafeCell<Stage>,
    /// The join waker's id (ids start at 1).
    join_waker: UnsafeCell<Option<usize>>,
    /// Set when the last reference is dropped.
    freed: UnsafeCell<bool>,
    /// The owned-task list still holds the task (and its reference).
    listed: AtomicBool,
    /// Queued `Notified`s: 0 or 1.
    queue: AtomicUsize,
    /// What `Future::WaitsForEvent` waits for.
    event: AtomicBool,

    submits: AtomicUsize,
    requeues: AtomicUsize,
    futures_dropped: AtomicUsize,
    outputs_made: AtomicUsize,
    outputs_dropped: AtomicUsize,
    outputs_taken: AtomicUsize,
    deallocs: AtomicUsize,
    /// Id of the last join waker woken by the task side, and how many wakes.
    join_woken: AtomicUsize,
    join_wakes: AtomicUsize,
}

impl Task {
    /// A freshly spawned task: listed, queued once, with a `JoinHandle`.
    fn new(future: Future) -> Arc<Task> {
        Arc::new(Task {
            state: State::new(),
            future,
            stage: UnsafeCell::new(Stage::Running),
            join_waker: UnsafeCell::new(None),
            freed: UnsafeCell::new(false),
            listed: AtomicBool::new(true),
            queue: AtomicUsize::new(1),
            event: AtomicBool::new(false),
            submits: AtomicUsize::new(0),
            requeues: AtomicUsize::new(0),
            futures_dropped: AtomicUsize::new(0),
            outputs_made: AtomicUsize::new(0),
            outputs_dropped: AtomicUsize::new(0),
            outputs_taken: AtomicUsize::new(0),
            deallocs: AtomicUsize::new(0),
            join_woken: AtomicUsize::new(0),
            join_wakes: AtomicUsize::new(0),
        })
    }

    fn count(c: &AtomicUsize) -> usize {
        c.load(Ordering::SeqCst)
    }

    fn bump(c: &AtomicUsize) {
        c.fetch_add(1, Ordering::SeqCst);
    }

    /// Every handle calls this before it touches the task.
    fn check_alive(&self) {
        self.freed.with(|f| {
            // SAFETY: loom checks this read against the write in `dealloc`.
            assert!(!unsafe { *f }, "task used after it was freed");
        });
    }

    // ----- memory the state word guards -----

    /// Replaces the stage (the caller must own it) and drops the old one.
    fn set_stage(&self, new: Stage) {
        let old = self.stage.with_mut(|s| {
            // SAFETY: loom reports it if the caller did not own the stage.
            unsafe { std::mem::replace(&mut *s, new) }
        });
        self.retire(old);
    }

    fn retire(&self, old: Stage) {
        match old {
            Stage::Running => Self::bump(&self.futures_dropped),
            Stage::Finished(Outcome::Output) => Self::bump(&self.outputs_dropped),
            Stage::Finished(Outcome::Cancelled) | Stage::Consumed => {}
        }
    }

    fn dealloc(&self) {
        self.freed.with_mut(|f| {
            // SAFETY: loom reports it if another handle may still read it.
            let f = unsafe { &mut *f };
            assert!(!*f, "task freed twice");
            *f = true;
        });
        // Dropping the cell drops whatever stage and join waker it holds.
        self.set_stage(Stage::Consumed);
        self.join_waker.with_mut(|w| {
            // SAFETY: as above, the last reference owns everything.
            unsafe { *w = None };
        });
        Self::bump(&self.deallocs);
    }

    fn drop_ref(&self) {
        self.check_alive();
        if self.state.ref_dec() {
            self.dealloc();
        }
    }

    // ----- the scheduler -----

    /// Queues a `Notified` (whose reference the caller hands over).
    fn push(&self) {
        let prev = self.queue.fetch_add(1, Ordering::AcqRel);
        assert_eq!(prev, 0, "task queued twice");
    }

    /// Runs the queued `Notified`, if there is one.
    fn run_queued(&self) -> bool {
        if self
            .queue
            .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.poll();
        true
    }

    /// Runs queued work until there is none (the task is never re-queued
    /// forever in these models).
    fn drain(&self) {
        while self.run_queued() {}
    }

    // ----- the task side (raw::poll, shutdown, complete) -----

    /// `raw::poll`, consuming the `Notified` reference in hand.
    fn poll(&self) {
        self.check_alive();
        match self.state.transition_to_running() {
            TransitionToRunning::Success => {}
            TransitionToRunning::Cancelled => {
                self.set_stage(Stage::Finished(Outcome::Cancelled));
                self.complete(true);
                return;
            }
            TransitionToRunning::Failed => {
                self.drop_ref();
                return;
            }
        }
        let ready = self.stage.with_mut(|s| {
            // SAFETY: RUNNING is set; loom reports a concurrent poll.
            let s = unsafe { &mut *s };
            assert_eq!(*s, Stage::Running, "polled a future that is gone");
            match self.future {
                Future::Ready => true,
                // An RMW, as a channel's receive would be: see
                // `wake_by_ref_publishes_to_queued_poll` for a plain load.
                Future::WaitsForEvent => self.event.fetch_or(false, Ordering::AcqRel),
                Future::Pending => false,
            }
        });
        if ready {
            Self::bump(&self.outputs_made);
            self.set_stage(Stage::Finished(Outcome::Output));
            self.complete(true);
            return;
        }
        match self.state.transition_to_idle() {
            TransitionToIdle::Ok => self.drop_ref(),
            TransitionToIdle::OkNotified => {
                Self::bump(&self.requeues);
                self.push();
            }
            TransitionToIdle::Cancelled => {
                self.set_stage(Stage::Finished(Outcome::Cancelled));
                self.complete(true);
            }
        }
    }

    /// `raw::complete`.
    fn complete(&self, drop_running_ref: bool) {
        let prev = self.state.transition_to_complete();
        if !prev.is_join_interested() {
            self.set_stage(Stage::Consumed);
        } else if prev.is_join_waker_set() {
            self.join_waker.with(|w| {
                // SAFETY: JOIN_WAKER was set when COMPLETE was; loom checks.
                let id = unsafe { *w }.expect("JOIN_WAKER set with an empty slot");
                self.join_woken.store(id, Ordering::SeqCst);
                Self::bump(&self.join_wakes);
            });
        }
        // The owned-task list's `release`.
        let released = self.listed.swap(false, Ordering::AcqRel);
        let n = usize::from(released) + usize::from(drop_running_ref);
        if n > 0 && self.state.ref_dec_n(n) {
            self.dealloc();
        }
    }

    /// The runtime's shutdown of one listed task (`close_and_shutdown_all`).
    fn shutdown(&self) {
        if !self.listed.swap(false, Ordering::AcqRel) {
            return;
        }
        self.check_alive();
        if self.state.transition_to_shutdown() {
            self.set_stage(Stage::Finished(Outcome::Cancelled));
            self.complete(false);
        }
        self.drop_ref();
    }

    // ----- wakers -----

    fn waker_clone(&self) {
        self.check_alive();
        self.state.ref_inc();
    }

    fn wake_by_ref(&self) {
        self.check_alive();
        if self.state.transition_to_notified_by_ref() == TransitionToNotified::Submit {
            Self::bump(&self.submits);
            self.push();
        }
    }

    fn wake_by_val(&self) {
        self.check_alive();
        match self.state.transition_to_notified_by_val() {
            TransitionToNotified::Submit => {
                Self::bump(&self.submits);
                self.push();
            }
            TransitionToNotified::Dealloc => self.dealloc(),
            TransitionToNotified::DoNothing => {}
        }
    }

    /// What a waker's owner does when the event it waits for happens: an
    /// RMW, as a channel's send would be.
    fn signal(&self) {
        self.event.swap(true, Ordering::AcqRel);
    }

    // ----- the JoinHandle -----

    fn abort(&self) {
        self.check_alive();
        if self.state.transition_to_notified_and_cancel() == TransitionToNotified::Submit {
            Self::bump(&self.submits);
            self.push();
        }
    }

    /// `JoinHandle::poll` with the join waker `waker` (ids start at 1).
    fn join_poll(&self, waker: usize) -> Option<Outcome> {
        self.check_alive();
        if !self.can_read_output(waker) {
            return None;
        }
        let stage = self.stage.with_mut(|s| {
            // SAFETY: COMPLETE with JOIN_INTEREST; loom checks.
            unsafe { std::mem::replace(&mut *s, Stage::Consumed) }
        });
        match stage {
            Stage::Finished(outcome) => {
                if outcome == Outcome::Output {
                    Self::bump(&self.outputs_taken);
                }
                Some(outcome)
            }
            other => panic!("JoinHandle found {other:?} in a complete task"),
        }
    }

    /// `raw::can_read_output`.
    fn can_read_output(&self, waker: usize) -> bool {
        let snapshot = self.state.load();
        if snapshot.is_complete() {
            return true;
        }
        if snapshot.is_join_waker_set() {
            let same = self.join_waker.with(|w| {
                // SAFETY: both sides only read while JOIN_WAKER is set.
                (unsafe { *w }) == Some(waker)
            });
            if same {
                return false;
            }
            if self.state.unset_join_waker().is_err() {
                return true;
            }
        }
        self.join_waker.with_mut(|w| {
            // SAFETY: JOIN_WAKER is clear: the task side does not read it.
            unsafe { *w = Some(waker) };
        });
        self.state.set_join_waker().is_err()
    }

    /// `JoinHandle::drop`.
    fn join_drop(&self) {
        self.check_alive();
        if self.state.drop_join_handle_fast() {
            return;
        }
        if self.state.unset_join_interested().is_err() {
            self.set_stage(Stage::Consumed);
        }
        self.drop_ref();
    }

    // ----- checks -----

    fn is_complete(&self) -> bool {
        self.state.load().is_complete()
    }

    /// Checks the books once every handle is gone.
    fn assert_freed(&self) {
        assert_eq!(Self::count(&self.deallocs), 1, "task freed exactly once");
        assert_eq!(self.state.load().ref_count(), 0);
        assert_eq!(
            Self::count(&self.futures_dropped),
            1,
            "future dropped exactly once"
        );
        let made = Self::count(&self.outputs_made);
        assert!(made <= 1);
        assert_eq!(
            Self::count(&self.outputs_dropped) + Self::count(&self.outputs_taken),
            made,
            "output dropped or taken exactly once"
        );
    }
}

// ----- wake ∥ poll -----

/// A waker fires (`wake_by_ref`) while a worker takes the queued task and
/// polls it. Whatever the interleaving, the task is queued at most once more
/// and ends complete: the wake-up is never lost.
#[test]
fn loom_wake_by_ref_vs_poll() {
    loom::model(|| {
        let task = Task::new(Future::WaitsForEvent);
        task.waker_clone();
        let t = task.clone();
        let waker = thread::spawn(move || {
            t.signal();
            t.wake_by_ref();
            t.drop_ref();
        });
        let t = task.clone();
        let worker = thread::spawn(move || {
            assert!(t.run_queued());
        });
        waker.join().unwrap();
        worker.join().unwrap();

        task.drain();
        assert!(task.is_complete(), "wake-up lost");
        assert!(Task::count(&task.submits) + Task::count(&task.requeues) <= 1);
        assert_eq!(task.join_poll(1), Some(Outcome::Output));
        task.join_drop();
        task.assert_freed();
    });
}

/// As above with `wake` (by value): the waker's reference becomes the
/// `Notified` or is dropped, never both.
#[test]
fn loom_wake_by_val_vs_poll() {
    loom::model(|| {
        let task = Task::new(Future::WaitsForEvent);
        task.waker_clone();
        let t = task.clone();
        let waker = thread::spawn(move || {
            t.signal();
            t.wake_by_val();
        });
        let t = task.clone();
        let worker = thread::spawn(move || {
            assert!(t.run_queued());
        });
        waker.join().unwrap();
        worker.join().unwrap();

        task.drain();
        assert!(task.is_complete(), "wake-up lost");
        assert!(Task::count(&task.submits) + Task::count(&task.requeues) <= 1);
        assert_eq!(task.join_poll(1), Some(Outcome::Output));
        task.join_drop();
        task.assert_freed();
    });
}

/// Two wakers wake an idle task at once while a worker looks for it in the
/// queue: exactly one of them submits it.
#[test]
fn loom_two_wakers_submit_once() {
    loom::model(|| {
        let task = Task::new(Future::WaitsForEvent);
        task.drain(); // first poll: Pending, idle
        assert!(!task.is_complete());
        task.waker_clone();
        task.waker_clone();

        let t = task.clone();
        let a = thread::spawn(move || {
            t.signal();
            t.wake_by_ref();
            t.drop_ref();
        });
        let t = task.clone();
        let b = thread::spawn(move || {
            t.signal();
            t.wake_by_val();
        });
        // The worker may find the task queued, or not yet.
        task.run_queued();
        a.join().unwrap();
        b.join().unwrap();

        task.drain();
        assert!(task.is_complete(), "wake-up lost");
        assert_eq!(Task::count(&task.submits), 1, "submitted exactly once");
        assert_eq!(task.join_poll(1), Some(Outcome::Output));
        task.join_drop();
        task.assert_freed();
    });
}

/// A future that reads its event with a plain `Acquire` load relies on the
/// state word alone to order the waker's write before the poll that the
/// wake-up promises. So `wake_by_ref` on an already-queued task must still
/// *write* the word (unchanged): with a mere load, nothing is published, the
/// queued poll may read the event as unset (the store-buffering pattern),
/// return `Pending`, and the wake-up is lost. This model found that bug.
#[test]
fn loom_wake_by_ref_publishes_to_queued_poll() {
    loom::model(|| {
        let task = Task::new(Future::Pending);
        task.waker_clone();
        let flag = Arc::new(AtomicBool::new(false));
        assert_eq!(
            task.queue.swap(0, Ordering::AcqRel),
            1,
            "the worker pops it"
        );

        let (t, f) = (task.clone(), flag.clone());
        let waker = thread::spawn(move || {
            f.store(true, Ordering::Release);
            t.wake_by_ref();
            t.drop_ref();
        });
        // The worker's poll, with a future that checks `flag` by a load.
        let saw_flag = task.state.transition_to_running() == TransitionToRunning::Success
            && flag.load(Ordering::Acquire);
        let requeued = !saw_flag && task.state.transition_to_idle() == TransitionToIdle::OkNotified;
        waker.join().unwrap();

        let submitted = Task::count(&task.submits) == 1;
        assert!(
            saw_flag || requeued || submitted,
            "wake-up lost: the poll missed the event and nothing re-queued the task"
        );
    });
}

// ----- abort ∥ complete -----

/// `abort()` races a poll that completes the task: the task ends either with
/// its output or cancelled, and the output (if made) and the future are each
/// dropped exactly once.
#[test]
fn loom_abort_vs_complete() {
    loom::model(|| {
        let task = Task::new(Future::Ready);
        let t = task.clone();
        let aborter = thread::spawn(move || t.abort());
        let t = task.clone();
        let worker = thread::spawn(move || {
            assert!(t.run_queued());
        });
        aborter.join().unwrap();
        worker.join().unwrap();

        task.drain();
        assert!(task.is_complete());
        let outcome = task.join_poll(1).expect("complete");
        let made = Task::count(&task.outputs_made);
        assert_eq!(outcome == Outcome::Output, made == 1);
        task.join_drop();
        task.assert_freed();
    });
}

/// `abort()` races a poll that returns `Pending`: the abort is never lost,
/// the future is dropped exactly once, and the `JoinHandle` sees cancelled.
#[test]
fn loom_abort_vs_pending_poll() {
    loom::model(|| {
        let task = Task::new(Future::Pending);
        let t = task.clone();
        let aborter = thread::spawn(move || t.abort());
        let t = task.clone();
        let worker = thread::spawn(move || {
            assert!(t.run_queued());
        });
        aborter.join().unwrap();
        worker.join().unwrap();

        task.drain();
        assert!(task.is_complete(), "abort lost");
        assert_eq!(task.join_poll(1), Some(Outcome::Cancelled));
        task.join_drop();
        task.assert_freed();
    });
}

// ----- JoinHandle drop ∥ completion -----

/// The `JoinHandle` is dropped while the task completes: exactly one side
/// drops the output, and the task is freed exactly once.
#[test]
fn loom_join_drop_vs_complete() {
    loom::model(|| {
        let task = Task::new(Future::Ready);
        let t = task.clone();
        let dropper = thread::spawn(move || t.join_drop());
        let t = task.clone();
        let worker = thread::spawn(move || {
            assert!(t.run_queued());
        });
        dropper.join().unwrap();
        worker.join().unwrap();

        assert!(task.is_complete());
        assert_eq!(Task::count(&task.outputs_dropped), 1);
        task.assert_freed();
    });
}

/// As above, but the `JoinHandle` was polled once first, so it may have
/// published a join waker that the completing side reads.
#[test]
fn loom_join_poll_then_drop_vs_complete() {
    loom::model(|| {
        let task = Task::new(Future::Ready);
        let t = task.clone();
        let joiner = thread::spawn(move || {
            if t.join_poll(1).is_some() {
                assert_eq!(Task::count(&t.outputs_taken), 1);
            }
            t.join_drop();
        });
        let t = task.clone();
        let worker = thread::spawn(move || {
            assert!(t.run_queued());
        });
        joiner.join().unwrap();
        worker.join().unwrap();

        assert!(task.is_complete());
        task.assert_freed();
    });
}

// ----- join waker ∥ completion -----

/// The `JoinHandle` is polled (with one waker, then another) while the task
/// completes. If its last poll returned `Pending`, the completing side woke
/// exactly the waker of that poll.
#[test]
fn loom_join_waker_vs_complete() {
    loom::model(|| {
        let task = Task::new(Future::Ready);
        let t = task.clone();
        let joiner = thread::spawn(move || match t.join_poll(1) {
            Some(_) => 0,
            None => match t.join_poll(2) {
                Some(_) => 0,
                None => 2,
            },
        });
        let t = task.clone();
        let worker = thread::spawn(move || {
            assert!(t.run_queued());
        });
        let pending_with = joiner.join().unwrap();
        worker.join().unwrap();

        assert!(task.is_complete());
        if pending_with != 0 {
            assert_eq!(Task::count(&task.join_wakes), 1, "join wake-up lost");
            assert_eq!(Task::count(&task.join_woken), pending_with);
            assert_eq!(task.join_poll(3), Some(Outcome::Output));
        }
        assert!(Task::count(&task.join_wakes) <= 1);
        task.join_drop();
        task.assert_freed();
    });
}

// ----- reference counting -----

/// The task completes while a waker wakes it by value and the `JoinHandle`
/// is dropped: the last of the three frees it, exactly once, and nobody
/// touches it after.
#[test]
fn loom_refcount_complete_wake_drop() {
    loom::model(|| {
        let task = Task::new(Future::Ready);
        task.waker_clone();
        let t = task.clone();
        let waker = thread::spawn(move || t.wake_by_val());
        let t = task.clone();
        let dropper = thread::spawn(move || t.join_drop());
        assert!(task.run_queued());
        waker.join().unwrap();
        dropper.join().unwrap();

        task.drain();
        task.assert_freed();
    });
}

/// Two waker clones are dropped while the task completes and the
/// `JoinHandle` reads the output.
#[test]
fn loom_refcount_waker_drops_vs_join() {
    loom::model(|| {
        let task = Task::new(Future::Ready);
        task.waker_clone();
        task.waker_clone();
        let t = task.clone();
        let w1 = thread::spawn(move || t.drop_ref());
        let t = task.clone();
        let w2 = thread::spawn(move || {
            assert!(t.run_queued());
            t.drop_ref();
        });
        // The joiner: poll until the worker completed it, then drop.
        let got = task.join_poll(1);
        w1.join().unwrap();
        w2.join().unwrap();
        match got {
            Some(o) => assert_eq!(o, Outcome::Output),
            None => assert_eq!(task.join_poll(1), Some(Outcome::Output)),
        }
        task.join_drop();
        task.assert_freed();
    });
}

// ----- runtime shutdown -----

/// The runtime shuts a task down while a worker polls it: the future is
/// dropped exactly once, by one of them, and the task ends cancelled.
#[test]
fn loom_shutdown_vs_poll() {
    loom::model(|| {
        let task = Task::new(Future::Pending);
        let t = task.clone();
        let shutdown = thread::spawn(move || t.shutdown());
        let t = task.clone();
        let worker = thread::spawn(move || {
            assert!(t.run_queued());
        });
        shutdown.join().unwrap();
        worker.join().unwrap();

        task.drain();
        assert!(task.is_complete());
        assert_eq!(task.join_poll(1), Some(Outcome::Cancelled));
        task.join_drop();
        task.assert_freed();
    });
}

/// The runtime shuts down an idle task while a waker wakes it and its
/// `JoinHandle` aborts it.
#[test]
fn loom_shutdown_vs_wake_vs_abort() {
    loom::model(|| {
        let task = Task::new(Future::Pending);
        task.drain(); // first poll: Pending, idle
        task.waker_clone();
        let t = task.clone();
        let waker = thread::spawn(move || t.wake_by_val());
        let t = task.clone();
        let aborter = thread::spawn(move || t.abort());
        task.shutdown();
        waker.join().unwrap();
        aborter.join().unwrap();

        task.drain();
        assert!(task.is_complete());
        assert_eq!(task.join_poll(1), Some(Outcome::Cancelled));
        task.join_drop();
        task.assert_freed();
    });
}

// ----- the check has teeth -----

/// The parts of the task state word that the lost-wake-up model needs.
trait WakeWord: Send + Sync + 'static {
    fn fresh() -> Self;
    fn to_running(&self) -> TransitionToRunning;
    fn to_idle(&self) -> TransitionToIdle;
    fn notify_by_ref(&self) -> TransitionToNotified;
}

impl WakeWord for State {
    fn fresh() -> Self {
        State::new()
    }
    fn to_running(&self) -> TransitionToRunning {
        self.transition_to_running()
    }
    fn to_idle(&self) -> TransitionToIdle {
        self.transition_to_idle()
    }
    fn notify_by_ref(&self) -> TransitionToNotified {
        self.transition_to_notified_by_ref()
    }
}

/// A copy of the state word's `RUNNING`/`NOTIFIED` logic whose
/// `notify_by_ref` is a separate load and store instead of a CAS.
struct RacyWord(AtomicUsize);

const RACY_RUNNING: usize = 1;
const RACY_NOTIFIED: usize = 4;

impl WakeWord for RacyWord {
    fn fresh() -> Self {
        RacyWord(AtomicUsize::new(RACY_NOTIFIED))
    }
    fn to_running(&self) -> TransitionToRunning {
        // Correct: one RMW, as in `State`.
        let prev = self
            .0
            .fetch_xor(RACY_NOTIFIED | RACY_RUNNING, Ordering::AcqRel);
        assert_eq!(prev, RACY_NOTIFIED, "ran a task that was not notified");
        TransitionToRunning::Success
    }
    fn to_idle(&self) -> TransitionToIdle {
        // Correct: one RMW that clears RUNNING and keeps NOTIFIED, whose
        // `Notified` the poller re-queues.
        let prev = self.0.fetch_and(!RACY_RUNNING, Ordering::AcqRel);
        if prev & RACY_NOTIFIED != 0 {
            TransitionToIdle::OkNotified
        } else {
            TransitionToIdle::Ok
        }
    }
    fn notify_by_ref(&self) -> TransitionToNotified {
        // THE SEEDED BUG: read-modify-write as two separate steps.
        let s = self.0.load(Ordering::Acquire);
        if s & RACY_NOTIFIED != 0 {
            return TransitionToNotified::DoNothing;
        }
        self.0.store(s | RACY_NOTIFIED, Ordering::Release);
        if s & RACY_RUNNING != 0 {
            TransitionToNotified::DoNothing
        } else {
            TransitionToNotified::Submit
        }
    }
}

/// A worker polls a task waiting for an event while a waker sets the event
/// and wakes it with `wake_by_ref`; afterwards the queue is drained. The
/// task must have seen the event, and must never be queued twice.
fn lost_wakeup_model<W: WakeWord>() {
    struct Shared<W> {
        word: W,
        event: AtomicBool,
        queue: AtomicUsize,
        done: AtomicBool,
    }
    impl<W: WakeWord> Shared<W> {
        fn push(&self) {
            assert_eq!(self.queue.fetch_add(1, Ordering::AcqRel), 0, "queued twice");
        }
        fn run_queued(&self) -> bool {
            if self
                .queue
                .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return false;
            }
            assert_eq!(self.word.to_running(), TransitionToRunning::Success);
            if self.event.fetch_or(false, Ordering::AcqRel) {
                self.done.store(true, Ordering::SeqCst);
                return true;
            }
            if self.word.to_idle() == TransitionToIdle::OkNotified {
                self.push();
            }
            true
        }
    }

    loom::model(|| {
        let s = Arc::new(Shared {
            word: W::fresh(),
            event: AtomicBool::new(false),
            queue: AtomicUsize::new(1),
            done: AtomicBool::new(false),
        });
        let s2 = s.clone();
        let waker = thread::spawn(move || {
            s2.event.swap(true, Ordering::AcqRel);
            if s2.word.notify_by_ref() == TransitionToNotified::Submit {
                s2.push();
            }
        });
        assert!(s.run_queued());
        waker.join().unwrap();
        while !s.done.load(Ordering::SeqCst) && s.run_queued() {}
        assert!(s.done.load(Ordering::SeqCst), "wake-up lost");
    });
}

/// The lost-wake-up model passes on the real state word...
#[test]
fn loom_lost_wakeup_model_real_state() {
    lost_wakeup_model::<State>();
}

/// ...and catches a wake transition written as load + store.
#[test]
#[should_panic(expected = "wake-up lost")]
fn loom_lost_wakeup_model_catches_racy_notify() {
    lost_wakeup_model::<RacyWord>();
}
