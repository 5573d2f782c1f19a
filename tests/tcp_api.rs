//! The smaller parts of the TCP API: empty reads, peek, vectored writes,
//! half-close, options and addresses, `SO_REUSEPORT`, `from_std`, and the
//! `futures_io` traits.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::io::{self, ErrorKind, IoSlice};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::join;
use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use gopark::net::{Shutdown, TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout};
use support::data::{assert_bytes_eq, pattern};
use support::future::{poll_once, signal_pending};
use support::net::{assert_err_kind, pair, read_and_verify};

rt_test! {
    async fn read_into_empty_buffer_returns_zero_at_once() -> io::Result<()> {
        let (c, s) = pair().await?;
        // Nothing to read: a read into a non-empty buffer would park, but
        // an empty one completes on the first poll.
        let mut empty: [u8; 0] = [];
        let mut read = Box::pin(c.read(&mut empty));
        assert!(matches!(poll_once(&mut read), Poll::Ready(Ok(0))));
        drop(read);
        let mut peek = Box::pin(c.peek(&mut empty));
        assert!(matches!(poll_once(&mut peek), Poll::Ready(Ok(0))));
        drop(peek);
        let mut shared = &c;
        let mut fut_read = AsyncReadExt::read(&mut shared, &mut empty);
        assert!(matches!(poll_once(&mut fut_read), Poll::Ready(Ok(0))));
        // With data waiting, an empty read still consumes nothing.
        s.write_all(b"x").await?;
        assert_eq!(c.read(&mut []).await?, 0);
        let mut one = [0u8; 1];
        c.read_exact(&mut one).await?;
        assert_eq!(&one, b"x");
        // Empty writes are no-ops too.
        assert_eq!(c.write(&[]).await?, 0);
        assert_eq!(c.write_vectored(&[IoSlice::new(&[]), IoSlice::new(&[])]).await?, 0);
        Ok(())
    }
}

rt_test! {
    async fn peek_does_not_consume() -> io::Result<()> {
        let (c, s) = pair().await?;
        s.write_all(b"hello world").await?;
        let mut buf = [0u8; 64];
        let n = c.peek(&mut buf).await?;
        assert_eq!(&buf[..n], b"hello world");
        let mut small = [0u8; 5];
        assert_eq!(c.peek(&mut small).await?, 5);
        assert_eq!(&small, b"hello");
        let mut all = [0u8; 11];
        c.read_exact(&mut all).await?;
        assert_eq!(&all, b"hello world");
        // Nothing left: a peek parks until data arrives, then still does
        // not consume it.
        let c = Arc::new(c);
        let c2 = c.clone();
        let (peek, parked) = signal_pending(async move {
            let mut buf = [0u8; 64];
            let n = c2.peek(&mut buf).await?;
            Ok::<_, io::Error>(buf[..n].to_vec())
        });
        let peeker = runtime::spawn(peek);
        parked.await.expect("peek parked");
        s.write_all(b"more").await?;
        assert_eq!(peeker.await.expect("peek task")?, b"more");
        let mut more = [0u8; 4];
        c.read_exact(&mut more).await?;
        assert_eq!(&more, b"more");
        Ok(())
    }
}

rt_test! {
    async fn write_vectored_gathers_buffers() -> io::Result<()> {
        let (c, s) = pair().await?;
        let bufs = [IoSlice::new(b"hello "), IoSlice::new(b""), IoSlice::new(b"world")];
        assert_eq!(c.write_vectored(&bufs).await?, 11);
        let mut got = [0u8; 11];
        s.read_exact(&mut got).await?;
        assert_eq!(&got, b"hello world");

        // Several MiB across three buffers: partial sendmsg calls, with
        // the slices advanced in between. The peer reads concurrently.
        let parts = [pattern(1, 3 << 20), pattern(2, 17), pattern(3, 1 << 20)];
        let want: Vec<u8> = parts.concat();
        let send = async {
            let mut bufs: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            c.write_all_vectored(&mut bufs).await
        };
        let (w, r) = join(send, read_and_verify(&s, &want, 65_536)).await;
        w?;
        r?;

        Ok(())
    }
}

rt_test! {
    // Regression (fixed in fe85d22): sendmsg takes at most IOV_MAX (1024)
    // slices; that partial write was compared with the length of all the
    // slices, taken for a full send buffer, and write readiness cleared —
    // with no EPOLLOUT edge to come, the next write parked forever.
    limit = Duration::from_secs(5);
    async fn write_vectored_more_than_iov_max_slices() -> io::Result<()> {
        let (c, s) = pair().await?;
        // Warm up: `c` parks in a read and is woken by the netpoller, so the
        // registration's first events have been handled before we start.
        let c = Arc::new(c);
        let c2 = c.clone();
        let (read, parked) = signal_pending(async move { c2.read(&mut [0u8; 1]).await });
        let reader = runtime::spawn(read);
        parked.await.expect("reader parked");
        s.write_all(b"w").await?;
        assert_eq!(reader.await.expect("reader task")?, 1);

        let ones = vec![IoSlice::new(b"x"); 1025];
        // One sendmsg takes at most 1024 slices: a partial write, with the
        // send buffer nearly empty.
        assert_eq!(c.write_vectored(&ones).await?, 1024);
        // So the next write must go through at once.
        let next = timeout(Duration::from_secs(2), c.write(b"y")).await;
        assert!(
            matches!(next, Ok(Ok(1))),
            "a write after a write_vectored capped at IOV_MAX slices: {next:?}"
        );
        let mut got = vec![0u8; 1025];
        s.read_exact(&mut got).await?;
        assert!(got[..1024].iter().all(|&b| b == b'x') && got[1024] == b'y');
        Ok(())
    }
}

rt_test! {
    // Regression: see write_vectored_more_than_iov_max_slices.
    limit = Duration::from_secs(5);
    async fn write_all_vectored_more_than_iov_max_slices() -> io::Result<()> {
        let (c, s) = pair().await?;
        // A first transfer so the connection's initial events are used up.
        let first = pattern(1, 1 << 20);
        let (w, r) = join(c.write_all(&first), read_and_verify(&s, &first, 65_536)).await;
        w?;
        r?;
        let many: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_le_bytes().repeat(3)).collect();
        let want: Vec<u8> = many.concat();
        let mut bufs: Vec<IoSlice<'_>> = many.iter().map(|p| IoSlice::new(p)).collect();
        let (w, r) = join(c.write_all_vectored(&mut bufs), read_and_verify(&s, &want, 4096)).await;
        w?;
        r?;
        Ok(())
    }
}

rt_test! {
    async fn half_close_then_answer() -> io::Result<()> {
        let (c, s) = pair().await?;
        let request = pattern(9, 100_000);
        let len = request.len();
        let server = runtime::spawn(async move {
            let mut req = vec![0u8; len];
            s.read_exact(&mut req).await?;
            // The client's FIN: end of stream, repeatedly.
            assert_eq!(s.read(&mut [0u8; 16]).await?, 0);
            assert_eq!(s.read(&mut [0u8; 16]).await?, 0);
            // The other direction is still open: answer.
            let answer: Vec<u8> = req.iter().rev().copied().collect();
            s.write_all(&answer).await?;
            s.shutdown(Shutdown::Write)?;
            Ok::<_, io::Error>(())
        });
        c.write_all(&request).await?;
        c.shutdown(Shutdown::Write)?;
        c.shutdown(Shutdown::Write)?; // twice is fine
        assert_err_kind(c.write(b"late").await, ErrorKind::BrokenPipe, "write after shutdown(Write)");
        let want: Vec<u8> = request.iter().rev().copied().collect();
        read_and_verify(&c, &want, 8192).await?;
        assert_eq!(c.read(&mut [0u8; 16]).await?, 0);
        server.await.expect("server task")?;
        Ok(())
    }
}

rt_test! {
    // Regression: end of stream lost after a short read when data and FIN
    // arrive together (see tcp_errors.rs eof_after_short_read_is_not_lost).
    limit = Duration::from_secs(5);
    async fn half_close_server_reads_to_eof_with_a_large_buffer() -> io::Result<()> {
        let (c, s) = pair().await?;
        // The server waits for the request, reading to EOF into a big buffer.
        let (serve, parked) = signal_pending(async move {
            let req = support::net::read_to_end(&s).await?;
            s.write_all(&(req.len() as u64).to_le_bytes()).await?;
            Ok::<_, io::Error>(())
        });
        let server = runtime::spawn(serve);
        parked.await.expect("server parked");
        // Request and FIN back to back: both are queued when it wakes.
        c.write_all(b"a request that fits in one segment").await?;
        c.shutdown(Shutdown::Write)?;
        let mut len = [0u8; 8];
        c.read_exact(&mut len).await?;
        assert_eq!(u64::from_le_bytes(len), 34);
        server.await.expect("server task")?;
        Ok(())
    }
}

rt_test! {
    // Urgent data (`MSG_OOB`) ends a read at its mark: a read shorter than
    // the buffer then does not prove the queue drained, and the data after
    // the mark, which came with the same readiness edge, must still be
    // read, not wait for an edge that never comes.
    limit = Duration::from_secs(10);
    async fn data_after_an_urgent_mark_is_not_stranded() -> io::Result<()> {
        let (c, s) = pair().await?;
        let (serve, parked) = signal_pending(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < 6 {
                let n = timeout(Duration::from_secs(2), s.read(&mut buf))
                    .await
                    .map_err(|_| io::Error::new(ErrorKind::TimedOut, format!("stuck after {got:?}")))??;
                assert!(n > 0, "end of stream after {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            Ok::<_, io::Error>(got)
        });
        let server = runtime::spawn(serve);
        parked.await.expect("server parked");
        // All three are queued before the reader wakes.
        c.write_all(b"abc").await?;
        // SAFETY: a send of one byte from a live buffer on an open socket.
        let sent = unsafe { libc::send(c.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(sent, 1, "send MSG_OOB: {}", io::Error::last_os_error());
        c.write_all(b"def").await?;
        // The urgent byte is out of band: the stream is the rest.
        assert_eq!(server.await.expect("server task")?, b"abcdef");
        Ok(())
    }
}

rt_test! {
    async fn own_shutdown_wakes_a_parked_reader() -> io::Result<()> {
        let (c, _s) = pair().await?;
        let c = Arc::new(c);
        let c2 = c.clone();
        let (read, parked) = signal_pending(async move { c2.read(&mut [0u8; 16]).await });
        let reader = runtime::spawn(read);
        parked.await.expect("reader parked");
        c.shutdown(Shutdown::Read)?;
        let res = timeout(Duration::from_secs(5), reader)
            .await
            .expect("shutdown(Read) wakes the parked reader")
            .expect("reader task");
        assert_eq!(res?, 0, "a shut-down read half reads end of stream");
        Ok(())
    }
}

rt_test! {
    async fn options_and_addresses() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let (c, s) = support::net::pair_on(&listener).await?;
        assert_eq!(c.peer_addr()?, addr);
        assert_eq!(s.local_addr()?, addr);
        assert_eq!(s.peer_addr()?, c.local_addr()?);
        // TCP_NODELAY is on by default on both ends, as in Go.
        assert!(c.nodelay()? && s.nodelay()?);
        c.set_nodelay(false)?;
        assert!(!c.nodelay()?);
        c.set_nodelay(true)?;
        assert!(c.nodelay()?);
        assert!(c.take_error()?.is_none());
        c.set_linger(Some(Duration::from_secs(1)))?;
        c.set_linger(None)?;
        // Descriptors are non-blocking and close-on-exec.
        for fd in [c.as_raw_fd(), s.as_raw_fd(), listener.as_raw_fd()] {
            // SAFETY: fcntl on a live descriptor.
            let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            // SAFETY: as above.
            let fdfl = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert!(fl & libc::O_NONBLOCK != 0, "fd {fd} is non-blocking");
            assert!(fdfl & libc::FD_CLOEXEC != 0, "fd {fd} is close-on-exec");
        }
        // Binding a port in use fails; a backlog can be chosen.
        assert_err_kind(TcpListener::bind(addr), ErrorKind::AddrInUse, "bind to a used port");
        let small = TcpListener::options().backlog(1).bind("127.0.0.1:0")?;
        let (c2, _s2) = support::net::pair_on(&small).await?;
        assert_eq!(c2.peer_addr()?, small.local_addr()?);
        Ok(())
    }
}

rt_test! {
    async fn reuse_port_listeners_both_accept() -> io::Result<()> {
        let a = TcpListener::options().reuse_port(true).bind("127.0.0.1:0")?;
        let addr = a.local_addr()?;
        let b = TcpListener::options().reuse_port(true).bind(addr)?;
        assert_eq!(b.local_addr()?, addr);
        assert_err_kind(TcpListener::bind(addr), ErrorKind::AddrInUse, "plain bind to the port");
        // Each listener answers with its own id.
        let serve = |listener: TcpListener, id: u8| {
            runtime::spawn(async move {
                loop {
                    let (stream, _) = listener.accept().await?;
                    stream.write_all(&[id]).await?;
                }
                #[allow(unreachable_code)]
                Ok::<_, io::Error>(())
            })
        };
        let (ta, tb) = (serve(a, b'a'), serve(b, b'b'));
        // The kernel spreads connections by a hash of the 4-tuple: over 64
        // connections both listeners are chosen (all on one: p = 2^-63).
        let mut seen = HashSet::new();
        let mut open = Vec::new();
        for _ in 0..64 {
            let c = TcpStream::connect(addr).await?;
            let mut id = [0u8; 1];
            c.read_exact(&mut id).await?;
            seen.insert(id[0]);
            open.push(c);
        }
        assert_eq!(seen, HashSet::from([b'a', b'b']));
        ta.abort();
        tb.abort();
        assert!(ta.await.unwrap_err().is_cancelled());
        assert!(tb.await.unwrap_err().is_cancelled());
        Ok(())
    }
}

rt_test! {
    async fn from_std_sockets() -> io::Result<()> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = std_listener.local_addr()?;
        let listener = TcpListener::from_std(std_listener)?;
        let std_client = runtime::spawn_blocking(move || std::net::TcpStream::connect(addr))
            .await
            .expect("blocking connect")?;
        let (s, peer) = listener.accept().await?;
        assert_eq!(peer, std_client.local_addr()?);
        let c = TcpStream::from_std(std_client)?;
        // SAFETY: fcntl on a live descriptor.
        let fl = unsafe { libc::fcntl(c.as_raw_fd(), libc::F_GETFL) };
        assert!(fl & libc::O_NONBLOCK != 0, "from_std switches to non-blocking");
        // A read with nothing to read parks instead of blocking a worker.
        assert!(timeout(Duration::from_millis(20), c.read(&mut [0u8; 8])).await.is_err());
        s.write_all(b"std").await?;
        let mut got = [0u8; 3];
        c.read_exact(&mut got).await?;
        assert_eq!(&got, b"std");
        Ok(())
    }
}

rt_test! {
    async fn futures_io_traits() -> io::Result<()> {
        let (mut c, s) = pair().await?;
        // AsyncWrite on TcpStream and on &TcpStream.
        AsyncWriteExt::write_all(&mut c, b"owned ").await?;
        AsyncWriteExt::write_all(&mut &c, b"shared\n").await?;
        AsyncWriteExt::flush(&mut c).await?;
        let mut got = [0u8; 13];
        AsyncReadExt::read_exact(&mut &s, &mut got).await?;
        assert_eq!(&got, b"owned shared\n");

        // Line-oriented reads through futures' BufReader.
        AsyncWriteExt::write_all(&mut c, b"first line\nsecond line\n").await?;
        let mut reader = BufReader::new(&s);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        assert_eq!(line, "first line\n");
        line.clear();
        reader.read_line(&mut line).await?;
        assert_eq!(line, "second line\n");
        drop(reader);

        // futures' `copy` as an echo of a known length: 1 MiB there and back.
        let data = pattern(5, 1 << 20);
        let len = data.len() as u64;
        let echo = async {
            let mut writer = &s;
            futures_util::io::copy((&s).take(len), &mut writer).await
        };
        let client = async {
            let send = async {
                AsyncWriteExt::write_all(&mut &c, &data).await?;
                // close() is shutdown(Write).
                AsyncWriteExt::close(&mut &c).await
            };
            let mut back = vec![0u8; data.len()];
            let (w, r) = join(send, AsyncReadExt::read_exact(&mut &c, &mut back)).await;
            w?;
            r?;
            Ok::<_, io::Error>(back)
        };
        let (copied, back) = join(echo, client).await;
        assert_eq!(copied?, len);
        assert_bytes_eq(&back?, &data, "copy echo");
        // The close() above was a FIN.
        assert_eq!(s.read(&mut [0u8; 8]).await?, 0);
        Ok(())
    }
}
