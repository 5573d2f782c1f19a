//! A TCP proxy: every connection accepted is joined to a new connection to
//! the upstream, and bytes flow both ways until both sides are done.
//!
//! ```text
//! cargo run --release --example proxy -- [LISTEN] UPSTREAM
//!
//! LISTEN      address to listen on (default 127.0.0.1:7001; port 0 picks
//!             a free port)
//! UPSTREAM    address to forward to, e.g. 127.0.0.1:7000
//! -h, --help  print this help
//! ```
//!
//! Once bound it prints `listening on ADDR` on stdout. Each connection is
//! one task running [`gopark::io::copy_bidirectional`]: an end of stream
//! from either side is passed on as a write shutdown to the other, so a
//! half-closed conversation (a client that sends its request, then shuts
//! down its side) works through the proxy. An upstream that refuses the
//! connection closes the client's. SIGINT or SIGTERM ends the proxy with
//! exit status 0; bad arguments exit with status 2.
//!
//! Try it in front of the echo example:
//! `cargo run --release --example echo` in one shell,
//! `cargo run --release --example proxy -- 127.0.0.1:7000` in another, then
//! `nc 127.0.0.1 7001`.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::pin;
use std::process::ExitCode;

use futures_util::future::{select, Either};
use gopark::net::{AcceptBackoff, TcpListener, TcpStream};
use gopark::runtime;
use gopark::signal::unix::{signal, SignalKind};

const DEFAULT_LISTEN: &str = "127.0.0.1:7001";

const USAGE: &str = "\
usage: proxy [LISTEN] UPSTREAM

A TCP proxy on gopark.

  LISTEN      address to listen on (default 127.0.0.1:7001; port 0 picks a free port)
  UPSTREAM    address to forward every connection to
  -h, --help  print this help";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let (listen, upstream) = match args.as_slice() {
        [upstream] => (DEFAULT_LISTEN.to_string(), upstream.clone()),
        [listen, upstream] => (listen.clone(), upstream.clone()),
        _ => return usage_error("expected [LISTEN] UPSTREAM"),
    };
    let upstream = match upstream.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        Ok(None) => return usage_error(&format!("'{upstream}' names no address")),
        Err(e) => return usage_error(&format!("invalid upstream '{upstream}': {e}")),
    };
    match runtime::block_on(serve(&listen, upstream)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("proxy: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Accepts connections until a signal arrives.
async fn serve(listen: &str, upstream: SocketAddr) -> io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let listener = TcpListener::bind(listen)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    println!("listening on {}", listener.local_addr()?);

    let accepting = pin!(accept_loop(&listener, upstream));
    let signal = pin!(async {
        match select(pin!(interrupt.recv()), pin!(terminate.recv())).await {
            Either::Left((Some(()), _)) => SignalKind::interrupt(),
            Either::Right((Some(()), _)) => SignalKind::terminate(),
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

async fn accept_loop(listener: &TcpListener, upstream: SocketAddr) -> io::Result<()> {
    let mut backoff = AcceptBackoff::new();
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                backoff.reset();
                runtime::spawn(async move {
                    if let Err(e) = forward(client, upstream).await {
                        eprintln!("proxy: {peer}: {e}");
                    }
                });
            }
            Err(e) => backoff.wait(e).await?,
        }
    }
}

/// One connection: dial the upstream, then copy both ways until both
/// sides have ended their streams.
async fn forward(mut client: TcpStream, upstream: SocketAddr) -> io::Result<()> {
    let mut server = TcpStream::connect(upstream)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("upstream {upstream}: {e}")))?;
    gopark::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
