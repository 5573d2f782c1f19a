//! No descriptor leaks: after 500 connect/accept/close cycles, ended in all
//! the ways a connection ends, the process has exactly the descriptors it
//! had before and the runtime has exactly the registrations it had before;
//! after the runtime is dropped, its own descriptors are gone too.
//!
//! This file holds one test, which runs its worker counts one after the
//! other: /proc/self/fd counts the whole process, so no other test may open
//! descriptors meanwhile.

mod support;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, Builder};
use support::future::signal_pending;
use support::proc::fd_count;
use support::rt::{handle, Watchdog};

const CYCLES: u64 = 500;
const BATCH: u64 = 50;

/// How connection `i` ends.
#[derive(Clone, Copy, Debug)]
enum End {
    /// The client closes first; the server reads EOF.
    ClientCloses,
    /// The server closes first; the client reads EOF.
    ServerCloses,
    /// The client resets (linger 0).
    ClientResets,
    /// The client's read deadline fires, then it closes.
    Deadline,
    /// The client task is aborted while its read is parked.
    Aborted,
}

fn end_of(i: u64) -> End {
    match i % 5 {
        0 => End::ClientCloses,
        1 => End::ServerCloses,
        2 => End::ClientResets,
        3 => End::Deadline,
        _ => End::Aborted,
    }
}

async fn serve(stream: TcpStream) -> io::Result<()> {
    let mut id = [0u8; 8];
    stream.read_exact(&mut id).await?;
    let i = u64::from_le_bytes(id);
    stream.write_all(&(i + 1).to_le_bytes()).await?;
    match end_of(i) {
        End::ServerCloses => Ok(()),
        _ => {
            // Wait for the client to go away, however it does.
            let mut buf = [0u8; 8];
            match stream.read(&mut buf).await {
                Ok(0) => Ok(()),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
                other => panic!("connection {i}: server read {other:?}"),
            }
        }
    }
}

async fn client(addr: SocketAddr, i: u64) -> io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    stream.write_all(&i.to_le_bytes()).await?;
    let mut reply = [0u8; 8];
    stream.read_exact(&mut reply).await?;
    assert_eq!(u64::from_le_bytes(reply), i + 1);
    match end_of(i) {
        End::ClientCloses => {}
        End::ServerCloses => assert_eq!(stream.read(&mut [0u8; 8]).await?, 0),
        End::ClientResets => stream.set_linger(Some(Duration::ZERO))?,
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
    }
    Ok(())
}

async fn cycles() -> io::Result<()> {
    let h = handle();
    let (fds, pds, tasks) = (fd_count(), h.num_poll_descs(), h.num_alive_tasks());

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
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
        let clients = (batch * BATCH..(batch + 1) * BATCH).map(|i| runtime::spawn(client(addr, i)));
        for c in join_all(clients).await {
            c.expect("client")?;
        }
    }
    // Failed connects and binds must not leak either.
    for _ in 0..50 {
        assert!(TcpStream::connect(support::net::closed_port()?)
            .await
            .is_err());
    }
    server.await.expect("server")?;

    assert_eq!(fd_count(), fds, "open descriptors after {CYCLES} cycles");
    assert_eq!(h.num_poll_descs(), pds, "registered descriptors");
    // The task count lags a JoinHandle's completion by a moment.
    support::rt::eventually("every task has left", || h.num_alive_tasks() == tasks).await;
    Ok(())
}

#[test]
fn no_descriptor_leaks() {
    for workers in support::rt::WORKERS {
        let before = fd_count();
        support::rt::run_io(workers, "fd leak", Duration::from_secs(30), cycles);
        assert_eq!(
            fd_count(),
            before,
            "descriptors left behind by a dropped runtime ({workers} workers)"
        );
    }
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
