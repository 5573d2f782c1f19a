//! No descriptor leaks: after 500 connect/accept/close cycles, ended in all
//! the ways a connection ends (closed by either side, reset, timed out,
//! aborted while parked, split into halves), the process has exactly the descriptors it
//! had before and the runtime has exactly the registrations it had before;
//! after the runtime is dropped, its own descriptors are gone too.
//!
//! This file holds one test, which runs its worker counts one after the
//! other: /proc/self/fd counts the whole process, so no other test may open
//! descriptors meanwhile.

mod support;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, Builder};
use support::leak::{self, client_side, on_each_runtime, server_side, Census};
use support::proc::fd_count;
use support::rt::Watchdog;

const CYCLES: u64 = 500;
const BATCH: u64 = 50;

async fn serve(stream: TcpStream) -> io::Result<()> {
    let Some((stream, i)) = server_side(stream).await? else {
        return Ok(());
    };
    // A reset client: its reset, or its end of stream if it came first.
    match stream.read(&mut [0u8; 8]).await {
        Ok(0) => Ok(()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
        other => panic!("connection {i}: server read {other:?}"),
    }
}

async fn client(addr: SocketAddr, i: u64) -> io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    if let Some(stream) = client_side(stream, i).await? {
        stream.set_linger(Some(Duration::ZERO))?;
    }
    Ok(())
}

async fn cycles() -> io::Result<()> {
    let census = Census::take();

    let listener = Arc::new(TcpListener::bind("127.0.0.1:0")?);
    let addr = listener.local_addr()?;
    let accept = move || {
        let listener = listener.clone();
        async move { Ok(listener.accept().await?.0) }
    };
    leak::cycles(CYCLES, BATCH, accept, serve, |i| client(addr, i)).await?;
    // Failed connects and binds must not leak either.
    for _ in 0..50 {
        assert!(TcpStream::connect(support::net::closed_port()?)
            .await
            .is_err());
    }

    census.assert_back(&format!("{CYCLES} cycles")).await;
    Ok(())
}

#[test]
fn no_descriptor_leaks() {
    on_each_runtime("fd leak", Duration::from_secs(30), cycles);
    // A runtime dropped with descriptors still registered and tasks still
    // parked on them closes them all.
    let before = fd_count();
    let dog = Watchdog::start("runtime drop", Duration::from_secs(30));
    let rt = Builder::new().worker_threads(2).build().unwrap();
    let addr = rt
        .block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            runtime::spawn(async move {
                loop {
                    let (s, _) = listener.accept().await?;
                    runtime::spawn(async move { s.read(&mut [0u8; 8]).await });
                }
                #[allow(unreachable_code)]
                Ok::<_, io::Error>(())
            });
            let mut clients = Vec::new();
            for _ in 0..20 {
                clients.push(TcpStream::connect(addr).await?);
            }
            // The clients are moved into parked tasks too.
            for c in clients {
                runtime::spawn(async move { c.read(&mut [0u8; 8]).await });
            }
            Ok::<_, io::Error>(addr)
        })
        .unwrap();
    assert!(fd_count() > before);
    drop(rt);
    dog.disarm();
    assert_eq!(
        fd_count(),
        before,
        "descriptors left behind by a dropped runtime"
    );
    // The listener is closed: its port refuses connections.
    let refused = std::net::TcpStream::connect(addr).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}
