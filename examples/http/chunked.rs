//! A decoder for chunked request bodies (RFC 9112 §7.1), fed the bytes as
//! they arrive. The body itself is thrown away: this server only needs to
//! know where it ends.
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! last-chunk   = 1*("0") [ chunk-ext ] CRLF
//! ```
//!
//! Where one parser's leniency lets it disagree with another about where a
//! body ends, this one is strict, and refuses with 400:
//!
//! * every line ends in CRLF: a bare LF or a CR not followed by LF is an
//!   error (unlike in the head, where `httparse` accepts a bare LF);
//! * a chunk size is 1 to 16 hex digits — more, even leading zeros, is an
//!   error, so a size never overflows; whitespace after it is allowed only
//!   before a `;` extension, and nothing else may follow it;
//! * chunk data must be followed by CRLF at once;
//! * extension text is printable (tabs and obs-text allowed), at most
//!   [`MAX_EXTENSIONS`] bytes over the whole body; trailer fields are
//!   `name: value` lines (no space before the colon, no folding) of at
//!   most [`MAX_TRAILERS`] bytes in all (431 beyond).
//!
//! A body over the decoder's limit is refused with 413 as soon as the size
//! of the chunk that would cross it has been read.

use crate::response::Status;

/// Longest chunk size, in hex digits: 16 fill a `u64`.
pub const MAX_SIZE_DIGITS: u8 = 16;
/// Most bytes of chunk extensions (and the whitespace before them) in one
/// body.
pub const MAX_EXTENSIONS: usize = 16 * 1024;
/// Most bytes of trailer section in one body.
pub const MAX_TRAILERS: usize = 8 * 1024;

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the hex digits of a chunk size: its value and digit count so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after a chunk size: only an extension may follow.
    SizeSpace {
        size: u64,
    },
    /// A chunk extension, up to the end of the line.
    Extension {
        size: u64,
    },
    /// The CR ending a chunk-size line was read.
    SizeLf {
        size: u64,
    },
    /// This many bytes of chunk data still to come.
    Data {
        remaining: u64,
    },
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer field line, or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// The CR of the final empty line was read.
    EndLf,
    /// The body has ended.
    Done,
}

/// A chunked body being decoded.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    /// Bytes of chunk data so far.
    body: u64,
    max_body: u64,
    extensions: usize,
    trailers: usize,
}

/// How far one call to [`Decoder::decode`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input used: all of it, unless the body ended.
    pub consumed: usize,
    /// Whether the body has ended; the bytes after `consumed` are not its.
    pub done: bool,
}

impl Decoder {
    /// A decoder for a body of at most `max_body` bytes of data.
    pub fn new(max_body: u64) -> Decoder {
        Decoder {
            state: State::Size { size: 0, digits: 0 },
            body: 0,
            max_body,
            extensions: 0,
            trailers: 0,
        }
    }

    /// Bytes of chunk data decoded so far.
    #[allow(dead_code)] // the server does not need it; the fuzz target checks it
    pub fn body_len(&self) -> u64 {
        self.body
    }

    /// Decodes the next bytes of the body. On an error, the request must be
    /// refused with the status returned and the connection closed; the
    /// decoder must not be used again.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Progress, Status> {
        let mut i = 0;
        while i < buf.len() && self.state != State::Done {
            if let State::Data { remaining } = self.state {
                // The data itself, in one step.
                let n = remaining.min((buf.len() - i) as u64);
                i += n as usize;
                self.body += n;
                self.state = if n == remaining {
                    State::DataCr
                } else {
                    State::Data {
                        remaining: remaining - n,
                    }
                };
                continue;
            }
            self.state = self.step(buf[i])?;
            i += 1;
        }
        Ok(Progress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// The state after byte `b` (in any state but `Data` and `Done`).
    fn step(&mut self, b: u8) -> Result<State, Status> {
        let bad = Err(Status::BadRequest);
        Ok(match self.state {
            State::Size { size, digits } => match (b, hex_digit(b)) {
                (_, Some(d)) if digits < MAX_SIZE_DIGITS => State::Size {
                    size: size << 4 | u64::from(d),
                    digits: digits + 1,
                },
                (_, Some(_)) => return bad,
                _ if digits == 0 => return bad,
                (b';', _) => self.extension(size)?,
                (b' ' | b'\t', _) => {
                    self.extension(size)?;
                    State::SizeSpace { size }
                }
                (b'\r', _) => State::SizeLf { size },
                _ => return bad,
            },
            State::SizeSpace { size } => match b {
                b' ' | b'\t' => {
                    self.extension(size)?;
                    State::SizeSpace { size }
                }
                b';' => self.extension(size)?,
                _ => return bad,
            },
            State::Extension { size } => match b {
                b'\r' => State::SizeLf { size },
                _ if is_text(b) => self.extension(size)?,
                _ => return bad,
            },
            State::SizeLf { size } => match b {
                b'\n' if size == 0 => State::TrailerStart,
                b'\n' if size > self.max_body - self.body => return Err(Status::ContentTooLarge),
                b'\n' => State::Data { remaining: size },
                _ => return bad,
            },
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Size { size: 0, digits: 0 },
            State::DataCr | State::DataLf => return bad,
            State::TrailerStart if b == b'\r' => State::EndLf,
            State::TrailerStart | State::TrailerName if is_tchar(b) => {
                self.trailer()?;
                State::TrailerName
            }
            State::TrailerName if b == b':' => {
                self.trailer()?;
                State::TrailerValue
            }
            State::TrailerStart | State::TrailerName => return bad,
            State::TrailerValue => match b {
                b'\r' => State::TrailerLf,
                _ if is_text(b) => {
                    self.trailer()?;
                    State::TrailerValue
                }
                _ => return bad,
            },
            State::TrailerLf if b == b'\n' => State::TrailerStart,
            State::EndLf if b == b'\n' => State::Done,
            State::TrailerLf | State::EndLf => return bad,
            State::Data { .. } | State::Done => unreachable!("handled by decode"),
        })
    }

    /// Counts one byte of extension; the state for the rest of it.
    fn extension(&mut self, size: u64) -> Result<State, Status> {
        self.extensions += 1;
        if self.extensions > MAX_EXTENSIONS {
            return Err(Status::BadRequest);
        }
        Ok(State::Extension { size })
    }

    /// Counts one byte of trailer field.
    fn trailer(&mut self) -> Result<(), Status> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(Status::HeadersTooLarge);
        }
        Ok(())
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A byte of field value or extension text: printable ASCII, space, tab,
/// or obs-text.
fn is_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// A byte of a token (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
