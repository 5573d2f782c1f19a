//! `load light`: the latency of a request that reaches an idle server.
//!
//! No runtime here, so that the client adds nothing but its own blocking
//! `write` and `read`: a few connections take turns, and before each
//! 64-byte echo the client sleeps a pseudo-random pause (the same xorshift
//! sequence every run, so every server sees the same gaps). Each request
//! thus finds the server idle — every thread of it asleep — which is the
//! latency most servers give most of the time, and the one a runtime that
//! needs two thread wake-ups per request pays for.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::args::Config;

/// The message each echo sends.
const MESSAGE: [u8; 64] = [7; 64];

/// Runs the echoes; returns the summary line.
pub fn run(cfg: &Config) -> io::Result<String> {
    let conns = (0..cfg.connections)
        .map(|_| {
            let s = TcpStream::connect(cfg.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            Ok(s)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut back = [0u8; 64];
    let mut lat = Vec::with_capacity(cfg.count);
    for i in 0..cfg.count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_micros(x % cfg.gap_us.max(1)));
        let mut s = &conns[i % conns.len()];
        let t = Instant::now();
        s.write_all(&MESSAGE)?;
        s.read_exact(&mut back)?;
        lat.push(t.elapsed().as_nanos() as u64);
        if back != MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the echo differs from the message",
            ));
        }
    }
    lat.sort_unstable();
    // In microseconds to a tenth: an idle-server echo takes a handful of
    // them, and whole ones would round two servers 0.9 µs apart together.
    let us = |ns: u64| ns as f64 / 1000.0;
    let q = |p: f64| us(lat[((lat.len() - 1) as f64 * p) as usize]);
    Ok(format!(
        "light n={} p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
        lat.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        us(lat[lat.len() - 1])
    ))
}
