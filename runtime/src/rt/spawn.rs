//! The free functions that reach the current runtime, or the default one:
//! [`spawn`], [`spawn_blocking`], [`yield_now`].

use std::future::Future;
use std::task::Poll;

use super::{context, default::default_handle};
use crate::task::JoinHandle;

/// Spawns a task, like `go f()`: it always works. On a runtime's thread (a
/// worker, a blocking thread, inside `block_on`) the task goes to that
/// runtime; anywhere else, to the default runtime.
///
/// The task starts running at once; awaiting the returned [`JoinHandle`]
/// gives its output, and dropping the handle detaches it.
///
/// ```
/// # gopark_runtime::block_on(async {
/// let handle = gopark_runtime::spawn(async { "done" });
/// assert_eq!(handle.await.unwrap(), "done");
/// # });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // Taken here: the closure below would report itself as the caller.
    let at = std::panic::Location::caller();
    let mut future = Some(future);
    // Borrowed, not cloned: a spawn runs no user code that could enter a
    // runtime, except the destructor of a future refused by a runtime
    // that shuts down, whose panic the task catches.
    let spawned = context::with_current_borrowed(|h| {
        h.map(|h| h.shared.spawn(future.take().expect("spawned once"), at))
    });
    match spawned {
        Some(join) => join,
        None => default_handle()
            .shared
            .spawn(future.take().expect("spawned once"), at),
    }
}

/// Runs a blocking function on a thread of the blocking pool, so it does
/// not stall a worker. Threads are started on demand, up to a cap, and exit
/// after 10 s idle.
///
/// ```
/// # gopark_runtime::block_on(async {
/// let sum = gopark_runtime::spawn_blocking(|| (1..=100u32).sum::<u32>()).await.unwrap();
/// assert_eq!(sum, 5050);
/// # });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let mut f = Some(f);
    let spawned =
        context::with_current(|h| h.map(|h| h.spawn_blocking(f.take().expect("spawned once"))));
    match spawned {
        Some(join) => join,
        None => default_handle().spawn_blocking(f.take().expect("spawned once")),
    }
}

/// Yields to the scheduler once: the task goes to the back of its worker's
/// queue, letting the tasks queued there run first.
///
/// ```
/// # gopark_runtime::block_on(async {
/// gopark_runtime::yield_now().await;
/// # });
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
