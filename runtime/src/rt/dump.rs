//! [`Handle::dump`]: every live task, where it was spawned, what it is
//! doing and for how long — Go's goroutine dump, for a runtime's tasks.
//!
//! Taking a dump locks the owned-task list one shard at a time (a spawn or
//! a completion that lands on that shard waits meanwhile; the workers go
//! on running tasks) and reads each task's state word and wait record
//! (see the task layer's `trace`). Nothing is kept for a dump until one is
//! asked for, beyond each task's spawn site and wait record.

use std::fmt;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::Handle;
use crate::netpoll::Direction;
use crate::task::{TaskInfo, Wait};

/// What a task is doing, as far as the runtime can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// Inside a poll on worker `worker`.
    Running {
        /// The worker.
        worker: usize,
    },
    /// Inside a poll on the netpoll thread, which runs the first task of
    /// a wake-up itself at an idle runtime (see
    /// [`Builder::netpoll_inline`](crate::Builder::netpoll_inline)).
    RunningOnNetpollThread,
    /// Woken and waiting for a worker to poll it.
    Queued,
    /// Parked on a descriptor until it is ready.
    Io {
        /// The descriptor.
        fd: i32,
        /// Which half.
        direction: Direction,
        /// Time left until the half's deadline, if it has one (zero once
        /// it passed).
        deadline: Option<Duration>,
    },
    /// Parked on a timer (a sleep, a timeout, an interval).
    Sleeping {
        /// Time left until it fires, by the runtime's clock.
        remaining: Duration,
    },
    /// Parked on another task's [`JoinHandle`](crate::JoinHandle).
    Joining {
        /// That task's id.
        task: TaskId,
    },
    /// Parked on something else: a channel, a lock, a future polled
    /// through a waker of its own.
    Idle,
}

/// A task's id in a dump: its [`task::Id`](crate::task::Id), unique for
/// the life of the process.
pub type TaskId = crate::task::Id;

/// One task in a [`Dump`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TaskDump {
    /// Its id.
    pub id: TaskId,
    /// Where it was spawned.
    pub spawned_at: &'static Location<'static>,
    /// What it is doing.
    pub state: TaskState,
    /// How long since it last parked (or was spawned), to a few
    /// milliseconds: for a parked task, how long it has waited; for a
    /// running or queued one, an upper bound on how long it has run or
    /// waited for a worker.
    pub age: Duration,
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {} ", self.id)?;
        match &self.state {
            TaskState::Running { worker } => write!(f, "running on worker {worker}")?,
            TaskState::RunningOnNetpollThread => write!(f, "running on the netpoll thread")?,
            TaskState::Queued => write!(f, "queued")?,
            TaskState::Io {
                fd,
                direction,
                deadline,
            } => {
                let dir = match direction {
                    Direction::Read => "read",
                    Direction::Write => "write",
                };
                write!(f, "parked on fd {fd} for {dir}")?;
                if let Some(left) = deadline {
                    write!(f, " (deadline in {left:.1?})")?;
                }
            }
            TaskState::Sleeping { remaining } => write!(f, "sleeping, {remaining:.1?} left")?,
            TaskState::Joining { task } => write!(f, "awaiting task {task}")?,
            TaskState::Idle => write!(f, "idle")?,
        }
        write!(
            f,
            " for {:.1?}, spawned at {}:{}",
            self.age,
            self.spawned_at.file(),
            self.spawned_at.line()
        )
    }
}

/// Every live task of a runtime, at one moment per task. Its `Display` is
/// the text a person reads: a header line, then one line per task, the
/// longest in its state first.
///
/// ```
/// use std::time::Duration;
/// use gopark_runtime::{Builder, TaskState};
///
/// let rt = Builder::new().worker_threads(1).build().unwrap();
/// let sleeper = rt.spawn(gopark_runtime::time::sleep(Duration::from_secs(60)));
/// // The task parks on its timer as soon as a worker polls it.
/// let dump = loop {
///     let dump = rt.handle().dump();
///     if matches!(dump.tasks()[0].state, TaskState::Sleeping { .. }) {
///         break dump;
///     }
///     std::thread::yield_now();
/// };
/// assert!(dump.tasks()[0].spawned_at.file().ends_with(".rs"));
/// println!("{dump}"); // task 12 sleeping, 60.0s left for 0ns, spawned at …
/// sleeper.abort();
/// ```
#[derive(Clone, Debug)]
pub struct Dump {
    tasks: Vec<TaskDump>,
    workers: usize,
    took: Duration,
}

impl Dump {
    /// The tasks.
    pub fn tasks(&self) -> &[TaskDump] {
        &self.tasks
    }

    /// How long taking the dump took.
    pub fn took(&self) -> Duration {
        self.took
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gopark: {} live task(s) on {} worker(s), dumped in {:.1?}",
            self.tasks.len(),
            self.workers,
            self.took
        )?;
        for task in &self.tasks {
            writeln!(f, "{task}")?;
        }
        Ok(())
    }
}

impl Handle {
    /// Every live task of this runtime: where it was spawned, what it is
    /// doing, and for how long (see [`Dump`]). Blocking-pool jobs are not
    /// tasks and are not listed.
    pub fn dump(&self) -> Dump {
        let start = Instant::now();
        let shared = &self.shared;
        // Which worker polls which task now.
        let running: Vec<(usize, usize)> = shared
            .slots
            .iter()
            .filter_map(|s| s.polling_task().map(|t| (t, s.worker())))
            .collect();
        let now = shared.io.time.now();
        let mut infos = Vec::with_capacity(shared.owned.len());
        shared
            .owned
            .for_each(|header| infos.push(TaskInfo::of(header)));
        let mut tasks: Vec<TaskDump> = infos
            .into_iter()
            .map(|info| TaskDump {
                id: info.id,
                spawned_at: info.spawned_at,
                state: state_of(&info, &running, shared.num_workers(), now),
                age: info.age,
            })
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.age));
        Dump {
            tasks,
            workers: shared.num_workers(),
            took: start.elapsed(),
        }
    }
}

/// `netpoll` is the number the netpoll thread's slot carries (one past
/// the workers').
fn state_of(
    info: &TaskInfo,
    running: &[(usize, usize)],
    netpoll: usize,
    now: Instant,
) -> TaskState {
    if info.running {
        let worker = running
            .iter()
            .find(|&&(task, _)| task == info.addr)
            .map_or(usize::MAX, |&(_, w)| w);
        if worker == netpoll {
            return TaskState::RunningOnNetpollThread;
        }
        return TaskState::Running { worker };
    }
    if info.queued {
        return TaskState::Queued;
    }
    match info.wait {
        Some(Wait::Io {
            fd,
            write,
            deadline,
        }) => TaskState::Io {
            fd,
            direction: if write {
                Direction::Write
            } else {
                Direction::Read
            },
            deadline: deadline.map(|d| d.saturating_duration_since(now)),
        },
        Some(Wait::Sleep { until }) => TaskState::Sleeping {
            remaining: until.saturating_duration_since(now),
        },
        Some(Wait::Join { task }) => TaskState::Joining { task },
        Some(Wait::Other) | None => TaskState::Idle,
    }
}
