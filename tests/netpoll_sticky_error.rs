//! An error or hang-up reported by epoll never turns `EAGAIN` into a
//! retry loop: once the error was read, the next operation that would
//! block parks its task like any other, lets its timeout fire, and burns no
//! CPU while it waits.
//!
//! Each case waits on a runtime of its own, whose threads carry a name no
//! other test uses, so the CPU its threads spend during the wait can be
//! read from `/proc/self/task` and bounded: a task that spins inside its
//! poll never lets the timeout fire at all (the watchdog aborts the run), a
//! task that spins through the scheduler fires it but shows up as CPU time.

mod support;

use std::ffi::CString;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use gopark::net::{TcpListener, TcpStream, UdpSocket};
use gopark::runtime::{self, time::timeout, PollDesc};
use support::net::closed_udp_port;
use support::{fd, threads};

/// How long each case lets a parked operation wait.
const WAIT: Duration = Duration::from_millis(300);

/// CPU the runtime's threads may spend while one task waits for `WAIT`, in
/// clock ticks (10 ms): parked, it is nothing; a task that retries
/// `EAGAIN` without parking gets at least a third of a core even beside a
/// CPU hog on each core, i.e. 10 ticks or more.
const MAX_WAIT_TICKS: u64 = 5;

/// Runs `body` on a one-worker runtime named `name` (at most 15 bytes, the
/// kernel's limit for thread names), under a runtime timeout and a
/// watchdog (twice that), which ends a body that spins inside its poll.
fn run<Fut>(name: &str, body: impl FnOnce() -> Fut)
where
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    assert!(name.len() <= 8, "thread names are cut at 15 bytes");
    support::rt::run_io(1, name, Duration::from_secs(10), body);
}

/// Awaits `op` for [`WAIT`], expecting it to park until the timeout fires,
/// and checks what the runtime's threads (`name…`) spent meanwhile.
async fn parks<T: std::fmt::Debug>(
    name: &str,
    what: &str,
    op: impl std::future::Future<Output = io::Result<T>>,
) {
    let before = threads::usage(name).cpu_ticks;
    let start = Instant::now();
    let res = timeout(WAIT, op).await;
    let waited = start.elapsed();
    let spent = threads::usage(name).cpu_ticks - before;
    assert!(res.is_err(), "{what}: expected to park, got {res:?}");
    assert!(waited >= WAIT, "{what}: timed out early, after {waited:?}");
    assert!(
        spent <= MAX_WAIT_TICKS,
        "{what}: the runtime spent {spent} clock ticks of CPU in {waited:?} while the task \
         should have been parked"
    );
}

#[test]
fn udp_connected_recv_after_icmp_error_parks() {
    const NAME: &str = "udpconn";
    run(NAME, || async {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.connect(closed_udp_port()?).await?;
        sock.send(b"anyone?").await?;
        // The port-unreachable error arrives as EPOLLERR; the next receive
        // reports it, once.
        let mut buf = [0u8; 64];
        let err = timeout(Duration::from_secs(10), sock.recv(&mut buf))
            .await
            .expect("the ICMP error is reported")
            .expect_err("nobody answers");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        // The error is used up: the next receive has nothing to read.
        parks(NAME, "recv after ConnectionRefused", sock.recv(&mut buf)).await;
        // And the socket still works: a second error comes the same way.
        sock.send(b"still nobody?").await?;
        let err = timeout(Duration::from_secs(10), sock.recv(&mut buf))
            .await
            .expect("the second ICMP error is reported")
            .expect_err("nobody answers");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        parks(NAME, "recv after the second error", sock.recv(&mut buf)).await;
        Ok(())
    });
}

#[test]
fn udp_unconnected_recv_after_send_to_closed_port_parks() {
    const NAME: &str = "udpfree";
    run(NAME, || async {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        let peer = UdpSocket::bind("127.0.0.1:0")?;
        sock.send_to(b"anyone?", closed_udp_port()?).await?;
        let mut buf = [0u8; 64];
        parks(
            NAME,
            "recv_from after a send_to a closed port",
            sock.recv_from(&mut buf),
        )
        .await;
        // A datagram that does arrive wakes it.
        peer.send_to(b"here", sock.local_addr()?).await?;
        let (n, from) = timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
            .await
            .expect("the datagram arrives")?;
        assert_eq!(&buf[..n], b"here");
        assert_eq!(from, peer.local_addr()?);
        Ok(())
    });
}

#[test]
fn tcp_after_reset_fails_every_operation_without_spinning() {
    const NAME: &str = "tcprst";
    run(NAME, || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        // SO_LINGER 0: close sends a reset instead of a FIN.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a live socket and a `linger` of the size given.
        let rc = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        drop(client);
        let mut buf = [0u8; 64];
        let first = timeout(Duration::from_secs(10), server.read(&mut buf))
            .await
            .expect("the reset is reported");
        assert_eq!(first.expect_err("reset").kind(), ErrorKind::ConnectionReset);
        // After the reset every operation completes at once, with end of
        // stream or an error, however often it is tried; none blocks.
        let before = threads::usage(NAME).cpu_ticks;
        for _ in 0..100 {
            let n = timeout(Duration::from_secs(10), server.read(&mut buf))
                .await
                .expect("a read after a reset does not block");
            assert_eq!(
                n.expect_err("reads after a reset fail").kind(),
                ErrorKind::ConnectionReset
            );
            let err = timeout(Duration::from_secs(10), server.write(b"x"))
                .await
                .expect("a write after a reset does not block")
                .expect_err("writing to a reset connection fails");
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
                ),
                "{err} ({:?})",
                err.kind()
            );
        }
        let spent = threads::usage(NAME).cpu_ticks - before;
        assert!(
            spent <= 50,
            "200 failed operations took {spent} clock ticks"
        );
        Ok(())
    });
}

/// A FIFO's reader sees a hang-up when the last writer closes; when a
/// writer opens it again, a read that finds no data must park, not spin on
/// the hang-up it saw before.
#[test]
fn fifo_reader_parks_after_writer_goes_away_and_comes_back() {
    const NAME: &str = "fifo";
    let dir = std::env::temp_dir().join(format!("gopark-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("pipe");
    let cpath = CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o600) }, 0);
    let open = move |flags: libc::c_int| -> io::Result<OwnedFd> {
        // SAFETY: a NUL-terminated path; the result is checked.
        let fd = unsafe { libc::open(cpath.as_ptr(), flags | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    run(NAME, move || async move {
        let reader = PollDesc::new(open(libc::O_RDONLY)?)?;
        let mut buf = [0u8; 64];

        // Each step below waits for its own readiness edge, so the hang-up
        // is certainly seen by the netpoller before a writer comes back
        // (epoll re-checks a FIFO when it reports it, and a writer that is
        // back already would hide the hang-up).
        let writer = open(libc::O_WRONLY)?;
        // The read parks first (join polls it first), then the data comes.
        let (n, ()) = futures_util::future::join(fd::pd_read(&reader, &mut buf), async {
            runtime::yield_now().await;
            fd::write_now(&writer, b"first");
        })
        .await;
        assert_eq!(n?, 5);
        assert_eq!(&buf[..5], b"first");
        // The writer goes away while the next read is parked: it wakes to
        // the hang-up and reads end of stream.
        let (n, ()) = futures_util::future::join(fd::pd_read(&reader, &mut buf), async {
            runtime::yield_now().await;
            drop(writer);
        })
        .await;
        assert_eq!(n?, 0, "end of stream once the writer left");

        // A writer comes back: no data yet, so the read must park.
        let writer = open(libc::O_WRONLY)?;
        parks(
            NAME,
            "read from a FIFO whose writer came back",
            fd::pd_read(&reader, &mut buf),
        )
        .await;
        // Data wakes it.
        let waiter = async {
            timeout(Duration::from_secs(10), fd::pd_read(&reader, &mut buf))
                .await
                .expect("the data arrives")
        };
        let (n, ()) = futures_util::future::join(waiter, async {
            runtime::yield_now().await;
            fd::write_now(&writer, b"second");
        })
        .await;
        assert_eq!(n?, 6);
        assert_eq!(&buf[..6], b"second");
        Ok(())
    });
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}
