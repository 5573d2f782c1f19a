//! Sending a request again when a reused connection fails under it: the
//! request body the connections carry ([`WireBody`]), the count of bytes a
//! connection has read ([`Counted`]), and the copy of a request's head
//! kept to send it again ([`Replay`]).
//!
//! Go's `http.Transport` sends a request again, once, on a new connection
//! when a connection taken from the pool fails before any byte of the
//! response arrived and the request can be sent twice without harm: its
//! method is idempotent and it has no body. That is the race of a server
//! closing an idle connection just as a request goes out on it: the
//! server never saw the request, or dropped it unanswered.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use gopark_net::TcpStream;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::Request;
use pin_project_lite::pin_project;

use crate::hyper::io::sealed;
use crate::hyper::ReadUninit;

pin_project! {
    /// What a connection sends as a request body: the caller's, or
    /// nothing (a request sent again, which had no body the first time).
    #[project = WireBodyProj]
    pub(crate) enum WireBody<B> {
        Given { #[pin] body: B },
        Empty,
    }
}

impl<B: HttpBody> HttpBody for WireBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.project() {
            WireBodyProj::Given { body } => body.poll_frame(cx),
            WireBodyProj::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            WireBody::Given { body } => body.is_end_stream(),
            WireBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            WireBody::Given { body } => body.size_hint(),
            WireBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The head of a request that may be sent twice: its method is idempotent
/// (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and it has no body.
pub(crate) struct Replay(Request<()>);

impl Replay {
    /// A copy of `req`'s head, if it may be sent twice.
    pub(crate) fn of<B: HttpBody>(req: &Request<WireBody<B>>) -> Option<Replay> {
        if !req.method().is_idempotent() || !req.body().is_end_stream() {
            return None;
        }
        let mut head = Request::new(());
        *head.method_mut() = req.method().clone();
        *head.uri_mut() = req.uri().clone();
        *head.version_mut() = req.version();
        *head.headers_mut() = req.headers().clone();
        *head.extensions_mut() = req.extensions().clone();
        Some(Replay(head))
    }

    /// The request again, with its empty body.
    pub(crate) fn request<B>(self) -> Request<WireBody<B>> {
        self.0.map(|()| WireBody::Empty)
    }
}

/// A TCP stream that counts the bytes read from it, so that the client
/// knows whether a failed request had an answer begun.
#[derive(Debug)]
pub(crate) struct Counted {
    stream: TcpStream,
    read: Arc<AtomicU64>,
}

impl Counted {
    /// `stream`, and the count its reads add to.
    pub(crate) fn new(stream: TcpStream) -> (Counted, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        let counted = Counted {
            stream,
            read: read.clone(),
        };
        (counted, read)
    }

    /// Counts what a read returned.
    fn count(&self, res: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = res {
            // Relaxed: the requester reads it after hyper's answer, which
            // the channel between them orders after this.
            self.read.fetch_add(n as u64, Ordering::Relaxed);
        }
        res
    }
}

impl futures_io::AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.count(self.stream.poll_read(cx, buf))
    }
}

/// The client's connections read straight into hyper's buffer
/// ([`Io::from_socket`](crate::hyper::Io::from_socket)).
impl sealed::Sealed for Counted {
    fn poll_read_uninit(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.count(self.stream.poll_read_uninit(cx, buf))
    }
}

impl ReadUninit for Counted {}

impl futures_io::AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.stream), cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write_vectored(Pin::new(&mut self.stream), cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.stream), cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.stream), cx)
    }
}
