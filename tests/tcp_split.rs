//! `TcpStream::into_split`: owned read and write halves used from separate
//! tasks, what dropping (or forgetting) the write half does, `reunite`,
//! deadlines and resets through the halves, and the `futures_io` traits.

#[macro_use]
mod support;

use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use futures_util::future::join;
use futures_util::io::AsyncReadExt;
use gopark::net::tcp::OwnedWriteHalf;
use gopark::net::TcpListener;
use gopark::runtime::{self, time::timeout};
use support::data::{assert_bytes_eq, pattern};
use support::future::signal_pending;
use support::net::{assert_err_kind, pair, read_to_end};

/// Writes `data` in uneven pieces, then drops the half (shutting down).
async fn write_and_drop(half: OwnedWriteHalf, data: Vec<u8>) -> io::Result<()> {
    let mut rest = &data[..];
    let mut piece = 1;
    while !rest.is_empty() {
        let n = piece.min(rest.len());
        half.write_all(&rest[..n]).await?;
        rest = &rest[n..];
        piece = (piece * 3 + 1) % 200_000 + 1;
    }
    Ok(())
}

rt_test! {
    async fn halves_move_one_mib_each_way_from_four_tasks() -> io::Result<()> {
        let (a, b) = pair().await?;
        let (ar, aw) = a.into_split();
        let (br, bw) = b.into_split();
        let (to_b, to_a) = (pattern(21, 1 << 20), pattern(22, 1 << 20));
        let writers = [
            runtime::spawn(write_and_drop(aw, to_b.clone())),
            runtime::spawn(write_and_drop(bw, to_a.clone())),
        ];
        let readers = [
            runtime::spawn(async move { read_to_end(&ar).await }),
            runtime::spawn(async move { read_to_end(&br).await }),
        ];
        for w in writers {
            w.await.expect("writer")?;
        }
        let [ra, rb] = readers;
        // End of stream right after the last byte: the dropped write
        // halves shut their directions down.
        assert_bytes_eq(&ra.await.expect("reader a")?, &to_a, "a received");
        assert_bytes_eq(&rb.await.expect("reader b")?, &to_b, "b received");
        Ok(())
    }
}

rt_test! {
    async fn dropping_the_write_half_shuts_down_only_writing() -> io::Result<()> {
        let (a, b) = pair().await?;
        let (ar, aw) = a.into_split();
        aw.write_all(b"bye").await?;
        drop(aw);
        let mut buf = [0u8; 8];
        b.read_exact(&mut buf[..3]).await?;
        assert_eq!(b.read(&mut buf).await?, 0, "end of stream after the write half dropped");
        // The other direction is still open.
        b.write_all(b"still here").await?;
        let mut got = [0u8; 10];
        ar.read_exact(&mut got).await?;
        assert_eq!(&got, b"still here");
        Ok(())
    }
}

rt_test! {
    async fn explicit_shutdown_and_then_writes_fail() -> io::Result<()> {
        let (a, b) = pair().await?;
        let (_ar, aw) = a.into_split();
        aw.shutdown()?;
        assert_eq!(b.read(&mut [0u8; 8]).await?, 0);
        assert_err_kind(aw.write(b"x").await, ErrorKind::BrokenPipe, "write after shutdown");
        drop(aw); // a second shutdown on drop is harmless
        Ok(())
    }
}

rt_test! {
    async fn forget_leaves_the_connection_open_until_the_read_half_goes() -> io::Result<()> {
        let (a, b) = pair().await?;
        let (ar, aw) = a.into_split();
        aw.forget();
        b.set_read_deadline(Some(Instant::now() + Duration::from_millis(30)))?;
        assert_err_kind(b.read(&mut [0u8; 8]).await, ErrorKind::TimedOut, "no end of stream yet");
        drop(ar);
        b.set_read_deadline(None)?;
        assert_eq!(b.read(&mut [0u8; 8]).await?, 0, "closed with the last half");
        Ok(())
    }
}

rt_test! {
    async fn reunite_gives_back_the_stream_or_both_halves() -> io::Result<()> {
        let (a, b) = pair().await?;
        let (c, _d) = pair().await?;
        let (a_local, a_peer) = (a.local_addr()?, a.peer_addr()?);
        let (ar, aw) = a.into_split();
        assert_eq!((ar.local_addr()?, ar.peer_addr()?), (a_local, a_peer));
        assert_eq!((aw.local_addr()?, aw.peer_addr()?), (a_local, a_peer));
        let (cr, cw) = c.into_split();
        let err = aw.reunite(cr).unwrap_err();
        assert_eq!(err.to_string(), "tried to reunite the halves of two different streams");
        let (cr, aw) = (err.0, err.1);
        let a = ar.reunite(aw).expect("halves of one stream");
        let _c = cw.reunite(cr).expect("halves of one stream");
        assert_eq!(a.local_addr()?, a_local);
        // Reuniting did not shut the stream down.
        a.write_all(b"whole again").await?;
        let mut buf = [0u8; 11];
        b.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"whole again");
        Ok(())
    }
}

rt_test! {
    async fn a_deadline_set_through_the_write_half_fails_a_parked_read() -> io::Result<()> {
        let (a, _b) = pair().await?;
        let (ar, aw) = a.into_split();
        let (read, parked) = signal_pending(async move { ar.read(&mut [0u8; 8]).await });
        let reader = runtime::spawn(read);
        parked.await.expect("read parked");
        // From another task, through the other half.
        aw.as_ref().set_read_deadline(Some(Instant::now() + Duration::from_millis(10)))?;
        let res = timeout(Duration::from_secs(10), reader).await.expect("read woke");
        assert_err_kind(res.expect("task"), ErrorKind::TimedOut, "parked read");
        // The write direction is unaffected.
        aw.write_all(b"ok").await?;
        Ok(())
    }
}

rt_test! {
    async fn write_deadline_on_the_write_half() -> io::Result<()> {
        let (a, _b) = pair().await?;
        let (_ar, aw) = a.into_split();
        aw.set_write_deadline(Some(Instant::now() + Duration::from_millis(50)))?;
        let chunk = pattern(5, 1 << 20);
        let e = loop {
            if let Err(e) = aw.write_all(&chunk).await {
                break e;
            }
        };
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        Ok(())
    }
}

rt_test! {
    async fn a_reset_reaches_both_halves() -> io::Result<()> {
        let (a, b) = pair().await?;
        let (ar, aw) = a.into_split();
        b.set_linger(Some(Duration::ZERO))?;
        drop(b);
        match ar.read(&mut [0u8; 8]).await {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(0) => panic!("a reset was reported as end of stream"),
            other => panic!("read after reset: {other:?}"),
        }
        let e = aw.write(b"x").await.unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "{e} ({:?})",
            e.kind()
        );
        Ok(())
    }
}

rt_test! {
    async fn futures_io_copy_between_halves_echoes_one_mib() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = runtime::spawn(async move {
            let (s, _) = listener.accept().await?;
            let (mut r, mut w) = s.into_split();
            // The tokio idiom: copy from the read half into the write half.
            let n = futures_util::io::copy(&mut r, &mut w).await?;
            futures_util::io::AsyncWriteExt::close(&mut w).await?;
            Ok::<_, io::Error>(n)
        });
        let client = gopark::net::TcpStream::connect(addr).await?;
        let (mut r, mut w) = client.into_split();
        let data = pattern(23, 1 << 20);
        let send = async {
            let mut src = futures_util::io::Cursor::new(data.clone());
            let n = futures_util::io::copy(&mut src, &mut w).await?;
            futures_util::io::AsyncWriteExt::close(&mut w).await?;
            Ok::<_, io::Error>(n)
        };
        let recv = async {
            let mut got = Vec::new();
            r.read_to_end(&mut got).await?;
            Ok::<_, io::Error>(got)
        };
        let (sent, got) = join(send, recv).await;
        assert_eq!(sent?, 1 << 20);
        assert_bytes_eq(&got?, &data, "echoed through futures-io");
        assert_eq!(server.await.expect("server")?, 1 << 20);
        Ok(())
    }
}
