//! Asynchronous I/O helpers with tokio's names: [`copy`] and
//! [`copy_bidirectional`], plus the buffered readers and writers and the
//! line reading of the futures ecosystem.
//!
//! gopark's streams ([`TcpStream`](crate::net::TcpStream),
//! [`UnixStream`](crate::net::UnixStream), their owned halves) speak the
//! `futures-io` traits, [`AsyncRead`] and [`AsyncWrite`]; with the
//! `tokio-io` feature they speak tokio's as well. This module is written
//! against the first:
//!
//! * [`copy`] moves everything a reader has into a writer;
//!   [`copy_bidirectional`] does it both ways at once between two streams,
//!   in one task, and passes each end of stream on as a write shutdown —
//!   the core of a TCP proxy (see `examples/proxy.rs`). Each direction owns
//!   one 64 KiB buffer and goes from one `EAGAIN` to the next without a
//!   copy of its own: the cost is the two syscalls per chunk that any
//!   proxy makes.
//! * [`BufReader`], [`BufWriter`], [`AsyncBufReadExt::lines`] and the
//!   extension traits [`AsyncReadExt`] / [`AsyncWriteExt`] /
//!   [`AsyncBufReadExt`] are the `futures` crate's, re-exported: they are
//!   written against the same traits, start no runtime, and are what a
//!   tokio user reaches for under `tokio::io`. (gopark's streams also have
//!   their own `read`, `read_exact`, `write_all` on `&self`, which need
//!   none of them.)
//!
//! ```
//! use gopark::io::{AsyncBufReadExt, BufReader};
//! use gopark::net::{TcpListener, TcpStream};
//! use futures_util::StreamExt;
//!
//! gopark::runtime::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     gopark::runtime::spawn(async move {
//!         let (stream, _) = listener.accept().await?;
//!         stream.write_all(b"one\ntwo\n").await
//!     });
//!     let stream = TcpStream::connect(addr).await?;
//!     let lines: Vec<String> = BufReader::new(stream)
//!         .lines()
//!         .map(|line| line.unwrap())
//!         .collect()
//!         .await;
//!     assert_eq!(lines, ["one", "two"]);
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```

mod copy;

pub use copy::{copy, copy_bidirectional};

pub use futures_io::{AsyncBufRead, AsyncRead, AsyncSeek, AsyncWrite};
pub use futures_util::io::{
    empty, repeat, sink, AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader,
    BufWriter, Empty, Lines, ReadHalf, Repeat, Sink, WriteHalf,
};
