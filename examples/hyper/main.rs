//! hyper on gopark: HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) on one
//! port, with a graceful shutdown.
//!
//! ```text
//! cargo run --release --example hyper -- [OPTIONS]
//! curl http://127.0.0.1:3000/
//! curl --http2-prior-knowledge http://127.0.0.1:3000/json
//! curl --data-binary @some-file http://127.0.0.1:3000/echo
//!
//! --addr ADDR   address to listen on (default 127.0.0.1:3000; port 0
//!               picks a free port)
//! --workers N   worker threads (default: one per core, or GOPARK_WORKERS)
//! -h, --help    print the help
//! ```
//!
//! Routes (see `service.rs`): `GET /` answers `Hello, World!`, `GET /json`
//! a small JSON document, `POST /echo` streams the request body back;
//! another method gets 405, another path 404.
//!
//! `gopark::hyper::serve` runs the accept loop: each connection goes to
//! hyper-util's `auto` builder, which speaks HTTP/2 to a client that opens
//! with the HTTP/2 preface and HTTP/1.1 to the others, on a gopark task of
//! its own (a client gets 10 s to send a request's headers). This file is
//! the command line and the signals; the routes are in `service.rs`.
//!
//! On stdout it prints `listening on http://ADDR` once bound (the real port
//! when ADDR asked for port 0), a line when a shutdown begins, and `served N
//! requests` on exit. Bad arguments print the help on stderr and exit with
//! status 2.
//!
//! # Shutdown
//!
//! SIGINT (Ctrl-C) or SIGTERM: stop accepting, and tell every connection to
//! shut down gracefully (`serve`'s `with_graceful_shutdown`): a request in
//! flight is finished and answered (with `Connection: close` on HTTP/1.1,
//! after a GOAWAY on HTTP/2), idle connections close at once. The server
//! exits with status 0 when the last connection is done, or after 30 s
//! (closing what is left) even if some client never finishes. A second
//! signal exits at once, with status 130.

mod service;

#[path = "../support/nofile.rs"]
mod nofile;
#[path = "../support/shutdown.rs"]
mod shutdown;
#[path = "../support/signals.rs"]
mod signals;

use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gopark::hyper::serve;
use gopark::net::TcpListener;
use gopark::runtime::Builder;
use hyper::service::service_fn;
use shutdown::Shutdown;

/// How long a shutdown waits for connections to finish.
const GRACE: Duration = Duration::from_secs(30);
/// How long a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: hyper [OPTIONS]

hyper on gopark: HTTP/1.1 and HTTP/2 (h2c) on one port. GET / answers
'Hello, World!', GET /json a small JSON document, POST /echo the body.

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
            eprintln!("hyper: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    nofile::raise_limit();
    let mut builder = Builder::new();
    builder.thread_name("hyper");
    if let Some(n) = config.workers {
        builder.worker_threads(n);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hyper: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve_until_signal(&config.addr)) {
        Ok(served) => {
            println!("served {served} requests");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hyper: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until a signal, then drains; returns how many requests were
/// answered.
async fn serve_until_signal(addr: &str) -> io::Result<u64> {
    // Before the server says it is listening.
    let shutdown = Shutdown::listen()?;
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    println!("listening on http://{}", listener.local_addr()?);

    let served = Arc::new(AtomicU64::new(0));
    let counted = served.clone();
    let service = service_fn(move |req| {
        let counted = counted.clone();
        async move {
            let resp = service::route(req).await;
            // Relaxed: a statistic, read after every connection ended.
            counted.fetch_add(1, Ordering::Relaxed);
            resp
        }
    });
    let server = serve(listener, service).configure(|b| {
        b.http1().header_read_timeout(HEADER_TIMEOUT);
    });
    shutdown.serve("hyper", server, GRACE).await?;
    Ok(served.load(Ordering::Relaxed))
}
