//! Leak checks: the ways a connection ends, and the resources counted
//! before and after a test.

use std::future::Future;
use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use gopark::net::{tcp, unix, TcpStream, UnixStream};
use gopark::runtime;

use super::future::signal_pending;
use super::net::{Read, Write};
use super::proc::fd_count;
use super::rt::{eventually, handle, run_io, WORKERS};

/// How connection `i` of a lifecycle test ends: every way a connection
/// ends, in turn ([`End::of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The client closes first; the server reads end of stream.
    ClientCloses,
    /// The server closes first; the client reads end of stream.
    ServerCloses,
    /// The client resets the connection (or closes with data unread).
    ClientResets,
    /// The client's read deadline fires, then it closes.
    Deadline,
    /// The client task is aborted while its read is parked.
    Aborted,
    /// The client splits the stream; dropping the write half ends it.
    Split,
}

impl End {
    /// Every end, in the order connections take them.
    pub const ALL: [End; 6] = [
        End::ClientCloses,
        End::ServerCloses,
        End::ClientResets,
        End::Deadline,
        End::Aborted,
        End::Split,
    ];

    /// How connection `i` ends.
    pub fn of(i: u64) -> End {
        End::ALL[(i % End::ALL.len() as u64) as usize]
    }
}

/// A connected stream the lifecycle helpers below drive: TCP or Unix.
pub trait Conn: Read + Write + Send + Sync + 'static {
    type ReadHalf: Read + Send + 'static;
    fn read_exact<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;
    fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()>;
    /// Splits the stream and drops the write half, which shuts it down.
    fn into_read_half(self) -> Self::ReadHalf;
}

macro_rules! impl_conn {
    ($($ty:ty => $half:ty),*) => {$(
        impl Conn for $ty {
            type ReadHalf = $half;

            fn read_exact<'a>(
                &'a self,
                buf: &'a mut [u8],
            ) -> impl Future<Output = io::Result<()>> + Send + 'a {
                <$ty>::read_exact(self, buf)
            }

            fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
                <$ty>::set_read_deadline(self, deadline)
            }

            fn into_read_half(self) -> $half {
                self.into_split().0
            }
        }
    )*};
}

impl_conn!(TcpStream => tcp::OwnedReadHalf, UnixStream => unix::OwnedReadHalf);

/// The client's side of connection `i`: sends its number, checks the
/// server's reply (the number plus one), then ends as [`End::of`] says.
/// A [`End::ClientResets`] connection is handed back: the caller resets
/// it the way its transport does.
pub async fn client_side<S: Conn>(stream: S, i: u64) -> io::Result<Option<S>> {
    stream.write_all(&i.to_le_bytes()).await?;
    let mut reply = [0u8; 8];
    stream.read_exact(&mut reply).await?;
    assert_eq!(u64::from_le_bytes(reply), i + 1, "connection {i}: reply");
    match End::of(i) {
        End::ClientCloses => {}
        End::ClientResets => return Ok(Some(stream)),
        End::ServerCloses => assert_eq!(stream.read(&mut [0u8; 8]).await?, 0),
        End::Deadline => {
            stream.set_read_deadline(Some(Instant::now() + Duration::from_millis(5)))?;
            let e = stream.read(&mut [0u8; 8]).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "connection {i}: {e}");
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
            let read = stream.into_read_half();
            let parked = runtime::spawn(async move { read.read(&mut [0u8; 8]).await });
            // The server closes after its end of stream; our read ends too.
            assert_eq!(parked.await.expect("read half")?, 0, "connection {i}");
        }
    }
    Ok(None)
}

/// The server's side of a connection: reads the client's number, replies
/// with the number plus one, then closes first ([`End::ServerCloses`]) or
/// waits for the client to go away. A [`End::ClientResets`] connection is
/// handed back with its number: the caller waits for the reset the way
/// its transport needs.
pub async fn server_side<S: Conn>(stream: S) -> io::Result<Option<(S, u64)>> {
    let mut id = [0u8; 8];
    stream.read_exact(&mut id).await?;
    let i = u64::from_le_bytes(id);
    stream.write_all(&(i + 1).to_le_bytes()).await?;
    match End::of(i) {
        End::ServerCloses => Ok(None),
        End::ClientResets => Ok(Some((stream, i))),
        _ => match stream.read(&mut [0u8; 8]).await {
            Ok(0) => Ok(None),
            other => panic!("connection {i}: server read {other:?}"),
        },
    }
}

/// Runs `n` connections, `batch` at a time: a server task takes each
/// connection from `accept` and serves it in a task of its own with
/// `serve`, while the clients `client(0)`, `client(1)`, ... run. Returns
/// once every client and every handler has finished.
pub async fn cycles<S, A, AF, SF, C, CF>(
    n: u64,
    batch: u64,
    mut accept: A,
    serve: fn(S) -> SF,
    client: C,
) -> io::Result<()>
where
    S: Send + 'static,
    A: FnMut() -> AF + Send + 'static,
    AF: Future<Output = io::Result<S>> + Send,
    SF: Future<Output = io::Result<()>> + Send + 'static,
    C: Fn(u64) -> CF,
    CF: Future<Output = io::Result<()>> + Send + 'static,
{
    let server = runtime::spawn(async move {
        let mut handlers = Vec::new();
        for _ in 0..n {
            handlers.push(runtime::spawn(serve(accept().await?)));
        }
        for h in join_all(handlers).await {
            h.expect("handler")?;
        }
        Ok::<_, io::Error>(())
    });
    for first in (0..n).step_by(batch as usize) {
        let clients = (first..(first + batch).min(n)).map(|i| runtime::spawn(client(i)));
        for c in join_all(clients).await {
            c.expect("client")?;
        }
    }
    server.await.expect("server")
}

/// What the process and the current runtime hold at one moment: open
/// descriptors, registered descriptors, live tasks.
#[derive(Debug)]
pub struct Census {
    fds: usize,
    pds: usize,
    tasks: usize,
}

impl Census {
    /// Counts now. Must run inside a runtime.
    pub fn take() -> Census {
        let h = handle();
        Census {
            fds: fd_count(),
            pds: h.num_poll_descs(),
            tasks: h.num_alive_tasks(),
        }
    }

    /// Asserts that everything taken since [`take`](Census::take) was
    /// given back. The task count lags a `JoinHandle`'s completion by a
    /// moment, and a task that has not left yet (a connection's driver
    /// finishing its close) still holds its socket, so the tasks are
    /// awaited first (bounded), then the descriptors, which a task that
    /// left has closed, and which a leak never gives back.
    pub async fn assert_back(&self, after: &str) {
        let h = handle();
        let tasks = self.tasks;
        eventually("every task has left", || h.num_alive_tasks() == tasks).await;
        let (fds, pds) = (self.fds, self.pds);
        eventually(
            &format!("open descriptors back to {fds} after {after}"),
            || fd_count() == fds,
        )
        .await;
        eventually(
            &format!("registered descriptors back to {pds} after {after}"),
            || h.num_poll_descs() == pds,
        )
        .await;
    }
}

/// Runs `body` on a fresh runtime for each of [`WORKERS`], one after the
/// other, and asserts after each that the dropped runtime left no
/// descriptor of its own behind.
pub fn on_each_runtime<F, Fut>(name: &str, limit: Duration, body: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    for workers in WORKERS {
        let before = fd_count();
        run_io(workers, name, limit, &body);
        assert_eq!(
            fd_count(),
            before,
            "descriptors left behind by a dropped runtime ({workers} workers)"
        );
    }
}
