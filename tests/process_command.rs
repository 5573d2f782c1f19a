//! `gopark::process` through its public API, with real programs (`sh`,
//! `cat`, `seq`, `sleep`, `tr`): exit codes, a killed child, a megabyte
//! through a pipe in each direction, a missing program, `kill_on_drop`,
//! dropped children reaped, and a 1-worker runtime that keeps running
//! other tasks while a task waits on a child.
//!
//! Each test looks only at its own children (by pid), so they may run
//! side by side; the census of every child and descriptor of the process
//! is `process_leak.rs`, a binary of its own.

#[macro_use]
mod support;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::io::{AsyncReadExt, AsyncWriteExt};
use gopark::process::{Command, Stdio};
use gopark::runtime::{self, time, Builder, TaskState};
use support::data::{assert_bytes_eq, pattern};
use support::rt::{eventually, join};

/// Whether `pid` is gone: reaped (no `/proc` entry) or, should the number
/// already have been reused, no longer a child of this process.
fn reaped(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // Fields after the command name, which is in parentheses:
            // state, then ppid.
            let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
            let ppid: u32 = rest.split(' ').nth(1).unwrap().parse().unwrap();
            ppid != std::process::id()
        }
    }
}

/// Whether the kernel offers `pidfd_open` (Linux 5.3 and later).
fn kernel_has_pidfd() -> bool {
    // SAFETY: pidfd_open of our own pid takes no pointer; the descriptor it
    // returns is closed at once.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if fd >= 0 {
        // SAFETY: closes the descriptor just opened, which nothing else owns.
        unsafe { libc::close(fd as i32) };
    }
    fd >= 0
}

/// How many pidfds this process holds.
fn pidfds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_str() == Some("anon_inode:[pidfd]"))
        .count()
}

rt_test! {
    async fn exit_code() -> io::Result<()> {
        let status = Command::new("sh").args(["-c", "exit 3"]).status().await?;
        assert_eq!(status.code(), Some(3));
        assert!(!status.success());

        let mut child = Command::new("sh").args(["-c", "exit 0"]).spawn()?;
        let pid = child.id().expect("running: it has a pid");
        assert!(pid > 0);
        let status = child.wait().await?;
        assert!(status.success());
        // Reaped: the pid is gone, and waiting again gives the same status.
        assert_eq!(child.id(), None);
        assert_eq!(child.wait().await?.code(), Some(0));
        assert_eq!(child.try_wait()?.map(|s| s.code()), Some(Some(0)));
        assert!(reaped(pid));
        Ok(())
    }

    async fn killed_child() -> io::Result<()> {
        let mut child = Command::new("sleep").arg("60").spawn()?;
        assert!(child.try_wait()?.is_none(), "sleep 60 still runs");
        child.kill().await?;
        let status = child.wait().await?;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_eq!(status.code(), None);
        // Reaped: killing again is refused, as in tokio, and signals no one.
        let err = child.start_kill().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(child.kill().await.unwrap_err().kind(), io::ErrorKind::InvalidInput);

        // start_kill returns at once; the status comes with wait.
        let mut child = Command::new("sleep").arg("60").spawn()?;
        child.start_kill()?;
        assert_eq!(child.wait().await?.signal(), Some(libc::SIGKILL));
        Ok(())
    }

    async fn megabyte_of_output() -> io::Result<()> {
        // 1,288,895 bytes: twenty pipes' worth.
        let want: Vec<u8> = (1..=200_000).flat_map(|i| format!("{i}\n").into_bytes()).collect();
        assert!(want.len() > 1 << 20);
        let mut child = Command::new("seq").args(["1", "200000"]).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().unwrap();

        let mut got = vec![0; 64 * 1024];
        let n = stdout.read(&mut got).await?;
        assert!(n > 0);
        got.truncate(n);
        // At most one pipe's worth can have been written before this read,
        // so the child is still writing: the rest comes as it runs.
        assert!(child.try_wait()?.is_none(), "seq cannot have finished");
        let read = stdout.read_to_end(&mut got).await?;
        assert_eq!(read, want.len() - n);
        assert_bytes_eq(&got, &want, "seq's output");
        assert!(child.wait().await?.success());
        Ok(())
    }

    async fn stdin_echoed_by_cat() -> io::Result<()> {
        let data = pattern(7, 1 << 20);
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        // A megabyte each way: more than both pipes hold, so writing all
        // before reading would deadlock. The writer is a task of its own.
        let sent = data.clone();
        let writer = runtime::spawn(async move {
            // futures-io's AsyncWrite, then dropping the pipe: end of file.
            AsyncWriteExt::write_all(&mut stdin, &sent[..1000]).await?;
            AsyncWriteExt::write_all(&mut stdin, &sent[1000..]).await?;
            AsyncWriteExt::flush(&mut stdin).await?;
            drop(stdin);
            Ok::<_, io::Error>(())
        });
        let mut got = Vec::new();
        // futures-io's AsyncRead.
        AsyncReadExt::read_to_end(&mut stdout, &mut got).await?;
        join(writer).await?;
        assert_bytes_eq(&got, &data, "cat's echo");
        assert!(child.wait().await?.success());
        Ok(())
    }

    async fn output_collects_both_streams() -> io::Result<()> {
        let output = Command::new("sh")
            .args(["-c", "printf out; printf err >&2; read line; echo \"[$line]\"; exit 5"])
            .output()
            .await?;
        assert_eq!(output.status.code(), Some(5));
        // stdin is empty, as in std: `read` sees end of file at once.
        assert_eq!(output.stdout, b"out[]\n");
        assert_eq!(output.stderr, b"err");

        // Stdio set explicitly is kept: stderr to /dev/null.
        let output = Command::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .stderr(Stdio::null())
            .output()
            .await?;
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"");
        Ok(())
    }

    async fn missing_program() -> io::Result<()> {
        let err = Command::new("/no/such/dir/program").output().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = Command::new("gopark-no-such-program-on-path").status().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = Command::new("/dev/null").spawn().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        Ok(())
    }

    async fn environment_and_directory() -> io::Result<()> {
        let output = Command::new("/bin/sh")
            .args(["-c", "echo \"$A,$B,$HOME\"; pwd"])
            .env_clear()
            .env("A", "1")
            .envs([("B", "2"), ("HOME", "h")])
            .env_remove("HOME")
            .current_dir("/")
            .output()
            .await?;
        assert!(output.status.success());
        assert_eq!(String::from_utf8_lossy(&output.stdout), "1,2,\n/\n");
        Ok(())
    }

    async fn pipeline() -> io::Result<()> {
        // echo hello | tr a-z A-Z, the pipe handed from one child to the next.
        let mut echo = Command::new("echo").arg("hello").stdout(Stdio::piped()).spawn()?;
        let pipe: Stdio = echo.stdout.take().unwrap().try_into()?;
        let output = Command::new("tr").args(["a-z", "A-Z"]).stdin(pipe).output().await?;
        assert_eq!(output.stdout, b"HELLO\n");
        assert!(echo.wait().await?.success());
        Ok(())
    }

    async fn kill_on_drop() -> io::Result<()> {
        let child = Command::new("sleep").arg("60").kill_on_drop(true).spawn()?;
        let pid = child.id().unwrap();
        drop(child);
        // Killed, then reaped in the background: its /proc entry goes.
        eventually("the child is killed and reaped", || reaped(pid)).await;
        Ok(())
    }

    async fn dropped_child_runs_on_and_is_reaped() -> io::Result<()> {
        // Without kill_on_drop the child runs to its end: it creates a file
        // after the drop.
        let dir = std::env::temp_dir().join(format!("gopark-process-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let marker = dir.join(format!("done-{:?}", std::thread::current().id()));
        let _ = std::fs::remove_file(&marker);
        let child = Command::new("sh")
            .arg("-c")
            .arg("sleep 0.2; : > \"$1\"")
            .arg("sh")
            .arg(&marker)
            .spawn()?;
        let pid = child.id().unwrap();
        drop(child);
        eventually("the dropped child finishes and is reaped", || reaped(pid)).await;
        assert!(marker.exists(), "the dropped child ran to its end");
        std::fs::remove_file(&marker)?;
        Ok(())
    }

    async fn many_children_at_once() -> io::Result<()> {
        // Fifty waits parked at once, each woken by its own child's exit.
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
    }

    async fn wait_with_output_reads_both_pipes() -> io::Result<()> {
        // 256 KiB to each stream, interleaved: reading one pipe to its end
        // before the other would leave the child stuck on a full pipe.
        let script = "i=0; while [ $i -lt 64 ]; do \
                      head -c 4096 /dev/zero; head -c 4096 /dev/zero >&2; i=$((i+1)); done";
        let child = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let output = child.wait_with_output().await?;
        assert!(output.status.success());
        assert_eq!(output.stdout, vec![0; 256 * 1024]);
        assert_eq!(output.stderr, vec![0; 256 * 1024]);
        Ok(())
    }

    async fn wait_parks_on_a_pidfd() -> io::Result<()> {
        if !kernel_has_pidfd() {
            return Ok(());
        }
        let mut child = Command::new("sleep").arg("60").spawn()?;
        assert!(pidfds() >= 1, "a running child holds a pidfd");
        child.kill().await?;
        Ok(())
    }
}

/// A 1-worker runtime: while one task waits for `sleep 1`, a ticker task
/// on the same worker keeps ticking, and the waiting task is parked on a
/// descriptor (not running, not holding the worker).
#[test]
fn one_worker_keeps_running_while_a_task_waits() {
    let rt = Builder::new()
        .worker_threads(1)
        .thread_name("wait1")
        .build()
        .unwrap();
    let dog = support::rt::Watchdog::start("one_worker_keeps_running", Duration::from_secs(60));
    rt.block_on(async {
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
        let waiter = runtime::spawn(async { Command::new("sleep").arg("1").status().await });

        let mut parked_seen = false;
        while !waiter.is_finished() {
            let dump = runtime::Handle::current().dump();
            parked_seen |= dump
                .tasks()
                .iter()
                .any(|t| matches!(t.state, TaskState::Io { .. }));
            time::sleep(Duration::from_millis(20)).await;
        }
        let status = waiter.await.unwrap().unwrap();
        let waited = start.elapsed();
        ticker.abort();

        assert!(status.success());
        assert!(waited >= Duration::from_secs(1), "sleep 1 took {waited:?}");
        assert!(parked_seen, "the waiting task parked on its pidfd");
        // A hundred ticks at best; a fifth of them on a loaded machine.
        let ticks = ticks.load(Ordering::Relaxed);
        assert!(
            ticks >= 20,
            "only {ticks} ticks while a task waited {waited:?}"
        );
    });
    drop(rt);
    dog.disarm();
}

/// A child orphaned on a runtime that then shuts down is not lost: the
/// reaping task is dropped with the runtime, the child goes to the
/// process-wide queue, and the next spawn (on any runtime) reaps it.
#[test]
fn orphan_of_a_runtime_that_shut_down_is_reaped_at_the_next_spawn() {
    let dog =
        support::rt::Watchdog::start("orphan_of_a_shut_down_runtime", Duration::from_secs(60));
    let rt = Builder::new().worker_threads(1).build().unwrap();
    let pid = rt.block_on(async {
        let child = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = child.id().unwrap();
        // Still running: its reaping task parks on it.
        drop(child);
        pid
    });
    // The task is dropped with the runtime, and the child queued.
    drop(rt);
    assert!(!reaped(pid), "sleep 60 still runs");
    // SAFETY: kill takes no pointer. `pid` is our child and not reaped (it
    // ran just now, and only a spawn reaps the queue), so the number
    // cannot name another process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    // Dead: a zombie until a spawn reaps it (another test's, perhaps).
    let start = Instant::now();
    while !reaped(pid) && !zombie(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "SIGKILL never took"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let rt = Builder::new().worker_threads(1).build().unwrap();
    rt.block_on(async {
        assert!(Command::new("/bin/true").status().await.unwrap().success());
    });
    assert!(reaped(pid), "the next spawn reaped the queued orphan");
    drop(rt);
    dog.disarm();
}

/// Whether `pid` is a zombie child of this process.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'))
}

/// With the `tokio-io` feature the pipes speak tokio's I/O traits too.
#[cfg(feature = "tokio-io")]
#[test]
fn tokio_io_traits() {
    support::rt::run_io(2, "tokio_io", Duration::from_secs(30), || async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stdin, b"through tokio's traits").await?;
        tokio::io::AsyncWriteExt::shutdown(&mut stdin).await?;
        drop(stdin);
        let mut got = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut got).await?;
        assert_eq!(got, "through tokio's traits");
        assert!(child.wait().await?.success());
        Ok(())
    });
}

/// The types cross tasks and threads as tokio's do, and the futures of
/// `status` and `output` own what they need: spawnable as they are.
#[test]
fn types_are_send_sync_and_futures_static() {
    fn send_sync<T: Send + Sync>() {}
    fn spawnable<F: std::future::Future + Send + 'static>(_: &F) {}
    send_sync::<Command>();
    send_sync::<gopark::process::Child>();
    send_sync::<gopark::process::ChildStdin>();
    send_sync::<gopark::process::ChildStdout>();
    send_sync::<gopark::process::ChildStderr>();
    let status = Command::new("/bin/true").status();
    spawnable(&status);
    let output = Command::new("/bin/true").output();
    spawnable(&output);
    runtime::block_on(async {
        assert!(runtime::spawn(status).await.unwrap().unwrap().success());
        assert!(runtime::spawn(output)
            .await
            .unwrap()
            .unwrap()
            .status
            .success());
    });
}
