//! Helpers shared by the network integration tests (`tcp_*`, `udp_*`,
//! `netpoll_*`).
//!
//! * [`rt_test!`] runs one async test body on a 1-worker and a 4-worker
//!   runtime (tokio's `rt_common.rs` idea);
//! * [`run`] bounds every test twice: a runtime `timeout` around the body,
//!   and a plain-thread watchdog that aborts the process if even that
//!   cannot fire (a hung runtime, a shutdown that never returns);
//! * seeded pseudo-random payloads and a byte-exact comparison that names
//!   the first differing offset instead of printing megabytes;
//! * [`SignalPending`]: tells another task the moment a future has
//!   returned `Pending`, i.e. registered its waker and parked — so tests can
//!   stage "wake a parked task" without sleeping.
#![allow(dead_code, unused_macros)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use futures_channel::oneshot;
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, Builder, Handle};

/// Worker counts every `rt_test!` body runs on.
pub const WORKERS: [usize; 2] = [1, 4];

/// Default bound of one test body on one runtime.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Runs `body` as a task on a fresh runtime with `workers` workers, bounded
/// by `limit` (runtime timer) and by a watchdog thread (wall clock) that
/// aborts the process if the runtime itself hangs. Panics in the body are
/// propagated; an `Err` fails the test with its message.
pub fn run<F, Fut>(workers: usize, name: &str, limit: Duration, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    let dog = Watchdog::start(format!("{name} on {workers} worker(s)"), limit * 2);
    let rt = Builder::new()
        .worker_threads(workers)
        .thread_name(format!("t{workers}"))
        .build()
        .expect("build runtime");
    let fut = body();
    let res = rt.block_on(async move {
        let task = runtime::spawn(fut);
        runtime::time::timeout(limit, task).await
    });
    drop(rt);
    dog.disarm();
    match res {
        Err(_) => panic!("{name} on {workers} worker(s): timed out after {limit:?}"),
        Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Ok(Err(e)) => panic!("{name} on {workers} worker(s): task failed: {e}"),
        Ok(Ok(Err(e))) => panic!("{name} on {workers} worker(s): {e} ({:?})", e.kind()),
        Ok(Ok(Ok(()))) => {}
    }
}

/// One async test body, run on 1 and 4 workers:
///
/// ```ignore
/// rt_test! {
///     async fn echo() {
///         ...;
///         Ok(())
///     }
/// }
/// ```
///
/// expands to a module `echo` with tests `one_worker` and `four_workers`.
/// The body returns `io::Result<()>`. A `limit = <Duration>;` line before
/// `async fn` overrides the default bound.
macro_rules! rt_test {
    ($(#[$attr:meta])* $(limit = $limit:expr;)? async fn $name:ident() $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() -> ::std::io::Result<()> $body

            fn limit() -> ::std::time::Duration {
                #[allow(unused_mut, unused_assignments)]
                let mut l = crate::net_support::LIMIT;
                $(l = $limit;)?
                l
            }

            $(#[$attr])*
            #[test]
            fn one_worker() {
                crate::net_support::run(1, stringify!($name), limit(), body)
            }

            $(#[$attr])*
            #[test]
            fn four_workers() {
                crate::net_support::run(4, stringify!($name), limit(), body)
            }
        }
    };
}

/// Aborts the process if not disarmed within its limit: the last line of
/// defence when a runtime hangs so badly that its own timers cannot fire.
pub struct Watchdog {
    tx: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl Watchdog {
    pub fn start(what: impl Into<String>, limit: Duration) -> Watchdog {
        let what = what.into();
        let (tx, rx) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("WATCHDOG: {what} still running after {limit:?}; aborting");
                std::process::abort();
            }
        });
        Watchdog { tx, thread }
    }

    pub fn disarm(self) {
        let _ = self.tx.send(());
        let _ = self.thread.join();
    }
}

/// `len` bytes of seeded pseudo-random data (splitmix64).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Asserts `got == want`, naming the first differing offset.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} bytes received, {} expected; first difference at offset {first}",
        got.len(),
        want.len()
    );
}

/// A connected pair over loopback: `(client, server)`.
pub async fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    pair_on(&listener).await
}

/// A connected pair through an existing listener: `(client, server)`.
pub async fn pair_on(listener: &TcpListener) -> io::Result<(TcpStream, TcpStream)> {
    let addr = listener.local_addr()?;
    let (client, accepted) =
        futures_util::future::join(TcpStream::connect(addr), listener.accept()).await;
    let client = client?;
    let (server, peer) = accepted?;
    assert_eq!(
        peer,
        client.local_addr()?,
        "accept reports the client's address"
    );
    Ok((client, server))
}

/// An address on loopback where nothing listens (bound, then released).
pub fn closed_port() -> io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(addr)
}

/// Reads until end of stream, bounded by the caller's deadline/timeout.
pub async fn read_to_end(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads exactly `want.len()` bytes in chunks of `chunk` and checks each
/// against `want` as it arrives.
pub async fn read_and_verify(stream: &TcpStream, want: &[u8], chunk: usize) -> io::Result<()> {
    let mut buf = vec![0u8; chunk];
    let mut off = 0;
    while off < want.len() {
        let end = (want.len() - off).min(chunk);
        let n = stream.read(&mut buf[..end]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("stream ended after {off} of {} bytes", want.len()),
            ));
        }
        assert_bytes_eq(&buf[..n], &want[off..off + n], &format!("bytes at {off}"));
        off += n;
    }
    Ok(())
}

/// Number of open descriptors of this process (entries of /proc/self/fd,
/// minus the one `read_dir` itself holds).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
        - 1
}

/// User plus system CPU time of the whole process.
pub fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The current runtime's handle (tests run inside one).
pub fn handle() -> Handle {
    Handle::current()
}

/// Waits (bounded, 5 s) until `cond` holds, re-checking every millisecond.
///
/// Only for counters that lag the event a test can await: a task's
/// `JoinHandle` resolves just before the task leaves the runtime's owned
/// list, so `num_alive_tasks` may still count it for a moment (as in tokio).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: still false after 5 s"
        );
        runtime::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Wraps a future and fires `tx` the first time it returns `Pending` —
/// i.e. once it has registered its waker. A task awaiting the receiver
/// then knows the wrapped operation is parked.
pub struct SignalPending<F> {
    fut: Pin<Box<F>>,
    tx: Option<oneshot::Sender<()>>,
}

/// `(future that signals when it first parks, receiver of that signal)`.
pub fn signal_pending<F: Future>(fut: F) -> (SignalPending<F>, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    (
        SignalPending {
            fut: Box::pin(fut),
            tx: Some(tx),
        },
        rx,
    )
}

impl<F: Future> Future for SignalPending<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let res = self.fut.as_mut().poll(cx);
        if res.is_pending() {
            if let Some(tx) = self.tx.take() {
                let _ = tx.send(());
            }
        }
        res
    }
}

/// Polls `fut` exactly once with a no-op waker.
pub fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    Pin::new(fut).poll(&mut cx)
}

/// Asserts `res` is an error of `kind`.
#[track_caller]
pub fn assert_err_kind<T: std::fmt::Debug>(res: io::Result<T>, kind: io::ErrorKind, what: &str) {
    match res {
        Err(e) if e.kind() == kind => {}
        other => panic!("{what}: expected an error of kind {kind:?}, got {other:?}"),
    }
}
