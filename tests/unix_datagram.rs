//! Unix domain datagram sockets through the public API: bound, unbound,
//! connected and paired sockets, abstract addresses, senders that park on
//! a full receiver, deadlines, and the errors that name a path.

#[macro_use]
mod support;

use std::io::{self, ErrorKind};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gopark::net::{Shutdown, UnixDatagram};
use gopark::runtime::{self, time::timeout};
use support::data::pattern;
use support::future::signal_pending;
use support::net::assert_err_kind;
use support::unix::TempPath;

/// Datagram `i` of a numbered sequence: its index, then `len - 8` bytes
/// of a pattern seeded by the index.
fn datagram(i: u64, len: usize) -> Vec<u8> {
    let mut d = i.to_le_bytes().to_vec();
    d.extend_from_slice(&pattern(i, len.saturating_sub(8)));
    d
}

rt_test! {
    async fn bound_sockets_exchange_datagrams_and_reply_by_address() -> io::Result<()> {
        let (pa, pb) = (TempPath::new("dgram-a"), TempPath::new("dgram-b"));
        let a = UnixDatagram::bind(&*pa)?;
        let b = UnixDatagram::bind(&*pb)?;
        assert_eq!(a.local_addr()?.as_pathname(), Some(&*pa));
        assert_eq!(a.send_to(b"ping", &*pb).await?, 4);
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await?;
        assert_eq!((&buf[..n], from.as_pathname()), (&b"ping"[..], Some(&*pa)));
        // Reply to the address recv_from gave.
        assert_eq!(b.send_to_addr(b"pong", &from).await?, 4);
        let (n, from) = a.recv_from(&mut buf).await?;
        assert_eq!((&buf[..n], from.as_pathname()), (&b"pong"[..], Some(&*pb)));
        Ok(())
    }
}

rt_test! {
    async fn an_unbound_sender_is_unnamed() -> io::Result<()> {
        let path = TempPath::new("dgram-server");
        let server = UnixDatagram::bind(&*path)?;
        let client = UnixDatagram::unbound()?;
        assert!(client.local_addr()?.is_unnamed());
        client.send_to(b"anonymous", &*path).await?;
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"anonymous");
        assert!(from.is_unnamed(), "{from:?}");
        Ok(())
    }
}

rt_test! {
    async fn connected_sockets_use_send_and_recv() -> io::Result<()> {
        let (ps, pc) = (TempPath::new("dgram-srv"), TempPath::new("dgram-cli"));
        let server = UnixDatagram::bind(&*ps)?;
        let client = UnixDatagram::bind(&*pc)?;
        client.connect(&*ps)?;
        assert_eq!(client.peer_addr()?.as_pathname(), Some(&*ps));
        client.send(b"hello").await?;
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"hello");
        server.connect_addr(&from)?;
        server.send(b"world").await?;
        assert_eq!(client.recv(&mut buf).await?, 5);
        assert_eq!(&buf[..5], b"world");
        // A connected socket ignores other senders.
        let stranger = UnixDatagram::unbound()?;
        stranger.send_to(b"ignored", &*pc).await.map(drop).unwrap_err();
        Ok(())
    }
}

rt_test! {
    async fn pairs_keep_boundaries_truncate_and_carry_empty_datagrams() -> io::Result<()> {
        let (a, b) = UnixDatagram::pair()?;
        assert!(a.local_addr()?.is_unnamed() && a.peer_addr()?.is_unnamed());
        a.send(b"one").await?;
        a.send(b"").await?;
        a.send(b"three, which is too long").await?;
        let mut buf = [0u8; 16];
        assert_eq!(b.recv(&mut buf).await?, 3);
        assert_eq!(&buf[..3], b"one");
        assert_eq!(b.recv(&mut buf).await?, 0, "an empty datagram");
        let mut small = [0u8; 5];
        assert_eq!(b.recv(&mut small).await?, 5, "truncated to the buffer");
        assert_eq!(&small, b"three");
        // The rest of a truncated datagram is gone, not left for the next recv.
        b.send(b"next").await?;
        assert_eq!(a.recv(&mut buf).await?, 4);
        assert_eq!(&buf[..4], b"next");
        Ok(())
    }
}

rt_test! {
    async fn abstract_addresses() -> io::Result<()> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("gopark-dgram-{}-{n}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
        let server = UnixDatagram::bind_addr(&addr)?;
        assert_eq!(server.local_addr()?.as_abstract_name(), Some(name.as_bytes()));
        let client = UnixDatagram::unbound()?;
        client.send_to_addr(b"abstract", &addr).await?;
        let mut buf = [0u8; 16];
        let (n, _) = server.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"abstract");
        let err = UnixDatagram::bind_addr(&addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        assert!(err.to_string().contains(&format!("@{name}")), "{err}");
        drop(server);
        // Released with the socket: nothing is there any more.
        let err = client.send_to_addr(b"x", &addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        // An unbound client bound to an unnamed address gets a name picked
        // by the kernel (Linux's autobind).
        let auto = UnixDatagram::bind_addr(&UnixDatagram::unbound()?.local_addr()?)?;
        assert!(auto.local_addr()?.as_abstract_name().is_some());
        Ok(())
    }
}

rt_test! {
    async fn errors_name_the_path() -> io::Result<()> {
        let path = TempPath::new("dgram-gone");
        let client = UnixDatagram::unbound()?;
        let err = client.send_to(b"x", &*path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        assert!(err.to_string().contains("socket file does not exist"), "{err}");
        let err = client.connect(&*path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        // A socket file whose socket has gone.
        drop(UnixDatagram::bind(&*path)?);
        let err = client.send_to(b"x", &*path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        assert!(err.to_string().contains("no socket is bound"), "{err}");
        // Binding over it.
        let err = UnixDatagram::bind(&*path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse, "{err}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
        Ok(())
    }
}

rt_test! {
    async fn sending_to_a_closed_peer_is_refused() -> io::Result<()> {
        let (a, b) = UnixDatagram::pair()?;
        drop(b);
        assert_err_kind(a.send(b"x").await, ErrorKind::ConnectionRefused, "send to a closed peer");
        // The kernel forgets the dead peer: the socket is unconnected now.
        assert_err_kind(a.send(b"x").await, ErrorKind::NotConnected, "send again");
        Ok(())
    }
}

rt_test! {
    async fn a_connected_sender_parks_on_a_full_receiver_and_resumes() -> io::Result<()> {
        // Far more than the receiver's queue holds (net.unix.max_dgram_qlen
        // and the socket buffer), so the sender parks many times.
        const COUNT: u64 = 5_000;
        let (a, b) = UnixDatagram::pair()?;
        let sender = runtime::spawn(async move {
            for i in 0..COUNT {
                let d = datagram(i, 64 + (i as usize % 512));
                assert_eq!(a.send(&d).await?, d.len());
            }
            Ok::<_, io::Error>(a)
        });
        let mut buf = vec![0u8; 1024];
        for i in 0..COUNT {
            let n = b.recv(&mut buf).await?;
            assert_eq!(&buf[..n], &datagram(i, 64 + (i as usize % 512))[..], "datagram {i}");
        }
        drop(sender.await.expect("sender")?);
        Ok(())
    }
}

rt_test! {
    async fn an_unconnected_sender_parks_on_a_full_receiver_and_resumes() -> io::Result<()> {
        const COUNT: u64 = 3_000;
        let path = TempPath::new("dgram-full");
        let server = UnixDatagram::bind(&*path)?;
        let target = path.to_path_buf();
        let sender = runtime::spawn(async move {
            let client = UnixDatagram::unbound()?;
            for i in 0..COUNT {
                client.send_to(&datagram(i, 200), &target).await?;
            }
            Ok::<_, io::Error>(())
        });
        let mut buf = vec![0u8; 256];
        for i in 0..COUNT {
            let (n, _) = server.recv_from(&mut buf).await?;
            assert_eq!(&buf[..n], &datagram(i, 200)[..], "datagram {i}");
        }
        sender.await.expect("sender")?;
        Ok(())
    }
}

rt_test! {
    async fn deadlines_fail_receives_and_sends() -> io::Result<()> {
        let (a, b) = UnixDatagram::pair()?;
        let deadline = Instant::now() + Duration::from_millis(30);
        a.set_read_deadline(Some(deadline))?;
        assert_err_kind(a.recv(&mut [0u8; 8]).await, ErrorKind::TimedOut, "recv");
        assert!(Instant::now() >= deadline, "the deadline never fires early");
        b.send(b"late").await?;
        assert_err_kind(a.recv_from(&mut [0u8; 8]).await.map(drop), ErrorKind::TimedOut, "recv_from after");
        a.set_read_deadline(None)?;
        let mut buf = [0u8; 8];
        assert_eq!(a.recv(&mut buf).await?, 4);
        // Fill b's queue, then a send with a passed write deadline fails.
        let (fill, parked) = signal_pending(async {
            loop {
                a.send(&[0u8; 1024]).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        });
        let set = async {
            parked.await.expect("sender parked on the full queue");
            a.set_write_deadline(Some(Instant::now()))
        };
        let (sent, set) = futures_util::future::join(fill, set).await;
        set?;
        assert_err_kind(sent, ErrorKind::TimedOut, "send to a full queue");
        Ok(())
    }
}

rt_test! {
    async fn deadline_set_from_another_task_fails_a_parked_recv() -> io::Result<()> {
        let (a, _b) = UnixDatagram::pair()?;
        let a = Arc::new(a);
        let (recv, parked) = signal_pending({
            let a = a.clone();
            async move { a.recv(&mut [0u8; 8]).await }
        });
        let receiver = runtime::spawn(recv);
        parked.await.expect("recv parked");
        a.set_read_deadline(Some(Instant::now() + Duration::from_millis(10)))?;
        let res = timeout(Duration::from_secs(10), receiver).await.expect("recv woke");
        assert_err_kind(res.expect("task"), ErrorKind::TimedOut, "parked recv");
        Ok(())
    }
}

rt_test! {
    async fn shutdown_stops_sending() -> io::Result<()> {
        let (a, b) = UnixDatagram::pair()?;
        a.shutdown(Shutdown::Write)?;
        assert_err_kind(a.send(b"x").await, ErrorKind::BrokenPipe, "send after shutdown");
        b.send(b"still").await?;
        let mut buf = [0u8; 8];
        assert_eq!(a.recv(&mut buf).await?, 5);
        Ok(())
    }
}
