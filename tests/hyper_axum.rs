//! The axum example's application (`examples/axum/app.rs`, included here
//! as it is) served on gopark the way the example serves it — gopark's
//! accept loop, hyper-util's `auto` builder and `TowerToHyperService` —
//! and spoken to with hyper's client on gopark, over HTTP/1.1 and HTTP/2:
//! JSON in and out, a path parameter, shared state, a streamed body and
//! axum's own errors.

#[path = "../examples/axum/app.rs"]
#[allow(dead_code)]
mod app;

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gopark::hyper::{Executor, Io};
use gopark::net::TcpListener;
use gopark::runtime;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use support::http_client::{json_of, Client};

/// Runs `body` as a task on a fresh 2-worker runtime, bounded in time.
fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    support::rt::run(2, "axum-test", body);
}

/// Serves a fresh `app::app()` until the test ends.
fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app::app();
    runtime::spawn(async move {
        let builder = auto::Builder::new(Executor::new());
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(app.clone());
            let builder = builder.clone();
            runtime::spawn(async move {
                let _ = builder.serve_connection(Io::new(stream), service).await;
            });
        }
    });
    addr
}

/// axum's JSON in and out.
async fn post_json(client: &mut Client, path: &str, body: &Value) -> (StatusCode, Value) {
    let (status, _, bytes) = client
        .request("POST", path, Some("application/json"), body.to_string())
        .await;
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[test]
fn json_path_parameters_and_state_over_both_protocols() {
    run(|| async {
        let addr = serve();
        let mut h1 = Client::connect(addr, false).await;
        let mut h2 = Client::connect(addr, true).await;

        let (status, _, body) = h1.get("/").await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, Bytes::from("Hello, World!"))
        );
        let (status, _, body) = h2.get("/json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json_of(&body), json!({ "message": "Hello, World!" }));

        // State shared by every connection: users made over one protocol
        // are found over the other, with ids in order.
        let (status, ada) = post_json(&mut h1, "/users", &json!({ "name": "Ada" })).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(ada, json!({ "id": 1, "name": "Ada" }));
        let (status, rob) = post_json(&mut h2, "/users", &json!({ "name": "Rob" })).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(rob, json!({ "id": 2, "name": "Rob" }));

        let (status, _, body) = h2.get("/users/1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json_of(&body), ada);
        let (status, _, body) = h1.get("/users/2").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json_of(&body), rob);
        let (status, _, body) = h1.get("/users/3").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(json_of(&body), json!({ "error": "no user 3" }));

        // The counter: one more per call, whichever connection calls.
        for i in 0..4 {
            let client = if i % 2 == 0 { &mut h1 } else { &mut h2 };
            let (status, _, body) = client.get("/counter").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(json_of(&body), json!({ "count": i + 1 }));
        }
    });
}

#[test]
fn axum_rejects_bad_input_with_its_own_errors() {
    run(|| async {
        let addr = serve();
        for http2 in [false, true] {
            let mut client = Client::connect(addr, http2).await;
            // A path parameter that is not a number.
            let (status, _, _) = client.get("/users/abc").await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            // JSON that does not match `NewUser`.
            let req = Request::post("http://localhost/users")
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(r#"{"nom":"x"}"#)))
                .unwrap();
            assert_eq!(
                client.send(req).await.status(),
                StatusCode::UNPROCESSABLE_ENTITY
            );
            // Not JSON at all.
            let req = Request::post("http://localhost/users")
                .header("host", "localhost")
                .body(Full::new(Bytes::from("name=x")))
                .unwrap();
            assert_eq!(
                client.send(req).await.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            );
            let (status, _, _) = client.get("/nowhere").await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            let (status, _, body) = client
                .get(&format!("/stream?chunks={}", app::MAX_CHUNKS + 1))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert!(String::from_utf8_lossy(&body).contains("at most"));
        }
    });
}

#[test]
fn a_streamed_body_arrives_chunk_by_chunk() {
    run(|| async {
        let addr = serve();
        for http2 in [false, true] {
            let mut client = Client::connect(addr, http2).await;
            // Every chunk, in order.
            let (status, _, body) = client.get("/stream?chunks=1000&every_ms=0").await;
            assert_eq!(status, StatusCode::OK);
            let want: String = (0..1000).map(|i| format!("chunk {i}\n")).collect();
            assert_eq!(body, want.as_bytes());

            // And as they are made: the first chunk arrives long before
            // the last is produced (3 chunks, 500 ms apart).
            let req = Request::get("http://localhost/stream?chunks=3&every_ms=500")
                .header("host", "localhost")
                .body(Full::default())
                .unwrap();
            let start = Instant::now();
            let resp = client.send(req).await;
            let mut body = resp.into_body();
            let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
            let first_after = start.elapsed();
            assert_eq!(first, "chunk 0\n");
            let rest = body.collect().await.unwrap().to_bytes();
            let all_after = start.elapsed();
            assert_eq!(rest, "chunk 1\nchunk 2\n");
            assert!(all_after >= Duration::from_millis(1000), "{all_after:?}");
            assert!(
                first_after < all_after - Duration::from_millis(500),
                "first chunk after {first_after:?}, all after {all_after:?}"
            );
        }
    });
}
