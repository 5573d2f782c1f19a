//! axum on gopark: an axum `Router` served by gopark's accept loop.
//!
//! ```text
//! cargo run --release --example axum -- [OPTIONS]
//! curl http://127.0.0.1:3000/json
//! curl -H 'content-type: application/json' -d '{"name":"Ada"}' http://127.0.0.1:3000/users
//! curl --http2-prior-knowledge http://127.0.0.1:3000/users/1
//! curl http://127.0.0.1:3000/counter
//! curl -N http://127.0.0.1:3000/stream
//!
//! --addr ADDR   address to listen on (default 127.0.0.1:3000; port 0
//!               picks a free port)
//! --workers N   worker threads (default: one per core, or GOPARK_WORKERS)
//! -h, --help    print the help
//! ```
//!
//! The application (`app.rs`) is plain axum: a JSON route, a path
//! parameter, shared state (`with_state`: a counter and a user table) and a
//! streamed body (`Body::from_stream` of chunks a gopark task produces).
//! axum's own `axum::serve` runs on tokio; here each accepted
//! `gopark::net::TcpStream` goes to hyper-util's `auto` builder (HTTP/1.1
//! and HTTP/2 on one port) with the router as a hyper service, through
//! hyper-util's `TowerToHyperService`. axum is built without its `tokio`
//! feature, so gopark's netpoller is the only reactor in the process.
//!
//! On stdout it prints `listening on http://ADDR` once bound, a line when a
//! shutdown begins and `served N requests` on exit. SIGINT or SIGTERM shuts
//! down gracefully, as the hyper example does: no new connections, requests
//! in flight finished, at most 30 s; a second signal exits at once.

mod app;

#[path = "../support/backoff.rs"]
mod backoff;
#[path = "../support/graceful.rs"]
mod graceful;
#[path = "../support/nofile.rs"]
mod nofile;
#[path = "../support/signals.rs"]
mod signals;

use std::io;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::middleware;
use axum::response::Response;
use futures_util::future::{select, Either};
use gopark::hyper::{Executor, Io, Timer};
use gopark::net::TcpListener;
use gopark::runtime::{self, time::timeout, Builder};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use signals::Signals;

use backoff::Backoff;
use graceful::Graceful;

/// How long a shutdown waits for connections to finish.
const GRACE: Duration = Duration::from_secs(30);
/// How long a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: axum [OPTIONS]

An axum app on gopark, HTTP/1.1 and HTTP/2 (h2c) on one port: GET /,
GET /json, POST /users, GET /users/{id}, GET /counter, GET /stream.

  --addr ADDR   address to listen on (default 127.0.0.1:3000; port 0 picks
                a free port)
  --workers N   worker threads (default: one per core, or GOPARK_WORKERS)
  -h, --help    print this help

SIGINT (Ctrl-C) or SIGTERM shuts down gracefully; a second one exits at once.";

struct Config {
    addr: String,
    workers: Option<usize>,
}

/// Parses the arguments after the program name; `Ok(None)` asks for help.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config {
        addr: "127.0.0.1:3000".to_string(),
        workers: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => config.addr = value()?,
            "--workers" => {
                let v = value()?;
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => config.workers = Some(n),
                    _ => return Err(format!("--workers: expected a positive number, got '{v}'")),
                }
            }
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    Ok(Some(config))
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("axum: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    nofile::raise_limit();
    let mut builder = Builder::new();
    builder.thread_name("axum");
    if let Some(n) = config.workers {
        builder.worker_threads(n);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("axum: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(&config.addr)) {
        Ok(served) => {
            println!("served {served} requests");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("axum: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the app until a signal, then drains; returns how many requests
/// were answered.
async fn serve(addr: &str) -> io::Result<u64> {
    let mut signals = Signals::new()?;
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    println!("listening on http://{}", listener.local_addr()?);

    let served = Arc::new(AtomicU64::new(0));
    let counted = served.clone();
    // The router, with a count of the answers on the way out.
    let app = app::app().layer(middleware::map_response(move |resp: Response| {
        // Relaxed: a statistic, read after every connection ended.
        counted.fetch_add(1, Ordering::Relaxed);
        std::future::ready(resp)
    }));

    let mut builder = auto::Builder::new(Executor::new());
    builder
        .http1()
        .timer(Timer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(Timer::new());
    let graceful = Graceful::new();

    let mut backoff = Backoff::default();
    let signal = {
        let mut stop = pin!(signals.recv());
        loop {
            let (stream, _peer) = match select(pin!(listener.accept()), stop.as_mut()).await {
                Either::Left((Ok(conn), _)) => conn,
                Either::Left((Err(e), _)) => {
                    backoff.wait(e).await?;
                    continue;
                }
                Either::Right((signal, _)) => break signal,
            };
            backoff.reset();
            // axum's Router is a tower service; TowerToHyperService makes
            // it the hyper service the connection calls per request.
            let service = TowerToHyperService::new(app.clone());
            let conn = builder
                .serve_connection(Io::new(stream), service)
                .into_owned();
            let (stop, guard) = graceful.watch();
            runtime::spawn(async move {
                let mut conn = pin!(conn);
                // A client that resets its connection, or sends garbage, is
                // its own problem: the results are not reported.
                if let Either::Right(_) = select(conn.as_mut(), stop).await {
                    // hyper finishes the request in flight, then closes.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                drop(guard);
            });
        }
    };
    drop(listener);
    let open = graceful.open();
    println!("{signal}: shutting down: no new connections, finishing {open} open connection(s)");
    match select(
        pin!(timeout(GRACE, graceful.shutdown())),
        pin!(signals.recv()),
    )
    .await
    {
        Either::Left((Ok(()), _)) => {}
        Either::Left((Err(_), _)) => {
            eprintln!("axum: connections still open after {GRACE:?}; exiting anyway")
        }
        Either::Right((signal, _)) => {
            eprintln!("{signal}: exiting now");
            std::process::exit(130);
        }
    }
    Ok(served.load(Ordering::Relaxed))
}
