//! Unix signals as streams a task can await: [`signal`] and [`SignalKind`],
//! with tokio's names.
//!
//! ```
//! use gopark::signal::unix::{signal, SignalKind};
//!
//! gopark::runtime::block_on(async {
//!     let mut hangups = signal(SignalKind::hangup())?;
//!     // Deliveries count from the moment the listener exists.
//!     // SAFETY: raise takes no pointers.
//!     unsafe { libc::raise(libc::SIGHUP) };
//!     assert_eq!(hangups.recv().await, Some(()));
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

use super::registration::Registration;

/// Which signal to listen for: a signal number, with constructors named as
/// tokio names them.
///
/// ```
/// use gopark::signal::unix::SignalKind;
///
/// assert_eq!(SignalKind::terminate().as_raw_value(), libc::SIGTERM);
/// assert_eq!(SignalKind::from_raw(libc::SIGUSR1), SignalKind::user_defined1());
/// assert_eq!(SignalKind::interrupt().to_string(), "SIGINT");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(libc::c_int);

impl SignalKind {
    /// The signal numbered `signum`. Any number is accepted here;
    /// [`signal`] refuses the ones that are not signals, or that cannot or
    /// must not be caught.
    pub const fn from_raw(signum: libc::c_int) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw_value(&self) -> libc::c_int {
        self.0
    }

    /// `SIGALRM`: a timer set with `alarm(2)` or `setitimer(2)` expired.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }

    /// `SIGCHLD`: a child process stopped or exited.
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// `SIGHUP`: the terminal hung up; by convention, reload the
    /// configuration.
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGINT`: Ctrl-C at the terminal. See also
    /// [`ctrl_c`](crate::signal::ctrl_c).
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGIO`: I/O became possible on a descriptor set up for it.
    pub const fn io() -> SignalKind {
        SignalKind(libc::SIGIO)
    }

    /// `SIGPIPE`: a write to a pipe or socket with no reader. gopark's
    /// sockets send with `MSG_NOSIGNAL`, so they never raise it.
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }

    /// `SIGQUIT`: Ctrl-\ at the terminal.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGTERM`: a polite request to stop (what `kill`, systemd and
    /// container runtimes send first).
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGUSR1`, for the program's own use.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`, for the program's own use.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// `SIGWINCH`: the terminal's window changed size.
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }

    /// The conventional name (`SIGTERM`), if the signal has one.
    fn name(&self) -> Option<&'static str> {
        Some(match self.0 {
            libc::SIGHUP => "SIGHUP",
            libc::SIGINT => "SIGINT",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGILL => "SIGILL",
            libc::SIGTRAP => "SIGTRAP",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGFPE => "SIGFPE",
            libc::SIGKILL => "SIGKILL",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGPIPE => "SIGPIPE",
            libc::SIGALRM => "SIGALRM",
            libc::SIGTERM => "SIGTERM",
            libc::SIGSTKFLT => "SIGSTKFLT",
            libc::SIGCHLD => "SIGCHLD",
            libc::SIGCONT => "SIGCONT",
            libc::SIGSTOP => "SIGSTOP",
            libc::SIGTSTP => "SIGTSTP",
            libc::SIGTTIN => "SIGTTIN",
            libc::SIGTTOU => "SIGTTOU",
            libc::SIGURG => "SIGURG",
            libc::SIGXCPU => "SIGXCPU",
            libc::SIGXFSZ => "SIGXFSZ",
            libc::SIGVTALRM => "SIGVTALRM",
            libc::SIGPROF => "SIGPROF",
            libc::SIGWINCH => "SIGWINCH",
            libc::SIGIO => "SIGIO",
            libc::SIGPWR => "SIGPWR",
            libc::SIGSYS => "SIGSYS",
            _ => return None,
        })
    }
}

impl From<libc::c_int> for SignalKind {
    fn from(signum: libc::c_int) -> SignalKind {
        SignalKind::from_raw(signum)
    }
}

impl From<SignalKind> for libc::c_int {
    fn from(kind: SignalKind) -> libc::c_int {
        kind.as_raw_value()
    }
}

/// `SIGTERM`, `SIGRTMIN+3`, or `signal 99` for a number that names none.
impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.name() {
            return f.write_str(name);
        }
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        if (min..=max).contains(&self.0) {
            write!(f, "SIGRTMIN+{}", self.0 - min)
        } else {
            write!(f, "signal {}", self.0)
        }
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalKind({self} = {})", self.0)
    }
}

/// A listener for one kind of signal, made by [`signal`].
///
/// Every listener sees every delivery: two listeners for `SIGHUP` (in two
/// tasks, or on two runtimes) both return from [`recv`](Signal::recv) after
/// one `SIGHUP`. Deliveries that arrive while nobody is in `recv` are
/// counted from the listener's creation and coalesce: the next `recv`
/// returns at once, and once for all of them — as the kernel itself
/// coalesces a signal that is already pending.
///
/// Dropping the listener closes its descriptor and stops its deliveries;
/// the signal's handler stays installed (see the [module
/// docs](crate::signal#what-happens-to-the-signal-when-no-one-listens)).
pub struct Signal {
    reg: Registration,
}

impl Signal {
    /// Waits for the next delivery of the signal (or the first since the
    /// last `recv`). Returns `None` once the runtime the listener was
    /// created on has shut down: no delivery can be awaited any more.
    ///
    /// Cancel-safe: dropping the future loses no delivery; the next `recv`
    /// sees it.
    pub async fn recv(&mut self) -> Option<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery; see [`recv`](Signal::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.reg.poll_recv(cx)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("reg", &self.reg).finish()
    }
}

/// Starts listening for `kind`, on the current runtime (or the default
/// runtime, outside one).
///
/// The first listener for a signal installs a handler for it in the whole
/// process; from then on no thread of any runtime takes the signal's
/// default action. Deliveries count from this call on.
///
/// # Errors
///
/// An error of kind [`InvalidInput`](io::ErrorKind::InvalidInput) for a
/// number that is not a signal, and for `SIGKILL`, `SIGSTOP` (which cannot
/// be caught), `SIGSEGV`, `SIGBUS`, `SIGILL` and `SIGFPE` (whose handler
/// would return to the faulting instruction); the error of `eventfd(2)` or
/// of the netpoller's registration when descriptors run out.
///
/// ```
/// use gopark::signal::unix::{signal, SignalKind};
///
/// let err = signal(SignalKind::from_raw(libc::SIGKILL)).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// assert!(err.to_string().contains("SIGKILL"));
/// ```
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    Ok(Signal {
        reg: Registration::new(kind)?,
    })
}
