//! Faults and limits (issue 5): a reset in the middle of a stream, SIGPIPE
//! at its default disposition, half-closed sockets that must not spin,
//! close and past deadlines waking a parked reader promptly, empty reads
//! that never park, connections reset in the accept queue, and running out
//! of descriptors with clients waiting.
//!
//! Each test prints its figure on a `FIGURE` line (`--nocapture`). The
//! SIGPIPE and EMFILE scenarios run in child processes: the test binary
//! re-executes itself (`--exact <child test>`) with an environment variable
//! naming the role; without it the child tests return at once.

mod support;

use std::future::Future;
use std::io::{self, ErrorKind, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use gopark::net::{Shutdown, TcpListener, TcpStream};
use gopark::runtime::{self, time::sleep, time::timeout, Handle, JoinHandle, Runtime};
use support::data::{first_difference, pattern};
use support::future::{signal_pending, OnDrop};
use support::net::{linger_zero, pair_on, reset};
use support::proc::{cpu_time, fd_count, OutOfFiles};
use support::rt::{quiet_panics, run_io, serial, Watchdog};
use support::stats::{figure, Stats};
use support::{child, threads};

const ROLE: &str = "GOPARK_RELIABILITY_ROLE";

// ---------------------------------------------------------------------
// RST mid-stream.
// ---------------------------------------------------------------------

/// How the reader's side of one reset connection went.
#[derive(Debug, Default)]
struct ResetOutcome {
    /// Bytes read (all correct) before the error.
    bytes: usize,
    /// Writes that succeeded after the read error, before one failed.
    writes_ok: usize,
}

/// The server streams seeded data and resets the connection after `sent`
/// bytes (the client's own bytes still unread), while the client reads and
/// checks everything.
/// The client's reads end in `ConnectionReset`, never `Ok(0)`; its writes
/// fail within 2 calls after that.
async fn reset_mid_stream(listener: &TcpListener, sent: usize) -> io::Result<ResetOutcome> {
    let (c, s) = pair_on(listener).await?;
    let data = Arc::new(pattern(sent as u64, sent.max(1)));
    let d = data.clone();
    c.write_all(b"never read").await?;
    let server = runtime::spawn(async move {
        // The client's bytes are never read: unread data makes the close a
        // reset on its own; SO_LINGER 0 makes sure of it.
        s.write_all(&d[..sent]).await?;
        reset(s)
    });
    let mut out = ResetOutcome::default();
    let mut buf = vec![0u8; 64 * 1024];
    let err = loop {
        match c.read(&mut buf).await {
            Ok(0) => panic!(
                "a reset {sent} bytes into the stream was reported as end of stream after {} \
                 bytes",
                out.bytes
            ),
            Ok(n) => {
                assert!(out.bytes + n <= sent, "more bytes than were sent");
                if let Some(at) = first_difference(&buf[..n], &data[out.bytes..out.bytes + n]) {
                    panic!("byte {} of the stream differs", out.bytes + at);
                }
                out.bytes += n;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(
        err.kind(),
        ErrorKind::ConnectionReset,
        "read after a reset {sent} bytes in: {err}"
    );
    server.await.expect("server task")?;
    // The reset was seen: writes fail within 2 calls (none may succeed
    // twice), with no SIGPIPE.
    let mut failed = None;
    for _ in 0..2 {
        match c.write(b"after the reset").await {
            Ok(_) => out.writes_ok += 1,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let e = failed.unwrap_or_else(|| panic!("2 writes after a reset succeeded"));
    assert!(
        matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
        "write after reset: {e} ({:?})",
        e.kind()
    );
    Ok(out)
}

/// Reset points: before any data, inside the first segment, around the
/// socket buffers, and far past them (the writer parks, then resets).
const RESET_AT: [usize; 8] = [
    0,
    1,
    1_000,
    65_536,
    200_000,
    1 << 20,
    3 << 20,
    (6 << 20) + 17,
];

#[test]
fn reset_mid_stream_is_an_error_never_eof() {
    let _serial = serial();
    for workers in [1, 2] {
        let outcomes = run_io(workers, "rstmid", Duration::from_secs(60), || async {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let mut outcomes = Vec::new();
            for round in 0..5 {
                for (i, &at) in RESET_AT.iter().enumerate() {
                    let sent = at + round * 7 * i;
                    outcomes.push((sent, reset_mid_stream(&listener, sent).await?));
                }
            }
            Ok(outcomes)
        });
        let lost: usize = outcomes.iter().map(|(s, o)| s - o.bytes).sum();
        let writes_ok: Vec<usize> = outcomes.iter().map(|(_, o)| o.writes_ok).collect();
        figure(
            "faults.rst_mid_stream",
            format!(
                "{workers} worker(s): {} resets mid-stream (0 B to 6 MiB in): every read sequence \
                 ended in ConnectionReset, 0 Ok(0); {lost} bytes sent but not delivered before the \
                 reset; writes that succeeded after the read error: max {} (the next one failed)",
                outcomes.len(),
                writes_ok.iter().max().unwrap()
            ),
        );
    }
}

/// What a victim with a reader task and a writer task saw of a reset.
#[derive(Debug, Default)]
struct DuplexReset {
    read_reset: usize,
    read_eof: usize,
    read_other: usize,
    write_errors: usize,
}

#[test]
fn reset_while_reading_and_writing_at_once() {
    // Both halves busy when the reset lands: one task reads, another
    // writes. The kernel hands the socket's pending ECONNRESET to whichever
    // call comes first and clears it; if the write takes it, a later recv
    // returns 0. The design promises `ConnectionReset`, never `Ok(0)`, so the
    // runtime has to remember the reset for the read half.
    let _serial = serial();
    let tally = run_io(2, "rstdup", Duration::from_secs(60), || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut t = DuplexReset::default();
        for i in 0..100usize {
            let (c, s) = pair_on(&listener).await?;
            let c = Arc::new(c);
            let c2 = c.clone();
            let reader = runtime::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match c2.read(&mut buf).await {
                        Ok(0) => return Ok(0),
                        Ok(_) => {}
                        Err(e) => return Err(e),
                    }
                }
            });
            let c3 = c.clone();
            let writer = runtime::spawn(async move {
                let chunk = vec![7u8; 64 * 1024];
                loop {
                    if let Err(e) = c3.write(&chunk).await {
                        return e;
                    }
                }
            });
            s.write_all(&pattern(i as u64, 1000 + 997 * i)).await?;
            reset(s)?;
            let r = timeout(Duration::from_secs(10), reader)
                .await
                .expect("the reset wakes the reader")
                .expect("reader task");
            let w = timeout(Duration::from_secs(10), writer)
                .await
                .expect("the reset wakes the writer")
                .expect("writer task");
            match r {
                Err(e) if e.kind() == ErrorKind::ConnectionReset => t.read_reset += 1,
                Ok(0) => t.read_eof += 1,
                _ => t.read_other += 1,
            }
            assert!(
                matches!(w.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
                "writer: {w}"
            );
            t.write_errors += 1;
        }
        Ok(t)
    });
    figure(
        "faults.rst_duplex",
        format!(
            "100 resets while one task reads and another writes: reader saw ConnectionReset \
             {} times, Ok(0) {} times, other {}; writer failed {} times",
            tally.read_reset, tally.read_eof, tally.read_other, tally.write_errors
        ),
    );
    assert_eq!(tally.write_errors, 100, "{tally:?}");
    assert_eq!(
        (tally.read_eof, tally.read_other),
        (0, 0),
        "reads after a reset must fail with ConnectionReset: {tally:?}"
    );
}

#[test]
fn read_after_a_write_saw_the_reset_is_not_eof() {
    // The smallest form of the case above, with no race: the peer resets,
    // a write fails with the reset, then a read returns Ok(0).
    let _serial = serial();
    run_io(1, "rstwr", Duration::from_secs(20), || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let (c, s) = pair_on(&listener).await?;
        reset(s)?;
        let mut writes = 0;
        let err = loop {
            match c.write(b"after the reset").await {
                Ok(_) => writes += 1,
                Err(e) => break e,
            }
            assert!(writes < 2, "writes to a reset connection kept succeeding");
        };
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
        match c.read(&mut [0u8; 16]).await {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(()),
            Ok(0) => panic!("read after the reset (seen by a write) returned Ok(0)"),
            other => panic!("read after the reset: {other:?}"),
        }
    });
}

#[test]
fn read_after_another_caller_took_the_reset_is_not_eof() {
    // The race of `reset_while_reading_and_writing_at_once`, made certain:
    // the pending ECONNRESET is taken by a caller that does not tell the
    // stream (`SO_ERROR` through a duplicate descriptor here; a write in
    // another task that has not recorded it yet there), then the stream
    // reads. The kernel answers end of stream; the stream must not.
    let _serial = serial();
    run_io(1, "rsttaken", Duration::from_secs(20), || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let (c, s) = pair_on(&listener).await?;
        reset(s)?;
        let dup = std::net::TcpStream::from(c.as_fd().try_clone_to_owned()?);
        let start = Instant::now();
        let taken = loop {
            // The reset crosses loopback at once, but nothing lets this
            // task await its arrival: poll, bounded.
            if let Some(e) = dup.take_error()? {
                break e;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "no reset arrived");
            sleep(Duration::from_millis(1)).await;
        };
        assert_eq!(taken.kind(), ErrorKind::ConnectionReset, "{taken}");
        match c.read(&mut [0u8; 16]).await {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(0) => panic!("read after the reset (taken elsewhere) returned Ok(0)"),
            other => panic!("read after the reset: {other:?}"),
        }

        // A FIN is still end of stream, and so is the peer's FIN after
        // this side's own (the connection then ends in the same kernel
        // state as after a reset).
        let (c, s) = pair_on(&listener).await?;
        drop(s);
        assert_eq!(c.read(&mut [0u8; 16]).await?, 0, "peer's FIN");
        let (c, s) = pair_on(&listener).await?;
        c.shutdown(Shutdown::Write)?;
        assert_eq!(s.read(&mut [0u8; 16]).await?, 0, "our FIN reached the peer");
        drop(s);
        assert_eq!(c.read(&mut [0u8; 16]).await?, 0, "peer's FIN after ours");
        assert_eq!(c.read(&mut [0u8; 16]).await?, 0, "end of stream stays");
        Ok(())
    });
}

// ---------------------------------------------------------------------
// SIGPIPE at its default disposition.
// ---------------------------------------------------------------------

fn sigpipe_disposition() -> libc::sighandler_t {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null `act`
    // only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old),
            0
        );
        old.sa_sigaction
    }
}

/// The child: `SIGPIPE` back to `SIG_DFL` (Rust programs start with it
/// ignored), then every kind of write to dead connections. If any send
/// raised the signal, the process dies of it.
#[test]
fn sigpipe_child() {
    if std::env::var(ROLE).as_deref() != Ok("sigpipe") {
        return;
    }
    // SAFETY: setting a signal's disposition to its default; no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_eq!(sigpipe_disposition(), libc::SIG_DFL);
    let rt = support::rt::runtime(2, "sigpipe");
    let ignored_by_runtime = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut failures = 0;
        for i in 0..50u32 {
            let (c, s) = pair_on(&listener).await.unwrap();
            if i % 2 == 0 {
                reset(s).unwrap();
            } else {
                // A plain close: the first write draws a reset, the next
                // one fails with EPIPE — the case that raises SIGPIPE.
                drop(s);
            }
            let data = pattern(u64::from(i), 100_000);
            for attempt in 0..10 {
                let res = match (i / 2 + attempt) % 3 {
                    0 => c.write(&data).await,
                    1 => {
                        c.write_vectored(&[IoSlice::new(&data[..10]), IoSlice::new(&data)])
                            .await
                    }
                    _ => {
                        let mut w = &c;
                        futures_util::AsyncWriteExt::write(&mut w, &data).await
                    }
                };
                if res.is_err() {
                    failures += 1;
                    break;
                }
            }
        }
        assert_eq!(failures, 50, "every dead connection's writes failed");
        sigpipe_disposition() == libc::SIG_IGN
    });
    drop(rt);
    println!(
        "\nSIGPIPE_AFTER={}",
        if ignored_by_runtime {
            "ignored by the runtime"
        } else {
            "still SIG_DFL (MSG_NOSIGNAL)"
        }
    );
}

#[test]
fn sigpipe_at_default_disposition_does_not_kill() {
    let _serial = serial();
    let out = child::run(
        child::command("sigpipe_child", &[(ROLE, "sigpipe".to_string())]),
        Duration::from_secs(60),
    );
    out.assert_passed("SIGPIPE child");
    let after = out.value("SIGPIPE_AFTER").unwrap_or_default();
    figure(
        "faults.sigpipe",
        format!(
            "child with SIGPIPE at SIG_DFL wrote (write, writev, AsyncWrite) to 50 reset or \
             closed connections: exit status {}, disposition afterwards: {after}",
            out.status.code().unwrap_or(-1)
        ),
    );
}

// ---------------------------------------------------------------------
// Half-close: parked operations do not spin; shutdown is idempotent.
// ---------------------------------------------------------------------

const HALF_CLOSE_WINDOW: Duration = Duration::from_secs(2);

#[test]
fn half_closed_sockets_do_not_spin() {
    let _serial = serial();
    let name = "halfclose";
    let rt = support::rt::runtime(2, name);
    let dog = Watchdog::start("half-close", Duration::from_secs(60));
    // Set up, in the runtime: a writer parked on a socket whose peer
    // half-closed (and never reads), and a reader parked on a socket that
    // half-closed its own write side.
    let (c, writer, reader, writes) = rt
        .block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let (c, s) = pair_on(&listener).await?;
            s.shutdown(Shutdown::Write)?;
            assert_eq!(c.read(&mut [0u8; 16]).await?, 0, "the FIN arrives");
            let c = Arc::new(c);
            let writes = Arc::new(AtomicUsize::new(0));
            let (w, n) = (c.clone(), writes.clone());
            let (write, parked) = signal_pending(async move {
                let chunk = vec![0x5Au8; 1 << 20];
                loop {
                    match w.write(&chunk).await {
                        Ok(_) => n.fetch_add(1, Ordering::SeqCst),
                        Err(e) => return (e, s),
                    };
                }
            });
            let writer = runtime::spawn(write);
            parked.await.expect("the writer parks on a full buffer");

            let (c2, s2) = pair_on(&listener).await?;
            c2.shutdown(Shutdown::Write)?;
            let (read, parked) = signal_pending(async move {
                let res = c2.read(&mut [0u8; 16]).await;
                (res, c2, s2)
            });
            let reader = runtime::spawn(read);
            parked.await.expect("the reader parks");
            Ok::<_, io::Error>((c, writer, reader, writes))
        })
        .expect("setup");
    let before = threads::usage(name);
    let writes_before = writes.load(Ordering::SeqCst);
    // The measurement window: nothing to await, we want nothing to happen.
    std::thread::sleep(HALF_CLOSE_WINDOW);
    let after = threads::usage(name);
    let (cpu, switches) = after.since(&before);
    let writes_during = writes.load(Ordering::SeqCst) - writes_before;
    let share = cpu.as_secs_f64() / HALF_CLOSE_WINDOW.as_secs_f64();
    figure(
        "faults.half_close",
        format!(
            "writer parked on a socket whose peer half-closed + reader parked on a socket \
             half-closed by itself, over {HALF_CLOSE_WINDOW:?}: runtime threads used {cpu:?} \
             of CPU ({:.3}% of one core), {switches} context switches, {writes_during} writes",
            share * 100.0
        ),
    );
    assert!(
        !writer.is_finished() && !reader.is_finished(),
        "still parked"
    );
    assert_eq!(writes_during, 0, "the parked writer made progress or spun");
    assert!(
        share < 0.02,
        "parked operations on half-closed sockets used {:.2}% of a core",
        share * 100.0
    );

    // shutdown is idempotent, in every direction and after the peer left.
    rt.block_on(async move {
        for how in [Shutdown::Write, Shutdown::Read, Shutdown::Both] {
            c.shutdown(how).expect("shutdown");
            c.shutdown(how).expect("shutdown again");
        }
        let (res, s) = timeout(Duration::from_secs(10), writer)
            .await
            .expect("shutdown ends the parked write")
            .expect("writer task");
        assert!(
            matches!(
                res.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
            ),
            "write after shutdown: {res}"
        );
        drop(s);
        c.shutdown(Shutdown::Both)
            .expect("shutdown after the peer closed");
        reader.abort();
    });
    drop(rt);
    dog.disarm();
}

// ---------------------------------------------------------------------
// Close or a past deadline from another task wakes a parked reader.
// ---------------------------------------------------------------------

const WAKE_TRIALS: usize = 200;

/// Parks a read in its own task; measures how long after `poke` (run from
/// this task once the read is parked) the read returned.
async fn wake_latency(
    c: Arc<TcpStream>,
    poke: impl FnOnce(&TcpStream),
) -> io::Result<(Duration, io::Result<usize>)> {
    let c2 = c.clone();
    let (read, parked) = signal_pending(async move {
        let res = c2.read(&mut [0u8; 16]).await;
        (res, Instant::now())
    });
    let reader: JoinHandle<_> = runtime::spawn(read);
    parked.await.expect("reader parked");
    let poked = Instant::now();
    poke(&c);
    let (res, woke) = timeout(Duration::from_secs(5), reader)
        .await
        .map_err(|_| io::Error::new(ErrorKind::TimedOut, "the poke did not wake the reader"))?
        .expect("reader task");
    Ok((woke.saturating_duration_since(poked), res))
}

#[test]
fn close_or_past_deadline_wakes_a_parked_reader_quickly() {
    let _serial = serial();
    let (closes, deadlines) = run_io(2, "wake", Duration::from_secs(60), || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut closes = Vec::new();
        let mut deadlines = Vec::new();
        let (c, _s) = pair_on(&listener).await?;
        let c = Arc::new(c);
        for _ in 0..WAKE_TRIALS {
            let (c2, _s2) = pair_on(&listener).await?;
            let (took, res) = wake_latency(Arc::new(c2), |c| c.poll_desc().close()).await?;
            assert!(res.is_err(), "read after close: {res:?}");
            closes.push(took);

            c.set_read_deadline(None)?;
            let (took, res) = wake_latency(c.clone(), |c| {
                c.set_read_deadline(Some(Instant::now() - Duration::from_secs(1)))
                    .unwrap()
            })
            .await?;
            assert_eq!(res.unwrap_err().kind(), ErrorKind::TimedOut);
            deadlines.push(took);
        }
        Ok((Stats::new(closes), Stats::new(deadlines)))
    });
    figure(
        "faults.wake.close",
        format!(
            "close from another task -> parked read returns: {}",
            closes.summary()
        ),
    );
    figure(
        "faults.wake.deadline",
        format!(
            "past deadline set from another task -> parked read returns: {}",
            deadlines.summary()
        ),
    );
    let ten = Duration::from_millis(10);
    // The bound is 10 ms; on a shared machine a stray scheduling
    // delay may exceed it once, so the median carries it and p99 gets room.
    // Both hold far beyond a busy machine: the poke wakes the reader from
    // a worker, which runs it as soon as the poking task yields, with no
    // thread to wake (microseconds here, also beside `stress-ng --cpu 2`).
    // A lost wake-up fails the trial outright (5 s).
    for (what, s) in [("close", &closes), ("deadline", &deadlines)] {
        assert!(s.pct(50.0) <= ten, "{what}: {}", s.summary());
        assert!(s.pct(99.0) <= ten * 10, "{what}: {}", s.summary());
    }
}

// ---------------------------------------------------------------------
// read(&mut []) returns Ok(0) without parking.
// ---------------------------------------------------------------------

/// A waker that counts how often it was cloned (stored by a parked
/// operation) and woken.
#[derive(Default)]
struct CountingWaker {
    wakes: AtomicUsize,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `fut` once; returns its result and whether a clone of the waker
/// was kept (by the future or by what it waits on) — i.e. it parked.
fn poll_once_keeps_waker<F: Future>(fut: F) -> (Poll<F::Output>, bool) {
    let counting = Arc::new(CountingWaker::default());
    let waker = Waker::from(counting.clone());
    let mut fut = Box::pin(fut);
    let res = fut.as_mut().poll(&mut Context::from_waker(&waker));
    // Two references are ours: `counting` and `waker`.
    let kept = Arc::strong_count(&counting) > 2;
    drop(fut);
    (res, kept)
}

#[test]
fn empty_read_returns_zero_without_parking() {
    let _serial = serial();
    let cases = run_io(2, "emptyrd", Duration::from_secs(30), || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let mut cases = 0;
        let mut check = |c: &TcpStream, what: &str| {
            let mut empty: [u8; 0] = [];
            let (res, kept) = poll_once_keeps_waker(c.read(&mut empty));
            assert!(
                matches!(res, Poll::Ready(Ok(0))),
                "{what}: read(&mut []) gave {res:?}"
            );
            assert!(!kept, "{what}: read(&mut []) registered a waker (parked)");
            let mut r = c;
            let (res, kept) =
                poll_once_keeps_waker(futures_util::AsyncReadExt::read(&mut r, &mut empty));
            assert!(
                matches!(res, Poll::Ready(Ok(0))),
                "{what}: AsyncRead gave {res:?}"
            );
            assert!(!kept, "{what}: AsyncRead registered a waker");
            cases += 1;
        };
        // Nothing to read (a non-empty read would park).
        let (c, s) = pair_on(&listener).await?;
        let (res, kept) = poll_once_keeps_waker(c.read(&mut [0u8; 1]));
        assert!(res.is_pending() && kept, "a real read parks: {res:?}");
        check(&c, "idle socket");
        // Data waiting: still nothing consumed.
        s.write_all(b"x").await?;
        sleep(Duration::from_millis(1)).await;
        check(&c, "data waiting");
        let mut one = [0u8; 1];
        c.read_exact(&mut one).await?;
        assert_eq!(&one, b"x", "the empty read consumed nothing");
        // A deadline in the past.
        c.set_read_deadline(Some(Instant::now() - Duration::from_secs(1)))?;
        check(&c, "past deadline");
        c.set_read_deadline(None)?;
        // End of stream.
        s.shutdown(Shutdown::Write)?;
        assert_eq!(c.read(&mut [0u8; 4]).await?, 0);
        check(&c, "after end of stream");
        // Reset by the peer.
        let (c2, s2) = pair_on(&listener).await?;
        reset(s2)?;
        let _ = c2.read(&mut [0u8; 4]).await;
        check(&c2, "after a reset");
        // Closed.
        c.poll_desc().close();
        check(&c, "after close");
        drop(s);
        Ok(cases)
    });
    figure(
        "faults.empty_read",
        format!(
            "read(&mut []) and AsyncRead with an empty buffer: Ready(Ok(0)) on the first poll \
             with no waker kept, in {cases} states (idle, data waiting, past deadline, EOF, \
             reset, closed)"
        ),
    );
}

// ---------------------------------------------------------------------
// Connections reset in the accept queue.
// ---------------------------------------------------------------------

#[test]
fn accept_survives_connections_reset_in_the_queue() {
    let _serial = serial();
    let (accepted, reset_seen) = run_io(2, "acceptrst", Duration::from_secs(30), || async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        const DEAD: usize = 200;
        // Clients that connect and reset before the server accepts: their
        // connections die in the accept queue.
        for _ in 0..DEAD {
            let s = std::net::TcpStream::connect(addr)?;
            linger_zero(&s)?;
        }
        // Then one live client.
        let live = TcpStream::connect(addr).await?;
        live.write_all(b"live").await?;
        // accept never fails: dead connections are skipped or handed out
        // (and then fail on use); the live one is reached.
        let (mut accepted, mut reset_seen) = (0usize, 0usize);
        loop {
            let (s, _) = timeout(Duration::from_secs(5), listener.accept())
                .await
                .map_err(|_| io::Error::new(ErrorKind::TimedOut, "accept"))??;
            accepted += 1;
            let mut buf = [0u8; 4];
            match timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await {
                Ok(Ok(())) => {
                    assert_eq!(&buf, b"live");
                    s.write_all(b"ok").await?;
                    break;
                }
                Ok(Err(e)) => {
                    assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                        ),
                        "a dead connection: {e}"
                    );
                    reset_seen += 1;
                }
                Err(_) => panic!("a dead connection's read hung"),
            }
        }
        let mut ok = [0u8; 2];
        live.read_exact(&mut ok).await?;
        Ok((accepted, reset_seen))
    });
    figure(
        "faults.accept_queue_resets",
        format!(
            "200 connections reset in the accept queue, then a live one: accept never failed; \
             {accepted} accepted ({reset_seen} dead ones failing on read), the live one served"
        ),
    );
}

// ---------------------------------------------------------------------
// EMFILE with 50 waiting clients.
// ---------------------------------------------------------------------

const EMFILE_CLIENTS: usize = 50;
const EMFILE_WINDOW: Duration = Duration::from_secs(3);

/// The accept loop of a server that backs off on `EMFILE`/`ENFILE` like the
/// echo example (and Go's `net/http`): 5 ms, doubling to 1 s.
async fn accept_loop(listener: Arc<TcpListener>, failures: Arc<AtomicUsize>) {
    let mut backoff = None::<Duration>;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = None;
                runtime::spawn(async move {
                    let _ = stream.write_all(&peer.port().to_le_bytes()).await;
                });
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                failures.fetch_add(1, Ordering::SeqCst);
                let d = backoff.map_or(Duration::from_millis(5), |d| {
                    (d * 2).min(Duration::from_secs(1))
                });
                backoff = Some(d);
                sleep(d).await;
            }
            Err(e) if listener.poll_desc().is_closed() => {
                let _ = e;
                return;
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn emfile_child() {
    if std::env::var(ROLE).as_deref() != Ok("emfile") {
        return;
    }
    let rt: Runtime = support::rt::runtime(2, "emfile");
    rt.block_on(async {
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        // The clients connect (handshakes complete in the accept queue) and
        // wait for their reply, parked in read.
        let mut clients = Vec::new();
        for _ in 0..EMFILE_CLIENTS {
            let stream = TcpStream::connect(addr).await.unwrap();
            clients.push(runtime::spawn(async move {
                let mut reply = [0u8; 2];
                stream.read_exact(&mut reply).await?;
                assert_eq!(u16::from_le_bytes(reply), stream.local_addr()?.port());
                Ok::<_, io::Error>(Instant::now())
            }));
        }
        // Use up every descriptor below a lowered limit.
        let no_files = OutOfFiles::take(8).unwrap();
        let failures = Arc::new(AtomicUsize::new(0));
        let server = runtime::spawn(accept_loop(listener.clone(), failures.clone()));
        // The window: the loop keeps failing and backing off while 50
        // clients wait. This sleep is the measurement, not a wait for an
        // event.
        let cpu_before = cpu_time();
        sleep(EMFILE_WINDOW).await;
        let cpu = cpu_time() - cpu_before;
        let failed = failures.load(Ordering::SeqCst);
        assert!(!server.is_finished(), "the accept loop is alive");
        // Free descriptors: every waiting client is served.
        drop(no_files);
        let freed = Instant::now();
        let mut last = freed;
        for c in clients {
            let served = timeout(Duration::from_secs(10), c)
                .await
                .expect("served after descriptors are freed")
                .expect("client task")
                .expect("client");
            last = last.max(served);
        }
        let served_in = last - freed;
        // The loop is still alive, and fast again (its backoff reset).
        let late = TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let mut reply = [0u8; 2];
        timeout(Duration::from_secs(5), late.read_exact(&mut reply))
            .await
            .expect("a new client is served")
            .unwrap();
        let late_rtt = start.elapsed();
        listener.close().unwrap();
        timeout(Duration::from_secs(5), server)
            .await
            .expect("close ends the accept loop")
            .unwrap();
        let share = cpu.as_secs_f64() / EMFILE_WINDOW.as_secs_f64();
        figure(
            "faults.emfile",
            format!(
                "{EMFILE_CLIENTS} clients waiting while accept fails with EMFILE for \
                 {EMFILE_WINDOW:?}: {failed} failed accepts (backoff 5 ms doubling to 1 s), \
                 process CPU {cpu:?} ({:.2}% of one core); all {EMFILE_CLIENTS} served \
                 {served_in:.2?} after descriptors were freed; a new client then served in \
                 {late_rtt:.2?}",
                share * 100.0
            ),
        );
        assert!(failed >= 5, "{failed} accept attempts in {EMFILE_WINDOW:?}");
        assert!(share <= 0.05, "{:.2}% of one core", share * 100.0);
        // The loop sleeps at most 1 s between attempts, and serving 50
        // clients after it wakes takes milliseconds (hundreds on a busy
        // machine). The bound catches a loop that stopped retrying or
        // backs off past its 1 s cap, not a busy machine.
        assert!(
            served_in <= Duration::from_secs(3),
            "clients served {served_in:?} after descriptors were freed"
        );
    });
    drop(rt);
}

#[test]
fn emfile_with_waiting_clients_backs_off_and_recovers() {
    let _serial = serial();
    let out = child::run(
        child::command("emfile_child", &[(ROLE, "emfile".to_string())]),
        Duration::from_secs(60),
    );
    out.echo_figures();
    out.assert_passed("EMFILE child");
}

// ---------------------------------------------------------------------
// No leak on any exit path.
// ---------------------------------------------------------------------

/// How cycle `i` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    /// The connecting task is aborted (or its connect times out at once).
    CancelledConnect,
    /// The client task's `JoinHandle` is dropped; it runs detached.
    DroppedJoinHandle,
    /// The client's read times out (a deadline, or a runtime `timeout`
    /// that drops the parked read).
    ReadTimeout,
    /// The server's handler panics with the connection open.
    PanickingHandler,
    /// The client resets the connection.
    PeerReset,
}

fn exit_of(i: u64) -> Exit {
    match i % 5 {
        0 => Exit::CancelledConnect,
        1 => Exit::DroppedJoinHandle,
        2 => Exit::ReadTimeout,
        3 => Exit::PanickingHandler,
        _ => Exit::PeerReset,
    }
}

/// Reads until end of stream or an error; the peer decides when.
async fn drain(stream: &TcpStream) {
    let mut buf = [0u8; 64];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn leak_handler(stream: TcpStream) {
    let mut id = [0u8; 8];
    if stream.read_exact(&mut id).await.is_err() {
        // A cancelled connect: the connection ends before its id.
        return;
    }
    let i = u64::from_le_bytes(id);
    match exit_of(i) {
        Exit::CancelledConnect => unreachable!("a cancelled connect sent its id"),
        Exit::PanickingHandler => panic!("deliberate panic in handler {i}"),
        Exit::ReadTimeout => drain(&stream).await,
        Exit::DroppedJoinHandle | Exit::PeerReset => {
            if stream.write_all(&(i + 1).to_le_bytes()).await.is_ok() {
                drain(&stream).await;
            }
        }
    }
}

async fn leak_client(
    addr: SocketAddr,
    full: SocketAddr,
    i: u64,
    done: futures_channel::mpsc::UnboundedSender<()>,
) {
    let hello = move |stream: TcpStream| async move {
        stream.write_all(&i.to_le_bytes()).await.expect("send id");
        stream
    };
    match exit_of(i) {
        Exit::CancelledConnect => {
            // `full`'s accept queue is full: the SYN is dropped and the
            // connect stays in flight until it is cancelled.
            if i % 2 == 0 {
                let (connect, parked) = signal_pending(TcpStream::connect(full));
                let task = runtime::spawn(connect);
                parked.await.expect("connect parked");
                task.abort();
                let e = task.await.map(|_| ()).unwrap_err();
                assert!(e.is_cancelled(), "{e}");
            } else {
                let res = timeout(Duration::from_millis(1), TcpStream::connect(full)).await;
                assert!(res.is_err(), "connect to a full queue: {res:?}");
            }
            CONNECTS_CANCELLED.fetch_add(1, Ordering::Relaxed);
            let _ = done.unbounded_send(());
        }
        Exit::DroppedJoinHandle => {
            // Detached: it reports from its drop, after its stream closed.
            let guard = OnDrop(move || {
                let _ = done.unbounded_send(());
            });
            drop(runtime::spawn(async move {
                let _guard = guard;
                let stream = hello(TcpStream::connect(addr).await.expect("connect")).await;
                let mut reply = [0u8; 8];
                stream.read_exact(&mut reply).await.expect("reply");
                assert_eq!(u64::from_le_bytes(reply), i + 1);
            }));
        }
        Exit::ReadTimeout => {
            let stream = hello(TcpStream::connect(addr).await.expect("connect")).await;
            if i % 2 == 0 {
                stream
                    .set_read_deadline(Some(Instant::now() + Duration::from_millis(1)))
                    .unwrap();
                let e = stream.read(&mut [0u8; 8]).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::TimedOut);
            } else {
                let r = timeout(Duration::from_millis(1), stream.read(&mut [0u8; 8])).await;
                assert!(r.is_err(), "nothing is sent: {r:?}");
            }
            let _ = done.unbounded_send(());
        }
        Exit::PanickingHandler => {
            let stream = hello(TcpStream::connect(addr).await.expect("connect")).await;
            // The handler's unwinding closes the connection.
            match stream.read(&mut [0u8; 8]).await {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                other => panic!("after the handler panicked: {other:?}"),
            }
            let _ = done.unbounded_send(());
        }
        Exit::PeerReset => {
            let stream = hello(TcpStream::connect(addr).await.expect("connect")).await;
            let mut reply = [0u8; 8];
            stream.read_exact(&mut reply).await.expect("reply");
            reset(stream).unwrap();
            let _ = done.unbounded_send(());
        }
    }
}

/// Connects dropped before they completed.
static CONNECTS_CANCELLED: AtomicUsize = AtomicUsize::new(0);

/// Cycles run at once.
const LEAK_BATCH: u64 = 50;

fn no_leak(cycles: u64) {
    let _serial = serial();
    quiet_panics();
    let dog = Watchdog::start(format!("{cycles} leak cycles"), Duration::from_secs(240));
    let fds_before = fd_count();
    let rt = support::rt::runtime(2, "leak");
    let h = rt.handle().clone();
    let pds_before = h.num_poll_descs();
    let start = Instant::now();
    let (fds_in, fds_out, panics, peak_pds) = rt
        .block_on(async {
            let fds_in = fd_count();
            let listener = Arc::new(TcpListener::bind("127.0.0.1:0")?);
            let addr = listener.local_addr()?;
            // A listener whose accept queue is full (and never accepted):
            // connects to it stay in flight.
            let full = TcpListener::options().backlog(1).bind("127.0.0.1:0")?;
            let full_addr = full.local_addr()?;
            let mut queued = Vec::new();
            while let Ok(s) =
                timeout(Duration::from_millis(100), TcpStream::connect(full_addr)).await
            {
                queued.push(s?);
                assert!(queued.len() < 64, "the accept queue never fills");
            }
            let l = listener.clone();
            let acceptor = runtime::spawn(async move {
                let mut handlers = Vec::new();
                while let Ok((stream, _)) = l.accept().await {
                    handlers.push(runtime::spawn(leak_handler(stream)));
                }
                handlers
            });
            let mut peak_pds = 0;
            for batch in 0..cycles / LEAK_BATCH {
                let (tx, mut rx) = futures_channel::mpsc::unbounded();
                for i in batch * LEAK_BATCH..(batch + 1) * LEAK_BATCH {
                    drop(runtime::spawn(leak_client(addr, full_addr, i, tx.clone())));
                }
                drop(tx);
                for _ in 0..LEAK_BATCH {
                    timeout(
                        Duration::from_secs(30),
                        futures_util::StreamExt::next(&mut rx),
                    )
                    .await
                    .map_err(|_| io::Error::new(ErrorKind::TimedOut, "leak batch"))?
                    .expect("every client reports");
                }
                peak_pds = peak_pds.max(Handle::current().num_poll_descs());
            }
            listener.close()?;
            let handlers = timeout(Duration::from_secs(10), acceptor)
                .await
                .map_err(|_| io::Error::new(ErrorKind::TimedOut, "close ends the acceptor"))?
                .expect("acceptor");
            drop((listener, full, queued));
            let mut panics = 0;
            for hd in handlers {
                match timeout(Duration::from_secs(10), hd).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) if e.is_panic() => panics += 1,
                    Ok(Err(e)) => panic!("handler: {e}"),
                    Err(_) => panic!("a handler never ended"),
                }
            }
            Ok::<_, io::Error>((fds_in, fd_count(), panics, peak_pds))
        })
        .expect("leak cycles");
    let took = start.elapsed();
    // A finished task leaves the owned-task list just after its future is
    // dropped; nothing signals that moment, so poll for it (bounded).
    let settle = Instant::now();
    while h.num_alive_tasks() != 0 && settle.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (pds_after, tasks_after) = (h.num_poll_descs(), h.num_alive_tasks());
    // A handle keeps the runtime's shared state (its epoll and wake
    // descriptors) alive: drop it with the runtime.
    drop(h);
    drop(rt);
    dog.disarm();
    let fds_after = fd_count();
    figure(
        "faults.no_leak",
        format!(
            "{cycles} cycles (cancelled connect, dropped JoinHandle, read timeout, panicking \
             handler, peer RST; {LEAK_BATCH} at once) in {took:.2?}: {} of {} connects cancelled \
             before completing, {panics} handler panics caught; fds {fds_in} -> {fds_out} inside the runtime, {fds_before} -> {fds_after} \
             around it; live PollDescs {pds_before} -> {pds_after} (peak {peak_pds}); live tasks \
             {tasks_after}",
            CONNECTS_CANCELLED.load(Ordering::Relaxed),
            cycles / 5
        ),
    );
    assert_eq!(panics, cycles / 5, "handler panics");
    assert_eq!(fds_out, fds_in, "descriptors after the cycles");
    assert_eq!(pds_after, pds_before, "live PollDescs after the cycles");
    assert_eq!(tasks_after, 0, "live tasks after the cycles");
    assert_eq!(
        fds_after, fds_before,
        "descriptors after the runtime dropped"
    );
}

#[test]
fn no_leak_on_any_exit_path() {
    no_leak(10_000);
}
