//! `JoinError`: `Send + Sync + Error + 'static`, so `?` carries it into
//! `anyhow::Error` and `Box<dyn Error + Send + Sync>`; panic and
//! cancellation, the payload, the task's id.

#[macro_use]
mod support;

use std::error::Error;
use std::future::pending;
use std::io;

use gopark::task::{self, JoinError};
use support::rt::quiet_panics;

fn assert_send_sync_error<E: Error + Send + Sync + 'static>() {}

#[test]
fn join_error_is_send_sync_error_static() {
    assert_send_sync_error::<JoinError>();
}

async fn boom() -> u32 {
    if true {
        panic!("deliberate: boom");
    }
    1
}

async fn through_anyhow() -> anyhow::Result<u32> {
    let v = task::spawn(async { 41u32 }).await?;
    let w = task::spawn(boom()).await?;
    Ok(v + w)
}

async fn through_box() -> Result<u32, Box<dyn Error + Send + Sync>> {
    let v = task::spawn(async { 1u32 }).await?;
    let w = task::spawn(pending::<u32>());
    w.abort();
    Ok(v + w.await?)
}

async fn through_io() -> io::Result<u32> {
    Ok(task::spawn(boom()).await?)
}

rt_test! {
    async fn question_mark_into_anyhow_and_boxed_errors() {
        quiet_panics();
        let err = through_anyhow().await.unwrap_err();
        let join = err.downcast_ref::<JoinError>().expect("a JoinError inside");
        assert!(join.is_panic());
        assert!(err.to_string().contains("deliberate: boom"), "{err}");

        let err = through_box().await.unwrap_err();
        let join = err.downcast::<JoinError>().expect("a JoinError inside");
        assert!(join.is_cancelled());

        // And into io::Error, the error still reachable inside.
        let err = through_io().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<JoinError>());
        assert!(inner.is_some_and(JoinError::is_panic));
    }

    async fn panic_and_cancel_are_told_apart() {
        quiet_panics();
        let h = task::spawn(boom());
        let id = h.id();
        let err = h.await.unwrap_err();
        assert!(err.is_panic() && !err.is_cancelled());
        assert_eq!(err.id(), id);
        assert_eq!(err.to_string(), format!("task {id} panicked with message \"deliberate: boom\""));
        assert!(format!("{err:?}").contains("deliberate: boom"));
        let payload = err.try_into_panic().expect("a panic");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"deliberate: boom"));

        let h = task::spawn(pending::<()>());
        let id = h.id();
        h.abort();
        let err = h.await.unwrap_err();
        assert!(err.is_cancelled() && !err.is_panic());
        assert_eq!(err.to_string(), format!("task {id} was cancelled"));
        assert_eq!(format!("{err:?}"), format!("JoinError::Cancelled({id:?})"));
        // Not a panic: handed back.
        let err = err.try_into_panic().unwrap_err();
        assert!(err.is_cancelled());
    }

    async fn a_non_string_payload_comes_back_whole() {
        quiet_panics();
        #[derive(Debug, PartialEq)]
        struct Code(u32);
        let err = task::spawn(async {
            if true {
                std::panic::panic_any(Code(7));
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), format!("task {} panicked", err.id()));
        assert_eq!(err.into_panic().downcast::<Code>().ok().map(|c| *c), Some(Code(7)));
    }

    async fn the_error_can_be_shared_between_threads() {
        quiet_panics();
        let err = std::sync::Arc::new(task::spawn(boom()).await.unwrap_err());
        let shared = std::sync::Arc::clone(&err);
        let text = std::thread::spawn(move || shared.to_string()).join().unwrap();
        assert_eq!(text, err.to_string());
    }
}

#[test]
fn into_panic_on_a_cancelled_task_panics() {
    quiet_panics();
    let rt = support::runtime(1, "je");
    let err = rt.block_on(async {
        let h = task::spawn(pending::<()>());
        h.abort();
        h.await.unwrap_err()
    });
    let res =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(err.into_panic())));
    assert!(res.is_err());
}
