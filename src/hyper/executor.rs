//! [`Executor`]: hyper's `rt::Executor` on gopark's scheduler.

use std::future::Future;

/// Runs the tasks hyper spawns (an HTTP/2 connection's streams, a client's
/// connection driver) as gopark tasks, with
/// [`runtime::spawn`](crate::runtime::spawn): on the runtime of the thread
/// that calls it — the connection's own, when hyper calls it from a
/// connection task — or on the default runtime outside one. The tasks are
/// detached. hyper-util's `TokioExecutor`, for gopark.
///
/// ```
/// use futures_channel::oneshot;
/// use gopark::hyper::Executor;
/// use hyper::rt::Executor as _;
///
/// gopark::runtime::block_on(async {
///     let (tx, rx) = oneshot::channel();
///     Executor::new().execute(async move { tx.send(42).unwrap() });
///     assert_eq!(rx.await, Ok(42));
/// });
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Executor {
    _private: (),
}

impl Executor {
    /// An executor that spawns on gopark.
    pub fn new() -> Executor {
        Executor { _private: () }
    }
}

impl<F> hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        // Dropping the JoinHandle detaches the task.
        drop(gopark_runtime::spawn(future));
    }
}
