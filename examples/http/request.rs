//! A request head: parsed by `httparse`, then checked the way RFC 9112 asks
//! a server to check it before trusting where the body ends.
//!
//! The framing rules matter more than anything else here: a server that
//! guesses a body's length differently from a proxy in front of it can be
//! made to read one client's bytes as another request (request smuggling).
//! So these are refused with 400, and the connection closed:
//!
//! * both `Content-Length` and `Transfer-Encoding`; conflicting or
//!   malformed `Content-Length` values (signed, a list, too long);
//! * a `Transfer-Encoding` whose last coding is not `chunked`, that names
//!   `chunked` twice, or that comes in an HTTP/1.0 request;
//! * not exactly one `Host` (HTTP/1.1), or a `Host` that is not a host;
//! * a request target that is none of the four forms of RFC 9112 §3.2;
//! * whatever `httparse` refuses: a malformed request line, a header with
//!   a space before its colon, an obsolete line folding, bare CRs, control
//!   bytes.
//!
//! `chunked` after another coding (`gzip, chunked`) is 501: the other
//! coding is not implemented. A head over [`MAX_HEAD`] is 431 (414 if the
//! request line alone does not fit); a well-formed version other than
//! HTTP/1.0 and 1.1 is 505.
//!
//! The decision depends only on the first [`MAX_HEAD`] bytes of the buffer
//! and on whether there are more, so it does not depend on how the bytes
//! were split into reads: once [`parse`] has decided on a prefix of the
//! stream, it decides the same on any longer one (the fuzz target
//! `http_request` checks this).

use crate::response::{route, Route, Status};

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header fields accepted.
pub const MAX_HEADERS: usize = 64;
/// Largest request body accepted (it is read and thrown away).
pub const MAX_BODY: u64 = 8 * 1024 * 1024;

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body.
    None,
    /// This many bytes (never 0: that is `None`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What a complete, acceptable request head asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub route: Route,
    /// A `HEAD` request: the reply carries no body.
    pub head_only: bool,
    /// HTTP/1.0: the connection closes after the reply unless the client
    /// asked for keep-alive, which the reply then confirms.
    pub http10: bool,
    /// The connection may serve another request after this one.
    pub keep_alive: bool,
    /// The body that follows the head.
    pub body: Body,
    /// `Expect: 100-continue` on a request with a body: the client waits
    /// for an interim reply before sending the body.
    pub expect_continue: bool,
}

/// The outcome of parsing the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
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
    // Never look past MAX_HEAD bytes: see the module documentation.
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let more = buf.len() > MAX_HEAD;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if more => return Parsed::Reject(too_large(window)),
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Reject(Status::HeadersTooLarge),
        Err(httparse::Error::Version) => return bad_version(window, more),
        Err(_) => return Parsed::Reject(Status::BadRequest),
    };
    // A complete parse fills in method, target and version.
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parsed::Reject(Status::BadRequest);
    };
    let http10 = version == 0;
    let Some(path) = target_path(method, target) else {
        return Parsed::Reject(Status::BadRequest);
    };

    let mut content_length: Option<u64> = None;
    let mut codings = Codings::default();
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
            codings.add(h.value);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in list(h.value) {
                conn_close |= token.eq_ignore_ascii_case(b"close");
                conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            if !valid_host(trim_ows(h.value)) {
                return Parsed::Reject(Status::BadRequest);
            }
            hosts += 1;
        } else if name.eq_ignore_ascii_case("expect") && !http10 {
            // HTTP/1.0 clients cannot send expectations; ignore theirs.
            if !trim_ows(h.value).eq_ignore_ascii_case(b"100-continue") {
                return Parsed::Reject(Status::ExpectationFailed);
            }
            expect_continue = true;
        }
    }
    if hosts > 1 || (!http10 && hosts == 0) {
        return Parsed::Reject(Status::BadRequest);
    }
    let body = if codings.present {
        // RFC 9112 §6.1 and §6.3: both headers, or a Transfer-Encoding in
        // HTTP/1.0, is faulty framing; a final coding other than chunked
        // leaves the length unknowable.
        if content_length.is_some() || http10 || !codings.chunked_last || codings.chunked > 1 {
            return Parsed::Reject(Status::BadRequest);
        }
        if codings.other {
            return Parsed::Reject(Status::NotImplemented);
        }
        Body::Chunked
    } else {
        match content_length {
            None | Some(0) => Body::None,
            Some(n) if n > MAX_BODY => return Parsed::Reject(Status::ContentTooLarge),
            Some(n) => Body::Length(n),
        }
    };

    let keep_alive = if http10 {
        conn_keep_alive && !conn_close
    } else {
        !conn_close
    };
    let head = Head {
        route: route(method, path),
        head_only: method == "HEAD",
        http10,
        keep_alive,
        body,
        expect_continue: expect_continue && body != Body::None,
    };
    Parsed::Complete(head, len)
}

/// The status for a head longer than [`MAX_HEAD`]: 414 if its request line
/// has not even ended, 431 otherwise.
fn too_large(window: &[u8]) -> Status {
    match request_line(window) {
        None => Status::UriTooLong,
        Some(_) => Status::HeadersTooLarge,
    }
}

/// `httparse` accepts only HTTP/1.0 and HTTP/1.1. Once the request line is
/// complete: another well-formed version (`HTTP/2.0`) gets 505, anything
/// else 400.
fn bad_version(window: &[u8], more: bool) -> Parsed {
    let Some(line) = request_line(window) else {
        return if more {
            Parsed::Reject(Status::UriTooLong)
        } else {
            Parsed::Partial
        };
    };
    // `httparse` has checked the method and the target; the line must be
    // exactly those and the version, one space apart.
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(_), Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor]), None)
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Parsed::Reject(Status::VersionNotSupported)
        }
        _ => Parsed::Reject(Status::BadRequest),
    }
}

/// The request line, without its line ending, if it has ended. Like
/// `httparse`, skips empty lines before it.
fn request_line(buf: &[u8]) -> Option<&[u8]> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let rest = &buf[start..];
    let line = &rest[..rest.iter().position(|&b| b == b'\n')?];
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// The path to route on, if `target` is in a form that `method` allows
/// (RFC 9112 §3.2): origin-form (`/path?query`), absolute-form
/// (`http://host/path`, reduced to its path), asterisk-form (`*`, only for
/// OPTIONS) or authority-form (`host:port`, only for CONNECT). The last
/// two route nowhere.
fn target_path<'a>(method: &str, target: &'a str) -> Option<&'a str> {
    if method == "CONNECT" {
        return (!target.is_empty() && valid_host(target.as_bytes())).then_some("");
    }
    if target.starts_with('/') {
        return Some(target);
    }
    if method == "OPTIONS" && target == "*" {
        return Some("");
    }
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(path_start);
    if authority.is_empty() || !valid_host(authority.as_bytes()) {
        return None;
    }
    Some(if path.starts_with('/') { path } else { "/" })
}

/// The `Transfer-Encoding` codings of a request, all its fields together.
#[derive(Default)]
struct Codings {
    present: bool,
    /// How many times `chunked` is named.
    chunked: u32,
    /// Whether the last coding named is `chunked`.
    chunked_last: bool,
    /// A coding other than chunked (gzip, deflate, compress...).
    other: bool,
}

impl Codings {
    fn add(&mut self, value: &[u8]) {
        self.present = true;
        for coding in list(value) {
            let chunked = coding.eq_ignore_ascii_case(b"chunked");
            self.chunked += u32::from(chunked);
            self.other |= !chunked;
            self.chunked_last = chunked;
        }
    }
}

/// The elements of a comma-separated list, without the empty ones
/// (RFC 9110 §5.6.1).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// `value` without optional whitespace (spaces and tabs) around it.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// Whether `value` can be a `Host` (or an authority): a host name, an IPv4
/// or bracketed IPv6 address, and an optional port, in the characters RFC
/// 3986 allows there. Empty is allowed (RFC 9112 §3.2).
fn valid_host(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b))
}

/// A `Content-Length` value: one to nineteen ASCII digits, optionally
/// surrounded by spaces or tabs. No sign, no list, nothing that could
/// overflow.
fn content_length_value(value: &[u8]) -> Option<u64> {
    let digits = trim_ows(value);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}
