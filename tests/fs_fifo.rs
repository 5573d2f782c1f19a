//! An `open` that blocks for ever — a FIFO with no writer — must not stall
//! a 1-worker runtime. Four of them at once: more than the monitor's
//! hand-off could cover (at most two worker threads on a 1-worker
//! runtime), so only the blocking pool keeps the runtime going.

mod support;

use std::ffi::CString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::io::AsyncReadExt;
use gopark::fs::File;
use gopark::runtime::{self, time::sleep, Handle};
use support::rt::{eventually, join, run_io};

const FIFOS: usize = 4;

fn mkfifo(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The FIFOs, in a directory of their own. Dropping it first opens each
/// FIFO for writing without blocking, which releases an `open` still
/// waiting for a writer (a test that failed half-way must not leave a
/// pool thread blocked for ever), then removes the directory.
struct Fifos {
    dir: PathBuf,
    paths: Vec<PathBuf>,
}

impl Fifos {
    fn new(n: usize) -> io::Result<Fifos> {
        let dir = std::env::temp_dir().join(format!("gopark-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut paths = Vec::new();
        for i in 0..n {
            let p = dir.join(format!("fifo-{i}"));
            let _ = std::fs::remove_file(&p);
            mkfifo(&p)?;
            paths.push(p);
        }
        Ok(Fifos { dir, paths })
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        for p in &self.paths {
            // ENXIO when no reader waits: nothing to release then.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn an_open_that_blocks_for_ever_does_not_stall_a_one_worker_runtime() {
    let fifos = Fifos::new(FIFOS).expect("make the FIFOs");
    let paths = fifos.paths.clone();
    run_io(1, "fifo", Duration::from_secs(30), move || async move {
        let metrics = Handle::current().metrics();
        let readers: Vec<_> = paths
            .iter()
            .cloned()
            .map(|p| {
                runtime::spawn(async move {
                    // Blocks in open(2) until a writer opens the FIFO.
                    let mut file = File::open(&p).await?;
                    let mut got = String::new();
                    file.read_to_string(&mut got).await?;
                    Ok::<_, io::Error>(got)
                })
            })
            .collect();
        // Every open is inside the kernel, each on a pool thread.
        eventually("every open waits on a pool thread", || {
            metrics.blocking_threads() - metrics.blocking_idle_threads() >= FIFOS
        })
        .await;

        // Meanwhile the one worker keeps running tasks: 20 timer ticks and
        // a spawned task, while the opens stay blocked.
        let start = Instant::now();
        for _ in 0..20 {
            sleep(Duration::from_millis(5)).await;
        }
        join(runtime::spawn(async { 42 })).await;
        let ran = start.elapsed();
        assert!(
            ran < Duration::from_secs(5),
            "20 ticks of 5 ms took {ran:?} beside the blocked opens"
        );
        assert!(
            readers.iter().all(|r| !r.is_finished()),
            "no writer yet, so no open returned"
        );

        // The writers arrive (on plain threads: opening a FIFO's write end
        // blocks until its reader is there, which it is).
        for (i, p) in paths.iter().enumerate() {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut w = std::fs::OpenOptions::new().write(true).open(p)?;
                w.write_all(format!("hello from writer {i}").as_bytes())
            });
        }
        for (i, r) in readers.into_iter().enumerate() {
            assert_eq!(join(r).await?, format!("hello from writer {i}"));
        }
        Ok(())
    });
    drop(fifos);
}
