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

mod net_support;

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use gopark::net::{UnixDatagram, UnixListener, UnixStream};
use gopark::runtime::{self, time::timeout};
use net_support::{fd_count, handle, signal_pending};

const CYCLES: u64 = 300;
const BATCH: u64 = 50;

/// How connection `i` ends.
#[derive(Clone, Copy, Debug)]
enum End {
    /// The client closes first; the server reads end of stream.
    ClientCloses,
    /// The server closes first; the client reads end of stream.
    ServerCloses,
    /// The client closes with data unread: the server's read is reset.
    ClientResets,
    /// The client's read deadline fires, then it closes.
    Deadline,
    /// The client task is aborted while its read is parked.
    Aborted,
    /// The client splits the stream; dropping the write half ends it.
    Split,
}

fn end_of(i: u64) -> End {
    match i % 6 {
        0 => End::ClientCloses,
        1 => End::ServerCloses,
        2 => End::ClientResets,
        3 => End::Deadline,
        4 => End::Aborted,
        _ => End::Split,
    }
}

async fn serve(stream: UnixStream) -> io::Result<()> {
    let mut id = [0u8; 8];
    stream.read_exact(&mut id).await?;
    let i = u64::from_le_bytes(id);
    stream.write_all(&(i + 1).to_le_bytes()).await?;
    match end_of(i) {
        End::ServerCloses => Ok(()),
        End::ClientResets => {
            // Leave a byte unread on the client's side, then wait.
            stream.write_all(b"x").await?;
            match stream.read(&mut [0u8; 8]).await {
                Ok(0) => Ok(()),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
                other => panic!("connection {i}: server read {other:?}"),
            }
        }
        _ => {
            // Wait for the client to go away, however it does.
            match stream.read(&mut [0u8; 8]).await {
                Ok(0) => Ok(()),
                other => panic!("connection {i}: server read {other:?}"),
            }
        }
    }
}

async fn client(path: PathBuf, i: u64) -> io::Result<()> {
    let stream = UnixStream::connect(&path).await?;
    stream.write_all(&i.to_le_bytes()).await?;
    let mut reply = [0u8; 8];
    stream.read_exact(&mut reply).await?;
    assert_eq!(u64::from_le_bytes(reply), i + 1);
    match end_of(i) {
        End::ClientCloses => {}
        End::ServerCloses => assert_eq!(stream.read(&mut [0u8; 8]).await?, 0),
        End::ClientResets => {
            // The server's extra byte arrives; drop without reading it.
            stream.peek(&mut [0u8; 1]).await?;
        }
        End::Deadline => {
            stream.set_read_deadline(Some(Instant::now() + Duration::from_millis(5)))?;
            let e = stream.read(&mut [0u8; 8]).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut);
        }
        End::Aborted => {
            let (read, parked) = signal_pending(async move {
                let _ = stream.read(&mut [0u8; 8]).await;
                unreachable!("nothing is sent");
            });
            let task = runtime::spawn(read);
            parked.await.expect("read parked");
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
        }
        End::Split => {
            let (read, write) = stream.into_split();
            drop(write); // shuts down: the server reads end of stream
            let parked = runtime::spawn(async move { read.read(&mut [0u8; 8]).await });
            // The server closes after its end of stream; our read ends too.
            assert_eq!(parked.await.expect("read half")?, 0);
        }
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
    let h = handle();
    let (fds, pds, tasks) = (fd_count(), h.num_poll_descs(), h.num_alive_tasks());
    let dir = std::env::temp_dir().join(format!("gopark-unix-fd-leak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir)?;

    let path = dir.join("listener.sock");
    let listener = UnixListener::bind(&path)?;
    let server = runtime::spawn(async move {
        let mut handlers = Vec::new();
        for _ in 0..CYCLES {
            let (stream, _) = listener.accept().await?;
            handlers.push(runtime::spawn(serve(stream)));
        }
        for h in join_all(handlers).await {
            h.expect("handler")?;
        }
        Ok::<_, io::Error>(())
    });
    for batch in 0..CYCLES / BATCH {
        let clients =
            (batch * BATCH..(batch + 1) * BATCH).map(|i| runtime::spawn(client(path.clone(), i)));
        for c in join_all(clients).await {
            c.expect("client")?;
        }
    }
    server.await.expect("server")?;
    the_rest(&dir).await?;
    std::fs::remove_dir_all(&dir)?;

    assert_eq!(fd_count(), fds, "open descriptors after {CYCLES} cycles");
    assert_eq!(h.num_poll_descs(), pds, "registered descriptors");
    // The task count lags a JoinHandle's completion by a moment.
    net_support::eventually("every task has left", || h.num_alive_tasks() == tasks).await;
    Ok(())
}

#[test]
fn no_descriptor_leaks() {
    for workers in net_support::WORKERS {
        let before = fd_count();
        net_support::run(workers, "unix fd leak", Duration::from_secs(60), cycles);
        assert_eq!(
            fd_count(),
            before,
            "descriptors left behind by a dropped runtime ({workers} workers)"
        );
    }
}
