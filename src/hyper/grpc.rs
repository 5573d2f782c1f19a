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
//! The deadline is the shorter of the client's `grpc-timeout` and the
//! server-wide default, as in tonic's `transport` server and grpc-go; a
//! header that does not parse is ignored, as tonic does. When the deadline
//! passes before the service has answered, the service's future is dropped
//! (the handler stops at its next `.await`) and the client gets a
//! *trailers-only* response: HTTP 200 with `content-type:
//! application/grpc`, `grpc-status: 4` (`DEADLINE_EXCEEDED`) and an empty
//! body. When it passes while a server stream is being sent, the stream is
//! dropped and the response ends with `grpc-status: 4` trailers. That is
//! grpc-go's rule, a deadline for the whole call; tonic's `transport`
//! server bounds only the wait for the response headers.
//!
//! It costs one gopark timer per call that has a deadline (an entry in the
//! timer heap, no thread, no allocation), and nothing for a call without
//! one.
//!
//! [`grpc_timeout`] reads the header, for a client that enforces its own
//! deadline locally (the tonic client writes the header but does not wait
//! on it).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::time::Instant;

use gopark_runtime::time::{sleep_until, timeout_at, Sleep, Timeout};
use hyper::body::{Body, Frame, SizeHint};
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
///
/// A handler that takes a minute, a client that gives it 100 ms:
///
/// ```
/// use std::convert::Infallible;
/// use std::future::{Future, IntoFuture};
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use gopark::hyper::grpc::TimeoutService;
/// use gopark::hyper::{serve, Executor, Io};
/// use gopark::net::{TcpListener, TcpStream};
/// use gopark::runtime::{self, time::sleep};
/// use http_body_util::{BodyExt, Empty, Full};
/// use hyper::{Request, Response};
///
/// /// A stand-in for a tonic service: answers after a minute.
/// #[derive(Clone)]
/// struct Slow;
///
/// impl<B> tower_service::Service<Request<B>> for Slow {
///     type Response = Response<Empty<Bytes>>;
///     type Error = Infallible;
///     type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
///
///     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
///         Poll::Ready(Ok(()))
///     }
///
///     fn call(&mut self, _: Request<B>) -> Self::Future {
///         Box::pin(async {
///             sleep(Duration::from_secs(60)).await;
///             Ok(Response::new(Empty::new()))
///         })
///     }
/// }
///
/// runtime::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let addr = listener.local_addr()?;
///     runtime::spawn(serve(listener, TimeoutService::new(Slow)).into_future());
///
///     let stream = TcpStream::connect(addr).await?;
///     let (mut sender, conn) = hyper::client::conn::http2::handshake(Executor::new(), Io::from_socket(stream))
///         .await
///         .map_err(std::io::Error::other)?;
///     runtime::spawn(conn);
///     let req = Request::post(format!("http://{addr}/echo.Echo/Slow"))
///         .header("content-type", "application/grpc")
///         .header("grpc-timeout", "100m")
///         .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
///         .unwrap();
///     let resp = sender.send_request(req).await.map_err(std::io::Error::other)?;
///     assert_eq!(resp.status(), 200);
///     assert_eq!(resp.headers()["grpc-status"], "4"); // DEADLINE_EXCEEDED
///     let body = resp.into_body().collect().await.map_err(std::io::Error::other)?;
///     assert!(body.to_bytes().is_empty());
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
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
{
    type Response = Response<TimeoutBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let timeout = match (grpc_timeout(req.headers()), self.default) {
            (Some(asked), Some(bound)) => Some(asked.min(bound)),
            (asked, bound) => asked.or(bound),
        };
        // A deadline too far to represent is no deadline.
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let future = self.inner.call(req);
        ResponseFuture {
            inner: match deadline {
                Some(deadline) => Inner::Bounded {
                    future: timeout_at(deadline, future),
                    deadline,
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
        Bounded { #[pin] future: Timeout<F>, deadline: Instant },
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
{
    type Output = Result<Response<TimeoutBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            InnerProj::Unbounded { future } => future
                .poll(cx)
                .map_ok(|response| response.map(|body| TimeoutBody::new(body, None))),
            InnerProj::Bounded { future, deadline } => match future.poll(cx) {
                Poll::Ready(Ok(result)) => {
                    let deadline = *deadline;
                    Poll::Ready(result.map(|response| {
                        response.map(|body| TimeoutBody::new(body, Some(sleep_until(deadline))))
                    }))
                }
                // The service's future is dropped with this one, as soon
                // as the connection lets go of it.
                Poll::Ready(Err(_elapsed)) => Poll::Ready(Ok(deadline_exceeded())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

pin_project! {
    /// The body of a [`TimeoutService`] response: the service's, until the
    /// deadline passes; then `DEADLINE_EXCEEDED` trailers end it and the
    /// service's body is dropped.
    pub struct TimeoutBody<B> {
        #[pin]
        inner: Option<B>,
        deadline: Option<Sleep>,
    }
}

impl<B> TimeoutBody<B> {
    fn new(inner: B, deadline: Option<Sleep>) -> TimeoutBody<B> {
        TimeoutBody {
            inner: Some(inner),
            deadline,
        }
    }
}

impl<B> fmt::Debug for TimeoutBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutBody")
            .field("ended", &self.inner.is_none())
            .field("deadline", &self.deadline.as_ref().map(Sleep::deadline))
            .finish()
    }
}

impl<B: Body> Body for TimeoutBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(frame) = inner.poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match this.deadline.as_mut().map(|d| Pin::new(d).poll(cx)) {
            Some(Poll::Ready(())) => {
                *this.deadline = None;
                this.inner.set(None);
                Poll::Ready(Some(Ok(Frame::trailers(deadline_exceeded_status()))))
            }
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            // Trailers may follow, but no data.
            None => SizeHint::with_exact(0),
            Some(inner) => inner.size_hint(),
        }
    }
}

/// `grpc-status: 4` and its message.
fn deadline_exceeded_status() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert("grpc-status", HeaderValue::from_static(DEADLINE_EXCEEDED));
    headers.insert(
        "grpc-message",
        HeaderValue::from_static("deadline%20exceeded"),
    );
    headers
}

/// A trailers-only `DEADLINE_EXCEEDED` response: the status in the
/// headers, and a body that is already at its end.
fn deadline_exceeded<B>() -> Response<TimeoutBody<B>> {
    let mut response = Response::new(TimeoutBody {
        inner: None,
        deadline: None,
    });
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.extend(deadline_exceeded_status());
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
