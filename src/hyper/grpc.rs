//! gRPC deadlines on gopark's timers: the `grpc-timeout` header, enforced.
//!
//! A gRPC client states how long it will wait for a call in the
//! `grpc-timeout` request header (tonic's `Request::set_timeout`, grpc-go's
//! `context.WithTimeout`). The server is meant to give up on the call when
//! that time has passed, and answer `DEADLINE_EXCEEDED`. tonic does that in
//! its `transport` server only, which is built on tokio's timers; a tonic
//! service served by [`serve`](super::serve()) (tonic with its `codegen`
//! and `router` features) gets it from [`TimeoutLayer`] instead:
//!
//! ```
//! use std::time::Duration;
//!
//! use gopark::hyper::grpc::TimeoutLayer;
//! use tower_layer::Layer;
//!
//! # #[derive(Clone)] struct Routes;
//! # let routes = Routes;
//! // `routes` would be a `tonic::service::Routes`, or a generated `FooServer`.
//! let service = TimeoutLayer::new()
//!     // No call runs longer than a minute, whatever the client asks.
//!     .default_timeout(Duration::from_secs(60))
//!     .layer(routes);
//! # let _ = service;
//! ```
//!
//! The semantics are those of tonic's `transport` server (and grpc-go's):
//! the deadline is the shorter of the client's `grpc-timeout` and the
//! server-wide default; a header that does not parse is ignored. When the
//! deadline passes before the service has answered, the service's future
//! is dropped — the handler stops at its next `.await` — and the client
//! gets a *trailers-only* response: HTTP 200 with `content-type:
//! application/grpc`, `grpc-status: 4` (`DEADLINE_EXCEEDED`) and an empty
//! body. A response that has started (a server stream that has sent its
//! headers) is not cut off, as with tonic: the deadline covers the
//! service's answer, not the body it streams afterwards.
//!
//! It costs one gopark timer per call that has a deadline (a timer-heap
//! entry, no thread and no allocation beyond the future itself), and
//! nothing for a call without one.
//!
//! [`grpc_timeout`] reads the header, for a client that enforces its own
//! deadline locally (the tonic client writes the header but does not wait
//! on it).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use gopark_runtime::time::{timeout, Timeout};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response};
use pin_project_lite::pin_project;

/// The request header that carries a gRPC call's deadline.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The `grpc-status` code for a deadline that passed.
const DEADLINE_EXCEEDED: &str = "4";

/// Reads the `grpc-timeout` header of a request: `None` if there is none
/// or if it does not parse.
///
/// The format is gRPC's: one to eight ASCII digits and a unit, `H` (hours),
/// `M` (minutes), `S` (seconds), `m` (milliseconds), `u` (microseconds) or
/// `n` (nanoseconds).
///
/// ```
/// use std::time::Duration;
///
/// use gopark::hyper::grpc::grpc_timeout;
/// use hyper::header::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("grpc-timeout", HeaderValue::from_static("250m"));
/// assert_eq!(grpc_timeout(&headers), Some(Duration::from_millis(250)));
/// headers.insert("grpc-timeout", HeaderValue::from_static("123456789S"));
/// assert_eq!(grpc_timeout(&headers), None); // nine digits
/// ```
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    parse_timeout(headers.get(GRPC_TIMEOUT)?.as_bytes())
}

fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Eight digits fit a u64 many times over, and so do they times 3600.
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A tower [`Layer`](tower_layer::Layer) that enforces gRPC deadlines on
/// gopark's timers; see the [module](self) documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimeoutLayer {
    default: Option<Duration>,
}

impl TimeoutLayer {
    /// A layer that enforces the deadline each client sends, and none for
    /// a call without one.
    pub fn new() -> TimeoutLayer {
        TimeoutLayer { default: None }
    }

    /// A server-wide deadline: for a call without `grpc-timeout`, and an
    /// upper bound on the one a client asks for.
    pub fn default_timeout(mut self, timeout: Duration) -> TimeoutLayer {
        self.default = Some(timeout);
        self
    }
}

impl<S> tower_layer::Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> TimeoutService<S> {
        TimeoutService {
            inner,
            default: self.default,
        }
    }
}

/// A service with gRPC deadlines enforced; made by [`TimeoutLayer`].
#[derive(Clone, Debug)]
pub struct TimeoutService<S> {
    inner: S,
    default: Option<Duration>,
}

impl<S> TimeoutService<S> {
    /// Wraps `inner`, with no server-wide deadline
    /// (`TimeoutLayer::new().layer(inner)`).
    pub fn new(inner: S) -> TimeoutService<S> {
        TimeoutService {
            inner,
            default: None,
        }
    }

    /// The service inside.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for TimeoutService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let deadline = match (grpc_timeout(req.headers()), self.default) {
            (Some(asked), Some(bound)) => Some(asked.min(bound)),
            (asked, bound) => asked.or(bound),
        };
        let future = self.inner.call(req);
        ResponseFuture {
            inner: match deadline {
                Some(deadline) => Inner::Bounded {
                    future: timeout(deadline, future),
                },
                None => Inner::Unbounded { future },
            },
        }
    }
}

pin_project! {
    /// The future of a [`TimeoutService`] call.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Inner<F>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<F> {
        Bounded { #[pin] future: Timeout<F> },
        Unbounded { #[pin] future: F },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            InnerProj::Unbounded { future } => future.poll(cx),
            InnerProj::Bounded { future } => match future.poll(cx) {
                Poll::Ready(Ok(result)) => Poll::Ready(result),
                // `Timeout` has dropped nothing yet; the future is dropped
                // with this one, as soon as the connection lets go of it.
                Poll::Ready(Err(_elapsed)) => Poll::Ready(Ok(deadline_exceeded())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// A trailers-only `DEADLINE_EXCEEDED` response.
fn deadline_exceeded<B: Default>() -> Response<B> {
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from_static(DEADLINE_EXCEEDED));
    headers.insert(
        "grpc-message",
        HeaderValue::from_static("deadline%20exceeded"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::parse_timeout;
    use std::time::Duration;

    #[test]
    fn parses_every_unit_and_rejects_the_rest() {
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout(b"4m"), Some(Duration::from_millis(4)));
        assert_eq!(parse_timeout(b"5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_timeout(b"6n"), Some(Duration::from_nanos(6)));
        assert_eq!(
            parse_timeout(b"99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(parse_timeout(b"0m"), Some(Duration::ZERO));
        for bad in [
            &b""[..],
            b"m",
            b"10",
            b"10x",
            b"-1S",
            b"1.5S",
            b"123456789S",
            b" 1S",
            b"1 S",
        ] {
            assert_eq!(
                parse_timeout(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
