//! [`copy`] and [`copy_bidirectional`]: one buffer per direction, filled
//! by a read and drained by writes, in a future that parks whenever either
//! side would block.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// Bytes a direction moves per read: as much as a loopback socket's queue
/// usually holds, so a bulk transfer takes few syscalls.
const BUF_SIZE: usize = 64 * 1024;

/// One direction of a copy: the buffer and how far it got.
struct Transfer {
    buf: Box<[u8]>,
    /// `buf[pos..cap]` is read and not yet written.
    pos: usize,
    cap: usize,
    /// Bytes written so far.
    amt: u64,
    /// The reader reached end of stream.
    read_done: bool,
    /// Written since the last flush.
    need_flush: bool,
}

impl Transfer {
    fn new() -> Transfer {
        Transfer {
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            cap: 0,
            amt: 0,
            read_done: false,
            need_flush: false,
        }
    }

    /// Copies until `reader` ends and everything is written and flushed;
    /// returns the bytes copied.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.pos == self.cap && !self.read_done {
                match reader.as_mut().poll_read(cx, &mut self.buf) {
                    Poll::Ready(Ok(0)) => self.read_done = true,
                    Poll::Ready(Ok(n)) => {
                        self.pos = 0;
                        self.cap = n;
                    }
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        // Nothing to read for now: push out what was
                        // written, so a buffered writer does not sit on it.
                        if self.need_flush {
                            ready!(writer.as_mut().poll_flush(cx))?;
                            self.need_flush = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            while self.pos < self.cap {
                let n = match ready!(writer
                    .as_mut()
                    .poll_write(cx, &self.buf[self.pos..self.cap]))
                {
                    Ok(0) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "the writer accepted no bytes",
                        )))
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                self.pos += n;
                self.amt += n as u64;
                self.need_flush = true;
            }
            if self.read_done {
                ready!(writer.as_mut().poll_flush(cx))?;
                self.need_flush = false;
                return Poll::Ready(Ok(self.amt));
            }
        }
    }
}

/// Copies everything `reader` has into `writer`, until `reader` reaches end
/// of stream, then flushes `writer`; returns the number of bytes copied.
/// `writer` is not closed.
///
/// ```
/// gopark::runtime::block_on(async {
///     let mut reader: &[u8] = b"hello";
///     let mut writer: Vec<u8> = Vec::new();
///     let n = gopark::io::copy(&mut reader, &mut writer).await?;
///     assert_eq!((n, &writer[..]), (5, &b"hello"[..]));
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// The first error of a read, a write or the flush; `WriteZero` if the
/// writer accepts no bytes. `Interrupted` is retried.
pub async fn copy<R, W>(reader: &mut R, writer: &mut W) -> io::Result<u64>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut transfer = Transfer::new();
    poll_fn(|cx| transfer.poll_copy(cx, Pin::new(&mut *reader), Pin::new(&mut *writer))).await
}

/// Where one direction of [`copy_bidirectional`] is.
enum Direction {
    Copying(Transfer),
    /// The reader ended and everything is written: close the writer.
    Closing(u64),
    Done(u64),
}

impl Direction {
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        match self {
            Direction::Copying(transfer) => {
                let amt = ready!(transfer.poll_copy(cx, reader, writer.as_mut()))?;
                *self = Direction::Closing(amt);
                self.poll_close(cx, writer)
            }
            Direction::Closing(_) => self.poll_close(cx, writer),
            Direction::Done(amt) => Poll::Ready(Ok(*amt)),
        }
    }

    fn poll_close<W: AsyncWrite + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        writer: Pin<&mut W>,
    ) -> Poll<io::Result<u64>> {
        let Direction::Closing(amt) = *self else {
            unreachable!("poll_close outside Closing")
        };
        ready!(writer.poll_close(cx))?;
        *self = Direction::Done(amt);
        Poll::Ready(Ok(amt))
    }
}

/// Copies between `a` and `b` in both directions at once, until both
/// reach end of stream: what `a` sends goes to `b` and the other way
/// round. When one side ends its stream, the other side's write half is
/// closed (`shutdown(Write)` on a socket), so the end passes through.
/// Returns the bytes copied `(a → b, b → a)`.
///
/// ```
/// use gopark::net::{TcpListener, TcpStream};
///
/// gopark::runtime::block_on(async {
///     // An echo server, and a proxy in front of it.
///     let echo = TcpListener::bind("127.0.0.1:0")?;
///     let echo_addr = echo.local_addr()?;
///     gopark::runtime::spawn(async move {
///         let (stream, _) = echo.accept().await?;
///         let (mut r, mut w) = stream.into_split();
///         gopark::io::copy(&mut r, &mut w).await?;
///         w.shutdown()
///     });
///     let proxy = TcpListener::bind("127.0.0.1:0")?;
///     let proxy_addr = proxy.local_addr()?;
///     gopark::runtime::spawn(async move {
///         let (mut client, _) = proxy.accept().await?;
///         let mut upstream = TcpStream::connect(echo_addr).await?;
///         gopark::io::copy_bidirectional(&mut client, &mut upstream).await
///     });
///
///     let client = TcpStream::connect(proxy_addr).await?;
///     client.write_all(b"through the proxy").await?;
///     client.shutdown(std::net::Shutdown::Write)?;
///     let mut reply = Vec::new();
///     let mut buf = [0u8; 64];
///     loop {
///         let n = client.read(&mut buf).await?;
///         if n == 0 { break; }
///         reply.extend_from_slice(&buf[..n]);
///     }
///     assert_eq!(reply, b"through the proxy");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
///
/// # Errors
///
/// The first error in either direction; the copy stops there.
pub async fn copy_bidirectional<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut a_to_b = Direction::Copying(Transfer::new());
    let mut b_to_a = Direction::Copying(Transfer::new());
    poll_fn(|cx| {
        let there = a_to_b.poll(cx, Pin::new(&mut *a), Pin::new(&mut *b))?;
        let back = b_to_a.poll(cx, Pin::new(&mut *b), Pin::new(&mut *a))?;
        match (there, back) {
            (Poll::Ready(there), Poll::Ready(back)) => Poll::Ready(Ok((there, back))),
            _ => Poll::Pending,
        }
    })
    .await
}
