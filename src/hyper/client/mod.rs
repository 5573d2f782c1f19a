//! [`Client`]: a pooled HTTP/1.1 client on gopark, with a connect timeout
//! and names resolved off the workers.
//!
//! hyper-util's pooled client (`client::legacy::Client`) needs its
//! `client-legacy` feature, which switches on tokio's `net` (and with it
//! mio, a second reactor). This is the same idea on gopark's netpoller,
//! with Go's `http.Transport` as the model:
//!
//! * **Keep-alive**: each host (`host:port`) has a pool of idle
//!   connections; a request takes the most recently used one, or opens a
//!   new connection. A connection goes back to the pool the moment the
//!   response [`Body`] has been read to the end (Go's `bodyEOFSignal`), so
//!   the next request, sent right after, finds it; a body dropped
//!   half-read closes its connection.
//! * **Connect timeout**: the [`Connector`] bounds the name lookup and the
//!   TCP handshake together (30 s unless set).
//! * **Names off the workers**: `getaddrinfo` runs on the blocking pool,
//!   so a slow resolver stalls no task; an IP literal needs no lookup.
//! * **A server that closes idle connections**: a pooled connection the
//!   server has closed is thrown away; a request that finds out only as it
//!   is sent (hyper hands it back unsent) goes over a new connection. One
//!   that was written as the close landed, and failed before any byte of
//!   an answer arrived, is sent again, once, on a new connection, if it may
//!   be sent twice: an idempotent method (GET, HEAD, OPTIONS, TRACE, PUT,
//!   DELETE) and no body, as Go's `http.Transport` does. Any other request
//!   (a POST, a PUT with a body) fails with the connection's error: the
//!   server may have acted on it.
//! * **Idle timeout**: a connection idle for longer than 90 s (unless set)
//!   is not reused.
//!
//! It speaks HTTP/1.1 over TCP, `http://` URIs only. hyper's
//! `client::conn::http2` with [`Executor`](super::Executor) and an
//! [`Io`] stream gives HTTP/2 on one connection, and
//! futures-rustls's client connector over a [`Connector`] stream gives TLS.
//!
//! # Costs
//!
//! Per request: one lock of the pool to take a connection and one to put
//! it back, and a boxed closure that puts it back; on a pooled connection,
//! a copy of the head of a request that may be sent twice. Per connection:
//! one task that drives it, and a count of the bytes read from it (has an
//! answer begun?).
//!
//! ```
//! use std::convert::Infallible;
//! use std::future::IntoFuture;
//!
//! use bytes::Bytes;
//! use gopark::hyper::{client::Client, serve};
//! use gopark::net::TcpListener;
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::{service::service_fn, Request, Response};
//!
//! gopark::runtime::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let hello = service_fn(|_: Request<hyper::body::Incoming>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("Hello, World!"))))
//!     });
//!     gopark::runtime::spawn(serve(listener, hello).into_future());
//!
//!     let client = Client::new();
//!     for _ in 0..3 {
//!         let resp = client.get(format!("http://localhost:{}/", addr.port()).parse().unwrap()).await?;
//!         assert_eq!(resp.status(), 200);
//!         let body = resp.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
//!         assert_eq!(body, "Hello, World!");
//!     }
//!     // The three requests went over one connection, now idle.
//!     # let _: &Client<Empty<Bytes>> = &client;
//!     assert_eq!(client.idle_connections(), 1);
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```

mod body;
mod connect;
mod pool;
mod replay;

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gopark_net::TcpStream;
use hyper::body::Body as HttpBody;
use hyper::client::conn::http1;
use hyper::header::{HeaderValue, HOST};
use hyper::{Request, Response, Uri};

use self::pool::{Key, Pool};
use self::replay::{Counted, Replay, WireBody};
use super::Io;

pub use self::body::Body;
pub use self::connect::Connector;

type BoxError = Box<dyn StdError + Send + Sync>;

/// A pooled HTTP/1.1 client; see the [module](self) documentation. Cheap
/// to clone: the clones share one pool.
///
/// `B` is the type of the request bodies (`http_body_util::Full<Bytes>`,
/// `Empty<Bytes>`, ...).
pub struct Client<B> {
    inner: Arc<Inner<B>>,
}

struct Inner<B> {
    connector: Connector,
    pool: Pool<B>,
    http1: http1::Builder,
}

impl<B> Clone for Client<B> {
    fn clone(&self) -> Client<B> {
        Client {
            inner: self.inner.clone(),
        }
    }
}

impl<B> fmt::Debug for Client<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("connector", &self.inner.connector)
            .field("idle_connections", &self.inner.pool.idle_count())
            .finish_non_exhaustive()
    }
}

/// Sets up a [`Client`]; made by [`Client::builder`].
#[derive(Clone, Debug)]
pub struct Builder {
    connector: Connector,
    idle_timeout: Option<Duration>,
    max_idle_per_host: usize,
    http1: http1::Builder,
}

impl Builder {
    /// Bounds a connect, name lookup included (30 s unless set); `None`
    /// waits as long as the kernel does.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.connector = self.connector.timeout(timeout);
        self
    }

    /// How long a connection may stay idle in the pool and still be used
    /// (90 s unless set); `None`: for ever.
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Builder {
        self.idle_timeout = timeout;
        self
    }

    /// The most idle connections kept per host (no limit unless set); 0
    /// turns keep-alive off.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Builder {
        self.max_idle_per_host = max;
        self
    }

    /// hyper's HTTP/1.1 client options, for each new connection.
    pub fn http1(mut self, f: impl FnOnce(&mut http1::Builder)) -> Builder {
        f(&mut self.http1);
        self
    }

    /// The client.
    pub fn build<B>(self) -> Client<B> {
        Client {
            inner: Arc::new(Inner {
                connector: self.connector,
                pool: Pool::new(self.idle_timeout, self.max_idle_per_host),
                http1: self.http1,
            }),
        }
    }
}

impl<B> Default for Client<B> {
    fn default() -> Client<B> {
        Client::new()
    }
}

impl Client<()> {
    /// A [`Builder`] with the defaults.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use bytes::Bytes;
    /// use gopark::hyper::Client;
    /// use http_body_util::Full;
    ///
    /// let client: Client<Full<Bytes>> = Client::builder()
    ///     .connect_timeout(Some(Duration::from_secs(2)))
    ///     .pool_idle_timeout(Some(Duration::from_secs(30)))
    ///     .pool_max_idle_per_host(8)
    ///     .build();
    /// # drop(client);
    /// ```
    pub fn builder() -> Builder {
        Builder {
            connector: Connector::new(),
            idle_timeout: Some(Duration::from_secs(90)),
            max_idle_per_host: usize::MAX,
            http1: http1::Builder::new(),
        }
    }
}

impl<B> Client<B> {
    /// A client with the defaults: 30 s connect timeout, idle connections
    /// kept 90 s.
    pub fn new() -> Client<B> {
        Client::builder().build()
    }

    /// Idle connections in the pool, all hosts together (connections the
    /// server has closed included, until a request finds them).
    pub fn idle_connections(&self) -> usize {
        self.inner.pool.idle_count()
    }
}

impl<B> Client<B>
where
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Sends a `GET` for `uri`, with an empty body.
    pub async fn get(&self, uri: Uri) -> io::Result<Response<Body>>
    where
        B: Default,
    {
        let mut req = Request::new(B::default());
        *req.uri_mut() = uri;
        self.request(req).await
    }

    /// Sends `req`, whose URI must be absolute (`http://host[:port]/path`),
    /// over a pooled connection or a new one, and returns the response as
    /// soon as its head has arrived.
    ///
    /// Errors: a URI without a host is `InvalidInput`, a scheme other than
    /// `http` `Unsupported`, a connect that takes too long `TimedOut`; a
    /// refused connect keeps its kind (`ConnectionRefused`); an error of
    /// hyper's is an `io::Error` of kind `Other` whose source it is. A
    /// request that may be sent twice (an idempotent method, no body) and
    /// whose pooled connection failed before any byte of an answer is sent
    /// again, once, on a new connection; see the [module](self) docs.
    pub async fn request(&self, mut req: Request<B>) -> io::Result<Response<Body>> {
        let uri = req.uri().clone();
        let (host, port) = connect::host_port(&uri)?;
        let key: Key = format!("{host}:{port}");
        if !req.headers().contains_key(HOST) {
            let authority = uri.authority().map_or(host, |a| a.as_str());
            let value = HeaderValue::from_str(authority)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            req.headers_mut().insert(HOST, value);
        }
        // HTTP/1.1 to an origin server: the path and query only.
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        *req.uri_mut() = path;

        // A pooled connection may turn out closed as the request is handed
        // to it; hyper then gives the request back, unsent, and it goes
        // over a new connection. One that fails once the request is out,
        // before any byte of an answer (the server closed it meanwhile),
        // takes the request again on a new connection, once, if it may be
        // sent twice.
        let mut req = req.map(|body| WireBody::Given { body });
        let mut fresh_only = false;
        loop {
            let taken = if fresh_only {
                None
            } else {
                self.inner.pool.take(&key)
            };
            let (mut conn, reused) = match taken {
                Some(mut conn) => {
                    // A body read to the end gave the connection back
                    // before hyper's own task saw the end: it is ready in
                    // a moment, or closed.
                    if conn.sender.ready().await.is_err() {
                        continue;
                    }
                    (conn, true)
                }
                None => (self.connect(host, port).await?, false),
            };
            let replay = if reused { Replay::of(&req) } else { None };
            let read_before = conn.read.load(Ordering::Relaxed);
            match conn.sender.try_send_request(req).await {
                Ok(resp) => {
                    let pool = Arc::downgrade(&self.inner);
                    // Weak: a client dropped meanwhile has no pool to go
                    // back to, and the connection closes.
                    let put_back = Box::new(move || {
                        if let Some(inner) = pool.upgrade() {
                            inner.pool.put(key, conn);
                        }
                    });
                    return Ok(resp.map(|body| Body::new(body, put_back)));
                }
                Err(mut e) => {
                    if let Some(unsent) = e.take_message() {
                        if reused {
                            req = unsent;
                            continue;
                        }
                    }
                    let e = e.into_error();
                    let unanswered = conn.read.load(Ordering::Relaxed) == read_before;
                    match replay {
                        // The connection failed, not the request.
                        Some(replay) if unanswered && !e.is_user() => {
                            req = replay.request();
                            fresh_only = true;
                        }
                        _ => return Err(io::Error::other(e)),
                    }
                }
            }
        }
    }

    /// A new connection to `host:port`, its driver running on a task.
    async fn connect(&self, host: &str, port: u16) -> io::Result<Conn<B>> {
        let stream: TcpStream = self.inner.connector.connect(host, port).await?;
        let (stream, read) = Counted::new(stream);
        let (sender, driver) = self
            .inner
            .http1
            .handshake(Io::from_socket(stream))
            .await
            .map_err(io::Error::other)?;
        // The driver ends when the connection closes, or when every
        // sender is gone; its error is the requests' to report.
        drop(gopark_runtime::spawn(async move {
            let _ = driver.await;
        }));
        Ok(Conn { sender, read })
    }
}

/// A connection of a [`Client`]: hyper's handle to send requests on it,
/// and how many bytes have been read from it so far (has an answer begun?).
#[derive(Debug)]
struct Conn<B> {
    sender: http1::SendRequest<WireBody<B>>,
    read: Arc<AtomicU64>,
}
