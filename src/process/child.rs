//! [`Child`]: a spawned process, its pipes, and its exit.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::process::{ExitStatus, Output};
use std::task::{Context, Poll};

use gopark_runtime::Handle;

use super::exit::Process;
use super::orphan;
use super::pipe::{ChildStderr, ChildStdin, ChildStdout};

/// A child process spawned by [`Command::spawn`](super::Command::spawn),
/// with tokio's names.
///
/// [`wait`](Child::wait) parks the task until the child exits (on a pidfd
/// in the netpoller: no thread waits), then reaps it. The pipes the
/// [`Command`](super::Command) asked for are in the public `stdin`,
/// `stdout` and `stderr` fields; `take()` them to use them from other
/// tasks.
///
/// # Dropping a `Child`
///
/// Dropping a `Child` does not stop the process, as with std and tokio,
/// unless [`kill_on_drop`](super::Command::kill_on_drop) was set. Either
/// way nothing is left behind: a child not yet reaped is reaped in the
/// background once it exits (see the [module docs](super#orphans)).
///
/// ```
/// use gopark::process::Command;
/// use std::os::unix::process::ExitStatusExt;
///
/// gopark::runtime::block_on(async {
///     let mut child = Command::new("sleep").arg("60").spawn()?;
///     assert!(child.try_wait()?.is_none());
///     child.kill().await?;
///     let status = child.wait().await?;
///     assert_eq!(status.signal(), Some(libc::SIGKILL));
///     assert_eq!(child.id(), None, "reaped: the pid is no longer ours");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct Child {
    /// The parent's end of the child's stdin, if it was
    /// [`piped`](std::process::Stdio::piped).
    pub stdin: Option<ChildStdin>,
    /// The parent's end of the child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The parent's end of the child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    /// Always present but in `Drop`, which hands it to the orphan reaper.
    process: Option<Process>,
    kill_on_drop: bool,
    /// The runtime the child was spawned on, which reaps it if dropped.
    handle: Option<Handle>,
}

impl Child {
    /// Wraps a process std just spawned, with `kill_on_drop` set until
    /// every pipe is registered: a failure on the way kills the child
    /// rather than leaving a process nobody holds.
    pub(super) fn new(child: std::process::Child) -> Child {
        Child {
            stdin: None,
            stdout: None,
            stderr: None,
            process: Some(Process::new(child)),
            kill_on_drop: true,
            handle: Handle::try_current().ok(),
        }
    }

    pub(super) fn set_kill_on_drop(&mut self, kill_on_drop: bool) {
        self.kill_on_drop = kill_on_drop;
    }

    fn process(&mut self) -> &mut Process {
        self.process.as_mut().expect("present until dropped")
    }

    /// The child's process id, or `None` once it has been reaped (by
    /// [`wait`](Child::wait) or [`try_wait`](Child::try_wait)): from then
    /// on the number may belong to another process.
    pub fn id(&self) -> Option<u32> {
        self.process.as_ref().and_then(Process::id)
    }

    /// Waits for the child to exit and reaps it; returns its status. Later
    /// calls return the same status at once.
    ///
    /// Closes the child's stdin first (drops [`stdin`](Child::stdin)), so a
    /// child that reads until end of file can finish. Does not read
    /// `stdout` or `stderr`: a child that fills a piped output no one reads
    /// never exits; use [`wait_with_output`](Child::wait_with_output) or
    /// read them in other tasks.
    ///
    /// Cancel-safe: dropping the future and calling `wait` again loses
    /// nothing.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        poll_fn(|cx| self.poll_wait(cx)).await
    }

    fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        self.process().poll_wait(cx)
    }

    /// Returns the status if the child has exited (reaping it), `None` if
    /// it still runs. Never waits.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.process().try_wait()
    }

    /// Sends SIGKILL to the child and returns at once; [`wait`](Child::wait)
    /// for it to be gone. An error of kind
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) if the child was already
    /// reaped (as in tokio); a child that exited but was not reaped yet is
    /// killed without error. Never signals another process that reuses the
    /// pid: a reaped child is not signalled, and with a pidfd the signal
    /// goes through it.
    pub fn start_kill(&mut self) -> io::Result<()> {
        self.process().start_kill()
    }

    /// Kills the child and waits for it to be gone: [`start_kill`] then
    /// [`wait`](Child::wait).
    ///
    /// [`start_kill`]: Child::start_kill
    pub async fn kill(&mut self) -> io::Result<()> {
        self.start_kill()?;
        self.wait().await?;
        Ok(())
    }

    /// Waits for the child to exit while reading all of its piped stdout
    /// and stderr (at the same time, so a child that fills one pipe while
    /// the other is read cannot get stuck). Closes stdin first, as
    /// [`wait`](Child::wait) does. Streams that were not piped come back
    /// empty.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (mut out_done, mut err_done) = (stdout.is_none(), stderr.is_none());
        let (mut out_read, mut err_read) = (0, 0);
        let mut status = None;
        poll_fn(|cx| {
            if let (false, Some(pipe)) = (out_done, &stdout) {
                if pipe
                    .poll_read_to_end(cx, &mut out, &mut out_read)?
                    .is_ready()
                {
                    out_done = true;
                }
            }
            if let (false, Some(pipe)) = (err_done, &stderr) {
                if pipe
                    .poll_read_to_end(cx, &mut err, &mut err_read)?
                    .is_ready()
                {
                    err_done = true;
                }
            }
            if status.is_none() {
                if let Poll::Ready(s) = self.poll_wait(cx)? {
                    status = Some(s);
                }
            }
            match status {
                Some(status) if out_done && err_done => Poll::Ready(Ok(status)),
                _ => Poll::Pending,
            }
        })
        .await
        .map(|status| Output {
            status,
            stdout: out,
            stderr: err,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        if process.is_reaped() {
            return;
        }
        if self.kill_on_drop {
            // An error here means it is already gone.
            let _ = process.start_kill();
        }
        // Most children dropped after they exited are reaped right here.
        if let Ok(None) = process.try_wait() {
            orphan::adopt(process, self.handle.take());
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("process", &self.process)
            .field("stdin", &self.stdin)
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}
