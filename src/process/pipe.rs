//! The parent's ends of a child's stdio pipes: [`ChildStdin`],
//! [`ChildStdout`] and [`ChildStderr`], non-blocking descriptors parked on
//! the netpoller like sockets.
//!
//! std creates the pipes (close-on-exec, so no other child inherits them);
//! the parent's end of each is switched to `O_NONBLOCK` — which does not
//! touch the child's end, a separate open file — and registered with a
//! [`PollDesc`]. Reads and writes go through
//! [`PollDesc::poll_stream_io`]: a pipe is a byte stream, so a short read
//! proves it empty and a short write proves it full, and the next call
//! parks at once instead of making a syscall that would only say `EAGAIN`.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::Stdio;
use std::task::{Context, Poll};

use gopark_runtime::{Direction, PollDesc};

use super::sys;

/// One end of a pipe, registered with the netpoller.
struct Pipe {
    pd: PollDesc,
}

impl Pipe {
    fn new(fd: OwnedFd) -> io::Result<Pipe> {
        // `PollDesc::new` sets O_NONBLOCK.
        Ok(Pipe {
            pd: PollDesc::new(fd)?,
        })
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let len = buf.len();
        self.pd
            .poll_stream_io(cx, Direction::Read, len, |fd| sys::read(fd, buf))
    }

    async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match poll_fn(|cx| self.poll_read(cx, buf)).await? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the pipe ended before the buffer was filled",
                    ))
                }
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// Reads until end of stream, appending to `out`; returns how many
    /// bytes were read.
    fn poll_read_to_end(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
        read: &mut usize,
    ) -> Poll<io::Result<usize>> {
        /// Room made for each read: the default pipe holds 64 KiB.
        const CHUNK: usize = 64 * 1024;
        loop {
            let start = out.len();
            out.resize(start + CHUNK, 0);
            let res = self.poll_read(cx, &mut out[start..]);
            let n = match res {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => {
                    out.truncate(start);
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    out.truncate(start);
                    return Poll::Pending;
                }
            };
            out.truncate(start + n);
            if n == 0 {
                return Poll::Ready(Ok(std::mem::take(read)));
            }
            *read += n;
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.pd
            .poll_stream_io(cx, Direction::Write, buf.len(), |fd| sys::write(fd, buf))
    }

    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A transfer is "short" only against what one call was offered.
        let bufs = &bufs[..bufs.len().min(sys::IOV_MAX)];
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        self.pd.poll_stream_io(cx, Direction::Write, len, |fd| {
            sys::write_vectored(fd, bufs)
        })
    }

    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match poll_fn(|cx| self.poll_write(cx, buf)).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Deregisters the descriptor and makes it blocking again, for a
    /// child's stdio.
    fn into_owned_fd(self) -> io::Result<OwnedFd> {
        let fd = self.pd.into_fd();
        sys::set_blocking(&fd)?;
        Ok(fd)
    }
}

/// Implements what the three pipe types share: `from_std`, the descriptor
/// traits, `into_owned_fd` and the conversion into a [`Stdio`].
macro_rules! pipe_type {
    ($name:ident, $std:ty, $what:literal) => {
        impl $name {
            #[doc = concat!("Takes over std's ", $what, ": makes it non-blocking and")]
            /// registers it with the current runtime's netpoller (or the
            /// default runtime's, outside one).
            pub fn from_std(pipe: $std) -> io::Result<$name> {
                Ok($name {
                    pipe: Pipe::new(OwnedFd::from(pipe))?,
                })
            }

            /// Deregisters the pipe and returns its descriptor, blocking
            /// again, for code that wants a plain descriptor back.
            pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
                self.pipe.into_owned_fd()
            }
        }

        /// The pipe as another child's stdio, for pipelines: deregistered
        /// and blocking again, as programs expect their stdio to be.
        impl TryFrom<$name> for Stdio {
            type Error = io::Error;

            fn try_from(pipe: $name) -> io::Result<Stdio> {
                pipe.into_owned_fd().map(Stdio::from)
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.pipe.pd.as_raw_fd()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.pipe.pd.as_fd()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.pipe.pd.as_raw_fd())
                    .finish()
            }
        }
    };
}

/// The parent's end of a child's stdin, when it was
/// [`piped`](Stdio::piped): write to it, drop it to close the child's
/// input (the child then reads end of file).
///
/// Methods take `&self`, like gopark's sockets; the futures-io
/// [`AsyncWrite`](futures_io::AsyncWrite) is implemented for `ChildStdin`
/// and `&ChildStdin`, and with the `tokio-io` feature tokio's as well.
/// Writes go straight to the pipe: nothing is buffered, so flushing and
/// `close`/`shutdown` do nothing — dropping the `ChildStdin` is what sends
/// end of file, as with tokio's. A write after the child closed its end
/// fails with [`BrokenPipe`](io::ErrorKind::BrokenPipe).
pub struct ChildStdin {
    pipe: Pipe,
}

pipe_type!(ChildStdin, std::process::ChildStdin, "`ChildStdin`");

impl ChildStdin {
    pub(super) fn new(fd: OwnedFd) -> io::Result<ChildStdin> {
        Ok(ChildStdin {
            pipe: Pipe::new(fd)?,
        })
    }

    /// Writes some of `buf`, waiting while the pipe is full; returns how
    /// many bytes went in.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.pipe.poll_write(cx, buf)).await
    }

    /// Writes all of `buf`, waiting whenever the pipe is full.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.pipe.write_all(buf).await
    }

    /// Polls a write of some of `buf`; see [`write`](ChildStdin::write).
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.pipe.poll_write(cx, buf)
    }

    /// Polls a write of some of `bufs` in one `writev(2)`.
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.pipe.poll_write_vectored(cx, bufs)
    }
}

/// Implements the reading side's methods for `ChildStdout`/`ChildStderr`.
macro_rules! read_methods {
    ($name:ident) => {
        impl $name {
            pub(super) fn new(fd: OwnedFd) -> io::Result<$name> {
                Ok($name {
                    pipe: Pipe::new(fd)?,
                })
            }

            /// Reads what the pipe holds into `buf`, waiting while it is
            /// empty; `Ok(0)` is end of file: the child (and every process
            /// it passed the pipe to) closed it.
            pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
                poll_fn(|cx| self.pipe.poll_read(cx, buf)).await
            }

            /// Fills `buf`; [`UnexpectedEof`](io::ErrorKind::UnexpectedEof)
            /// if the pipe ends first.
            pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
                self.pipe.read_exact(buf).await
            }

            /// Reads until end of file, appending to `out`; returns how
            /// many bytes it read.
            pub async fn read_to_end(&self, out: &mut Vec<u8>) -> io::Result<usize> {
                let mut read = 0;
                poll_fn(|cx| self.pipe.poll_read_to_end(cx, out, &mut read)).await
            }

            /// Polls a read into `buf`; see [`read`](Self::read).
            pub fn poll_read(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_read(cx, buf)
            }

            /// Polls [`read_to_end`](Self::read_to_end); `read` counts the
            /// bytes appended across polls and is reset when it returns.
            pub(super) fn poll_read_to_end(
                &self,
                cx: &mut Context<'_>,
                out: &mut Vec<u8>,
                read: &mut usize,
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_read_to_end(cx, out, read)
            }
        }
    };
}

/// The parent's end of a child's stdout, when it was
/// [`piped`](Stdio::piped).
///
/// Methods take `&self`, like gopark's sockets; the futures-io
/// [`AsyncRead`](futures_io::AsyncRead) is implemented for `ChildStdout`
/// and `&ChildStdout`, and with the `tokio-io` feature tokio's as well.
/// Read it while the child runs: a child that fills the pipe (64 KiB by
/// default) waits until the parent makes room.
///
/// ```
/// use gopark::process::{Command, Stdio};
///
/// gopark::runtime::block_on(async {
///     let mut child = Command::new("echo").arg("hello").stdout(Stdio::piped()).spawn()?;
///     let stdout = child.stdout.take().unwrap();
///     let mut out = Vec::new();
///     stdout.read_to_end(&mut out).await?;
///     assert_eq!(out, b"hello\n");
///     assert!(child.wait().await?.success());
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct ChildStdout {
    pipe: Pipe,
}

pipe_type!(ChildStdout, std::process::ChildStdout, "`ChildStdout`");
read_methods!(ChildStdout);

/// The parent's end of a child's stderr, when it was
/// [`piped`](Stdio::piped). The same as [`ChildStdout`], for the other
/// stream.
pub struct ChildStderr {
    pipe: Pipe,
}

pipe_type!(ChildStderr, std::process::ChildStderr, "`ChildStderr`");
read_methods!(ChildStderr);

/// futures-io's `AsyncRead` for a reading pipe and a reference to one.
macro_rules! impl_async_read {
    ($($ty:ty),*) => {$(
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_read(cx, buf)
            }
        }

        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let unfilled = buf.initialize_unfilled();
                let n = std::task::ready!(self.pipe.poll_read(cx, unfilled))?;
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
        }
    )*};
}

impl_async_read!(ChildStdout, &ChildStdout, ChildStderr, &ChildStderr);

/// futures-io's `AsyncWrite` for a writing pipe and a reference to one.
macro_rules! impl_async_write {
    ($($ty:ty),*) => {$(
        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_write_vectored(cx, bufs)
            }

            fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Nothing is buffered here.
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                // A pipe has no half-close; dropping it sends end of file.
                Poll::Ready(Ok(()))
            }
        }

        #[cfg(feature = "tokio-io")]
        impl tokio::io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.pipe.poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: std::pin::Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
    )*};
}

impl_async_write!(ChildStdin, &ChildStdin);
