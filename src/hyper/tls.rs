//! [`TlsListener`]: [`serve`](super::serve()) over TLS, with rustls (the
//! `tls` feature).
//!
//! futures-rustls works on any futures-io stream, so it works on gopark's
//! streams as they are: no compatibility layer, no second reactor. A
//! [`TlsListener`] wraps a [`Listener`] (TCP or Unix) and hands `serve`
//! the connections whose handshake has finished; [`Io`](super::Io) wraps
//! the TLS stream for hyper like any other stream.
//!
//! HTTP/2 or HTTP/1.1 is chosen by ALPN: [`server_config`] offers `h2` and
//! `http/1.1`, and a client that picked `h2` opens with the HTTP/2
//! preface, which `serve`'s `auto` builder recognises.
//!
//! # Handshakes off the accept loop
//!
//! Each handshake runs on a task of its own, bounded by
//! [`handshake_timeout`](TlsListener::handshake_timeout) (10 s unless set),
//! and `poll_accept` returns the connections whose handshake is done, in
//! the order they finish. A client that sends garbage, or nothing, costs a
//! task until its handshake fails or times out; its connection is then
//! closed, and it holds up no one else. Dropping the listener (as `serve`
//! does when a shutdown begins) stops the handshakes in flight. Failed handshakes are not
//! reported: they are the client's problem, and logging them would let
//! any client fill the log.
//!
//! # Crypto
//!
//! rustls is built with the `ring` provider, which builds with a C
//! compiler alone (the `aws-lc-rs` default needs cmake); it has no
//! post-quantum key exchange. [`server_config`]
//! names the provider, so a program that also links `aws-lc-rs` does not
//! have to install a process-wide default.
//!
//! ```
//! use gopark::hyper::{serve, tls::{self, TlsListener}};
//! use gopark::net::TcpListener;
//!
//! # let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
//! # let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
//! gopark::runtime::block_on(async {
//!     // The certificate chain and the key, from PEM (files read with
//!     // `std::fs::read`, say).
//!     let config = tls::server_config(cert_pem.as_bytes(), key_pem.as_bytes())?;
//!     let listener = TlsListener::new(TcpListener::bind("127.0.0.1:0")?, config);
//!     let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, TLS!" }));
//!     // HTTP/1.1 and HTTP/2 (ALPN) over TLS; until the future resolves.
//!     serve(listener, app).with_graceful_shutdown(async {}).await
//! })
//! .unwrap();
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use futures_rustls::rustls::ServerConfig;
use futures_rustls::TlsAcceptor;
use gopark_runtime::{time, JoinHandle};

use super::serve::Listener;

pub use futures_rustls::rustls;

/// A TLS stream over a gopark stream, as [`TlsListener`] hands it out.
pub type TlsStream<Io> = futures_rustls::server::TlsStream<Io>;

/// How long a client has to finish its handshake unless set otherwise.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A rustls server configuration with the `ring` provider, TLS 1.2 and
/// 1.3, no client authentication, and ALPN offering `h2` then `http/1.1`.
///
/// `cert_chain` holds the PEM certificates (the server's first, then its
/// intermediates), `key` one PEM private key (PKCS#8, PKCS#1 or SEC1). A
/// file with no certificate or no key, or a key that does not match, is an
/// error of kind [`InvalidData`](io::ErrorKind::InvalidData).
pub fn server_config(cert_chain: &[u8], key: &[u8]) -> io::Result<Arc<ServerConfig>> {
    let invalid = |what: &str, e: &dyn fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}"))
    };
    let certs = CertificateDer::pem_slice_iter(cert_chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate chain", &e))?;
    if certs.is_empty() {
        return Err(invalid("certificate chain", &"no PEM certificate found"));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| invalid("private key", &e))?;
    // rustls marks `ring`'s provider deprecated because it has no
    // post-quantum key exchange; `aws-lc-rs` has one but needs cmake to
    // build. Classical X25519 and P-256 are what curl and browsers offer
    // beside it.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid("certificate and key", &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A [`Listener`] that accepts from `L` and hands out the connections
/// whose TLS handshake has finished; see the [module](self) documentation.
pub struct TlsListener<L: Listener> {
    inner: L,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    done: Arc<Done<Accepted<L>>>,
    /// The handshake tasks, aborted when the listener is dropped; the
    /// finished ones are weeded out whenever the vector is full.
    handshakes: Vec<JoinHandle<()>>,
}

/// A connection whose handshake has finished, and its peer.
type Accepted<L> = (TlsStream<<L as Listener>::Io>, <L as Listener>::Addr);

impl<L: Listener + fmt::Debug> fmt::Debug for TlsListener<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("inner", &self.inner)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// The connections whose handshake finished, and the accept loop's waker.
struct Done<T> {
    state: Mutex<(VecDeque<T>, Option<Waker>)>,
}

impl<T> Done<T> {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<T>, Option<Waker>)> {
        // Nothing panics while holding it; recover the data anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<L: Listener> TlsListener<L> {
    /// Wraps `inner`, with a configuration such as [`server_config`]
    /// makes.
    pub fn new(inner: L, config: Arc<ServerConfig>) -> TlsListener<L> {
        TlsListener {
            inner,
            acceptor: TlsAcceptor::from(config),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            done: Arc::new(Done {
                state: Mutex::new((VecDeque::new(), None)),
            }),
            handshakes: Vec::new(),
        }
    }

    /// Sets how long a client has to finish its handshake (10 s unless
    /// set); past it the connection is closed.
    pub fn handshake_timeout(mut self, timeout: Duration) -> TlsListener<L> {
        self.handshake_timeout = timeout;
        self
    }

    /// The listener inside.
    pub fn get_ref(&self) -> &L {
        &self.inner
    }

    /// Starts the handshake of a new connection on a task of its own.
    fn handshake(&mut self, io: L::Io, addr: L::Addr) {
        let accept = self.acceptor.accept(io);
        let timeout = self.handshake_timeout;
        // Weak: once the listener is gone, a finished handshake has no one
        // to go to, and its connection is dropped (closed) at once.
        let done = Arc::downgrade(&self.done);
        let task = gopark_runtime::spawn(async move {
            let Ok(Ok(stream)) = time::timeout(timeout, accept).await else {
                return;
            };
            push(&done, (stream, addr));
        });
        if self.handshakes.len() == self.handshakes.capacity() {
            self.handshakes.retain(|h| !h.is_finished());
        }
        self.handshakes.push(task);
    }
}

impl<L: Listener> Drop for TlsListener<L> {
    /// Stops the handshakes in flight: their connections are closed.
    fn drop(&mut self) {
        for task in &self.handshakes {
            task.abort();
        }
    }
}

fn push<T>(done: &Weak<Done<T>>, conn: T) {
    let Some(done) = done.upgrade() else { return };
    let waker = {
        let mut state = done.lock();
        state.0.push_back(conn);
        state.1.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl<L: Listener> Listener for TlsListener<L>
where
    L::Addr: Send + 'static,
{
    type Io = TlsStream<L::Io>;
    type Addr = L::Addr;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Io, L::Addr)>> {
        // Start the handshake of everything waiting in the queue.
        loop {
            match self.inner.poll_accept(cx) {
                Poll::Ready(Ok((io, addr))) => self.handshake(io, addr),
                Poll::Ready(Err(e)) => {
                    // A finished handshake goes first; the error comes back
                    // on the next call, as accept fails again.
                    if let Some(conn) = self.done.lock().0.pop_front() {
                        return Poll::Ready(Ok(conn));
                    }
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => break,
            }
        }
        let mut state = self.done.lock();
        match state.0.pop_front() {
            Some(conn) => Poll::Ready(Ok(conn)),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn local_addr(&self) -> io::Result<L::Addr> {
        self.inner.local_addr()
    }
}
