//! echo mode: a connection writes a message, reads it back, checks it, and
//! starts again. Writing and reading run together (one task, two futures),
//! so a message larger than the socket buffers cannot deadlock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join;
use gopark::net::TcpStream;
use gopark::runtime::time::sleep;

use crate::args::Config;
use crate::stats::{Failure, Stats};

const RECONNECT_DELAY: Duration = Duration::from_millis(50);

/// Runs connection number `id` until `stop` is set.
pub async fn run(id: usize, cfg: Arc<Config>, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    // A pattern that differs between connections and is not periodic in
    // any small number of bytes, so a misdirected or shifted echo shows.
    let message: Vec<u8> = (0..cfg.size)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8) ^ id) as u8)
        .collect();
    let mut back = vec![0u8; cfg.size];
    // Relaxed: the flag carries no data; seeing it a message late is fine.
    while !stop.load(Ordering::Relaxed) {
        let stream = match TcpStream::connect(cfg.addr).await {
            Ok(stream) => stream,
            Err(_) => {
                stats.fail(id, Failure::Connect);
                sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if let Err(failure) = round_trips(id, &stream, &message, &mut back, &stats, &stop).await {
            stats.fail(id, failure);
            sleep(RECONNECT_DELAY).await;
        }
    }
}

async fn round_trips(
    id: usize,
    stream: &TcpStream,
    message: &[u8],
    back: &mut [u8],
    stats: &Stats,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let (written, read) = join(stream.write_all(message), stream.read_exact(back)).await;
        written.map_err(|_| Failure::Io)?;
        read.map_err(|_| Failure::Io)?;
        stats.sent(id, message.len());
        if back != message {
            return Err(Failure::Protocol);
        }
        stats.record(id, sent.elapsed(), back.len(), true);
    }
    Ok(())
}
