//! The blocking pool: threads for work that would block a worker.
//!
//! Threads are started on demand, up to a cap, and an idle thread exits
//! after a keep-alive period, so a program that never blocks has none. Jobs
//! are ordinary tasks (one allocation, a `JoinHandle`, panics caught) whose
//! scheduler is this pool instead of the workers.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::task::{self, Header, JoinHandle, Notified, RawTask, Schedule};

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
    /// Signals idle threads that a job arrived or shutdown began.
    work: Condvar,
    /// Signals shutdown that a thread exited.
    exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    thread_name: String,
    enter: Enter,
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
                work: Condvar::new(),
                exited: Condvar::new(),
                max_threads: max_threads.max(1),
                keep_alive,
                thread_name,
                enter,
            }),
        }
    }

    pub(crate) fn spawn<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let sched = BlockingSchedule(self.inner.clone());
        let (notified, owned_ref, join) = task::new_task(BlockingTask(Some(f)), sched.clone());
        // Blocking tasks are not on the owned list: drop that reference.
        owned_ref.drop_reference();
        sched.schedule(notified);
        join
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
        let inner = &self.0;
        let mut st = inner.state.lock();
        if st.shutdown {
            drop(st);
            task.shutdown();
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
            let inner2 = inner.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-blocking-{id}", inner.thread_name))
                .spawn(move || run(inner2));
            if spawned.is_err() {
                // No thread: the job stays queued for a running thread, or
                // is cancelled at shutdown.
                inner.state.lock().threads -= 1;
            }
        }
    }

    fn release(&self, _task: &Header) -> Option<RawTask> {
        None
    }
}

fn run(inner: Arc<Inner>) {
    let enter = (inner.enter)();
    let mut st = inner.state.lock();
    loop {
        if let Some(task) = st.queue.pop_front() {
            drop(st);
            task.run();
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
