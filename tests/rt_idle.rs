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
const IDLE: Duration = Duration::from_secs(1);

/// CPU time its threads may use in that time. A spinning thread would use
/// the whole second, and still a tenth of it on a machine ten times busier
/// than this suite makes it; a parked one uses none, however busy the
/// machine.
const MAX_CPU: Duration = Duration::from_millis(20);

/// Context switches allowed in that time. A thread that wakes on a 10 ms
/// tick would make a hundred, a polling loop thousands; a parked one none.
const MAX_SWITCHES: u64 = 40;

fn measure_idle(name: &str, workers: usize) {
    // Workers, the netpoll thread and its watchdog, and no other.
    support::threads::wait_exactly(name, workers + support::threads::SERVICE_THREADS);
    // The work just done leaves stragglers (a worker still parking), the
    // longer the busier the machine. Nothing to await: we want nothing to
    // happen, so wait until it does not.
    let before =
        support::threads::wait_quiet(name, Duration::from_millis(100), Duration::from_secs(5));
    thread::sleep(IDLE);
    let after = support::threads::usage(name);
    let (cpu, switches) = after.since(&before);
    assert!(
        cpu <= MAX_CPU,
        "idle runtime used {cpu:?} of CPU in {IDLE:?} ({after:?})"
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
