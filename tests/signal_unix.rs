//! `gopark::signal::unix`: every listener sees each delivery, deliveries
//! coalesce, a new listener sees none from before it, forbidden signals are
//! refused, and a listener leaves no descriptor behind.
//!
//! The signals are SIGUSR1, SIGUSR2 and SIGHUP, raised in this process;
//! this file is its own test binary, so the handlers it installs touch no
//! other test. The tests share one lock: a delivery raised by one test
//! would otherwise reach the listeners of another running at the same time.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use gopark::runtime::{self, time::timeout, Builder, Runtime};
use gopark::signal::unix::{signal, Signal, SignalKind};

/// Bound on any wait for a delivery.
const WAIT: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime(name: &str) -> Runtime {
    Builder::new()
        .worker_threads(2)
        .thread_name(name)
        .build()
        .unwrap()
}

/// Sends `signum` to the calling thread; its handler has run when this
/// returns.
fn raise(signum: libc::c_int) {
    // SAFETY: raise takes no pointers.
    assert_eq!(unsafe { libc::raise(signum) }, 0);
}

/// Sends `signum` to the process: the kernel picks any thread that does
/// not block it.
fn kill_self(signum: libc::c_int) {
    // SAFETY: kill and getpid take no pointers.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signum) }, 0);
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Polls `listener.recv()` once, with a waker that does nothing.
fn poll_recv_once(listener: &mut Signal) -> Poll<Option<()>> {
    let mut cx = Context::from_waker(Waker::noop());
    listener.poll_recv(&mut cx)
}

async fn recv_within(listener: &mut Signal, what: &str) {
    match timeout(WAIT, listener.recv()).await {
        Ok(Some(())) => {}
        Ok(None) => panic!("{what}: the listener's runtime shut down"),
        Err(_) => panic!("{what}: no delivery within {WAIT:?}"),
    }
}

#[test]
fn two_listeners_on_two_tasks_both_see_one_delivery() {
    let _serial = serial();
    let rt = runtime("two-tasks");
    rt.block_on(async {
        let mut first = signal(SignalKind::user_defined1()).unwrap();
        let mut second = signal(SignalKind::user_defined1()).unwrap();
        let a = runtime::spawn(async move { recv_within(&mut first, "first").await });
        let b = runtime::spawn(async move { recv_within(&mut second, "second").await });
        raise(libc::SIGUSR1);
        a.await.unwrap();
        b.await.unwrap();
    });
}

#[test]
fn listeners_on_two_runtimes_both_see_one_delivery() {
    let _serial = serial();
    let (rt_a, rt_b) = (runtime("rt-a"), runtime("rt-b"));
    let descs = |rt: &Runtime| rt.handle().num_poll_descs();
    let (before_a, before_b) = (descs(&rt_a), descs(&rt_b));
    // Made inside each runtime: each listener is registered with its own
    // runtime's netpoller.
    let mut on_a = rt_a
        .block_on(async { signal(SignalKind::user_defined2()) })
        .unwrap();
    let mut on_b = rt_b
        .block_on(async { signal(SignalKind::user_defined2()) })
        .unwrap();
    assert_eq!(descs(&rt_a), before_a + 1, "listener A is on runtime A");
    assert_eq!(descs(&rt_b), before_b + 1, "listener B is on runtime B");

    let a = rt_a.spawn(async move { recv_within(&mut on_a, "runtime A").await });
    let b = rt_b.spawn(async move { recv_within(&mut on_b, "runtime B").await });
    // From this thread, which belongs to neither runtime.
    raise(libc::SIGUSR2);
    rt_a.block_on(a).unwrap();
    rt_b.block_on(b).unwrap();
    assert_eq!(
        descs(&rt_a),
        before_a,
        "listener A's eventfd was deregistered"
    );
    assert_eq!(
        descs(&rt_b),
        before_b,
        "listener B's eventfd was deregistered"
    );
}

#[test]
fn every_delivery_is_seen_when_the_listener_keeps_up() {
    let _serial = serial();
    let rt = runtime("keep-up");
    rt.block_on(async {
        let mut hangups = signal(SignalKind::hangup()).unwrap();
        // Process-directed: the kernel picks the thread — this one, a
        // worker, the netpoll thread.
        for round in 0..200 {
            kill_self(libc::SIGHUP);
            recv_within(&mut hangups, &format!("round {round}")).await;
        }
        // And from a thread that existed before the listener and belongs to
        // no runtime.
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let raiser = std::thread::spawn(move || {
            for () in go_rx {
                raise(libc::SIGHUP);
            }
        });
        let mut late = signal(SignalKind::hangup()).unwrap();
        for round in 0..50 {
            go_tx.send(()).unwrap();
            recv_within(&mut late, &format!("thread round {round}")).await;
        }
        drop(go_tx);
        raiser.join().unwrap();
    });
}

#[test]
fn deliveries_before_recv_coalesce_into_one() {
    let _serial = serial();
    let rt = runtime("coalesce");
    rt.block_on(async {
        let mut listener = signal(SignalKind::user_defined1()).unwrap();
        assert_eq!(poll_recv_once(&mut listener), Poll::Pending, "nothing yet");
        for _ in 0..100 {
            raise(libc::SIGUSR1);
        }
        // raise returns after the handler ran: all 100 are counted.
        recv_within(&mut listener, "after 100 raises").await;
        assert_eq!(
            poll_recv_once(&mut listener),
            Poll::Pending,
            "100 deliveries before one recv make one"
        );
        raise(libc::SIGUSR1);
        recv_within(&mut listener, "the next raise").await;
    });
}

#[test]
fn a_listener_does_not_see_deliveries_from_before_it_existed() {
    let _serial = serial();
    let rt = runtime("late");
    rt.block_on(async {
        let mut early = signal(SignalKind::user_defined1()).unwrap();
        raise(libc::SIGUSR1);
        recv_within(&mut early, "early listener").await;

        let mut late = signal(SignalKind::user_defined1()).unwrap();
        assert_eq!(
            poll_recv_once(&mut late),
            Poll::Pending,
            "the delivery before the listener existed is not reported"
        );
        raise(libc::SIGUSR1);
        recv_within(&mut late, "late listener").await;
        recv_within(&mut early, "early listener, second delivery").await;
    });
}

#[test]
fn recv_is_cancel_safe() {
    let _serial = serial();
    let rt = runtime("cancel");
    rt.block_on(async {
        let mut listener = signal(SignalKind::user_defined2()).unwrap();
        {
            // Park once, then give up: the task is registered as a waiter.
            let mut recv = pin!(listener.recv());
            let mut cx = Context::from_waker(Waker::noop());
            assert_eq!(recv.as_mut().poll(&mut cx), Poll::Pending);
        }
        raise(libc::SIGUSR2);
        recv_within(&mut listener, "after a cancelled recv").await;
    });
}

#[test]
fn forbidden_and_invalid_signals_are_refused() {
    let _serial = serial();
    let forbidden = [
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGFPE, "SIGFPE"),
    ];
    // Inside a runtime whose descriptors exist already: only a listener's
    // own eventfd could change the count.
    runtime("refused").block_on(async {
        let fds = fd_count();
        for (signum, name) in forbidden {
            let err = signal(SignalKind::from_raw(signum)).expect_err(name);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(name), "{name}: message {msg:?} names it");
        }
        // Not signals at all; 32 is one glibc keeps for itself (sigaction
        // refuses it).
        for signum in [0, -1, libc::SIGRTMAX() + 1, 1000, 32] {
            let err = signal(SignalKind::from_raw(signum)).expect_err("not a signal");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{signum}: {err}");
            assert!(
                err.to_string().contains("cannot listen for"),
                "{signum}: {err}"
            );
        }
        assert_eq!(fd_count(), fds, "a refused listener leaves no eventfd open");
    });
}

#[test]
fn ten_thousand_listeners_leave_no_descriptor_behind() {
    let _serial = serial();
    let rt = runtime("leak");
    rt.block_on(async {
        // Warm up: the first listener installs the handler and registers
        // the runtime's first descriptors.
        drop(signal(SignalKind::user_defined1()).unwrap());
        let fds = fd_count();
        let descs = runtime::Handle::current().num_poll_descs();
        for _ in 0..10_000 {
            let listener = signal(SignalKind::user_defined1()).unwrap();
            drop(listener);
        }
        assert_eq!(fd_count(), fds, "descriptors after 10,000 listeners");
        assert_eq!(runtime::Handle::current().num_poll_descs(), descs);

        // A hundred at once: one delivery reaches each of them.
        let mut many: Vec<Signal> = (0..100)
            .map(|_| signal(SignalKind::user_defined1()).unwrap())
            .collect();
        assert_eq!(fd_count(), fds + 100);
        raise(libc::SIGUSR1);
        for (i, listener) in many.iter_mut().enumerate() {
            recv_within(listener, &format!("listener {i} of 100")).await;
        }
        drop(many);
        assert_eq!(fd_count(), fds, "descriptors after dropping 100 listeners");
    });
}

#[test]
fn a_signal_whose_listeners_are_gone_is_ignored() {
    let _serial = serial();
    let rt = runtime("gone");
    rt.block_on(async {
        let mut listener = signal(SignalKind::user_defined2()).unwrap();
        raise(libc::SIGUSR2);
        recv_within(&mut listener, "while listening").await;
    });
    // Every SIGUSR2 listener of this test is dropped; the handler stays
    // and does nothing, so this returns instead of killing the process.
    raise(libc::SIGUSR2);
}

#[test]
fn recv_returns_none_once_the_runtime_is_gone() {
    let _serial = serial();
    let rt = runtime("shutdown");
    let mut listener = rt
        .block_on(async { signal(SignalKind::user_defined1()) })
        .unwrap();
    drop(rt);
    assert_eq!(poll_recv_once(&mut listener), Poll::Ready(None));
    // A delivery now finds the eventfd still open (the listener owns it)
    // and harms nothing.
    raise(libc::SIGUSR1);
    assert_eq!(poll_recv_once(&mut listener), Poll::Ready(None));
}
