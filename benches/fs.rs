//! File benchmark: `gopark::fs` against `tokio::fs`, side by side, in one
//! process. Both send every file operation to a blocking pool; this
//! measures what that costs each of them, with a third column for the
//! road not taken: the same work done with `std::fs` right on a gopark
//! worker, as Go does it (no hop, but a worker blocked for as long as the
//! disk takes).
//!
//! Rows:
//!
//! * `read-100MiB`: one task reads a [`BIG_MIB`]-MiB file (written once
//!   beforehand, so it comes from the page cache) to the end in
//!   [`CHUNK`]-byte reads through the runtime's `File`.
//! * `write-10k`: [`SMALL_TASKS`] tasks write [`SMALL_FILES`] files of
//!   [`SMALL_LEN`] bytes between them with `fs::write`.
//! * `read-10k`: the same tasks read them back with `fs::read`.
//!
//! Each row runs [`DEFAULT_ROUNDS`] times per runtime, alternating which
//! goes first, on a fresh runtime each time with the same worker count;
//! the table shows the median time and the ratio tokio/gopark of the
//! medians (above 1: gopark is faster).
//!
//! ```text
//! cargo bench --bench fs              # every row
//! cargo bench --bench fs -- 10k       # rows whose name contains "10k"
//! ```
//!
//! Environment: `GOPARK_BENCH_WORKERS` (default 2), `GOPARK_BENCH_ROUNDS`
//! (default 3), `GOPARK_BENCH_FS_MIB` (the big file's size, default 100),
//! `GOPARK_BENCH_FS_FILES` (the small files' count, default 10,000),
//! `GOPARK_BENCH_FS_DIR` (where the files go, default the system's
//! temporary directory).

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{env_usize, median, Gopark, Rt, Tokio};

const DEFAULT_WORKERS: usize = 2;
const DEFAULT_ROUNDS: usize = 3;
/// Size of the big file, in MiB.
const BIG_MIB: usize = 100;
/// Bytes per read of the big file.
const CHUNK: usize = 64 * 1024;
/// Small files, their size, and the tasks that share them.
const SMALL_FILES: usize = 10_000;
const SMALL_LEN: usize = 1024;
const SMALL_TASKS: usize = 16;

#[derive(Clone, Copy, PartialEq)]
enum Row {
    ReadBig,
    WriteSmall,
    ReadSmall,
}

impl Row {
    fn name(self) -> &'static str {
        match self {
            Row::ReadBig => "read-100MiB",
            Row::WriteSmall => "write-10k",
            Row::ReadSmall => "read-10k",
        }
    }
}

struct Setup {
    big: PathBuf,
    big_len: usize,
    small_dir: PathBuf,
    files: usize,
}

impl Setup {
    fn small(&self, i: usize) -> PathBuf {
        self.small_dir.join(format!("s{i:05}"))
    }
}

/// The files of task `t` of [`SMALL_TASKS`].
fn share(setup: &Setup, t: usize) -> impl Iterator<Item = PathBuf> + '_ {
    (t..setup.files)
        .step_by(SMALL_TASKS)
        .map(|i| setup.small(i))
}

async fn gopark_row(row: Row, setup: Arc<Setup>) -> io::Result<()> {
    use futures_util::io::AsyncReadExt;
    match row {
        Row::ReadBig => {
            let mut file = gopark::fs::File::open(&setup.big).await?;
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0;
            loop {
                match file.read(&mut buf).await? {
                    0 => break,
                    n => total += n,
                }
            }
            assert_eq!(total, setup.big_len);
        }
        Row::WriteSmall | Row::ReadSmall => {
            let tasks: Vec<_> = (0..SMALL_TASKS)
                .map(|t| {
                    let setup = setup.clone();
                    gopark::runtime::spawn(async move {
                        let data = [b'g'; SMALL_LEN];
                        for p in share(&setup, t) {
                            if row == Row::WriteSmall {
                                gopark::fs::write(&p, data).await?;
                            } else {
                                assert_eq!(gopark::fs::read(&p).await?.len(), SMALL_LEN);
                            }
                        }
                        Ok::<_, io::Error>(())
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task")?;
            }
        }
    }
    Ok(())
}

async fn tokio_row(row: Row, setup: Arc<Setup>) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    match row {
        Row::ReadBig => {
            let mut file = tokio::fs::File::open(&setup.big).await?;
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0;
            loop {
                match file.read(&mut buf).await? {
                    0 => break,
                    n => total += n,
                }
            }
            assert_eq!(total, setup.big_len);
        }
        Row::WriteSmall | Row::ReadSmall => {
            let tasks: Vec<_> = (0..SMALL_TASKS)
                .map(|t| {
                    let setup = setup.clone();
                    tokio::spawn(async move {
                        let data = [b't'; SMALL_LEN];
                        for p in share(&setup, t) {
                            if row == Row::WriteSmall {
                                tokio::fs::write(&p, data).await?;
                            } else {
                                assert_eq!(tokio::fs::read(&p).await?.len(), SMALL_LEN);
                            }
                        }
                        Ok::<_, io::Error>(())
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task")?;
            }
        }
    }
    Ok(())
}

/// The same work with `std::fs` on gopark's workers (Go's way: no hop).
async fn inline_row(row: Row, setup: Arc<Setup>) -> io::Result<()> {
    use std::io::Read;
    match row {
        Row::ReadBig => {
            let mut file = std::fs::File::open(&setup.big)?;
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0;
            loop {
                match file.read(&mut buf)? {
                    0 => break,
                    n => total += n,
                }
                // A task that does this yields now and then, or it would
                // hold its worker for the whole file.
                gopark::runtime::yield_now().await;
            }
            assert_eq!(total, setup.big_len);
        }
        Row::WriteSmall | Row::ReadSmall => {
            let tasks: Vec<_> = (0..SMALL_TASKS)
                .map(|t| {
                    let setup = setup.clone();
                    gopark::runtime::spawn(async move {
                        let data = [b's'; SMALL_LEN];
                        for p in share(&setup, t) {
                            if row == Row::WriteSmall {
                                std::fs::write(&p, data)?;
                            } else {
                                assert_eq!(std::fs::read(&p)?.len(), SMALL_LEN);
                            }
                            gopark::runtime::yield_now().await;
                        }
                        Ok::<_, io::Error>(())
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task")?;
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Which {
    Gopark,
    Tokio,
    Inline,
}

fn run_once(which: Which, row: Row, setup: &Arc<Setup>, workers: usize) -> Duration {
    let setup = setup.clone();
    match which {
        Which::Gopark | Which::Inline => {
            let rt = Gopark::build(workers);
            rt.block_on(async move {
                let start = Instant::now();
                let task = match which {
                    Which::Gopark => gopark::runtime::spawn(gopark_row(row, setup)),
                    _ => gopark::runtime::spawn(inline_row(row, setup)),
                };
                task.await.expect("row task").expect("row");
                start.elapsed()
            })
        }
        Which::Tokio => {
            let rt = Tokio::build(workers);
            rt.block_on(async move {
                let start = Instant::now();
                tokio::spawn(tokio_row(row, setup))
                    .await
                    .expect("row task")
                    .expect("row");
                start.elapsed()
            })
        }
    }
}

fn main() -> io::Result<()> {
    let workers = env_usize("GOPARK_BENCH_WORKERS", DEFAULT_WORKERS);
    let rounds = env_usize("GOPARK_BENCH_ROUNDS", DEFAULT_ROUNDS).max(1);
    let mib = env_usize("GOPARK_BENCH_FS_MIB", BIG_MIB);
    let files = env_usize("GOPARK_BENCH_FS_FILES", SMALL_FILES);
    let base = std::env::var_os("GOPARK_BENCH_FS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();

    let dir = base.join(format!("gopark-bench-fs-{}", std::process::id()));
    let small_dir = dir.join("small");
    std::fs::create_dir_all(&small_dir)?;
    let big = dir.join("big");
    let big_len = mib << 20;
    write_big(&big, big_len)?;
    let setup = Arc::new(Setup {
        big,
        big_len,
        small_dir,
        files,
    });
    // The small files exist before the first read row, whatever the filter.
    for i in 0..files {
        std::fs::write(setup.small(i), [b'x'; SMALL_LEN])?;
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "fs: {workers} workers per runtime, {cores} cores, {rounds} runs per runtime per row, \
         median times; big file {mib} MiB read in {} KiB chunks; {files} files of {SMALL_LEN} B \
         over {SMALL_TASKS} tasks; files in {}",
        CHUNK / 1024,
        base.display()
    );
    println!();
    println!("| row | gopark::fs | tokio::fs | ratio tokio/gopark | std on a gopark worker |");
    println!("|---|---:|---:|---:|---:|");
    for row in [Row::ReadBig, Row::WriteSmall, Row::ReadSmall] {
        if !filters.is_empty() && !filters.iter().any(|f| row.name().contains(f.as_str())) {
            continue;
        }
        let (mut g, mut t, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [Which::Gopark, Which::Tokio, Which::Inline]
            } else {
                [Which::Tokio, Which::Gopark, Which::Inline]
            };
            for which in order {
                let d = run_once(which, row, &setup, workers);
                match which {
                    Which::Gopark => g.push(d),
                    Which::Tokio => t.push(d),
                    Which::Inline => s.push(d),
                }
            }
        }
        let (g, t, s) = (median(g), median(t), median(s));
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.2} | {:.1} ms |",
            row.name(),
            ms(g),
            ms(t),
            t.as_secs_f64() / g.as_secs_f64(),
            ms(s)
        );
    }
    std::fs::remove_dir_all(&dir)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn write_big(path: &Path, len: usize) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let block: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        f.write_all(&block[..n])?;
        left -= n;
    }
    f.flush()
}
