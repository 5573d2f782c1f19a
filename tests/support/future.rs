//! Futures that report on themselves, and guards that count drops.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_channel::oneshot;

/// Wraps a future and fires a signal the first time it returns `Pending`,
/// i.e. once it has registered its waker and parked. Whoever receives the
/// signal knows the wrapped operation is parked, and can stage "wake a
/// parked task" (close its socket, set its deadline, reset its peer)
/// without sleeping and hoping.
///
/// The signal is a oneshot sender (see [`signal_pending`]) that a task
/// awaits, or a [`Parked`] count (see [`report_pending`]) that a plain
/// thread waits on for many tasks at once.
pub struct SignalPending<F, S: Signal = oneshot::Sender<()>> {
    fut: F,
    signal: Option<S>,
}

/// Where [`SignalPending`] reports.
pub trait Signal: Unpin {
    /// The wrapped future returned `Pending` for the first time.
    fn fire(self);
}

impl Signal for oneshot::Sender<()> {
    fn fire(self) {
        let _ = self.send(());
    }
}

impl Signal for Arc<Parked> {
    fn fire(self) {
        self.one();
    }
}

impl<F: Future + Unpin, S: Signal> SignalPending<F, S> {
    /// Wraps `fut`, which must be `Unpin`: a `Pin<Box<_>>`, or a
    /// `Pin<&mut _>` from `std::pin::pin!` where a test must not allocate.
    pub fn new(fut: F, signal: S) -> SignalPending<F, S> {
        SignalPending {
            fut,
            signal: Some(signal),
        }
    }
}

/// `(future that signals when it first parks, receiver of that signal)`.
pub fn signal_pending<F: Future>(fut: F) -> (SignalPending<Pin<Box<F>>>, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    (SignalPending::new(Box::pin(fut), tx), rx)
}

/// `fut`, counted in `parked` the first time it returns `Pending`.
pub fn report_pending<F: Future>(
    parked: &Arc<Parked>,
    fut: F,
) -> SignalPending<Pin<Box<F>>, Arc<Parked>> {
    SignalPending::new(Box::pin(fut), parked.clone())
}

impl<F: Future + Unpin, S: Signal> Future for SignalPending<F, S> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let res = Pin::new(&mut self.fut).poll(cx);
        if res.is_pending() {
            if let Some(signal) = self.signal.take() {
                signal.fire();
            }
        }
        res
    }
}

/// Counts the futures of [`report_pending`] that have parked; a plain
/// thread waits until enough have.
#[derive(Default)]
pub struct Parked {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Parked {
    pub fn new() -> Arc<Parked> {
        Arc::default()
    }

    fn one(&self) {
        *self.count.lock().unwrap() += 1;
        self.changed.notify_all();
    }

    /// How many have parked so far.
    pub fn count(&self) -> usize {
        *self.count.lock().unwrap()
    }

    /// Blocks until `n` have parked; panics after `limit`.
    pub fn wait(&self, n: usize, limit: Duration) {
        let c = self.count.lock().unwrap();
        let (c, res) = self
            .changed
            .wait_timeout_while(c, limit, |c| *c < n)
            .unwrap();
        assert!(!res.timed_out(), "only {} of {n} tasks parked", *c);
    }
}

/// Polls `fut` exactly once with a no-op waker.
pub fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    Pin::new(fut).poll(&mut cx)
}

/// Counts how many of its guards were dropped.
#[derive(Clone, Default)]
pub struct DropCount(Arc<AtomicUsize>);

/// Bumps its [`DropCount`] when dropped.
pub struct DropGuard(Arc<AtomicUsize>);

impl DropCount {
    pub fn new() -> DropCount {
        DropCount::default()
    }

    pub fn guard(&self) -> DropGuard {
        DropGuard(self.0.clone())
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs a closure when dropped.
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}
