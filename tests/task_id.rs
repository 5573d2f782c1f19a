//! Task ids: unique for the life of the process, reachable from inside a
//! task (`task::id()`), from its handles and errors, and in the dump.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::panic::catch_unwind;
use std::time::{Duration, Instant};

use gopark::runtime::{Handle, TaskState};
use gopark::task::{self, Id, JoinSet};
use support::rt::quiet_panics;

rt_test! {
    async fn ids_are_unique_across_100k_spawns_from_many_threads() {
        // Four spawners on the workers and one plain thread, at once, so
        // ids come from several threads' blocks.
        let mut spawners = JoinSet::new();
        for _ in 0..4 {
            spawners.spawn(async {
                let mut ids = Vec::with_capacity(20_000);
                for _ in 0..20_000 {
                    let h = task::spawn(async { task::id() });
                    ids.push(h.id());
                    drop(h);
                    if ids.len() % 1000 == 0 {
                        task::yield_now().await;
                    }
                }
                ids
            });
        }
        let handle = Handle::current();
        let outside = std::thread::spawn(move || {
            (0..20_000).map(|_| handle.spawn(async {}).id()).collect::<Vec<Id>>()
        });
        let mut all = HashSet::new();
        while let Some(ids) = spawners.join_next().await {
            for id in ids.unwrap() {
                assert!(all.insert(id), "{id} handed out twice");
            }
        }
        for id in outside.join().unwrap() {
            assert!(all.insert(id), "{id} handed out twice");
        }
        assert_eq!(all.len(), 100_000);
    }

    async fn a_reused_address_gets_a_new_id() {
        // Spawn, finish, spawn again: the allocator hands the freed task's
        // memory to the next one, but never its id.
        let mut seen = HashSet::new();
        for _ in 0..2_000 {
            let h = task::spawn(async { task::id() });
            let id = h.id();
            assert_eq!(h.await.unwrap(), id);
            assert!(seen.insert(id), "{id} reused");
        }
    }

    async fn the_id_inside_matches_every_handle_and_error() {
        quiet_panics();
        let h = task::spawn(async { task::id() });
        let (id, abort) = (h.id(), h.abort_handle());
        assert_eq!(abort.id(), id);
        assert_eq!(h.await.unwrap(), id);
        assert_eq!(task::try_id().map(|_| ()), Some(()), "the test body is a task");

        let h = task::spawn(async {
            if true {
                panic!("deliberate: id");
            }
        });
        let id = h.id();
        assert_eq!(h.await.unwrap_err().id(), id);

        let h = task::spawn(std::future::pending::<()>());
        let id = h.id();
        h.abort();
        assert_eq!(h.await.unwrap_err().id(), id);

        // A blocking job is a task too.
        let h = task::spawn_blocking(task::try_id);
        let id = h.id();
        assert_eq!(h.await.unwrap(), Some(id));
    }
}

#[test]
fn id_outside_a_task() {
    quiet_panics();
    assert!(task::try_id().is_none());
    let payload = catch_unwind(task::id).unwrap_err();
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap();
    assert!(msg.contains("outside a task"), "{msg}");
    // `block_on`'s own future is not a task.
    let rt = support::runtime(1, "id");
    assert!(rt.block_on(async { task::try_id() }).is_none());
    // The id of a task polled inside `block_on` is restored after its poll.
    let inside = rt.block_on(async { task::spawn(async { task::id() }).await.unwrap() });
    assert!(task::try_id().is_none());
    let _ = inside;
}

#[test]
fn id_traits_and_text() {
    let rt = support::runtime(1, "idt");
    let (a, b) = rt.block_on(async {
        let a = task::spawn(async {}).id();
        let b = task::spawn(async {}).id();
        (a, b)
    });
    let copy = a;
    assert_eq!(copy, a);
    assert_ne!(a, b);
    assert_eq!(a.cmp(&b), a.as_u64().cmp(&b.as_u64()));
    assert_eq!(a.to_string(), a.as_u64().to_string());
    assert_eq!(format!("{a:?}"), format!("Id({})", a.as_u64()));
    let set: HashSet<Id> = [a, b, a].into_iter().collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn the_dump_names_tasks_by_id() {
    let dog = support::Watchdog::start("the_dump_names_tasks_by_id", Duration::from_secs(60));
    let rt = support::runtime(2, "idd");
    let sleeper = rt.spawn(gopark::runtime::time::sleep(Duration::from_secs(3600)));
    let sleeper_id = sleeper.id();
    let joiner = rt.spawn(async move { sleeper.await.is_ok() });
    let joiner_id = joiner.id();
    let start = Instant::now();
    let dump = loop {
        let dump = rt.handle().dump();
        let joining = dump
            .tasks()
            .iter()
            .any(|t| t.id == joiner_id && t.state == TaskState::Joining { task: sleeper_id });
        let sleeping = dump
            .tasks()
            .iter()
            .any(|t| t.id == sleeper_id && matches!(t.state, TaskState::Sleeping { .. }));
        if joining && sleeping {
            break dump;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{dump}");
        std::thread::sleep(Duration::from_millis(1));
    };
    let text = dump.to_string();
    assert!(
        text.contains(&format!("task {joiner_id} awaiting task {sleeper_id}")),
        "{text}"
    );
    joiner.abort();
    drop(rt);
    dog.disarm();
}
