//! UDP: `send_to`/`recv_from`, `connect`/`send`/`recv`, parking,
//! truncation, errors reported through `EPOLLERR`, and an echo server with
//! many concurrent clients.

#[macro_use]
mod support;

use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use gopark::net::UdpSocket;
use gopark::runtime::{self, time::timeout, Direction};
use support::data::pattern;
use support::future::signal_pending;
use support::net::{assert_err_kind, closed_udp_port};

rt_test! {
    async fn send_to_and_recv_from() -> io::Result<()> {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        let (a_addr, b_addr) = (a.local_addr()?, b.local_addr()?);
        assert_eq!(a.send_to(b"hello", b_addr).await?, 5);
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await?;
        assert_eq!((&buf[..n], from), (&b"hello"[..], a_addr));
        // An empty datagram is a datagram.
        assert_eq!(b.send_to(&[], a_addr).await?, 0);
        let (n, from) = a.recv_from(&mut buf).await?;
        assert_eq!((n, from), (0, b_addr));
        // A datagram longer than the buffer is truncated; the rest is lost,
        // and the next receive gets the next datagram.
        let big = pattern(1, 1000);
        a.send_to(&big, b_addr).await?;
        a.send_to(b"next", b_addr).await?;
        let mut small = [0u8; 10];
        let (n, _) = b.recv_from(&mut small).await?;
        assert_eq!(&small[..n], &big[..10]);
        let (n, _) = b.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"next");
        Ok(())
    }
}

rt_test! {
    async fn recv_parks_until_a_datagram_arrives() -> io::Result<()> {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = Arc::new(UdpSocket::bind("127.0.0.1:0")?);
        let b2 = b.clone();
        let (recv, parked) = signal_pending(async move {
            let mut buf = [0u8; 64];
            let (n, from) = b2.recv_from(&mut buf).await?;
            Ok::<_, io::Error>((buf[..n].to_vec(), from))
        });
        let receiver = runtime::spawn(recv);
        parked.await.expect("receiver parked");
        a.send_to(b"wake up", b.local_addr()?).await?;
        let (got, from) = receiver.await.expect("receiver task")?;
        assert_eq!((got.as_slice(), from), (&b"wake up"[..], a.local_addr()?));
        Ok(())
    }
}

rt_test! {
    async fn connect_send_recv() -> io::Result<()> {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        let stranger = UdpSocket::bind("127.0.0.1:0")?;
        a.connect(b.local_addr()?).await?;
        b.connect(a.local_addr()?).await?;
        assert_eq!(a.peer_addr()?, b.local_addr()?);
        assert_eq!(a.send(b"ping").await?, 4);
        let mut buf = [0u8; 64];
        let n = b.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"ping");
        // A connected socket only receives from its peer.
        stranger.send_to(b"not for you", a.local_addr()?).await?;
        b.send(b"pong").await?;
        let n = a.recv(&mut buf).await?;
        assert_eq!(&buf[..n], b"pong");
        assert!(
            timeout(Duration::from_millis(50), a.recv(&mut buf)).await.is_err(),
            "the stranger's datagram was delivered"
        );
        Ok(())
    }
}

rt_test! {
    async fn icmp_refusal_wakes_a_connected_receiver() -> io::Result<()> {
        // A datagram to a closed port comes back as ICMP port unreachable:
        // the connected socket's receive fails with ConnectionRefused
        // (an EPOLLERR edge must wake the parked receiver).
        let a = Arc::new(UdpSocket::bind("127.0.0.1:0")?);
        a.connect(closed_udp_port()?).await?;
        let a2 = a.clone();
        let (recv, parked) = signal_pending(async move { a2.recv(&mut [0u8; 16]).await });
        let receiver = runtime::spawn(recv);
        parked.await.expect("receiver parked");
        a.send(b"anyone?").await?;
        let res = timeout(Duration::from_secs(5), receiver)
            .await
            .expect("the error wakes the receiver")
            .expect("receiver task");
        assert_err_kind(res, ErrorKind::ConnectionRefused, "recv after ICMP unreachable");
        Ok(())
    }
}

rt_test! {
    async fn recv_deadline() -> io::Result<()> {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let d = Instant::now() + Duration::from_millis(30);
        a.poll_desc().set_deadline(Direction::Read, Some(d))?;
        assert_err_kind(a.recv_from(&mut [0u8; 16]).await, ErrorKind::TimedOut, "recv_from");
        assert!(Instant::now() >= d, "fired early");
        a.poll_desc().set_deadline(Direction::Read, None)?;
        a.send_to(b"self", a.local_addr()?).await?;
        let mut buf = [0u8; 16];
        let (n, _) = a.recv_from(&mut buf).await?;
        assert_eq!(&buf[..n], b"self");
        Ok(())
    }
}

const CLIENTS: usize = 50;
const ROUND_TRIPS: usize = 20;

rt_test! {
    async fn echo_server_with_many_clients() -> io::Result<()> {
        let server = UdpSocket::bind("127.0.0.1:0")?;
        let addr = server.local_addr()?;
        let echo = runtime::spawn(async move {
            let mut buf = vec![0u8; 65536];
            for _ in 0..CLIENTS * ROUND_TRIPS {
                let (n, from) = server.recv_from(&mut buf).await?;
                server.send_to(&buf[..n], from).await?;
            }
            Ok::<_, io::Error>(())
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                runtime::spawn(async move {
                    let sock = UdpSocket::bind("127.0.0.1:0")?;
                    sock.connect(addr).await?;
                    let mut buf = vec![0u8; 65536];
                    for r in 0..ROUND_TRIPS {
                        // One datagram of at most 1200 bytes in flight per
                        // client: 50 of them fit the server's default
                        // receive buffer, so loopback never drops one.
                        let size = 1 + (i * 7919 + r * 104_729) % 1200;
                        let msg = pattern((i * ROUND_TRIPS + r) as u64, size);
                        assert_eq!(sock.send(&msg).await?, size);
                        let n = sock.recv(&mut buf).await?;
                        support::data::assert_bytes_eq(&buf[..n], &msg, "echoed datagram");
                    }
                    Ok::<_, io::Error>(())
                })
            })
            .collect();
        for c in join_all(clients).await {
            c.expect("client task")?;
        }
        echo.await.expect("echo task")?;
        Ok(())
    }
}

rt_test! {
    async fn largest_datagrams() -> io::Result<()> {
        // Up to the IPv4 maximum (65,507 bytes), one at a time.
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        a.connect(b.local_addr()?).await?;
        b.connect(a.local_addr()?).await?;
        let mut buf = vec![0u8; 65536];
        for (i, size) in [1, 1472, 1473, 9000, 65_507].into_iter().enumerate() {
            let msg = pattern(i as u64, size);
            assert_eq!(a.send(&msg).await?, size);
            let n = b.recv(&mut buf).await?;
            support::data::assert_bytes_eq(&buf[..n], &msg, "large datagram");
        }
        // One byte more than fits is refused by the kernel, not truncated.
        let too_big = vec![0u8; 65_508];
        assert!(a.send(&too_big).await.is_err());
        Ok(())
    }
}
