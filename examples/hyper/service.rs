//! The routes of the hyper example, written against hyper alone, so that
//! the same file is served by gopark (`examples/hyper`) and by the tokio
//! twin that `scripts/hyper-compare.sh` measures it against.
//!
//! * `GET /` (and `HEAD /`): `Hello, World!`, `text/plain`.
//! * `GET /json`: `{"message":"Hello, World!"}`, `application/json`.
//! * `POST /echo`: the request body, streamed back as it arrives.
//! * Another method on those paths: 405 with `Allow`; another path: 404.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

/// The body of every response: a whole buffer or a stream.
pub type Body = BoxBody<Bytes, hyper::Error>;

const HELLO: &str = "Hello, World!";
const JSON: &str = r#"{"message":"Hello, World!"}"#;

/// Answers one request.
pub async fn route(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    Ok(match (req.uri().path(), method) {
        ("/", Method::GET | Method::HEAD) => full(StatusCode::OK, "text/plain", HELLO),
        ("/json", Method::GET | Method::HEAD) => full(StatusCode::OK, "application/json", JSON),
        ("/echo", Method::POST) => {
            let mut resp = Response::new(req.into_body().boxed());
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            resp
        }
        ("/" | "/json", _) => allow(
            full(StatusCode::METHOD_NOT_ALLOWED, "text/plain", ""),
            "GET, HEAD",
        ),
        ("/echo", _) => allow(
            full(StatusCode::METHOD_NOT_ALLOWED, "text/plain", ""),
            "POST",
        ),
        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found"),
    })
}

fn full(status: StatusCode, content_type: &'static str, body: &'static str) -> Response<Body> {
    let body = Full::new(Bytes::from_static(body.as_bytes()))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn allow(mut resp: Response<Body>, methods: &'static str) -> Response<Body> {
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(methods));
    resp
}
