//! Timers are driven by the netpoll thread: many at once, never early,
//! cancelled ones gone, and socket deadlines mixed in with sleeps.

#[macro_use]
mod support;

use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use gopark::runtime::{self, time::sleep, time::timeout};
use support::data::pattern;
use support::net::assert_err_kind;
use support::rt::handle;

const SLEEPERS: usize = 10_000;

rt_test! {
    async fn ten_thousand_concurrent_sleeps() -> io::Result<()> {
        let delays = pattern(1, SLEEPERS * 2);
        let start = Instant::now();
        let tasks: Vec<_> = (0..SLEEPERS)
            .map(|i| {
                // 0..=199 ms, pseudo-random.
                let ms = u16::from_le_bytes([delays[2 * i], delays[2 * i + 1]]) % 200;
                runtime::spawn(async move {
                    let begin = Instant::now();
                    let d = Duration::from_millis(u64::from(ms));
                    sleep(d).await;
                    let took = begin.elapsed();
                    assert!(took >= d, "a {d:?} sleep woke after {took:?}");
                })
            })
            .collect();
        for t in join_all(tasks).await {
            t.expect("sleeper");
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "10k sleeps of at most 200 ms took {:?}",
            start.elapsed()
        );
        Ok(())
    }
}

rt_test! {
    async fn cancelled_timers_do_not_linger() -> io::Result<()> {
        let h = handle();
        let base = h.num_alive_tasks();
        // Timeouts around ready futures: each inserts and removes a timer.
        for i in 0..10_000u32 {
            assert_eq!(timeout(Duration::from_secs(60), async { i }).await, Ok(i));
        }
        // Sleeps aborted before they fire.
        let sleepers: Vec<_> = (0..1000)
            .map(|_| runtime::spawn(sleep(Duration::from_secs(60))))
            .collect();
        for s in &sleepers {
            s.abort();
        }
        for s in sleepers {
            assert!(s.await.unwrap_err().is_cancelled());
        }
        support::rt::eventually("aborted sleepers leave the task count", || {
            h.num_alive_tasks() == base
        })
        .await;
        // With thousands of timers come and gone, a short one is still on time.
        let begin = Instant::now();
        sleep(Duration::from_millis(10)).await;
        let took = begin.elapsed();
        assert!(took >= Duration::from_millis(10) && took < Duration::from_secs(1), "{took:?}");
        Ok(())
    }
}

rt_test! {
    async fn timeouts_elapse_and_complete() -> io::Result<()> {
        // Half have a 5 ms limit around a 200 ms sleep, half the reverse.
        let tasks: Vec<_> = (0..2000u64)
            .map(|i| {
                runtime::spawn(async move {
                    let (limit, inner) = if i % 2 == 0 { (5, 200) } else { (200, 5) };
                    let begin = Instant::now();
                    let res = timeout(
                        Duration::from_millis(limit),
                        sleep(Duration::from_millis(inner)),
                    )
                    .await;
                    let took = begin.elapsed();
                    match res {
                        // Elapsed: never before the limit.
                        Err(_) => assert!(took >= Duration::from_millis(limit), "{i}: {took:?}"),
                        // Completed: never before the inner sleep is due.
                        Ok(()) => assert!(took >= Duration::from_millis(inner), "{i}: {took:?}"),
                    }
                    // A 5 ms sleep inside a 200 ms limit always completes:
                    // whenever the limit is due, so is the sleep, and the
                    // inner future is polled first. (The reverse case may
                    // also complete if the task is first polled after both
                    // are due, on a loaded machine.)
                    if i % 2 == 1 {
                        assert!(res.is_ok(), "{i}: a 5 ms sleep timed out at 200 ms");
                    }
                    res.is_err()
                })
            })
            .collect();
        let mut elapsed = 0;
        for t in join_all(tasks).await {
            elapsed += usize::from(t.expect("timeout task"));
        }
        assert!(elapsed > 0, "no 5 ms timeout around a 200 ms sleep elapsed");
        Ok(())
    }
}

const PAIRS: usize = 200;

rt_test! {
    async fn many_socket_deadlines_at_once() -> io::Result<()> {
        let listener = gopark::net::TcpListener::bind("127.0.0.1:0")?;
        let mut conns = Vec::with_capacity(PAIRS);
        for _ in 0..PAIRS {
            conns.push(support::net::pair_on(&listener).await?);
        }
        let start = Instant::now();
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, (c, s))| {
                // Deadlines spread over 10..110 ms.
                let d = start + Duration::from_millis(10 + (i as u64 * 7) % 100);
                runtime::spawn(async move {
                    c.set_read_deadline(Some(d))?;
                    assert_err_kind(c.read(&mut [0u8; 8]).await, ErrorKind::TimedOut, "read");
                    assert!(Instant::now() >= d, "connection {i}: deadline fired early");
                    drop(s);
                    Ok::<_, std::io::Error>(())
                })
            })
            .collect();
        for t in join_all(tasks).await {
            t.expect("deadline task")?;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
        Ok(())
    }
}
