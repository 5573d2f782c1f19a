//! The default runtime honours `GOPARK_WORKERS`, like Go's `GOMAXPROCS`.
//!
//! One test in its own binary: the default runtime is created once per
//! process, so no other test may touch it first.

mod support;

use gopark::runtime::{self, Handle};

#[test]
fn default_runtime_honours_gopark_workers() {
    support::guard(3, "default_runtime_honours_gopark_workers", || {
        std::env::set_var("GOPARK_WORKERS", "3");
        let (workers, name) = runtime::block_on(async {
            let name = runtime::spawn(async { support::thread_name() })
                .await
                .unwrap();
            (Handle::current().num_workers(), name)
        });
        assert_eq!(workers, 3);
        assert!(name.starts_with("gopark-worker-"), "ran on {name:?}");
        // Spawning from a plain thread lands on the same runtime.
        let n = std::thread::spawn(|| {
            runtime::block_on(runtime::spawn(async { Handle::current().num_workers() }))
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(n, 3);
    });
}
