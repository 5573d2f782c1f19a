//! *Bench-only copy of `examples/http/request.rs` as of commit 1265246, so that the
//! tokio twin parses and answers exactly as the gopark server does; keep the
//! two in step (`scripts/compare.sh` checks that both send the same bytes).*
//!
//! A request head: parsed by `httparse`, then checked the way RFC 9112 asks
//! a server to check it before trusting where the body ends.
//!
//! The framing rules matter more than anything else here: a server that
//! guesses a body's length differently from a proxy in front of it can be
//! made to read one client's bytes as another request (request smuggling).
//! So a request with both `Content-Length` and `Transfer-Encoding`, with
//! conflicting or malformed `Content-Length` values, or without exactly one
//! `Host` (HTTP/1.1) is refused with 400, and the connection closed. This
//! server does not decode chunked bodies: any `Transfer-Encoding` gets 501
//! and a close, never a guess.

use crate::response::{route, Route, Status};

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header fields accepted.
pub const MAX_HEADERS: usize = 64;
/// Largest request body accepted (it is read and thrown away).
pub const MAX_BODY: u64 = 8 * 1024 * 1024;

/// What a complete, acceptable request head asks for.
#[derive(Debug)]
pub struct Head {
    pub route: Route,
    /// A `HEAD` request: the reply carries no body.
    pub head_only: bool,
    /// HTTP/1.0: the connection closes after the reply unless the client
    /// asked for keep-alive, which the reply then confirms.
    pub http10: bool,
    /// The connection may serve another request after this one.
    pub keep_alive: bool,
    /// Bytes of body that follow the head.
    pub body_len: u64,
    /// `Expect: 100-continue`: the client waits for an interim reply
    /// before sending the body.
    pub expect_continue: bool,
}

/// The outcome of parsing the start of a buffer.
#[derive(Debug)]
pub enum Parsed {
    /// A head of this many bytes.
    Complete(Head, usize),
    /// The head is not all here yet.
    Partial,
    /// Refuse the request with this status and close the connection.
    Reject(Status),
}

/// Parses the request head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) => return Parsed::Reject(Status::HeadersTooLarge),
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Parsed::Reject(Status::HeadersTooLarge)
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(Status::HeadersTooLarge),
        Err(_) => return Parsed::Reject(Status::BadRequest),
    };
    // A complete parse fills in method, path and version.
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Reject(Status::BadRequest);
    };
    let http10 = version == 0;

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut hosts = 0;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            match content_length_value(h.value) {
                // Repeats of one value are harmless (RFC 9112 §6.3); any
                // other combination is ambiguous framing.
                Some(n) if content_length.unwrap_or(n) == n => content_length = Some(n),
                _ => return Parsed::Reject(Status::BadRequest),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                conn_close |= token.eq_ignore_ascii_case(b"close");
                conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("expect") && !http10 {
            // HTTP/1.0 clients cannot send expectations; ignore theirs.
            if !h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                return Parsed::Reject(Status::ExpectationFailed);
            }
            expect_continue = true;
        }
    }
    if transfer_encoding && content_length.is_some() {
        return Parsed::Reject(Status::BadRequest);
    }
    if transfer_encoding {
        return Parsed::Reject(Status::NotImplemented);
    }
    if hosts > 1 || (!http10 && hosts == 0) {
        return Parsed::Reject(Status::BadRequest);
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > MAX_BODY {
        return Parsed::Reject(Status::ContentTooLarge);
    }

    let keep_alive = if http10 {
        conn_keep_alive && !conn_close
    } else {
        !conn_close
    };
    let head = Head {
        route: route(method, target),
        head_only: method == "HEAD",
        http10,
        keep_alive,
        body_len,
        expect_continue: expect_continue && body_len > 0,
    };
    Parsed::Complete(head, len)
}

/// A `Content-Length` value: one to nineteen ASCII digits, optionally
/// surrounded by spaces or tabs. No sign, no list, nothing that could
/// overflow.
fn content_length_value(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}
