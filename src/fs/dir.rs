//! Reading a directory: [`read_dir`], [`ReadDir`], [`DirEntry`].
//!
//! Entries are fetched on the blocking pool in batches of [`BATCH`], with
//! each entry's file type (from the directory itself, `d_type`, on most
//! file systems), so listing a directory costs one hop per batch rather
//! than per entry.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use crate::runtime::{spawn_blocking, JoinHandle};

use super::asyncify;

/// Entries fetched per trip to the blocking pool.
const BATCH: usize = 32;

/// Opens the directory at `path` for [`ReadDir::next_entry`]. `NotFound` if
/// there is no such directory.
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref().to_owned();
    let std = asyncify(move || std::fs::read_dir(path)).await?;
    Ok(ReadDir {
        state: State::Idle(Some(Batch {
            std,
            entries: VecDeque::new(),
            done: false,
        })),
    })
}

/// The entries of a directory, from [`read_dir`] (tokio's `ReadDir`): not
/// `.` or `..`, in no particular order.
pub struct ReadDir {
    state: State,
}

enum State {
    /// `None` only while a poll has it out (never seen between polls).
    Idle(Option<Batch>),
    Busy(JoinHandle<Batch>),
}

struct Batch {
    std: std::fs::ReadDir,
    entries: VecDeque<io::Result<DirEntry>>,
    /// The directory has no more entries.
    done: bool,
}

impl Batch {
    /// Fetches up to [`BATCH`] entries (runs on the blocking pool).
    fn fill(mut self) -> Batch {
        for _ in 0..BATCH {
            match self.std.next() {
                Some(Ok(std)) => {
                    let file_type = std.file_type();
                    self.entries.push_back(Ok(DirEntry {
                        std: Arc::new(std),
                        file_type: file_type.ok(),
                    }));
                }
                Some(Err(e)) => self.entries.push_back(Err(e)),
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        self
    }
}

impl ReadDir {
    /// The next entry, or `None` once every entry has been returned.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        poll_fn(|cx| self.poll_next_entry(cx)).await
    }

    /// Polls for the next entry; see [`next_entry`](ReadDir::next_entry).
    pub fn poll_next_entry(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<DirEntry>>> {
        loop {
            match &mut self.state {
                State::Idle(batch) => {
                    let b = batch.as_mut().expect("an idle ReadDir holds its batch");
                    if let Some(entry) = b.entries.pop_front() {
                        return Poll::Ready(entry.map(Some));
                    }
                    if b.done {
                        return Poll::Ready(Ok(None));
                    }
                    let b = batch.take().expect("checked above");
                    self.state = State::Busy(spawn_blocking(move || b.fill()));
                }
                State::Busy(handle) => {
                    let batch = match ready!(Pin::new(handle).poll(cx)) {
                        Ok(batch) => batch,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(e) => {
                            return Poll::Ready(Err(io::Error::other(format!(
                                "directory read not run: {e}"
                            ))))
                        }
                    };
                    self.state = State::Idle(Some(batch));
                }
            }
        }
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir").finish_non_exhaustive()
    }
}

/// One entry of a directory, from [`ReadDir::next_entry`] (tokio's
/// `DirEntry`).
pub struct DirEntry {
    std: Arc<std::fs::DirEntry>,
    /// Read with the batch (usually from `d_type`, without a syscall).
    file_type: Option<std::fs::FileType>,
}

impl DirEntry {
    /// The entry's full path: the directory's path joined with its name.
    pub fn path(&self) -> PathBuf {
        self.std.path()
    }

    /// The entry's name within its directory.
    pub fn file_name(&self) -> OsString {
        self.std.file_name()
    }

    /// The entry's inode number (`d_ino`).
    pub fn ino(&self) -> u64 {
        std::os::unix::fs::DirEntryExt::ino(&*self.std)
    }

    /// The entry's metadata, not following a symbolic link (on the
    /// blocking pool).
    pub async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        let std = self.std.clone();
        asyncify(move || std.metadata()).await
    }

    /// The entry's file type: known already from the directory on most
    /// file systems, otherwise asked for on the blocking pool.
    pub async fn file_type(&self) -> io::Result<std::fs::FileType> {
        if let Some(ty) = self.file_type {
            return Ok(ty);
        }
        let std = self.std.clone();
        asyncify(move || std.file_type()).await
    }
}

impl fmt::Debug for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DirEntry").field(&self.path()).finish()
    }
}
