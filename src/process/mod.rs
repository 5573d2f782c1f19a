//! Child processes, with tokio's names: [`Command`], [`Child`], and the
//! pipes [`ChildStdin`], [`ChildStdout`] and [`ChildStderr`] as async
//! streams.
//!
//! ```
//! use gopark::process::Command;
//!
//! gopark::runtime::block_on(async {
//!     let output = Command::new("sh").arg("-c").arg("echo out; echo err >&2; exit 3").output().await?;
//!     assert_eq!(output.status.code(), Some(3));
//!     assert_eq!(output.stdout, b"out\n");
//!     assert_eq!(output.stderr, b"err\n");
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap();
//! ```
//!
//! # tokio's names
//!
//! A tokio program moves by changing its `use` line. [`Command`] has
//! tokio's builder (`arg`, `args`, `env`, `envs`, `env_remove`,
//! `env_clear`, `current_dir`, `stdin`/`stdout`/`stderr`, `kill_on_drop`,
//! `uid`, `gid`, `process_group`, `pre_exec`) and its three ways to run:
//! [`spawn`](Command::spawn), [`status`](Command::status) and
//! [`output`](Command::output). [`Child`] has `wait`, `try_wait`,
//! `kill`, `start_kill`, `id`, `wait_with_output` and the public `stdin`,
//! `stdout`, `stderr` fields. [`Stdio`], [`ExitStatus`] and [`Output`] are
//! std's own, re-exported. The pipes implement futures-io's `AsyncRead` or
//! `AsyncWrite` (and tokio's, with the `tokio-io` feature), and — like
//! gopark's sockets — have `read`, `read_exact`, `read_to_end`, `write`
//! and `write_all` methods on `&self`.
//!
//! The fork and exec are std's [`std::process::Command::spawn`], which
//! gets the hard parts right (close-on-exec pipes, `posix_spawn` where it
//! can, `pre_exec`, an exec failure reported as the spawn's error). gopark
//! then takes the parent's ends of the pipes, makes them non-blocking and
//! registers each with the netpoller as a
//! [`PollDesc`](crate::runtime::PollDesc), like a socket.
//!
//! # Go's pidfd, in the netpoller
//!
//! A *pidfd* (`pidfd_open(2)`, Linux 5.3) is a descriptor that names one
//! process and becomes readable when it exits. Go's `os` package (since Go
//! 1.23) holds one for every child it starts, for `Wait` and `Signal`; its
//! `Wait` blocks a thread in `waitid(P_PIDFD)` while the scheduler hands
//! the goroutine's P to another thread, as for any blocking system call.
//! gopark puts that pidfd where Go puts sockets: in the netpoller.
//! [`Child::wait`] tries `waitpid(pid, WNOHANG)` and, while the child
//! runs, parks the task on the pidfd's [`PollDesc`](crate::runtime::PollDesc)
//! like a read that got `EAGAIN`; the netpoll thread sees the exit as one
//! more epoll event and wakes the task, which reaps the child. (tokio does
//! the same on Linux, through its own reactor, and keeps SIGCHLD for
//! kernels without pidfds; see [the fallback](#the-fallback-sigchld).)
//!
//! The pidfd also makes [`Child::start_kill`] safe: `pidfd_send_signal`
//! reaches the process the pidfd was opened for, never another one that
//! was later given the same pid. (And a child is reaped only by this
//! module, which remembers the status, so a reaped child is never
//! signalled in the first place.)
//!
//! # What it costs
//!
//! Per child: the fork and exec, one `pidfd_open` and one descriptor
//! registered with epoll (plus one per piped stream). A wait costs that
//! one registration and one `waitpid` when the edge comes — no thread, no
//! signal handler, no timer, and no cost to the other children: a wait on
//! one child wakes for that child's exit only. The pidfd is closed as soon
//! as the child is reaped.
//!
//! # The fallback: SIGCHLD
//!
//! Where `pidfd_open` is missing (Linux before 5.3) or forbidden (a
//! seccomp filter answering `EPERM`), or when the environment variable
//! `GOPARK_NO_PIDFD=1` turns it off (read once, at the first spawn), a
//! wait listens for SIGCHLD instead, through [`crate::signal`]: one
//! eventfd per waiting child, which the process-wide SIGCHLD handler
//! writes. The listener is made before the first `waitpid`, so no exit
//! slips between the look and the listening. Still no thread; the price
//! is that a SIGCHLD does not say which child exited, so every waiting
//! child looks (one `waitpid(WNOHANG)` each) at every delivery: n
//! children waited on at once cost O(n) syscalls per exit, as in tokio's
//! own SIGCHLD path.
//! Installing the handler replaces SIGCHLD's default action (to ignore
//! it), which changes nothing else: children are still reaped only by
//! `waitpid`.
//!
//! # Orphans
//!
//! A [`Child`] dropped while its process runs (without
//! [`kill_on_drop`](Command::kill_on_drop)) keeps running, as in std and
//! tokio, and must still be reaped or it would stay a zombie for the
//! rest of the program's life. gopark spawns one small task on the
//! child's runtime that waits for the exit as `wait` does and reaps it.
//! If that runtime shuts down first, the child goes to a process-wide
//! queue that every later [`Command::spawn`] reaps from. With
//! `kill_on_drop(true)` the child is sent SIGKILL at the drop and reaped
//! the same way.

mod child;
mod exit;
mod orphan;
mod pipe;
mod sys;

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;

pub use child::Child;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
pub use std::process::{ExitStatus, Output, Stdio};

/// A process to run: program, arguments, environment, working directory
/// and stdio. The builder of [`std::process::Command`], whose methods it
/// forwards, with tokio's async [`spawn`](Command::spawn),
/// [`status`](Command::status) and [`output`](Command::output).
///
/// By default the child inherits stdin, stdout and stderr, except in
/// [`output`](Command::output), which captures stdout and stderr and gives
/// the child an empty stdin.
///
/// ```
/// use gopark::process::{Command, Stdio};
///
/// gopark::runtime::block_on(async {
///     let mut child = Command::new("cat")
///         .stdin(Stdio::piped())
///         .stdout(Stdio::piped())
///         .spawn()?;
///     let stdin = child.stdin.take().unwrap();
///     stdin.write_all(b"hello, cat").await?;
///     drop(stdin); // end of file: `cat` finishes
///     let output = child.wait_with_output().await?;
///     assert!(output.status.success());
///     assert_eq!(output.stdout, b"hello, cat");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct Command {
    std: std::process::Command,
    kill_on_drop: bool,
    /// Which of stdin, stdout and stderr were set: [`output`] gives the
    /// others its own defaults.
    ///
    /// [`output`]: Command::output
    set: [bool; 3],
}

impl Command {
    /// A command that runs `program` (found on `PATH` if it has no `/`),
    /// with no arguments, this process's environment and working
    /// directory, and inherited stdio.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets several environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what
    /// [`env`](Command::env) adds afterwards).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// Sets the child's stdin: [`Stdio::piped`] makes
    /// [`Child::stdin`] a [`ChildStdin`].
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.set[0] = true;
        self
    }

    /// Sets the child's stdout: [`Stdio::piped`] makes
    /// [`Child::stdout`] a [`ChildStdout`].
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.set[1] = true;
        self
    }

    /// Sets the child's stderr: [`Stdio::piped`] makes
    /// [`Child::stderr`] a [`ChildStderr`].
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.set[2] = true;
        self
    }

    /// Whether dropping the [`Child`] sends the process SIGKILL (off by
    /// default, as in tokio and std). Either way a dropped child is reaped
    /// in the background once it exits.
    pub fn kill_on_drop(&mut self, kill_on_drop: bool) -> &mut Command {
        self.kill_on_drop = kill_on_drop;
        self
    }

    /// Whether [`kill_on_drop`](Command::kill_on_drop) is set.
    pub fn get_kill_on_drop(&self) -> bool {
        self.kill_on_drop
    }

    /// Runs the child as user `id` (`setuid`).
    pub fn uid(&mut self, id: u32) -> &mut Command {
        self.std.uid(id);
        self
    }

    /// Runs the child as group `id` (`setgid`).
    pub fn gid(&mut self, id: u32) -> &mut Command {
        self.std.gid(id);
        self
    }

    /// Puts the child in process group `pgroup` (0: a new group led by
    /// the child).
    pub fn process_group(&mut self, pgroup: i32) -> &mut Command {
        self.std.process_group(pgroup);
        self
    }

    /// Sets the child's `argv[0]`, which is the program name by default.
    pub fn arg0(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg0(arg);
        self
    }

    /// Runs `f` in the child after the fork, before the exec. See
    /// [`std::os::unix::process::CommandExt::pre_exec`].
    ///
    /// # Safety
    ///
    /// `f` runs in a forked copy of a multi-threaded process: it may only
    /// do what is async-signal-safe (no allocation, no locks), as std's
    /// `pre_exec` documents.
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Command
    where
        F: FnMut() -> io::Result<()> + Send + Sync + 'static,
    {
        // SAFETY: the caller upholds `pre_exec`'s contract (see above).
        unsafe { self.std.pre_exec(f) };
        self
    }

    /// std's command, to read or set what this type does not forward.
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// std's command, mutably. Stdio set through it is not seen by
    /// [`output`](Command::output), which then gives stdio it believes
    /// unset its own defaults.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// std's command (the `kill_on_drop` setting is lost).
    pub fn into_std(self) -> std::process::Command {
        self.std
    }

    /// Starts the child and returns at once. Piped stdio becomes the
    /// [`Child`]'s `stdin`, `stdout` and `stderr`, registered with the
    /// current runtime's netpoller (or the default runtime's, outside one).
    ///
    /// # Errors
    ///
    /// std's: [`NotFound`](io::ErrorKind::NotFound) for a program that does
    /// not exist, [`PermissionDenied`](io::ErrorKind::PermissionDenied) for
    /// one that cannot be executed, and the errors of `fork`, `pipe` and
    /// registration when resources run out (the child is then killed and
    /// reaped, never left running unheld).
    pub fn spawn(&mut self) -> io::Result<Child> {
        orphan::reap_queued();
        let mut std_child = self.std.spawn()?;
        let (stdin, stdout, stderr) = (
            std_child.stdin.take(),
            std_child.stdout.take(),
            std_child.stderr.take(),
        );
        // From here on a `?` drops `child`, which kills and reaps it.
        let mut child = Child::new(std_child);
        child.stdin = stdin
            .map(|p| ChildStdin::new(OwnedFd::from(p)))
            .transpose()?;
        child.stdout = stdout
            .map(|p| ChildStdout::new(OwnedFd::from(p)))
            .transpose()?;
        child.stderr = stderr
            .map(|p| ChildStderr::new(OwnedFd::from(p)))
            .transpose()?;
        child.set_kill_on_drop(self.kill_on_drop);
        Ok(child)
    }

    /// Runs the child to its end and returns its exit status. The child
    /// inherits stdio unless set otherwise; pipes asked for are closed at
    /// once (nobody would read them). The child is spawned when `status`
    /// is called, not when the future is first polled, as in tokio.
    ///
    /// ```
    /// use gopark::process::Command;
    ///
    /// gopark::runtime::block_on(async {
    ///     let status = Command::new("sh").args(["-c", "exit 3"]).status().await?;
    ///     assert_eq!(status.code(), Some(3));
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap();
    /// ```
    pub fn status(&mut self) -> impl Future<Output = io::Result<ExitStatus>> {
        let child = self.spawn();
        async move {
            let mut child = child?;
            // Held here, they could keep a child writing to a full pipe
            // (or reading from an open one) from ever exiting.
            drop(child.stdout.take());
            drop(child.stderr.take());
            child.wait().await
        }
    }

    /// Runs the child to its end, collecting its stdout and stderr. Unless
    /// set otherwise, stdout and stderr are piped and stdin is empty
    /// ([`Stdio::null`]), as in std. The child is spawned when `output` is
    /// called, not when the future is first polled, as in tokio.
    ///
    /// ```
    /// use gopark::process::Command;
    ///
    /// gopark::runtime::block_on(async {
    ///     let err = Command::new("/no/such/program").output().await.unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// });
    /// ```
    pub fn output(&mut self) -> impl Future<Output = io::Result<Output>> {
        let set = self.set;
        let defaults: [fn() -> Stdio; 3] = [Stdio::null, Stdio::piped, Stdio::piped];
        self.apply(set, defaults);
        let child = self.spawn();
        // Back to "unset", which `spawn` and `status` treat as inherit.
        self.apply(set, [Stdio::inherit; 3]);
        self.set = set;
        async move { child?.wait_with_output().await }
    }

    /// Sets each stdio stream not marked in `set` to its entry in `cfg`.
    fn apply(&mut self, set: [bool; 3], cfg: [fn() -> Stdio; 3]) {
        if !set[0] {
            self.std.stdin(cfg[0]());
        }
        if !set[1] {
            self.std.stdout(cfg[1]());
        }
        if !set[2] {
            self.std.stderr(cfg[2]());
        }
    }
}

impl From<std::process::Command> for Command {
    /// Wraps std's command. Stdio it already set counts as unset for
    /// [`output`](Command::output)'s defaults.
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            kill_on_drop: false,
            set: [false; 3],
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("std", &self.std)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}
