//! A gRPC client channel on gopark: one HTTP/2 connection, made again when
//! it closes, with deadlines enforced on gopark's timer.
//!
//! tonic's own `Channel` is built on tokio's sockets and timers (its
//! `channel` feature); `tonic::client::Grpc` takes any tower service from
//! `http::Request<tonic::body::Body>` to `http::Response` in its place.
//! [`GrpcChannel`] is such a service: hyper's HTTP/2 client
//! (`hyper::client::conn::http2`) over a gopark `TcpStream`, with
//! `gopark::hyper::Executor` running the connection's streams.
//!
//! - **Reconnects.** The connection is made at the first call. A call that
//!   finds it closed (the server went away, or sent GOAWAY) makes a new
//!   one, and calls that find it closed together wait for that one new
//!   connection. A request that hyper could not send because the
//!   connection closed under it is sent again on a new connection (it
//!   never left, so this is safe for any method). A call already sent
//!   fails with the connection, with the status tonic makes of hyper's
//!   error: as with tonic's `Channel`, it is not retried.
//! - **Deadlines.** tonic's `Request::set_timeout` only writes the
//!   `grpc-timeout` header; the channel reads it back and holds the call
//!   to it: the response, and then each frame of its body, must come
//!   before the deadline, or the call fails with `DEADLINE_EXCEEDED` and
//!   the HTTP/2 stream is reset, so the server drops the handler too.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use gopark::hyper::grpc::grpc_timeout;
use gopark::hyper::{Executor, Io};
use gopark::net::TcpStream;
use gopark::runtime::{
    self,
    time::{sleep_until, timeout, timeout_at, Sleep},
};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http2::{self, SendRequest};
use hyper::http::uri::{Authority, Scheme};
use hyper::{Request, Response, Uri};
use tonic::body::Body;
use tonic::Status;

type BoxError = Box<dyn StdError + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A reconnecting HTTP/2 channel for `tonic::client::Grpc`; see the module
/// documentation. Clones share the connection.
#[derive(Clone, Debug)]
pub struct GrpcChannel {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    addr: SocketAddr,
    authority: Authority,
    /// The connection, with its number (the first is 1).
    current: Mutex<Option<(usize, SendRequest<Body>)>>,
    /// Held while connecting: calls that find the connection closed
    /// together make one new connection, not one each.
    connecting: futures::lock::Mutex<()>,
    connects: AtomicUsize,
}

impl GrpcChannel {
    /// A channel to the server at `addr`; it connects at the first call.
    pub fn new(addr: SocketAddr) -> GrpcChannel {
        let authority = addr
            .to_string()
            .parse()
            .expect("a socket address is an authority");
        GrpcChannel {
            shared: Arc::new(Shared {
                addr,
                authority,
                current: Mutex::new(None),
                connecting: futures::lock::Mutex::new(()),
                connects: AtomicUsize::new(0),
            }),
        }
    }

    /// How many connections the channel has made.
    pub fn connects(&self) -> usize {
        self.shared.connects.load(Ordering::SeqCst)
    }
}

impl Shared {
    fn current(&self) -> Option<(usize, SendRequest<Body>)> {
        self.current.lock().unwrap().clone()
    }

    /// The open connection, or a new one.
    async fn sender(&self) -> Result<(usize, SendRequest<Body>), BoxError> {
        match self.current() {
            Some((n, mut sender)) if !sender.is_closed() => {
                if sender.ready().await.is_ok() {
                    return Ok((n, sender));
                }
                self.reconnect(Some(n)).await
            }
            Some((n, _)) => self.reconnect(Some(n)).await,
            None => self.reconnect(None).await,
        }
    }

    /// A new connection in place of connection number `stale` — unless
    /// another call has made one meanwhile.
    async fn reconnect(
        &self,
        stale: Option<usize>,
    ) -> Result<(usize, SendRequest<Body>), BoxError> {
        let _connecting = self.connecting.lock().await;
        if let Some((n, sender)) = self.current() {
            if Some(n) != stale && !sender.is_closed() {
                return Ok((n, sender));
            }
        }
        let unavailable = |e: &dyn std::fmt::Display| {
            Status::unavailable(format!("connect to {}: {e}", self.addr))
        };
        let stream = match timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(unavailable(&e).into()),
            Err(e) => return Err(unavailable(&e).into()),
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http2::handshake(Executor::new(), Io::from_socket(stream))
            .await
            .map_err(|e| unavailable(&e))?;
        // The connection task ends when the server closes the connection,
        // or when every `SendRequest` is gone.
        drop(runtime::spawn(async move {
            let _ = conn.await;
        }));
        let n = self.connects.fetch_add(1, Ordering::SeqCst) + 1;
        *self.current.lock().unwrap() = Some((n, sender.clone()));
        Ok((n, sender))
    }

    async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
        let (n, mut sender) = self.sender().await?;
        match sender.try_send_request(req).await {
            Ok(response) => Ok(response),
            Err(mut e) => match e.take_message() {
                // Not sent: the connection closed between `ready` and now.
                Some(req) => {
                    let (_, mut sender) = self.reconnect(Some(n)).await?;
                    Ok(sender.send_request(req).await?)
                }
                None => Err(e.into_error().into()),
            },
        }
    }
}

impl tower_service::Service<Request<Body>> for GrpcChannel {
    type Response = Response<DeadlineBody>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Response<DeadlineBody>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let deadline = grpc_timeout(req.headers()).map(|t| Instant::now() + t);
            // tonic's `Grpc::new` sends a path only; HTTP/2 wants the
            // scheme and authority too.
            let path = req.uri().path_and_query().cloned();
            let mut uri = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(shared.authority.clone());
            if let Some(path) = path {
                uri = uri.path_and_query(path);
            }
            *req.uri_mut() = uri.build()?;
            let response = match deadline {
                None => shared.send(req).await?,
                Some(deadline) => match timeout_at(deadline, shared.send(req)).await {
                    Ok(response) => response?,
                    Err(_) => return Err(deadline_exceeded()),
                },
            };
            Ok(response.map(|body| DeadlineBody {
                body,
                deadline: deadline.map(|d| Box::pin(sleep_until(d))),
            }))
        })
    }
}

fn deadline_exceeded() -> BoxError {
    Status::deadline_exceeded("deadline exceeded").into()
}

/// A response body held to the call's deadline: a frame that comes too
/// late is a `DEADLINE_EXCEEDED` error, and dropping the body resets the
/// stream.
#[derive(Debug)]
pub struct DeadlineBody {
    body: Incoming,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for DeadlineBody {
    type Data = hyper::body::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                self.deadline = None;
                Poll::Ready(Some(Err(deadline_exceeded())))
            }
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
