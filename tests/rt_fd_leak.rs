//! Building and dropping runtimes leaks no file descriptors.
//!
//! One test in its own binary, so no other test opens or closes
//! descriptors while it counts them.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use gopark::runtime;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[test]
fn dropped_runtimes_close_their_descriptors() {
    support::guard(4, "dropped_runtimes_close_their_descriptors", || {
        let before = open_fds();
        let mut immediately_after = Vec::new();
        for round in 0..10 {
            let workers = if round % 2 == 0 { 1 } else { 4 };
            let rt = support::runtime(workers, "fdleak");
            rt.block_on(async {
                let parked = runtime::spawn(std::future::pending::<()>());
                runtime::spawn_blocking(|| 1).await.unwrap();
                runtime::time::sleep(Duration::from_millis(1)).await;
                runtime::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
                    .await
                    .unwrap_err();
                drop(parked);
            });
            drop(rt);
            immediately_after.push(open_fds());
        }
        // Blocking threads exit on their own after the drop; they may hold
        // the last reference to the runtime's poller. Wait for them
        // (bounded: there is nothing to await).
        let start = Instant::now();
        while support::threads::usage("fdleak").threads > 0 {
            assert!(start.elapsed() < Duration::from_secs(2), "threads linger");
            thread::sleep(Duration::from_millis(1));
        }
        let after = open_fds();
        assert_eq!(
            after, before,
            "descriptors leaked over 10 runtimes (counts right after each drop: \
             {immediately_after:?})"
        );
    });
}
