//! hyper and axum on gopark (the `hyper` feature).
//!
//! hyper 1.x does not pick a runtime: it asks for a stream that implements
//! its [`Read`](hyper::rt::Read)/[`Write`](hyper::rt::Write), an
//! [`Executor`](hyper::rt::Executor) to spawn background tasks (HTTP/2
//! streams), and a [`Timer`](hyper::rt::Timer) for its timeouts. This module
//! is those three for gopark — what hyper-util's `TokioIo`,
//! `TokioExecutor` and `TokioTimer` are for tokio:
//!
//! | hyper wants | tokio (hyper-util) | gopark |
//! |---|---|---|
//! | `rt::Read + rt::Write` | `TokioIo::new(stream)` | [`Io::from_socket(stream)`](Io::from_socket) for gopark's sockets, [`Io::new(stream)`](Io::new) for any futures-io stream |
//! | `rt::Executor` | `TokioExecutor::new()` | [`Executor::new()`](Executor) |
//! | `rt::Timer` | `TokioTimer::new()` | [`Timer::new()`](Timer) |
//!
//! Everything else — hyper's server and client builders, hyper-util's
//! `auto` builder and `TowerToHyperService`, axum's `Router` — runs
//! unchanged. On top of them, what a service needs beside its routes:
//!
//! | need | tokio's world | gopark |
//! |---|---|---|
//! | an accept loop, HTTP/1.1 and HTTP/2, graceful shutdown | `axum::serve`, hyper-util's `GracefulShutdown` | [`serve(listener, service)`](serve()) |
//! | a pooled client | hyper-util's `client::legacy::Client` | [`Client`] |
//! | TLS (the `tls` feature) | `tokio-rustls`, `axum-server` | `tls::TlsListener` with `serve` |
//!
//! In `Cargo.toml`:
//!
//! ```toml
//! gopark = { version = "0.1", features = ["hyper"] }
//! hyper = { version = "1", features = ["http1", "http2", "server", "client"] }
//! # Not hyper-util's `tokio` feature, nor `client-legacy` (it needs tokio's
//! # sockets): gopark's netpoller must stay the only reactor in the process.
//! hyper-util = { version = "0.1", default-features = false, features = ["server-auto", "service"] }
//! axum = { version = "0.8", default-features = false, features = ["json", "http1", "http2"] }
//! ```
//!
//! hyper itself depends on tokio for its runtime-free `sync` module only;
//! axum's `tokio` feature (on by default, hence `default-features = false`)
//! would bring tokio's reactor and `axum::serve`, which [`serve`](serve())
//! replaces.
//!
//! # An HTTP/1.1 server and client
//!
//! One task per connection, as with any gopark server; hyper parses and
//! writes HTTP on top of the [`TcpStream`](crate::net::TcpStream). The
//! [`Timer`] lets hyper time out a client that is slow to send its headers.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use gopark::hyper::{Io, Timer};
//! use gopark::net::{TcpListener, TcpStream};
//! use gopark::runtime;
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::{server::conn::http1, service::service_fn, Request, Response};
//!
//! async fn hello(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::new(Bytes::from(format!("Hello, {}!", req.uri().path())))))
//! }
//!
//! runtime::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     runtime::spawn(async move {
//!         loop {
//!             let Ok((stream, _)) = listener.accept().await else { continue };
//!             runtime::spawn(
//!                 http1::Builder::new()
//!                     .timer(Timer::new())
//!                     .header_read_timeout(Duration::from_secs(10))
//!                     .serve_connection(Io::from_socket(stream), service_fn(hello)),
//!             );
//!         }
//!     });
//!
//!     // hyper's client, on gopark too.
//!     let stream = TcpStream::connect(addr).await?;
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(Io::from_socket(stream))
//!         .await
//!         .map_err(std::io::Error::other)?;
//!     runtime::spawn(conn);
//!     let req = Request::get("/world").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
//!     let resp = sender.send_request(req).await.map_err(std::io::Error::other)?;
//!     assert_eq!(resp.status(), 200);
//!     let body = resp.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
//!     assert_eq!(body, "Hello, /world!");
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # HTTP/1.1 and HTTP/2 on one port
//!
//! hyper-util's `auto` builder reads the first bytes of a connection and
//! speaks HTTP/2 to a client that starts with the HTTP/2 preface (`curl
//! --http2-prior-knowledge`, gRPC), HTTP/1.1 to the others. HTTP/2 runs
//! each stream as a task of its own, spawned through the [`Executor`]:
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use gopark::hyper::{Executor, Io};
//! use gopark::net::{TcpListener, TcpStream};
//! use gopark::runtime;
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::{service::service_fn, Request, Response, Version};
//! use hyper_util::server::conn::auto;
//!
//! runtime::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     runtime::spawn(async move {
//!         let builder = auto::Builder::new(Executor::new());
//!         loop {
//!             let Ok((stream, _)) = listener.accept().await else { continue };
//!             let builder = builder.clone();
//!             runtime::spawn(async move {
//!                 let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
//!                     let version = format!("{:?}", req.version());
//!                     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(version))))
//!                 });
//!                 let _ = builder.serve_connection(Io::from_socket(stream), service).await;
//!             });
//!         }
//!     });
//!
//!     let stream = TcpStream::connect(addr).await?;
//!     let (mut sender, conn) = hyper::client::conn::http2::handshake(Executor::new(), Io::from_socket(stream))
//!         .await
//!         .map_err(std::io::Error::other)?;
//!     runtime::spawn(conn);
//!     let req = Request::get(format!("http://{addr}/")).body(Empty::<Bytes>::new()).unwrap();
//!     let resp = sender.send_request(req).await.map_err(std::io::Error::other)?;
//!     assert_eq!(resp.version(), Version::HTTP_2);
//!     let body = resp.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
//!     assert_eq!(body, "HTTP/2.0");
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # axum
//!
//! An axum [`Router`](https://docs.rs/axum/latest/axum/struct.Router.html)
//! is a tower service. hyper-util's `TowerToHyperService` makes it a hyper
//! service, and gopark's accept loop serves it — in place of
//! `axum::serve`, which is tokio's:
//!
//! ```
//! use axum::{extract::{Path, State}, routing::get, Json, Router};
//! use bytes::Bytes;
//! use gopark::hyper::{Executor, Io};
//! use gopark::net::{TcpListener, TcpStream};
//! use gopark::runtime;
//! use http_body_util::{BodyExt, Empty};
//! use hyper::Request;
//! use hyper_util::{server::conn::auto, service::TowerToHyperService};
//!
//! async fn greet(State(greeting): State<&'static str>, Path(name): Path<String>) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({ "greeting": format!("{greeting}, {name}!") }))
//! }
//!
//! runtime::block_on(async {
//!     let app = Router::new().route("/hello/{name}", get(greet)).with_state("Hello");
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     runtime::spawn(async move {
//!         loop {
//!             let Ok((stream, _)) = listener.accept().await else { continue };
//!             let service = TowerToHyperService::new(app.clone());
//!             runtime::spawn(async move {
//!                 let _ = auto::Builder::new(Executor::new())
//!                     .serve_connection(Io::from_socket(stream), service)
//!                     .await;
//!             });
//!         }
//!     });
//!
//!     let stream = TcpStream::connect(addr).await?;
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(Io::from_socket(stream))
//!         .await
//!         .map_err(std::io::Error::other)?;
//!     runtime::spawn(conn);
//!     let req = Request::get("/hello/gopher").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
//!     let resp = sender.send_request(req).await.map_err(std::io::Error::other)?;
//!     let body = resp.into_body().collect().await.map_err(std::io::Error::other)?.to_bytes();
//!     assert_eq!(body, r#"{"greeting":"Hello, gopher!"}"#);
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # A server in one call: [`serve`](serve())
//!
//! The accept loops above are what [`serve(listener, service)`](serve())
//! writes for you, with what a service needs beside them: HTTP/1.1 and
//! HTTP/2 on one port, a hyper or a tower service (an axum `Router`), a
//! graceful shutdown with a deadline, and a back-off when `accept` runs
//! out of descriptors. It takes a [`TcpListener`](crate::net::TcpListener),
//! a [`UnixListener`](crate::net::UnixListener), or any
//! [`serve::Listener`]: axum's `axum::serve`, on gopark. `examples/hyper/`
//! and `examples/axum/` are built on it.
//!
//! ```
//! use axum::{routing::get, Router};
//! use gopark::hyper::serve;
//! use gopark::net::TcpListener;
//!
//! gopark::runtime::block_on(async {
//!     let app = Router::new().route("/", get(|| async { "Hello, World!" }));
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     // Serves until the future given here resolves: at once, in this example.
//!     serve(listener, app).with_graceful_shutdown(async {}).await
//! })
//! .unwrap();
//! ```
//!
//! hyper-util's `server-graceful` feature (its `GracefulShutdown`) and
//! its `service` feature are runtime-free and work on gopark; its `tokio`
//! feature and `client-legacy` (which needs tokio's sockets) are not.

pub mod client;
mod executor;
pub mod grpc;
mod io;
pub mod serve;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;

pub use client::Client;
pub use executor::Executor;
pub use io::{Io, ReadUninit};
pub use serve::serve;
pub use timer::Timer;
