//! No descriptor leaks with Unix sockets: after connections ended in every
//! way a connection ends (closed by either side, reset, timed out, aborted
//! while parked, split into halves), pairs, datagram sockets, and connects
//! and binds that failed, the process has exactly the descriptors it had
//! before and the runtime exactly its registrations; after the runtime is
//! dropped, its own descriptors are gone too.
//!
//! This file holds one test, which runs its worker counts one after the
//! other: /proc/self/fd counts the whole process, so no other test may open
//! descriptors meanwhile.

mod support;

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gopark::net::{UnixDatagram, UnixListener, UnixStream};
use gopark::runtime::time::timeout;
use support::leak::{self, client_side, on_each_runtime, server_side, Census};

const CYCLES: u64 = 300;
const BATCH: u64 = 50;

async fn serve(stream: UnixStream) -> io::Result<()> {
    let Some((stream, i)) = server_side(stream).await? else {
        return Ok(());
    };
    // Leave a byte unread on the client's side, then wait for its reset.
    stream.write_all(b"x").await?;
    match stream.read(&mut [0u8; 8]).await {
        Ok(0) => Ok(()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
        other => panic!("connection {i}: server read {other:?}"),
    }
}

async fn client(path: PathBuf, i: u64) -> io::Result<()> {
    let stream = UnixStream::connect(&path).await?;
    if let Some(stream) = client_side(stream, i).await? {
        // The server's extra byte arrives; drop without reading it.
        stream.peek(&mut [0u8; 1]).await?;
    }
    Ok(())
}

/// Pairs, datagram sockets and failed operations, each closed at the end.
async fn the_rest(dir: &Path) -> io::Result<()> {
    for i in 0..50u64 {
        let (a, b) = UnixStream::pair()?;
        a.write_all(b"p").await?;
        let mut one = [0u8; 1];
        b.read_exact(&mut one).await?;
        let (x, y) = UnixDatagram::pair()?;
        x.send(b"d").await?;
        y.recv(&mut one).await?;
        let path = dir.join(format!("dgram-{i}.sock"));
        let bound = UnixDatagram::bind(&path)?;
        UnixDatagram::unbound()?.send_to(b"u", &path).await?;
        bound.recv_from(&mut one).await?;
        // Failures: nothing there, a stale file, a file in the way.
        drop(bound);
        assert!(UnixStream::connect(&path).await.is_err());
        assert!(UnixDatagram::bind(&path).is_err());
        assert!(UnixListener::bind(&path).is_err());
        std::fs::remove_file(&path)?;
        assert!(UnixStream::connect(&path).await.is_err());
        assert!(UnixDatagram::unbound()?.send_to(b"u", &path).await.is_err());
    }
    // A connect given up while it waits for room in a full accept queue.
    let path = dir.join("full.sock");
    let listener = UnixListener::bind(&path)?;
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `listen` on a live socket descriptor we own.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    }
    let first = UnixStream::connect(&path).await?;
    for _ in 0..5 {
        assert!(
            timeout(Duration::from_millis(10), UnixStream::connect(&path))
                .await
                .is_err()
        );
    }
    drop((first, listener));
    std::fs::remove_file(&path)?;
    Ok(())
}

async fn cycles() -> io::Result<()> {
    let census = Census::take();
    let dir = std::env::temp_dir().join(format!("gopark-unix-fd-leak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir)?;

    let path = dir.join("listener.sock");
    let listener = Arc::new(UnixListener::bind(&path)?);
    let accept = move || {
        let listener = listener.clone();
        async move { Ok(listener.accept().await?.0) }
    };
    leak::cycles(CYCLES, BATCH, accept, serve, |i| client(path.clone(), i)).await?;
    the_rest(&dir).await?;
    std::fs::remove_dir_all(&dir)?;

    census.assert_back(&format!("{CYCLES} cycles")).await;
    Ok(())
}

#[test]
fn no_descriptor_leaks() {
    on_each_runtime("unix fd leak", Duration::from_secs(60), cycles);
}
