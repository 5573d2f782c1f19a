//! Unix domain socket addresses for tests: paths that clean up after
//! themselves, and abstract names.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A number unique in this process, for names unique across runs too
/// (with the process id).
fn next() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A socket path under the temp dir, unique in this process and across
/// runs, removed (if it exists) when dropped.
pub struct TempPath(PathBuf);

impl TempPath {
    pub fn new(tag: &str) -> TempPath {
        let name = format!("gopark-{tag}-{}-{}.sock", std::process::id(), next());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }
}

impl std::ops::Deref for TempPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A unique abstract address (Linux): no file, gone with its socket.
pub fn abstract_addr(tag: &str) -> io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("gopark-{tag}-{}-{}", std::process::id(), next()))
}
