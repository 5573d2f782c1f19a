//! `gopark::fs`'s functions: bytes round-trip, directories, the error kinds
//! a tokio or std user expects (`NotFound`, `AlreadyExists`,
//! `InvalidData`), and `read_dir`.

#[macro_use]
mod support;

use std::collections::BTreeSet;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use gopark::fs;
use support::data::{assert_bytes_eq, pattern};

/// A directory of its own under the system's temporary directory, removed
/// (with everything in it) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("gopark-fs-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        TempDir(dir)
    }

    fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_kind<T: std::fmt::Debug>(res: io::Result<T>, kind: ErrorKind, what: &str) {
    match res {
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected {kind:?}, got Ok({v:?})"),
    }
}

rt_test! {
    async fn write_read_round_trip() -> io::Result<()> {
        let dir = TempDir::new("rw");
        for (i, len) in [0usize, 1, 4095, 4096, 65_537, 3 << 20].into_iter().enumerate() {
            let path = dir.join(format!("f{i}"));
            let data = pattern(i as u64, len);
            fs::write(&path, &data).await?;
            assert_bytes_eq(&fs::read(&path).await?, &data, "fs::read after fs::write");
            assert_eq!(fs::metadata(&path).await?.len(), len as u64);
        }
        // write truncates what was there.
        let path = dir.join("f0");
        fs::write(&path, "longer contents").await?;
        fs::write(&path, "short").await?;
        assert_eq!(fs::read_to_string(&path).await?, "short");
        Ok(())
    }
}

rt_test! {
    async fn errors_have_the_right_kind() -> io::Result<()> {
        let dir = TempDir::new("errors");
        let missing = dir.join("missing");
        assert_kind(fs::read(&missing).await, ErrorKind::NotFound, "read");
        assert_kind(fs::read_to_string(&missing).await, ErrorKind::NotFound, "read_to_string");
        assert_kind(fs::metadata(&missing).await, ErrorKind::NotFound, "metadata");
        assert_kind(fs::remove_file(&missing).await, ErrorKind::NotFound, "remove_file");
        assert_kind(fs::remove_dir(&missing).await, ErrorKind::NotFound, "remove_dir");
        assert_kind(fs::canonicalize(&missing).await, ErrorKind::NotFound, "canonicalize");
        assert_kind(fs::read_dir(&missing).await, ErrorKind::NotFound, "read_dir");
        assert_kind(fs::File::open(&missing).await, ErrorKind::NotFound, "File::open");
        assert_kind(fs::rename(&missing, dir.join("x")).await, ErrorKind::NotFound, "rename");
        assert_kind(fs::copy(&missing, dir.join("x")).await, ErrorKind::NotFound, "copy");
        assert_kind(
            fs::write(dir.join("no/such/dir/file"), b"x").await,
            ErrorKind::NotFound,
            "write under a missing directory",
        );
        assert!(!fs::try_exists(&missing).await?);

        let sub = dir.join("sub");
        fs::create_dir(&sub).await?;
        assert_kind(fs::create_dir(&sub).await, ErrorKind::AlreadyExists, "create_dir twice");
        fs::create_dir_all(&sub).await?; // not an error
        let file = sub.join("file");
        fs::write(&file, b"x").await?;
        assert_kind(fs::File::create_new(&file).await, ErrorKind::AlreadyExists, "create_new");
        assert_kind(fs::remove_dir(&sub).await, ErrorKind::DirectoryNotEmpty, "remove_dir of a full one");

        fs::write(&file, [0xff, 0xfe, 0x00]).await?;
        assert_kind(fs::read_to_string(&file).await, ErrorKind::InvalidData, "read_to_string of bytes");
        Ok(())
    }
}

rt_test! {
    async fn directories_rename_copy_remove() -> io::Result<()> {
        let dir = TempDir::new("dirs");
        let deep = dir.join("a/b/c");
        fs::create_dir_all(&deep).await?;
        assert!(fs::metadata(&deep).await?.is_dir());
        let data = pattern(7, 100_000);
        fs::write(deep.join("one"), &data).await?;
        assert_eq!(fs::copy(deep.join("one"), deep.join("two")).await?, data.len() as u64);
        fs::rename(deep.join("two"), dir.join("three")).await?;
        assert!(!fs::try_exists(deep.join("two")).await?);
        assert_bytes_eq(&fs::read(dir.join("three")).await?, &data, "copied then renamed");

        let canon = fs::canonicalize(dir.join("a/b/../b/c/one")).await?;
        assert_eq!(canon, std::fs::canonicalize(deep.join("one"))?);

        fs::remove_file(dir.join("three")).await?;
        fs::remove_dir_all(dir.join("a")).await?;
        assert!(!fs::try_exists(dir.join("a")).await?);
        fs::create_dir(dir.join("empty")).await?;
        fs::remove_dir(dir.join("empty")).await?;
        Ok(())
    }
}

rt_test! {
    async fn read_dir_lists_every_entry_once() -> io::Result<()> {
        let dir = TempDir::new("readdir");
        // More entries than one batch, of two kinds.
        let mut want = BTreeSet::new();
        for i in 0..100 {
            let name = format!("file-{i:03}");
            fs::write(dir.join(&name), i.to_string()).await?;
            want.insert(name);
        }
        fs::create_dir(dir.join("subdir")).await?;
        want.insert("subdir".to_string());

        let mut got = BTreeSet::new();
        let mut entries = fs::read_dir(&dir.0).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().into_string().expect("utf-8 name");
            assert_eq!(entry.path(), dir.join(&name));
            let ty = entry.file_type().await?;
            assert_eq!(ty.is_dir(), name == "subdir", "{name}");
            if ty.is_file() {
                let meta = entry.metadata().await?;
                let n: usize = name["file-".len()..].parse().unwrap();
                assert_eq!(meta.len(), n.to_string().len() as u64, "{name}");
            }
            assert!(got.insert(name), "an entry came twice");
        }
        assert_eq!(got, want);
        // Once done, it stays done.
        assert!(entries.next_entry().await?.is_none());
        Ok(())
    }
}
