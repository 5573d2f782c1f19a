//! [`serve`]: an accept loop for hyper, with a graceful shutdown — axum's
//! `serve` and hyper-util's `auto` builder, on gopark.
//!
//! `serve(listener, service)` accepts connections from a [`Listener`] (a
//! [`TcpListener`](crate::net::TcpListener), a
//! [`UnixListener`](crate::net::UnixListener), a TLS listener) and serves
//! each one on a task of its own with hyper-util's `auto` builder:
//! HTTP/2 to a client that opens with the HTTP/2 preface (`curl
//! --http2-prior-knowledge`, gRPC, a TLS client that chose `h2` by ALPN),
//! HTTP/1.1 to the others, upgrades (WebSocket) included. The service is a
//! hyper service or a tower service (an axum `Router`), cloned for every
//! connection. The returned [`Serve`] is a builder; `.await` it to run the
//! server. The future resolves with `io::Result<()>`.
//!
//! # Shutdown
//!
//! [`with_graceful_shutdown(signal)`](Serve::with_graceful_shutdown)
//! takes a future (a signal, a channel, a timer). When it resolves:
//!
//! 1. the listener is dropped: new connections are refused;
//! 2. every connection is told to shut down gracefully (hyper's
//!    `graceful_shutdown`): a request in flight is finished and answered,
//!    with `Connection: close` on HTTP/1.1 or after a GOAWAY on HTTP/2,
//!    and an idle connection closes at once;
//! 3. `serve` waits for the connections to end, and resolves with `Ok(())`;
//! 4. with a [`shutdown_timeout`](Serve::shutdown_timeout), it waits that
//!    long at most: then the connections still open are closed, and it
//!    resolves with an error of kind `TimedOut`.
//!
//! This is Go's `http.Server.Shutdown(ctx)`; hyper-util's
//! `GracefulShutdown` and axum's `with_graceful_shutdown` do steps 1 to 3.
//! [`on_shutdown`](Serve::on_shutdown) runs a function between steps 1
//! and 2 (Go's `RegisterOnShutdown`), with the number of open connections.
//!
//! Without a signal, `serve` runs until the listener fails.
//!
//! # Accept errors
//!
//! Out of descriptors (`EMFILE`, `ENFILE`) or kernel memory, `accept`
//! fails while the connection waits in the queue. The loop then sleeps,
//! 5 ms doubling up to 1 s, as Go's `net/http` does, instead of spinning,
//! and writes the first failure of a run to stderr (an accept loop of
//! one's own takes the same back-off from
//! [`gopark::net::AcceptBackoff`](crate::net::AcceptBackoff)). Any other
//! error of the listener ends `serve` with that error; the connections
//! already accepted keep running on their tasks, as they do when the
//! `Serve` future is dropped.
//!
//! # Costs
//!
//! One task per connection, plus the tasks HTTP/2 spawns per stream
//! (through [`Executor`]); the shutdown's bookkeeping is
//! one atomic load per poll of a connection, and a lock at its start and
//! end.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use std::future::IntoFuture;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use futures_channel::oneshot;
//! use gopark::hyper::serve;
//! use gopark::net::{TcpListener, TcpStream};
//! use gopark::runtime;
//! use http_body_util::Full;
//! use hyper::{service::service_fn, Request, Response};
//!
//! runtime::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let hello = service_fn(|_req: Request<hyper::body::Incoming>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("Hello, World!"))))
//!     });
//!     let (stop, stopped) = oneshot::channel::<()>();
//!     let server = runtime::spawn(
//!         serve(listener, hello)
//!             .with_graceful_shutdown(async move { stopped.await.ok(); })
//!             .shutdown_timeout(Duration::from_secs(10))
//!             .into_future(),
//!     );
//!
//!     // A raw HTTP/1.1 request.
//!     let stream = TcpStream::connect(addr).await?;
//!     stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
//!     let mut reply = Vec::new();
//!     let mut buf = [0; 1024];
//!     loop {
//!         let n = stream.read(&mut buf).await?;
//!         if n == 0 { break; }
//!         reply.extend_from_slice(&buf[..n]);
//!     }
//!     assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
//!     assert!(reply.ends_with(b"Hello, World!"));
//!
//!     stop.send(()).unwrap();
//!     server.await.unwrap()?; // every connection is done
//!     assert!(TcpStream::connect(addr).await.is_err());
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! An axum `Router` is served the same way, as a tower service:
//! `serve(listener, router)`; so are tonic's `Routes`.

mod drain;
mod listener;
mod service;

use std::error::Error as StdError;
use std::fmt;
use std::future::{poll_fn, Future, IntoFuture};
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::Duration;

use gopark_net::{AcceptBackoff, AcceptError};
use gopark_runtime::time;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::server::conn::auto;

use self::drain::{Drain, Phase, Watch};
use super::{Executor, Timer};

pub use self::listener::Listener;
pub use self::service::{IntoHyperService, ViaHyper, ViaTower};

type BoxError = Box<dyn StdError + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Serves `service` on the connections of `listener`; see the
/// [module](self) documentation. Returns a builder; `.await` it to run.
///
/// `service` is a hyper or a tower service answering `Request<Incoming>`
/// with `Response<B>`, cloned for each connection.
pub fn serve<L, S, M, B>(listener: L, service: S) -> Serve<L, S::Service>
where
    L: Listener,
    S: IntoHyperService<M>,
    S::Service: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    <S::Service as hyper::service::Service<Request<Incoming>>>::Future: Send + 'static,
    <S::Service as hyper::service::Service<Request<Incoming>>>::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(Executor::new());
    // hyper's default header read timeout (30 s) needs a timer to run.
    builder.http1().timer(Timer::new());
    builder.http2().timer(Timer::new());
    Serve {
        listener,
        service: service.into_hyper_service(),
        builder,
        signal: None,
        grace: None,
        on_shutdown: None,
    }
}

/// A server not started yet: set it up, then `.await` it (it implements
/// [`IntoFuture`]). Made by [`serve`].
#[must_use = "a server does nothing until it is awaited"]
pub struct Serve<L, S> {
    listener: L,
    service: S,
    builder: auto::Builder<Executor>,
    signal: Option<BoxFuture<()>>,
    grace: Option<Duration>,
    on_shutdown: Option<Box<dyn FnOnce(usize) + Send>>,
}

impl<L: fmt::Debug, S> fmt::Debug for Serve<L, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("graceful", &self.signal.is_some())
            .field("shutdown_timeout", &self.grace)
            .finish_non_exhaustive()
    }
}

impl<L, S> Serve<L, S>
where
    L: Listener,
{
    /// Shuts the server down gracefully when `signal` resolves: stop
    /// accepting, let the connections finish what is in flight, then
    /// resolve. See the [module](self) documentation.
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Serve<L, S>
    where
        F: Future + Send + 'static,
    {
        self.signal = Some(Box::pin(async move {
            signal.await;
        }));
        self
    }

    /// Bounds the wait of a graceful shutdown: after `timeout`, the
    /// connections still open are closed and the server resolves with an
    /// error of kind [`TimedOut`](io::ErrorKind::TimedOut). Without it, the
    /// wait has no bound.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Serve<L, S> {
        self.grace = Some(timeout);
        self
    }

    /// Calls `f` once the listener is closed, before the connections are
    /// told to shut down, with the number of connections still open — Go's
    /// `RegisterOnShutdown`.
    pub fn on_shutdown(mut self, f: impl FnOnce(usize) + Send + 'static) -> Serve<L, S> {
        self.on_shutdown = Some(Box::new(f));
        self
    }

    /// Sets up hyper-util's `auto` builder that serves each connection:
    /// HTTP/1.1 and HTTP/2 options, `http2_only`, header read timeout.
    /// Both protocols have gopark's [`Timer`] already.
    ///
    /// ```
    /// # use std::convert::Infallible;
    /// # use std::time::Duration;
    /// # use gopark::hyper::serve;
    /// # use gopark::net::TcpListener;
    /// # let service = hyper::service::service_fn(|_: hyper::Request<hyper::body::Incoming>| async {
    /// #     Ok::<_, Infallible>(hyper::Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
    /// # });
    /// # gopark::runtime::block_on(async {
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let server = serve(listener, service).configure(|builder| {
    ///     builder.http1().header_read_timeout(Duration::from_secs(10));
    ///     builder.http2().max_concurrent_streams(100);
    /// });
    /// # drop(server);
    /// # Ok::<_, std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn configure(mut self, f: impl FnOnce(&mut auto::Builder<Executor>)) -> Serve<L, S> {
        f(&mut self.builder);
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<L::Addr> {
        self.listener.local_addr()
    }
}

/// The future of a running [`Serve`].
#[must_use = "a server does nothing until it is awaited"]
pub struct ServeFuture(BoxFuture<io::Result<()>>);

impl fmt::Debug for ServeFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeFuture").finish_non_exhaustive()
    }
}

impl Future for ServeFuture {
    type Output = io::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll(cx)
    }
}

impl<L, S, B> IntoFuture for Serve<L, S>
where
    L: Listener,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Output = io::Result<()>;
    type IntoFuture = ServeFuture;

    fn into_future(self) -> ServeFuture {
        ServeFuture(Box::pin(self.run()))
    }
}

/// What one turn of the accept loop saw.
enum Turn<T> {
    Accepted(T),
    Failed(io::Error),
    Signal,
}

impl<L, S, B> Serve<L, S>
where
    L: Listener,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    async fn run(self) -> io::Result<()> {
        let Serve {
            mut listener,
            service,
            builder,
            signal,
            grace,
            on_shutdown,
        } = self;
        let mut signal = signal.unwrap_or_else(|| Box::pin(std::future::pending()));
        let drain = Drain::new();
        let mut backoff = AcceptBackoff::new();
        loop {
            let turn = poll_fn(|cx| {
                if signal.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Turn::Signal);
                }
                listener.poll_accept(cx).map(|r| match r {
                    Ok(conn) => Turn::Accepted(conn),
                    Err(e) => Turn::Failed(e),
                })
            })
            .await;
            match turn {
                Turn::Accepted((io, _peer)) => {
                    backoff.reset();
                    let conn = builder
                        .serve_connection_with_upgrades(listener.hyper_io(io), service.clone())
                        .into_owned();
                    let watch = drain.watch();
                    drop(gopark_runtime::spawn(connection(conn, watch)));
                }
                Turn::Failed(e) => {
                    let first = !backoff.is_backing_off();
                    match backoff.on_error(&e) {
                        AcceptError::Retry => {}
                        AcceptError::Fatal => return Err(e),
                        AcceptError::Sleep(delay) => {
                            // The first failure of a run, once: a run
                            // lasts as long as the descriptors are short.
                            if first {
                                eprintln!(
                                    "gopark::hyper::serve: accept: {e}; backing off \
                                     (5 ms up to 1 s) until it succeeds"
                                );
                            }
                            let mut sleep = pin!(time::sleep(delay));
                            let stop = poll_fn(|cx| {
                                if signal.as_mut().poll(cx).is_ready() {
                                    return Poll::Ready(true);
                                }
                                sleep.as_mut().poll(cx).map(|()| false)
                            })
                            .await;
                            if stop {
                                break;
                            }
                        }
                    }
                }
                Turn::Signal => break,
            }
        }

        // New connections are refused from here on.
        drop(listener);
        if let Some(f) = on_shutdown {
            f(drain.open());
        }
        drain.advance(Phase::Graceful);
        let Some(grace) = grace else {
            drain.idle().await;
            return Ok(());
        };
        if time::timeout(grace, drain.idle()).await.is_ok() {
            return Ok(());
        }
        let left = drain.open();
        drain.advance(Phase::Forced);
        drain.idle().await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{left} connection(s) still open after {grace:?}: closed"),
        ))
    }
}

/// One connection's task: serve it until it ends, shut it down gracefully
/// when the phase says so, drop it when forced.
async fn connection<C>(conn: C, mut watch: Watch)
where
    C: Future + GracefulConnection,
{
    let mut conn = pin!(conn);
    let mut seen = Phase::Serving;
    poll_fn(|cx| {
        // The phase first: once a shutdown has begun, a response written
        // in this poll already says `Connection: close`.
        loop {
            match watch.poll_phase(cx, seen) {
                Poll::Pending => break,
                Poll::Ready(Phase::Forced) => return Poll::Ready(()),
                Poll::Ready(phase) => {
                    seen = phase;
                    // hyper finishes the requests in flight, then closes.
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        // A client that resets its connection, or sends garbage, is its own
        // problem: the connection's result is not reported.
        conn.as_mut().poll(cx).map(drop)
    })
    .await;
    drop(watch);
}

/// A connection that can be asked to finish and close.
trait GracefulConnection {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulConnection for auto::UpgradeableConnection<'static, I, S, E>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: 'static,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        auto::UpgradeableConnection::graceful_shutdown(self)
    }
}
