//! `gopark::fs::File`: reads, writes and seeks through the futures-io traits
//! (and tokio's with `tokio-io`), writes that return early and report
//! their errors later, read-ahead that never moves the position the caller
//! sees, `sync_all`, `set_len`, `metadata`, `OpenOptions`.

#[macro_use]
mod support;

use std::io::{self, ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};

use futures_util::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use gopark::fs::{self, File, OpenOptions};
use support::data::{assert_bytes_eq, pattern};
use support::future::poll_once;

/// A file path of its own in the system's temporary directory, removed
/// when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(
            std::env::temp_dir().join(format!("gopark-file-{name}-{}-{n}", std::process::id())),
        )
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

rt_test! {
    async fn write_all_then_read_to_end_in_uneven_pieces() -> io::Result<()> {
        let path = TempPath::new("rw");
        // More than one 2 MiB trip, in pieces of odd sizes.
        let data = pattern(1, 5 << 20 | 12_345);
        let mut file = File::create(&path).await?;
        let mut rest = &data[..];
        let mut piece = 1;
        while !rest.is_empty() {
            let n = piece.min(rest.len());
            file.write_all(&rest[..n]).await?;
            rest = &rest[n..];
            piece = (piece * 7 + 3) % 3_000_000 + 1;
        }
        file.flush().await?;
        file.sync_all().await?;
        assert_eq!(file.metadata().await?.len(), data.len() as u64);
        drop(file);
        // Byte for byte what std sees.
        assert_bytes_eq(&std::fs::read(&path)?, &data, "std reads what File wrote");

        let mut file = File::open(&path).await?;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 100_003];
        loop {
            match file.read(&mut buf).await? {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        assert_bytes_eq(&got, &data, "read back in 100,003-byte reads");
        // At end of file, reads keep returning 0.
        assert_eq!(file.read(&mut buf).await?, 0);
        Ok(())
    }
}

rt_test! {
    async fn seeks_see_the_callers_position_despite_read_ahead() -> io::Result<()> {
        let path = TempPath::new("seek");
        let data = pattern(2, 10_000);
        fs::write(&path, &data).await?;
        let mut file = OpenOptions::new().read(true).write(true).open(&path).await?;

        let mut small = [0u8; 10];
        file.read_exact(&mut small).await?;
        assert_eq!(&small, &data[..10]);
        assert_eq!(file.stream_position().await?, 10);
        assert_eq!(file.seek(SeekFrom::Current(5)).await?, 15);
        file.read_exact(&mut small).await?;
        assert_eq!(&small, &data[15..25]);
        assert_eq!(file.seek(SeekFrom::End(-4)).await?, 9_996);
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).await?;
        assert_eq!(tail, &data[9_996..]);

        // A write lands where the caller stands.
        file.seek(SeekFrom::Start(100)).await?;
        file.write_all(b"HERE").await?;
        file.flush().await?;
        let mut want = data.clone();
        want[100..104].copy_from_slice(b"HERE");
        assert_bytes_eq(&fs::read(&path).await?, &want, "after a write at 100");

        // set_len truncates without moving the position.
        file.set_len(50).await?;
        assert_eq!(file.metadata().await?.len(), 50);
        assert_eq!(file.stream_position().await?, 104);
        Ok(())
    }
}

rt_test! {
    async fn bytes_read_ahead_are_returned_and_given_back() -> io::Result<()> {
        // A read polled once with a 64-byte buffer and then dropped leaves
        // the whole file read ahead. Reads that follow get those bytes
        // first; a write after them lands right after the bytes the
        // caller has, not after everything read ahead.
        let path = TempPath::new("readahead");
        fs::write(&path, b"0123456789").await?;
        let mut file = OpenOptions::new().read(true).write(true).open(&path).await?;
        let mut big = [0u8; 64];
        {
            let mut read = file.read(&mut big);
            assert!(poll_once(&mut read).is_pending(), "the read went to the pool");
        }
        let mut two = [0u8; 2];
        file.read_exact(&mut two).await?;
        assert_eq!(&two, b"01");
        assert_eq!(file.stream_position().await?, 2);
        file.read_exact(&mut two).await?;
        assert_eq!(&two, b"23", "the position came back over the read-ahead");
        file.write_all(b"ab").await?;
        file.flush().await?;
        assert_eq!(fs::read(&path).await?, b"0123ab6789");
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).await?;
        assert_eq!(rest, b"6789");
        Ok(())
    }
}

rt_test! {
    async fn a_cancelled_seek_does_not_answer_for_the_next_one() -> io::Result<()> {
        let path = TempPath::new("cancelseek");
        fs::write(&path, b"0123456789").await?;
        let mut file = File::open(&path).await?;
        {
            let mut seek = file.seek(SeekFrom::Start(5));
            assert!(poll_once(&mut seek).is_pending(), "the seek went to the pool");
        }
        // Another target: a seek of its own, not the first one's answer.
        assert_eq!(file.seek(SeekFrom::Start(7)).await?, 7);
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).await?;
        assert_eq!(rest, b"789");
        Ok(())
    }
}

rt_test! {
    async fn a_failing_write_reports_on_flush() -> io::Result<()> {
        // /dev/full accepts the open and fails every write with ENOSPC. The
        // write returns at once; the error comes back from flush.
        let mut full = OpenOptions::new().write(true).open("/dev/full").await?;
        let n = full.write(b"doomed").await?;
        assert_eq!(n, 6);
        let err = full.flush().await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        // Reported once: the next flush has nothing pending.
        full.flush().await?;
        // And sync_all returns a pending one too.
        assert_eq!(full.write(b"doomed").await?, 6);
        let err = full.sync_all().await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        Ok(())
    }
}

rt_test! {
    async fn open_options_and_error_kinds() -> io::Result<()> {
        let path = TempPath::new("options");
        assert_eq!(
            File::open(&path).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let mut f = File::create_new(&path).await?;
        f.write_all(b"one\n").await?;
        f.flush().await?;
        drop(f);
        assert_eq!(
            File::create_new(&path).await.unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        let mut f = File::options().append(true).open(&path).await?;
        f.write_all(b"two\n").await?;
        f.flush().await?;
        assert_eq!(fs::read_to_string(&path).await?, "one\ntwo\n");
        // A file opened for reading refuses writes (EBADF), reported by
        // the flush that follows the early-returning write.
        let mut ro = File::open(&path).await?;
        ro.write_all(b"x").await?;
        assert!(ro.flush().await.is_err());
        // create truncates.
        File::create(&path).await?;
        assert_eq!(fs::metadata(&path).await?.len(), 0);
        Ok(())
    }
}

#[cfg(feature = "tokio-io")]
mod tokio_traits {
    use super::*;

    rt_test! {
        async fn round_trip_through_tokios_traits() -> io::Result<()> {
            let path = TempPath::new("tokio");
            let data = pattern(3, 3 << 20);
            let mut file = File::create(&path).await?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &data).await?;
            tokio::io::AsyncWriteExt::shutdown(&mut file).await?;
            drop(file);

            let mut file = File::open(&path).await?;
            let mut head = [0u8; 1000];
            tokio::io::AsyncReadExt::read_exact(&mut file, &mut head).await?;
            assert_eq!(&head[..], &data[..1000]);
            assert_eq!(tokio::io::AsyncSeekExt::stream_position(&mut file).await?, 1000);
            tokio::io::AsyncSeekExt::seek(&mut file, SeekFrom::Start(2 << 20)).await?;
            let mut rest = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut file, &mut rest).await?;
            assert_bytes_eq(&rest, &data[2 << 20..], "the tail after a seek");
            Ok(())
        }
    }
}
