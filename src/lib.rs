//! gopark: a Rust runtime built the way Go's netpoller is built.
//!
//! A work-stealing executor runs async tasks; every socket is non-blocking,
//! and an operation that would block parks its task on the socket's
//! [`PollDesc`](runtime::PollDesc) until the one netpoll thread sees the
//! socket become ready. You write a plain, sequential handler per
//! connection:
//!
//! ```no_run
//! use gopark::{net::TcpListener, runtime};
//!
//! fn main() -> std::io::Result<()> {
//!     runtime::block_on(async {
//!         let listener = TcpListener::bind("127.0.0.1:7000")?;
//!         loop {
//!             let (stream, _peer) = listener.accept().await?;
//!             runtime::spawn(async move {
//!                 let mut buf = [0u8; 4096];
//!                 loop {
//!                     let n = stream.read(&mut buf).await?;
//!                     if n == 0 {
//!                         return Ok::<_, std::io::Error>(());
//!                     }
//!                     stream.write_all(&buf[..n]).await?;
//!                 }
//!             });
//!         }
//!     })
//! }
//! ```
//!
//! # Guides
//!
//! The [`guide`] module holds pages with runnable examples:
//!
//! * [Coming from Go](guide::coming_from_go): goroutines, channels,
//!   `select`, `sync.WaitGroup`, `context` and `net.Conn` deadlines on
//!   gopark;
//! * [Coming from tokio](guide::coming_from_tokio): what changes and what
//!   stays;
//! * [An echo server](guide::echo_server): a complete accept loop with
//!   error handling and a graceful exit;
//! * [Deadlines](guide::deadlines): Go's read and write deadlines;
//! * [`PollDesc` for your own descriptor](guide::poll_desc): an eventfd,
//!   a timerfd or a pipe made async;
//! * [`signal`]: SIGTERM and Ctrl-C as something a task awaits, for a
//!   graceful shutdown.
#![cfg_attr(
    feature = "hyper",
    doc = "* [`hyper`]: hyper and axum servers and clients on gopark."
)]
#![cfg_attr(
    not(feature = "hyper"),
    doc = "* `gopark::hyper` (with the `hyper` feature): hyper and axum servers and clients on gopark."
)]
#![warn(missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod fs;
pub mod guide;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod io;
pub mod process;
pub mod signal;

pub use gopark_net as net;
pub use gopark_runtime as runtime;
pub use gopark_runtime::time;
pub use gopark_runtime::{spawn, task, task_local};

#[doc(inline)]
pub use gopark_macros::{main, test};
