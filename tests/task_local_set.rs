//! `gopark::task::LocalSet` and `spawn_local`: `!Send` tasks, each
//! behaviour tokio's documentation promises, on gopark.

mod support;

use std::cell::{Cell, RefCell};
use std::panic::catch_unwind;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use futures_channel::oneshot;
use gopark::runtime::time::sleep;
use gopark::task::{self, JoinSet, LocalSet};
use support::rt::quiet_panics;
use support::{guard, runtime, OnDrop, WORKERS};

/// Runs `body(workers)` for each worker count under the toolkit's watchdog.
fn each(name: &str, body: impl Fn(usize)) {
    for workers in WORKERS {
        guard(workers, name, || body(workers));
    }
}

#[test]
fn rc_state_shared_by_local_tasks() {
    each("rc_state_shared_by_local_tasks", |workers| {
        let rt = runtime(workers, "ls");
        let local = LocalSet::new();
        let state = Rc::new(RefCell::new(Vec::new()));
        let out = local.block_on(&rt, {
            let state = Rc::clone(&state);
            async move {
                let mut handles = Vec::new();
                for i in 0..10 {
                    let state = Rc::clone(&state);
                    handles.push(task::spawn_local(async move {
                        task::yield_now().await;
                        state.borrow_mut().push(i);
                        sleep(Duration::from_millis(1)).await;
                        i * 2
                    }));
                }
                let mut sum = 0;
                for h in handles {
                    sum += h.await.unwrap();
                }
                sum
            }
        });
        assert_eq!(out, 90);
        let mut seen = state.borrow().clone();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        // Every task finished and let its `Rc` go.
        assert_eq!(Rc::strong_count(&state), 1);
    });
}

#[test]
fn a_wake_from_another_thread_runs_the_task_here() {
    each("a_wake_from_another_thread_runs_the_task_here", |workers| {
        let rt = runtime(workers, "lsw");
        let local = LocalSet::new();
        let here = thread::current().id();
        let total = local.block_on(&rt, async move {
            let (tx, rx) = async_channel::unbounded::<u32>();
            // A Send task on a worker feeds the channel.
            let feeder = task::spawn(async move {
                for i in 1..=100 {
                    if i % 10 == 0 {
                        sleep(Duration::from_millis(1)).await;
                    }
                    tx.send(i).await.unwrap();
                }
            });
            let state = Rc::new(Cell::new(0u32));
            let consumer = task::spawn_local({
                let state = Rc::clone(&state);
                async move {
                    while let Ok(v) = rx.recv().await {
                        // Woken by the worker's send; run on the set's thread.
                        assert_eq!(thread::current().id(), here);
                        state.set(state.get() + v);
                    }
                }
            });
            feeder.await.unwrap();
            consumer.await.unwrap();
            state.get()
        });
        assert_eq!(total, 5050);
    });
}

#[test]
fn dropping_the_set_drops_pending_futures_on_its_thread() {
    each(
        "dropping_the_set_drops_pending_futures_on_its_thread",
        |workers| {
            let rt = runtime(workers, "lsd");
            let here = thread::current().id();
            let local = LocalSet::new();
            let rc = Rc::new(());
            let (dropped_tx, dropped_rx) = mpsc::channel();
            let on_drop = |tx: mpsc::Sender<thread::ThreadId>| {
                OnDrop(move || tx.send(thread::current().id()).unwrap())
            };
            // A task that parks on a channel whose sender another thread will
            // hold...
            let (parked_tx, parked_rx) = oneshot::channel::<()>();
            let (waker_tx, waker_rx) = mpsc::channel::<std::task::Waker>();
            let parked = local.spawn_local({
                let (rc, on_drop) = (Rc::clone(&rc), on_drop(dropped_tx.clone()));
                async move {
                    let _rc = rc;
                    let _on_drop = on_drop;
                    parked_tx.send(()).unwrap();
                    // Parks with its waker handed to this thread's caller, who
                    // passes it to another thread.
                    std::future::poll_fn(|cx| {
                        let _ = waker_tx.send(cx.waker().clone());
                        std::task::Poll::<()>::Pending
                    })
                    .await;
                    unreachable!("the set is dropped before the wake-up");
                }
            });
            // Drive the set until that task has parked, not further.
            local.block_on(&rt, async { parked_rx.await.unwrap() });
            // ...and one spawned into the set that never runs.
            let never_ran = local.spawn_local({
                let (rc, on_drop) = (Rc::clone(&rc), on_drop(dropped_tx));
                async move {
                    let _rc = rc;
                    let _on_drop = on_drop;
                }
            });
            assert_eq!(Rc::strong_count(&rc), 3);
            drop(local);
            assert_eq!(Rc::strong_count(&rc), 1, "every future was dropped");
            for _ in 0..2 {
                assert_eq!(dropped_rx.recv().unwrap(), here);
            }
            // A late wake-up from another thread finds the set gone and does
            // nothing (the task's memory may go there; its future is gone).
            let waker = waker_rx.recv().unwrap();
            thread::spawn(move || {
                waker.wake_by_ref();
                waker.wake();
            })
            .join()
            .unwrap();
            rt.block_on(async {
                assert!(parked.await.unwrap_err().is_cancelled());
                assert!(never_ran.await.unwrap_err().is_cancelled());
            });
        },
    );
}

#[test]
fn spawn_local_outside_a_local_set_panics() {
    quiet_panics();
    let res = catch_unwind(|| task::spawn_local(async {}));
    let msg = *res.unwrap_err().downcast::<&str>().unwrap();
    assert!(msg.contains("outside of a `task::LocalSet`"), "{msg}");
    // Inside a runtime, but not in a set, as well.
    let rt = runtime(1, "lsp");
    let res = rt.block_on(async { catch_unwind(|| task::spawn_local(async {})).is_err() });
    assert!(res);
}

#[test]
fn run_until_returns_with_its_future_and_leaves_the_rest() {
    each(
        "run_until_returns_with_its_future_and_leaves_the_rest",
        |workers| {
            let rt = runtime(workers, "lsr");
            let local = LocalSet::new();
            let (go_tx, go_rx) = oneshot::channel::<()>();
            let done = Rc::new(Cell::new(false));
            let slow = local.spawn_local({
                let done = Rc::clone(&done);
                async move {
                    go_rx.await.unwrap();
                    done.set(true);
                }
            });
            let v = local.block_on(&rt, async { task::spawn_local(async { 3 }).await.unwrap() });
            assert_eq!(v, 3);
            assert!(!done.get());
            assert!(!slow.is_finished());
            go_tx.send(()).unwrap();
            // Awaiting the set runs what is left to completion.
            rt.block_on(local);
            assert!(done.get());
            assert!(slow.is_finished());
        },
    );
}

#[test]
fn awaiting_the_set_runs_every_task_including_ones_they_spawn() {
    each("awaiting_the_set_runs_every_task", |workers| {
        let rt = runtime(workers, "lsa");
        let local = LocalSet::new();
        let count = Rc::new(Cell::new(0));
        for _ in 0..5 {
            let count = Rc::clone(&count);
            local.spawn_local(async move {
                let inner = Rc::clone(&count);
                task::spawn_local(async move {
                    sleep(Duration::from_millis(2)).await;
                    inner.set(inner.get() + 10);
                });
                count.set(count.get() + 1);
            });
        }
        rt.block_on(local);
        assert_eq!(count.get(), 55);
    });
}

#[test]
fn a_yielding_local_task_does_not_starve_run_until() {
    each(
        "a_yielding_local_task_does_not_starve_run_until",
        |workers| {
            let rt = runtime(workers, "lsy");
            let local = LocalSet::new();
            let spins = Rc::new(Cell::new(0u64));
            local.spawn_local({
                let spins = Rc::clone(&spins);
                async move {
                    loop {
                        spins.set(spins.get() + 1);
                        task::yield_now().await;
                    }
                }
            });
            let out = local.block_on(&rt, async {
                sleep(Duration::from_millis(20)).await;
                "timer fired"
            });
            assert_eq!(out, "timer fired");
            assert!(spins.get() > 0);
        },
    );
}

#[test]
fn abort_panic_and_ids_of_local_tasks() {
    quiet_panics();
    each("abort_panic_and_ids_of_local_tasks", |workers| {
        let rt = runtime(workers, "lsi");
        let local = LocalSet::new();
        local.block_on(&rt, async {
            // Aborted from another thread while parked.
            let (parked_tx, parked_rx) = oneshot::channel::<()>();
            let here = thread::current().id();
            let (dropped_tx, dropped_rx) = oneshot::channel();
            let stuck = task::spawn_local(async move {
                let _on_drop = OnDrop({
                    let mut tx = Some(dropped_tx);
                    move || {
                        let _ = tx.take().unwrap().send(thread::current().id());
                    }
                });
                parked_tx.send(()).unwrap();
                std::future::pending::<()>().await
            });
            parked_rx.await.unwrap();
            let abort = stuck.abort_handle();
            thread::spawn(move || abort.abort()).join().unwrap();
            let err = stuck.await.unwrap_err();
            assert!(err.is_cancelled());
            assert_eq!(
                dropped_rx.await.unwrap(),
                here,
                "cancelled on the set's thread"
            );

            // A panic comes back as a JoinError; the set goes on.
            let err = task::spawn_local(async {
                if true {
                    panic!("deliberate: local");
                }
            })
            .await
            .unwrap_err();
            assert!(err.is_panic());

            // Ids, inside and out.
            let h = task::spawn_local(async { task::id() });
            let id = h.id();
            assert_eq!(h.await.unwrap(), id);
            assert!(task::try_id().is_none(), "block_on's future is not a task");
        });
    });
}

#[test]
fn join_set_of_local_tasks() {
    let rt = runtime(2, "lsj");
    let local = LocalSet::new();
    let rc = Rc::new(4u32);
    let mut set = JoinSet::new();
    for i in 0..4u32 {
        let rc = Rc::clone(&rc);
        set.spawn_local_on(async move { *rc + i }, &local);
    }
    let sum = local.block_on(&rt, async move {
        set.spawn_local(async { 100 });
        let mut sum = 0;
        while let Some(res) = set.join_next().await {
            sum += res.unwrap();
        }
        sum
    });
    assert_eq!(sum, 16 + 6 + 100);
}

#[test]
fn a_local_set_on_a_blocking_thread_with_worker_tasks() {
    // A set driven by `run_until` on a thread of the blocking pool: its
    // local tasks hand work to tasks on the workers and are woken by them.
    each("a_local_set_on_a_blocking_thread", |workers| {
        let rt = runtime(workers, "lsb");
        let total = rt.block_on(async {
            task::spawn_blocking(|| {
                let local = LocalSet::new();
                gopark::runtime::block_on(local.run_until(async {
                    let acc = Rc::new(Cell::new(0u64));
                    let mut handles = Vec::new();
                    for i in 0..20u64 {
                        let acc = Rc::clone(&acc);
                        handles.push(task::spawn_local(async move {
                            let v = task::spawn(async move {
                                sleep(Duration::from_millis(1)).await;
                                i * i
                            })
                            .await
                            .unwrap();
                            acc.set(acc.get() + v);
                        }));
                    }
                    for h in handles {
                        h.await.unwrap();
                    }
                    acc.get()
                }))
            })
            .await
            .unwrap()
        });
        assert_eq!(total, (0..20u64).map(|i| i * i).sum::<u64>());
    });
}

#[test]
fn nested_run_until_of_two_sets() {
    let rt = runtime(1, "lsn");
    let outer = LocalSet::new();
    let out = outer.block_on(&rt, async {
        let inner = LocalSet::new();
        let from_outer = task::spawn_local(async { "outer" });
        let from_inner = inner
            .run_until(async { task::spawn_local(async { "inner" }).await.unwrap() })
            .await;
        (from_outer.await.unwrap(), from_inner)
    });
    assert_eq!(out, ("outer", "inner"));
}

#[test]
fn tasks_on_workers_hand_local_work_to_a_thread_that_owns_a_set() {
    // tokio's pattern for `!Send` work requested from `spawn`ed tasks: a
    // thread owns the set and takes requests over a channel.
    each("tasks_on_workers_hand_local_work_to_a_set", |workers| {
        struct Request {
            n: u64,
            reply: oneshot::Sender<u64>,
        }
        let (req_tx, req_rx) = async_channel::unbounded::<Request>();
        let owner = thread::spawn(move || {
            let local = LocalSet::new();
            let cache = Rc::new(RefCell::new(std::collections::HashMap::new()));
            gopark::runtime::block_on(local.run_until(async move {
                while let Ok(req) = req_rx.recv().await {
                    let cache = Rc::clone(&cache);
                    task::spawn_local(async move {
                        task::yield_now().await;
                        let v = *cache.borrow_mut().entry(req.n).or_insert(req.n * 3);
                        let _ = req.reply.send(v);
                    });
                }
                Rc::strong_count(&cache)
            }))
        });
        let rt = runtime(workers, "lso");
        let sum = rt.block_on(async move {
            let mut set = JoinSet::new();
            for n in 0..50u64 {
                let req_tx = req_tx.clone();
                set.spawn(async move {
                    let (reply, rx) = oneshot::channel();
                    req_tx.send(Request { n: n % 10, reply }).await.unwrap();
                    rx.await.unwrap()
                });
            }
            drop(req_tx);
            let mut sum = 0;
            while let Some(v) = set.join_next().await {
                sum += v.unwrap();
            }
            sum
        });
        assert_eq!(sum, 5 * 3 * 45);
        // The owner's loop ends when the senders are gone; each local task
        // finished in the poll that sent its reply, which came before, so
        // none holds the cache any more.
        assert_eq!(owner.join().unwrap(), 1);
    });
}

#[test]
fn enter_lets_spawn_local_queue_onto_a_set() {
    each("enter_lets_spawn_local_queue_onto_a_set", |workers| {
        let rt = runtime(workers, "lse");
        let local = LocalSet::new();
        let ran = Rc::new(Cell::new(false));
        let handle = {
            let _guard = local.enter();
            let ran = Rc::clone(&ran);
            task::spawn_local(async move { ran.set(true) })
        };
        // Queued, not run: nothing drives the set yet.
        assert!(!ran.get());
        // Outside the guard, spawn_local panics again.
        quiet_panics();
        assert!(catch_unwind(|| task::spawn_local(async {})).is_err());

        local.block_on(&rt, handle).unwrap();
        assert!(ran.get());

        // A task spawned from beside the driver (another branch of the
        // same `block_on`, with the set entered) wakes the driver.
        let (tx, rx) = oneshot::channel::<u32>();
        let v = rt.block_on(async {
            let driver = local.run_until(async { rx.await.unwrap() });
            let spawner = async {
                task::yield_now().await;
                let _guard = local.enter();
                task::spawn_local(async move { tx.send(5).unwrap() });
            };
            futures::join!(driver, spawner).0
        });
        assert_eq!(v, 5);
    });
}
