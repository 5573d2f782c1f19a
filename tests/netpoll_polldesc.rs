//! `PollDesc` through its public API: `close()` wakes parked operations
//! with an error, a user makes a pipe async with it, and the runtime's
//! registration count follows descriptors in and out.

#[macro_use]
mod support;

use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gopark::net::{TcpListener, TcpStream, UdpSocket};
use gopark::runtime::{self, time::timeout, Builder, Direction, PollDesc};
use support::data::{assert_bytes_eq, pattern};
use support::fd;
use support::future::signal_pending;
use support::net::pair;
use support::rt::handle;

/// How long a wake-up may take on a busy machine.
const QUICK: Duration = Duration::from_millis(1000);

#[track_caller]
fn assert_closed_error<T: std::fmt::Debug>(res: io::Result<T>, what: &str) {
    match res {
        Err(e) if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut => {}
        other => panic!("{what}: expected the closed-descriptor error, got {other:?}"),
    }
}

rt_test! {
    async fn close_wakes_a_parked_reader() -> io::Result<()> {
        let (c, _s) = pair().await?;
        let c = Arc::new(c);
        let c2 = c.clone();
        let (read, parked) = signal_pending(async move {
            let res = c2.read(&mut [0u8; 16]).await;
            (res, Instant::now())
        });
        let reader = runtime::spawn(read);
        parked.await.expect("reader parked");
        let closed_at = Instant::now();
        c.poll_desc().close();
        let (res, woke) = reader.await.expect("reader task");
        assert_closed_error(res, "parked read after close");
        assert!(woke - closed_at < QUICK, "woken {:?} after close", woke - closed_at);
        assert!(c.poll_desc().is_closed());
        // Later operations fail at once; the descriptor itself stays open
        // until the stream is dropped.
        assert_closed_error(c.read(&mut [0u8; 16]).await, "read after close");
        assert_closed_error(c.write(b"x").await, "write after close");
        assert!(c.local_addr().is_ok(), "close() does not close the fd");
        Ok(())
    }
}

rt_test! {
    async fn close_wakes_a_parked_writer_and_a_parked_accept() -> io::Result<()> {
        let (c, _s) = pair().await?;
        let c = Arc::new(c);
        let c2 = c.clone();
        // Writes until the peer's window and our buffer are full, and parks.
        let (write, parked) = signal_pending(async move {
            let chunk = pattern(1, 1 << 20);
            loop {
                c2.write_all(&chunk).await?;
            }
            #[allow(unreachable_code)]
            Ok::<_, io::Error>(())
        });
        let writer = runtime::spawn(write);
        parked.await.expect("writer parked on a full buffer");
        c.poll_desc().close();
        let res = timeout(QUICK, writer).await.expect("close wakes the writer");
        assert_closed_error(res.expect("writer task"), "parked write after close");

        let listener = Arc::new(TcpListener::bind("127.0.0.1:0")?);
        let l2 = listener.clone();
        let (accept, parked) = signal_pending(async move { l2.accept().await.map(|_| ()) });
        let acceptor = runtime::spawn(accept);
        parked.await.expect("accept parked");
        listener.poll_desc().close();
        let res = timeout(QUICK, acceptor).await.expect("close wakes the accept");
        assert_closed_error(res.expect("accept task"), "parked accept after close");
        Ok(())
    }
}

/// A pipe made async by a user, with nothing but the public `PollDesc`.
struct Pipe {
    pd: PollDesc,
}

impl Pipe {
    fn new() -> io::Result<(Pipe, Pipe)> {
        let (r, w) = fd::pipe()?;
        Ok((
            Pipe {
                pd: PollDesc::new_nonblocking(r)?,
            },
            Pipe {
                pd: PollDesc::new_nonblocking(w)?,
            },
        ))
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        fd::pd_read(&self.pd, buf).await
    }

    async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        fd::pd_write(&self.pd, buf).await
    }

    /// The same read, written with `ready` / `clear_ready` by hand.
    async fn read_by_hand(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let ev = self.pd.ready(Direction::Read).await?;
            match fd::read(&self.pd, buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.pd.clear_ready(ev),
                res => return res,
            }
        }
    }
}

rt_test! {
    async fn a_pipe_made_async_with_poll_desc() -> io::Result<()> {
        let (r, w) = Pipe::new()?;
        // 4 MiB through a 64 KiB pipe: the writer parks on a full pipe and
        // the reader on an empty one, many times over.
        let data = Arc::new(pattern(42, 4 << 20));
        let writer = {
            let data = data.clone();
            runtime::spawn(async move {
                let mut off = 0;
                while off < data.len() {
                    off += w.write(&data[off..]).await?;
                }
                // Dropping the write end: the reader sees end of file.
                drop(w);
                Ok::<_, io::Error>(())
            })
        };
        let mut got = Vec::with_capacity(data.len());
        let mut buf = vec![0u8; 10_007];
        let mut by_hand = false;
        loop {
            let n = if by_hand {
                r.read_by_hand(&mut buf).await?
            } else {
                r.read(&mut buf).await?
            };
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            by_hand = !by_hand;
        }
        assert_bytes_eq(&got, &data, "bytes through the pipe");
        writer.await.expect("writer task")?;

        // Deadlines work on any PollDesc.
        let (r, _w) = Pipe::new()?;
        let d = Instant::now() + Duration::from_millis(30);
        r.pd.set_read_deadline(Some(d))?;
        support::net::assert_err_kind(r.read(&mut buf).await, ErrorKind::TimedOut, "pipe read");
        assert!(Instant::now() >= d);
        Ok(())
    }
}

rt_test! {
    async fn pipe_hangup_wakes_a_parked_reader() -> io::Result<()> {
        let (r, w) = Pipe::new()?;
        let (read, parked) = signal_pending(async move { r.read(&mut [0u8; 16]).await });
        let reader = runtime::spawn(read);
        parked.await.expect("reader parked");
        drop(w);
        let res = timeout(QUICK, reader).await.expect("hang-up wakes the reader");
        assert_eq!(res.expect("reader task")?, 0);

        // And the other way: a writer parked on a full pipe whose reader
        // goes away fails with EPIPE (and no SIGPIPE kills us).
        let (r, w) = Pipe::new()?;
        let (write, parked) = signal_pending(async move {
            let chunk = [7u8; 65536];
            loop {
                w.write(&chunk).await?;
            }
            #[allow(unreachable_code)]
            Ok::<_, io::Error>(())
        });
        let writer = runtime::spawn(write);
        parked.await.expect("writer parked");
        drop(r);
        let res = timeout(QUICK, writer).await.expect("hang-up wakes the writer");
        support::net::assert_err_kind(res.expect("writer task"), ErrorKind::BrokenPipe, "write");
        Ok(())
    }
}

rt_test! {
    async fn num_poll_descs_follows_registrations() -> io::Result<()> {
        let h = handle();
        let base = h.num_poll_descs();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        assert_eq!(h.num_poll_descs(), base + 1);
        let (c, s) = support::net::pair_on(&listener).await?;
        assert_eq!(h.num_poll_descs(), base + 3);
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let (r, w) = Pipe::new()?;
        assert_eq!(h.num_poll_descs(), base + 6);
        // A refused connect registers nothing for long.
        let refused = TcpStream::connect(support::net::closed_port()?).await;
        assert!(refused.is_err());
        assert_eq!(h.num_poll_descs(), base + 6);
        // close() fails operations but keeps the registration until drop.
        c.poll_desc().close();
        assert_eq!(h.num_poll_descs(), base + 6);
        drop((c, s, udp, r));
        assert_eq!(h.num_poll_descs(), base + 2);
        // into_fd deregisters and hands back a working descriptor.
        let fd = w.pd.into_fd();
        assert_eq!(h.num_poll_descs(), base + 1);
        // SAFETY: fcntl on the live descriptor we own.
        assert!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) } >= 0);
        drop(fd);
        drop(listener);
        assert_eq!(h.num_poll_descs(), base);
        Ok(())
    }
}

#[test]
fn io_in_block_on_outside_the_workers() {
    // The future of `block_on` runs on the test thread, not on a worker:
    // the netpoller must wake that thread too.
    for workers in support::rt::WORKERS {
        let dog = support::rt::Watchdog::start("block_on io", Duration::from_secs(30));
        let rt = Builder::new().worker_threads(workers).build().unwrap();
        let res: io::Result<()> = rt.block_on(async {
            let (c, s) = pair().await?;
            let writer = runtime::spawn(async move {
                runtime::time::sleep(Duration::from_millis(20)).await;
                s.write_all(b"to the block_on thread").await?;
                Ok::<_, io::Error>(s)
            });
            let mut buf = [0u8; 22];
            timeout(Duration::from_secs(10), c.read_exact(&mut buf)).await??;
            assert_eq!(&buf, b"to the block_on thread");
            writer.await.expect("writer")?;
            Ok(())
        });
        drop(rt);
        dog.disarm();
        res.unwrap();
    }
}
