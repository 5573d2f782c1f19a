//! Runtime handles as a tokio user reaches for them: `Handle::current`,
//! `Handle::try_current`, `Runtime::enter` and `Handle::enter`,
//! `Handle::block_on`.

mod support;

use std::thread;
use std::time::Duration;

use gopark::runtime::{self, Builder, Handle};

/// The name of the thread a task of the current runtime runs on.
async fn worker_name() -> String {
    runtime::spawn(async { thread::current().name().unwrap_or("").to_string() })
        .await
        .expect("task")
}

#[test]
fn try_current_is_an_error_outside_a_runtime_and_ok_inside() {
    let err = Handle::try_current().expect_err("a plain thread is in no runtime");
    assert!(err.is_missing_context());
    assert!(err.to_string().contains("no gopark runtime"), "{err}");
    // The error is an ordinary error value: it goes into a boxed error.
    let boxed: Box<dyn std::error::Error + Send + Sync> = err.into();
    assert!(!boxed.to_string().is_empty());

    let rt = Builder::new()
        .worker_threads(1)
        .thread_name("tc")
        .build()
        .unwrap();
    let workers = rt.block_on(async { Handle::try_current().map(|h| h.num_workers()) });
    assert_eq!(workers, Ok(1));
    // And on a worker.
    let on_worker = rt
        .block_on(rt.spawn(async { Handle::try_current().is_ok() }))
        .unwrap();
    assert!(on_worker);
}

#[test]
fn enter_sends_a_plain_threads_spawns_to_that_runtime() {
    let rt = Builder::new()
        .worker_threads(1)
        .thread_name("entered")
        .build()
        .unwrap();
    let other = Builder::new()
        .worker_threads(1)
        .thread_name("other")
        .build()
        .unwrap();
    let task = {
        let _guard = rt.enter();
        assert!(Handle::try_current().is_ok());
        // A spawn from this plain thread goes to `rt`, not to the default
        // runtime.
        runtime::spawn(async { thread::current().name().unwrap_or("").to_string() })
    };
    let name = rt.block_on(task).unwrap();
    assert!(name.starts_with("entered-worker-"), "{name}");
    // The guard is gone: the thread is in no runtime again.
    assert!(Handle::try_current().is_err());

    // Nested guards restore the one entered before.
    let outer = rt.enter();
    {
        let _inner = other.handle().enter();
        let name = other.block_on(worker_name());
        assert!(name.starts_with("other-worker-"), "{name}");
        let task = runtime::spawn(async { thread::current().name().unwrap_or("").to_string() });
        assert!(other.block_on(task).unwrap().starts_with("other-worker-"));
    }
    let task = runtime::spawn(async { thread::current().name().unwrap_or("").to_string() });
    drop(outer);
    assert!(rt.block_on(task).unwrap().starts_with("entered-worker-"));
}

#[test]
fn timers_made_under_enter_use_that_runtimes_clock() {
    let rt = Builder::new()
        .worker_threads(1)
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();
    // The paused clock stands still for a plain thread that entered it.
    let a = gopark::time::Instant::now();
    thread::sleep(Duration::from_millis(20));
    assert_eq!(gopark::time::Instant::now(), a);
}

#[test]
fn handle_block_on_from_another_thread() {
    let rt = Builder::new()
        .worker_threads(2)
        .thread_name("hb")
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    let name = thread::spawn(move || handle.block_on(worker_name()))
        .join()
        .unwrap();
    assert!(name.starts_with("hb-worker-"), "{name}");
}

#[test]
fn current_panics_outside_a_runtime_with_a_clear_message() {
    let err = thread::spawn(Handle::current)
        .join()
        .expect_err("Handle::current outside a runtime panics");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("outside a gopark runtime"), "{msg}");
}
