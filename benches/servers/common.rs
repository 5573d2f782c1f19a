//! What both bench-only tokio servers share with their gopark twins: the
//! listener (`SO_REUSEADDR`, backlog = the kernel's `somaxconn`, as gopark
//! and Go use), the `accept` back-off, and the runtime with `--workers N`
//! workers. (The raised descriptor limit is the examples' own
//! `examples/support/nofile.rs`.)

use std::io;
use std::net::ToSocketAddrs;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};

/// Binds `addr` the way gopark's `TcpListener::bind` does, with
/// `SO_SNDBUF` at `send_buffer` if given (accepted sockets inherit it).
/// Must run inside the runtime.
pub fn bind(addr: &str, send_buffer: Option<usize>) -> io::Result<TcpListener> {
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    let socket = if sa.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if let Some(bytes) = send_buffer {
        let bytes = u32::try_from(bytes).map_err(|_| io::ErrorKind::InvalidInput)?;
        socket.set_send_buffer_size(bytes)?;
    }
    socket.bind(sa)?;
    socket.listen(backlog())
}

/// The kernel's `somaxconn`, as Go reads it (4096 if unreadable).
fn backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Go's `net/http` (and gopark's examples') answer to a failed `accept`:
/// out of descriptors or kernel memory, sleep 5 ms doubling to 1 s and go
/// on; any other error is returned.
pub async fn backoff(err: io::Error, delay: Option<Duration>) -> io::Result<Duration> {
    let temporary = matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    );
    if !temporary {
        return Err(err);
    }
    let delay = delay.map_or(Duration::from_millis(5), |d| {
        (d * 2).min(Duration::from_secs(1))
    });
    eprintln!("accept error: {err}; retrying in {delay:?}");
    tokio::time::sleep(delay).await;
    Ok(delay)
}

/// A multi-thread tokio runtime with `workers` worker threads (default:
/// one per core) and every driver enabled.
pub fn runtime(workers: Option<usize>, name: &str) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name(name);
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder.build()
}
