//! A descriptor number reused by a new socket must not inherit anything of
//! the old one: not its pending readiness events, not its deadline timer.
//!
//! The kernel hands out the lowest free descriptor number, so closing A and
//! opening B at once gives B A's number (and, in the netpoller, most likely
//! A's slab slot under a new generation). This file holds a single test
//! that runs its worker counts one after the other: no other test thread
//! opens descriptors in between, so the reuse is deterministic.
//!
//! Where a stale event can come from: deregistering a socket removes it
//! from the epoll interest list, and with it any event the kernel still
//! queued for it. What remains are the events an `epoll_wait` returned just
//! before, which the netpoll thread (or a worker's non-blocking look)
//! dispatches after a new socket took the slot. The token's generation
//! must drop them. Each round closes a socket while events for it are in
//! flight (a flood, then the peer's FIN) and registers the next one at
//! once: B in A's slot, and at the end of the round the next round's A in
//! B's. Each fresh socket has its read readiness used up at once, then
//! every batch the netpoller held is let through, and its `PollDesc` is
//! asked whether the read half became ready with nothing sent to it. A
//! stale FIN is the loudest witness: `EPOLLRDHUP` keeps a read half ready
//! for good.

mod support;

use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use gopark::net::{Shutdown, TcpListener, TcpStream};
use gopark::runtime::{self, time::sleep, time::timeout, Direction};
use support::data::pattern;
use support::future::{poll_once, signal_pending};
use support::net::pair_on;

const ROUNDS: usize = 200;
const TIMER_ROUNDS: usize = 5;
/// Bytes of the flood read from A before it is dropped.
const DRAIN: usize = 256 * 1024;

/// Uses up the read readiness a fresh registration starts with: a read of
/// a socket nobody wrote to gets `EAGAIN`, which marks the half not ready.
fn use_up_read_readiness(s: &TcpStream, what: &str) {
    let mut buf = [0u8; 1];
    let mut read = std::pin::pin!(s.read(&mut buf));
    assert!(
        matches!(poll_once(&mut read), Poll::Pending),
        "{what}: a read of a socket nobody wrote to completed"
    );
}

/// Waits until the netpoller has dispatched every batch of events it took
/// from epoll before this call:
///
/// 1. A timer armed now fires on the netpoll thread, which dispatches the
///    events of each `epoll_wait` before it fires the timers that are due.
/// 2. A readiness caused now on `probe` (its reader parked first, so only
///    an epoll event can wake it) comes from an `epoll_wait` made after
///    this call; a worker's non-blocking look dispatches its batch before
///    the next worker may look.
async fn settle(probe: &(TcpStream, TcpStream)) -> io::Result<()> {
    sleep(Duration::from_millis(1)).await;
    let (probe, probe_peer) = probe;
    let mut one = [0u8; 1];
    let (read, parked) = signal_pending(probe.read(&mut one));
    let (n, ()) = futures_util::future::join(read, async {
        parked.await.expect("the probe's read parks");
        probe_peer.write_all(b"p").await.expect("probe write");
    })
    .await;
    assert_eq!(n?, 1, "probe byte");
    Ok(())
}

/// After [`use_up_read_readiness`] and with nothing sent to `s` since:
/// lets every event the netpoller holds through, then asserts that none of
/// them made `s`'s read half ready.
async fn assert_no_stale_event(
    s: &TcpStream,
    probe: &(TcpStream, TcpStream),
    what: &str,
) -> io::Result<()> {
    settle(probe).await?;
    let mut ready = std::pin::pin!(s.poll_desc().ready(Direction::Read));
    match poll_once(&mut ready) {
        Poll::Pending => Ok(()),
        Poll::Ready(r) => panic!("{what}: a fresh socket's read half is ready: {r:?}"),
    }
}

async fn body() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let flood = pattern(99, 64 * 1024);
    let probe = pair_on(&listener).await?;
    let mut reused = 0;
    for round in 0..ROUNDS {
        // A: registered just after the last round's B went away with its
        // peer's FIN in flight.
        let (a, a_peer) = pair_on(&listener).await?;
        use_up_read_readiness(&a, &format!("round {round}, A"));
        assert_no_stale_event(&a, &probe, &format!("round {round}, A")).await?;

        // A's peer floods it, so read-readiness events for A's token keep
        // coming while A is dropped.
        let a_peer = Arc::new(a_peer);
        let flooder = runtime::spawn({
            let (a_peer, flood) = (a_peer.clone(), flood.clone());
            async move {
                // Ends with an error once the peer shut down or A is gone.
                while a_peer.write(&flood).await.is_ok() {}
            }
        });
        // A is read as fast as the flood comes, then its peer's FIN is
        // sent, and B replaces A within the same poll of this task.
        let (b, a_fd) = runtime::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut drained = 0;
            while drained < DRAIN {
                match a.read(&mut buf).await? {
                    0 => return Err(io::Error::other("the flood ended")),
                    n => drained += n,
                }
            }
            a_peer.shutdown(Shutdown::Write)?;
            let a_fd = a.as_raw_fd();
            if round < TIMER_ROUNDS {
                // A also has a deadline timer pending when it goes away.
                a.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))?;
            }
            drop(a);
            // B: connected at once (a loopback connect to a listening
            // port completes in the call), most likely on A's descriptor
            // number and slot.
            let b = TcpStream::from_std(std::net::TcpStream::connect(addr)?)?;
            use_up_read_readiness(&b, &format!("round {round}, B"));
            Ok::<_, io::Error>((b, a_fd))
        })
        .await
        .expect("swap task")?;
        let (b_peer, _) = listener.accept().await?;
        if b.as_raw_fd() == a_fd {
            reused += 1;
        }
        assert_no_stale_event(&b, &probe, &format!("round {round}, B")).await?;

        let mut buf = [0u8; 256];
        if round < TIMER_ROUNDS {
            // A's deadline (20 ms) must not time B out.
            let res = timeout(Duration::from_millis(60), b.read(&mut buf)).await;
            match res {
                Err(_) => {}
                Ok(Err(e)) if e.kind() == ErrorKind::TimedOut => {
                    panic!("round {round}: the old socket's deadline timed out the new one")
                }
                Ok(other) => panic!("round {round}: read on the new socket: {other:?}"),
            }
        }
        // B gets exactly its own bytes.
        let msg = format!("round {round}");
        b_peer.write_all(msg.as_bytes()).await?;
        let mut got = vec![0u8; msg.len()];
        b.read_exact(&mut got).await?;
        assert_eq!(got, msg.as_bytes(), "round {round}");
        let mut more = Box::pin(b.read(&mut buf));
        assert!(
            matches!(poll_once(&mut more), Poll::Pending),
            "round {round}: bytes beyond B's own"
        );
        drop(more);
        timeout(Duration::from_secs(5), flooder)
            .await
            .expect("the flooder stops once its peer shut down")
            .expect("flooder task");
        // B's peer goes first: its FIN is on its way to B as B is dropped,
        // and the next round's A takes B's slot at once.
        drop(b_peer);
    }
    eprintln!("descriptor number reused in {reused} of {ROUNDS} rounds");
    assert!(
        reused >= ROUNDS / 2,
        "the descriptor number was reused in only {reused} of {ROUNDS} rounds"
    );
    Ok(())
}

#[test]
fn stale_events_and_timers_never_reach_a_reused_fd() {
    for workers in support::rt::WORKERS {
        support::rt::run_io(workers, "fd reuse", Duration::from_secs(60), body);
    }
}
