//! Building and dropping runtimes leaks no file descriptors.
//!
//! One test in its own binary, so no other test opens or closes
//! descriptors while it counts them.

mod support;

use std::time::Duration;

use gopark::runtime;
use support::proc::fd_count;

#[test]
fn dropped_runtimes_close_their_descriptors() {
    support::guard(4, "dropped_runtimes_close_their_descriptors", || {
        let before = fd_count();
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
            immediately_after.push(fd_count());
        }
        // Blocking threads exit on their own after the drop; they may hold
        // the last reference to the runtime's poller. Wait for them
        // (bounded: there is nothing to await).
        support::threads::wait_gone("fdleak");
        let after = fd_count();
        assert_eq!(
            after, before,
            "descriptors leaked over 10 runtimes (counts right after each drop: \
             {immediately_after:?})"
        );
    });
}
