//! Bench-only: the tokio twin of `examples/echo.rs`, for `scripts/compare.sh`.
//!
//! ```text
//! cargo run --release --example tokio_echo -- [ADDR] [--workers N]
//! ```
//!
//! The same logic as gopark's echo example: one task per connection that
//! reads into a 16 KiB buffer and writes back what it read until the peer
//! closes; `TCP_NODELAY` on (gopark's and Go's default, not tokio's); the
//! same `accept` back-off on running out of descriptors. It runs on tokio's
//! multi-thread runtime with `--workers N` worker threads (default: one per
//! core), prints `listening on ADDR` once bound, and exits with status 0
//! on SIGINT or SIGTERM.

#[path = "common.rs"]
mod common;
#[path = "../../examples/support/nofile.rs"]
mod nofile;

use std::io;
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

const DEFAULT_ADDR: &str = "127.0.0.1:7000";
const BUF_SIZE: usize = 16 * 1024;

const USAGE: &str = "\
usage: tokio_echo [ADDR] [--workers N]

A TCP echo server on tokio (the twin of gopark's echo example, for benchmarks).

  ADDR          address to listen on (default 127.0.0.1:7000; port 0 picks a free port)
  --workers N   worker threads (default: one per core)
  -h, --help    print this help";

fn main() -> ExitCode {
    let mut addr = DEFAULT_ADDR.to_string();
    let mut workers = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--workers" => match args.next().and_then(|v| v.parse::<usize>().ok()) {
                Some(n) if (1..=1024).contains(&n) => workers = Some(n),
                _ => return usage_error("--workers needs an integer from 1 to 1024"),
            },
            a if !a.starts_with('-') => addr = a.to_string(),
            a => return usage_error(&format!("unknown argument '{a}'")),
        }
    }

    nofile::raise_limit();
    let rt = match common::runtime(workers, "tokio-echo") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio_echo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(&addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("tokio_echo: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

async fn serve(addr: &str) -> io::Result<()> {
    let listener = common::bind(addr, None)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    println!("listening on {}", listener.local_addr()?);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    tokio::select! {
        res = accept_loop(&listener) => res,
        _ = sigint.recv() => Ok(()),
        _ = sigterm.recv() => Ok(()),
    }
}

async fn accept_loop(listener: &TcpListener) -> io::Result<()> {
    let mut delay = None;
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                delay = None;
                tokio::spawn(echo(stream));
            }
            Err(e) => delay = Some(common::backoff(e, delay).await?),
        }
    }
}

async fn echo(mut stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
