//! Model tests of virtual time's idle check (run with
//! `RUSTFLAGS="--cfg loom"`).
//!
//! A blocking job finishes and wakes a `block_on` future (which then polls
//! and counts itself out), while the netpoll thread asks whether the
//! runtime is idle. Whenever it answers yes, the woken future must
//! already have polled: otherwise the clock jumps with it runnable, and a
//! `select` of the job and a sleep times out for nothing.

use std::sync::Arc;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Mutex;
use loom::thread;

/// The runtime as the idle check sees it: the count of runnable
/// `block_on` futures, and the blocking pool's jobs (queued or running)
/// behind its lock.
struct Runtime {
    outside_polls: AtomicUsize,
    blocking_jobs: Mutex<usize>,
    /// The `block_on` thread's wake-up flag.
    notified: AtomicBool,
    /// Set by the `block_on` thread once it polled after the wake-up.
    polled: AtomicBool,
}

impl Runtime {
    /// `PollHost::is_idle`'s part for work outside the workers, in its
    /// order: `outside_polls`, then the pool.
    fn is_idle(&self) -> bool {
        self.outside_polls.load(Ordering::SeqCst) == 0 && *self.blocking_jobs.lock().unwrap() == 0
    }

    /// The end of a blocking job: its completion wakes `block_on`, then
    /// its thread marks itself idle.
    fn finish_job(&self) {
        if !self.notified.swap(true, Ordering::Release) {
            self.outside_polls.fetch_add(1, Ordering::SeqCst);
        }
        *self.blocking_jobs.lock().unwrap() -= 1;
    }
}

#[test]
fn a_finishing_job_never_reads_idle_before_block_on_polled() {
    loom::model(|| {
        let rt = Arc::new(Runtime {
            outside_polls: AtomicUsize::new(0),
            blocking_jobs: Mutex::new(1),
            notified: AtomicBool::new(false),
            polled: AtomicBool::new(false),
        });
        let job = {
            let rt = rt.clone();
            thread::spawn(move || rt.finish_job())
        };
        let block_on = {
            let rt = rt.clone();
            thread::spawn(move || {
                while !rt.notified.swap(false, Ordering::Acquire) {
                    thread::yield_now();
                }
                rt.polled.store(true, Ordering::SeqCst);
                rt.outside_polls.fetch_sub(1, Ordering::SeqCst);
            })
        };
        if rt.is_idle() {
            assert!(
                rt.polled.load(Ordering::SeqCst),
                "idle while a woken block_on future had not polled"
            );
        }
        job.join().unwrap();
        block_on.join().unwrap();
    });
}
