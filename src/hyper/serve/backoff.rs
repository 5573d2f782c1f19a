//! What the accept loop does when `accept` fails for lack of resources.
//!
//! Out of descriptors (`EMFILE`, `ENFILE`) or kernel memory (`ENOBUFS`,
//! `ENOMEM`), `accept` fails while the connection waits in the queue;
//! trying again at once only spins. Like Go's `net/http`, the loop sleeps
//! 5 ms, doubling up to 1 s while the failures last, and keeps serving:
//! descriptors come back as connections close. The first failure of a run
//! is written to stderr, once; the next accepted connection ends the run.

use std::io;
use std::time::Duration;

const FIRST: Duration = Duration::from_millis(5);
const MAX: Duration = Duration::from_secs(1);

/// The delay before the next `accept` after a resource error.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    delay: Option<Duration>,
}

/// What to do after a failed `accept`.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(crate) enum AcceptError {
    /// A lack of resources: sleep this long, then accept again.
    Sleep(Duration),
    /// The connection died in the queue: accept again at once.
    Retry,
    /// The listener is unusable: stop serving.
    Fatal,
}

impl Backoff {
    /// A connection was accepted: the next failure starts from 5 ms again.
    pub(crate) fn reset(&mut self) {
        self.delay = None;
    }

    /// Classifies a failed `accept`, and for a lack of resources returns
    /// the delay (logging the first failure of a run).
    pub(crate) fn on_error(&mut self, err: &io::Error) -> AcceptError {
        let temporary = matches!(
            err.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if !temporary {
            return match err.kind() {
                io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted => AcceptError::Retry,
                _ => AcceptError::Fatal,
            };
        }
        let delay = match self.delay {
            None => {
                eprintln!("gopark::hyper::serve: accept: {err}; backing off (5 ms up to 1 s) until it succeeds");
                FIRST
            }
            Some(d) => (d * 2).min(MAX),
        };
        self.delay = Some(delay);
        AcceptError::Sleep(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let mut delays = Vec::new();
        for _ in 0..10 {
            match b.on_error(&emfile) {
                AcceptError::Sleep(d) => delays.push(d.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.on_error(&emfile), AcceptError::Sleep(FIRST));
    }

    #[test]
    fn classifies_other_errors() {
        let mut b = Backoff::default();
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(b.on_error(&aborted), AcceptError::Retry);
        let closed = io::Error::from_raw_os_error(libc::EBADF);
        assert_eq!(b.on_error(&closed), AcceptError::Fatal);
    }
}
