//! raw-epoll: the same echo and HTTP work as gopark's examples, with no
//! runtime at all — the yardstick that gopark's overhead is measured
//! against.
//!
//! ```text
//! raw-epoll echo|http ADDR [THREADS]
//! ```
//!
//! THREADS threads (default 1), each with its own `SO_REUSEPORT` listener
//! on ADDR and its own edge-triggered epoll loop; the kernel spreads the
//! connections over them. Per connection: its descriptor and a buffer, in
//! a map from descriptor to state. What a runtime cannot beat:
//!
//! * one `epoll_wait` returns every ready connection, and each is served
//!   on the spot: no task, no queue, no wake-up of another thread;
//! * a read that comes back shorter than the buffer ends the read loop (the
//!   queue was empty at that moment, so a later byte raises a new edge),
//!   which saves the read that would only return `EAGAIN`;
//! * echo writes straight from the read buffer; HTTP answers every
//!   complete request head in the buffer (pipelined ones too) with one
//!   `send`, and keeps only what a short write left.
//!
//! The HTTP reply has the bytes of the http example's `GET /`:
//! `Hello, World!` with `Server`, `Date`, `Content-Type` and
//! `Content-Length`. A request with a body, or a head over 8 KiB, is
//! answered 400 and closed: this server exists to be measured.
//!
//! Once bound it prints `listening on ADDR` on stdout, and runs until
//! killed.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{SystemTime, UNIX_EPOCH};

const BUF: usize = 16 * 1024;
const MAX_HEAD: usize = 8 * 1024;
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const LISTENER: u64 = u64::MAX;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Echo,
    Http,
}

/// `-1` from a syscall becomes the `errno` error.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_len(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// A non-blocking listener on `addr` with `SO_REUSEPORT`, so that every
/// thread can have its own.
fn listen(addr: SocketAddr) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = check(unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: `one` is a live c_int of the length given.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
        )
    })?;
    // SAFETY: listen(2) on our descriptor.
    check(unsafe { libc::listen(fd.as_raw_fd(), 4096) })?;
    Ok(fd)
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large enough for any sockaddr.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// One connection's state.
struct Conn {
    fd: OwnedFd,
    /// HTTP: bytes of a request head not yet complete.
    pending: Vec<u8>,
    /// Bytes a short write left, sent when the socket is writable again.
    unsent: Vec<u8>,
}

/// The `Date` header's value, rendered once a second.
struct Date {
    second: u64,
    text: [u8; 29],
}

impl Date {
    fn new() -> Date {
        let mut d = Date {
            second: u64::MAX,
            text: [b' '; 29],
        };
        d.refresh();
        d
    }

    fn refresh(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now == self.second {
            return;
        }
        self.second = now;
        let (days, secs) = (now / 86_400, now % 86_400);
        let (y, m, d) = civil(days as i64);
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let text = format!(
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
            DAYS[(days % 7) as usize],
            d,
            MONTHS[m as usize - 1],
            y,
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        self.text.copy_from_slice(text.as_bytes());
    }
}

/// Year, month, day of `days` since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The reply to `GET /`.
fn hello(out: &mut Vec<u8>, date: &Date) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: gopark\r\nDate: ");
    out.extend_from_slice(&date.text);
    out.extend_from_slice(
        b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\nHello, World!",
    );
}

/// Answers every complete request head at the front of `data`; returns
/// how many bytes were used, or `None` if the connection must close after
/// what was written to `out`.
fn answer(data: &[u8], out: &mut Vec<u8>, date: &Date) -> Option<usize> {
    let mut used = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&data[used..]) {
            Ok(httparse::Status::Complete(n)) => {
                let has_body = req.headers.iter().any(|h| {
                    (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
                        || h.name.eq_ignore_ascii_case("transfer-encoding")
                });
                if has_body {
                    out.extend_from_slice(BAD_REQUEST);
                    return None;
                }
                hello(out, date);
                used += n;
            }
            Ok(httparse::Status::Partial) if data.len() - used <= MAX_HEAD => return Some(used),
            _ => {
                out.extend_from_slice(BAD_REQUEST);
                return None;
            }
        }
    }
}

/// Writes as much of `data` as the socket takes now; `Ok(n)` sent.
fn send(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < data.len() {
        // SAFETY: sends from a live buffer of the length given.
        let r = unsafe {
            libc::send(
                fd,
                data[at..].as_ptr().cast(),
                data.len() - at,
                libc::MSG_NOSIGNAL,
            )
        };
        match check_len(r) {
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

/// Serves one readiness edge of `conn`; `false` if it is to be closed.
fn serve(conn: &mut Conn, mode: Mode, buf: &mut [u8], out: &mut Vec<u8>, date: &Date) -> bool {
    let fd = conn.fd.as_raw_fd();
    if !conn.unsent.is_empty() {
        match send(fd, &conn.unsent) {
            Ok(n) => {
                conn.unsent.drain(..n);
            }
            Err(_) => return false,
        }
        if !conn.unsent.is_empty() {
            // Still full: wait for the next writable edge before reading
            // more (the peer reads its answers before sending more).
            return true;
        }
    }
    loop {
        // SAFETY: reads into a live buffer of the length given.
        let r = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = match check_len(r) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let keep = match mode {
            Mode::Echo => {
                let sent = match send(fd, &buf[..n]) {
                    Ok(sent) => sent,
                    Err(_) => return false,
                };
                conn.unsent.extend_from_slice(&buf[sent..n]);
                true
            }
            Mode::Http => {
                out.clear();
                let keep = if conn.pending.is_empty() {
                    match answer(&buf[..n], out, date) {
                        Some(used) => {
                            conn.pending.extend_from_slice(&buf[used..n]);
                            true
                        }
                        None => false,
                    }
                } else {
                    conn.pending.extend_from_slice(&buf[..n]);
                    match answer(&conn.pending, out, date) {
                        Some(used) => {
                            conn.pending.drain(..used);
                            true
                        }
                        None => false,
                    }
                };
                let sent = match send(fd, out) {
                    Ok(sent) => sent,
                    Err(_) => return false,
                };
                conn.unsent.extend_from_slice(&out[sent..]);
                keep
            }
        };
        if !keep {
            return false;
        }
        if !conn.unsent.is_empty() {
            return true;
        }
        if n < buf.len() {
            // A short read: the queue is empty; the next byte is a new edge.
            return true;
        }
    }
}

fn run(mode: Mode, listener: OwnedFd) -> io::Result<()> {
    // SAFETY: epoll_create1 with a constant flag; the result is checked.
    let epfd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    let epoll = unsafe { OwnedFd::from_raw_fd(epfd) };
    let add = |fd: RawFd, token: u64, events: u32| -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a live epoll_event.
        check(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    };
    add(listener.as_raw_fd(), LISTENER, libc::EPOLLIN as u32)?;
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; BUF];
    let mut out = Vec::with_capacity(BUF);
    let mut date = Date::new();
    loop {
        // SAFETY: `events` has room for the count given.
        let n = unsafe {
            libc::epoll_wait(
                epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                -1,
            )
        };
        let n = match check(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        date.refresh();
        for ev in &events[..n] {
            let token = ev.u64;
            if token == LISTENER {
                loop {
                    // SAFETY: accept4 with null address arguments.
                    let fd = unsafe {
                        libc::accept4(
                            listener.as_raw_fd(),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        )
                    };
                    let fd = match check(fd) {
                        Ok(fd) => fd,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        // EAGAIN, or out of descriptors: the next edge.
                        Err(_) => break,
                    };
                    // SAFETY: a fresh descriptor that nothing else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    let one: libc::c_int = 1;
                    // SAFETY: `one` is a live c_int of the length given.
                    unsafe {
                        libc::setsockopt(
                            fd.as_raw_fd(),
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&one as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                        )
                    };
                    let token = fd.as_raw_fd() as u64;
                    let events =
                        (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
                    if add(fd.as_raw_fd(), token, events).is_ok() {
                        conns.insert(
                            token,
                            Conn {
                                fd,
                                pending: Vec::new(),
                                unsent: Vec::new(),
                            },
                        );
                    }
                }
                continue;
            }
            let Some(conn) = conns.get_mut(&token) else {
                continue;
            };
            if !serve(conn, mode, &mut buf, &mut out, &date) {
                // Closing the descriptor removes it from the epoll set.
                conns.remove(&token);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: raw-epoll echo|http ADDR [THREADS]";
    let mode = match args.first().map(String::as_str) {
        Some("echo") => Mode::Echo,
        Some("http") => Mode::Http,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let Some(addr) = args
        .get(1)
        .and_then(|a| a.to_socket_addrs().ok())
        .and_then(|mut a| a.next())
    else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let threads: usize = match args.get(2).map(|t| t.parse()) {
        None => 1,
        Some(Ok(t)) if t > 0 => t,
        Some(_) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    // Port 0: let the kernel pick one, then every thread binds that one.
    let addr = if addr.port() == 0 {
        let probe = TcpListener::bind(addr).expect("bind");
        let picked = probe.local_addr().expect("local_addr");
        drop(probe);
        picked
    } else {
        addr
    };
    let listeners: Vec<OwnedFd> = (0..threads)
        .map(|_| listen(addr).unwrap_or_else(|e| panic!("listen on {addr}: {e}")))
        .collect();
    println!("listening on {addr}");
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            std::thread::spawn(move || {
                if let Err(e) = run(mode, l) {
                    eprintln!("raw-epoll: {e}");
                    std::process::exit(1);
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}
