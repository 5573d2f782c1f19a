//! One connection, as one plain sequential loop:
//!
//! 1. answer every complete request in the read buffer, appending the
//!    replies, in order, to one output buffer;
//! 2. write that buffer with one `write_all` (pipelined requests that
//!    arrived in one read get their replies in one write);
//! 3. set the read deadline for what comes next, and read.
//!
//! # Deadlines
//!
//! Every timeout is a socket deadline, so a waiting connection costs no
//! extra task or timer of its own:
//!
//! * a new connection must send its first request head within
//!   `--header-timeout` of being accepted, and a request whose head has
//!   begun must finish it within `--header-timeout` of its first byte — a
//!   slowloris client trickling header bytes is cut off however steadily
//!   it trickles (it gets a 408);
//! * between requests, a keep-alive connection waits at most
//!   `--idle-timeout` (moved at most once a second, so a busy connection
//!   does not touch the timer heap on every request; it may close up to a
//!   second early);
//! * a body must keep arriving: each read gets `--header-timeout`;
//! * the client must take each batch of replies within [`WRITE_TIMEOUT`]
//!   (the write deadline; moved at most once a second too), so one that
//!   pipelines requests but never reads the replies cannot hold the
//!   connection forever.
//!
//! # Graceful shutdown
//!
//! The server sets its stopping flag, then *kicks* every connection that is
//! idle (waiting between requests) by moving its read deadline to now,
//! which fails the parked read at once. A connection that is busy notices
//! the flag when it next goes idle, after writing its reply (which says
//! `Connection: close`). The idle/busy state and the flag are read under
//! one small lock per connection, so a connection can never go idle
//! without either seeing the flag or being kicked. If a request's first
//! bytes arrive just as the connection is kicked, it still gets its reply:
//! the connection notices the kick and sets a real deadline again.

use std::io;
use std::net::Shutdown;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gopark::net::TcpStream;

use crate::date;
use crate::request::{self, Head, Parsed};
use crate::response::{self, Connection, Reply, Status};
use crate::Server;

/// Read buffer size: room for a whole maximal head and then some.
const BUF_SIZE: usize = 16 * 1024;
/// A read that would have less room than this first moves the buffered
/// bytes to the front.
const MIN_READ: usize = 4 * 1024;
// After moving a partial head to the front, a full read still fits.
const _: () = assert!(request::MAX_HEAD + MIN_READ <= BUF_SIZE);
/// How long the client may take to accept a batch of replies.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack for the idle, body and write deadlines: they move at most this
/// often.
const DEADLINE_SLACK: Duration = Duration::from_secs(1);
/// After the last reply, how long to wait for the peer to close (reading
/// and discarding what it still sends) before closing: closing with unread
/// bytes would send a reset that can destroy the reply in flight.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_MAX_BYTES: usize = 256 * 1024;

/// What the server sees of a connection: the stream (to kick it at
/// shutdown) and whether it is idle.
pub struct Conn {
    stream: TcpStream,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading or answering a request.
    Busy,
    /// Waiting for the next request.
    Idle,
    /// Was idle when shutdown began: its read deadline was moved to now.
    Kicked,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            state: Mutex::new(State::Busy),
        }
    }

    /// Marks the connection idle, unless the server is stopping: then it
    /// returns `false` and the connection closes.
    fn enter_idle(&self, server: &Server) -> bool {
        let mut state = self.state.lock().unwrap();
        if server.is_stopping() {
            return false;
        }
        *state = State::Idle;
        true
    }

    /// Marks the connection busy; returns `true` if it was kicked while it
    /// was idle.
    fn leave_idle(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        let kicked = *state == State::Kicked;
        *state = State::Busy;
        kicked
    }

    /// Shutdown: fails the read of an idle connection now. Called after the
    /// server's stopping flag is set.
    pub fn kick(&self) {
        let mut state = self.state.lock().unwrap();
        if *state == State::Idle {
            *state = State::Kicked;
            let _ = self.stream.set_read_deadline(Some(Instant::now()));
        }
    }
}

/// Serves one connection until it closes; returns how many replies it
/// wrote.
pub async fn serve(server: &Server, stream: TcpStream) -> u64 {
    let conn = Arc::new(Conn::new(stream));
    let id = server.register(conn.clone());
    let mut handler = Handler::new(server, &conn);
    if handler.run().await == Exit::Linger {
        handler.lingering_close().await;
    }
    server.unregister(id);
    handler.served
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Just close: nothing was left unanswered.
    Close,
    /// Close after the peer has read our last reply (see [`LINGER`]).
    Linger,
}

/// What the next bytes of the stream are.
enum Expect {
    /// A request head.
    Head,
    /// `remaining` bytes of body, to discard; then `reply`.
    Body { remaining: u64, reply: Pending },
}

/// A reply decided from a head, waiting for the body to be read.
struct Pending {
    reply: &'static Reply,
    head_only: bool,
    connection: Connection,
}

struct Handler<'a> {
    server: &'a Server,
    stream: &'a TcpStream,
    conn: &'a Conn,
    buf: ReadBuf,
    out: Vec<u8>,
    /// Replies in `out`.
    batch: u64,
    /// Replies written.
    served: u64,
    expect: Expect,
    /// When the request being read began (for a new connection: when it
    /// was accepted); `None` between requests.
    request_start: Option<Instant>,
    /// The read deadline last set; `None` if it must be set again.
    read_deadline: Option<Instant>,
    /// The write deadline last set.
    write_deadline: Option<Instant>,
}

impl<'a> Handler<'a> {
    fn new(server: &'a Server, conn: &'a Conn) -> Handler<'a> {
        Handler {
            server,
            stream: &conn.stream,
            conn,
            buf: ReadBuf::new(),
            out: Vec::with_capacity(1024),
            batch: 0,
            served: 0,
            expect: Expect::Head,
            request_start: Some(Instant::now()),
            read_deadline: None,
            write_deadline: None,
        }
    }

    async fn run(&mut self) -> Exit {
        let config = &self.server.config;
        loop {
            // 1. Answer what is buffered; 2. one write for all of it.
            let closing = self.process();
            if self.flush().await.is_err() {
                return Exit::Close;
            }
            if let Some(exit) = closing {
                return exit;
            }

            // 3. Which deadline applies to the read.
            let now = Instant::now();
            let between_requests = self.buf.is_empty() && matches!(self.expect, Expect::Head);
            let (deadline, slack) = match (&self.expect, self.request_start) {
                // A new connection waiting for its first request.
                (Expect::Head, Some(start)) if between_requests => {
                    (start + config.header_timeout, Duration::ZERO)
                }
                (Expect::Head, _) if between_requests => {
                    (now + config.idle_timeout, DEADLINE_SLACK)
                }
                // A head has begun: it has until its start + header timeout.
                (Expect::Head, start) => {
                    let start = start.unwrap_or(now);
                    self.request_start = Some(start);
                    (start + config.header_timeout, Duration::ZERO)
                }
                (Expect::Body { .. }, _) => (now + config.header_timeout, DEADLINE_SLACK),
            };
            if self.set_read_deadline(deadline, slack).is_err() {
                return Exit::Close;
            }
            // After setting the deadline, so that a kick's deadline wins.
            if between_requests && !self.conn.enter_idle(self.server) {
                return Exit::Close; // shutting down
            }

            // 4. Read.
            let res = self.buf.read_from(self.stream).await;
            if between_requests && self.conn.leave_idle() {
                // Kicked by shutdown: the deadline is now "now". If a request
                // began anyway, it is answered, under a real deadline.
                self.read_deadline = None;
            }
            match res {
                Ok(0) => return Exit::Close,
                Ok(_) => {}
                // Idle timeout, no first request in time, or a shutdown kick.
                Err(e) if e.kind() == io::ErrorKind::TimedOut && between_requests => {
                    return Exit::Close
                }
                // A request began but did not arrive in time.
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    self.reject(Status::RequestTimeout);
                    let _ = self.flush().await;
                    return Exit::Linger;
                }
                Err(_) => return Exit::Close,
            }
        }
    }

    /// Answers every complete request in the buffer. Returns `Some` when the
    /// connection must close once the replies are written.
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

    /// The reply to a head, and what it says about the connection.
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
        // A shutdown may have begun while the body was arriving.
        if self.server.is_stopping() {
            p.connection = Connection::Close;
        }
        response::render(&mut self.out, p.reply, p.head_only, p.connection, date);
        self.batch += 1;
        (p.connection == Connection::Close).then_some(Exit::Linger)
    }

    /// Appends an error reply that closes the connection.
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

    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let want = Instant::now() + WRITE_TIMEOUT;
        if !close_enough(self.write_deadline, want, DEADLINE_SLACK) {
            self.stream.set_write_deadline(Some(want))?;
            self.write_deadline = Some(want);
        }
        self.stream.write_all(&self.out).await?;
        self.served += self.batch;
        self.batch = 0;
        self.out.clear();
        Ok(())
    }

    /// Sets the read deadline to `want`, unless the one already set is
    /// close enough.
    fn set_read_deadline(&mut self, want: Instant, slack: Duration) -> io::Result<()> {
        if !close_enough(self.read_deadline, want, slack) {
            self.stream.set_read_deadline(Some(want))?;
            self.read_deadline = Some(want);
        }
        Ok(())
    }

    /// Sends FIN, then reads and discards until the peer closes too, for at
    /// most [`LINGER`].
    async fn lingering_close(&mut self) {
        if self.stream.shutdown(Shutdown::Write).is_err()
            || self
                .stream
                .set_read_deadline(Some(Instant::now() + LINGER))
                .is_err()
        {
            return;
        }
        let mut discarded = 0;
        while discarded < LINGER_MAX_BYTES {
            match self.stream.read(&mut self.buf.buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    }
}

/// Whether a deadline already set, `current`, may stand in for `want`: it
/// is at most `slack` earlier (never later).
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

    /// Reads more bytes after the buffered ones. A partial head is at most
    /// `MAX_HEAD` bytes (longer ones are refused), and a body is consumed
    /// as it comes, so there is always room.
    async fn read_from(&mut self, stream: &TcpStream) -> io::Result<usize> {
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
