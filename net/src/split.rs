//! Owned read and write halves of a stream, for code written the tokio way
//! (`into_split`, two tasks, `reunite`). The Go way — one stream behind an
//! `Arc`, read in one task and written in another — needs none of this,
//! since every method takes `&self`.
//!
//! The halves are generated per stream type ([`crate::tcp`] and
//! [`crate::unix`]), so each has the address type and documentation of its
//! family.

/// Defines `OwnedReadHalf`, `OwnedWriteHalf`, `ReuniteError` and the
/// crate-private `split_owned` for `$stream`, whose addresses are `$addr`.
macro_rules! owned_halves {
    ($stream:ident, $addr:ty) => {
        use std::fmt;
        use std::io::{self, IoSlice};
        use std::net::Shutdown;
        use std::pin::Pin;
        use std::sync::Arc;
        use std::task::{Context, Poll};
        use std::time::Instant;

        #[doc = concat!("The read half of a [`", stringify!($stream), "`], made by [`",
                    stringify!($stream), "::into_split`].")]
        ///
        /// It reads exactly as the whole stream does (`read`, `read_exact`,
        /// `peek`, the read deadline, `futures_io::AsyncRead`). Dropping it
        /// does nothing to the connection; the descriptor is closed once
        /// both halves are gone.
        pub struct OwnedReadHalf {
            inner: Arc<$stream>,
        }

        #[doc = concat!("The write half of a [`", stringify!($stream), "`], made by [`",
                    stringify!($stream), "::into_split`].")]
        ///
        /// It writes exactly as the whole stream does (`write`,
        /// `write_all`, vectored writes, the write deadline,
        /// `futures_io::AsyncWrite`).
        ///
        /// **Dropping it shuts down the write direction** (as tokio's does):
        /// the peer reads end of stream, while the read half keeps reading.
        /// [`forget`](OwnedWriteHalf::forget) drops it without that, and
        /// [`shutdown`](OwnedWriteHalf::shutdown) does it early. The
        /// descriptor is closed once both halves are gone.
        pub struct OwnedWriteHalf {
            inner: Arc<$stream>,
            shutdown_on_drop: bool,
        }

        /// The error of `reunite` with halves of two different streams; it
        /// hands both halves back.
        pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

        pub(crate) fn split_owned(stream: $stream) -> (OwnedReadHalf, OwnedWriteHalf) {
            let inner = Arc::new(stream);
            (
                OwnedReadHalf {
                    inner: inner.clone(),
                },
                OwnedWriteHalf {
                    inner,
                    shutdown_on_drop: true,
                },
            )
        }

        fn reunite(
            read: OwnedReadHalf,
            mut write: OwnedWriteHalf,
        ) -> Result<$stream, ReuniteError> {
            if !Arc::ptr_eq(&read.inner, &write.inner) {
                return Err(ReuniteError(read, write));
            }
            write.shutdown_on_drop = false;
            drop(write);
            // The two halves held the only references, and the write half
            // is gone.
            Ok(Arc::try_unwrap(read.inner)
                .unwrap_or_else(|_| unreachable!("a stream's halves hold its only references")))
        }

        impl OwnedReadHalf {
            #[doc = concat!("Puts the halves back together into the [`", stringify!($stream),
                        "`]; fails, handing both back, if they come from different streams.")]
            pub fn reunite(self, other: OwnedWriteHalf) -> Result<$stream, ReuniteError> {
                reunite(self, other)
            }

            #[doc = concat!("Reads into `buf`; see [`", stringify!($stream), "::read`].")]
            pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.read(buf).await
            }

            #[doc = concat!("Polls a read; see [`", stringify!($stream), "::read`].")]
            pub fn poll_read(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_read(cx, buf)
            }

            #[doc = concat!("Polls a read into memory that may be uninitialized; see [`",
                        stringify!($stream), "::poll_read_uninit`].")]
            pub fn poll_read_uninit(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [std::mem::MaybeUninit<u8>],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_read_uninit(cx, buf)
            }

            #[doc = concat!("Reads exactly `buf.len()` bytes; see [`", stringify!($stream),
                        "::read_exact`].")]
            pub async fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
                self.inner.read_exact(buf).await
            }

            #[doc = concat!("Reads without consuming; see [`", stringify!($stream),
                        "::peek`].")]
            pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.peek(buf).await
            }

            #[doc = concat!("Sets the read deadline; see [`", stringify!($stream),
                        "::set_read_deadline`].")]
            pub fn set_read_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
                self.inner.set_read_deadline(deadline)
            }

            /// The remote address.
            pub fn peer_addr(&self) -> io::Result<$addr> {
                self.inner.peer_addr()
            }

            /// The local address.
            pub fn local_addr(&self) -> io::Result<$addr> {
                self.inner.local_addr()
            }
        }

        impl OwnedWriteHalf {
            #[doc = concat!("Puts the halves back together into the [`", stringify!($stream),
                        "`]; fails, handing both back, if they come from different streams.")]
            pub fn reunite(self, other: OwnedReadHalf) -> Result<$stream, ReuniteError> {
                reunite(other, self)
            }

            /// Drops the write half without shutting down the write
            /// direction: the peer sees end of stream only when the read
            /// half is dropped too (and the descriptor closed).
            pub fn forget(mut self) {
                self.shutdown_on_drop = false;
            }

            /// Shuts down the write direction now: the peer reads end of
            /// stream, and later writes fail with `BrokenPipe`. Dropping
            /// the half afterwards changes nothing more.
            pub fn shutdown(&self) -> io::Result<()> {
                self.inner.shutdown(Shutdown::Write)
            }

            #[doc = concat!("Writes some of `buf`; see [`", stringify!($stream), "::write`].")]
            pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
                self.inner.write(buf).await
            }

            #[doc = concat!("Polls a write; see [`", stringify!($stream), "::write`].")]
            pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.inner.poll_write(cx, buf)
            }

            /// Writes all of `buf`.
            pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
                self.inner.write_all(buf).await
            }

            #[doc = concat!("Gather write; see [`", stringify!($stream),
                        "::write_vectored`].")]
            pub async fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                self.inner.write_vectored(bufs).await
            }

            #[doc = concat!("Polls a gather write; see [`", stringify!($stream),
                        "::write_vectored`].")]
            pub fn poll_write_vectored(
                &self,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_write_vectored(cx, bufs)
            }

            /// Writes every byte of every buffer.
            pub async fn write_all_vectored(&self, bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
                self.inner.write_all_vectored(bufs).await
            }

            #[doc = concat!("Sets the write deadline; see [`", stringify!($stream),
                        "::set_write_deadline`].")]
            pub fn set_write_deadline(&self, deadline: Option<Instant>) -> io::Result<()> {
                self.inner.set_write_deadline(deadline)
            }

            /// The remote address.
            pub fn peer_addr(&self) -> io::Result<$addr> {
                self.inner.peer_addr()
            }

            /// The local address.
            pub fn local_addr(&self) -> io::Result<$addr> {
                self.inner.local_addr()
            }
        }

        impl Drop for OwnedWriteHalf {
            fn drop(&mut self) {
                if self.shutdown_on_drop {
                    // Nothing to report to: a peer already gone is fine.
                    let _ = self.inner.shutdown(Shutdown::Write);
                }
            }
        }

        impl AsRef<$stream> for OwnedReadHalf {
            fn as_ref(&self) -> &$stream {
                &self.inner
            }
        }

        impl AsRef<$stream> for OwnedWriteHalf {
            fn as_ref(&self) -> &$stream {
                &self.inner
            }
        }

        impl fmt::Debug for OwnedReadHalf {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple("OwnedReadHalf").field(&self.inner).finish()
            }
        }

        impl fmt::Debug for OwnedWriteHalf {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple("OwnedWriteHalf").field(&self.inner).finish()
            }
        }

        impl fmt::Debug for ReuniteError {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple("ReuniteError").finish_non_exhaustive()
            }
        }

        impl fmt::Display for ReuniteError {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("tried to reunite the halves of two different streams")
            }
        }

        impl std::error::Error for ReuniteError {}

        impl futures_io::AsyncRead for OwnedReadHalf {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_read(cx, buf)
            }
        }

        impl futures_io::AsyncWrite for OwnedWriteHalf {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.inner.poll_write_vectored(cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Writes go straight to the kernel: nothing is buffered here.
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown())
            }
        }
    };
}

pub(crate) use owned_halves;
