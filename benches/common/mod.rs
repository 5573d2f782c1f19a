//! What the benchmarks share: the [`Rt`] trait that lets one workload be
//! written once and monomorphised for gopark and for tokio, its network
//! half [`NetRt`], and the environment knobs and medians of the tables.
//!
//! Each bench says `mod common;` and uses what it needs; the rest is not
//! dead code of the project, so dead-code warnings are off here.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// What the scheduler workloads need from a runtime.
pub trait Rt: Sized + 'static {
    const NAME: &'static str;
    type JoinErr: std::fmt::Debug;
    type Join<T: Send + 'static>: Future<Output = Result<T, Self::JoinErr>> + Send + 'static;

    /// A multi-thread runtime with `workers` workers, threads named
    /// `bench-<name>`.
    fn build(workers: usize) -> Self;
    fn block_on<F: Future>(&self, f: F) -> F::Output;
    /// Spawns from outside the runtime, through its handle.
    fn spawn_remote<T, F>(&self, f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static;
    /// Spawns onto the runtime the caller runs in (a task or `block_on`).
    fn spawn<T, F>(f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static;
    fn yield_now() -> impl Future<Output = ()> + Send;
}

/// What the network workloads need from a runtime: TCP with the calls of
/// `std`/tokio, on `&mut` streams (gopark's take `&self`, tokio's `&mut`).
pub trait NetRt: Rt {
    type Listener: Send + Sync + 'static;
    type Stream: Send + 'static;

    /// Binds a listener. Must run inside the runtime.
    fn bind(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send + '_;
    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    fn set_nodelay(stream: &Self::Stream, on: bool) -> io::Result<()>;
    fn read<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;
    fn read_exact<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;
    fn write_all<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;
}

pub struct Gopark(pub gopark::runtime::Runtime);

impl Rt for Gopark {
    const NAME: &'static str = "gopark";
    type JoinErr = gopark::runtime::JoinError;
    type Join<T: Send + 'static> = gopark::runtime::JoinHandle<T>;

    fn build(workers: usize) -> Self {
        let rt = gopark::runtime::Builder::new()
            .worker_threads(workers)
            .thread_name("bench-gopark")
            .build()
            .expect("build gopark runtime");
        Gopark(rt)
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }

    fn spawn_remote<T, F>(&self, f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.0.handle().spawn(f)
    }

    fn spawn<T, F>(f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        gopark::runtime::spawn(f)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        gopark::runtime::yield_now()
    }
}

impl NetRt for Gopark {
    type Listener = gopark::net::TcpListener;
    type Stream = gopark::net::TcpStream;

    async fn bind(addr: SocketAddr) -> io::Result<Self::Listener> {
        gopark::net::TcpListener::bind(addr)
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send + '_ {
        listener.accept()
    }

    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        gopark::net::TcpStream::connect(addr)
    }

    fn set_nodelay(stream: &Self::Stream, on: bool) -> io::Result<()> {
        stream.set_nodelay(on)
    }

    fn read<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        stream.read(buf)
    }

    fn read_exact<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a {
        stream.read_exact(buf)
    }

    fn write_all<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a {
        stream.write_all(buf)
    }
}

pub struct Tokio(pub tokio::runtime::Runtime);

impl Rt for Tokio {
    const NAME: &'static str = "tokio";
    type JoinErr = tokio::task::JoinError;
    type Join<T: Send + 'static> = tokio::task::JoinHandle<T>;

    /// With every driver enabled, as in tokio's own benches: gopark always
    /// runs its netpoll thread.
    fn build(workers: usize) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("bench-tokio")
            .enable_all()
            .build()
            .expect("build tokio runtime");
        Tokio(rt)
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }

    fn spawn_remote<T, F>(&self, f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.0.handle().spawn(f)
    }

    fn spawn<T, F>(f: F) -> Self::Join<T>
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        tokio::spawn(f)
    }

    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}

impl NetRt for Tokio {
    type Listener = tokio::net::TcpListener;
    type Stream = tokio::net::TcpStream;

    fn bind(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        tokio::net::TcpListener::bind(addr)
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send + '_ {
        listener.accept()
    }

    fn connect(addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        tokio::net::TcpStream::connect(addr)
    }

    fn set_nodelay(stream: &Self::Stream, on: bool) -> io::Result<()> {
        stream.set_nodelay(on)
    }

    fn read<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        tokio::io::AsyncReadExt::read(stream, buf)
    }

    async fn read_exact<'a>(stream: &'a mut Self::Stream, buf: &'a mut [u8]) -> io::Result<()> {
        tokio::io::AsyncReadExt::read_exact(stream, buf)
            .await
            .map(|_| ())
    }

    fn write_all<'a>(
        stream: &'a mut Self::Stream,
        buf: &'a [u8],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a {
        tokio::io::AsyncWriteExt::write_all(stream, buf)
    }
}

/// The value of environment variable `key` as a positive integer, or
/// `default` if it is unset.
pub fn env_usize(key: &str, default: usize) -> usize {
    match std::env::var(key) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{key} must be a positive integer, got {v:?}"),
        },
        Err(_) => default,
    }
}

/// The value of environment variable `key` as a positive number of
/// seconds, or `default` if it is unset.
pub fn env_secs(key: &str, default: f64) -> Duration {
    match std::env::var(key) {
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => Duration::from_secs_f64(s),
            _ => panic!("{key} must be a positive number of seconds, got {v:?}"),
        },
        Err(_) => Duration::from_secs_f64(default),
    }
}

/// The median of `samples` (the mean of the middle two for an even count).
pub fn median<T: Copy + PartialOrd + Median>(mut samples: Vec<T>) -> T {
    samples.sort_by(|a, b| a.partial_cmp(b).expect("comparable samples"));
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        T::mid(samples[n / 2 - 1], samples[n / 2])
    }
}

/// The midpoint of two samples.
pub trait Median {
    fn mid(a: Self, b: Self) -> Self;
}

impl Median for f64 {
    fn mid(a: f64, b: f64) -> f64 {
        (a + b) / 2.0
    }
}

impl Median for Duration {
    fn mid(a: Duration, b: Duration) -> Duration {
        (a + b) / 2
    }
}
