//! The router and the replies, written straight into the connection's
//! output buffer.

use crate::date;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: `Hello, World!` as text.
    Hello,
    /// `GET /json`: a small JSON document.
    Json,
    /// `GET /debug/metrics`: the runtime's counters (with `--metrics`;
    /// otherwise, and in servers without it, not found).
    Metrics,
    /// `GET /debug/tasks`: a dump of every live task (as `Metrics`).
    Tasks,
    /// A known path with a method other than GET or HEAD.
    MethodNotAllowed,
    /// Any other path.
    NotFound,
}

/// Routes on the method and the path of the request target (the query
/// string is ignored). The parser has already reduced an absolute-form
/// target to its path (see `request`).
pub fn route(method: &str, path: &str) -> Route {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let found = match path {
        "/" => Route::Hello,
        "/json" => Route::Json,
        "/debug/metrics" => Route::Metrics,
        "/debug/tasks" => Route::Tasks,
        _ => return Route::NotFound,
    };
    if method == "GET" || method == "HEAD" {
        found
    } else {
        Route::MethodNotAllowed
    }
}

/// The statuses this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    ContentTooLarge,
    UriTooLong,
    ExpectationFailed,
    HeadersTooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::Ok => "200 OK",
            Status::BadRequest => "400 Bad Request",
            Status::NotFound => "404 Not Found",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::RequestTimeout => "408 Request Timeout",
            Status::ContentTooLarge => "413 Content Too Large",
            Status::UriTooLong => "414 URI Too Long",
            Status::ExpectationFailed => "417 Expectation Failed",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::NotImplemented => "501 Not Implemented",
            Status::VersionNotSupported => "505 HTTP Version Not Supported",
        }
    }
}

/// A canned reply.
#[derive(Debug)]
pub struct Reply {
    status: Status,
    content_type: &'static str,
    body: &'static str,
}

const HELLO: Reply = Reply {
    status: Status::Ok,
    content_type: "text/plain",
    body: "Hello, World!",
};
const JSON: Reply = Reply {
    status: Status::Ok,
    content_type: "application/json",
    body: r#"{"message":"Hello, World!"}"#,
};

impl Reply {
    /// The reply to a routed request.
    pub fn to(route: Route) -> &'static Reply {
        match route {
            Route::Hello => &HELLO,
            Route::Json => &JSON,
            Route::MethodNotAllowed => Reply::error(Status::MethodNotAllowed),
            // Served only where the server renders them itself (`render_text`).
            Route::NotFound | Route::Metrics | Route::Tasks => Reply::error(Status::NotFound),
        }
    }

    /// A plain-text error reply whose body is the reason phrase.
    pub fn error(status: Status) -> &'static Reply {
        macro_rules! error {
            ($status:ident, $body:literal) => {{
                const R: Reply = Reply {
                    status: Status::$status,
                    content_type: "text/plain",
                    body: $body,
                };
                &R
            }};
        }
        match status {
            Status::Ok => &HELLO,
            Status::BadRequest => error!(BadRequest, "Bad Request\n"),
            Status::NotFound => error!(NotFound, "Not Found\n"),
            Status::MethodNotAllowed => error!(MethodNotAllowed, "Method Not Allowed\n"),
            Status::RequestTimeout => error!(RequestTimeout, "Request Timeout\n"),
            Status::ContentTooLarge => error!(ContentTooLarge, "Content Too Large\n"),
            Status::UriTooLong => error!(UriTooLong, "URI Too Long\n"),
            Status::ExpectationFailed => error!(ExpectationFailed, "Expectation Failed\n"),
            Status::HeadersTooLarge => {
                error!(HeadersTooLarge, "Request Header Fields Too Large\n")
            }
            Status::NotImplemented => error!(NotImplemented, "Not Implemented\n"),
            Status::VersionNotSupported => {
                error!(VersionNotSupported, "HTTP Version Not Supported\n")
            }
        }
    }
}

/// What the reply says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Nothing: HTTP/1.1 connections persist by default.
    Default,
    /// `Connection: keep-alive`, for an HTTP/1.0 client that asked for it.
    KeepAlive,
    /// `Connection: close`: the server closes after this reply.
    Close,
}

/// The interim reply to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Appends `reply` to `out`; `head_only` leaves the body out (a HEAD
/// request) but keeps its `Content-Length`.
pub fn render(
    out: &mut Vec<u8>,
    reply: &Reply,
    head_only: bool,
    connection: Connection,
    date: &[u8; date::LEN],
) {
    let Reply {
        status,
        content_type,
        body,
    } = *reply;
    render_parts(out, status, content_type, body, head_only, connection, date);
}

/// Appends a `200 OK` text reply whose body was made for this request.
#[allow(dead_code)] // not every server that includes this module has one
pub fn render_text(
    out: &mut Vec<u8>,
    body: &str,
    head_only: bool,
    connection: Connection,
    date: &[u8; date::LEN],
) {
    let status = Status::Ok;
    render_parts(
        out,
        status,
        "text/plain; charset=utf-8",
        body,
        head_only,
        connection,
        date,
    );
}

fn render_parts(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    body: &str,
    head_only: bool,
    connection: Connection,
    date: &[u8; date::LEN],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.line().as_bytes());
    out.extend_from_slice(b"\r\nServer: gopark\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    push_decimal(out, body.len());
    if status == Status::MethodNotAllowed {
        out.extend_from_slice(b"\r\nAllow: GET, HEAD");
    }
    match connection {
        Connection::Default => {}
        Connection::KeepAlive => out.extend_from_slice(b"\r\nConnection: keep-alive"),
        Connection::Close => out.extend_from_slice(b"\r\nConnection: close"),
    }
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}
