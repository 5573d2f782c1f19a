//! SIGINT and SIGTERM as one awaitable stream, for the examples' graceful
//! shutdown, through `gopark::signal`.

use std::io;
use std::pin::pin;

use futures_util::future::{select, Either};
use gopark::signal::unix::{signal, Signal, SignalKind};

/// SIGINT and SIGTERM, listened for from the moment this is made.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub fn new() -> io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for SIGINT or SIGTERM; returns which came. Once the
    /// listeners are closed (the runtime is shutting down, and the task
    /// waiting here is about to be dropped) no signal came and none will:
    /// it never returns.
    pub async fn recv(&mut self) -> SignalKind {
        match select(pin!(self.interrupt.recv()), pin!(self.terminate.recv())).await {
            Either::Left((Some(()), _)) => SignalKind::interrupt(),
            Either::Right((Some(()), _)) => SignalKind::terminate(),
            Either::Left((None, _)) | Either::Right((None, _)) => std::future::pending().await,
        }
    }
}
