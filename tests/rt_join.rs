//! `JoinHandle` and `JoinError`: panics, abort, detaching, `is_finished`,
//! and join wakers.

#[macro_use]
mod support;

use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_channel::oneshot;
use gopark::runtime::{self, Handle};
use support::rt::quiet_panics;
use support::{DropCount, OnDrop};

/// A future that panics on its first poll. (A function, not an `async`
/// block that only panics, so the compiler sees an output type.)
async fn panics_with(msg: &'static str) -> u32 {
    if !msg.is_empty() {
        panic!("{}", msg);
    }
    0
}

rt_test! {
    async fn panic_becomes_join_error_with_payload() {
        quiet_panics();
        let err = runtime::spawn(panics_with("deliberate: str payload"))
            .await
            .unwrap_err();
        assert!(err.is_panic());
        assert!(!err.is_cancelled());
        assert!(err.to_string().contains("deliberate: str payload"), "{err}");
        let payload = err.into_panic();
        // `panic!("{}", msg)` formats, so the payload is a `String`.
        assert_eq!(
            payload.downcast_ref::<String>().map(String::as_str),
            Some("deliberate: str payload")
        );

        // A non-string payload comes back as itself.
        #[derive(Debug, PartialEq)]
        struct Custom(u32);
        let err = runtime::spawn(async {
            if true {
                std::panic::panic_any(Custom(17));
            }
        })
        .await
        .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.into_panic().downcast_ref::<Custom>(), Some(&Custom(17)));

        // The worker survived: many panics in a row, then normal work.
        for _ in 0..100 {
            let e = runtime::spawn(panics_with("deliberate: again")).await.unwrap_err();
            assert!(e.is_panic());
        }
        assert_eq!(runtime::spawn(async { 1 }).await.unwrap(), 1);
    }
}

rt_test! {
    async fn panic_after_parking_becomes_join_error() {
        quiet_panics();
        let (tx, rx) = oneshot::channel::<()>();
        let h = runtime::spawn(async move {
            rx.await.unwrap();
            panic!("deliberate: after a wake-up");
        });
        runtime::yield_now().await;
        tx.send(()).unwrap();
        let err = h.await.unwrap_err();
        assert!(err.is_panic());
        assert!(format!("{err:?}").contains("after a wake-up"));
        assert_eq!(runtime::spawn(async { 2 }).await.unwrap(), 2);
    }
}

rt_test! {
    async fn abort_task_parked_forever() {
        let drops = DropCount::new();
        let (dropped_tx, dropped_rx) = oneshot::channel::<()>();
        let guard = drops.guard();
        let mut dropped_tx = Some(dropped_tx);
        let on_drop = OnDrop(move || {
            let _ = dropped_tx.take().unwrap().send(());
        });
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let h = runtime::spawn(async move {
            let _guard = guard;
            let _on_drop = on_drop;
            started_tx.send(()).unwrap();
            pending::<()>().await;
        });
        // Wait until it has really parked (polled once), then abort.
        started_rx.await.unwrap();
        assert!(!h.is_finished());
        h.abort();
        // The future is dropped promptly, without anyone awaiting the handle.
        dropped_rx.await.unwrap();
        let err = h.await.unwrap_err();
        assert!(err.is_cancelled());
        assert!(!err.is_panic());
        assert!(err.to_string().contains("cancelled"), "{err}");
        assert_eq!(drops.get(), 1);
    }
}

rt_test! {
    async fn abort_before_first_poll() {
        let polled = Arc::new(AtomicBool::new(false));
        let drops = DropCount::new();
        let (p, g) = (polled.clone(), drops.guard());
        let h = runtime::spawn(async move {
            let _g = g;
            p.store(true, Ordering::SeqCst);
        });
        h.abort();
        h.abort(); // idempotent
        match h.await {
            // On one worker the spawner holds the only worker: it never ran.
            Err(e) => {
                assert!(e.is_cancelled());
                assert!(!polled.load(Ordering::SeqCst));
            }
            Ok(()) => {
                assert!(Handle::current().num_workers() > 1, "ran on a busy lone worker");
                assert!(polled.load(Ordering::SeqCst));
            }
        }
        assert_eq!(drops.get(), 1, "the future was dropped exactly once");
    }
}

rt_test! {
    async fn abort_busy_yielding_task() {
        // The task never parks: it yields. Abort stops it at its next yield.
        let drops = DropCount::new();
        let g = drops.guard();
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let h = runtime::spawn(async move {
            let _g = g;
            let _ = started_tx.send(());
            loop {
                runtime::yield_now().await;
            }
        });
        started_rx.await.unwrap();
        h.abort();
        assert!(h.await.unwrap_err().is_cancelled());
        assert_eq!(drops.get(), 1);
    }
}

rt_test! {
    async fn abort_after_completion_returns_value() {
        let drops = DropCount::new();
        let g = drops.guard();
        let h = runtime::spawn(async move {
            let _g = g;
            String::from("finished")
        });
        while !h.is_finished() {
            runtime::yield_now().await;
        }
        h.abort();
        assert_eq!(h.await.unwrap(), "finished");
        assert_eq!(drops.get(), 1);
    }
}

rt_test! {
    async fn abort_from_another_task_and_thread() {
        // `abort` from a plain thread (the task is woken remotely).
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let h = runtime::spawn(async move {
            let _ = started_tx.send(());
            pending::<()>().await;
        });
        started_rx.await.unwrap();
        let h = std::thread::spawn(move || {
            h.abort();
            h
        })
        .join()
        .unwrap();
        assert!(h.await.unwrap_err().is_cancelled());
    }
}

rt_test! {
    async fn panic_in_drop_during_abort_is_a_join_error() {
        quiet_panics();
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let h = runtime::spawn(async move {
            let _bomb = OnDrop(|| panic!("deliberate: drop during abort"));
            let _ = started_tx.send(());
            pending::<()>().await;
        });
        started_rx.await.unwrap();
        h.abort();
        let err = h.await.unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        assert_eq!(runtime::spawn(async { 3 }).await.unwrap(), 3);
    }
}

rt_test! {
    async fn panic_in_output_drop_does_not_kill_worker() {
        quiet_panics();
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("deliberate: output drop");
            }
        }
        // Detached: the task side drops the output.
        drop(runtime::spawn(async { Bomb }));
        // Joined late: the handle's drop drops it.
        let h = runtime::spawn(async { Bomb });
        while !h.is_finished() {
            runtime::yield_now().await;
        }
        drop(h);
        for i in 0..10 {
            assert_eq!(runtime::spawn(async move { i }).await.unwrap(), i);
        }
    }
}

rt_test! {
    async fn dropping_join_handle_detaches() {
        let (go_tx, go_rx) = oneshot::channel::<u32>();
        let (done_tx, done_rx) = oneshot::channel::<u32>();
        let h = runtime::spawn(async move {
            let v = go_rx.await.unwrap();
            done_tx.send(v + 1).unwrap();
            v
        });
        drop(h);
        go_tx.send(41).unwrap();
        assert_eq!(done_rx.await.unwrap(), 42);

        // Dropped before it ever ran, too.
        let (done_tx, done_rx) = oneshot::channel::<()>();
        drop(runtime::spawn(async move { done_tx.send(()).unwrap() }));
        done_rx.await.unwrap();
    }
}

rt_test! {
    async fn is_finished_tracks_completion() {
        let (tx, rx) = oneshot::channel::<()>();
        let mut h = runtime::spawn(async move {
            rx.await.unwrap();
            9
        });
        runtime::yield_now().await;
        assert!(!h.is_finished());
        tx.send(()).unwrap();
        assert_eq!((&mut h).await.unwrap(), 9);
        assert!(h.is_finished());
        drop(h);

        let h = runtime::spawn(pending::<()>());
        assert!(!h.is_finished());
        h.abort();
        while !h.is_finished() {
            runtime::yield_now().await;
        }
        assert!(h.await.unwrap_err().is_cancelled());
    }
}

rt_test! {
    async fn join_waker_is_replaced() {
        // Poll the handle once with a waker that does nothing, then await it
        // with the real one: the completion must wake the new waker.
        let (tx, rx) = oneshot::channel::<()>();
        let mut h = runtime::spawn(async move {
            rx.await.unwrap();
            "done"
        });
        poll_fn(|_| {
            let mut cx = Context::from_waker(Waker::noop());
            assert!(Pin::new(&mut h).poll(&mut cx).is_pending());
            Poll::Ready(())
        })
        .await;
        tx.send(()).unwrap();
        assert_eq!(h.await.unwrap(), "done");
    }
}

rt_test! {
    async fn join_from_plain_thread_block_on() {
        // The joiner is a plain thread in the default runtime's `block_on`;
        // the task runs on this runtime.
        let (tx, rx) = oneshot::channel::<()>();
        let h = runtime::spawn(async move {
            rx.await.unwrap();
            support::thread_name()
        });
        let joiner = std::thread::spawn(move || runtime::block_on(h));
        runtime::yield_now().await;
        tx.send(()).unwrap();
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::spawn(move || done_tx.send(joiner.join().unwrap()));
        let name = done_rx.await.unwrap().unwrap();
        assert!(name.starts_with("rt"), "ran on {name:?}");
    }
}

rt_test! {
    async fn join_error_converts_to_io_error() {
        let h = runtime::spawn(pending::<()>());
        h.abort();
        let err: std::io::Error = h.await.unwrap_err().into();
        assert!(err.to_string().contains("cancelled"));
        let cancelled = {
            let h = runtime::spawn(pending::<()>());
            h.abort();
            h.await.unwrap_err()
        };
        assert!(cancelled.try_into_panic().is_err());
    }
}
