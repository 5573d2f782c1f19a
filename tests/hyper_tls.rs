//! `gopark::hyper::tls` with rustls on both ends, on loopback: HTTP/2 and
//! HTTP/1.1 chosen by ALPN through `serve`, handshakes that fail or never
//! come closed without holding anyone up, and nothing left behind once
//! the server is gone, handshakes in flight included.

mod support;

use std::convert::Infallible;
use std::future::IntoFuture;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_channel::oneshot;
use futures_rustls::rustls::pki_types::ServerName;
use futures_rustls::rustls::{ClientConfig, RootCertStore};
use futures_rustls::TlsConnector;
use gopark::hyper::tls::{self, TlsListener};
use gopark::hyper::{serve, Executor, Io};
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, Version};
use support::leak::Census;
use support::net::read_to_end;
use support::rt::{join, run_io, serial, LIMIT};

const WAIT: Duration = Duration::from_secs(10);

/// A self-signed certificate for `localhost`: the server's configuration,
/// and a client configuration that trusts it and offers `alpn`.
fn configs(alpn: &[u8]) -> (Arc<futures_rustls::rustls::ServerConfig>, Arc<ClientConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let server = tls::server_config(
        made.cert.pem().as_bytes(),
        made.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    #[allow(deprecated)] // ring's provider; see gopark::hyper::tls
    let provider = Arc::new(futures_rustls::rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![alpn.to_vec()];
    (server, Arc::new(client))
}

/// Serves `format!("{:?}", version)` over TLS until `stop` is sent.
fn start(
    config: Arc<futures_rustls::rustls::ServerConfig>,
    handshake_timeout: Duration,
) -> io::Result<(
    SocketAddr,
    oneshot::Sender<()>,
    runtime::JoinHandle<io::Result<()>>,
)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let listener = TlsListener::new(listener, config).handshake_timeout(handshake_timeout);
    let version = service_fn(|req: Request<Incoming>| async move {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
            "{:?}",
            req.version()
        )))))
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = runtime::spawn(
        serve(listener, version)
            .with_graceful_shutdown(stopped)
            .into_future(),
    );
    Ok((addr, stop, server))
}

/// One request over TLS, HTTP/2 or HTTP/1.1 as `client` offers by ALPN;
/// the body of the answer.
async fn request(addr: SocketAddr, client: Arc<ClientConfig>) -> io::Result<(Version, Bytes)> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let stream = TlsConnector::from(client.clone())
        .connect(name, tcp)
        .await?;
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    assert_eq!(h2, client.alpn_protocols[0] == b"h2", "ALPN agreed");
    let req = Request::get("https://localhost/")
        .body(Full::<Bytes>::default())
        .unwrap();
    let resp = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(Executor::new(), Io::new(stream))
                .await
                .map_err(io::Error::other)?;
        drop(runtime::spawn(conn));
        sender.send_request(req).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(Io::new(stream))
            .await
            .map_err(io::Error::other)?;
        drop(runtime::spawn(conn));
        sender.send_request(req).await
    }
    .map_err(io::Error::other)?;
    let version = resp.version();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    Ok((version, body))
}

#[test]
fn alpn_chooses_http2_or_http1() {
    let _serial = serial();
    run_io(2, "tls-alpn", LIMIT, || async {
        for (alpn, want) in [
            (&b"h2"[..], Version::HTTP_2),
            (b"http/1.1", Version::HTTP_11),
        ] {
            let (server_config, client_config) = configs(alpn);
            let (addr, stop, server) = start(server_config, WAIT)?;
            for _ in 0..3 {
                let (version, body) = request(addr, client_config.clone()).await?;
                assert_eq!(version, want);
                assert_eq!(body, format!("{want:?}"));
            }
            stop.send(()).unwrap();
            timeout(WAIT, join(server)).await.unwrap()?;
        }
        Ok(())
    });
}

#[test]
fn bad_and_silent_handshakes_are_closed_and_hold_no_one_up() {
    let _serial = serial();
    run_io(2, "tls-bad-handshakes", LIMIT, || async {
        let (server_config, client_config) = configs(b"h2");
        let limit = Duration::from_millis(300);
        let (addr, stop, server) = start(server_config, limit)?;
        // Garbage: an alert, then the connection is closed.
        let garbage = TcpStream::connect(addr).await?;
        garbage
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        match timeout(WAIT, read_to_end(&garbage)).await.unwrap() {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
        // Silence: served around it, then closed at the handshake timeout.
        let silent = TcpStream::connect(addr).await?;
        let start = Instant::now();
        assert_eq!(request(addr, client_config.clone()).await?.1, "HTTP/2.0");
        assert_eq!(timeout(WAIT, read_to_end(&silent)).await.unwrap()?, b"");
        assert!(
            start.elapsed() >= limit,
            "closed after {:?}",
            start.elapsed()
        );
        // And the server still serves.
        assert_eq!(request(addr, client_config).await?.1, "HTTP/2.0");
        stop.send(()).unwrap();
        timeout(WAIT, join(server)).await.unwrap()?;
        Ok(())
    });
}

#[test]
fn a_shutdown_stops_handshakes_in_flight_and_leaves_nothing_behind() {
    let _serial = serial();
    run_io(2, "tls-census", LIMIT, || async {
        let census = Census::take();
        let (server_config, client_config) = configs(b"http/1.1");
        // A handshake timeout far beyond the test's bound.
        let (addr, stop, server) = start(server_config, Duration::from_secs(3600))?;
        let silent = TcpStream::connect(addr).await?;
        // Accepted in turn: once a later connection has been served, the
        // silent one is in its handshake, on its task.
        assert_eq!(request(addr, client_config).await?.1, "HTTP/1.1");
        stop.send(()).unwrap();
        timeout(WAIT, join(server)).await.unwrap()?;
        // The silent client's handshake was stopped: its connection closed.
        match timeout(WAIT, read_to_end(&silent)).await.unwrap() {
            Ok(rest) => assert_eq!(rest, b""),
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        }
        drop(silent);
        census.assert_back("the TLS server is gone").await;
        Ok(())
    });
}
