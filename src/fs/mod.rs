//! Files and directories, with tokio's names: [`read()`], [`write()`],
//! [`read_dir`], [`File`], [`OpenOptions`]…
//!
//! # Why the blocking pool
//!
//! A regular file cannot park on a [`PollDesc`](crate::runtime::PollDesc):
//! epoll refuses it (`epoll_ctl` answers `EPERM`), because to the kernel a
//! file on disk is always "ready" and a read that waits for the disk
//! simply blocks. So a file operation has to block some thread, and the
//! question is which one.
//!
//! * **Go** does it on the goroutine's own thread and relies on `sysmon`:
//!   a thread stuck in a syscall for 20 µs loses its P to a fresh thread.
//!   That works because Go's hand-off is cheap and unbounded (up to 10,000
//!   threads).
//! * **tokio** sends each operation to its blocking pool and parks the task
//!   until the pool thread is done.
//!
//! gopark does what tokio does. Its monitor hands a stuck worker off too,
//! but only after 10 ms and only up to twice `worker_threads` threads: a
//! handful of slow operations at once (a cold disk, NFS, an `open` of a
//! FIFO that waits for a writer for ever) would use up the hand-offs and
//! stall every task. On the blocking pool (512 threads by default) such an
//! operation holds up only the task that asked.
//!
//! The cost is a thread hop per operation: a queue push, a pool thread's
//! wake-up and the task's wake-up, some microseconds. Operations are made
//! large to amortize it: [`read()`] and [`write()`] of a whole file are one
//! hop each, and [`File`] moves up to 2 MiB per hop. `benches/fs.rs`
//! measures this against `tokio::fs`, which pays the same hop.
//!
//! # What `File` does with writes
//!
//! As tokio's: a write copies (up to 2 MiB of) the caller's bytes into the
//! file's buffer, starts writing them on the pool and returns at once; the
//! next operation on the file waits for that write first. An error of a
//! write started this way is returned by the next write, `flush`,
//! `sync_all` or `sync_data`. **Call `flush` (or `sync_all`) before
//! dropping a file whose writes must be known to have succeeded**:
//! dropping a `File` lets a write in flight finish on the pool, but nobody
//! sees its result.
//!
//! ```
//! use gopark::fs;
//!
//! # let dir = std::env::temp_dir().join(format!("gopark-doc-fs-{}", std::process::id()));
//! gopark::runtime::block_on(async {
//!     fs::create_dir_all(&dir).await?;
//!     let path = dir.join("hello.txt");
//!     fs::write(&path, b"hello, files").await?;
//!     assert_eq!(fs::read_to_string(&path).await?, "hello, files");
//!
//!     let mut names = Vec::new();
//!     let mut entries = fs::read_dir(&dir).await?;
//!     while let Some(entry) = entries.next_entry().await? {
//!         names.push(entry.file_name());
//!     }
//!     assert_eq!(names, ["hello.txt"]);
//!
//!     fs::remove_dir_all(&dir).await
//! })
//! .unwrap();
//! ```

mod dir;
mod file;
mod open_options;

use std::io;
use std::path::{Path, PathBuf};

pub use dir::{read_dir, DirEntry, ReadDir};
pub use file::File;
pub use open_options::OpenOptions;

/// Runs `f` on the blocking pool and waits for it; a panic in `f` is
/// re-raised in the caller.
pub(crate) async fn asyncify<F, T>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match crate::runtime::spawn_blocking(f).await {
        Ok(res) => res,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(io::Error::other(format!("file operation not run: {e}"))),
    }
}

/// Reads the whole file at `path` (one trip to the blocking pool).
/// `NotFound` if there is no such file.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::read(path)).await
}

/// Reads the whole file at `path` as UTF-8; `InvalidData` if it is not.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::read_to_string(path)).await
}

/// Writes `contents` to the file at `path`, creating it or truncating it
/// (one trip to the blocking pool).
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    let contents = contents.as_ref().to_owned();
    asyncify(move || std::fs::write(path, contents)).await
}

/// Creates a directory; `AlreadyExists` if `path` exists, `NotFound` if its
/// parent does not.
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::create_dir(path)).await
}

/// Creates a directory and every missing parent; an existing directory is
/// not an error.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::create_dir_all(path)).await
}

/// The metadata of `path`, following symbolic links.
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::metadata(path)).await
}

/// The metadata of `path` itself, not following a symbolic link.
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::symlink_metadata(path)).await
}

/// Whether `path` exists; an error only if that cannot be told (a
/// permission denied on the way, say).
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    let path = path.as_ref().to_owned();
    asyncify(move || path.try_exists()).await
}

/// Removes a file (or a symbolic link).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::remove_file(path)).await
}

/// Removes an empty directory.
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::remove_dir(path)).await
}

/// Removes a directory and everything in it (one trip to the blocking
/// pool for the whole tree).
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::remove_dir_all(path)).await
}

/// Renames `from` to `to`, replacing `to` if it is a file.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    asyncify(move || std::fs::rename(from, to)).await
}

/// Copies the contents and permissions of `from` to `to`; returns the
/// number of bytes copied.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    asyncify(move || std::fs::copy(from, to)).await
}

/// Makes a hard link `link` to `original`.
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref().to_owned(), link.as_ref().to_owned());
    asyncify(move || std::fs::hard_link(original, link)).await
}

/// Makes a symbolic link `link` pointing at `original`.
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref().to_owned(), link.as_ref().to_owned());
    asyncify(move || std::os::unix::fs::symlink(original, link)).await
}

/// What the symbolic link at `path` points at.
pub async fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::read_link(path)).await
}

/// The absolute path of `path`, with every symbolic link and `.`/`..`
/// resolved; `NotFound` if it does not exist.
pub async fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::canonicalize(path)).await
}

/// Sets the permissions of `path`.
pub async fn set_permissions(path: impl AsRef<Path>, perm: std::fs::Permissions) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    asyncify(move || std::fs::set_permissions(path, perm)).await
}
