//! Re-executing the test binary as a child process playing a role named
//! by an environment variable: a process with a low `RLIMIT_NOFILE`, a
//! client with its own descriptor table, one with `SIGPIPE` back at its
//! default disposition. The child is one test of the same binary that
//! returns at once unless its variable is set.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What a child left behind.
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics, showing everything the child printed, unless it exited 0
    /// after its one test passed.
    #[track_caller]
    pub fn assert_passed(&self, what: &str) {
        assert!(
            self.status.success() && self.stdout.contains("1 passed"),
            "{what}: child {} (signal {:?})\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.status.signal(),
            self.stdout,
            self.stderr
        );
    }

    /// Re-prints the child's `FIGURE` lines in this process's output.
    pub fn echo_figures(&self) {
        // A line may follow libtest's `test name ... ` on the same line.
        for line in self.stdout.lines() {
            if let Some(at) = line.find("FIGURE ") {
                println!("{}", &line[at..]);
            }
        }
    }

    /// The value of `KEY=value` printed by the child on a line of its own.
    pub fn value(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}=");
        self.stdout.lines().find_map(|l| {
            let at = l.find(&prefix)?;
            Some(l[at + prefix.len()..].trim().to_string())
        })
    }
}

/// A command that re-runs test `name` of this binary alone, with
/// `env_key=env_value` telling it which role to play.
pub fn command(name: &str, env: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        name,
        "--nocapture",
        "--include-ignored",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to completion, killing it after `limit`.
pub fn run(mut cmd: Command, limit: Duration) -> Outcome {
    // Its own process group, so a kill on timeout takes its threads and
    // anything it started.
    cmd.process_group(0);
    let child = cmd.spawn().expect("re-execute the test binary");
    wait(child, limit)
}

/// Waits for `child`, killing it after `limit`.
pub fn wait(child: std::process::Child, limit: Duration) -> Outcome {
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => {
            let out = out.expect("wait for the child");
            Outcome {
                status: out.status,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        Err(_) => {
            // SAFETY: kill(2) on the pid of our own child, which has not
            // been reaped (its waiter is still blocked in wait).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = rx.recv_timeout(Duration::from_secs(10));
            let (stdout, stderr) = match out {
                Ok(Ok(o)) => (
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    String::from_utf8_lossy(&o.stderr).into_owned(),
                ),
                _ => Default::default(),
            };
            panic!(
                "child did not finish in {limit:?}; killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
            );
        }
    }
}
