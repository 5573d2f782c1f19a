//! Spawning: values through `JoinHandle`, many tasks, spawning from plain
//! threads and from other runtimes, nested spawn-and-await, handles.

#[macro_use]
mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use futures_channel::oneshot;
use gopark::runtime::{self, Handle, JoinHandle};

rt_test! {
    async fn values_through_join_handle() {
        assert_eq!(runtime::spawn(async { 42u8 }).await.unwrap(), 42);
        assert_eq!(
            runtime::spawn(async { String::from("hello") }).await.unwrap(),
            "hello"
        );
        let v = runtime::spawn(async { vec![1u64; 1000] }).await.unwrap();
        assert_eq!(v.iter().sum::<u64>(), 1000);
        runtime::spawn(async {}).await.unwrap();
        // A big output (bigger than any inline slot) moves through intact.
        let big = runtime::spawn(async { [7u8; 16 * 1024] }).await.unwrap();
        assert!(big.iter().all(|&b| b == 7));
        // A handle can be awaited from a different task than the spawner.
        let h = runtime::spawn(async { 5 });
        let waiter = runtime::spawn(async move { h.await.unwrap() * 2 });
        assert_eq!(waiter.await.unwrap(), 10);
    }
}

rt_test! {
    async fn hundred_thousand_tasks_complete() {
        const N: usize = 100_000;
        let done = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(N);
        for i in 0..N {
            let done = done.clone();
            handles.push(runtime::spawn(async move {
                done.fetch_add(1, Ordering::Relaxed);
                i
            }));
        }
        let mut sum = 0usize;
        for h in handles {
            sum += h.await.unwrap();
        }
        assert_eq!(done.load(Ordering::Relaxed), N);
        assert_eq!(sum, N * (N - 1) / 2);
    }
}

rt_test! {
    async fn hundred_thousand_detached_tasks_complete() {
        // Detached tasks report through a channel; nothing holds a handle.
        const N: usize = 100_000;
        let (tx, mut rx) = futures_channel::mpsc::unbounded::<usize>();
        for i in 0..N {
            let tx = tx.clone();
            drop(runtime::spawn(async move {
                tx.unbounded_send(i).unwrap();
            }));
        }
        drop(tx);
        let mut seen = vec![false; N];
        let mut count = 0;
        while let Some(i) = futures_util::StreamExt::next(&mut rx).await {
            assert!(!seen[i], "task {i} ran twice");
            seen[i] = true;
            count += 1;
        }
        assert_eq!(count, N);
    }
}

#[test]
fn spawn_from_plain_thread_uses_default_runtime() {
    support::guard(0, "spawn_from_plain_thread", || {
        let t = thread::spawn(|| {
            assert!(Handle::try_current().is_err());
            let (tx, rx) = mpsc::channel();
            let h = runtime::spawn(async move {
                tx.send(support::thread_name()).unwrap();
                Handle::current().num_workers()
            });
            // Observed without awaiting: the task runs on its own.
            let name = rx.recv_timeout(Duration::from_secs(5)).expect("task ran");
            assert!(name.starts_with("gopark-worker-"), "ran on {name:?}");
            // And awaited from the plain thread through `block_on`.
            let workers = runtime::block_on(h).unwrap();
            assert_eq!(
                workers,
                support::proc::default_workers(),
                "the default runtime's size"
            );
            // `spawn_blocking` works from a plain thread too.
            let v = runtime::block_on(runtime::spawn_blocking(|| 6 * 7)).unwrap();
            assert_eq!(v, 42);
        });
        t.join().unwrap();
    });
}

rt_test! {
    fn spawn_from_plain_thread_via_handle(workers: usize) {
        let rt = support::runtime(workers, "viahandle");
        let handle = rt.handle().clone();
        let t = thread::spawn(move || {
            let hs: Vec<JoinHandle<String>> = (0..100)
                .map(|_| handle.spawn(async { support::thread_name() }))
                .collect();
            hs
        });
        let hs = t.join().unwrap();
        rt.block_on(async {
            runtime::time::timeout(support::LIMIT, async {
                for h in hs {
                    let name = h.await.unwrap();
                    assert!(name.starts_with("viahandle-worker-"), "ran on {name:?}");
                }
            })
            .await
            .expect("tasks spawned through a Handle complete");
        });
    }
}

rt_test! {
    fn runtime_spawn_and_block_on(workers: usize) {
        let rt = support::runtime(workers, "rtspawn");
        let h = rt.spawn(async { support::thread_name() });
        let name = rt.block_on(h).unwrap();
        assert!(name.starts_with("rtspawn-worker-"), "ran on {name:?}");
        // `spawn` inside `block_on` goes to this runtime, not the default.
        let name = rt.block_on(async { runtime::spawn(async { support::thread_name() }).await });
        assert!(name.unwrap().starts_with("rtspawn-worker-"));
        assert_eq!(rt.block_on(async { 3 }), 3);
    }
}

rt_test! {
    fn spawn_onto_another_runtime(workers: usize) {
        // A task on runtime A spawns onto runtime B through B's handle, and
        // wakes a task of B: B's work must run on B's workers.
        let a = support::runtime(workers, "rta");
        let b = support::runtime(workers, "rtb");
        let b_handle = b.handle().clone();
        let (tx, rx) = oneshot::channel::<u32>();
        let waiting_on_b = b.spawn(async move {
            let v = rx.await.unwrap();
            (v, support::thread_name())
        });
        let res = a.block_on(async move {
            runtime::time::timeout(support::LIMIT, async move {
                runtime::spawn(async move {
                    assert!(support::on_worker_of("rta"));
                    let name = b_handle.spawn(async { support::thread_name() }).await.unwrap();
                    tx.send(7).unwrap();
                    let woken = waiting_on_b.await.unwrap();
                    (name, woken)
                })
                .await
                .unwrap()
            })
            .await
            .expect("bounded")
        });
        assert!(res.0.starts_with("rtb-worker-"), "spawned task ran on {:?}", res.0);
        assert_eq!(res.1 .0, 7);
        assert!(res.1 .1.starts_with("rtb-worker-"), "woken task ran on {:?}", res.1 .1);
    }
}

/// Spawns two children and awaits both, `depth` levels deep.
fn nest(depth: u32) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if depth == 0 {
            return 1;
        }
        let a = runtime::spawn(nest(depth - 1));
        let b = runtime::spawn(nest(depth - 1));
        runtime::yield_now().await;
        a.await.unwrap() + b.await.unwrap()
    })
}

rt_test! {
    async fn nested_spawn_and_await_does_not_deadlock() {
        // On one worker every level waits for tasks queued behind it.
        assert_eq!(nest(10).await, 1 << 10);
        // A straight chain, each task awaiting the next.
        fn chain(depth: u32) -> Pin<Box<dyn Future<Output = u32> + Send>> {
            Box::pin(async move {
                if depth == 0 {
                    0
                } else {
                    runtime::spawn(chain(depth - 1)).await.unwrap() + 1
                }
            })
        }
        assert_eq!(chain(200).await, 200);
    }
}

#[test]
fn handle_current_inside_block_on() {
    support::guard(1, "handle_current_inside_block_on", || {
        assert!(
            Handle::try_current().is_err(),
            "no runtime outside block_on"
        );
        let rt = support::runtime(3, "hcurrent");
        let workers = rt.block_on(async {
            let h = Handle::current();
            // The handle spawns onto this runtime.
            let name = h.spawn(async { support::thread_name() }).await.unwrap();
            assert!(name.starts_with("hcurrent-worker-"), "ran on {name:?}");
            // Inside a task too.
            runtime::spawn(async { Handle::current().num_workers() })
                .await
                .unwrap();
            h.num_workers()
        });
        assert_eq!(workers, 3);
        assert_eq!(rt.handle().num_workers(), 3);
        assert!(
            Handle::try_current().is_err(),
            "context restored after block_on"
        );
        // A `block_on` of another runtime nested in this one's (on the same
        // plain thread) enters that runtime, then restores this one.
        let other = support::runtime(1, "hother");
        rt.block_on(async {
            let inner = other.block_on(async {
                runtime::spawn(async { support::thread_name() })
                    .await
                    .unwrap()
            });
            assert!(inner.starts_with("hother-worker-"), "ran on {inner:?}");
            assert_eq!(Handle::current().num_workers(), 3);
        });
    });
}

rt_test! {
    async fn num_alive_tasks_counts_parked_tasks() {
        let handle = Handle::current();
        let before = handle.num_alive_tasks();
        assert_eq!(before, 1, "on a fresh runtime, the test body alone is alive");
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (tx, rx) = oneshot::channel::<()>();
            senders.push(tx);
            tasks.push(runtime::spawn(async move {
                let _ = rx.await;
            }));
        }
        assert_eq!(handle.num_alive_tasks(), before + 50, "none of them can finish yet");
        for tx in senders {
            tx.send(()).unwrap();
        }
        for t in tasks {
            t.await.unwrap();
        }
        // A finished task leaves the count right after it wakes its joiner;
        // yield until it has (bounded by the test's timeout).
        while handle.num_alive_tasks() > before {
            runtime::yield_now().await;
        }
        assert_eq!(handle.num_alive_tasks(), before);
    }
}
