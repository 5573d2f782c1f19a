//! Stress on real threads (issue 5): duplex ping-pong on loopback at 1, 2
//! and 4 workers, with a watchdog, 0 hangs.
//!
//! Each iteration, both ends of a connection send their message and read
//! the other's at the same time, so both halves of both `PollDesc`s park
//! and wake concurrently; message sizes vary from 1 byte to 256 KiB (the
//! large ones fill the socket buffers, so writers park too), and every
//! byte is checked. Half the pairs drive both halves from one task
//! (`join`), the other half from a reader task and a writer task per end,
//! handing each message over through a channel — cross-task, cross-worker
//! wake-ups. Every iteration is bounded by a runtime timeout (a hang is
//! counted and fails the test) and the whole run by a watchdog thread that
//! aborts the process if the runtime itself stops.
//!
//! The default run does 10,000 iterations per worker count in all (a CI
//! size); the `#[ignore]`d `_full` test does 10,000 per connection pair.

mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::mpsc;
use futures_util::future::join;
use futures_util::StreamExt;
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout};
use support::data::pattern;
use support::rt::{serial, Watchdog};
use support::stats::figure;

/// Connection pairs at once.
const PAIRS: usize = 4;
/// Bound of one iteration; exceeding it counts as a hang.
const STEP: Duration = Duration::from_secs(10);

/// The size of message `k`: mostly small, every 97th 256 KiB.
fn size(k: usize) -> usize {
    if k % 97 == 96 {
        256 * 1024
    } else {
        1 + (k * 31) % 2000
    }
}

/// Message `k` of side `side` (0 or 1): a window of the shared random data.
fn message(data: &[u8], side: usize, k: usize) -> &[u8] {
    let off = (k * 131 + side * 65_537) % (data.len() - 256 * 1024);
    &data[off..off + size(k)]
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One end, both halves driven from one task.
async fn end_joined(
    stream: TcpStream,
    data: Arc<Vec<u8>>,
    side: usize,
    iterations: usize,
    progress: Arc<AtomicUsize>,
) -> io::Result<usize> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut hangs = 0;
    for k in 0..iterations {
        let want = message(&data, 1 - side, k);
        let step = join(
            stream.write_all(message(&data, side, k)),
            stream.read_exact(&mut buf[..want.len()]),
        );
        match timeout(STEP, step).await {
            Err(_) => {
                hangs += 1;
                break;
            }
            Ok((w, r)) => {
                w?;
                r?;
            }
        }
        if buf[..want.len()] != *want {
            return Err(bad(format!("side {side}: message {k} differs")));
        }
        progress.fetch_add(1, Ordering::Relaxed);
    }
    Ok(hangs)
}

/// One end, a reader task and a writer task: the writer sends message k
/// once the reader has received the peer's message k-1.
async fn end_split(
    stream: TcpStream,
    data: Arc<Vec<u8>>,
    side: usize,
    iterations: usize,
    progress: Arc<AtomicUsize>,
) -> io::Result<usize> {
    let stream = Arc::new(stream);
    let (got_tx, mut got_rx) = mpsc::unbounded::<usize>();
    let (ws, wd) = (stream.clone(), data.clone());
    let writer = runtime::spawn(async move {
        for k in 0..iterations {
            if k > 0 {
                match timeout(STEP, got_rx.next()).await {
                    Err(_) => return Ok(1),
                    Ok(None) => return Ok(0), // the reader failed; it reports
                    Ok(Some(got)) => assert_eq!(got, k - 1),
                }
            }
            match timeout(STEP, ws.write_all(message(&wd, side, k))).await {
                Err(_) => return Ok(1),
                Ok(r) => r?,
            }
        }
        Ok::<_, io::Error>(0)
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut hangs = 0;
    for k in 0..iterations {
        let want = message(&data, 1 - side, k);
        match timeout(STEP, stream.read_exact(&mut buf[..want.len()])).await {
            Err(_) => {
                hangs += 1;
                break;
            }
            Ok(r) => r?,
        }
        if buf[..want.len()] != *want {
            return Err(bad(format!("side {side}: message {k} differs")));
        }
        progress.fetch_add(1, Ordering::Relaxed);
        let _ = got_tx.unbounded_send(k);
    }
    drop(got_tx);
    let writer_hangs = timeout(STEP, writer)
        .await
        .map_err(|_| bad("the writer never finished".into()))?
        .expect("writer task")?;
    Ok(hangs + writer_hangs)
}

struct Outcome {
    iterations: usize,
    hangs: usize,
    took: Duration,
}

fn ping_pong(workers: usize, per_pair: usize) -> Outcome {
    let progress = Arc::new(AtomicUsize::new(0));
    let limit = Duration::from_secs(300);
    let dog = Watchdog::start(
        format!("ping-pong on {workers} worker(s)"),
        limit + Duration::from_secs(30),
    );
    let rt = support::rt::runtime(workers, &format!("pp{workers}"));
    let p = progress.clone();
    let res = rt.block_on(async move {
        timeout(
            limit,
            runtime::spawn(async move {
                let data = Arc::new(pattern(0x9196, 1 << 20));
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?;
                let start = Instant::now();
                let mut ends = Vec::new();
                for pair in 0..PAIRS {
                    let (c, a) = join(TcpStream::connect(addr), listener.accept()).await;
                    let (c, s) = (c?, a?.0);
                    for (side, stream) in [(0, c), (1, s)] {
                        let (d, p) = (data.clone(), p.clone());
                        ends.push(if pair % 2 == 0 {
                            runtime::spawn(end_joined(stream, d, side, per_pair, p))
                        } else {
                            runtime::spawn(end_split(stream, d, side, per_pair, p))
                        });
                    }
                }
                let mut hangs = 0;
                for e in ends {
                    hangs += e.await.expect("end task")?;
                }
                Ok::<_, io::Error>((hangs, start.elapsed()))
            }),
        )
        .await
    });
    drop(rt);
    dog.disarm();
    let done = progress.load(Ordering::Relaxed) / 2;
    match res {
        Err(_) => panic!("{workers} worker(s): the run hung after {done} iterations"),
        Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
        Ok(Ok(Err(e))) => panic!("{workers} worker(s): {e}"),
        Ok(Ok(Ok((hangs, took)))) => Outcome {
            iterations: done,
            hangs,
            took,
        },
    }
}

fn stress(per_pair: usize) {
    let _serial = serial();
    for workers in [1, 2, 4] {
        let o = ping_pong(workers, per_pair);
        figure(
            "stress.ping_pong",
            format!(
                "{workers} worker(s): {} duplex ping-pong iterations ({PAIRS} connections x \
                 {per_pair}, 1 B..256 KiB, every byte checked) in {:.2?} ({:.0}/s): {} hangs",
                o.iterations,
                o.took,
                o.iterations as f64 / o.took.as_secs_f64(),
                o.hangs
            ),
        );
        assert_eq!(o.hangs, 0, "{workers} worker(s): hangs");
        assert_eq!(o.iterations, PAIRS * per_pair, "iterations completed");
    }
}

#[test]
fn duplex_ping_pong_10000_iterations() {
    stress(10_000 / PAIRS);
}

#[test]
#[ignore = "full size (release): scripts/reliability.sh"]
fn duplex_ping_pong_10000_iterations_per_connection_full() {
    stress(10_000);
}
