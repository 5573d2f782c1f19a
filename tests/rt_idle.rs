//! An idle runtime costs nothing: its workers and netpoll thread sleep in
//! the kernel instead of spinning, with or without parked tasks.

#[macro_use]
mod support;

use std::future::pending;
use std::thread;
use std::time::Duration;

use futures_channel::oneshot;
use gopark::runtime;

/// How long the runtime sits idle while it is measured.
const IDLE: Duration = Duration::from_millis(300);

/// CPU ticks (usually 10 ms each) the runtime's threads may use in that
/// time: a spinning worker would use ~30 per thread.
const MAX_TICKS: u64 = 2;

/// Context switches allowed in that time (a few stragglers from the work
/// that just finished; a polling loop would make hundreds).
const MAX_SWITCHES: u64 = 20;

fn measure_idle(name: &str, workers: usize) {
    let before = support::threads::wait_for(name, workers + 1);
    assert_eq!(
        before.threads,
        workers + 1,
        "workers and netpoll: {before:?}"
    );
    // Nothing to await: we want nothing to happen.
    thread::sleep(IDLE);
    let after = support::threads::usage(name);
    let ticks = after.cpu_ticks - before.cpu_ticks;
    let switches = after.switches - before.switches;
    assert!(
        ticks <= MAX_TICKS,
        "idle runtime used {ticks} CPU ticks in {IDLE:?} ({after:?})"
    );
    assert!(
        switches <= MAX_SWITCHES,
        "idle runtime switched {switches} times in {IDLE:?} ({after:?})"
    );
}

rt_test! {
    fn idle_runtime_uses_no_cpu(workers: usize) {
        let name = format!("idle{workers}");
        let rt = support::runtime(workers, &name);
        // Do some work first so every worker has run and parked.
        rt.block_on(async {
            let tasks: Vec<_> = (0..1_000).map(|i| runtime::spawn(async move { i })).collect();
            for t in tasks {
                t.await.unwrap();
            }
            runtime::time::sleep(Duration::from_millis(2)).await;
        });
        measure_idle(&name, workers);
    }
}

rt_test! {
    fn idle_runtime_with_parked_tasks_uses_no_cpu(workers: usize) {
        let name = format!("idlep{workers}");
        let rt = support::runtime(workers, &name);
        let mut senders = Vec::new();
        rt.block_on(async {
            for _ in 0..10_000 {
                drop(runtime::spawn(pending::<()>()));
            }
            let mut started = Vec::new();
            for _ in 0..1_000 {
                let (tx, rx) = oneshot::channel::<()>();
                let (stx, srx) = oneshot::channel::<()>();
                senders.push(tx);
                started.push(srx);
                drop(runtime::spawn(async move {
                    stx.send(()).unwrap();
                    let _ = rx.await;
                }));
            }
            for s in started {
                s.await.unwrap();
            }
            // A timer far away must not make the netpoll thread tick.
            drop(runtime::spawn(runtime::time::sleep(Duration::from_secs(3600))));
        });
        measure_idle(&name, workers);
        drop(rt);
        drop(senders);
    }
}
