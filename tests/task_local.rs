//! `gopark::task_local!`: each behaviour tokio's documentation promises for
//! task-locals, on gopark.

#[macro_use]
mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use futures::FutureExt;
use gopark::runtime::time::sleep;
use gopark::task;
use support::future::poll_once;
use support::rt::quiet_panics;
use support::{DropCount, DropGuard, OnDrop};

gopark::task_local! {
    /// The request being served.
    pub static REQUEST_ID: u64;
    static NAME: String;
}

gopark::task_local! {
    static GUARDED: DropGuard;
}

rt_test! {
    async fn value_survives_every_await_on_any_worker() {
        let mut handles = Vec::new();
        for id in 0..32u64 {
            handles.push(task::spawn(REQUEST_ID.scope(id, async move {
                for round in 0..20 {
                    assert_eq!(REQUEST_ID.get(), id, "round {round}");
                    match round % 3 {
                        0 => task::yield_now().await,
                        1 => sleep(Duration::from_millis(1)).await,
                        // Awaiting another task parks this one until a
                        // worker (maybe another) finishes it.
                        _ => task::spawn(async {}).await.unwrap(),
                    }
                }
                REQUEST_ID.with(|v| *v)
            })));
        }
        for (id, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), id as u64);
        }
    }

    async fn a_spawned_task_does_not_inherit_it() {
        let seen = REQUEST_ID
            .scope(5, async {
                assert_eq!(REQUEST_ID.get(), 5);
                task::spawn(async { REQUEST_ID.try_with(|v| *v) }).await.unwrap()
            })
            .await;
        assert!(seen.is_err());
    }

    async fn nested_scopes_shadow_and_restore() {
        REQUEST_ID
            .scope(1, async {
                let inner = REQUEST_ID.scope(2, async {
                    task::yield_now().await;
                    assert_eq!(REQUEST_ID.get(), 2);
                    NAME.scope("inner".to_string(), async {
                        task::yield_now().await;
                        (REQUEST_ID.get(), NAME.get())
                    })
                    .await
                });
                assert_eq!(inner.await, (2, "inner".to_string()));
                assert_eq!(REQUEST_ID.get(), 1);
                assert!(NAME.try_with(|_| ()).is_err());
                task::yield_now().await;
                assert_eq!(REQUEST_ID.get(), 1);
            })
            .await;
        assert!(REQUEST_ID.try_with(|_| ()).is_err());
    }

    async fn a_panic_inside_scope_restores_the_outer_value() {
        quiet_panics();
        REQUEST_ID
            .scope(10, async {
                let res = AssertUnwindSafe(REQUEST_ID.scope(20, async {
                    task::yield_now().await;
                    assert_eq!(REQUEST_ID.get(), 20);
                    panic!("deliberate: inside a scope");
                }))
                .catch_unwind()
                .await;
                assert!(res.is_err());
                assert_eq!(REQUEST_ID.get(), 10);
                // And the synchronous scope.
                let res = catch_unwind(|| {
                    REQUEST_ID.sync_scope(30, || panic!("deliberate: inside sync_scope"))
                });
                assert!(res.is_err());
                assert_eq!(REQUEST_ID.get(), 10);
            })
            .await;
    }

    async fn the_scope_value_is_dropped_with_its_future() {
        let drops = DropCount::new();
        GUARDED.scope(drops.guard(), async {}).await;
        assert_eq!(drops.get(), 1);
        // A scope dropped before it completes drops its value, and the
        // inner future's destructor still sees it.
        let (tx, rx) = std::sync::mpsc::channel();
        let inner_drop = OnDrop(move || {
            tx.send(REQUEST_ID.try_with(|v| *v)).unwrap();
        });
        let mut fut = Box::pin(REQUEST_ID.scope(77, async move {
            let _inner_drop = inner_drop;
            std::future::pending::<()>().await
        }));
        assert!(poll_once(&mut fut).is_pending());
        assert_eq!(fut.as_ref().get_ref().get_ref(), Some(&77));
        drop(fut);
        assert_eq!(rx.recv().unwrap(), Ok(77));
        assert!(REQUEST_ID.try_with(|_| ()).is_err());
    }
}

#[test]
fn try_with_and_with_outside_a_scope() {
    quiet_panics();
    let err = REQUEST_ID.try_with(|v| *v).unwrap_err();
    assert_eq!(err.to_string(), "task-local value not set");
    let _: &dyn std::error::Error = &err;
    let res = catch_unwind(|| REQUEST_ID.with(|v| *v));
    let msg = *res.unwrap_err().downcast::<&str>().unwrap();
    assert!(msg.contains("outside its scope"), "{msg}");
    assert!(catch_unwind(|| REQUEST_ID.get()).is_err());
}

#[test]
fn sync_scope_sets_the_value_for_a_closure() {
    let len = NAME.sync_scope("gopark".to_string(), || {
        assert_eq!(NAME.get(), "gopark");
        NAME.with(|n| n.len())
    });
    assert_eq!(len, 6);
    assert!(NAME.try_with(|_| ()).is_err());
    // Nested, and a `with` inside a `with` of the same key.
    let both = REQUEST_ID.sync_scope(1, || {
        REQUEST_ID.sync_scope(2, || REQUEST_ID.with(|a| REQUEST_ID.with(|b| a + b)))
    });
    assert_eq!(both, 4);
}

#[test]
fn entering_a_scope_inside_with_of_the_same_key_panics() {
    quiet_panics();
    let res = catch_unwind(|| {
        REQUEST_ID.sync_scope(1, || REQUEST_ID.with(|_| REQUEST_ID.sync_scope(2, || ())))
    });
    let msg = *res.unwrap_err().downcast::<&str>().unwrap();
    assert!(msg.contains("borrowed"), "{msg}");
    // The outer scope unwound cleanly.
    assert!(REQUEST_ID.try_with(|_| ()).is_err());
}

#[test]
fn block_on_futures_are_scoped_too() {
    // The value belongs to the future, not to a task: `block_on`'s own
    // future sees it as well.
    let id = gopark::runtime::block_on(REQUEST_ID.scope(3, async {
        task::yield_now().await;
        REQUEST_ID.get()
    }));
    assert_eq!(id, 3);
}
