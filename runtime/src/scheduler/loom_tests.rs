//! Model tests of worker parking (run with `RUSTFLAGS="--cfg loom"`).
//!
//! The property: never are all workers parked while a task is runnable.
//! A producer pushes a task and then asks [`Idle`] for a worker to wake;
//! workers give up searching and park. Whatever the interleaving, either a
//! worker is woken or a worker saw the task before it slept. The same with
//! the real `Parker` and `Inject` for the direct hand-off, where the task
//! travels with the wake-up (`unpark_with`).

use std::sync::Arc;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::idle::Idle;

/// The run queue, reduced to its length (what `has_pending_work` reads).
struct Queue(AtomicUsize);

impl Queue {
    fn push(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn is_empty(&self) -> bool {
        self.0.load(Ordering::SeqCst) == 0
    }
}

/// A worker that found nothing and parks, as `WorkerCtx::park` does.
/// Returns `true` if it re-checked and saw work (so it would not sleep).
fn park(idle: &Idle, queue: &Queue, worker: usize, searching: bool) -> Option<usize> {
    let parked = idle.transition_worker_to_parked(worker, searching, None);
    if parked.last_searcher && !queue.is_empty() {
        return idle.worker_to_notify();
    }
    None
}

#[test]
fn a_pushed_task_always_has_a_worker() {
    loom::model(|| {
        let idle = Arc::new(Idle::new(2));
        let queue = Arc::new(Queue(AtomicUsize::new(0)));
        // Worker 0 searches (it may, with 0 of 2 searching); worker 1 is
        // running a task and will park without searching.
        assert!(idle.transition_worker_to_searching());

        let w0 = {
            let (idle, queue) = (idle.clone(), queue.clone());
            thread::spawn(move || park(&idle, &queue, 0, true))
        };
        let w1 = {
            let (idle, queue) = (idle.clone(), queue.clone());
            thread::spawn(move || park(&idle, &queue, 1, false))
        };
        queue.push();
        let by_producer = idle.worker_to_notify();
        let by_w0 = w0.join().unwrap();
        let by_w1 = w1.join().unwrap();

        let woken = [by_producer, by_w0, by_w1].iter().flatten().count();
        let (_, unparked) = idle.counts();
        // Either someone was woken for the task, or a worker never parked
        // (it is still counted as unparked and will find the task).
        assert!(
            woken > 0 || unparked > 0,
            "all workers parked with a runnable task: {by_producer:?} {by_w0:?} {by_w1:?} {:?}",
            idle.counts()
        );
    });
}

/// The model catches a seeded bug: a last searcher that does not re-check
/// the queue after publishing that it parks loses the task.
#[test]
#[should_panic]
fn seeded_bug_no_recheck_loses_the_task() {
    loom::model(|| {
        let idle = Arc::new(Idle::new(1));
        let queue = Arc::new(Queue(AtomicUsize::new(0)));
        assert!(idle.transition_worker_to_searching());
        let w0 = {
            let idle = idle.clone();
            // Bug: parks without the re-check.
            thread::spawn(move || {
                let _ = idle.transition_worker_to_parked(0, true, None);
            })
        };
        queue.push();
        let by_producer = idle.worker_to_notify();
        w0.join().unwrap();
        let (_, unparked) = idle.counts();
        assert!(by_producer.is_some() || unparked > 0, "task lost");
    });
}

// ---------------------------------------------------------------------
// The hand-off of a stuck worker (`slot.rs`): the owner's end of a poll
// and the monitor's retake decide once who has the slot's work, and a
// task in the LIFO slot is taken exactly once.
// ---------------------------------------------------------------------

use crossbeam_deque::Worker;

use super::slot::Slot;
use crate::task::model::a_task;
use crate::task::Notified;

/// The owner polls a task that queues another in the LIFO slot; the
/// monitor, which saw the poll, tries to retake the slot at the same time.
fn owner_and_monitor(owner_polls_again: bool) {
    owner_and_monitor_with(owner_polls_again, Slot::end_poll);
}

fn owner_and_monitor_with(owner_polls_again: bool, end_poll: fn(&Slot) -> bool) {
    loom::model(move || {
        let local = Worker::new_fifo();
        let slot = Arc::new(Slot::new(&local));
        slot.begin_poll(0);
        let seen = slot.current_poll().expect("inside a poll");

        let monitor = {
            let slot = slot.clone();
            thread::spawn(move || {
                if slot.retake(seen) {
                    // The monitor has the slot's work.
                    Some(slot.take_lifo().is_some())
                } else {
                    None
                }
            })
        };
        // Inside the poll: a message wakes a task onto this worker.
        assert!(slot.push_lifo(a_task()).is_none());
        let kept = end_poll(&slot);
        // Kept: the owner takes between polls, without a swap; retaken:
        // as it leaves, with one (racing the monitor's take).
        let mut taken_by_owner = usize::from(if kept {
            slot.take_lifo_between_polls().is_some()
        } else {
            slot.take_lifo().is_some()
        });
        if kept && owner_polls_again {
            slot.begin_poll(0);
            taken_by_owner +=
                usize::from(end_poll(&slot) && slot.take_lifo_between_polls().is_some());
        }
        let by_monitor = monitor.join().unwrap();

        // Exactly one side decided it owns the slot's work...
        assert_eq!(kept, by_monitor.is_none(), "both or neither kept the slot");
        // ...and the task was taken exactly once, by whichever side.
        let taken = taken_by_owner + usize::from(by_monitor == Some(true));
        assert_eq!(taken, 1, "the LIFO task was taken {taken} times");
        // A retaken slot stays retaken: its owner leaves.
        assert_eq!(slot.is_retaken(), !kept);
    });
}

#[test]
fn end_of_poll_and_retake_decide_once() {
    owner_and_monitor(false);
}

#[test]
fn a_later_poll_is_never_retaken_by_an_old_observation() {
    owner_and_monitor(true);
}

/// The model catches a seeded bug: an end of poll that CASes from the value
/// it reads "keeps" a slot the monitor retook.
#[test]
#[should_panic(expected = "both or neither kept the slot")]
fn seeded_bug_blind_end_of_poll_keeps_a_retaken_slot() {
    owner_and_monitor_with(false, Slot::end_poll_blind_for_test);
}

// ---------------------------------------------------------------------
// The direct hand-off (`Shared::hand_off`): a task woken off the workers
// goes straight to a parked worker's `Parker` (`unpark_with`), or to the
// injector when no worker needs waking, while the one worker gives up its
// search and parks. The task is run exactly once, and the worker is never
// left asleep with it queued.
// ---------------------------------------------------------------------

use super::idle::Parker;
use super::inject::Inject;

#[test]
fn a_task_handed_off_to_a_parking_worker_is_run_once() {
    loom::model(|| {
        let idle = Arc::new(Idle::new(1));
        let parker = Arc::new(Parker::default());
        let inject = Arc::new(Inject::new());
        // The worker found nothing and searches.
        assert!(idle.transition_worker_to_searching());
        let producer = {
            let (idle, parker, inject) = (idle.clone(), parker.clone(), inject.clone());
            thread::spawn(move || {
                let task = a_task();
                if idle.worker_to_wake(false).is_some() {
                    parker.unpark_with(task);
                } else {
                    inject.push(task);
                    if idle.worker_to_notify().is_some() {
                        parker.unpark();
                    }
                }
            })
        };
        // The worker: parks as the last searcher, re-checks the queues,
        // and takes what it is woken with or what is queued.
        let local = crossbeam_deque::Worker::new_fifo();
        let parked = idle.transition_worker_to_parked(0, true, None);
        if parked.last_searcher && !inject.is_empty() && idle.worker_to_notify().is_some() {
            parker.unpark();
        }
        let wakeup = parker.park();
        let handed = wakeup.task.is_some();
        let queued = inject.pop_into(&local).is_some();
        producer.join().unwrap();
        assert!(
            handed != queued,
            "the task was run {} times",
            u8::from(handed) + u8::from(queued)
        );
        assert!(!parker.has_task());
    });
}

// A task queued inside the poll that the monitor is retaking (bug: it
// waited in the stuck slot until the poll returned). The owner pushes to
// the LIFO slot and then looks at the claim (`schedule_local`); the
// monitor retakes and empties the slot (`move_queued`). Whatever the
// interleaving, once both are done the task is not left in the slot of a
// retaken owner that is still stuck in its poll.
// ---------------------------------------------------------------------

/// The injector, reduced to what was pushed to it.
type Injector = crate::loom::Mutex<Vec<Notified>>;

/// The owner's `schedule_local` inside a poll, as it is now: push, then
/// look; if the monitor retook the slot, take the task back and hand it to
/// the injector.
fn push_then_look(slot: &Slot, injector: &Injector) {
    assert!(slot.push_lifo(a_task()).is_none());
    if slot.retaken_after_push() {
        injector.lock().extend(slot.take_lifo());
    }
}

/// The first `schedule_local`: a look at the slot, then the push.
fn look_then_push(slot: &Slot, injector: &Injector) {
    if slot.is_retaken() {
        injector.lock().push(a_task());
        return;
    }
    assert!(slot.push_lifo(a_task()).is_none());
}

fn queued_during_a_retake(schedule: fn(&Slot, &Injector)) {
    loom::model(move || {
        let local = Worker::new_fifo();
        let slot = Arc::new(Slot::new(&local));
        let injector = Arc::new(Injector::new(Vec::new()));
        slot.begin_poll(0);
        let seen = slot.current_poll().expect("inside a poll");

        let monitor = {
            let (slot, injector) = (slot.clone(), injector.clone());
            thread::spawn(move || {
                let won = slot.retake(seen);
                if won {
                    // `move_queued`: the LIFO slot to the injector.
                    injector.lock().extend(slot.take_lifo());
                }
                won
            })
        };
        // The owner, stuck in its poll, wakes a task onto its worker.
        schedule(&slot, &injector);
        let retaken = monitor.join().unwrap();

        // The poll has not returned: the slot's LIFO is the stuck owner's.
        let stuck = usize::from(slot.has_lifo());
        let handed_on = injector.lock().len();
        assert!(retaken, "the owner is inside the poll: the retake wins");
        assert_eq!(stuck + handed_on, 1, "the task was lost or doubled");
        assert_eq!(stuck, 0, "the task waits in a retaken slot");
        // The owner's poll returns: it learns it lost the slot.
        assert!(!slot.end_poll());
    });
}

#[test]
fn a_task_queued_during_a_retake_is_handed_on() {
    queued_during_a_retake(push_then_look);
}

/// The model catches the bug it was written for: looking before the push
/// leaves the task in the retaken slot.
#[test]
#[should_panic(expected = "the task waits in a retaken slot")]
fn seeded_bug_look_then_push_strands_the_task() {
    queued_during_a_retake(look_then_push);
}
