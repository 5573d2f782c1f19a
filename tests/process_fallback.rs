//! `gopark::process` without pidfds: the SIGCHLD fallback of kernels
//! older than 5.3, forced with `GOPARK_NO_PIDFD=1` before the first spawn.
//! Exit codes, kills, many children waited on at once (every SIGCHLD wakes
//! every waiter), a 1-worker runtime that keeps running, dropped children
//! reaped, and no descriptor or zombie left.
//!
//! A test binary of its own: the switch is read once per process. Its
//! tests run one at a time, since two of them count every child and
//! descriptor of the process.

mod support;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use gopark::process::{Command, Stdio};
use gopark::runtime::{self, time, Handle, TaskState};
use support::proc::fd_count;
use support::rt::{eventually, join, run_io, serial};

/// Sets `GOPARK_NO_PIDFD=1` before any test of this binary spawns a child.
fn no_pidfd() {
    static ONCE: Once = Once::new();
    // SAFETY-free in edition 2021; every test calls this first, and `Once`
    // makes the others wait, so nothing reads the environment meanwhile.
    ONCE.call_once(|| std::env::set_var("GOPARK_NO_PIDFD", "1"));
}

/// How many pidfds this process holds.
fn pidfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_str() == Some("anon_inode:[pidfd]"))
        .count()
}

/// Children of this process, running or zombie.
fn children() -> Vec<u32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("read /proc/self/task") {
        let path = task.expect("a task entry").path().join("children");
        if let Ok(list) = std::fs::read_to_string(path) {
            pids.extend(list.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
        }
    }
    pids
}

#[test]
fn exit_codes_and_kills() {
    no_pidfd();
    let _serial = serial();
    run_io(2, "fallback", Duration::from_secs(30), || async {
        let mut child = Command::new("sleep").arg("60").spawn()?;
        assert_eq!(pidfds(), 0, "the fallback opens no pidfd");
        child.kill().await?;
        assert_eq!(child.wait().await?.signal(), Some(libc::SIGKILL));
        assert_eq!(child.id(), None);

        let status = Command::new("sh").args(["-c", "exit 3"]).status().await?;
        assert_eq!(status.code(), Some(3));

        let output = Command::new("sh")
            .args(["-c", "echo hi; exit 4"])
            .output()
            .await?;
        assert_eq!(
            (output.status.code(), &output.stdout[..]),
            (Some(4), &b"hi\n"[..])
        );

        let err = Command::new("/no/such/program").output().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        Ok(())
    });
}

#[test]
fn many_waits_at_once() {
    no_pidfd();
    let _serial = serial();
    run_io(4, "fallback-many", Duration::from_secs(30), || async {
        // Each exit raises one SIGCHLD that every waiter sees; each must
        // still get its own child's status.
        let waits: Vec<_> = (0..50)
            .map(|i| {
                runtime::spawn(async move {
                    let status = Command::new("sh")
                        .arg("-c")
                        .arg(format!("sleep 0.{}; exit {i}", i % 3))
                        .status()
                        .await?;
                    Ok::<_, io::Error>((i, status))
                })
            })
            .collect();
        for wait in waits {
            let (i, status) = join(wait).await?;
            assert_eq!(status.code(), Some(i));
        }
        Ok(())
    });
}

#[test]
fn one_worker_keeps_running() {
    no_pidfd();
    let _serial = serial();
    run_io(1, "fallback-one", Duration::from_secs(30), || async {
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = {
            let ticks = ticks.clone();
            runtime::spawn(async move {
                let mut every = time::interval(Duration::from_millis(10));
                loop {
                    every.tick().await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let start = Instant::now();
        let waiter = runtime::spawn(async { Command::new("sleep").arg("0.5").status().await });
        let mut parked_seen = false;
        while !waiter.is_finished() {
            parked_seen |= Handle::current()
                .dump()
                .tasks()
                .iter()
                .any(|t| matches!(t.state, TaskState::Io { .. }));
            time::sleep(Duration::from_millis(20)).await;
        }
        let status = join(waiter).await?;
        let waited = start.elapsed();
        ticker.abort();
        assert!(status.success());
        assert!(waited >= Duration::from_millis(500));
        assert!(
            parked_seen,
            "the waiting task parked on its SIGCHLD listener"
        );
        let ticks = ticks.load(Ordering::Relaxed);
        assert!(
            ticks >= 10,
            "only {ticks} ticks while a task waited {waited:?}"
        );
        Ok(())
    });
}

#[test]
fn two_hundred_children_leave_nothing_behind() {
    no_pidfd();
    let _serial = serial();
    run_io(2, "fallback-leak", Duration::from_secs(60), || async {
        Command::new("/bin/true").output().await?;
        let fds = fd_count();
        let tasks = Handle::current().num_alive_tasks();
        assert_eq!(children(), Vec::<u32>::new());
        for i in 0..200 {
            let mut child = Command::new("/bin/true").stdout(Stdio::piped()).spawn()?;
            match i % 3 {
                0 => assert!(child.wait().await?.success()),
                1 => child.kill().await?,
                // Dropped unwaited: reaped by a background task.
                _ => drop(child),
            }
        }
        eventually("every child reaped", || children().is_empty()).await;
        eventually("every reaping task finished", || {
            Handle::current().num_alive_tasks() == tasks
        })
        .await;
        eventually("every descriptor closed", || fd_count() == fds).await;
        Ok(())
    });
}
