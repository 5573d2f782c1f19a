//! Failures: refused connects, peers that reset, and end of stream racing
//! the last data.

#[macro_use]
mod support;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use gopark::net::{Shutdown, TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout};
use support::data::pattern;
use support::future::signal_pending;
use support::net::{assert_err_kind, closed_port, pair, reset};

rt_test! {
    async fn connect_to_closed_port_is_refused() -> io::Result<()> {
        let addr = closed_port()?;
        let start = Instant::now();
        assert_err_kind(TcpStream::connect(addr).await, ErrorKind::ConnectionRefused, "connect");
        assert_err_kind(
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).await,
            ErrorKind::ConnectionRefused,
            "connect_timeout",
        );
        assert!(start.elapsed() < Duration::from_secs(2), "refusal is immediate on loopback");
        Ok(())
    }
}

rt_test! {
    async fn connect_tries_each_address() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let good = listener.local_addr()?;
        let addrs: [SocketAddr; 2] = [closed_port()?, good];
        let (client, accepted) =
            futures_util::future::join(TcpStream::connect(&addrs[..]), listener.accept()).await;
        assert_eq!(client?.peer_addr()?, good, "the second address is used");
        accepted?;
        // connect_timeout to a live listener connects well within its limit.
        let (client, accepted) = futures_util::future::join(
            TcpStream::connect_timeout(&good, Duration::from_secs(5)),
            listener.accept(),
        )
        .await;
        assert_eq!(client?.local_addr()?, accepted?.1);
        // Only refused addresses: the last error is returned.
        let bad = [closed_port()?, closed_port()?];
        assert_err_kind(TcpStream::connect(&bad[..]).await, ErrorKind::ConnectionRefused, "all refused");
        Ok(())
    }
}

/// Writes to `stream` until an error, at most `max` calls; returns the
/// error and how many calls succeeded first.
async fn write_until_error(stream: &TcpStream, max: usize) -> (Option<io::Error>, usize) {
    for ok in 0..max {
        if let Err(e) = stream.write(b"after the reset").await {
            return (Some(e), ok);
        }
    }
    (None, max)
}

fn assert_write_failure(res: (Option<io::Error>, usize), max_ok: usize) {
    match res {
        (Some(e), ok) => {
            assert!(
                matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "write to a reset connection: {e} ({:?})",
                e.kind()
            );
            assert!(ok <= max_ok, "{ok} writes succeeded after the reset");
        }
        (None, n) => panic!("{n} writes to a reset connection all succeeded"),
    }
}

rt_test! {
    async fn reset_by_peer_is_an_error_not_eof() -> io::Result<()> {
        let (c, s) = pair().await?;
        reset(s)?;
        let mut buf = [0u8; 64];
        match c.read(&mut buf).await {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(0) => panic!("a reset was reported as end of stream"),
            other => panic!("read after reset: {other:?}"),
        }
        // The reset was seen; the next write fails (no SIGPIPE: we are
        // still here to check).
        assert_write_failure(write_until_error(&c, 3).await, 1);
        Ok(())
    }
}

rt_test! {
    async fn reset_wakes_a_parked_reader() -> io::Result<()> {
        let (c, s) = pair().await?;
        let (read, parked) = signal_pending(async move {
            let mut buf = [0u8; 64];
            let res = c.read(&mut buf).await;
            (res, c)
        });
        let reader = runtime::spawn(read);
        parked.await.expect("reader parked");
        reset(s)?;
        let (res, c) = reader.await.expect("reader task");
        match res {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(0) => panic!("a reset was reported as end of stream"),
            other => panic!("parked read after reset: {other:?}"),
        }
        assert_write_failure(write_until_error(&c, 3).await, 1);
        Ok(())
    }
}

rt_test! {
    async fn writes_to_a_reset_peer_fail_without_reading() -> io::Result<()> {
        let (c, s) = pair().await?;
        reset(s)?;
        // No read first: the write itself must surface the reset.
        assert_write_failure(write_until_error(&c, 4).await, 2);
        Ok(())
    }
}

rt_test! {
    async fn reset_wakes_a_parked_writer() -> io::Result<()> {
        let (c, s) = pair().await?;
        // A writer that fills the buffers (the peer never reads) and parks.
        let (write, parked) = signal_pending(async move {
            let chunk = pattern(3, 1 << 20);
            let res = loop {
                if let Err(e) = c.write_all(&chunk).await {
                    break e;
                }
            };
            (res, c)
        });
        let writer = runtime::spawn(write);
        parked.await.expect("writer parked");
        reset(s)?;
        let (res, _c) = timeout(Duration::from_secs(5), writer)
            .await
            .expect("the reset wakes the writer")
            .expect("writer task");
        assert!(
            matches!(res.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "parked write after reset: {res}"
        );
        Ok(())
    }
}

rt_test! {
    async fn many_resets_do_not_hurt_the_process() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        for i in 0..100 {
            let (c, s) = support::net::pair_on(&listener).await?;
            let (victim, resetter) = if i % 2 == 0 { (c, s) } else { (s, c) };
            victim.write_all(b"some data in flight").await?;
            reset(resetter)?;
            // Every outcome is an error or a short sequence of successes
            // followed by one; never a hang, never a signal.
            let (e, _) = write_until_error(&victim, 10).await;
            assert!(e.is_some(), "connection {i}: writes kept succeeding after a reset");
        }
        Ok(())
    }
}

rt_test! {
    async fn fd_numbers_stay_valid_after_errors() -> io::Result<()> {
        // An error must not close or deregister the descriptor behind the
        // stream's back: its number stays the same and options still work.
        let (c, s) = pair().await?;
        let fd = c.as_raw_fd();
        reset(s)?;
        let _ = c.read(&mut [0u8; 8]).await;
        assert_eq!(c.as_raw_fd(), fd);
        c.set_nodelay(false)?;
        assert!(!c.nodelay()?);
        c.shutdown(Shutdown::Both)?;
        Ok(())
    }
}

rt_test! {
    // Regression (fixed in fe85d22 with a sticky HUP bit): poll_stream_io
    // cleared read readiness after a short read even when the FIN
    // (EPOLLRDHUP) had already arrived, so the EOF edge was lost and the
    // next read parked forever.
    limit = Duration::from_secs(10);
    async fn eof_after_short_read_is_not_lost() -> io::Result<()> {
        // The reader is parked; the peer writes 5 bytes and half-closes at
        // once, so data and FIN are both queued when the reader wakes. Its
        // first read (1 KiB buffer) returns the 5 bytes, a short read; the
        // second must return end of stream, not park forever.
        let mut hangs = 0;
        for _ in 0..10 {
            let (c, s) = pair().await?;
            let (read, parked) = signal_pending(async move {
                let mut buf = [0u8; 1024];
                let first = s.read(&mut buf).await;
                let second = timeout(Duration::from_millis(200), s.read(&mut buf)).await;
                (first, second)
            });
            let reader = runtime::spawn(read);
            parked.await.expect("reader parked");
            c.write_all(b"hello").await?;
            c.shutdown(Shutdown::Write)?;
            let (first, second) = reader.await.expect("reader task");
            assert_eq!(first?, 5);
            match second {
                Ok(Ok(0)) => {}
                Err(_) => hangs += 1,
                Ok(other) => panic!("second read: {other:?}"),
            }
        }
        assert_eq!(hangs, 0, "{hangs} of 10 reads of end of stream never returned");
        Ok(())
    }
}
