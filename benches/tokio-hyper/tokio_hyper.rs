//! Bench-only: the tokio twin of `examples/hyper`, for
//! `scripts/hyper-compare.sh`.
//!
//! ```text
//! cargo run --release --manifest-path benches/tokio-hyper/Cargo.toml -- [--addr ADDR] [--workers N]
//! ```
//!
//! The same service (`examples/hyper/service.rs`, included as it is), the
//! same hyper-util `auto` builder with the same settings (a 10 s header
//! timeout, HTTP/2 with the runtime's timer), a graceful shutdown through
//! hyper-util's `GracefulShutdown`, and the listener, accept
//! back-off and runtime of the other tokio twins
//! (`benches/servers/common.rs`). Where
//! the gopark example has `gopark::hyper::{Io, Executor, Timer}`, this has
//! hyper-util's `TokioIo`, `TokioExecutor` and `TokioTimer`.

#[path = "../servers/common.rs"]
mod common;
#[path = "../../examples/support/nofile.rs"]
mod nofile;
#[path = "../../examples/hyper/service.rs"]
mod service;

use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::signal::unix::{signal, SignalKind};

use hyper_util::server::graceful::GracefulShutdown;

const GRACE: Duration = Duration::from_secs(30);
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let mut addr = "127.0.0.1:3000".to_string();
    let mut workers = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().unwrap_or_default(),
            "--workers" => workers = args.next().and_then(|v| v.parse().ok()),
            _ => {
                eprintln!("usage: tokio_hyper [--addr ADDR] [--workers N]");
                return ExitCode::from(2);
            }
        }
    }
    nofile::raise_limit();
    let rt = match common::runtime(workers, "tokio-hyper") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio_hyper: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(&addr)) {
        Ok(served) => {
            println!("served {served} requests");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tokio_hyper: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: &str) -> io::Result<u64> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let listener = common::bind(addr, None)?;
    println!("listening on http://{}", listener.local_addr()?);

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let served = Arc::new(AtomicU64::new(0));
    let mut delay = None;

    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    delay = Some(common::backoff(e, delay).await?);
                    continue;
                }
            },
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        };
        delay = None;
        // As gopark's sockets have it by default.
        stream.set_nodelay(true)?;
        let served = served.clone();
        let service = service_fn(move |req| {
            let served = served.clone();
            async move {
                let resp = service::route(req).await;
                served.fetch_add(1, Ordering::Relaxed);
                resp
            }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    println!(
        "shutting down: no new connections, finishing {} open connection(s)",
        graceful.count()
    );
    let _ = tokio::time::timeout(GRACE, graceful.shutdown()).await;
    Ok(served.load(Ordering::Relaxed))
}
