//! `gopark::task::JoinSet` and `AbortHandle`: each behaviour tokio's
//! documentation promises, on gopark.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::future::pending;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use gopark::runtime::Handle;
use gopark::task::{self, JoinSet};
use support::future::poll_once;
use support::rt::quiet_panics;
use support::{DropCount, OnDrop};

/// Waits, yielding, until `done()` holds; the test's own bound ends a hang.
async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        task::yield_now().await;
    }
}

rt_test! {
    async fn join_next_yields_results_in_completion_order() {
        let mut set = JoinSet::new();
        let mut gates = Vec::new();
        for i in 0..5u32 {
            let (tx, rx) = oneshot::channel::<()>();
            gates.push(tx);
            set.spawn(async move {
                rx.await.unwrap();
                i
            });
        }
        // Released in this order; each result is awaited before the next
        // release, so the completion order is the release order.
        let order = [3, 0, 4, 1, 2];
        let mut gates: Vec<Option<oneshot::Sender<()>>> = gates.into_iter().map(Some).collect();
        for &i in &order {
            gates[i].take().unwrap().send(()).unwrap();
            assert_eq!(set.join_next().await.unwrap().unwrap(), i as u32);
            assert_eq!(set.len(), 4 - order.iter().position(|&x| x == i).unwrap());
        }
        assert!(set.is_empty());
    }

    async fn join_next_returns_none_when_empty() {
        let mut set: JoinSet<()> = JoinSet::new();
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
        assert!(set.try_join_next().is_none());
        set.spawn(async {});
        assert_eq!(set.len(), 1);
        assert!(set.join_next().await.unwrap().is_ok());
        assert!(set.join_next().await.is_none());
        assert!(set.join_next_with_id().await.is_none());
        // A default set is an empty one.
        let mut set: JoinSet<u8> = JoinSet::default();
        assert!(set.join_next().await.is_none());
    }

    async fn dropping_the_set_aborts_every_task() {
        const N: usize = 50;
        let drops = DropCount::new();
        let (tx, rx) = async_channel::unbounded::<()>();
        let mut set = JoinSet::new();
        for _ in 0..N {
            let mut guard = Some(drops.guard());
            let tx = tx.clone();
            // Made here, so a task dropped before its first poll reports
            // too; it counts the drop before it reports it.
            let told = OnDrop(move || {
                drop(guard.take());
                let _ = tx.try_send(());
            });
            set.spawn(async move {
                let _told = told;
                pending::<()>().await
            });
        }
        drop(tx);
        // Every task has started (or not: either way it is in the set).
        drop(set);
        // Each future is dropped on a worker: await every report.
        for _ in 0..N {
            rx.recv().await.expect("every task's future is dropped");
        }
        assert_eq!(drops.get(), N);
    }

    async fn abort_handle_from_spawn_cancels_that_task_only() {
        let mut set = JoinSet::new();
        let stuck = set.spawn(pending::<u32>());
        let (tx, rx) = oneshot::channel::<()>();
        let other = set.spawn(async move {
            rx.await.unwrap();
            7
        });
        assert_ne!(stuck.id(), other.id());
        stuck.abort();
        let err = set.join_next().await.unwrap().unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.id(), stuck.id());
        assert!(stuck.is_finished());
        assert!(!other.is_finished());
        tx.send(()).unwrap();
        let (id, v) = set.join_next_with_id().await.unwrap().unwrap();
        assert_eq!((id, v), (other.id(), 7));
        assert!(set.join_next().await.is_none());
    }

    async fn abort_of_a_finished_task_is_a_no_op() {
        let mut set = JoinSet::new();
        let abort = set.spawn(async { 42u32 });
        until(|| abort.is_finished()).await;
        abort.abort();
        abort.abort();
        // The output is still there.
        assert_eq!(set.join_next().await.unwrap().unwrap(), 42);

        // The same through a JoinHandle's abort handle, after the join.
        let handle = task::spawn(async { "done" });
        let abort = handle.abort_handle();
        assert_eq!(handle.await.unwrap(), "done");
        abort.abort();
        assert!(abort.is_finished());
    }

    async fn abort_all_cancels_and_keeps_them_in_the_set() {
        let drops = DropCount::new();
        let mut set = JoinSet::new();
        let finished = set.spawn(async { Some(1u32) });
        until(|| finished.is_finished()).await;
        for _ in 0..10 {
            let guard = drops.guard();
            set.spawn(async move {
                let _guard = guard;
                pending::<Option<u32>>().await
            });
        }
        set.abort_all();
        assert_eq!(set.len(), 11);
        let (mut cancelled, mut outputs) = (0, Vec::new());
        while let Some(res) = set.join_next().await {
            match res {
                Ok(v) => outputs.push(v),
                Err(e) => {
                    assert!(e.is_cancelled(), "{e}");
                    cancelled += 1;
                }
            }
        }
        // A cancelled task's future is dropped before its result is ready.
        assert_eq!(drops.get(), 10);
        assert_eq!(cancelled, 10);
        assert_eq!(outputs, [Some(1)]);
    }

    async fn shutdown_aborts_waits_and_empties() {
        let drops = DropCount::new();
        let mut set = JoinSet::new();
        for _ in 0..20 {
            let guard = drops.guard();
            set.spawn(async move {
                let _guard = guard;
                pending::<()>().await
            });
        }
        set.shutdown().await;
        assert!(set.is_empty());
        assert_eq!(drops.get(), 20);
        // The set is usable again.
        set.spawn(async {});
        assert!(set.join_next().await.unwrap().is_ok());
    }

    async fn panics_come_back_as_is_panic() {
        quiet_panics();
        let mut set = JoinSet::new();
        set.spawn(async {
            if true {
                panic!("deliberate: join set");
            }
            0u32
        });
        set.spawn(async { 5u32 });
        let (mut panics, mut values) = (0, 0);
        while let Some(res) = set.join_next().await {
            match res {
                Ok(v) => values += v,
                Err(e) => {
                    assert!(e.is_panic());
                    let payload = e.into_panic();
                    assert_eq!(payload.downcast_ref::<&str>(), Some(&"deliberate: join set"));
                    panics += 1;
                }
            }
        }
        assert_eq!((panics, values), (1, 5));
    }

    async fn try_join_next_never_waits() {
        let mut set = JoinSet::new();
        let (tx, rx) = oneshot::channel::<()>();
        let abort = set.spawn(async move {
            rx.await.unwrap();
            9u8
        });
        assert!(set.try_join_next().is_none());
        assert_eq!(set.len(), 1);
        tx.send(()).unwrap();
        until(|| abort.is_finished()).await;
        assert_eq!(set.try_join_next().unwrap().unwrap(), 9);
        assert!(set.try_join_next().is_none());
        assert!(set.is_empty());
    }

    async fn detach_all_lets_tasks_run_on() {
        let (tx, rx) = async_channel::unbounded::<u32>();
        let (go_tx, go_rx) = async_channel::unbounded::<()>();
        let mut set = JoinSet::new();
        for i in 0..8 {
            let (tx, go_rx) = (tx.clone(), go_rx.clone());
            set.spawn(async move {
                go_rx.recv().await.unwrap();
                tx.send(i).await.unwrap();
            });
        }
        set.detach_all();
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
        drop(set);
        for _ in 0..8 {
            go_tx.send(()).await.unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..8 {
            got.push(rx.recv().await.unwrap());
        }
        got.sort();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
    }

    async fn join_next_with_id_names_the_task() {
        let mut set = JoinSet::new();
        let mut ids = HashSet::new();
        for i in 0..16u32 {
            ids.insert(set.spawn(async move { (task::id(), i) }).id());
        }
        while let Some(res) = set.join_next_with_id().await {
            let (id, (inside, _)) = res.unwrap();
            assert_eq!(id, inside);
            assert!(ids.remove(&id));
        }
        assert!(ids.is_empty());
    }

    async fn join_all_collects_and_resumes_panics() {
        quiet_panics();
        let set: JoinSet<u32> = (0..10).map(|i| async move { i }).collect();
        let mut out = set.join_all().await;
        out.sort();
        assert_eq!(out, (0..10).collect::<Vec<_>>());

        // A panic inside resumes in `join_all`'s caller, and the tasks left
        // in the set are aborted.
        let drops = DropCount::new();
        let guard = drops.guard();
        let mut set = JoinSet::new();
        set.spawn(async move {
            let _guard = guard;
            pending::<u32>().await
        });
        set.spawn(async {
            if true {
                panic!("deliberate: join_all");
            }
            0
        });
        let err = task::spawn(set.join_all()).await.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"deliberate: join_all"));
        let drops2 = drops.clone();
        until(move || drops2.get() == 1).await;
    }

    async fn extend_spawn_on_and_spawn_blocking() {
        let mut set = JoinSet::new();
        set.extend((0..4u64).map(|i| async move { i }));
        set.spawn_on(async { 100 }, &Handle::current());
        set.spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(1));
            1000
        });
        set.spawn_blocking_on(|| 10_000, &Handle::current());
        assert_eq!(set.len(), 7);
        let mut sum = 0;
        while let Some(res) = set.join_next().await {
            sum += res.unwrap();
        }
        assert_eq!(sum, 6 + 100 + 1000 + 10_000);
    }

    async fn join_next_is_cancel_safe() {
        let mut set = JoinSet::new();
        let (tx, rx) = oneshot::channel::<()>();
        let abort = set.spawn(async move {
            rx.await.unwrap();
            "kept"
        });
        {
            // Started and dropped before the task finished.
            let mut next = Box::pin(set.join_next());
            assert!(poll_once(&mut next).is_pending());
        }
        tx.send(()).unwrap();
        until(|| abort.is_finished()).await;
        assert_eq!(set.join_next().await.unwrap().unwrap(), "kept");
    }

    async fn abort_handles_outlive_the_set_and_clone() {
        let mut set = JoinSet::new();
        let abort = set.spawn(pending::<()>());
        let clone = abort.clone();
        assert_eq!(abort.id(), clone.id());
        drop(set);
        until(|| clone.is_finished()).await;
        // Aborting a task that is gone does nothing.
        abort.abort();
        assert!(abort.is_finished());
    }
}

/// With many tasks in the set, a `join_next` costs what it costs with one:
/// it polls the tasks that finished, not every handle.
#[test]
fn join_next_does_not_scan_the_set() {
    const IDLE: usize = 100_000;
    const JOINS: usize = 2_000;
    support::run(2, "join_next_does_not_scan_the_set", || async {
        let mut set = JoinSet::new();
        for _ in 0..IDLE {
            set.spawn(pending::<()>());
        }
        // Let every idle task leave its waker in place (its first poll).
        assert!(set.try_join_next().is_none());
        let start = Instant::now();
        for _ in 0..JOINS {
            set.spawn(async {});
            set.join_next().await.unwrap().unwrap();
        }
        let took = start.elapsed();
        // A scan of every handle per call would be 2e8 handle polls: far
        // beyond this bound even in a release build; the ready list takes
        // a few milliseconds.
        assert!(
            took < Duration::from_secs(10),
            "{JOINS} joins took {took:?}"
        );
        assert_eq!(set.len(), IDLE);
        set.shutdown().await;
        assert!(set.is_empty());
    });
}

rt_test! {
    async fn many_tasks_finishing_at_once_are_each_joined_once() {
        const N: usize = 5_000;
        let mut set = JoinSet::new();
        for i in 0..N {
            set.spawn(async move {
                for _ in 0..i % 4 {
                    task::yield_now().await;
                }
                i
            });
        }
        let mut seen = vec![false; N];
        while let Some(res) = set.join_next().await {
            let i = res.unwrap();
            assert!(!seen[i], "{i} joined twice");
            seen[i] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    async fn abort_all_racing_completions_accounts_for_every_task() {
        const N: usize = 2_000;
        let mut set = JoinSet::new();
        for i in 0..N {
            set.spawn(async move {
                for _ in 0..i % 8 {
                    task::yield_now().await;
                }
                i
            });
        }
        // Some have finished, some are running, some never ran.
        task::yield_now().await;
        set.abort_all();
        let (mut done, mut cancelled) = (HashSet::new(), 0);
        while let Some(res) = set.join_next().await {
            match res {
                Ok(i) => assert!(done.insert(i)),
                Err(e) => {
                    assert!(e.is_cancelled(), "{e}");
                    cancelled += 1;
                }
            }
        }
        assert_eq!(done.len() + cancelled, N);
    }
}

rt_test! {
    async fn dropping_an_abort_handle_does_not_abort() {
        let (tx, rx) = oneshot::channel::<()>();
        let handle = task::spawn(async move {
            rx.await.unwrap();
            "ran to the end"
        });
        drop(handle.abort_handle());
        tx.send(()).unwrap();
        assert_eq!(handle.await.unwrap(), "ran to the end");
    }

    async fn a_running_blocking_task_cannot_be_aborted() {
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let mut set = JoinSet::new();
        let abort = set.spawn_blocking(move || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            11u32
        });
        started_rx.await.unwrap();
        abort.abort();
        go_tx.send(()).unwrap();
        assert_eq!(set.join_next().await.unwrap().unwrap(), 11);
    }
}
