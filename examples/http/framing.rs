//! Where each request begins and ends in a connection's byte stream, as a
//! state machine with no I/O: the connection hands it the bytes it has
//! buffered, and it says what they are and how many it used. Everything a
//! client sends passes through here, so this is what the fuzz target
//! `http_request` drives.

use crate::chunked::{self, Decoder};
use crate::request::{self, Body, Head, Parsed, MAX_BODY};
use crate::response::Status;

/// What the next bytes of a connection are.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A request head. Answer it now if it has no body; otherwise at the
    /// [`Event::BodyEnd`] that follows.
    Head(Head),
    /// The body of the last head has ended.
    BodyEnd,
    /// More bytes are needed (the ones used, if any, were body bytes).
    Partial,
    /// Refuse the request with this status and close the connection: the
    /// bytes after this point cannot be trusted to be a request.
    Reject(Status),
}

/// The reading side of one connection.
#[derive(Debug, Default)]
pub struct Framer {
    state: State,
}

#[derive(Debug, Default)]
enum State {
    /// A request head.
    #[default]
    Head,
    /// This many bytes of `Content-Length` body.
    Length(u64),
    /// A chunked body.
    Chunked(Decoder),
    /// Refused: nothing more is read.
    Rejected(Status),
}

impl Framer {
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Whether the next bytes are a request head (as opposed to a body).
    pub fn at_head(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// Looks at the bytes at the start of `buf` (the ones not used yet);
    /// returns what they are and how many of them were used. Call again
    /// with the rest until it says [`Event::Partial`] or
    /// [`Event::Reject`]; after a `Reject`, it only repeats it.
    pub fn next(&mut self, buf: &[u8]) -> (Event, usize) {
        match &mut self.state {
            State::Head => match request::parse(buf) {
                Parsed::Partial => (Event::Partial, 0),
                Parsed::Reject(status) => self.reject(status),
                Parsed::Complete(head, len) => {
                    self.state = match head.body {
                        Body::None => State::Head,
                        Body::Length(n) => State::Length(n),
                        Body::Chunked => State::Chunked(Decoder::new(MAX_BODY)),
                    };
                    (Event::Head(head), len)
                }
            },
            State::Length(remaining) => {
                let n = (*remaining).min(buf.len() as u64);
                *remaining -= n;
                if *remaining > 0 {
                    return (Event::Partial, n as usize);
                }
                self.state = State::Head;
                (Event::BodyEnd, n as usize)
            }
            State::Chunked(decoder) => match decoder.decode(buf) {
                Ok(chunked::Progress {
                    consumed,
                    done: false,
                }) => (Event::Partial, consumed),
                Ok(chunked::Progress {
                    consumed,
                    done: true,
                }) => {
                    self.state = State::Head;
                    (Event::BodyEnd, consumed)
                }
                Err(status) => self.reject(status),
            },
            State::Rejected(status) => (Event::Reject(*status), 0),
        }
    }

    fn reject(&mut self, status: Status) -> (Event, usize) {
        self.state = State::Rejected(status);
        (Event::Reject(status), 0)
    }
}
