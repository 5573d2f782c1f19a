//! Go-style deadlines on a connection's read and write halves: they fire
//! not early and not much late, fail at once when already past, clear with
//! `None`, can be renewed after a timeout, and reach an operation already
//! parked when set from another task.
//!
//! Lower bounds are strict (a deadline never fires early); upper bounds are
//! generous, since the machine is shared.

#[macro_use]
mod support;

use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use gopark::net::{Shutdown, TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout, Direction};
use support::data::pattern;
use support::future::{poll_once, signal_pending};
use support::net::{assert_err_kind, pair};

/// How late a deadline may fire on a busy machine.
const LATE: Duration = Duration::from_millis(1000);

#[track_caller]
fn assert_fired_on_time(deadline: Instant, what: &str) {
    let now = Instant::now();
    assert!(now >= deadline, "{what}: fired {:?} early", deadline - now);
    assert!(
        now - deadline < LATE,
        "{what}: fired {:?} after the deadline",
        now - deadline
    );
}

#[track_caller]
fn assert_timed_out_now<F>(fut: F, what: &str)
where
    F: std::future::Future<Output = io::Result<usize>>,
{
    let mut fut = Box::pin(fut);
    match poll_once(&mut fut) {
        Poll::Ready(Err(e)) if e.kind() == ErrorKind::TimedOut => {}
        other => panic!("{what}: expected TimedOut on the first poll, got {other:?}"),
    }
}

rt_test! {
    async fn read_deadline_fires_on_time() -> io::Result<()> {
        let (c, _s) = pair().await?;
        for ms in [1u64, 30, 120] {
            let deadline = Instant::now() + Duration::from_millis(ms);
            c.set_read_deadline(Some(deadline))?;
            assert_err_kind(c.read(&mut [0u8; 16]).await, ErrorKind::TimedOut, "read");
            assert_fired_on_time(deadline, &format!("{ms} ms read deadline"));
            // Every later read fails too, at once, until a new deadline.
            assert_timed_out_now(c.read(&mut [0u8; 16]), "read after the deadline");
        }
        Ok(())
    }
}

rt_test! {
    async fn past_deadline_fails_at_once() -> io::Result<()> {
        let (c, s) = pair().await?;
        let past = Instant::now() - Duration::from_secs(1);
        c.set_read_deadline(Some(past))?;
        assert_timed_out_now(c.read(&mut [0u8; 16]), "read, past deadline");
        // Even with data waiting, as in Go.
        s.write_all(b"data").await?;
        assert_timed_out_now(c.read(&mut [0u8; 16]), "read, past deadline, data waiting");
        assert_timed_out_now(c.peek(&mut [0u8; 16]), "peek, past deadline");
        // A deadline of exactly now has passed too.
        c.set_write_deadline(Some(Instant::now()))?;
        assert_timed_out_now(c.write(b"x"), "write, deadline now");
        // The data is still there once the deadline is lifted.
        c.set_deadline(None)?;
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"data");
        c.write_all(b"x").await?;
        Ok(())
    }
}

rt_test! {
    async fn none_clears_the_deadline() -> io::Result<()> {
        let (c, s) = pair().await?;
        c.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))?;
        assert_err_kind(c.read(&mut [0u8; 16]).await, ErrorKind::TimedOut, "read");
        c.set_read_deadline(None)?;
        // No deadline: the read stays parked (the runtime timeout, not a
        // deadline, ends the wait) ...
        assert!(timeout(Duration::from_millis(100), c.read(&mut [0u8; 16])).await.is_err());
        // ... and completes when data comes.
        s.write_all(b"late").await?;
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"late");
        Ok(())
    }
}

rt_test! {
    async fn new_deadline_after_a_timeout() -> io::Result<()> {
        let (c, s) = pair().await?;
        let c = Arc::new(c);
        for round in 0..3u8 {
            let d = Instant::now() + Duration::from_millis(30);
            c.set_read_deadline(Some(d))?;
            assert_err_kind(c.read(&mut [0u8; 16]).await, ErrorKind::TimedOut, "short deadline");
            assert_fired_on_time(d, "short deadline");
            // A far deadline makes the half usable again: a parked read
            // completes with data.
            c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)))?;
            let c2 = c.clone();
            let (read, parked) = signal_pending(async move {
                let mut b = [0u8; 1];
                c2.read_exact(&mut b).await.map(|()| b[0])
            });
            let reader = runtime::spawn(read);
            parked.await.expect("reader parked");
            s.write_all(&[round]).await?;
            assert_eq!(reader.await.expect("reader task")?, round);
        }
        Ok(())
    }
}

rt_test! {
    async fn stale_deadline_timer_does_not_fire() -> io::Result<()> {
        let (c, s) = pair().await?;
        // Armed for 30 ms, then moved 30 s away before it fires: the first
        // timer is stale and must not time the read out.
        c.set_read_deadline(Some(Instant::now() + Duration::from_millis(30)))?;
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)))?;
        let res = timeout(Duration::from_millis(200), c.read(&mut [0u8; 16])).await;
        assert!(res.is_err(), "the read ended: {res:?}");
        // Same with a write deadline re-armed under a parked read: the
        // directions have separate timers.
        c.set_write_deadline(Some(Instant::now() + Duration::from_millis(10)))?;
        let res = timeout(Duration::from_millis(100), c.read(&mut [0u8; 16])).await;
        assert!(res.is_err(), "a write deadline ended a read: {res:?}");
        assert_timed_out_now(c.write(b"x"), "write past its deadline");
        s.write_all(b"ok").await?;
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ok");
        Ok(())
    }
}

/// Parks a read on `c` in its own task; returns the task once it parked.
async fn parked_reader(c: Arc<TcpStream>) -> runtime::JoinHandle<(io::Result<usize>, Instant)> {
    let (read, parked) = signal_pending(async move {
        let res = c.read(&mut [0u8; 16]).await;
        (res, Instant::now())
    });
    let reader = runtime::spawn(read);
    parked.await.expect("reader parked");
    reader
}

rt_test! {
    async fn deadline_set_from_another_task_wakes_a_parked_reader() -> io::Result<()> {
        let (c, _s) = pair().await?;
        let c = Arc::new(c);

        // Already past: the parked read fails at once.
        let reader = parked_reader(c.clone()).await;
        let set_at = Instant::now();
        c.set_read_deadline(Some(set_at))?;
        let (res, woke) = reader.await.expect("reader task");
        assert_err_kind(res, ErrorKind::TimedOut, "parked read, past deadline");
        assert!(woke - set_at < LATE, "woken {:?} after the deadline was set", woke - set_at);

        // No deadline, then one 50 ms ahead: the netpoller, asleep with no
        // timer, must wake up for it.
        c.set_read_deadline(None)?;
        let reader = parked_reader(c.clone()).await;
        let d = Instant::now() + Duration::from_millis(50);
        c.set_read_deadline(Some(d))?;
        let (res, _) = reader.await.expect("reader task");
        assert_err_kind(res, ErrorKind::TimedOut, "parked read, new deadline");
        assert_fired_on_time(d, "deadline set while parked");

        // A far deadline shortened while parked.
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(60)))?;
        let reader = parked_reader(c.clone()).await;
        let d = Instant::now() + Duration::from_millis(40);
        c.set_read_deadline(Some(d))?;
        let (res, _) = reader.await.expect("reader task");
        assert_err_kind(res, ErrorKind::TimedOut, "parked read, shortened deadline");
        assert_fired_on_time(d, "shortened deadline");

        // A near deadline extended while parked fires at the new time.
        c.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))?;
        let reader = parked_reader(c.clone()).await;
        let d = Instant::now() + Duration::from_millis(150);
        c.set_read_deadline(Some(d))?;
        let (res, _) = reader.await.expect("reader task");
        assert_err_kind(res, ErrorKind::TimedOut, "parked read, extended deadline");
        assert_fired_on_time(d, "extended deadline");
        Ok(())
    }
}

rt_test! {
    async fn write_deadline_with_a_full_send_buffer() -> io::Result<()> {
        let (c, s) = pair().await?;
        // The peer does not read: writes fill the buffers and park, until
        // the deadline fails the parked write.
        let data = pattern(11, 1 << 20);
        let d = Instant::now() + Duration::from_millis(100);
        c.set_write_deadline(Some(d))?;
        let mut written = 0usize;
        let err = loop {
            let off = written % data.len();
            match c.write(&data[off..]).await {
                Ok(n) => written += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
        assert_fired_on_time(d, "write deadline");
        assert!(written > 0);
        // Reads are not affected by the write deadline.
        s.write_all(b"r").await?;
        let mut one = [0u8; 1];
        c.read_exact(&mut one).await?;
        // Lift it, let the peer drain, and finish: every byte reported as
        // written arrived, exactly once and in order.
        c.set_write_deadline(None)?;
        let tail = (written % data.len())..data.len();
        let total = written + tail.len();
        let drain = runtime::spawn(async move {
            // Reads never ask past `total`: end of stream is checked on its own.
            let mut buf = vec![0u8; 64 * 1024];
            let mut pos = 0usize;
            while pos < total {
                let want = (total - pos).min(buf.len());
                let n = s.read(&mut buf[..want]).await?;
                assert!(n > 0, "EOF after {pos} of {total} bytes");
                for &b in &buf[..n] {
                    assert_eq!(b, data_byte(pos), "byte {pos}");
                    pos += 1;
                }
            }
            assert_eq!(s.read(&mut buf).await?, 0, "nothing past the bytes written");
            Ok::<_, io::Error>(pos)
        });
        c.write_all(&data[tail]).await?;
        c.shutdown(Shutdown::Write)?;
        let received = timeout(Duration::from_secs(10), drain)
            .await
            .expect("drain finishes")
            .expect("drain task")?;
        assert_eq!(received, total);
        Ok(())
    }
}

/// Byte `pos` of `pattern(11, 1 MiB)` repeated.
fn data_byte(pos: usize) -> u8 {
    thread_local! {
        static DATA: Vec<u8> = pattern(11, 1 << 20);
    }
    DATA.with(|d| d[pos % d.len()])
}

rt_test! {
    async fn deadlines_on_a_listener() -> io::Result<()> {
        // Through the listener's PollDesc: accept fails with TimedOut and
        // works again once the deadline is lifted.
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let d = Instant::now() + Duration::from_millis(30);
        listener.poll_desc().set_deadline(Direction::Read, Some(d))?;
        assert_err_kind(listener.accept().await.map(|_| ()), ErrorKind::TimedOut, "accept");
        assert_fired_on_time(d, "accept deadline");
        listener.poll_desc().set_deadline(Direction::Read, None)?;
        let (c, s) = support::net::pair_on(&listener).await?;
        assert_eq!(c.local_addr()?, s.peer_addr()?);
        Ok(())
    }
}
