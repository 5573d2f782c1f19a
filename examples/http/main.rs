//! An HTTP/1.1 server on gopark, built the way a careful server is built.
//!
//! ```text
//! cargo run --release --example http -- [OPTIONS]
//! curl localhost:8080/
//!
//! --addr ADDR             address to listen on (default 127.0.0.1:8080;
//!                         port 0 picks a free port)
//! --workers N             worker threads (default: one per core, or the
//!                         GOPARK_WORKERS environment variable)
//! --header-timeout SECS   time a client has to send a request's headers
//!                         (default 10; fractions allowed)
//! --idle-timeout SECS     time a keep-alive connection may wait for its
//!                         next request (default 60)
//! --write-timeout SECS    time a client has to take a batch of replies
//!                         (default 10)
//! --send-buffer BYTES     socket send buffer of each connection (default
//!                         131072, which Linux doubles; 0: the kernel's
//!                         autotuning)
//! --metrics               also serve /debug/metrics and /debug/tasks
//! -h, --help              print the help
//! ```
//!
//! Routes: `GET /` answers `Hello, World!` (text/plain), `GET /json` a small
//! JSON document, other methods on those paths 405, anything else 404. HEAD
//! works wherever GET does. With `--metrics` (off by default), `GET
//! /debug/metrics` answers the runtime's counters
//! (`RuntimeMetrics::snapshot`) and `GET /debug/tasks` a dump of every live
//! task (`Handle::dump`), both as text.
//!
//! On stdout it prints `listening on http://ADDR` once bound (the real port
//! when ADDR asked for port 0), a line when a shutdown begins, and
//! `served N requests` (every reply written, errors included) on exit.
//! Bad arguments print the help on stderr and exit with status 2.
//!
//! # Protocol
//!
//! * Requests are parsed with `httparse`. Connections persist (HTTP/1.1)
//!   unless the request says `Connection: close`; HTTP/1.0 connections
//!   close unless the request says `Connection: keep-alive`.
//! * Pipelined requests are answered in order, and all the replies to the
//!   requests of one read go out in one write (in 32 KiB batches when
//!   there are very many).
//! * Bodies (up to 8 MiB), with a `Content-Length` or chunked, are read and
//!   discarded; `Expect: 100-continue` is honoured. Chunked is the only
//!   transfer coding: another one (`gzip, chunked`) gets 501 and a close.
//! * Refused with 400 and a close: a malformed request line, target or
//!   header (obs-fold, a space before the colon), both `Content-Length` and
//!   `Transfer-Encoding`, conflicting or invalid `Content-Length`, a
//!   `Transfer-Encoding` that does not end in chunked, a malformed chunked
//!   body, a missing, repeated or invalid `Host` (see `request` and
//!   `chunked`). With 431: a head over 8 KiB or over 64 header fields; 414
//!   if the request line alone is over 8 KiB; 505: a version other than
//!   HTTP/1.0 and 1.1; 413: a body over 8 MiB.
//! * Deadlines are the socket's deadlines: a client gets
//!   `--header-timeout` to send a request head (slowloris clients are cut
//!   off, with a 408), an idle keep-alive connection `--idle-timeout`, and a
//!   client that does not read its replies `--write-timeout`.
//! * The connections' send buffer is fixed (`--send-buffer`): with the
//!   kernel's autotuning, a client that pipelines requests and never reads
//!   could park megabytes of replies in kernel memory per connection (on
//!   loopback it grows to 4 MiB) without a write ever blocking, so the
//!   write deadline would never fire. Replies here are small; 256 KiB of
//!   buffer costs them nothing.
//! * The `Date` header is formatted once per second, not per request.
//!
//! # Shutdown
//!
//! SIGINT (Ctrl-C) or SIGTERM: stop accepting, close idle connections,
//! let requests in flight finish (their replies say `Connection: close`),
//! then exit with status 0 — after at most 30 s even if some client never
//! finishes. A second signal exits at once. The signals arrive through
//! `gopark::signal`, listened for before the server says it is listening.

mod args;
mod chunked;
mod conn;
mod date;
mod framing;
mod request;
mod response;

#[path = "../support/nofile.rs"]
mod nofile;
#[path = "../support/signals.rs"]
mod signals;

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_channel::mpsc;
use futures_util::StreamExt;
use gopark::net::{AcceptBackoff, TcpListener};
use gopark::runtime::{self, time::timeout, Builder};
use signals::Signals;

use args::{Command, Config};
use conn::Conn;

/// How long a shutdown waits for connections to finish.
const GRACE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let config = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Serve(config)) => config,
        Ok(Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("http: {msg}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };

    nofile::raise_limit();
    let mut builder = Builder::new();
    builder.thread_name("http");
    if let Some(n) = config.workers {
        builder.worker_threads(n);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("http: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(config)) {
        Ok(served) => {
            println!("served {served} requests");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("http: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the connections share: the settings, the stopping flag, and the
/// open connections (to close the idle ones at shutdown).
pub struct Server {
    pub config: Config,
    /// The runtime, for `/debug/metrics` and `/debug/tasks` (`--metrics`).
    pub runtime: Option<gopark::runtime::Handle>,
    stopping: AtomicBool,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    served: AtomicU64,
}

impl Server {
    fn new(config: Config) -> Server {
        Server {
            runtime: config.metrics.then(gopark::runtime::Handle::current),
            config,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// Whether a shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        // Acquire: pairs with the Release in `begin_shutdown`. Connections
        // that must not miss the flag read it under their own lock, which
        // `begin_shutdown` takes after setting it (see `conn`).
        self.stopping.load(Ordering::Acquire)
    }

    /// Sets the stopping flag, then kicks every idle connection.
    fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        for conn in self.conns.lock().unwrap().values() {
            conn.kick();
        }
    }

    pub fn register(&self, conn: Arc<Conn>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns.lock().unwrap().insert(id, conn);
        id
    }

    pub fn unregister(&self, id: u64) {
        self.conns.lock().unwrap().remove(&id);
    }

    fn open_connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

/// Serves until a signal, then drains; returns how many replies were
/// written.
async fn serve(config: Config) -> io::Result<u64> {
    // Before the server says it is listening: from then on a SIGTERM means
    // "shut down", never the default "die".
    let signals = Signals::new()?;
    let listener = TcpListener::bind(&config.addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.addr)))?;
    if let Some(bytes) = config.send_buffer {
        // Accepted sockets inherit it from the listener.
        set_send_buffer(&listener, bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot set SO_SNDBUF: {e}")))?;
    }
    println!("listening on http://{}", listener.local_addr()?);
    let listener = Arc::new(listener);
    let server = Arc::new(Server::new(config));
    runtime::spawn(watch_signals(signals, server.clone(), listener.clone()));

    // Every connection task holds a sender; when all are gone, `done`
    // yields `None`.
    let (done_tx, mut done) = mpsc::channel::<()>(0);
    let mut backoff = AcceptBackoff::new();
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                backoff.reset();
                let server = server.clone();
                let done_tx = done_tx.clone();
                runtime::spawn(async move {
                    let served = conn::serve(&server, stream).await;
                    // Relaxed: read after every connection task has ended,
                    // which the channel orders.
                    server.served.fetch_add(served, Ordering::Relaxed);
                    drop(done_tx);
                });
            }
            // The signal watcher closed the listener.
            Err(_) if server.is_stopping() => break,
            Err(e) => backoff.wait(e).await?,
        }
    }
    drop(listener); // the last reference: new connections are now refused
    drop(done_tx);

    let open = server.open_connections();
    if open > 0 {
        println!("waiting for {open} connection(s) to finish");
    }
    if timeout(GRACE, done.next()).await.is_err() {
        eprintln!(
            "http: {} connection(s) still open after {GRACE:?}; exiting anyway",
            server.open_connections()
        );
    }
    Ok(server.served.load(Ordering::Relaxed))
}

/// Sets `SO_SNDBUF` on `listener` (the kernel doubles the value).
fn set_send_buffer(listener: &TcpListener, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: the descriptor is the listener's, open for this call; the
    // option value is a c_int that lives across the call, and its size is
    // passed.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits for SIGINT or SIGTERM and begins the shutdown; a second signal
/// exits at once.
async fn watch_signals(mut signals: Signals, server: Arc<Server>, listener: Arc<TcpListener>) {
    let signal = signals.recv().await;
    println!("{signal}: shutting down: no new connections, finishing requests in flight");
    server.begin_shutdown();
    // Fails the parked accept; the accept loop sees the flag and stops.
    listener.poll_desc().close();
    drop(listener);
    let signal = signals.recv().await;
    eprintln!("{signal}: exiting now");
    std::process::exit(130);
}
