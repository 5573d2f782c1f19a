//! A thousand children in turn leave nothing behind: no descriptor (pipes,
//! pidfds), no zombie, no task. Every way a child can end is in the mix:
//! `status`, `output` with pipes, `kill` then `wait`, and a `Child`
//! dropped unwaited (reaped in the background).
//!
//! A test binary of its own, with one test: it counts every descriptor and
//! every child of the process.

mod support;

use std::io;
use std::time::{Duration, Instant};

use gopark::process::{Command, Stdio};
use gopark::runtime::Handle;
use support::proc::fd_count;
use support::rt::eventually;

/// Children of this process, running or zombie, as the kernel lists them
/// for each of its threads.
pub fn children() -> Vec<u32> {
    let mut pids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("read /proc/self/task") {
        let path = task.expect("a task entry").path().join("children");
        // A thread that exits meanwhile has no file any more.
        if let Ok(list) = std::fs::read_to_string(path) {
            pids.extend(list.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
        }
    }
    pids
}

async fn one_child(i: usize) -> io::Result<()> {
    match i % 4 {
        0 => {
            let status = Command::new("/bin/true").status().await?;
            assert!(status.success());
        }
        1 => {
            let output = Command::new("/bin/true")
                .stdin(Stdio::piped())
                .output()
                .await?;
            assert!(output.status.success());
            assert!(output.stdout.is_empty());
        }
        2 => {
            let mut child = Command::new("/bin/true").stdout(Stdio::piped()).spawn()?;
            // Killed, or exited first (a zombie, killed harmlessly): either
            // way `kill` succeeds and the child is reaped.
            child.kill().await?;
            assert_eq!(child.id(), None);
        }
        _ => {
            let child = Command::new("/bin/true")
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            drop(child);
        }
    }
    Ok(())
}

#[test]
fn thousand_children_leave_nothing_behind() {
    const CHILDREN: usize = 1000;
    support::rt::run_io(2, "leak", Duration::from_secs(60), || async {
        // Warm up: the runtime's descriptors and anything made on first use.
        one_child(0).await?;
        one_child(1).await?;
        let fds = fd_count();
        let tasks = Handle::current().num_alive_tasks();
        assert_eq!(children(), Vec::<u32>::new(), "no child before the run");

        let start = Instant::now();
        for i in 0..CHILDREN {
            one_child(i).await?;
        }
        let took = start.elapsed();
        println!("{CHILDREN} children in {took:?}");

        // The dropped ones are reaped by background tasks as they exit.
        eventually("every child reaped", || children().is_empty()).await;
        eventually("every reaping task finished", || {
            Handle::current().num_alive_tasks() == tasks
        })
        .await;
        eventually("every descriptor closed", || fd_count() == fds).await;
        // SAFETY: waitpid with a null status pointer and WNOHANG does not
        // block; with no child left it fails with ECHILD.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        let err = io::Error::last_os_error();
        assert_eq!(
            (r, err.raw_os_error()),
            (-1, Some(libc::ECHILD)),
            "no child left at all"
        );
        Ok(())
    });
}
