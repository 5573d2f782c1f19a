//! Cooperative scheduling budget.
//!
//! A socket whose reads never return `EAGAIN` would let its task run
//! forever and starve every other task on the worker. So each task poll
//! gets a budget of [`BUDGET`] operations; every I/O operation and
//! `JoinHandle` poll spends one, and once it is spent the operation wakes
//! its own task and returns `Pending` once, sending it to the back of the
//! queue. `block_on` gives each poll of its future a budget too, so a
//! future behaves there as in a task (`block_on` polls it again at once:
//! nothing else waits on that thread). Outside both (a foreign executor)
//! the budget is unlimited.

use std::cell::Cell;
use std::task::Context;

/// Operations a task may do in one poll before it yields.
pub(crate) const BUDGET: u8 = 128;

thread_local! {
    static REMAINING: Cell<Option<u8>> = const { Cell::new(None) };
}

/// Runs `f` (one task poll) with a fresh budget.
#[inline]
pub(crate) fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(Option<u8>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = REMAINING.try_with(|r| r.set(self.0));
        }
    }
    let prev = REMAINING.with(|r| r.replace(Some(BUDGET)));
    let _reset = Reset(prev);
    f()
}

/// Spends one unit of budget. Returns `false` if the budget was spent, after
/// arranging for the task to be polled again.
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> bool {
    let ok = REMAINING
        .try_with(|r| match r.get() {
            None => true,
            Some(0) => false,
            Some(n) => {
                r.set(Some(n - 1));
                true
            }
        })
        .unwrap_or(true);
    if !ok {
        cx.waker().wake_by_ref();
    }
    ok
}

/// Lifts the budget for the rest of this poll (blocking tasks).
pub(crate) fn stop() {
    let _ = REMAINING.try_with(|r| r.set(None));
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Count(std::sync::atomic::AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn budget_runs_out_and_wakes_once() {
        let count = Arc::new(Count(Default::default()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        with_budget(|| {
            for _ in 0..BUDGET {
                assert!(poll_proceed(&mut cx));
            }
            assert!(!poll_proceed(&mut cx));
        });
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Outside a task poll there is no limit.
        for _ in 0..1000 {
            assert!(poll_proceed(&mut cx));
        }
    }
}
