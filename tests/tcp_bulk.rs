//! Bulk transfers: both directions of one connection at once, and a fast
//! writer against a slow reader (back-pressure parks the writer).

#[macro_use]
mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gopark::net::{Shutdown, TcpStream};
use gopark::runtime::{self, time::sleep, JoinHandle};
use support::data::pattern;
use support::net::{pair, read_and_verify, set_buf};

const DUPLEX: usize = 16 << 20;

/// Writes `data` with `write` (not `write_all`) in chunks whose sizes
/// cycle through odd values, so partial writes happen; then half-closes.
fn spawn_writer(stream: Arc<TcpStream>, data: Arc<Vec<u8>>) -> JoinHandle<io::Result<()>> {
    runtime::spawn(async move {
        let sizes = [1usize, 1500, 65_536, 300_007, 7, 1 << 20];
        let mut off = 0;
        let mut i = 0;
        while off < data.len() {
            let end = (off + sizes[i % sizes.len()]).min(data.len());
            let n = stream.write(&data[off..end]).await?;
            assert!(n > 0, "write of {} bytes returned 0", end - off);
            off += n;
            i += 1;
        }
        stream.shutdown(Shutdown::Write)
    })
}

/// Reads and checks exactly `data`, then expects end of stream.
fn spawn_reader(
    stream: Arc<TcpStream>,
    data: Arc<Vec<u8>>,
    chunk: usize,
) -> JoinHandle<io::Result<()>> {
    runtime::spawn(async move {
        read_and_verify(&stream, &data, chunk).await?;
        assert_eq!(
            stream.read(&mut [0u8; 64]).await?,
            0,
            "EOF after the payload"
        );
        Ok(())
    })
}

rt_test! {
    async fn full_duplex_sixteen_mib_each_way() -> io::Result<()> {
        let (c, s) = pair().await?;
        let (c, s) = (Arc::new(c), Arc::new(s));
        let up = Arc::new(pattern(0xC11E, DUPLEX));
        let down = Arc::new(pattern(0x5E4E, DUPLEX));
        // Four tasks: each side has a reader and a writer on the same
        // stream, so both halves of both PollDescs park independently.
        let tasks = [
            spawn_writer(c.clone(), up.clone()),
            spawn_reader(s.clone(), up, 65_521),
            spawn_writer(s.clone(), down.clone()),
            spawn_reader(c.clone(), down, 4093),
        ];
        for t in tasks {
            t.await.expect("transfer task")?;
        }
        Ok(())
    }
}

const SLOW: usize = 4 << 20;

rt_test! {
    async fn slow_reader_parks_the_writer() -> io::Result<()> {
        let (c, s) = pair().await?;
        // Small buffers (no autotuning), so 4 MiB cannot fit in flight.
        set_buf(&c, libc::SO_RCVBUF, 32 * 1024);
        set_buf(&s, libc::SO_SNDBUF, 32 * 1024);
        let data = Arc::new(pattern(7, SLOW));
        let written = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let writer = {
            let (data, written, calls) = (data.clone(), written.clone(), calls.clone());
            runtime::spawn(async move {
                let mut off = 0;
                while off < data.len() {
                    let end = (off + 64 * 1024).min(data.len());
                    let n = s.write(&data[off..end]).await?;
                    calls.fetch_add(1, Ordering::SeqCst);
                    off += n;
                    written.store(off, Ordering::SeqCst);
                }
                s.shutdown(Shutdown::Write)?;
                Ok::<_, io::Error>(off)
            })
        };
        // The reader does not read for a while. This sleep is the slowness
        // under test, not a wait for an event: the writer must fill the
        // buffers and park, neither finishing nor spinning.
        sleep(Duration::from_millis(100)).await;
        let (w1, c1) = (written.load(Ordering::SeqCst), calls.load(Ordering::SeqCst));
        sleep(Duration::from_millis(100)).await;
        let (w2, c2) = (written.load(Ordering::SeqCst), calls.load(Ordering::SeqCst));
        assert!(w2 < SLOW, "the writer finished ({w2} bytes) against a reader that reads nothing");
        assert!(!writer.is_finished());
        assert!(
            c2 - c1 <= 2,
            "the writer is not parked: {} write calls in 100 ms ({w1} -> {w2} bytes)",
            c2 - c1
        );
        // Now read slowly: 16 KiB at a time, pausing every 512 KiB.
        let mut buf = vec![0u8; 16 * 1024];
        let mut off = 0;
        let mut reads = 0;
        while off < SLOW {
            let end = (SLOW - off).min(buf.len());
            let n = c.read(&mut buf[..end]).await?;
            assert!(n > 0, "early EOF at {off}");
            support::data::assert_bytes_eq(&buf[..n], &data[off..off + n], "slow read");
            off += n;
            reads += 1;
            if reads % 32 == 0 {
                sleep(Duration::from_millis(1)).await;
            }
        }
        assert_eq!(c.read(&mut buf).await?, 0, "EOF after the payload");
        assert_eq!(writer.await.expect("writer task")?, SLOW);
        Ok(())
    }
}
