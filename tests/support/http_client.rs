//! hyper's client on gopark, for the tests of the `hyper` feature and of
//! the hyper and axum examples: one connection, HTTP/1.1 or HTTP/2 with
//! prior knowledge, through `gopark::hyper::{Io, Executor}`.

use std::net::SocketAddr;

use bytes::Bytes;
use gopark::hyper::{Executor, Io};
use gopark::net::TcpStream;
use gopark::runtime;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Version};

/// One client connection; its connection task runs on the current runtime.
pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Client {
    /// Connects to `addr` and shakes hands, over HTTP/2 if `http2`.
    pub async fn connect(addr: SocketAddr, http2: bool) -> Client {
        let io = Io::new(TcpStream::connect(addr).await.unwrap());
        if http2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(Executor::new(), io)
                .await
                .unwrap();
            runtime::spawn(conn);
            Client::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            runtime::spawn(conn);
            Client::H1(sender)
        }
    }

    /// The protocol every response on this connection must have.
    pub fn version(&self) -> Version {
        match self {
            Client::H1(_) => Version::HTTP_11,
            Client::H2(_) => Version::HTTP_2,
        }
    }

    /// Sends `req`; checks that the response came over this connection's
    /// protocol.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        let want = self.version();
        let resp = match self {
            Client::H1(s) => {
                s.ready().await.unwrap();
                s.send_request(req).await.unwrap()
            }
            Client::H2(s) => s.send_request(req).await.unwrap(),
        };
        assert_eq!(resp.version(), want);
        resp
    }

    /// Sends `method path` with `body` (and a content type, if given);
    /// returns the status, the response's content type ("" without one)
    /// and the whole body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> (StatusCode, String, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://localhost{path}"))
            .header("host", "localhost");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = self.send(req.body(Full::new(body.into())).unwrap()).await;
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (
            status,
            ct,
            resp.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    /// `GET path`: the status, content type and body.
    pub async fn get(&mut self, path: &str) -> (StatusCode, String, Bytes) {
        self.request("GET", path, None, Bytes::new()).await
    }
}

/// A response body parsed as JSON; the body is in the message if it is not.
pub fn json_of(bytes: &Bytes) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {bytes:?}"))
}
