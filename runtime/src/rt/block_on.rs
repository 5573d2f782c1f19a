//! `block_on`: a future run on a thread that is not a worker, with the
//! waker that unparks that thread, and the count of such futures that are
//! runnable (a paused clock must not jump while one is).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use super::{context, default, Handle};
use crate::loom::AtomicBool;
use crate::scheduler::{self, Shared};
use crate::time::virtual_time::Activity;

/// The waker of a `block_on` thread.
struct ThreadWaker {
    thread: Thread,
    notified: AtomicBool,
    /// The runtime's count of runnable `block_on` futures (see
    /// `block_on_handle`).
    shared: Arc<Shared>,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        use crate::loom::Ordering;
        // Counted before the flag is published: the thread that sees the
        // flag polls, and ends the count, at once; counting after the swap
        // would let that end come first. A wake that finds the flag already
        // set takes its count back.
        self.shared.activity.begin();
        // Release: pairs with the Acquire swap before the next poll.
        if self.notified.swap(true, Ordering::Release) {
            self.shared.activity.end();
        } else {
            self.thread.unpark();
        }
    }
}

/// Takes one from the runtime's count of runnable work outside the
/// workers when dropped, also when the poll panics.
struct Runnable<'a>(&'a Activity);

impl Drop for Runnable<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

pub(super) fn block_on_handle<F: Future>(handle: &Handle, future: F) -> F::Output {
    use crate::loom::Ordering;
    if scheduler::is_worker() {
        panic!(
            "`block_on` called from a gopark worker thread: it would block the worker and \
             could deadlock the tasks the future waits for; spawn the future and await its \
             JoinHandle instead"
        );
    }
    let _enter = context::enter(handle.clone());
    let waker_state = Arc::new(ThreadWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
        shared: handle.shared.clone(),
    });
    let waker = Waker::from(waker_state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    // The future counts as runnable (a paused clock does not jump) from
    // its first poll, and from each wake-up, until the poll that follows
    // returns: the first count is taken here, the others by the waker.
    let polls = &*handle.shared.activity;
    polls.begin();
    // On the way out (returning or unwinding), later wake-ups count no more,
    // and one that came during the last poll is taken back.
    struct Done<'a>(&'a ThreadWaker);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            if self.0.notified.swap(true, Ordering::AcqRel) {
                self.0.shared.activity.end();
            }
        }
    }
    let _done = Done(&waker_state);
    loop {
        let running = Runnable(polls);
        let res = crate::coop::with_budget(|| future.as_mut().poll(&mut cx));
        drop(running);
        if let Poll::Ready(v) = res {
            return v;
        }
        // Acquire: pairs with the Release in `wake_by_ref`.
        while !waker_state.notified.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}

/// Runs `future` to completion on the calling thread, on the default
/// runtime (one worker per core, or `GOPARK_WORKERS`), which is created on
/// first use. Inside, [`spawn`](crate::spawn) puts tasks on that runtime's workers.
///
/// ```
/// let v = gopark_runtime::block_on(async {
///     let a = gopark_runtime::spawn(async { 20 });
///     let b = gopark_runtime::spawn(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(v, 42);
/// ```
///
/// # Panics
///
/// Panics when called from a worker thread; see [`Runtime::block_on`](crate::Runtime::block_on).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let handle = context::with_current(|h| h.cloned());
    match handle {
        Some(h) => block_on_handle(&h, future),
        None => block_on_handle(default::default_handle(), future),
    }
}
