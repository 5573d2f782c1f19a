//! One connection, as one plain sequential loop:
//!
//! 1. answer every complete request in the read buffer, appending the
//!    replies, in order, to one output buffer — at most [`OUT_HIGH_WATER`]
//!    bytes of them at a time;
//! 2. write that buffer with one `write_all` (pipelined requests that
//!    arrived in one read get their replies in one write, unless the
//!    replies pass that mark); go back to 1 while complete requests are
//!    buffered;
//! 3. set the read deadline for what comes next, and read.
//!
//! Which bytes are a head and which a body is decided by a
//! [`Framer`](crate::framing::Framer), which does no I/O (and is fuzzed).
//! A connection holds at most [`BUF_SIZE`] bytes of input and a little
//! over [`OUT_HIGH_WATER`] of output, however much a client pipelines: it
//! does not read while it has replies to write.
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
//!   `--idle-timeout` (moved at most once a second, or an eighth of the
//!   timeout if that is less, so a busy connection does not touch the
//!   timer heap on every request; it may close that much early);
//! * a body must keep arriving: each read gets `--header-timeout`;
//! * the client must take each batch of replies within `--write-timeout`
//!   (the write deadline; moved as seldom as the idle one), so one that
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
use crate::framing::{Event, Framer};
use crate::request::{self, Body, Head};
use crate::response::{self, Connection, Reply, Route, Status};
use crate::Server;

/// Read buffer size: room for a whole maximal head and then some.
const BUF_SIZE: usize = 16 * 1024;
/// A read that would have less room than this first moves the buffered
/// bytes to the front.
const MIN_READ: usize = 4 * 1024;
// After moving a partial head to the front, a full read still fits.
const _: () = assert!(request::MAX_HEAD + MIN_READ <= BUF_SIZE);
/// Once this many bytes of replies are waiting, they are written before
/// more requests are answered.
const OUT_HIGH_WATER: usize = 32 * 1024;
/// Slack for the idle, body and write deadlines: they move at most this
/// often (see [`slack`]).
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
    /// A body made for this request (the debug pages), served as text
    /// instead of `reply`.
    text: Option<String>,
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
            framer: Framer::new(),
            pending: None,
            request_start: Some(Instant::now()),
            read_deadline: None,
            write_deadline: None,
        }
    }

    async fn run(&mut self) -> Exit {
        let config = &self.server.config;
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
                Some(start) if between_requests => (start + config.header_timeout, Duration::ZERO),
                None if between_requests => (now + config.idle_timeout, slack(config.idle_timeout)),
                // A head has begun: it has until its start + header timeout.
                start if at_head => {
                    let start = start.unwrap_or(now);
                    self.request_start = Some(start);
                    (start + config.header_timeout, Duration::ZERO)
                }
                // A body.
                _ => (now + config.header_timeout, slack(config.header_timeout)),
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

    /// Answers the complete requests in the buffer, until the replies
    /// reach [`OUT_HIGH_WATER`]; says what to do after writing them.
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
                        // A client that waits for the interim reply has
                        // sent nothing of the body yet.
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

    /// The reply to a head, and what it says about the connection.
    fn decide(&self, head: &Head) -> Pending {
        let connection = if !head.keep_alive || self.server.is_stopping() {
            Connection::Close
        } else if head.http10 {
            Connection::KeepAlive
        } else {
            Connection::Default
        };
        let text = match (head.route, &self.server.runtime) {
            (Route::Metrics, Some(rt)) => Some(rt.metrics().snapshot().to_string()),
            (Route::Tasks, Some(rt)) => Some(rt.dump().to_string()),
            _ => None,
        };
        Pending {
            reply: Reply::to(head.route),
            text,
            head_only: head.head_only,
            connection,
        }
    }

    fn respond(&mut self, mut p: Pending, date: &[u8; date::LEN]) -> Option<Exit> {
        // A shutdown may have begun while the body was arriving.
        if self.server.is_stopping() {
            p.connection = Connection::Close;
        }
        match &p.text {
            Some(text) => {
                response::render_text(&mut self.out, text, p.head_only, p.connection, date)
            }
            None => response::render(&mut self.out, p.reply, p.head_only, p.connection, date),
        }
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
        let timeout = self.server.config.write_timeout;
        let want = Instant::now() + timeout;
        if !close_enough(self.write_deadline, want, slack(timeout)) {
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

/// How much earlier than asked a deadline of `timeout` may fire, so that
/// it need not be moved on every request: [`DEADLINE_SLACK`], or an eighth
/// of a short timeout.
fn slack(timeout: Duration) -> Duration {
    DEADLINE_SLACK.min(timeout / 8)
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
