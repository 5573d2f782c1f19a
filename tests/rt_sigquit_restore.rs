//! SIGQUIT after a runtime that dumped on it is gone: the process ends as
//! it would have without gopark (the default action of SIGQUIT), while a
//! runtime that still lives goes on dumping.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use support::child;

/// The variable that tells the child test which role to play.
const ROLE: &str = "GOPARK_TEST_SIGQUIT_ROLE";

/// The child: starts and drops runtimes with the SIGQUIT dump, then
/// raises SIGQUIT. Returns at once unless it is the child.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    // No core file for the death this test expects.
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid, initialised rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) }, 0);
    let first = gopark::runtime::Builder::new()
        .worker_threads(1)
        .build()
        .unwrap();
    let second = gopark::runtime::Builder::new()
        .worker_threads(1)
        .build()
        .unwrap();
    drop(first);
    if role == "one-left" {
        // One runtime still dumps: the process goes on.
        // SAFETY: raise(3) on this process.
        assert_eq!(unsafe { libc::raise(libc::SIGQUIT) }, 0);
        println!("SURVIVED=1");
        return;
    }
    drop(second);
    // SAFETY: raise(3) on this process.
    assert_eq!(unsafe { libc::raise(libc::SIGQUIT) }, 0);
    // The default action ends the process before this line.
    std::thread::sleep(Duration::from_secs(2));
    println!("SURVIVED=1");
}

fn run(role: &str) -> child::Outcome {
    let cmd = child::command(
        "child_role",
        &[
            (ROLE, role.to_string()),
            ("GOPARK_DUMP_ON_SIGQUIT", "1".to_string()),
        ],
    );
    child::run(cmd, Duration::from_secs(60))
}

#[test]
fn sigquit_terminates_once_every_dumping_runtime_is_dropped() {
    let out = run("all-dropped");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGQUIT),
        "the child was not killed by SIGQUIT: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert_eq!(out.value("SURVIVED"), None);
}

#[test]
fn sigquit_still_dumps_while_one_runtime_lives() {
    let out = run("one-left");
    out.assert_passed("one runtime left");
    assert_eq!(out.value("SURVIVED").as_deref(), Some("1"));
}
