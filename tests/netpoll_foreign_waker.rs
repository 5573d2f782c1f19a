//! The netpoll thread outlives a foreign waker that panics: the panic is
//! reported and skipped, the rest of the batch is woken, and the runtime
//! keeps serving I/O and timers (which only the netpoll thread fires).

mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use gopark::runtime::{time, Builder, Direction, PollDesc};
use support::fd;
use support::future::signal_pending;
use support::Watchdog;

/// A waker whose `wake` panics, counting its calls.
struct Panicking(AtomicUsize);

impl Wake for Panicking {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a foreign waker panics on purpose");
    }
}

#[test]
fn a_panicking_foreign_waker_does_not_kill_the_netpoll_thread() {
    let dog = Watchdog::start("foreign waker", Duration::from_secs(60));
    let rt = Builder::new()
        .worker_threads(1)
        .thread_name("fwaker")
        .build()
        .expect("runtime");
    let (r, w) = fd::pipe().expect("pipe");
    let reader = rt.block_on(async { PollDesc::new(r) }).expect("register");
    // Drain the pipe's initial readiness: the half starts ready.
    let counter = Arc::new(Panicking(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let Poll::Ready(Ok(ev)) = reader.poll_ready(&mut cx, Direction::Read) else {
        panic!("a new PollDesc starts ready");
    };
    reader.clear_ready(ev);
    // Park the panicking waker on the read half, off any runtime thread.
    assert!(reader.poll_ready(&mut cx, Direction::Read).is_pending());

    // The byte makes the half ready; the netpoll thread wakes our waker.
    fd::write_now(&w, b"x");
    let start = Instant::now();
    while counter.0.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the netpoll thread never woke the waker"
        );
        std::thread::yield_now();
    }

    // It survived: timers still fire, and I/O still wakes tasks.
    let (r2, w2) = fd::pipe().expect("pipe");
    rt.block_on(async move {
        let start = Instant::now();
        time::timeout(
            Duration::from_secs(20),
            time::sleep(Duration::from_millis(20)),
        )
        .await
        .expect("a sleep after the panic completes");
        assert!(start.elapsed() >= Duration::from_millis(20));
        let pd = PollDesc::new(r2)?;
        let (read, parked) = signal_pending(async move {
            let mut buf = [0u8; 8];
            fd::pd_read(&pd, &mut buf).await
        });
        let reader_task = gopark::runtime::spawn(read);
        // Write only once the read has parked, so that the netpoll thread
        // is what wakes it.
        parked.await.expect("the read parked");
        fd::write_now(&w2, b"x");
        let n = time::timeout(Duration::from_secs(20), reader_task)
            .await
            .expect("I/O after the panic is delivered")
            .expect("reader task")?;
        assert_eq!(n, 1);
        Ok::<_, io::Error>(())
    })
    .expect("runtime still serves");
    drop(reader);
    drop(rt);
    dog.disarm();
}
