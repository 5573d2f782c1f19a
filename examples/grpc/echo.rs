//! The `echo.Echo` service: its messages, the server and client glue that
//! `tonic-build` would generate from `echo.proto`, and an implementation.
//!
//! ```proto
//! syntax = "proto3";
//! package echo;
//! service Echo {
//!   rpc Echo(EchoRequest) returns (EchoReply);
//!   rpc Count(CountRequest) returns (stream CountReply);
//!   rpc Slow(SlowRequest) returns (EchoReply);
//! }
//! message EchoRequest { bytes payload = 1; }
//! message EchoReply { bytes payload = 1; }
//! message CountRequest { uint32 n = 1; uint32 interval_ms = 2; }
//! message CountReply { uint32 i = 1; }
//! message SlowRequest { uint32 delay_ms = 1; }
//! ```
//!
//! Written by hand with prost's derives, so that the example builds with a
//! Rust toolchain alone (no `protoc`); the shapes are tonic's own.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use gopark::runtime::time::sleep;
use tonic::{Request, Response, Status};

/// The messages.
pub mod pb {
    /// `Echo` and `Slow`'s reply, `Echo`'s request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoRequest {
        #[prost(bytes = "vec", tag = "1")]
        pub payload: Vec<u8>,
    }

    /// The reply to `Echo`: the request's payload.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoReply {
        #[prost(bytes = "vec", tag = "1")]
        pub payload: Vec<u8>,
    }

    /// `Count`'s request: `n` replies, `interval_ms` apart.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CountRequest {
        #[prost(uint32, tag = "1")]
        pub n: u32,
        #[prost(uint32, tag = "2")]
        pub interval_ms: u32,
    }

    /// One of `Count`'s replies: `0..n`, in order.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CountReply {
        #[prost(uint32, tag = "1")]
        pub i: u32,
    }

    /// `Slow`'s request: answer after `delay_ms`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SlowRequest {
        #[prost(uint32, tag = "1")]
        pub delay_ms: u32,
    }
}

/// The service's methods, as `tonic-build` would declare them.
#[tonic::async_trait]
pub trait Echo: Send + Sync + 'static {
    /// `Count`'s stream of replies.
    type CountStream: Stream<Item = Result<pb::CountReply, Status>> + Send + 'static;

    /// Unary: the payload back.
    async fn echo(
        &self,
        request: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoReply>, Status>;

    /// Server streaming: `n` replies.
    async fn count(
        &self,
        request: Request<pb::CountRequest>,
    ) -> Result<Response<Self::CountStream>, Status>;

    /// Unary, after a delay: for deadlines.
    async fn slow(
        &self,
        request: Request<pb::SlowRequest>,
    ) -> Result<Response<pb::EchoReply>, Status>;
}

/// The server side: a tower service from `http::Request` to
/// `http::Response`, routing on the path.
pub mod server {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use tonic::body::Body;
    use tonic::codegen::{http, Body as HttpBody, BoxFuture, StdError};
    use tonic::server::{Grpc, NamedService, ServerStreamingService, UnaryService};
    use tonic::{Request, Response, Status};
    use tonic_prost::ProstCodec;

    use super::{pb, Echo};

    /// `echo.Echo` as a tower service: give it to `tonic::service::Routes`
    /// or to `gopark::hyper::serve` directly.
    #[derive(Debug)]
    pub struct EchoServer<T> {
        inner: Arc<T>,
    }

    impl<T> EchoServer<T> {
        /// Serves `inner`.
        pub fn new(inner: T) -> EchoServer<T> {
            EchoServer {
                inner: Arc::new(inner),
            }
        }
    }

    impl<T> Clone for EchoServer<T> {
        fn clone(&self) -> EchoServer<T> {
            EchoServer {
                inner: Arc::clone(&self.inner),
            }
        }
    }

    impl<T> NamedService for EchoServer<T> {
        const NAME: &'static str = "echo.Echo";
    }

    struct EchoSvc<T>(Arc<T>);

    impl<T: Echo> UnaryService<pb::EchoRequest> for EchoSvc<T> {
        type Response = pb::EchoReply;
        type Future = BoxFuture<Response<pb::EchoReply>, Status>;

        fn call(&mut self, request: Request<pb::EchoRequest>) -> Self::Future {
            let inner = Arc::clone(&self.0);
            Box::pin(async move { inner.echo(request).await })
        }
    }

    struct SlowSvc<T>(Arc<T>);

    impl<T: Echo> UnaryService<pb::SlowRequest> for SlowSvc<T> {
        type Response = pb::EchoReply;
        type Future = BoxFuture<Response<pb::EchoReply>, Status>;

        fn call(&mut self, request: Request<pb::SlowRequest>) -> Self::Future {
            let inner = Arc::clone(&self.0);
            Box::pin(async move { inner.slow(request).await })
        }
    }

    struct CountSvc<T>(Arc<T>);

    impl<T: Echo> ServerStreamingService<pb::CountRequest> for CountSvc<T> {
        type Response = pb::CountReply;
        type ResponseStream = T::CountStream;
        type Future = BoxFuture<Response<T::CountStream>, Status>;

        fn call(&mut self, request: Request<pb::CountRequest>) -> Self::Future {
            let inner = Arc::clone(&self.0);
            Box::pin(async move { inner.count(request).await })
        }
    }

    impl<T, B> tower_service::Service<http::Request<B>> for EchoServer<T>
    where
        T: Echo,
        B: HttpBody + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<http::Response<Body>, Infallible>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            let inner = Arc::clone(&self.inner);
            match req.uri().path() {
                "/echo.Echo/Echo" => Box::pin(async move {
                    let mut grpc = Grpc::new(ProstCodec::default());
                    Ok(grpc.unary(EchoSvc(inner), req).await)
                }),
                "/echo.Echo/Slow" => Box::pin(async move {
                    let mut grpc = Grpc::new(ProstCodec::default());
                    Ok(grpc.unary(SlowSvc(inner), req).await)
                }),
                "/echo.Echo/Count" => Box::pin(async move {
                    let mut grpc = Grpc::new(ProstCodec::default());
                    Ok(grpc.server_streaming(CountSvc(inner), req).await)
                }),
                _ => {
                    Box::pin(async move { Ok(Status::unimplemented("no such method").into_http()) })
                }
            }
        }
    }
}

/// The client side: `tonic::client::Grpc` over any `GrpcService`.
pub mod client {
    use tonic::body::Body;
    use tonic::client::{Grpc, GrpcService};
    use tonic::codec::Streaming;
    use tonic::codegen::{http, Body as HttpBody, Bytes, GrpcMethod, StdError};
    use tonic::{IntoRequest, Response, Status};
    use tonic_prost::ProstCodec;

    use super::pb;

    /// An `echo.Echo` client.
    #[derive(Clone, Debug)]
    pub struct EchoClient<T> {
        inner: Grpc<T>,
    }

    impl<T> EchoClient<T>
    where
        T: GrpcService<Body>,
        T::Error: Into<StdError>,
        T::ResponseBody: HttpBody<Data = Bytes> + Send + 'static,
        <T::ResponseBody as HttpBody>::Error: Into<StdError> + Send,
    {
        /// A client that sends its calls to `channel`, whose requests
        /// carry a path only (`/echo.Echo/Echo`).
        pub fn new(channel: T) -> EchoClient<T> {
            EchoClient {
                inner: Grpc::new(channel),
            }
        }

        async fn ready(&mut self) -> Result<(), Status> {
            self.inner
                .ready()
                .await
                .map_err(|e| Status::unavailable(format!("channel not ready: {}", e.into())))
        }

        /// `Echo`.
        pub async fn echo(
            &mut self,
            request: impl IntoRequest<pb::EchoRequest>,
        ) -> Result<Response<pb::EchoReply>, Status> {
            self.ready().await?;
            let mut request = request.into_request();
            request
                .extensions_mut()
                .insert(GrpcMethod::new("echo.Echo", "Echo"));
            let path = http::uri::PathAndQuery::from_static("/echo.Echo/Echo");
            self.inner.unary(request, path, ProstCodec::default()).await
        }

        /// `Count`.
        pub async fn count(
            &mut self,
            request: impl IntoRequest<pb::CountRequest>,
        ) -> Result<Response<Streaming<pb::CountReply>>, Status> {
            self.ready().await?;
            let mut request = request.into_request();
            request
                .extensions_mut()
                .insert(GrpcMethod::new("echo.Echo", "Count"));
            let path = http::uri::PathAndQuery::from_static("/echo.Echo/Count");
            self.inner
                .server_streaming(request, path, ProstCodec::default())
                .await
        }

        /// `Slow`.
        pub async fn slow(
            &mut self,
            request: impl IntoRequest<pb::SlowRequest>,
        ) -> Result<Response<pb::EchoReply>, Status> {
            self.ready().await?;
            let mut request = request.into_request();
            request
                .extensions_mut()
                .insert(GrpcMethod::new("echo.Echo", "Slow"));
            let path = http::uri::PathAndQuery::from_static("/echo.Echo/Slow");
            self.inner.unary(request, path, ProstCodec::default()).await
        }
    }
}

/// What the service has seen: handlers running and handlers dropped
/// before they finished, for the tests (a deadline or a cancel must drop
/// the handler on the server).
#[derive(Debug, Default)]
pub struct Census {
    /// `Slow` handlers and `Count` streams alive now.
    pub live: AtomicUsize,
    /// `Slow` handlers and `Count` streams dropped before their end.
    pub abandoned: AtomicUsize,
    /// Told the name of each call abandoned (`"slow"`, `"count"`).
    pub on_abandon: Option<async_channel::Sender<&'static str>>,
}

/// Counts a handler in [`Census::live`]; dropped before [`Guard::done`],
/// it counts an abandoned call.
struct Guard {
    census: Arc<Census>,
    name: &'static str,
    done: bool,
}

impl Guard {
    fn new(census: &Arc<Census>, name: &'static str) -> Guard {
        census.live.fetch_add(1, Ordering::SeqCst);
        Guard {
            census: Arc::clone(census),
            name,
            done: false,
        }
    }

    /// The call has finished.
    fn finish(mut self) {
        self.done = true;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.census.live.fetch_sub(1, Ordering::SeqCst);
        if !self.done {
            self.census.abandoned.fetch_add(1, Ordering::SeqCst);
            if let Some(tx) = &self.census.on_abandon {
                let _ = tx.try_send(self.name);
            }
        }
    }
}

/// The implementation: echoes, counts, sleeps on gopark's timer.
#[derive(Debug, Default)]
pub struct EchoService {
    census: Arc<Census>,
}

impl EchoService {
    /// A service that reports to `census`.
    pub fn new(census: Arc<Census>) -> EchoService {
        EchoService { census }
    }
}

/// The largest `n` a `Count` may ask for.
pub const MAX_COUNT: u32 = 1_000_000;

#[tonic::async_trait]
impl Echo for EchoService {
    type CountStream = Pin<Box<dyn Stream<Item = Result<pb::CountReply, Status>> + Send>>;

    async fn echo(
        &self,
        request: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoReply>, Status> {
        Ok(Response::new(pb::EchoReply {
            payload: request.into_inner().payload,
        }))
    }

    async fn count(
        &self,
        request: Request<pb::CountRequest>,
    ) -> Result<Response<Self::CountStream>, Status> {
        let pb::CountRequest { n, interval_ms } = request.into_inner();
        if n > MAX_COUNT {
            return Err(Status::invalid_argument(format!(
                "n is at most {MAX_COUNT}"
            )));
        }
        let interval = Duration::from_millis(u64::from(interval_ms));
        let guard = Guard::new(&self.census, "count");
        let stream = futures::stream::unfold((0, guard), move |(i, guard)| async move {
            if i == n {
                guard.finish();
                return None;
            }
            if i > 0 && !interval.is_zero() {
                sleep(interval).await;
            }
            Some((Ok(pb::CountReply { i }), (i + 1, guard)))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn slow(
        &self,
        request: Request<pb::SlowRequest>,
    ) -> Result<Response<pb::EchoReply>, Status> {
        let delay = Duration::from_millis(u64::from(request.into_inner().delay_ms));
        let guard = Guard::new(&self.census, "slow");
        sleep(delay).await;
        guard.finish();
        Ok(Response::new(pb::EchoReply {
            payload: b"slept".to_vec(),
        }))
    }
}
