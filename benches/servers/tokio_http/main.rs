//! Bench-only: the tokio twin of `examples/http`, for `scripts/compare.sh`.
//!
//! ```text
//! cargo run --release --example tokio_http -- [--addr ADDR] [--workers N]
//!     [--header-timeout SECS] [--idle-timeout SECS] [--write-timeout SECS]
//!     [--send-buffer BYTES]
//! ```
//!
//! The gopark server's work, on tokio. Everything that does no I/O is the
//! gopark server's own code, included as it is from `examples/http/`: the
//! command line (`args.rs`), the request head parser (`request.rs`), the
//! framing state machine that decides where each request and body ends
//! (`framing.rs`, with `chunked.rs` for chunked bodies), the router and
//! reply renderer (`response.rs`) and the `Date` header cached per thread
//! per second (`date.rs`). Only the connection loop is written again for
//! tokio, step for step after `examples/http/conn.rs`:
//!
//! 1. answer every complete request in the read buffer, appending the
//!    replies to one output buffer, at most [`OUT_HIGH_WATER`] bytes of
//!    them at a time; 2. write it with one `write_all` (pipelined requests
//!    that arrived in one read get one write); 3. set the read deadline for
//!    what comes next, and read.
//!
//! gopark's socket deadlines become one tokio `Sleep` per direction per
//! connection, moved (`reset`) exactly when gopark moves its deadline (by
//! the same rule, with the same slack), and raced against the read or the
//! write with a biased `select!`, so a read that is ready never touches the
//! timer. `--send-buffer` sets `SO_SNDBUF` on the listener, as gopark does.
//! The one difference: shutdown *kicks* an idle connection with
//! `shutdown(SHUT_RD)` (its read sees end of stream) instead of moving its
//! read deadline to now. Like gopark, accepted sockets get `TCP_NODELAY`.

#[path = "../../../examples/http/args.rs"]
mod args;
#[path = "../../../examples/http/chunked.rs"]
mod chunked;
#[path = "../common.rs"]
mod common;
#[path = "../../../examples/http/date.rs"]
mod date;
#[path = "../../../examples/http/framing.rs"]
mod framing;
#[path = "../../../examples/support/nofile.rs"]
mod nofile;
#[path = "../../../examples/http/request.rs"]
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
use framing::{Event, Framer};
use request::{Body, Head};
use response::{Connection, Reply, Status};

/// How long a shutdown waits for connections to finish.
const GRACE: Duration = Duration::from_secs(30);
/// Read buffer size: room for a whole maximal head and then some.
const BUF_SIZE: usize = 16 * 1024;
/// A read that would have less room than this first moves the buffered
/// bytes to the front.
const MIN_READ: usize = 4 * 1024;
const _: () = assert!(request::MAX_HEAD + MIN_READ <= BUF_SIZE);
/// Once this many bytes of replies are waiting, they are written before
/// more requests are answered.
const OUT_HIGH_WATER: usize = 32 * 1024;
/// Slack for the idle, body and write deadlines: they move at most this
/// often (see [`slack`]).
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
    nofile::raise_limit();
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
    let listener = common::bind(&config.addr, config.send_buffer)
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

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Just close: nothing was left unanswered.
    Close,
    /// Close after the peer has read our last reply (see [`LINGER`]).
    Linger,
}

/// What [`Handler::process`] leaves to do once the replies are written.
enum Next {
    /// Read more.
    Read,
    /// Answer more of the requests already buffered.
    Process,
    /// Close the connection.
    Close(Exit),
}

/// A reply decided from a head, waiting for the body to be read.
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
    /// Replies in `out`.
    batch: u64,
    /// Replies written.
    served: u64,
    framer: Framer,
    /// The reply to the request whose body is being read.
    pending: Option<Pending>,
    /// When the request being read began (for a new connection: when it
    /// was accepted); `None` between requests.
    request_start: Option<Instant>,
    /// The read deadline last set; `None` if it must be set again.
    read_deadline: Option<Instant>,
    /// The write deadline last set.
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
            framer: Framer::new(),
            pending: None,
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
            // 1. Answer what is buffered; 2. one write for all of it.
            let next = self.process();
            if self.flush().await.is_err() {
                return Exit::Close;
            }
            match next {
                Next::Close(exit) => return exit,
                Next::Process => continue,
                Next::Read => {}
            }

            // 3. Which deadline applies to the read.
            let now = Instant::now();
            let at_head = self.framer.at_head();
            let between_requests = at_head && self.buf.is_empty();
            let (deadline, slack) = match self.request_start {
                // A new connection waiting for its first request.
                Some(start) if between_requests => (start + header_timeout, Duration::ZERO),
                None if between_requests => (now + idle_timeout, slack(idle_timeout)),
                // A head has begun: it has until its start + header timeout.
                start if at_head => {
                    let start = start.unwrap_or(now);
                    self.request_start = Some(start);
                    (start + header_timeout, Duration::ZERO)
                }
                // A body.
                _ => (now + header_timeout, slack(header_timeout)),
            };
            self.set_read_deadline(deadline, slack);
            if between_requests && !self.conn.enter_idle(self.server) {
                return Exit::Close; // shutting down
            }

            // 4. Read.
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

    /// Answers the complete requests in the buffer, until the replies
    /// reach [`OUT_HIGH_WATER`]; says what to do after writing them (as in
    /// gopark's `conn.rs`).
    fn process(&mut self) -> Next {
        let date = date::now();
        loop {
            if self.out.len() >= OUT_HIGH_WATER {
                return Next::Process;
            }
            let (event, used) = self.framer.next(self.buf.data());
            self.buf.consume(used);
            let reply = match event {
                Event::Partial => return Next::Read,
                Event::Reject(status) => {
                    self.reject(status);
                    return Next::Close(Exit::Linger);
                }
                Event::Head(head) => {
                    self.request_start = None;
                    let reply = self.decide(&head);
                    if head.body != Body::None {
                        if head.expect_continue && self.buf.is_empty() {
                            self.out.extend_from_slice(response::CONTINUE);
                        }
                        self.pending = Some(reply);
                        continue;
                    }
                    reply
                }
                Event::BodyEnd => self.pending.take().expect("a body follows a head"),
            };
            if let Some(exit) = self.respond(reply, &date) {
                return Next::Close(exit);
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
        let timeout = self.server.config.write_timeout;
        let want = Instant::now() + timeout;
        if !close_enough(self.write_deadline, want, slack(timeout)) {
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

/// How much earlier than asked a deadline of `timeout` may fire, so that
/// it need not be moved on every request: [`DEADLINE_SLACK`], or an eighth
/// of a short timeout (as in gopark's `conn.rs`).
fn slack(timeout: Duration) -> Duration {
    DEADLINE_SLACK.min(timeout / 8)
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
