//! Bench-only: the tokio twin of `examples/http`, for `scripts/compare.sh`.
//!
//! ```text
//! cargo run --release --example tokio_http -- [--addr ADDR] [--workers N]
//!                                             [--header-timeout SECS] [--idle-timeout SECS]
//! ```
//!
//! Same logic and the same bytes on the wire as gopark's HTTP example for
//! what the comparison sends (`GET /`, keep-alive, pipelining): it includes
//! `examples/http/{args,response,date}.rs` as they are (command line,
//! router and reply renderer, the `Date` header cached per thread per
//! second). `request.rs` here is a copy of the head parser as of commit
//! 1265246: the gopark server has since moved to a stricter framing layer
//! (`framing.rs`, `chunked.rs`, chunked bodies decoded), which this twin
//! does not mirror; it still refuses chunked bodies with 501. Options it
//! does not implement (`--write-timeout`, `--send-buffer`) are accepted and
//! ignored: it keeps a fixed 10 s write timeout and the kernel's
//! send-buffer sizing, so `compare.sh` runs gopark with `--send-buffer 0`.
//! Only the connection loop is rewritten for tokio, line for line after
//! that commit's `examples/http/conn.rs`:
//!
//! 1. answer every complete request in the read buffer, appending the
//!    replies to one output buffer; 2. write it with one `write_all`
//!    (pipelined requests that arrived in one read get one write);
//!    3. set the read deadline for what comes next, and read.
//!
//! gopark's socket deadlines become one tokio `Sleep` per direction per
//! connection, moved (`reset`) exactly when gopark moves its deadline — at
//! most once a second on a busy connection — and raced against the read or
//! the write with a biased `select!`, so a read that is ready never touches
//! the timer. Keep-alive, `Connection: close`, HTTP/1.0, bodies,
//! `Expect: 100-continue`, 400/431/501, the header and idle timeouts, the
//! lingering close and graceful shutdown on SIGINT/SIGTERM all behave as in
//! the gopark server. The one difference: shutdown *kicks* an idle
//! connection with `shutdown(SHUT_RD)` (its read sees end of stream)
//! instead of moving its read deadline to now. Like gopark, accepted
//! sockets get `TCP_NODELAY`.

#[path = "../../../examples/http/args.rs"]
mod args;
#[path = "../common.rs"]
mod common;
#[path = "../../../examples/http/date.rs"]
mod date;
mod request;
#[path = "../../../examples/http/response.rs"]
mod response;

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant, Sleep};

use args::{Command, Config};
use request::{Head, Parsed};
use response::{Connection, Reply, Status};

/// How long a shutdown waits for connections to finish.
const GRACE: Duration = Duration::from_secs(30);
/// Read buffer size: room for a whole maximal head and then some.
const BUF_SIZE: usize = 16 * 1024;
/// A read that would have less room than this first moves the buffered
/// bytes to the front.
const MIN_READ: usize = 4 * 1024;
const _: () = assert!(request::MAX_HEAD + MIN_READ <= BUF_SIZE);
/// How long the client may take to accept a batch of replies.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack for the idle, body and write deadlines: they move at most this
/// often.
const DEADLINE_SLACK: Duration = Duration::from_secs(1);
/// After the last reply, how long to wait for the peer to close.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_MAX_BYTES: usize = 256 * 1024;

fn main() -> ExitCode {
    let config = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Serve(config)) => config,
        Ok(Command::Help) => {
            println!(
                "tokio_http: the tokio twin of gopark's HTTP example\n\n{}",
                args::USAGE
            );
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("tokio_http: {msg}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    common::raise_nofile_limit();
    let rt = match common::runtime(config.workers, "tokio-http") {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio_http: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(config)) {
        Ok(served) => {
            println!("served {served} requests");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tokio_http: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the connections share, as in the gopark server.
struct Server {
    config: Config,
    stopping: AtomicBool,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    served: AtomicU64,
}

impl Server {
    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn begin_shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        for conn in self.conns.lock().unwrap().values() {
            conn.kick();
        }
    }

    fn register(&self, conn: Arc<Conn>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns.lock().unwrap().insert(id, conn);
        id
    }

    fn unregister(&self, id: u64) {
        self.conns.lock().unwrap().remove(&id);
    }

    fn open_connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

async fn serve(config: Config) -> io::Result<u64> {
    let listener = common::bind(&config.addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.addr)))?;
    println!("listening on http://{}", listener.local_addr()?);
    let server = Arc::new(Server {
        config,
        stopping: AtomicBool::new(false),
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        served: AtomicU64::new(0),
    });
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;

    // Every connection task holds a sender; when all are gone, `recv`
    // yields `None`.
    let (done_tx, mut done) = mpsc::channel::<()>(1);
    let mut delay = None;
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                delay = None;
                let server = server.clone();
                let done_tx = done_tx.clone();
                tokio::spawn(async move {
                    let served = serve_conn(&server, stream).await;
                    server.served.fetch_add(served, Ordering::Relaxed);
                    drop(done_tx);
                });
            }
            Err(e) => delay = Some(common::backoff(e, delay).await?),
        }
    }
    println!("shutting down: no new connections, finishing requests in flight");
    server.begin_shutdown();
    drop(listener);
    drop(done_tx);
    let open = server.open_connections();
    if open > 0 {
        println!("waiting for {open} connection(s) to finish");
    }
    tokio::select! {
        res = timeout(GRACE, done.recv()) => if res.is_err() {
            eprintln!(
                "tokio_http: {} connection(s) still open after {GRACE:?}; exiting anyway",
                server.open_connections()
            );
        },
        _ = sigint.recv() => std::process::exit(130),
        _ = sigterm.recv() => std::process::exit(130),
    }
    Ok(server.served.load(Ordering::Relaxed))
}

/// What the server sees of a connection: its descriptor (to kick it at
/// shutdown) and whether it is idle.
struct Conn {
    fd: RawFd,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Busy,
    Idle,
    Kicked,
}

impl Conn {
    fn enter_idle(&self, server: &Server) -> bool {
        let mut state = self.state.lock().unwrap();
        if server.is_stopping() {
            return false;
        }
        *state = State::Idle;
        true
    }

    fn leave_idle(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        let kicked = *state == State::Kicked;
        *state = State::Busy;
        kicked
    }

    /// Shutdown: an idle connection's parked read sees end of stream. The
    /// descriptor is open: the connection is registered, and it unregisters
    /// (under the lock `begin_shutdown` holds) before its stream is dropped.
    fn kick(&self) {
        let mut state = self.state.lock().unwrap();
        if *state == State::Idle {
            *state = State::Kicked;
            // SAFETY: shutdown on an open socket descriptor; see above.
            unsafe { libc::shutdown(self.fd, libc::SHUT_RD) };
        }
    }
}

/// Serves one connection until it closes; returns how many replies it
/// wrote.
async fn serve_conn(server: &Server, stream: TcpStream) -> u64 {
    if stream.set_nodelay(true).is_err() {
        return 0;
    }
    let conn = Arc::new(Conn {
        fd: stream.as_raw_fd(),
        state: Mutex::new(State::Busy),
    });
    let id = server.register(conn.clone());
    let mut handler = Handler::new(server, &conn, stream);
    if handler.run().await == Exit::Linger {
        handler.lingering_close().await;
    }
    server.unregister(id);
    let served = handler.served;
    drop(handler); // closes the stream, after unregistering
    served
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Close,
    Linger,
}

enum Expect {
    Head,
    Body { remaining: u64, reply: Pending },
}

struct Pending {
    reply: &'static Reply,
    head_only: bool,
    connection: Connection,
}

struct Handler<'a> {
    server: &'a Server,
    conn: &'a Conn,
    stream: TcpStream,
    buf: ReadBuf,
    out: Vec<u8>,
    batch: u64,
    served: u64,
    expect: Expect,
    request_start: Option<Instant>,
    /// The read deadline last set; `None` if it must be set again.
    read_deadline: Option<Instant>,
    write_deadline: Option<Instant>,
    /// The deadlines, as timers: polled only when an operation must wait.
    read_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
}

impl<'a> Handler<'a> {
    fn new(server: &'a Server, conn: &'a Conn, stream: TcpStream) -> Handler<'a> {
        let now = Instant::now();
        Handler {
            server,
            conn,
            stream,
            buf: ReadBuf::new(),
            out: Vec::with_capacity(1024),
            batch: 0,
            served: 0,
            expect: Expect::Head,
            request_start: Some(now),
            read_deadline: None,
            write_deadline: None,
            read_timer: Box::pin(sleep_until(now)),
            write_timer: Box::pin(sleep_until(now)),
        }
    }

    async fn run(&mut self) -> Exit {
        let (header_timeout, idle_timeout) = (
            self.server.config.header_timeout,
            self.server.config.idle_timeout,
        );
        loop {
            let closing = self.process();
            if self.flush().await.is_err() {
                return Exit::Close;
            }
            if let Some(exit) = closing {
                return exit;
            }

            let now = Instant::now();
            let between_requests = self.buf.is_empty() && matches!(self.expect, Expect::Head);
            let (deadline, slack) = match (&self.expect, self.request_start) {
                (Expect::Head, Some(start)) if between_requests => {
                    (start + header_timeout, Duration::ZERO)
                }
                (Expect::Head, _) if between_requests => (now + idle_timeout, DEADLINE_SLACK),
                (Expect::Head, start) => {
                    let start = start.unwrap_or(now);
                    self.request_start = Some(start);
                    (start + header_timeout, Duration::ZERO)
                }
                (Expect::Body { .. }, _) => (now + header_timeout, DEADLINE_SLACK),
            };
            self.set_read_deadline(deadline, slack);
            if between_requests && !self.conn.enter_idle(self.server) {
                return Exit::Close;
            }

            let res = self.read().await;
            if between_requests && self.conn.leave_idle() {
                self.read_deadline = None;
            }
            match res {
                Ok(0) => return Exit::Close,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut && between_requests => {
                    return Exit::Close
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.reject(Status::RequestTimeout);
                    let _ = self.flush().await;
                    return Exit::Linger;
                }
                Err(_) => return Exit::Close,
            }
        }
    }

    /// Answers every complete request in the buffer (as in gopark's
    /// `conn.rs`).
    fn process(&mut self) -> Option<Exit> {
        let date = date::now();
        loop {
            match &mut self.expect {
                Expect::Body { remaining, .. } => {
                    let n = (*remaining).min(self.buf.len() as u64);
                    self.buf.consume(n as usize);
                    *remaining -= n;
                    if *remaining > 0 {
                        return None;
                    }
                    let Expect::Body { reply, .. } =
                        std::mem::replace(&mut self.expect, Expect::Head)
                    else {
                        unreachable!("matched above")
                    };
                    if let Some(exit) = self.respond(reply, &date) {
                        return Some(exit);
                    }
                }
                Expect::Head => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    let (head, len) = match request::parse(self.buf.data()) {
                        Parsed::Partial => return None,
                        Parsed::Reject(status) => {
                            self.reject(status);
                            return Some(Exit::Linger);
                        }
                        Parsed::Complete(head, len) => (head, len),
                    };
                    self.buf.consume(len);
                    self.request_start = None;
                    let reply = self.decide(&head);
                    if head.body_len == 0 {
                        if let Some(exit) = self.respond(reply, &date) {
                            return Some(exit);
                        }
                        continue;
                    }
                    if head.expect_continue && (self.buf.len() as u64) < head.body_len {
                        self.out.extend_from_slice(response::CONTINUE);
                    }
                    self.expect = Expect::Body {
                        remaining: head.body_len,
                        reply,
                    };
                }
            }
        }
    }

    fn decide(&self, head: &Head) -> Pending {
        let connection = if !head.keep_alive || self.server.is_stopping() {
            Connection::Close
        } else if head.http10 {
            Connection::KeepAlive
        } else {
            Connection::Default
        };
        Pending {
            reply: Reply::to(head.route),
            head_only: head.head_only,
            connection,
        }
    }

    fn respond(&mut self, mut p: Pending, date: &[u8; date::LEN]) -> Option<Exit> {
        if self.server.is_stopping() {
            p.connection = Connection::Close;
        }
        response::render(&mut self.out, p.reply, p.head_only, p.connection, date);
        self.batch += 1;
        (p.connection == Connection::Close).then_some(Exit::Linger)
    }

    fn reject(&mut self, status: Status) {
        let date = date::now();
        response::render(
            &mut self.out,
            Reply::error(status),
            false,
            Connection::Close,
            &date,
        );
        self.batch += 1;
    }

    /// One `write_all` for the whole batch, under the write deadline.
    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let want = Instant::now() + WRITE_TIMEOUT;
        if !close_enough(self.write_deadline, want, DEADLINE_SLACK) {
            self.write_timer.as_mut().reset(want);
            self.write_deadline = Some(want);
        }
        tokio::select! {
            biased;
            res = self.stream.write_all(&self.out) => res?,
            () = self.write_timer.as_mut() => return Err(io::ErrorKind::TimedOut.into()),
        }
        self.served += self.batch;
        self.batch = 0;
        self.out.clear();
        Ok(())
    }

    /// Reads more into the buffer, under the read deadline.
    async fn read(&mut self) -> io::Result<usize> {
        tokio::select! {
            biased;
            res = self.buf.read_from(&mut self.stream) => res,
            () = self.read_timer.as_mut() => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    fn set_read_deadline(&mut self, want: Instant, slack: Duration) {
        if !close_enough(self.read_deadline, want, slack) {
            self.read_timer.as_mut().reset(want);
            self.read_deadline = Some(want);
        }
    }

    /// Sends FIN, then reads and discards until the peer closes too, for at
    /// most [`LINGER`].
    async fn lingering_close(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        self.set_read_deadline(Instant::now() + LINGER, Duration::ZERO);
        let mut discarded = 0;
        while discarded < LINGER_MAX_BYTES {
            self.buf.start = 0;
            self.buf.end = 0;
            match self.read().await {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    }
}

/// Whether a deadline already set may stand in for `want`: at most `slack`
/// earlier, never later.
fn close_enough(current: Option<Instant>, want: Instant, slack: Duration) -> bool {
    current.is_some_and(|current| current <= want && want - current <= slack)
}

/// The bytes read but not yet parsed: `buf[start..end]`.
struct ReadBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    fn new() -> ReadBuf {
        ReadBuf {
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
    }

    async fn read_from(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        if self.is_empty() {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < MIN_READ {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}
