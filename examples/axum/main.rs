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
//! axum's own `axum::serve` runs on tokio; here `gopark::hyper::serve`
//! serves the router (a tower service) on gopark, HTTP/1.1 and HTTP/2 on
//! one port. axum is built without its `tokio` feature, so gopark's
//! netpoller is the only reactor in the process.
//!
//! On stdout it prints `listening on http://ADDR` once bound, a line when a
//! shutdown begins and `served N requests` on exit. SIGINT or SIGTERM shuts
//! down gracefully, as the hyper example does: no new connections, requests
//! in flight finished, at most 30 s; a second signal exits at once.

mod app;

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

use axum::middleware;
use axum::response::Response;
use gopark::hyper::serve;
use gopark::net::TcpListener;
use gopark::runtime::Builder;
use shutdown::Shutdown;

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
    match rt.block_on(serve_until_signal(&config.addr)) {
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
async fn serve_until_signal(addr: &str) -> io::Result<u64> {
    // Before the server says it is listening.
    let shutdown = Shutdown::listen()?;
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

    let server = serve(listener, app).configure(|b| {
        b.http1().header_read_timeout(HEADER_TIMEOUT);
    });
    shutdown.serve("axum", server, GRACE).await?;
    Ok(served.load(Ordering::Relaxed))
}
