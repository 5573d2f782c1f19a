//! A descriptor number reused by a new socket must not inherit anything of
//! the old one: not its pending readiness events, not its deadline timer.
//!
//! The kernel hands out the lowest free descriptor number, so closing A and
//! opening B at once gives B A's number (and, in the netpoller, most likely
//! A's slab slot under a new generation). This file holds a single test
//! that runs its worker counts one after the other: no other test thread
//! opens descriptors in between, so the reuse is deterministic.

mod support;

use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::task::Poll;
use std::time::{Duration, Instant};

use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout};
use support::data::pattern;
use support::future::poll_once;
use support::net::pair_on;

const ROUNDS: usize = 200;
const TIMER_ROUNDS: usize = 5;

async fn body() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let flood = pattern(99, 64 * 1024);
    let mut reused = 0;
    for round in 0..ROUNDS {
        // A: its peer floods it, so read-readiness events for A's token
        // keep coming while A is dropped.
        let (a, a_peer) = pair_on(&listener).await?;
        let flood = flood.clone();
        let flooder = runtime::spawn(async move {
            // Ends with an error once A is gone (reset).
            while a_peer.write(&flood).await.is_ok() {}
        });
        let mut one = [0u8; 1];
        a.peek(&mut one).await?; // data has reached A
        let a_fd = a.as_raw_fd();
        if round < TIMER_ROUNDS {
            // A also has a deadline timer pending when it goes away.
            a.set_read_deadline(Some(Instant::now() + Duration::from_millis(20)))?;
        }
        drop(a);

        // B: created at once, most likely on A's descriptor number.
        let b = TcpStream::connect(listener.local_addr()?).await?;
        let (b_peer, _) = listener.accept().await?;
        if b.as_raw_fd() == a_fd {
            reused += 1;
        }
        // Nothing was sent to B: its read parks, whatever stale event for
        // A the netpoller still holds.
        let mut buf = [0u8; 256];
        let mut read = Box::pin(b.read(&mut buf));
        assert!(
            matches!(poll_once(&mut read), Poll::Pending),
            "round {round}: a read on the fresh socket completed"
        );
        drop(read);
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
            .expect("the flooder stops once A is reset")
            .expect("flooder task");
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
        support::rt::run_io(workers, "fd reuse", Duration::from_secs(30), body);
    }
}
