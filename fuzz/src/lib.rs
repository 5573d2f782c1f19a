//! The HTTP example's pure parsing and framing code, compiled from the
//! example's own files, and the harness the fuzz targets share: it feeds a
//! byte stream to a [`Framer`] the way a connection does, in reads of any
//! sizes, and writes down what the framer made of it.

#[path = "../../examples/http/chunked.rs"]
pub mod chunked;
#[path = "../../examples/http/date.rs"]
pub mod date;
#[path = "../../examples/http/framing.rs"]
pub mod framing;
#[path = "../../examples/http/request.rs"]
pub mod request;
#[path = "../../examples/http/response.rs"]
pub mod response;

use framing::{Event, Framer};
use request::MAX_HEAD;
use response::Status;

/// What a connection made of a byte stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Transcript {
    /// Each head and body end, with the stream offset just after it.
    pub events: Vec<(Event, usize)>,
    /// How it ended: `Ok(offset)` when the input ran out, every byte
    /// before `offset` used; `Err(status)` when it was refused.
    pub end: Result<usize, Status>,
}

/// Feeds `input` to a new framer in reads of the sizes `reads` yields (the
/// last read takes whatever is left), as a connection does: after each
/// read, it asks for events until the framer needs more bytes.
pub fn frame(input: &[u8], reads: impl IntoIterator<Item = usize>) -> Transcript {
    let mut framer = Framer::new();
    let mut reads = reads.into_iter();
    let mut events = Vec::new();
    // The bytes read and not yet used, and the stream offset of the first.
    let mut buf: Vec<u8> = Vec::new();
    let mut offset = 0;
    let mut fed = 0;
    while fed < input.len() {
        let n = reads
            .next()
            .unwrap_or(input.len())
            .clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            let (event, used) = framer.next(&buf);
            assert!(used <= buf.len(), "used {used} of {} bytes", buf.len());
            buf.drain(..used);
            offset += used;
            match event {
                Event::Partial => {
                    // A connection never holds more than a head's worth of
                    // a head it cannot parse yet.
                    assert!(
                        !framer.at_head() || buf.len() <= MAX_HEAD,
                        "partial head of {} bytes",
                        buf.len()
                    );
                    break;
                }
                Event::Reject(status) => {
                    // Asking again changes nothing.
                    assert_eq!(framer.next(&buf), (Event::Reject(status), 0));
                    return Transcript {
                        events,
                        end: Err(status),
                    };
                }
                event => {
                    // Progress, or this loop would never end.
                    assert!(used > 0, "{event:?} used no bytes");
                    events.push((event, offset));
                }
            }
        }
    }
    Transcript {
        events,
        end: Ok(offset),
    }
}

/// Read sizes of `size` bytes each, forever.
pub fn every(size: usize) -> impl Iterator<Item = usize> {
    std::iter::repeat(size.max(1))
}
