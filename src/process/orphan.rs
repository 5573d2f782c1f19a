//! Reaping the children nobody waits for.
//!
//! A [`Child`](super::Child) dropped before its process was reaped leaves
//! a zombie behind unless someone reaps it, and the program has given up
//! its only handle. tokio keeps such orphans in a queue and reaps them on
//! a later SIGCHLD. Here each orphan gets a small task on the runtime the
//! child was spawned on, which waits for the exit the same way
//! [`Child::wait`](super::Child::wait) does (parked on the pidfd, or on
//! SIGCHLD) and reaps it: an orphan costs one task and no thread, and its
//! zombie lasts no longer than the netpoller takes to see the exit.
//!
//! If that runtime is shut down before the child exits, the task is
//! dropped and the child goes to a process-wide queue instead; every
//! later [`Command::spawn`](super::Command::spawn) reaps whatever in the
//! queue has exited (one `waitpid(WNOHANG)` per queued child). A program
//! that drops a child, shuts its runtime down and never spawns again may
//! keep that one zombie until it exits itself — the same bound tokio
//! gives.

use std::future::poll_fn;
use std::sync::Mutex;
use std::task::Poll;

use gopark_runtime::Handle;

use super::exit::Process;

/// Children whose reaping task could not run: reaped at the next spawn.
static QUEUE: Mutex<Vec<std::process::Child>> = Mutex::new(Vec::new());

/// Takes over `process`, which is not reaped yet: a task on `handle`'s
/// runtime (or the default runtime) reaps it once it exits.
pub(super) fn adopt(process: Process, handle: Option<Handle>) {
    let mut orphan = Orphan(Some(process));
    let reap = async move {
        poll_fn(|cx| match orphan.0.as_mut().map(|p| p.poll_wait(cx)) {
            Some(Poll::Pending) => Poll::Pending,
            // Reaped, or the wait failed: `Orphan`'s drop queues the child
            // if it still needs reaping.
            _ => Poll::Ready(()),
        })
        .await;
        drop(orphan);
    };
    // Detached: nobody joins a reaper. A runtime that is shutting down
    // refuses the task and drops it at once, which queues the child.
    drop(match handle {
        Some(handle) => handle.spawn(reap),
        None => gopark_runtime::spawn(reap),
    });
}

/// Reaps every queued child that has exited (and forgets any that is no
/// longer ours to reap).
pub(super) fn reap_queued() {
    let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    queue.retain_mut(|child| matches!(child.try_wait(), Ok(None)));
}

/// The reaping task's child; queued if the task ends without reaping it.
struct Orphan(Option<Process>);

impl Drop for Orphan {
    fn drop(&mut self) {
        let Some(mut process) = self.0.take() else {
            return;
        };
        // One last look before queuing: a child that exited meanwhile is
        // reaped here. An error (ECHILD) means it is not ours to reap.
        if !matches!(process.try_wait(), Ok(None)) {
            return;
        }
        if let Some(child) = process.into_unreaped() {
            QUEUE.lock().unwrap_or_else(|e| e.into_inner()).push(child);
        }
    }
}
