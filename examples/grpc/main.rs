//! gRPC on gopark: a tonic service served by `gopark::hyper::serve`, with
//! `grpc-timeout` enforced on gopark's timers, and a tonic client over a
//! reconnecting HTTP/2 channel.
//!
//! ```text
//! cargo run --example grpc                         # serves on 127.0.0.1:50051
//! cargo run --example grpc -- client 127.0.0.1:50051
//! ```
//!
//! tonic is used with `default-features = false` and its `codegen` and
//! `router` features: its `server`, `transport` and `channel` features are
//! built on tokio's runtime, which gopark replaces. What they did is here:
//! `serve` for the server, [`TimeoutLayer`] for the deadlines a client
//! sends, [`channel::GrpcChannel`] for the client's connection. The
//! service's glue (`echo.rs`) is what `tonic-build` would generate, written
//! out so that no `protoc` is needed.
//!
//! The server shuts down gracefully on SIGINT or SIGTERM: it stops
//! accepting, and the calls in flight get up to ten seconds to finish.
//! `interop.py` beside this file runs the example against Python's grpcio,
//! as client and as server.

mod channel;
mod echo;
#[path = "../support/signals.rs"]
mod signals;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gopark::hyper::grpc::{TimeoutLayer, TimeoutService};
use gopark::hyper::serve;
use gopark::net::TcpListener;
use gopark::runtime;
use tonic::service::Routes;
use tower_layer::Layer;

use channel::GrpcChannel;
use echo::client::EchoClient;
use echo::server::EchoServer;
use echo::{pb, Census, EchoService};
use signals::Signals;

/// How long calls in flight may run on after SIGINT or SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// The longest any call may run, whatever its client asks.
const MAX_DEADLINE: Duration = Duration::from_secs(60);

const USAGE: &str = "\
usage: grpc [--addr ADDR]        serve echo.Echo (default 127.0.0.1:50051);
                                 SIGINT or SIGTERM shuts it down gracefully
       grpc client ADDR          call it: Echo, Count, and a Slow call past
                                 its deadline";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [] => runtime::block_on(server("127.0.0.1:50051")),
        ["--addr", addr] => runtime::block_on(server(addr)),
        ["client", addr] => match addr.parse() {
            Ok(addr) => runtime::block_on(client(addr)),
            Err(e) => Err(format!("{addr}: {e}")),
        },
        ["-h" | "--help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("bad arguments\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("grpc: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The service, as `serve` is given it: tonic's router around the
/// generated server, under the deadline layer.
pub fn app(census: Arc<Census>) -> TimeoutService<Routes> {
    let routes = Routes::new(EchoServer::new(EchoService::new(census)));
    TimeoutLayer::new()
        .default_timeout(MAX_DEADLINE)
        .layer(routes)
}

async fn server(addr: &str) -> Result<(), String> {
    let mut signals = Signals::new().map_err(|e| format!("signals: {e}"))?;
    let listener = TcpListener::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {local}");
    serve(listener, app(Arc::default()))
        .with_graceful_shutdown(async move {
            signals.recv().await;
        })
        .shutdown_timeout(GRACE)
        .await
        .map_err(|e| e.to_string())?;
    println!("shut down");
    Ok(())
}

async fn client(addr: SocketAddr) -> Result<(), String> {
    let channel = GrpcChannel::new(addr);
    let mut client = EchoClient::new(channel.clone());

    let reply = client
        .echo(pb::EchoRequest {
            payload: b"hello, gopark".to_vec(),
        })
        .await
        .map_err(|s| format!("Echo: {s}"))?;
    println!(
        "Echo: {}",
        String::from_utf8_lossy(&reply.get_ref().payload)
    );

    let mut stream = client
        .count(pb::CountRequest {
            n: 5,
            interval_ms: 100,
        })
        .await
        .map_err(|s| format!("Count: {s}"))?
        .into_inner();
    while let Some(reply) = stream.next().await {
        let reply = reply.map_err(|s| format!("Count: {s}"))?;
        println!("Count: {}", reply.i);
    }

    let mut request = tonic::Request::new(pb::SlowRequest { delay_ms: 2_000 });
    request.set_timeout(Duration::from_millis(300));
    match client.slow(request).await {
        Ok(_) => return Err("Slow: answered after its deadline".into()),
        Err(status) => println!("Slow with a 300 ms deadline: {:?}", status.code()),
    }
    println!("connections made: {}", channel.connects());
    Ok(())
}
