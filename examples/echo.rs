//! A TCP echo server: one plain, sequential handler per connection.
//!
//! ```text
//! cargo run --release --example echo [ADDR]
//!
//! ADDR        address to listen on (default 127.0.0.1:7000; port 0 picks a
//!             free port)
//! -h, --help  print this help
//! ```
//!
//! Once bound it prints `listening on ADDR` (the real port when ADDR asked
//! for port 0) on stdout. Every connection gets its own task that reads and
//! writes back what it read until the peer closes. When `accept` runs out of
//! descriptors (`EMFILE`, `ENFILE`) the server backs off — 5 ms, doubling to
//! 1 s — and keeps serving. SIGINT (Ctrl-C) or SIGTERM ends it with exit
//! status 0; bad arguments exit with status 2.
//!
//! Try it with `nc 127.0.0.1 7000`, or load it with
//! `cargo run --release --example load -- echo -c 100 -s 64 -d 10s`.

#[path = "support/nofile.rs"]
mod nofile;

use std::io;
use std::net::ToSocketAddrs;
use std::pin::pin;
use std::process::ExitCode;

use futures_util::future::{select, Either};
use gopark::net::{AcceptBackoff, TcpListener, TcpStream};
use gopark::runtime;
use gopark::signal::unix::{signal, SignalKind};

const DEFAULT_ADDR: &str = "127.0.0.1:7000";
const BUF_SIZE: usize = 16 * 1024;

const USAGE: &str = "\
usage: echo [ADDR]

A TCP echo server on gopark.

  ADDR        address to listen on (default 127.0.0.1:7000; port 0 picks a free port)
  -h, --help  print this help";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = match args.as_slice() {
        [] => DEFAULT_ADDR.to_string(),
        [a] if a == "-h" || a == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [a] if !a.starts_with('-') => a.clone(),
        _ => return usage_error(&format!("unexpected arguments: {}", args.join(" "))),
    };
    if let Err(e) = addr.to_socket_addrs() {
        return usage_error(&format!("invalid address '{addr}': {e}"));
    }

    nofile::raise_limit();
    match runtime::block_on(serve(&addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("echo: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Accepts connections until a signal arrives.
async fn serve(addr: &str) -> io::Result<()> {
    // Before the server says it is listening: from then on SIGINT and
    // SIGTERM end it cleanly.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    println!("listening on {}", listener.local_addr()?);

    let accepting = pin!(accept_loop(&listener));
    let signal = pin!(async {
        match select(pin!(interrupt.recv()), pin!(terminate.recv())).await {
            Either::Left((Some(()), _)) => SignalKind::interrupt(),
            Either::Right((Some(()), _)) => SignalKind::terminate(),
            // Closed: the runtime is shutting down; no signal came.
            Either::Left((None, _)) | Either::Right((None, _)) => std::future::pending().await,
        }
    });
    match select(accepting, signal).await {
        Either::Left((res, _)) => res,
        Either::Right((signal, _)) => {
            println!("{signal}: exiting");
            Ok(())
        }
    }
}

async fn accept_loop(listener: &TcpListener) -> io::Result<()> {
    let mut backoff = AcceptBackoff::new();
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                backoff.reset();
                runtime::spawn(echo(stream));
            }
            Err(e) => backoff.wait(e).await?,
        }
    }
}

/// The handler: read, write back, until end of stream or an error (a reset
/// by the peer is the usual one, and nothing to report).
async fn echo(stream: TcpStream) {
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
