//! What a server does when `accept` fails for lack of resources.
//!
//! Out of descriptors (`EMFILE`, `ENFILE`) or kernel memory (`ENOBUFS`,
//! `ENOMEM`), `accept` fails while the connection waits in the queue; trying
//! again at once only spins. Like Go's `net/http`, the server sleeps 5 ms,
//! doubling up to 1 s while the failures last, and keeps serving: descriptors
//! come back as connections close.

use std::io;
use std::time::Duration;

use gopark::runtime::time::sleep;

const FIRST: Duration = Duration::from_millis(5);
const MAX: Duration = Duration::from_secs(1);

/// The delay before the next `accept` after a resource error.
#[derive(Default)]
pub struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    /// A connection was accepted: the next failure starts from 5 ms again.
    pub fn reset(&mut self) {
        self.delay = None;
    }

    /// Handles a failed `accept`: sleeps and returns `Ok` if the error is a
    /// temporary lack of resources, returns the error otherwise.
    pub async fn wait(&mut self, err: io::Error) -> io::Result<()> {
        let temporary = matches!(
            err.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if !temporary {
            return Err(err);
        }
        let delay = self.delay.map_or(FIRST, |d| (d * 2).min(MAX));
        self.delay = Some(delay);
        eprintln!("accept error: {err}; retrying in {delay:?}");
        sleep(delay).await;
        Ok(())
    }
}
