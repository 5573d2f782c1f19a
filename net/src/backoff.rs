//! [`AcceptBackoff`]: what an accept loop does when `accept` fails.

use std::io;
use std::time::Duration;

use gopark_runtime::time::sleep;

/// The first pause after a lack of resources.
const FIRST: Duration = Duration::from_millis(5);
/// The longest pause.
const MAX: Duration = Duration::from_secs(1);

/// The pause an accept loop takes after `accept` fails for lack of
/// resources — Go's `net/http` accept back-off.
///
/// Out of descriptors (`EMFILE`, `ENFILE`) or kernel memory (`ENOBUFS`,
/// `ENOMEM`), `accept` fails while the connection waits in the queue;
/// trying again at once only spins. The loop sleeps 5 ms, doubling up to
/// 1 s while the failures last, and keeps serving: descriptors come back as
/// connections close. A connection that died in the queue
/// (`ECONNABORTED`, `ECONNRESET`) or an interrupted call is no reason to
/// wait; any other error means the listener is unusable.
/// `gopark::hyper::serve` runs its accept loop on it.
///
/// ```no_run
/// use gopark_net::{AcceptBackoff, TcpListener};
///
/// # async fn run() -> std::io::Result<()> {
/// let listener = TcpListener::bind("127.0.0.1:7000")?;
/// let mut backoff = AcceptBackoff::new();
/// loop {
///     match listener.accept().await {
///         Ok((stream, _peer)) => {
///             backoff.reset();
///             gopark_runtime::spawn(async move { drop(stream) });
///         }
///         // Sleeps on a lack of resources; a listener error ends the loop.
///         Err(e) => backoff.wait(e).await?,
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct AcceptBackoff {
    delay: Option<Duration>,
}

/// What an accept loop does after a failed `accept`; see
/// [`AcceptBackoff::on_error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// A lack of resources: sleep this long, then accept again.
    Sleep(Duration),
    /// The connection died in the queue: accept again at once.
    Retry,
    /// The listener is unusable: stop serving.
    Fatal,
}

impl AcceptBackoff {
    /// A back-off with no failure yet.
    pub fn new() -> AcceptBackoff {
        AcceptBackoff::default()
    }

    /// A connection was accepted: the next failure starts from 5 ms again.
    pub fn reset(&mut self) {
        self.delay = None;
    }

    /// Whether the last failure was a lack of resources with no accepted
    /// connection since: a run of failures is under way.
    pub fn is_backing_off(&self) -> bool {
        self.delay.is_some()
    }

    /// Classifies a failed `accept`; for a lack of resources, the pause
    /// before the next one (5 ms for the first failure of a run, then twice
    /// the last, up to 1 s). It does not sleep: for a loop that also waits
    /// for something else (a shutdown signal) while it pauses.
    pub fn on_error(&mut self, err: &io::Error) -> AcceptError {
        let lack_of_resources = matches!(
            err.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if !lack_of_resources {
            return match err.kind() {
                io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted => AcceptError::Retry,
                _ => AcceptError::Fatal,
            };
        }
        let delay = self.delay.map_or(FIRST, |d| (d * 2).min(MAX));
        self.delay = Some(delay);
        AcceptError::Sleep(delay)
    }

    /// Handles a failed `accept`: for a lack of resources, writes
    /// `accept error: ERR; retrying in DELAY` to stderr (Go's `net/http`
    /// line) and sleeps, then returns `Ok`; for a connection that died in
    /// the queue, returns `Ok` at once; returns the error otherwise.
    pub async fn wait(&mut self, err: io::Error) -> io::Result<()> {
        match self.on_error(&err) {
            AcceptError::Sleep(delay) => {
                eprintln!("accept error: {err}; retrying in {delay:?}");
                sleep(delay).await;
                Ok(())
            }
            AcceptError::Retry => Ok(()),
            AcceptError::Fatal => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_a_second_and_resets() {
        let mut b = AcceptBackoff::new();
        assert!(!b.is_backing_off());
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let mut delays = Vec::new();
        for _ in 0..10 {
            match b.on_error(&emfile) {
                AcceptError::Sleep(d) => delays.push(d.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert!(b.is_backing_off());
        b.reset();
        assert!(!b.is_backing_off());
        assert_eq!(b.on_error(&emfile), AcceptError::Sleep(FIRST));
    }

    #[test]
    fn classifies_other_errors() {
        let mut b = AcceptBackoff::new();
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(b.on_error(&aborted), AcceptError::Retry);
        let closed = io::Error::from_raw_os_error(libc::EBADF);
        assert_eq!(b.on_error(&closed), AcceptError::Fatal);
        assert!(!b.is_backing_off(), "only a lack of resources starts a run");
    }

    #[test]
    fn wait_sleeps_on_a_lack_of_resources_and_returns_a_listener_error() {
        gopark_runtime::block_on(async {
            let mut b = AcceptBackoff::new();
            let start = std::time::Instant::now();
            b.wait(io::Error::from_raw_os_error(libc::ENFILE))
                .await
                .unwrap();
            assert!(start.elapsed() >= FIRST, "slept {:?}", start.elapsed());
            let err = b
                .wait(io::Error::from_raw_os_error(libc::EBADF))
                .await
                .unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        });
    }
}
