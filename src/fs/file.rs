//! [`File`]: an open file whose reads, writes and seeks run on the
//! blocking pool, one operation at a time.
//!
//! The state behind a file is one lock and a flag: **busy** while an
//! operation runs on a pool thread (which then owns the file's buffer), or
//! idle. Everything that touches the file first waits until it is idle:
//! it registers its waker under the lock, and the pool thread, when the
//! operation ends, stores the outcome, clears the flag and wakes every
//! registered waker under the same lock, so no waiter can miss the end.
//! Outcomes wait in the state for whoever asks next:
//!
//! * a read leaves its bytes in the buffer (`buf[pos..end]`), or end of
//!   file or an error in `read_end`; the next read returns them;
//! * a write leaves its error, if any, in `write_err`, for the next write,
//!   flush or sync;
//! * a seek leaves its result in `seek`.
//!
//! Bytes read ahead and not yet returned sit before the kernel's file
//! position; a write, a seek or `set_len` first moves the position back
//! over them, so the file reads and writes exactly where the caller
//! expects.
//!
//! A seek whose future is dropped before it ends leaves its result, with
//! its target, for the next seek: a seek to the same target collects it
//! (the file is there already), one to another target starts afresh. So
//! after cancelling a *relative* seek, repeating it moves the file once,
//! not twice, as with tokio's `File`.

use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::runtime::spawn_blocking;

use super::{asyncify, OpenOptions};

/// Most bytes one read or write moves per trip to the blocking pool
/// (tokio's figure).
const MAX_BUF: usize = 2 * 1024 * 1024;

/// An open file (tokio's `fs::File`): reads, writes and seeks through the
/// futures-io traits (`AsyncRead`, `AsyncWrite`, `AsyncSeek`, and tokio's
/// with the `tokio-io` feature), each run on the blocking pool.
///
/// A write returns as soon as its bytes are copied into the file's buffer
/// and handed to the pool; the next operation waits for it, and its error,
/// if any, comes back from the next write, `flush`, `sync_all` or
/// `sync_data` (see the [module docs](super#what-file-does-with-writes)).
///
/// ```
/// use futures_io::{AsyncRead, AsyncSeek, AsyncWrite};
/// use gopark::fs::File;
/// use std::future::poll_fn;
/// use std::io::SeekFrom;
/// use std::pin::Pin;
///
/// # let path = std::env::temp_dir().join(format!("gopark-doc-file-{}", std::process::id()));
/// gopark::runtime::block_on(async {
///     let mut file = File::create(&path).await?;
///     let n = poll_fn(|cx| Pin::new(&mut file).poll_write(cx, b"hello")).await?;
///     assert_eq!(n, 5);
///     poll_fn(|cx| Pin::new(&mut file).poll_flush(cx)).await?;
///     file.sync_all().await?;
///
///     let mut file = File::open(&path).await?;
///     poll_fn(|cx| Pin::new(&mut file).poll_seek(cx, SeekFrom::Start(1))).await?;
///     let mut buf = [0u8; 16];
///     let n = poll_fn(|cx| Pin::new(&mut file).poll_read(cx, &mut buf)).await?;
///     assert_eq!(&buf[..n], b"ello");
/// #   gopark::fs::remove_file(&path).await?;
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
///
/// (With `futures::io::{AsyncReadExt, AsyncWriteExt}`, or tokio's with the
/// `tokio-io` feature, these are `file.write_all(..).await` and
/// `file.read(..).await`.)
pub struct File {
    shared: Arc<Shared>,
}

struct Shared {
    std: std::fs::File,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// An operation runs on the pool, which owns `buf` meanwhile.
    busy: bool,
    /// The file's buffer: bytes read ahead are `buf[pos..end]`; all of it
    /// is initialized, so a read reuses it without zeroing it again.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// End of file (`Ok`) or the error of the last read, for the next read.
    read_end: Option<io::Result<()>>,
    /// The error of a write that returned early, for the next write,
    /// flush or sync.
    write_err: Option<io::Error>,
    /// The target and outcome of the last seek started.
    seek: Option<(SeekFrom, io::Result<u64>)>,
    /// Tasks waiting for the operation in flight to end.
    waiters: Vec<Waker>,
}

impl State {
    /// Waits for the operation in flight: `Pending` (with `cx`'s waker
    /// registered) while there is one.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.busy {
            return Poll::Ready(());
        }
        if !self.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            self.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Forgets the bytes read ahead, and what the last read and seek
    /// left: returns how far the kernel's position is ahead of the
    /// caller's.
    fn discard_read_ahead(&mut self) -> i64 {
        let ahead = (self.end - self.pos) as i64;
        self.pos = 0;
        self.end = 0;
        self.read_end = None;
        self.seek = None;
        ahead
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock is held cannot leave the state half
        // updated (every update is a few plain stores), so a poisoned lock
        // is used as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the operation in flight (on the pool thread): `done` stores
    /// its outcome, then every waiter is woken.
    fn finish(&self, done: impl FnOnce(&mut State)) {
        let waiters = {
            let mut st = self.lock();
            done(&mut st);
            st.busy = false;
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }

    /// Moves the kernel's position back over `ahead` bytes read ahead.
    fn rewind(&self, ahead: i64) -> io::Result<()> {
        if ahead > 0 {
            (&self.std).seek(SeekFrom::Current(-ahead))?;
        }
        Ok(())
    }
}

impl File {
    /// Opens `path` for reading (on the blocking pool); `NotFound` if there
    /// is no such file.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` for writing, creating it or truncating it.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Creates `path` for reading and writing; `AlreadyExists` if it
    /// exists.
    pub async fn create_new(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .await
    }

    /// Options for opening a file; see [`OpenOptions`].
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps a file opened by std.
    pub fn from_std(std: std::fs::File) -> File {
        File {
            shared: Arc::new(Shared {
                std,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Runs `op` on the file on the blocking pool, once the operation in
    /// flight has ended. With `take_write_err`, a pending write error is
    /// returned instead; with `rewind`, bytes read ahead are given back to
    /// the file first.
    async fn run<T: Send + 'static>(
        &self,
        take_write_err: bool,
        rewind: bool,
        op: impl FnOnce(&std::fs::File) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let ahead = poll_fn(|cx| {
            let mut st = self.shared.lock();
            if st.poll_idle(cx).is_pending() {
                return Poll::Pending;
            }
            if take_write_err {
                if let Some(e) = st.write_err.take() {
                    return Poll::Ready(Err(e));
                }
            }
            st.busy = true;
            Poll::Ready(Ok(if rewind { st.discard_read_ahead() } else { 0 }))
        })
        .await?;
        // No await between marking the file busy and handing the job to
        // the pool: the job, which clears the flag, always runs.
        let shared = self.shared.clone();
        asyncify(move || {
            let res = shared.rewind(ahead).and_then(|()| op(&shared.std));
            shared.finish(|_| {});
            res
        })
        .await
    }

    /// Flushes what was written to the disk (`fsync`), after the write in
    /// flight; returns a pending write error first.
    pub async fn sync_all(&self) -> io::Result<()> {
        self.run(true, false, |f| f.sync_all()).await
    }

    /// Like [`sync_all`](File::sync_all) without the metadata that reading
    /// the data back does not need (`fdatasync`).
    pub async fn sync_data(&self) -> io::Result<()> {
        self.run(true, false, |f| f.sync_data()).await
    }

    /// Truncates or extends the file to `size` bytes; the position is not
    /// moved.
    pub async fn set_len(&self, size: u64) -> io::Result<()> {
        self.run(true, true, move |f| f.set_len(size)).await
    }

    /// The file's metadata.
    pub async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.run(false, false, |f| f.metadata()).await
    }

    /// Sets the file's permissions.
    pub async fn set_permissions(&self, perm: std::fs::Permissions) -> io::Result<()> {
        self.run(false, false, move |f| f.set_permissions(perm))
            .await
    }

    /// A second handle to the same open file (`dup`): they share the
    /// position.
    pub async fn try_clone(&self) -> io::Result<File> {
        let std = self.run(false, true, |f| f.try_clone()).await?;
        Ok(File::from_std(std))
    }

    /// Reads up to `want` bytes, handing them to `put`: bytes read ahead
    /// first; otherwise one `read(2)` of up to `want` bytes on the pool.
    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        want: usize,
        put: impl FnOnce(&[u8]),
    ) -> Poll<io::Result<usize>> {
        let mut st = self.shared.lock();
        if st.poll_idle(cx).is_pending() {
            return Poll::Pending;
        }
        if st.pos < st.end {
            let n = want.min(st.end - st.pos);
            put(&st.buf[st.pos..st.pos + n]);
            st.pos += n;
            return Poll::Ready(Ok(n));
        }
        if let Some(end) = st.read_end.take() {
            return Poll::Ready(end.map(|()| 0));
        }
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        let len = want.min(MAX_BUF);
        let mut buf = std::mem::take(&mut st.buf);
        st.busy = true;
        st.seek = None;
        // Registered before the job can end, under the lock it ends under.
        st.waiters.push(cx.waker().clone());
        drop(st);
        let shared = self.shared.clone();
        spawn_blocking(move || {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            let res = loop {
                match (&shared.std).read(&mut buf[..len]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    res => break res,
                }
            };
            shared.finish(|st| {
                st.buf = buf;
                match res {
                    Ok(0) => st.read_end = Some(Ok(())),
                    Ok(n) => (st.pos, st.end) = (0, n),
                    Err(e) => st.read_end = Some(Err(e)),
                }
            });
        });
        Poll::Pending
    }

    /// Copies up to 2 MiB of `src` into the file's buffer and starts
    /// writing it on the pool; returns at once.
    fn poll_write_inner(&self, cx: &mut Context<'_>, src: &[u8]) -> Poll<io::Result<usize>> {
        let mut st = self.shared.lock();
        if st.poll_idle(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(e) = st.write_err.take() {
            return Poll::Ready(Err(e));
        }
        if src.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let ahead = st.discard_read_ahead();
        let n = src.len().min(MAX_BUF);
        let mut buf = std::mem::take(&mut st.buf);
        buf.clear();
        buf.extend_from_slice(&src[..n]);
        st.busy = true;
        drop(st);
        let shared = self.shared.clone();
        spawn_blocking(move || {
            let res = shared
                .rewind(ahead)
                .and_then(|()| (&shared.std).write_all(&buf));
            shared.finish(|st| {
                st.buf = buf;
                st.write_err = res.err();
            });
        });
        Poll::Ready(Ok(n))
    }

    /// Waits for the write in flight; returns its error, if any.
    fn poll_flush_inner(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.shared.lock();
        if st.poll_idle(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(st.write_err.take().map_or(Ok(()), Err))
    }

    /// Starts a seek to `target` on the pool; the file must be idle.
    fn start_seek_locked(&self, mut st: MutexGuard<'_, State>, target: SeekFrom) {
        let ahead = st.discard_read_ahead();
        // The caller's position is `ahead` bytes behind the kernel's.
        let pos = match target {
            SeekFrom::Current(off) => SeekFrom::Current(off - ahead),
            pos => pos,
        };
        st.busy = true;
        drop(st);
        let shared = self.shared.clone();
        spawn_blocking(move || {
            let res = (&shared.std).seek(pos);
            shared.finish(|st| st.seek = Some((target, res)));
        });
    }

    /// Seeks to `target`: waits for the operation in flight, collects the
    /// result of a seek to `target` already made, or starts one.
    fn poll_seek_inner(&self, cx: &mut Context<'_>, target: SeekFrom) -> Poll<io::Result<u64>> {
        let mut st = self.shared.lock();
        if st.poll_idle(cx).is_pending() {
            return Poll::Pending;
        }
        match st.seek.take() {
            Some((done, res)) if done == target => return Poll::Ready(res),
            _ => {}
        }
        st.waiters.push(cx.waker().clone());
        self.start_seek_locked(st, target);
        Poll::Pending
    }
}

impl futures_io::AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let want = buf.len();
        self.poll_read_with(cx, want, |src| buf[..src.len()].copy_from_slice(src))
    }
}

impl futures_io::AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_inner(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_inner(cx)
    }
}

impl futures_io::AsyncSeek for File {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        self.poll_seek_inner(cx, pos)
    }
}

#[cfg(feature = "tokio-io")]
impl tokio::io::AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let want = buf.remaining();
        self.poll_read_with(cx, want, |src| buf.put_slice(src))
            .map_ok(|_| ())
    }
}

#[cfg(feature = "tokio-io")]
impl tokio::io::AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_inner(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_inner(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush_inner(cx)
    }
}

#[cfg(feature = "tokio-io")]
impl tokio::io::AsyncSeek for File {
    fn start_seek(self: Pin<&mut Self>, pos: SeekFrom) -> io::Result<()> {
        let st = self.shared.lock();
        if st.busy {
            return Err(io::Error::other(
                "another operation on the file is in flight: call poll_complete before start_seek",
            ));
        }
        self.start_seek_locked(st, pos);
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let mut st = self.shared.lock();
        if st.poll_idle(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some((_, res)) = st.seek.take() {
            return Poll::Ready(res);
        }
        // No seek started (tokio's `seek` asks this first, to let the
        // operation in flight end): the position, with no trip to the
        // pool. `lseek(fd, 0, SEEK_CUR)` reads the open file's offset and
        // never waits for the disk; the caller stands behind it by the
        // bytes read ahead.
        let ahead = (st.end - st.pos) as u64;
        Poll::Ready((&self.shared.std).stream_position().map(|p| p - ahead))
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.shared.std.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.std.as_fd()
    }
}

impl From<std::fs::File> for File {
    fn from(std: std::fs::File) -> File {
        File::from_std(std)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.as_raw_fd())
            .finish_non_exhaustive()
    }
}
