//! [`Body`]: a response body that gives its connection back to the pool
//! the moment it has been read to the end.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Bytes, Frame, Incoming, SizeHint};

/// Puts a connection back in its pool.
pub(crate) type PutBack = Box<dyn FnOnce() + Send>;

/// The body of a response from a [`Client`](super::Client): hyper's
/// [`Incoming`], and the connection it came on. Read to the end, the
/// connection goes back to the pool for the next request at once — Go's
/// `bodyEOFSignal`; dropped before the end, the connection is closed, as
/// HTTP/1.1 has no other way to skip the rest.
///
/// It implements [`hyper::body::Body`]: `http_body_util::BodyExt::collect`
/// and the other adapters work on it.
pub struct Body {
    inner: Incoming,
    put_back: Option<PutBack>,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("inner", &self.inner)
            .field("pooled", &self.put_back.is_none())
            .finish()
    }
}

impl Body {
    pub(crate) fn new(inner: Incoming, put_back: PutBack) -> Body {
        let mut body = Body {
            inner,
            put_back: Some(put_back),
        };
        // An empty body (a 204, a HEAD) is read already.
        body.put_back_if_done();
        body
    }

    fn put_back_if_done(&mut self) {
        if hyper::body::Body::is_end_stream(&self.inner) {
            if let Some(put_back) = self.put_back.take() {
                put_back();
            }
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            None => {
                if let Some(put_back) = this.put_back.take() {
                    put_back();
                }
            }
            Some(Ok(_)) => this.put_back_if_done(),
            // The connection is broken: dropping `put_back` drops it.
            Some(Err(_)) => this.put_back = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // Read to the end but for the final `None`: still reusable.
        self.put_back_if_done();
    }
}
