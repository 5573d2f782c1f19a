//! Serving until a signal, then shutting down gracefully: what the hyper,
//! axum, https and todo examples do with their `gopark::hyper::serve`.
//!
//! The first SIGINT or SIGTERM starts `serve`'s graceful shutdown: the
//! listener closes, a line says so on stdout (`SIGTERM: shutting down: no
//! new connections, finishing N open connection(s)`), and the connections
//! finish what is in flight. After the grace period the ones still open
//! are closed, and the server returns anyway. A second signal exits at
//! once, with status 130.
//!
//! The crate including this file includes `signals.rs` too, as `signals`.

use std::future::IntoFuture;
use std::io;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::{select, Either};
use gopark::hyper::serve::{Listener, Serve};

use crate::signals::Signals;

/// SIGINT and SIGTERM, listened for from the moment this is made.
pub struct Shutdown {
    /// Starts the graceful shutdown.
    first: Signals,
    /// Sees the same signal, and exits on the one after it.
    second: Signals,
}

impl Shutdown {
    /// Listens from now on. Made before the server says it is listening:
    /// from then on a SIGTERM means "shut down", never the default "die".
    pub fn listen() -> io::Result<Shutdown> {
        Ok(Shutdown {
            first: Signals::new()?,
            second: Signals::new()?,
        })
    }

    /// Runs `server` until a signal, then shuts it down gracefully within
    /// `grace`; see the module documentation. `name` starts the line of a
    /// shutdown that ran out of time. An error of the server's is returned.
    pub async fn serve<L, S>(
        self,
        name: &str,
        server: Serve<L, S>,
        grace: Duration,
    ) -> io::Result<()>
    where
        L: Listener,
        Serve<L, S>: IntoFuture<Output = io::Result<()>>,
    {
        let Shutdown {
            mut first,
            mut second,
        } = self;
        let which = Arc::new(OnceLock::new());
        let said = which.clone();
        let server = server
            .with_graceful_shutdown(async move {
                let _ = which.set(first.recv().await);
            })
            .on_shutdown(move |open| {
                let signal = said.get().map_or("signal".to_string(), |s| s.to_string());
                println!(
                    "{signal}: shutting down: no new connections, finishing {open} open connection(s)"
                );
            })
            .shutdown_timeout(grace);
        let exit_now = async move {
            second.recv().await;
            let signal = second.recv().await;
            eprintln!("{signal}: exiting now");
            std::process::exit(130)
        };
        match select(pin!(server.into_future()), pin!(exit_now)).await {
            Either::Left((Ok(()), _)) => Ok(()),
            Either::Left((Err(e), _)) if e.kind() == io::ErrorKind::TimedOut => {
                eprintln!("{name}: {e}; exiting anyway");
                Ok(())
            }
            Either::Left((Err(e), _)) => Err(e),
            Either::Right(((), _)) => unreachable!("a second signal exits the process"),
        }
    }
}
