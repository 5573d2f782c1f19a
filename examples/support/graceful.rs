//! The bookkeeping of a graceful shutdown: one signal that every
//! connection task waits for beside its connection, and a count of the
//! tasks still running that the server can wait on.
//!
//! hyper-util has this as `server::graceful::GracefulShutdown`, but its
//! `server-graceful` feature switches on hyper-util's `tokio` feature (and
//! with it tokio's `rt`): built on `futures` channels here, nothing in the
//! examples asks for a second runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_channel::{mpsc, oneshot};
use futures_util::future::{FutureExt, Shared};
use futures_util::StreamExt;

/// Resolves when the shutdown begins.
pub type Stop = Shared<oneshot::Receiver<()>>;

pub struct Graceful {
    begin: oneshot::Sender<()>,
    stop: Stop,
    done_tx: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
    open: Arc<AtomicUsize>,
}

/// Held by a connection task; dropping it says the task is done.
pub struct Guard {
    _done: mpsc::Sender<()>,
    open: Arc<AtomicUsize>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Relaxed: a count for messages; `done` is what orders the end.
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Graceful {
    pub fn new() -> Graceful {
        let (begin, stop) = oneshot::channel();
        let (done_tx, done) = mpsc::channel(0);
        Graceful {
            begin,
            stop: stop.shared(),
            done_tx,
            done,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// For a new connection task: the stop signal to wait for beside the
    /// connection, and the guard to drop when the connection has ended.
    pub fn watch(&self) -> (Stop, Guard) {
        self.open.fetch_add(1, Ordering::Relaxed);
        let guard = Guard {
            _done: self.done_tx.clone(),
            open: self.open.clone(),
        };
        (self.stop.clone(), guard)
    }

    /// Connection tasks still running.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Begins the shutdown; the future resolves once every guard is gone.
    pub fn shutdown(self) -> impl Future<Output = ()> {
        let Graceful {
            begin,
            done_tx,
            mut done,
            ..
        } = self;
        // Dropping the sender resolves every `Stop` as well; send for clarity.
        let _ = begin.send(());
        drop(done_tx);
        async move {
            // `None` once the last guard's sender is dropped.
            while done.next().await.is_some() {}
        }
    }
}
