//! The gRPC example's service, channel and deadline layer, in process: the
//! tonic client over `GrpcChannel` against the `echo.Echo` service served
//! by `gopark::hyper::serve`, on a 1-worker and a 4-worker runtime; and the
//! example's binary, server and client, as child processes.
//!
//! Unary calls (bytes compared), a server stream in order, deadlines
//! enforced by the server (the client's `grpc-timeout`, and a server-wide
//! default) and by the client (on the response and mid-stream), a client
//! that drops a stream, and a server restarted under a channel. Where a
//! call is given up, the server's handler must be dropped: the service's
//! census reports every handler dropped before its end, and the tests
//! await that report.
//!
//! `cargo test` builds the example before it runs the tests; a filtered
//! run (`--test examples_grpc`) does not: run `cargo build --example grpc`
//! first.

#![allow(dead_code)]

mod support;

#[path = "../examples/grpc/channel.rs"]
mod channel;
#[path = "../examples/grpc/echo.rs"]
mod echo;

use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures_channel::oneshot;
use gopark::hyper::grpc::TimeoutLayer;
use gopark::hyper::{serve, Executor, Io};
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout, JoinHandle};
use http_body_util::{BodyExt, Full};
use prost::Message;
use tonic::Code;
use tower_layer::Layer;

use channel::GrpcChannel;
use echo::client::EchoClient;
use echo::server::EchoServer;
use echo::{pb, Census, EchoService};
use support::data::pattern;
use support::example::{run as run_example, Proc};
use support::leak::{on_each_runtime, Census as Leaks};
use support::proc::{fd_count, open_fds};
use support::rt::{eventually_explained, serial};

/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(20);
/// Bound on a whole test body on one runtime.
const LIMIT: Duration = Duration::from_secs(60);
/// A `Slow` call that no test waits for.
const FOREVER_MS: u32 = 60_000;

/// How the server enforces deadlines.
#[derive(Clone, Copy)]
enum Deadlines {
    /// No layer: only the client's own timer.
    None,
    /// `TimeoutLayer::new()`: the client's `grpc-timeout`.
    Header,
    /// `TimeoutLayer::new().default_timeout(..)`.
    Default(Duration),
}

/// The example's service on a listener, with its census.
struct Server {
    addr: SocketAddr,
    census: Arc<Census>,
    abandoned: async_channel::Receiver<&'static str>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    async fn start(listener: TcpListener, deadlines: Deadlines) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        let (tx, abandoned) = async_channel::unbounded();
        let census = Arc::new(Census {
            on_abandon: Some(tx),
            ..Census::default()
        });
        let routes =
            tonic::service::Routes::new(EchoServer::new(EchoService::new(Arc::clone(&census))));
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            let _ = stopped.await;
        };
        let task = match deadlines {
            Deadlines::None => runtime::spawn(
                serve(listener, routes)
                    .with_graceful_shutdown(signal)
                    .into_future(),
            ),
            Deadlines::Header => {
                let service = TimeoutLayer::new().layer(routes);
                runtime::spawn(
                    serve(listener, service)
                        .with_graceful_shutdown(signal)
                        .into_future(),
                )
            }
            Deadlines::Default(d) => {
                let service = TimeoutLayer::new().default_timeout(d).layer(routes);
                runtime::spawn(
                    serve(listener, service)
                        .with_graceful_shutdown(signal)
                        .into_future(),
                )
            }
        };
        Ok(Server {
            addr,
            census,
            abandoned,
            stop,
            task,
        })
    }

    async fn bind(deadlines: Deadlines) -> io::Result<Server> {
        Server::start(TcpListener::bind("127.0.0.1:0")?, deadlines).await
    }

    /// Awaits the report of a handler dropped before its end.
    async fn abandoned(&self) -> &'static str {
        timeout(WAIT, self.abandoned.recv())
            .await
            .expect("a handler dropped in time")
            .expect("census alive")
    }

    /// Shuts down gracefully and waits for it.
    async fn stop(self) -> Arc<Census> {
        let _ = self.stop.send(());
        timeout(WAIT, self.task)
            .await
            .expect("the server stops in time")
            .expect("server task")
            .expect("serve");
        self.census
    }
}

/// Runs `body` with a fresh census of descriptors and tasks, and checks
/// after it that every connection and task is gone.
fn check<F, Fut>(name: &'static str, body: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    // Descriptors are counted for the whole process: one test at a time.
    let _serial = serial();
    on_each_runtime(name, LIMIT, || {
        let body = body();
        async move {
            let before = fd_count();
            let open_before = open_fds();
            let leaks = Leaks::take();
            body.await?;
            // The client's connection task closes its socket once it sees
            // the server's close: there is nothing to await but the count.
            eventually_explained(
                "every descriptor closed",
                || fd_count() == before,
                || {
                    format!(
                        "\nopen before ({before}): {open_before:?}\nopen now: {:?}\n{}",
                        open_fds(),
                        runtime::Handle::current().dump()
                    )
                },
            )
            .await;
            leaks.assert_back(name).await;
            Ok(())
        }
    });
}

fn slow(delay_ms: u32, deadline: Option<Duration>) -> tonic::Request<pb::SlowRequest> {
    let mut request = tonic::Request::new(pb::SlowRequest { delay_ms });
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    request
}

/// Reads a `Count` stream, checking its replies are in order, until it
/// fails; a stream that ends instead fails the test.
async fn next_error(stream: &mut tonic::Streaming<pb::CountReply>) -> tonic::Status {
    let mut received = 0;
    loop {
        match timeout(WAIT, stream.next()).await.expect("an item in time") {
            Some(Ok(reply)) => {
                assert_eq!(reply.i, received, "replies in order");
                received += 1;
            }
            Some(Err(status)) => return status,
            None => panic!("the stream ended after {received} replies"),
        }
    }
}

#[test]
fn unary_calls_round_trip_their_bytes_on_one_connection() {
    check("unary", || async {
        let server = Server::bind(Deadlines::Header).await?;
        let channel = GrpcChannel::new(server.addr);
        let mut client = EchoClient::new(channel.clone());
        for (seed, len) in [(1, 0), (2, 1), (3, 1000), (4, 64 * 1024), (5, 1 << 20)] {
            let payload = pattern(seed, len);
            let reply = client
                .echo(pb::EchoRequest {
                    payload: payload.clone(),
                })
                .await;
            let reply = reply.unwrap_or_else(|s| panic!("Echo of {len} bytes: {s}"));
            assert!(
                reply.get_ref().payload == payload,
                "Echo of {len} bytes came back different"
            );
        }
        // Concurrent calls share the connection (HTTP/2 streams).
        let calls: Vec<_> = (0..32u64)
            .map(|i| {
                let mut client = client.clone();
                runtime::spawn(async move {
                    let payload = pattern(100 + i, 4096 + i as usize);
                    let reply = client
                        .echo(pb::EchoRequest {
                            payload: payload.clone(),
                        })
                        .await;
                    reply.map(|r| r.into_inner().payload == payload)
                })
            })
            .collect();
        for call in calls {
            let same = timeout(WAIT, call)
                .await
                .expect("call in time")
                .expect("task");
            assert!(
                same.expect("concurrent Echo"),
                "a concurrent Echo came back different"
            );
        }
        assert_eq!(channel.connects(), 1, "every call on one connection");
        let census = Arc::clone(&server.census);
        drop((client, channel));
        server.stop().await;
        assert_eq!(census.abandoned.load(Ordering::SeqCst), 0);
        Ok(())
    });
}

#[test]
fn a_server_stream_arrives_whole_and_in_order() {
    check("stream", || async {
        let server = Server::bind(Deadlines::Header).await?;
        let mut client = EchoClient::new(GrpcChannel::new(server.addr));
        let n = 2_000;
        let mut stream = client
            .count(pb::CountRequest { n, interval_ms: 0 })
            .await
            .expect("Count")
            .into_inner();
        let mut next = 0;
        while let Some(reply) = timeout(WAIT, stream.next()).await.expect("a reply in time") {
            assert_eq!(reply.expect("Count reply").i, next, "replies in order");
            next += 1;
        }
        assert_eq!(next, n, "every reply");
        // A request the service refuses is its status, not a stream.
        let refused = client
            .count(pb::CountRequest {
                n: echo::MAX_COUNT + 1,
                interval_ms: 0,
            })
            .await;
        assert_eq!(
            refused.expect_err("n too large").code(),
            Code::InvalidArgument
        );
        drop((stream, client));
        let census = server.stop().await;
        assert_eq!(
            census.abandoned.load(Ordering::SeqCst),
            0,
            "no stream abandoned"
        );
        assert_eq!(census.live.load(Ordering::SeqCst), 0, "no stream alive");
        Ok(())
    });
}

/// The layer alone, seen on the wire: a request with `grpc-timeout: 200m`
/// to a handler that sleeps a minute gets a trailers-only
/// `DEADLINE_EXCEEDED`, and the handler is dropped.
#[test]
fn the_server_answers_deadline_exceeded_trailers_only_and_drops_the_handler() {
    check("server deadline, raw", || async {
        let server = Server::bind(Deadlines::Header).await?;
        let stream = TcpStream::connect(server.addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(Executor::new(), Io::new(stream))
                .await
                .map_err(io::Error::other)?;
        let conn = runtime::spawn(conn);
        let message = pb::SlowRequest {
            delay_ms: FOREVER_MS,
        }
        .encode_to_vec();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(&message);
        let request = hyper::Request::post(format!("http://{}/echo.Echo/Slow", server.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", "200m")
            .body(Full::new(Bytes::from(frame)))
            .unwrap();
        let start = Instant::now();
        let response = timeout(WAIT, sender.send_request(request))
            .await
            .expect("an answer in time")
            .map_err(io::Error::other)?;
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "answered before the deadline"
        );
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "4");
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(io::Error::other)?;
        assert!(
            body.trailers().is_none(),
            "trailers-only: no trailers after the headers"
        );
        assert!(body.to_bytes().is_empty(), "trailers-only: no message");
        assert_eq!(server.abandoned().await, "slow");
        assert_eq!(server.census.live.load(Ordering::SeqCst), 0);
        drop(sender);
        let _ = timeout(WAIT, conn).await.expect("the connection ends");
        server.stop().await;
        Ok(())
    });
}

/// Through tonic: the client's deadline and the server-wide default, each
/// enforced by the server (the default with no deadline on the client, so
/// nothing but the server can end the call).
#[test]
fn server_deadlines_reach_the_tonic_client_as_deadline_exceeded() {
    check("server deadline", || async {
        let server = Server::bind(Deadlines::Default(Duration::from_millis(200))).await?;
        let mut client = EchoClient::new(GrpcChannel::new(server.addr));
        let start = Instant::now();
        let status = client
            .slow(slow(FOREVER_MS, None))
            .await
            .expect_err("past the default deadline");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "ended before the deadline"
        );
        assert_eq!(server.abandoned().await, "slow");
        // Under the bound, a call finishes.
        let reply = client
            .slow(slow(10, None))
            .await
            .expect("Slow under the default");
        assert_eq!(reply.into_inner().payload, b"slept");
        // The deadline covers a whole server stream: replies 50 ms apart
        // stop at 200 ms, with DEADLINE_EXCEEDED in the trailers.
        let request = pb::CountRequest {
            n: 1_000,
            interval_ms: 50,
        };
        let mut stream = client
            .count(request)
            .await
            .expect("Count starts")
            .into_inner();
        let status = next_error(&mut stream).await;
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
        assert_eq!(server.abandoned().await, "count");
        drop(client);
        server.stop().await;

        let server = Server::bind(Deadlines::Header).await?;
        let mut client = EchoClient::new(GrpcChannel::new(server.addr));
        let status = client
            .slow(slow(FOREVER_MS, Some(Duration::from_millis(200))))
            .await
            .expect_err("past the client's deadline");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
        assert_eq!(server.abandoned().await, "slow");
        let reply = client.slow(slow(10, Some(Duration::from_secs(30)))).await;
        assert_eq!(
            reply.expect("Slow under its deadline").into_inner().payload,
            b"slept"
        );
        drop(client);
        server.stop().await;
        Ok(())
    });
}

/// A server that does not enforce deadlines: the channel does, on the
/// response and then on each message of a stream, and resets the stream,
/// so the server drops the handler all the same.
#[test]
fn the_channel_enforces_the_deadline_itself() {
    check("client deadline", || async {
        let server = Server::bind(Deadlines::None).await?;
        let channel = GrpcChannel::new(server.addr);
        let mut client = EchoClient::new(channel.clone());
        let start = Instant::now();
        let status = client
            .slow(slow(FOREVER_MS, Some(Duration::from_millis(200))))
            .await
            .expect_err("past the deadline");
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200),
            "ended before the deadline: {took:?}"
        );
        assert!(took < WAIT, "ended long after the deadline: {took:?}");
        assert_eq!(server.abandoned().await, "slow");

        // Mid-stream: replies 50 ms apart, a deadline of 300 ms.
        let mut request = tonic::Request::new(pb::CountRequest {
            n: 1_000,
            interval_ms: 50,
        });
        request.set_timeout(Duration::from_millis(300));
        let mut stream = client
            .count(request)
            .await
            .expect("Count starts")
            .into_inner();
        let status = next_error(&mut stream).await;
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
        drop(stream);
        assert_eq!(server.abandoned().await, "count");

        // The connection is still good.
        let reply = client
            .echo(pb::EchoRequest {
                payload: b"after".to_vec(),
            })
            .await;
        assert_eq!(reply.expect("Echo").into_inner().payload, b"after");
        assert_eq!(channel.connects(), 1);
        drop((client, channel));
        server.stop().await;
        Ok(())
    });
}

#[test]
fn a_client_that_drops_a_stream_stops_it_on_the_server() {
    check("cancel", || async {
        let server = Server::bind(Deadlines::Header).await?;
        let mut client = EchoClient::new(GrpcChannel::new(server.addr));
        let request = pb::CountRequest {
            n: echo::MAX_COUNT,
            interval_ms: 5,
        };
        let mut stream = client.count(request).await.expect("Count").into_inner();
        for i in 0..3 {
            let reply = timeout(WAIT, stream.next()).await.expect("a reply in time");
            assert_eq!(reply.expect("not the end").expect("a reply").i, i);
        }
        assert_eq!(
            server.census.live.load(Ordering::SeqCst),
            1,
            "the stream runs"
        );
        drop(stream);
        assert_eq!(server.abandoned().await, "count");
        assert_eq!(server.census.live.load(Ordering::SeqCst), 0);
        // The connection is still good.
        let reply = client
            .echo(pb::EchoRequest {
                payload: b"still here".to_vec(),
            })
            .await;
        assert_eq!(reply.expect("Echo").into_inner().payload, b"still here");
        drop(client);
        server.stop().await;
        Ok(())
    });
}

#[test]
fn the_channel_reconnects_to_a_restarted_server() {
    check("restart", || async {
        let server = Server::bind(Deadlines::Header).await?;
        let addr = server.addr;
        let channel = GrpcChannel::new(addr);
        let mut client = EchoClient::new(channel.clone());
        let reply = client
            .echo(pb::EchoRequest {
                payload: b"one".to_vec(),
            })
            .await;
        assert_eq!(reply.expect("Echo before").into_inner().payload, b"one");
        server.stop().await;

        // Nobody listens: the call fails at once.
        let status = timeout(
            WAIT,
            client.echo(pb::EchoRequest {
                payload: b"none".to_vec(),
            }),
        )
        .await
        .expect("a failure in time")
        .expect_err("no server");
        assert_eq!(status.code(), Code::Unavailable, "{status}");

        let server = Server::start(TcpListener::bind(addr)?, Deadlines::Header).await?;
        // Calls that find the old connection closed together make one
        // new connection.
        let calls: Vec<_> = (0..16u8)
            .map(|i| {
                let mut client = client.clone();
                runtime::spawn(async move {
                    let reply = client.echo(pb::EchoRequest { payload: vec![i] }).await;
                    reply.map(|r| r.into_inner().payload == [i])
                })
            })
            .collect();
        for call in calls {
            let same = timeout(WAIT, call)
                .await
                .expect("call in time")
                .expect("task");
            assert!(
                same.expect("Echo after the restart"),
                "an Echo came back different"
            );
        }
        let reply = client
            .echo(pb::EchoRequest {
                payload: b"two".to_vec(),
            })
            .await;
        assert_eq!(
            reply.expect("Echo after the restart").into_inner().payload,
            b"two"
        );
        assert_eq!(channel.connects(), 2, "one connection to each server");
        drop((client, channel));
        server.stop().await;
        Ok(())
    });
}

/// The example as its commands run it: the server, its own client mode
/// against it, and a graceful shutdown on SIGTERM.
#[test]
fn the_example_binary_answers_its_client_and_shuts_down_on_sigterm() {
    let _serial = serial();
    let (mut server, addr) = Proc::server("grpc", &["--addr", "127.0.0.1:0"]);
    let (status, out, client) = run_example("grpc", &["client", &addr.to_string()], WAIT);
    assert!(
        status.success(),
        "the client failed: {status}\n{}",
        client.log()
    );
    let mut expected = vec!["Echo: hello, gopark".to_string()];
    expected.extend((0..5).map(|i| format!("Count: {i}")));
    expected.push("Slow with a 300 ms deadline: DeadlineExceeded".into());
    expected.push("connections made: 1".into());
    assert_eq!(out, expected, "the client's output");
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(WAIT);
    assert!(
        status.success(),
        "the server's exit: {status}\n{}",
        server.log()
    );
    assert_eq!(server.rest_of_stdout(), ["shut down"]);
}
