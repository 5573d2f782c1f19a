//! Model tests of worker parking (run with `RUSTFLAGS="--cfg loom"`).
//!
//! The property: never are all workers parked while a task is runnable.
//! A producer pushes a task and then asks [`Idle`] for a worker to wake;
//! workers give up searching and park. Whatever the interleaving, either a
//! worker is woken or a worker saw the task before it slept.

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
