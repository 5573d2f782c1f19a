//! `gopark::signal::ctrl_c`, tested in a child process: the test binary
//! runs itself again with `GOPARK_CTRL_C_CHILD` set, and the parent sends
//! the child a real SIGINT. Raising SIGINT in the test process itself could
//! kill the test harness if something were wrong.
//!
//! In the child the runtime's threads start before any listener exists,
//! with SIGINT's default action. The parent sends one SIGINT to the
//! process (the kernel picks the thread), then one to each worker and to
//! the netpoll thread (`tgkill`): each must run the handler instead of
//! taking the default action, and `ctrl_c()` must return each time.
//!
//! The child starts with SIGINT at `SIG_DFL` whatever the test process
//! inherited: a background job of a non-interactive shell, `nohup` and
//! some CI runners start it with SIGINT ignored, and `exec` keeps an
//! ignored signal ignored.

use std::future::Future;
use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::pin::pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use gopark::runtime::{self, time::timeout};
use gopark::signal::ctrl_c;

/// What the child is told to do.
const CHILD_ENV: &str = "GOPARK_CTRL_C_CHILD";
/// Bound on every wait, in the parent and the child.
const WAIT: Duration = Duration::from_secs(30);

/// SIGINT's disposition in this process: `SIG_DFL`, `SIG_IGN` or a handler.
fn sigint_disposition() -> libc::sighandler_t {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null `act`
    // only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Starts this test binary again, running only `test` in child mode, with
/// SIGINT at its default disposition.
fn spawn_child(test: &str, mode: &str) -> (Child, Receiver<String>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls signal(2), which is async-signal-safe. `SIG_DFL` survives the
    // exec; an inherited `SIG_IGN` would too.
    unsafe {
        cmd.pre_exec(|| {
            if libc::signal(libc::SIGINT, libc::SIG_DFL) == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Waits (bounded) for a line of the child's stdout that contains `want`
/// (the test harness may have written the test's name before it on the
/// same line), and returns it.
fn wait_line(lines: &Receiver<String>, want: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(want) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line {want:?} from the child: {e}"),
        }
    }
}

/// Sends SIGINT to the child, or to one of its threads if `tid` is not 0.
fn interrupt(child: &Child, tid: libc::pid_t) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill and tgkill take no pointers; `pid` is our own child, not
    // yet reaped (we hold its `Child`), and tgkill checks that `tid` is one
    // of its threads.
    let rc = unsafe {
        if tid == 0 {
            libc::kill(pid, libc::SIGINT)
        } else {
            libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGINT) as libc::c_int
        }
    };
    assert_eq!(rc, 0, "{}", io::Error::last_os_error());
}

/// The thread id of this process's thread named `name`. A thread takes
/// its name once it first runs, which on a loaded machine can be a while
/// after the runtime that spawned it was built: looked for again (every
/// few milliseconds, for at most `WAIT`) until it shows.
fn tid_of(name: &str) -> libc::pid_t {
    let deadline = Instant::now() + WAIT;
    loop {
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap();
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == name {
                return task.file_name().to_str().unwrap().parse().unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no thread named {name} within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the child did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whom the parent sends each round's SIGINT to: the whole process, then
/// each of the runtime's threads by name.
const TARGETS: [&str; 4] = [
    "process",
    "ctrlc-worker-0",
    "ctrlc-worker-1",
    "ctrlc-netpoll",
];

/// The child: for each target, make a `ctrl_c()` future, poll it once
/// (that makes the listener), print `ready ROUND TID`, and wait for it.
fn child_main() {
    assert_eq!(
        sigint_disposition(),
        libc::SIG_DFL,
        "SIGINT reset by the parent"
    );
    let rt = runtime::Builder::new()
        .worker_threads(2)
        .thread_name("ctrlc")
        .build()
        .unwrap();
    // The runtime's threads are running now, with SIGINT's default action.
    rt.block_on(async {
        for (round, target) in TARGETS.iter().enumerate() {
            let tid = if round == 0 { 0 } else { tid_of(target) };
            let mut wait = pin!(ctrl_c());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(wait.as_mut().poll(&mut cx).is_pending(), "no SIGINT yet");
            println!("ready {round} {tid}");
            match timeout(WAIT, wait).await {
                Ok(Ok(())) => println!("ctrl_c returned {round}"),
                Ok(Err(e)) => panic!("ctrl_c failed: {e}"),
                Err(_) => panic!("no SIGINT within {WAIT:?} ({target})"),
            }
        }
    });
}

#[test]
fn ctrl_c_returns_on_sigint_whichever_thread_takes_it() {
    if std::env::var(CHILD_ENV).as_deref() == Ok("listen") {
        return child_main();
    }
    let (mut child, lines) = spawn_child(
        "ctrl_c_returns_on_sigint_whichever_thread_takes_it",
        "listen",
    );
    for (round, target) in TARGETS.iter().enumerate() {
        let ready = wait_line(&lines, &format!("ready {round} "));
        let tid = ready.rsplit(' ').next().unwrap().parse().unwrap();
        interrupt(&child, tid);
        wait_line(&lines, &format!("ctrl_c returned {round}"));
        eprintln!("round {round}: SIGINT to the {target} (tid {tid}) seen");
    }
    let status = wait_exit(&mut child);
    assert!(status.success(), "child: {status}");
}

#[test]
fn without_a_listener_sigint_still_terminates() {
    // The other side of the coin, and proof that the test above can fail:
    // a child that never listens dies of the SIGINT.
    if std::env::var(CHILD_ENV).as_deref() == Ok("idle") {
        assert_eq!(
            sigint_disposition(),
            libc::SIG_DFL,
            "SIGINT reset by the parent"
        );
        runtime::block_on(async {
            println!("ready");
            runtime::time::sleep(WAIT).await;
        });
        panic!("SIGINT did not terminate the child");
    }
    let (mut child, lines) = spawn_child("without_a_listener_sigint_still_terminates", "idle");
    wait_line(&lines, "ready");
    interrupt(&child, 0);
    let status = wait_exit(&mut child);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT), "child: {status}");
}
