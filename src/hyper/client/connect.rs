//! [`Connector`]: TCP connections by host name, with a timeout, the name
//! resolved off the workers.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use gopark_net::TcpStream;
use gopark_runtime::time;
use hyper::Uri;

use crate::hyper::Io;

/// Opens TCP connections for a [`Client`](super::Client): resolves the host
/// name on the blocking pool (an IP literal needs no lookup), tries each
/// address in turn, and gives up after the connect timeout — the dialer of
/// Go's `http.Transport`.
///
/// It is also a tower `Service<Uri>` answering an [`Io`] stream, which
/// other hyper-based stacks take as their connector.
///
/// ```
/// use std::time::Duration;
///
/// use gopark::hyper::client::Connector;
/// use gopark::net::TcpListener;
///
/// gopark::runtime::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     let port = listener.local_addr()?.port();
///     let connector = Connector::new().timeout(Some(Duration::from_secs(5)));
///     let stream = connector.connect("localhost", port).await?;
///     assert_eq!(stream.peer_addr()?.port(), port);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Connector {
    timeout: Option<Duration>,
}

/// Go's `net.Dialer` default in `http.DefaultTransport`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for Connector {
    fn default() -> Connector {
        Connector::new()
    }
}

impl Connector {
    /// A connector with a 30 s timeout.
    pub fn new() -> Connector {
        Connector {
            timeout: Some(CONNECT_TIMEOUT),
        }
    }

    /// Sets the bound on one connect, name lookup included; `None` waits
    /// as long as the kernel does.
    pub fn timeout(mut self, timeout: Option<Duration>) -> Connector {
        self.timeout = timeout;
        self
    }

    /// Connects to `host` (a name, an IPv4 address, or an IPv6 address
    /// with or without brackets) on `port`. A timeout is an error of kind
    /// [`TimedOut`](io::ErrorKind::TimedOut); when every address fails, the
    /// last address's error is returned.
    pub async fn connect(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let attempt = connect(host, port);
        match self.timeout {
            None => attempt.await,
            Some(limit) => match time::timeout(limit, attempt).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {host}:{port}: timed out after {limit:?}"),
                )),
            },
        }
    }

    /// Connects to the host and port of `uri` (port 80 unless it says
    /// otherwise).
    pub async fn connect_uri(&self, uri: &Uri) -> io::Result<TcpStream> {
        let (host, port) = host_port(uri)?;
        self.connect(host, port).await
    }
}

/// The host and port a URI names; a URI without a host is an error of kind
/// `InvalidInput`, one with a scheme other than `http` `Unsupported`.
pub(crate) fn host_port(uri: &Uri) -> io::Result<(&str, u16)> {
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{uri}: scheme {other} is not supported (http only)"),
            ))
        }
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{uri}: an absolute URI (http://host/...) is needed"),
            ))
        }
    }
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: no host")))?;
    Ok((host, uri.port_u16().unwrap_or(80)))
}

async fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    // An IP literal is used as it is; a name is resolved on the blocking
    // pool (getaddrinfo blocks), never on a worker.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = gopark_net::lookup_host((literal, port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("name lookup of {host}: {e}")))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: the name has no address"),
        )
    }))
}

impl tower_service::Service<Uri> for Connector {
    type Response = Io<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Io<TcpStream>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect_uri(&uri).await.map(Io::from_socket) })
    }
}
