//! Signals as something a task awaits: [`ctrl_c`] and
//! [`unix::signal`], with tokio's names.
//!
//! # A guide
//!
//! A server stops on SIGTERM (what systemd, Kubernetes and `kill` send) and
//! on Ctrl-C. Listen for both before you start serving, then race them
//! against the accept loop; the one that wins tells which:
//!
//! ```no_run
//! use std::pin::pin;
//!
//! use futures_util::future::{select, Either};
//! use gopark::net::TcpListener;
//! use gopark::runtime;
//! use gopark::signal::unix::{signal, SignalKind};
//!
//! async fn serve(listener: &TcpListener) -> std::io::Result<()> {
//!     loop {
//!         let (stream, _) = listener.accept().await?;
//!         runtime::spawn(async move {
//!             let _ = stream.write_all(b"hello\n").await;
//!         });
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     runtime::block_on(async {
//!         // Listen first: a SIGTERM that comes before the listener exists
//!         // still terminates the process, as it would without gopark.
//!         let mut interrupt = signal(SignalKind::interrupt())?;
//!         let mut terminate = signal(SignalKind::terminate())?;
//!         let listener = TcpListener::bind("127.0.0.1:7000")?;
//!
//!         let serving = pin!(serve(&listener));
//!         let stop = pin!(async {
//!             match select(pin!(interrupt.recv()), pin!(terminate.recv())).await {
//!                 Either::Left(_) => "SIGINT",
//!                 Either::Right(_) => "SIGTERM",
//!             }
//!         });
//!         match select(serving, stop).await {
//!             Either::Left((result, _)) => result,
//!             Either::Right((name, _)) => {
//!                 println!("{name}: stopping");
//!                 Ok(())
//!             }
//!         }
//!     })
//! }
//! ```
//!
//! `examples/http` (stop accepting, let requests in flight finish, exit)
//! and `examples/hyper/` (hyper's own graceful shutdown) do the same for
//! real.
//!
//! A listener is a stream of deliveries, not a one-shot: a daemon reloads
//! its configuration on every SIGHUP with one loop. Here the process sends
//! itself the signal, so the example runs as a test:
//!
//! ```
//! use futures_util::StreamExt;
//! use gopark::signal::unix::{signal, SignalKind};
//!
//! gopark::runtime::block_on(async {
//!     let mut hangups = signal(SignalKind::hangup())?;
//!     let (reloaded, mut reloads) = futures_channel::mpsc::unbounded();
//!     gopark::runtime::spawn(async move {
//!         while hangups.recv().await.is_some() {
//!             // Re-read the configuration here.
//!             if reloaded.unbounded_send(()).is_err() {
//!                 break;
//!             }
//!         }
//!     });
//!     for _ in 0..3 {
//!         // SAFETY: kill takes no pointers; it signals this very process.
//!         unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
//!         reloads.next().await.expect("one reload per SIGHUP");
//!     }
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # What a listener promises
//!
//! * **Every listener sees each delivery.** Two listeners for the same
//!   signal — in two tasks, in two libraries, on two runtimes — both wake
//!   up. No listener takes a delivery from another.
//! * **Deliveries count from the listener's creation.** A signal that came
//!   before [`unix::signal`] returned is not reported to it; one that comes
//!   while the task is busy elsewhere is, at its next
//!   [`recv`](unix::Signal::recv).
//! * **Deliveries coalesce.** Ten SIGHUPs that arrive before the listener
//!   calls `recv` again make `recv` return once, as the kernel coalesces a
//!   signal that is already pending. A listener learns "at least once
//!   since the last `recv`", never a count.
//! * **No thread is left out.** The kernel delivers a process-directed
//!   signal to any thread that does not block it: a worker, the netpoll
//!   thread, a blocking-pool thread, a thread of another runtime or of
//!   another library. The handler is installed for the whole process, so
//!   whichever thread it lands on, it reaches every listener.
//! * **No extra thread**, and nothing left behind: a listener holds one
//!   eventfd, registered with its runtime's netpoller, and returns it when
//!   dropped.
//!
//! # How it works, and why this way
//!
//! There are two ways to turn a signal into readiness on a descriptor:
//!
//! 1. *Block it and read a `signalfd`.* A signalfd receives only signals
//!    that every thread blocks; a thread whose mask lets it through takes
//!    the default action instead, and for SIGTERM that ends the process.
//!    The mask is inherited, so this works only if it is set before any
//!    thread starts. An application's `main` can promise that; a library
//!    cannot — a runtime's workers, or another library's threads, may
//!    already be running when the first listener is made. And a signalfd
//!    is read, so two listeners would share one stream of deliveries
//!    instead of each seeing all of them.
//! 2. *A `sigaction` handler that writes to a descriptor.* The handler is
//!    process-wide, so it runs whichever thread the kernel picks, no mask
//!    needed. It may only do async-signal-safe things: here, one
//!    `write(2)`.
//!
//! gopark does the second. The handler is installed through
//! [`signal-hook-registry`](https://docs.rs/signal-hook-registry), the
//! registry that signal-hook and tokio use, so several libraries in one
//! process share a signal instead of overwriting each other's handler (a
//! handler installed before it, by anyone, keeps being called). Each
//! listener registers its own action, which adds 1 to the listener's own
//! eventfd; the eventfd is a [`PollDesc`](crate::runtime::PollDesc) on the
//! runtime the listener was made on, so a task waiting in `recv` parks
//! there like any socket operation and the netpoll thread wakes it. One
//! eventfd per listener is what makes every listener see every delivery
//! without a thread to fan them out. Dropping a listener removes its
//! action, which waits for any handler still running it, before the
//! eventfd is closed.
//!
//! # What happens to the signal when no one listens
//!
//! As in tokio: once the first listener for a signal exists, the
//! signal's default action is replaced for the rest of the process's life.
//! When every listener is gone the handler is still installed and does
//! nothing, so a later SIGTERM is ignored rather than fatal. A program that
//! wants "first Ctrl-C stops gracefully, the second kills" keeps listening
//! and exits itself on the second delivery (`examples/http` does).
//! Child processes start with the default actions again: `execve` resets
//! caught signals, and no signal mask is changed.
//!
//! # Signals that cannot be listened for
//!
//! [`unix::signal`] returns an error of kind
//! [`InvalidInput`](std::io::ErrorKind::InvalidInput) for SIGKILL and SIGSTOP
//! (the kernel does not let them be caught) and for SIGSEGV, SIGBUS, SIGILL
//! and SIGFPE: when a faulting instruction raises them, a handler that
//! returns runs the instruction again, forever.

mod registration;
pub mod unix;

use std::io;

/// Waits for Ctrl-C (`SIGINT`).
///
/// The listener is made when the future is first polled; a Ctrl-C before
/// that still terminates the process. To be sure none is missed, poll it
/// before you start work, or make a listener with
/// `unix::signal(SignalKind::interrupt())` up front.
///
/// # Errors
///
/// The errors of [`unix::signal`]; and an error of kind `Other` if the
/// runtime shuts down before the signal comes.
///
/// ```no_run
/// fn main() -> std::io::Result<()> {
///     gopark::runtime::block_on(async {
///         println!("press Ctrl-C to stop");
///         gopark::signal::ctrl_c().await?;
///         println!("stopping");
///         Ok(())
///     })
/// }
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    let mut interrupt = unix::signal(unix::SignalKind::interrupt())?;
    interrupt
        .recv()
        .await
        .ok_or_else(|| io::Error::other("the runtime shut down before SIGINT arrived"))
}
