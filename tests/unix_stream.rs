//! Unix domain stream sockets through the public API: echo with the bytes
//! compared, end of stream, resets and broken pipes, deadlines, peer
//! credentials, abstract addresses, the errors that name a path, the owned
//! halves, and the `futures_io` traits.

#[macro_use]
mod support;

use std::ffi::OsStr;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use gopark::net::{Shutdown, UnixListener, UnixStream};
use gopark::runtime::{self, time::timeout};
use support::data::{assert_bytes_eq, pattern};
use support::future::{poll_once, signal_pending};
use support::net::{assert_err_kind, echo, read_and_verify, read_to_end};
use support::unix::{abstract_addr, TempPath};

/// A connected `(client, server)` pair through a listener bound at `path`.
async fn connected(listener: &UnixListener, path: &Path) -> io::Result<(UnixStream, UnixStream)> {
    let (client, accepted) = join(UnixStream::connect(path), listener.accept()).await;
    let (server, peer) = accepted?;
    assert!(
        peer.is_unnamed(),
        "an unbound client has an unnamed address"
    );
    Ok((client?, server))
}

/// Sends `data` through an echo on the far end of `client` while reading
/// it back at the same time, and compares every byte.
async fn round_trip(client: UnixStream, data: Vec<u8>) -> io::Result<()> {
    let client = Arc::new(client);
    let writer = {
        let client = client.clone();
        let data = data.clone();
        runtime::spawn(async move {
            for chunk in data.chunks(100_000) {
                client.write_all(chunk).await?;
            }
            client.shutdown(Shutdown::Write)
        })
    };
    read_and_verify(&client, &data, 64 * 1024).await?;
    assert_eq!(
        client.read(&mut [0u8; 16]).await?,
        0,
        "end of stream after the echo"
    );
    writer.await.expect("writer task")
}

rt_test! {
    async fn echo_small_and_one_mib_through_a_path() -> io::Result<()> {
        let path = TempPath::new("echo");
        let listener = UnixListener::bind(&*path)?;
        assert_eq!(listener.local_addr()?.as_pathname(), Some(&*path));
        let server = runtime::spawn(async move {
            let mut totals = Vec::new();
            for _ in 0..2 {
                let (s, _) = listener.accept().await?;
                totals.push(echo(s).await?);
            }
            Ok::<_, io::Error>(totals)
        });
        let small = UnixStream::connect(&*path).await?;
        assert_eq!(small.peer_addr()?.as_pathname(), Some(&*path));
        assert!(small.local_addr()?.is_unnamed());
        round_trip(small, b"hello, unix".to_vec()).await?;
        let big = UnixStream::connect(&*path).await?;
        round_trip(big, pattern(7, 1 << 20)).await?;
        assert_eq!(server.await.expect("server")?, vec![11, 1 << 20]);
        Ok(())
    }
}

rt_test! {
    async fn echo_through_an_abstract_address() -> io::Result<()> {
        let addr = abstract_addr("echo")?;
        let listener = UnixListener::bind_addr(&addr)?;
        let name = addr.as_abstract_name().unwrap().to_vec();
        assert_eq!(listener.local_addr()?.as_abstract_name(), Some(&name[..]));
        let server = runtime::spawn(async move {
            let (s, _) = listener.accept().await?;
            echo(s).await
        });
        // The leading-NUL path spelling names the same address.
        let mut nul_path = vec![0u8];
        nul_path.extend_from_slice(&name);
        let client = UnixStream::connect(OsStr::from_bytes(&nul_path)).await?;
        assert_eq!(client.peer_addr()?.as_abstract_name(), Some(&name[..]));
        round_trip(client, pattern(8, 300_000)).await?;
        assert_eq!(server.await.expect("server")?, 300_000);
        Ok(())
    }
}

rt_test! {
    async fn abstract_name_errors_name_the_address() -> io::Result<()> {
        let addr = abstract_addr("errors")?;
        // Nothing bound yet: refused, not "not found" (there is no file).
        let err = UnixStream::connect_addr(&addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        assert!(err.to_string().contains("abstract"), "{err}");
        let _listener = UnixListener::bind_addr(&addr)?;
        let err = UnixListener::bind_addr(&addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        let name = String::from_utf8(addr.as_abstract_name().unwrap().to_vec()).unwrap();
        assert!(err.to_string().contains(&format!("@{name}")), "{err}");
        Ok(())
    }
}

rt_test! {
    async fn pair_echo_and_end_of_stream() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        assert!(a.local_addr()?.is_unnamed() && a.peer_addr()?.is_unnamed());
        let server = runtime::spawn(echo(b));
        round_trip(a, pattern(9, 1 << 20)).await?;
        assert_eq!(server.await.expect("server")?, 1 << 20);
        Ok(())
    }
}

rt_test! {
    async fn end_of_stream_after_the_last_bytes() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        a.write_all(b"last words").await?;
        drop(a);
        // The data first, then end of stream, then end of stream again.
        let got = read_to_end(&b).await?;
        assert_eq!(got, b"last words");
        assert_eq!(b.read(&mut [0u8; 8]).await?, 0);
        // read_exact past the end is UnexpectedEof.
        assert_err_kind(b.read_exact(&mut [0u8; 1]).await, ErrorKind::UnexpectedEof, "read_exact");
        Ok(())
    }
}

rt_test! {
    async fn half_close_keeps_the_other_direction() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        a.shutdown(Shutdown::Write)?;
        a.shutdown(Shutdown::Write)?; // twice is fine
        assert_eq!(b.read(&mut [0u8; 8]).await?, 0, "b sees end of stream");
        b.write_all(b"still open").await?;
        let mut buf = [0u8; 10];
        a.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"still open");
        assert_err_kind(a.write(b"x").await, ErrorKind::BrokenPipe, "write after shutdown");
        Ok(())
    }
}

rt_test! {
    async fn peek_does_not_consume() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        b.write_all(b"peekaboo").await?;
        let mut buf = [0u8; 4];
        assert_eq!(a.peek(&mut buf).await?, 4);
        assert_eq!(&buf, b"peek");
        let mut all = [0u8; 8];
        a.read_exact(&mut all).await?;
        assert_eq!(&all, b"peekaboo");
        assert_eq!(a.read(&mut []).await?, 0, "an empty read returns at once");
        Ok(())
    }
}

rt_test! {
    async fn closing_with_unread_data_resets_the_peer() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        a.write_all(b"never read").await?;
        drop(b);
        match a.read(&mut [0u8; 16]).await {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(0) => panic!("a reset was reported as end of stream"),
            other => panic!("read after the peer dropped unread data: {other:?}"),
        }
        // Remembered: the kernel reports the reset once, reads keep saying so.
        assert_err_kind(a.read(&mut [0u8; 16]).await, ErrorKind::ConnectionReset, "second read");
        assert_err_kind(a.write(b"x").await, ErrorKind::BrokenPipe, "write");
        Ok(())
    }
}

rt_test! {
    async fn reset_wakes_a_parked_reader() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        a.write_all(b"unread").await?;
        let (read, parked) = signal_pending(async move { a.read(&mut [0u8; 16]).await });
        let reader = runtime::spawn(read);
        parked.await.expect("reader parked");
        drop(b);
        assert_err_kind(reader.await.expect("reader"), ErrorKind::ConnectionReset, "parked read");
        Ok(())
    }
}

rt_test! {
    async fn writing_to_a_closed_peer_is_a_broken_pipe() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        drop(b);
        // No SIGPIPE: we are still here to check the error.
        assert_err_kind(a.write(b"hello?").await, ErrorKind::BrokenPipe, "write");
        assert_eq!(a.read(&mut [0u8; 8]).await?, 0, "nothing was unread: plain end of stream");
        Ok(())
    }
}

rt_test! {
    async fn closing_wakes_a_parked_writer() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        let (write, parked) = signal_pending(async move {
            let chunk = pattern(3, 1 << 20);
            loop {
                if let Err(e) = a.write_all(&chunk).await {
                    break e;
                }
            }
        });
        let writer = runtime::spawn(write);
        parked.await.expect("writer parked on a full buffer");
        drop(b);
        let e = writer.await.expect("writer");
        assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "parked write after the peer closed: {e} ({:?})",
            e.kind()
        );
        Ok(())
    }
}

rt_test! {
    async fn read_deadline_times_out_and_can_be_cleared() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        let deadline = Instant::now() + Duration::from_millis(30);
        a.set_read_deadline(Some(deadline))?;
        assert_err_kind(a.read(&mut [0u8; 8]).await, ErrorKind::TimedOut, "read");
        assert!(Instant::now() >= deadline, "the deadline never fires early");
        // Still timed out, even with data waiting, until a new deadline.
        b.write_all(b"data").await?;
        assert_err_kind(a.read(&mut [0u8; 8]).await, ErrorKind::TimedOut, "read after");
        assert_err_kind(a.peek(&mut [0u8; 8]).await, ErrorKind::TimedOut, "peek after");
        a.set_read_deadline(None)?;
        let mut buf = [0u8; 4];
        a.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"data");
        Ok(())
    }
}

rt_test! {
    async fn deadline_set_from_another_task_fails_a_parked_read() -> io::Result<()> {
        let (a, _b) = UnixStream::pair()?;
        let a = Arc::new(a);
        let (read, parked) = signal_pending({
            let a = a.clone();
            async move { a.read(&mut [0u8; 8]).await }
        });
        let reader = runtime::spawn(read);
        parked.await.expect("reader parked");
        a.set_read_deadline(Some(Instant::now() + Duration::from_millis(10)))?;
        let res = timeout(Duration::from_secs(10), reader).await.expect("reader woke");
        assert_err_kind(res.expect("reader task"), ErrorKind::TimedOut, "parked read");
        Ok(())
    }
}

rt_test! {
    async fn write_deadline_fails_a_writer_parked_on_a_full_buffer() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        let a = Arc::new(a);
        let (write, parked) = signal_pending({
            let a = a.clone();
            async move {
                let chunk = pattern(4, 1 << 20);
                loop {
                    if let Err(e) = a.write_all(&chunk).await {
                        break e;
                    }
                }
            }
        });
        let writer = runtime::spawn(write);
        parked.await.expect("writer parked");
        a.set_write_deadline(Some(Instant::now()))?;
        let e = timeout(Duration::from_secs(10), writer).await.expect("writer woke").expect("task");
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
        // The read direction is unaffected.
        b.write_all(b"ok").await?;
        let mut buf = [0u8; 2];
        a.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ok");
        Ok(())
    }
}

rt_test! {
    async fn peer_cred_is_our_own_process() -> io::Result<()> {
        let me = (std::process::id() as i32, own_ids());
        let (a, b) = UnixStream::pair()?;
        for s in [&a, &b] {
            let cred = s.peer_cred()?;
            assert_eq!((cred.pid().expect("pid"), (cred.uid(), cred.gid())), me);
        }
        let path = TempPath::new("cred");
        let listener = UnixListener::bind(&*path)?;
        let (client, server) = connected(&listener, &path).await?;
        for s in [&client, &server] {
            let cred = s.peer_cred()?;
            assert_eq!((cred.pid().expect("pid"), (cred.uid(), cred.gid())), me);
        }
        Ok(())
    }
}

/// This process's effective uid and gid.
fn own_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid take no arguments and cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

rt_test! {
    async fn connecting_to_a_removed_socket_file_says_so() -> io::Result<()> {
        let path = TempPath::new("removed");
        let listener = UnixListener::bind(&*path)?;
        let (_c, _s) = connected(&listener, &path).await?;
        std::fs::remove_file(&*path)?;
        let err = UnixStream::connect(&*path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&*path.to_string_lossy()), "the message names the path: {msg}");
        assert!(msg.contains("socket file does not exist"), "{msg}");
        // A path that never existed reads the same.
        let never = TempPath::new("never");
        let err = UnixStream::connect(&*never).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("socket file does not exist"), "{err}");
        Ok(())
    }
}

rt_test! {
    async fn a_socket_file_without_a_listener_is_refused() -> io::Result<()> {
        let path = TempPath::new("stale");
        drop(UnixListener::bind(&*path)?);
        assert!(path.exists(), "the socket file outlives its listener, as with std");
        let err = UnixStream::connect(&*path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        assert!(err.to_string().contains("no socket is listening"), "{err}");
        // A regular file in the way is refused too.
        let file = TempPath::new("regular");
        std::fs::write(&*file, b"not a socket")?;
        let err = UnixStream::connect(&*file).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        Ok(())
    }
}

rt_test! {
    async fn binding_over_an_existing_file_is_addr_in_use() -> io::Result<()> {
        let path = TempPath::new("inuse");
        let _listener = UnixListener::bind(&*path)?;
        let err = UnixListener::bind(&*path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&*path.to_string_lossy()), "the message names the path: {msg}");
        assert!(msg.contains("already exists"), "{msg}");
        // Removing the stale file is what makes binding work again.
        drop(_listener);
        std::fs::remove_file(&*path)?;
        let _again = UnixListener::bind(&*path)?;
        Ok(())
    }
}

rt_test! {
    async fn bad_paths_are_invalid_input() -> io::Result<()> {
        let long = std::env::temp_dir().join("x".repeat(200));
        assert_err_kind(UnixListener::bind(&long).map(drop), ErrorKind::InvalidInput, "long bind");
        assert_err_kind(UnixStream::connect(&long).await.map(drop), ErrorKind::InvalidInput, "long connect");
        let nul = Path::new(std::ffi::OsStr::new("/tmp/a\0b"));
        let err = UnixListener::bind(nul).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("NUL"), "{err}");
        Ok(())
    }
}

rt_test! {
    async fn closing_the_listener_wakes_accept_and_refuses_connections() -> io::Result<()> {
        let path = TempPath::new("close");
        let listener = Arc::new(UnixListener::bind(&*path)?);
        let (accept, parked) = signal_pending({
            let listener = listener.clone();
            async move { listener.accept().await.map(drop) }
        });
        let acceptor = runtime::spawn(accept);
        parked.await.expect("accept parked");
        listener.close()?;
        let res = timeout(Duration::from_secs(10), acceptor).await.expect("accept woke");
        assert!(res.expect("task").is_err(), "accept after close fails");
        assert!(listener.accept().await.is_err(), "later accepts fail too");
        assert_err_kind(
            UnixStream::connect(&*path).await.map(drop),
            ErrorKind::ConnectionRefused,
            "connect after close",
        );
        Ok(())
    }
}

rt_test! {
    async fn connect_waits_while_the_accept_queue_is_full() -> io::Result<()> {
        let path = TempPath::new("backlog");
        let listener = UnixListener::bind(&*path)?;
        // The smallest queue: one pending connection, then EAGAIN.
        // SAFETY: `listen` on a live socket descriptor we own.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
        let first = UnixStream::connect(&*path).await?;
        let mut second = Box::pin(UnixStream::connect(&*path));
        assert!(poll_once(&mut second).is_pending(), "the second connect waits for room");
        // Bounded by a timeout, it gives up cleanly.
        assert!(timeout(Duration::from_millis(50), UnixStream::connect(&*path)).await.is_err());
        let (s1, _) = listener.accept().await?;
        let second = timeout(Duration::from_secs(10), second).await.expect("second connected")?;
        let (s2, _) = listener.accept().await?;
        first.write_all(b"1").await?;
        second.write_all(b"2").await?;
        let (mut x, mut y) = ([0u8; 1], [0u8; 1]);
        s1.read_exact(&mut x).await?;
        s2.read_exact(&mut y).await?;
        assert_eq!((&x, &y), (b"1", b"2"));
        Ok(())
    }
}

rt_test! {
    async fn from_std_streams_and_listeners_work() -> io::Result<()> {
        let path = TempPath::new("std");
        let listener = UnixListener::from_std(std::os::unix::net::UnixListener::bind(&*path)?)?;
        let client = UnixStream::from_std(std::os::unix::net::UnixStream::connect(&*path)?)?;
        let (server, _) = listener.accept().await?;
        client.write_all(b"std").await?;
        let mut buf = [0u8; 3];
        server.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"std");
        // A parked read on a from_std stream is woken like any other.
        let (read, parked) = signal_pending(async move {
            let mut buf = [0u8; 4];
            client.read_exact(&mut buf).await.map(|_| buf)
        });
        let reader = runtime::spawn(read);
        parked.await.expect("the read parked");
        server.write_all(b"back").await?;
        assert_eq!(&reader.await.expect("reader")?, b"back");
        Ok(())
    }
}

rt_test! {
    async fn split_halves_move_one_mib_each_way_from_two_tasks() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        let (ar, aw) = a.into_split();
        let (br, bw) = b.into_split();
        let (to_b, to_a) = (pattern(11, 1 << 20), pattern(12, 1 << 20));
        let tasks = [
            runtime::spawn({
                let data = to_b.clone();
                async move { aw.write_all(&data).await.map(|()| Vec::new()) } // drop: shutdown
            }),
            runtime::spawn({
                let data = to_a.clone();
                async move { bw.write_all(&data).await.map(|()| Vec::new()) }
            }),
            runtime::spawn(async move { read_to_end(&ar).await }),
            runtime::spawn(async move { read_to_end(&br).await }),
        ];
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("task")?);
        }
        // Each write half shut down its direction when dropped, so each
        // reader saw end of stream right after the last byte.
        assert_bytes_eq(&results[2], &to_a, "a received");
        assert_bytes_eq(&results[3], &to_b, "b received");
        Ok(())
    }
}

rt_test! {
    async fn split_halves_reunite_and_forget() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        let (c, _d) = UnixStream::pair()?;
        let (ar, aw) = a.into_split();
        let (cr, cw) = c.into_split();
        // Halves of different streams do not reunite; both come back.
        let err = ar.reunite(cw).unwrap_err();
        assert!(err.to_string().contains("different streams"));
        let (ar, cw) = (err.0, err.1);
        let a = ar.reunite(aw).expect("same stream");
        let _c = cr.reunite(cw).expect("same stream");
        // Reuniting did not shut anything down.
        a.write_all(b"whole").await?;
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"whole");
        // forget: no shutdown until the read half goes too.
        let (ar, aw) = a.into_split();
        aw.forget();
        b.set_read_deadline(Some(Instant::now() + Duration::from_millis(30)))?;
        assert_err_kind(b.read(&mut buf).await, ErrorKind::TimedOut, "no end of stream yet");
        drop(ar);
        b.set_read_deadline(None)?;
        assert_eq!(b.read(&mut buf).await?, 0, "end of stream once both halves are gone");
        Ok(())
    }
}

rt_test! {
    async fn futures_io_copy_echoes_one_mib() -> io::Result<()> {
        let path = TempPath::new("futures-io");
        let listener = UnixListener::bind(&*path)?;
        let server = runtime::spawn(async move {
            let (s, _) = listener.accept().await?;
            // An echo server written with futures-io alone.
            let (mut r, mut w) = (&s, &s);
            let n = futures_util::io::copy(&mut r, &mut w).await?;
            AsyncWriteExt::close(&mut w).await?;
            Ok::<_, io::Error>(n)
        });
        let client = UnixStream::connect(&*path).await?;
        let (r, mut w) = client.into_split();
        let data = pattern(13, 1 << 20);
        let send = async {
            let mut src = futures_util::io::Cursor::new(data.clone());
            let n = futures_util::io::copy(&mut src, &mut w).await?;
            w.close().await?; // the owned write half's close: shut down
            Ok::<_, io::Error>(n)
        };
        let recv = async {
            let mut got = Vec::new();
            let mut r = r;
            AsyncReadExt::read_to_end(&mut r, &mut got).await?;
            Ok::<_, io::Error>(got)
        };
        let (sent, got) = join(send, recv).await;
        assert_eq!(sent?, 1 << 20);
        assert_bytes_eq(&got?, &data, "copied back");
        assert_eq!(server.await.expect("server")?, 1 << 20);
        Ok(())
    }
}

rt_test! {
    async fn read_and_verify_in_small_chunks() -> io::Result<()> {
        // Many short reads and writes: the short-transfer readiness shortcut
        // must never lose an edge.
        let (a, b) = UnixStream::pair()?;
        let data = pattern(14, 200_000);
        let writer = runtime::spawn({
            let data = data.clone();
            async move {
                for chunk in data.chunks(777) {
                    a.write_all(chunk).await?;
                }
                Ok::<_, io::Error>(a)
            }
        });
        read_and_verify(&b, &data, 1000).await?;
        drop(writer.await.expect("writer")?);
        assert_eq!(b.read(&mut [0u8; 1]).await?, 0);
        Ok(())
    }
}
