//! Cancellation on gopark: tokio-util's `CancellationToken` (Go's
//! `context.Context`) and gopark's own `JoinHandle::abort`.
//!
//! Tasks park on everything a service waits for — a socket read, an
//! `accept`, a UDP receive, a sleep, a timeout, an interval, a channel, a
//! lock, a semaphore, a `Notify` — and are then cancelled. Every one of
//! them must observe it and exit: the token's tasks return, the aborted
//! ones end with a cancelled `JoinError`, their futures are dropped (the
//! peer of each dropped socket reads end of stream), and the runtime's
//! count of live tasks falls back to where it was.
//!
//! Three more tests stream 1,000,000 messages through tasks that can be
//! cancelled at any moment (Go's worker pool selecting on `ctx.Done()`, a
//! cancel half-way through, consumers aborted half-way through) and check
//! that every message sent was received or is still queued, exactly once.
//! All run on a 4-worker and a 2-worker runtime.

#[macro_use]
mod support;

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use futures::{poll, select, FutureExt};
use gopark::net::{TcpListener, TcpStream, UdpSocket};
use gopark::runtime::time::{interval, sleep, timeout};
use gopark::runtime::{spawn, Handle};
use support::data::Seen;
use support::future::DropCount;
use support::rt::join;
use tokio::sync::{Mutex, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Messages through each of the streaming tests.
const TOTAL: u64 = 1_000_000;
/// Producer tasks of the streaming tests.
const PRODUCERS: u64 = 8;
/// What each producer sends.
const PER_PRODUCER: u64 = TOTAL / PRODUCERS;
/// Consumer (worker) tasks of the streaming tests.
const WORKERS: usize = 4;
/// Parked operations of each kind in the mixed tests.
const EACH: usize = 32;
/// Longer than any test may run: a wait that ends by itself fails it.
const FOREVER: Duration = Duration::from_secs(3600);

/// Bound of one test on one runtime: a hang detector, far above the few
/// seconds each needs, even on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(120);

/// A parked operation: a future that must never finish by itself.
type Op = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the mixed tests park on, and what must be seen once they are
/// cancelled.
struct Parked {
    /// One future per parked operation.
    ops: Vec<Op>,
    /// The far ends of the sockets the operations own: each reads end of
    /// stream once its operation's future is dropped.
    peers: Vec<TcpStream>,
    /// Held for the whole test, so the lock and the permits are never
    /// granted.
    _held: (
        tokio::sync::OwnedMutexGuard<()>,
        tokio::sync::OwnedSemaphorePermit,
    ),
    /// Kept so the channel and the notifier stay open (a closed channel
    /// would end the receives).
    _keep: (async_channel::Sender<()>, Arc<Notify>),
}

/// Builds EACH operations of every kind: TCP read, accept, UDP receive,
/// sleep, timeout, interval tick, channel receive, lock, semaphore and
/// `Notify`.
async fn parked_ops() -> io::Result<Parked> {
    let mut ops: Vec<Op> = Vec::new();
    let mut peers = Vec::new();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    for _ in 0..EACH {
        let client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        peers.push(server);
        ops.push(Box::pin(async move {
            let n = client.read(&mut [0u8; 16]).await;
            panic!("a read with nothing sent returned {n:?}");
        }));
    }
    for _ in 0..EACH {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        ops.push(Box::pin(async move {
            let r = listener.accept().await;
            panic!("an accept nobody connects to returned {r:?}");
        }));
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        ops.push(Box::pin(async move {
            let r = udp.recv_from(&mut [0u8; 16]).await;
            panic!("a receive nobody sends to returned {r:?}");
        }));
        ops.push(Box::pin(async {
            sleep(FOREVER).await;
            panic!("slept for an hour");
        }));
        ops.push(Box::pin(async {
            let r = timeout(FOREVER, std::future::pending::<()>()).await;
            panic!("a timeout of an hour ended: {r:?}");
        }));
        ops.push(Box::pin(async {
            let mut ticks = interval(FOREVER);
            ticks.tick().await; // The first tick is at once.
            ticks.tick().await;
            panic!("an hour-long interval ticked twice");
        }));
    }
    let (tx, rx) = async_channel::unbounded::<()>();
    let lock = Arc::new(Mutex::new(()));
    let sem = Arc::new(Semaphore::new(1));
    let notify = Arc::new(Notify::new());
    let held = (
        lock.clone().lock_owned().await,
        sem.clone().acquire_owned().await.expect("open"),
    );
    for _ in 0..EACH {
        let rx = rx.clone();
        ops.push(Box::pin(async move {
            let r = rx.recv().await;
            panic!("a receive on a silent channel returned {r:?}");
        }));
        let lock = lock.clone();
        ops.push(Box::pin(async move {
            let _g = lock.lock().await;
            panic!("locked a mutex that is held");
        }));
        let sem = sem.clone();
        ops.push(Box::pin(async move {
            let _p = sem.acquire().await;
            panic!("acquired a permit that is held");
        }));
        let notify = notify.clone();
        ops.push(Box::pin(async move {
            notify.notified().await;
            panic!("notified without a notification");
        }));
    }
    Ok(Parked {
        ops,
        peers,
        _held: held,
        _keep: (tx, notify),
    })
}

/// Polls `fut` once, asserts that it parked, adds a permit to `parked`,
/// then runs it to completion.
async fn park_then<F: Future>(fut: F, parked: &Semaphore) -> F::Output {
    let mut fut = pin!(fut);
    assert!(
        poll!(fut.as_mut()).is_pending(),
        "the operation did not park"
    );
    parked.add_permits(1);
    fut.await
}

/// Runs `op` until `token` is cancelled, the way a Go function selects on
/// `ctx.Done()`: `true` if the token ended it.
async fn until_cancelled(token: CancellationToken, op: Op) -> bool {
    select! {
        _ = token.cancelled().fuse() => true,
        _ = op.fuse() => false,
    }
}

/// Each peer reads end of stream: the socket at the other end was closed,
/// i.e. the future that owned it was dropped.
async fn assert_all_closed(peers: Vec<TcpStream>) -> io::Result<()> {
    for peer in peers {
        let n = timeout(Duration::from_secs(10), peer.read(&mut [0u8; 16])).await??;
        assert_eq!(n, 0, "the cancelled task's socket is still open");
    }
    Ok(())
}

/// Waits until the runtime has `tasks` live tasks and `fds` registered
/// descriptors again. A task leaves the count just after its `JoinHandle`
/// resolves, and nothing can be awaited for that moment, so this looks
/// every millisecond, for ten seconds at most.
async fn settles_to(tasks: usize, fds: usize) {
    let handle = Handle::current();
    for _ in 0..10_000 {
        if handle.num_alive_tasks() == tasks && handle.num_poll_descs() == fds {
            return;
        }
        sleep(Duration::from_millis(1)).await;
    }
    panic!(
        "{} tasks alive and {} descriptors registered, not {tasks} and {fds}",
        handle.num_alive_tasks(),
        handle.num_poll_descs()
    );
}

rt_test! {
    limit = LIMIT;
    workers = [four_workers: 4, two_workers: 2];

    async fn token_cancels_every_kind_of_wait() {
        let (alive, fds) = (Handle::current().num_alive_tasks(), Handle::current().num_poll_descs());
        let parked = Arc::new(Semaphore::new(0));
        let token = CancellationToken::new();
        let Parked { ops, peers, _held, _keep } = parked_ops().await.expect("set up");
        let n = ops.len();
        let tasks: Vec<_> = ops
            .into_iter()
            .map(|op| {
                let (token, parked) = (token.child_token(), parked.clone());
                spawn(async move { park_then(until_cancelled(token, op), &parked).await })
            })
            .collect();
        // Every task is parked, its wakers registered, before the cancel.
        parked.acquire_many(n as u32).await.expect("open").forget();
        token.cancel();
        let mut cancelled = 0;
        for t in tasks {
            assert!(join(t).await, "a task ended without seeing the cancel");
            cancelled += 1;
        }
        assert_eq!(cancelled, n);
        // Only the peers are left registered.
        settles_to(alive, fds + peers.len()).await;
        assert_all_closed(peers).await.expect("peers");
    }

    async fn abort_cancels_every_kind_of_wait() {
        let (alive, fds) = (Handle::current().num_alive_tasks(), Handle::current().num_poll_descs());
        let parked = Arc::new(Semaphore::new(0));
        let dropped = DropCount::new();
        let Parked { ops, peers, _held, _keep } = parked_ops().await.expect("set up");
        let n = ops.len();
        let tasks: Vec<_> = ops
            .into_iter()
            .map(|op| {
                let (parked, guard) = (parked.clone(), dropped.guard());
                spawn(async move {
                    let _guard = guard;
                    park_then(op, &parked).await
                })
            })
            .collect();
        parked.acquire_many(n as u32).await.expect("open").forget();
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let err = t.await.expect_err("an aborted task cannot finish");
            assert!(err.is_cancelled(), "{err}");
        }
        assert_eq!(dropped.get(), n, "futures not dropped");
        // Only the peers are left registered.
        settles_to(alive, fds + peers.len()).await;
        assert_all_closed(peers).await.expect("peers");
    }

    async fn token_stops_a_worker_pool_after_a_million_jobs() {
        // Go's worker pool: each worker loops on
        // `select { case <-ctx.Done(): return; case j := <-jobs: ... }`.
        // A million jobs go through it with the token branch in every
        // select; then, with the queue empty and every worker parked on
        // both branches, the cancel ends them all.
        let token = CancellationToken::new();
        let (tx, rx) = async_channel::bounded::<u64>(256);
        let seen = Arc::new(Seen::new(TOTAL));
        let all_done = Arc::new(Notify::new());
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (token, rx, seen) = (token.clone(), rx.clone(), seen.clone());
                let all_done = all_done.clone();
                spawn(async move {
                    let mut done = 0u64;
                    loop {
                        select! {
                            _ = token.cancelled().fuse() => return done,
                            job = rx.recv().fuse() => {
                                done += 1;
                                if seen.mark(job.expect("a sender stays open")) == TOTAL {
                                    all_done.notify_one();
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                spawn(async move {
                    for v in p * PER_PRODUCER..(p + 1) * PER_PRODUCER {
                        tx.send(v).await.expect("workers alive");
                    }
                })
            })
            .collect();
        for p in producers {
            join(p).await;
        }
        // `tx` is still open, so the workers cannot end on a closed
        // channel: only the token can stop them.
        all_done.notified().await;
        token.cancel();
        let mut total = 0;
        for w in workers {
            total += join(w).await;
        }
        assert_eq!(total, TOTAL);
        seen.assert_all();
        drop(tx);
    }

    async fn token_stops_producers_and_consumers_mid_stream() {
        // Producers and consumers all select on the token; a consumer
        // cancels it half-way through. A send that lost to the cancel was
        // never made, a receive that lost took nothing: what was sent is
        // exactly what was received plus what is left in the channel.
        let token = CancellationToken::new();
        let (tx, rx) = async_channel::bounded::<u64>(64);
        let seen = Arc::new(Seen::new(TOTAL));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (token, tx) = (token.clone(), tx.clone());
                spawn(async move {
                    let mut sent = 0u64;
                    for v in p * PER_PRODUCER..(p + 1) * PER_PRODUCER {
                        select! {
                            _ = token.cancelled().fuse() => break,
                            r = tx.send(v).fuse() => {
                                r.expect("receivers alive");
                                sent += 1;
                            }
                        }
                    }
                    sent
                })
            })
            .collect();
        let consumers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (token, rx, seen) = (token.clone(), rx.clone(), seen.clone());
                spawn(async move {
                    let mut got = 0u64;
                    loop {
                        select! {
                            _ = token.cancelled().fuse() => return got,
                            v = rx.recv().fuse() => {
                                got += 1;
                                if seen.mark(v.expect("senders alive")) == TOTAL / 2 {
                                    token.cancel();
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        let mut sent = 0;
        for p in producers {
            sent += join(p).await;
        }
        let mut received = 0;
        for c in consumers {
            received += join(c).await;
        }
        let mut left = 0;
        while let Ok(v) = rx.try_recv() {
            seen.mark(v);
            left += 1;
        }
        assert!(received >= TOTAL / 2);
        assert!(sent < TOTAL, "the cancel came after every send");
        assert_eq!(received + left, sent, "sent {sent}, received {received}, left {left}");
        assert_eq!(seen.count(), sent);
        drop(tx);
    }

    async fn abort_consumers_mid_stream() {
        // Consumers are aborted while a million numbers stream through:
        // an abort drops a consumer's pending receive, which gives up
        // nothing, so every number was either recorded by a consumer or is
        // still in the channel, exactly once.
        let (tx, rx) = async_channel::bounded::<u64>(64);
        let seen = Arc::new(Seen::new(TOTAL));
        let halfway = Arc::new(Notify::new());
        let consumers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (rx, seen, halfway) = (rx.clone(), seen.clone(), halfway.clone());
                spawn(async move {
                    while let Ok(v) = rx.recv().await {
                        if seen.mark(v) == TOTAL / 2 {
                            halfway.notify_one();
                        }
                    }
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let tx = tx.clone();
                spawn(async move {
                    let mut sent = 0u64;
                    for v in p * PER_PRODUCER..(p + 1) * PER_PRODUCER {
                        if tx.send(v).await.is_err() {
                            break;
                        }
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        halfway.notified().await;
        for c in &consumers {
            c.abort();
        }
        for c in consumers {
            // A consumer may have finished its poll just as the abort came;
            // either way it is gone.
            if let Err(e) = c.await {
                assert!(e.is_cancelled(), "{e}");
            }
        }
        let recorded = seen.count();
        // The producers fill the channel and park; closing it ends them.
        rx.close();
        let mut sent = 0;
        for p in producers {
            sent += join(p).await;
        }
        let mut left = 0;
        while let Ok(v) = rx.try_recv() {
            seen.mark(v);
            left += 1;
        }
        assert!((TOTAL / 2..TOTAL).contains(&recorded), "aborted after {recorded}");
        assert_eq!(recorded + left, sent, "sent {sent}, recorded {recorded}, left {left}");
        drop(tx);
    }
}
