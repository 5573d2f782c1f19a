//! Model tests of virtual time's idle check (run with
//! `RUSTFLAGS="--cfg loom"`).
//!
//! Work outside the workers hands itself on while the netpoll thread asks
//! whether the runtime is idle. Whenever it answers yes, the work handed
//! on must already have run: otherwise the clock jumps with it runnable,
//! and a `select` of a blocking job and a sleep times out for nothing.
//! Two hand-ons: a blocking job that finishes wakes a `block_on` future;
//! a `block_on` future's poll spawns a blocking job. Beside them, a seeded
//! copy of the old check (two counters read one after the other), which
//! the model must catch.
//!
//! Then the jump itself: the timer it moves the clock to is read after the
//! idle look, so a task that arms a sooner timer just before it blocks is
//! not jumped over; beside it, the old order, seeded.

use std::sync::Arc;
use std::time::Duration;

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Mutex;
use loom::thread;

use super::driver::TimeDriver;
use super::heap::Action;
use super::virtual_time::Activity;

/// A `block_on` thread as the idle check sees it.
struct BlockOn {
    /// Its waker's flag.
    notified: AtomicBool,
    /// Set once it polled after the wake-up.
    polled: AtomicBool,
}

impl BlockOn {
    fn new() -> BlockOn {
        BlockOn {
            notified: AtomicBool::new(false),
            polled: AtomicBool::new(false),
        }
    }

    /// The waker: counts the future runnable if it was not already.
    fn wake(&self, activity: &Activity) {
        if !self.notified.swap(true, Ordering::Release) {
            activity.begin();
        }
    }

    /// Waits for the wake-up, polls, and counts the future out.
    fn run(&self, activity: &Activity) {
        while !self.notified.swap(false, Ordering::Acquire) {
            thread::yield_now();
        }
        self.polled.store(true, Ordering::SeqCst);
        activity.end();
    }
}

#[test]
fn activity_hand_on_never_reads_idle() {
    loom::model(|| {
        // One blocking job running; `block_on` parked on its handle.
        let activity = Arc::new(Activity::new());
        activity.begin();
        let block_on = Arc::new(BlockOn::new());
        let job = {
            let (activity, block_on) = (activity.clone(), block_on.clone());
            thread::spawn(move || {
                // The job completes: its handle's waker runs, then the
                // pool counts the job out.
                block_on.wake(&activity);
                activity.end();
            })
        };
        let poller = {
            let (activity, block_on) = (activity.clone(), block_on.clone());
            thread::spawn(move || block_on.run(&activity))
        };
        if activity.is_quiet() {
            assert!(
                block_on.polled.load(Ordering::SeqCst),
                "idle while a woken block_on future had not polled"
            );
        }
        job.join().unwrap();
        poller.join().unwrap();
    });
}

#[test]
fn block_on_spawning_a_job_never_reads_idle() {
    loom::model(|| {
        // `block_on` is polling; its poll spawns a blocking job, which
        // runs on a pool thread.
        let activity = Arc::new(Activity::new());
        activity.begin();
        let ran = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicBool::new(false));
        let block_on = {
            let (activity, queued) = (activity.clone(), queued.clone());
            thread::spawn(move || {
                activity.begin();
                queued.store(true, Ordering::SeqCst);
                activity.end();
            })
        };
        let pool = {
            let (activity, queued, ran) = (activity.clone(), queued.clone(), ran.clone());
            thread::spawn(move || {
                while !queued.load(Ordering::SeqCst) {
                    thread::yield_now();
                }
                ran.store(true, Ordering::SeqCst);
                activity.end();
            })
        };
        if activity.is_quiet() {
            assert!(ran.load(Ordering::SeqCst), "idle with a job queued");
        }
        block_on.join().unwrap();
        pool.join().unwrap();
    });
}

/// The old check: `block_on`'s futures and the pool's jobs counted apart,
/// and read in that order. A job that wakes `block_on` between the two
/// reads makes it answer idle.
#[test]
#[should_panic = "idle while a woken block_on future had not polled"]
fn seeded_two_counters_read_idle_between_looks() {
    loom::model(|| {
        let outside = Arc::new(Activity::new());
        let jobs = Arc::new(Mutex::new(1usize));
        let block_on = Arc::new(BlockOn::new());
        let job = {
            let (outside, jobs, block_on) = (outside.clone(), jobs.clone(), block_on.clone());
            thread::spawn(move || {
                block_on.wake(&outside);
                *jobs.lock().unwrap() -= 1;
            })
        };
        let poller = {
            let (outside, block_on) = (outside.clone(), block_on.clone());
            thread::spawn(move || block_on.run(&outside))
        };
        if outside.is_quiet() && *jobs.lock().unwrap() == 0 {
            assert!(
                block_on.polled.load(Ordering::SeqCst),
                "idle while a woken block_on future had not polled"
            );
        }
        job.join().unwrap();
        poller.join().unwrap();
    });
}

/// A task's poll has armed an hour and goes on to arm a minute
/// (`timeout(60 s, sleep(1 h))`), then the task blocks; meanwhile the
/// netpoll thread runs `jump`. Whenever the clock moves, it moves to the
/// minute: a jump to the hour would fire both, and the sleep would beat
/// its timeout.
fn timeout_jumps_to_its_minute(jump: Jump) {
    loom::model(move || {
        let driver = Arc::new(TimeDriver::paused_alone());
        let start = driver.now();
        let (minute, hour) = (
            start + Duration::from_secs(60),
            start + Duration::from_secs(3600),
        );
        // The task is running, and has armed the hour.
        let activity = Arc::new(Activity::new());
        activity.begin();
        driver.insert(hour, Action::Wake(None));
        let task = {
            let (driver, activity) = (driver.clone(), activity.clone());
            thread::spawn(move || {
                driver.insert(minute, Action::Wake(None));
                activity.end();
            })
        };
        let mut wakers = Vec::new();
        jump(&driver, &|| activity.is_quiet(), &mut wakers);
        task.join().unwrap();
        let now = driver.now();
        assert!(
            now == start || now == minute,
            "the clock jumped past the minute"
        );
    });
}

/// `jump`, with nothing in epoll.
type Jump = fn(&TimeDriver, &dyn Fn() -> bool, &mut Vec<std::task::Waker>);

#[test]
fn a_jump_goes_to_the_timer_the_last_running_task_armed() {
    timeout_jumps_to_its_minute(|driver, is_idle, wakers| {
        super::virtual_time::jump(driver, is_idle, |_| true, wakers)
    });
}

/// The old order: the next timer read before the idle look. The task arms
/// the minute and blocks between the two, and the clock jumps to the hour.
#[test]
#[should_panic = "the clock jumped past the minute"]
fn seeded_bug_the_timer_read_before_the_idle_look_is_jumped_to() {
    timeout_jumps_to_its_minute(|driver, is_idle, wakers| {
        let Some(next) = driver.lock().next_deadline() else {
            return;
        };
        if is_idle() {
            driver.advance_to(next, wakers);
        }
    });
}
