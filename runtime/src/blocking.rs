//! The blocking pool: threads for work that would block a worker.
//!
//! Threads are started on demand, up to a cap, and an idle thread exits
//! after a keep-alive period, so a program that never blocks has none. Jobs
//! are ordinary tasks (one allocation, a `JoinHandle`, panics caught) whose
//! scheduler is this pool instead of the workers.
//!
//! A thread that cannot start (`EAGAIN` from `clone(2)`: `RLIMIT_NPROC`, a
//! pids cgroup) leaves its job queued for the pool's running threads. If
//! the pool has none, nothing would ever take it: the queued jobs are
//! cancelled instead, so their `JoinHandle`s resolve to a
//! [`JoinError`](crate::JoinError) that `is_cancelled()` (a `JoinError`
//! carries no `io::Error`; the cause is written once to stderr). tokio
//! panics in `spawn_blocking` in the same situation; Go's runtime throws.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::task::{self, Header, JoinHandle, Notified, RawTask, Schedule};
use crate::time::virtual_time::Activity;

/// Enters a pool thread into its runtime for the thread's life; the guard
/// it returns is kept until the thread exits. `None` once the runtime is
/// gone. (The runtime layer provides it: this pool does not know what a
/// runtime is.)
pub(crate) type Enter = Box<dyn Fn() -> Option<Box<dyn std::any::Any>> + Send + Sync>;

pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Counts every job from its queuing until it ran or was cancelled
    /// (virtual time's idle check reads it, with `block_on`'s futures).
    activity: Arc<Activity>,
    /// Signals idle threads that a job arrived or shutdown began.
    work: Condvar,
    /// Signals shutdown that a thread exited.
    exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: String,
    enter: Enter,
    /// Tests only: how many of the next thread starts fail, as `EAGAIN`
    /// from `clone(2)` would.
    #[cfg(test)]
    fail_starts: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Notified>,
    threads: usize,
    idle: usize,
    /// Wake-ups handed to idle threads and not yet taken.
    pending_wakeups: usize,
    shutdown: bool,
    next_id: usize,
}

#[derive(Clone)]
struct BlockingSchedule(Arc<Inner>);

impl BlockingPool {
    pub(crate) fn new(
        max_threads: usize,
        keep_alive: Duration,
        thread_name: String,
        enter: Enter,
    ) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                activity: Arc::new(Activity::new()),
                work: Condvar::new(),
                exited: Condvar::new(),
                max_threads: max_threads.max(1),
                keep_alive,
                thread_name,
                enter,
                #[cfg(test)]
                fail_starts: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    #[track_caller]
    pub(crate) fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let sched = BlockingSchedule(self.inner.clone());
        let (notified, owned_ref, join) = task::new_task(
            BlockingTask(Some(f)),
            sched.clone(),
            std::panic::Location::caller(),
        );
        // Blocking tasks are not on the owned list: drop that reference.
        owned_ref.drop_reference();
        sched.schedule(notified);
        join
    }

    /// The pool's threads, and how many of them are idle.
    pub(crate) fn threads(&self) -> (usize, usize) {
        let st = self.inner.state.lock();
        (st.threads, st.idle)
    }

    /// The count of runnable work outside the workers that this pool's
    /// jobs take part in, from queuing to their end.
    pub(crate) fn activity(&self) -> Arc<Activity> {
        self.inner.activity.clone()
    }

    /// Refuses new jobs, cancels queued ones, and waits up to `timeout` for
    /// running jobs to finish and their threads to exit.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        let queued = {
            let mut st = self.inner.state.lock();
            st.shutdown = true;
            std::mem::take(&mut st.queue)
        };
        self.inner.work.notify_all();
        for task in queued {
            task.shutdown();
            self.inner.activity.end();
        }
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.state.lock();
        while st.threads > 0 {
            if self.inner.exited.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
    }
}

impl Schedule for BlockingSchedule {
    fn schedule(&self, task: Notified) {
        // Once queued, the task may run, complete and be freed — and this
        // `BlockingSchedule` with it — before this returns: hold the pool.
        let inner = &Arc::clone(&self.0);
        // Counted before it is queued: a job that the caller's wake-up
        // or spawn started is runnable from this instant.
        inner.activity.begin();
        let mut st = inner.state.lock();
        if st.shutdown {
            drop(st);
            task.shutdown();
            inner.activity.end();
            return;
        }
        st.queue.push_back(task);
        if st.idle > st.pending_wakeups {
            st.pending_wakeups += 1;
            drop(st);
            inner.work.notify_one();
        } else if st.threads < inner.max_threads {
            st.threads += 1;
            st.next_id += 1;
            let id = st.next_id;
            drop(st);
            if let Err(e) = inner.start_thread(id) {
                let mut st = inner.state.lock();
                st.threads -= 1;
                if st.threads > 0 {
                    // A running thread takes the job when it is done with
                    // its own (one that starts meanwhile was counted).
                    return;
                }
                // No thread at all will ever look at the queue: fail what
                // waits there rather than leave it forever.
                let stranded = std::mem::take(&mut st.queue);
                drop(st);
                report_start_failure(&e, stranded.len());
                for task in stranded {
                    task.shutdown();
                    inner.activity.end();
                }
            }
        }
    }

    fn release(&self, _task: &Header) -> Option<RawTask> {
        None
    }
}

impl Inner {
    /// Starts pool thread number `id`.
    fn start_thread(self: &Arc<Self>, id: usize) -> std::io::Result<()> {
        #[cfg(test)]
        if crate::scheduler::take_one(&self.fail_starts) {
            return Err(std::io::Error::from_raw_os_error(libc::EAGAIN));
        }
        let inner = self.clone();
        std::thread::Builder::new()
            .name(format!("{}-blocking-{id}", self.thread_name))
            .spawn(move || run(inner))
            .map(drop)
    }
}

/// Says once per process on stderr that jobs were cancelled for want of a
/// thread (the `JoinError` a job's handle gets says only "cancelled").
fn report_start_failure(e: &std::io::Error, jobs: usize) {
    static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!(
            "gopark: spawn_blocking: no thread could start ({e}); {jobs} job(s) cancelled \
             (reported once)"
        );
    }
}

fn run(inner: Arc<Inner>) {
    let enter = (inner.enter)();
    let mut st = inner.state.lock();
    loop {
        if let Some(task) = st.queue.pop_front() {
            drop(st);
            // Whatever the job wakes is counted by its waker before this
            // ends (see `virtual_time`).
            task.run();
            inner.activity.end();
            st = inner.state.lock();
            continue;
        }
        if st.shutdown {
            break;
        }
        st.idle += 1;
        let timed_out = inner.work.wait_for(&mut st, inner.keep_alive).timed_out();
        st.idle -= 1;
        if st.pending_wakeups > 0 {
            st.pending_wakeups -= 1;
        } else if timed_out && st.queue.is_empty() {
            break;
        }
    }
    // Let go of the runtime before reporting the exit, so that once
    // `shutdown` sees zero threads nothing here keeps its descriptors open.
    drop(st);
    drop(enter);
    let mut st = inner.state.lock();
    st.threads -= 1;
    drop(st);
    inner.exited.notify_all();
}

/// A future that runs a blocking closure the first time it is polled.
struct BlockingTask<F>(Option<F>);

impl<F> Unpin for BlockingTask<F> {}

impl<F, R> Future for BlockingTask<F>
where
    F: FnOnce() -> R,
{
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let f = self
            .0
            .take()
            .expect("blocking task polled after completion");
        crate::coop::stop();
        Poll::Ready(f())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use crate::{time, Builder};

    /// A job whose thread cannot start while the pool has no thread fails
    /// through its `JoinHandle` instead of waiting forever; the next job
    /// runs.
    #[test]
    fn a_job_whose_thread_cannot_start_fails() {
        let rt = Builder::new().worker_threads(1).build().unwrap();
        let pool = &rt.handle().shared.blocking;
        pool.inner.fail_starts.store(1, Relaxed);
        rt.block_on(async {
            let res = time::timeout(Duration::from_secs(10), crate::spawn_blocking(|| 1))
                .await
                .expect("a job whose thread could not start never finished");
            assert!(res.unwrap_err().is_cancelled());
            assert_eq!(crate::spawn_blocking(|| 2).await.unwrap(), 2);
        });
    }

    /// The same with a paused clock: the failed job does not keep the
    /// clock from jumping, and its handle does not wait for it.
    #[test]
    fn a_failed_job_lets_a_paused_clock_jump() {
        let rt = Builder::new()
            .worker_threads(1)
            .start_paused(true)
            .build()
            .unwrap();
        rt.handle()
            .shared
            .blocking
            .inner
            .fail_starts
            .store(1, Relaxed);
        rt.block_on(async {
            let res = time::timeout(Duration::from_secs(3600), crate::spawn_blocking(|| 1)).await;
            assert!(res.expect("timed out").unwrap_err().is_cancelled());
            time::sleep(Duration::from_secs(60)).await;
        });
    }
}
