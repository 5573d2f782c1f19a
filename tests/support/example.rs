//! Running an example as a child process (killed when the test ends,
//! however it ends), reading what it prints, and talking HTTP to it with
//! plain blocking std sockets.
//!
//! The examples are found next to the test binary: `cargo test` builds
//! every example into `target/<profile>/examples/` before it runs the
//! tests, and the test binary lives in `target/<profile>/deps/`. A filtered
//! run (`cargo test --test examples_http`) does not build examples; run
//! `cargo build --examples` first.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any single wait in these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The path of a built example.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example binary {} not found: `cargo test` builds the examples before running the \
         tests, but a filtered run (`--test ...`) does not; run `cargo build --examples` first",
        path.display()
    );
    path
}

/// A running example. Dropping it kills the process (SIGKILL) if it has not
/// exited, reaps it, and waits for the threads that read its output to
/// close their ends of its pipes: once a `Proc` is gone, so are its
/// descriptors, and the next test's census starts from a settled count.
pub struct Proc {
    name: String,
    pid: libc::pid_t,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    exit: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    /// Everything it printed, for failure messages.
    log: Arc<Mutex<String>>,
    /// Disconnected once both output readers have closed their pipes.
    pipes_closed: Receiver<()>,
}

impl Proc {
    /// Starts example `name` with `args`.
    pub fn start(name: &str, args: &[&str]) -> Proc {
        Proc::spawn(name, Command::new(example_path(name)).args(args))
    }

    /// Starts a prepared command (for callers that set limits or the
    /// environment).
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (closed, pipes_closed) = mpsc::channel();
        let stdout = lines(
            child.stdout.take().unwrap(),
            "out",
            log.clone(),
            closed.clone(),
        );
        let stderr = lines(child.stderr.take().unwrap(), "err", log.clone(), closed);
        let pid = child.id() as libc::pid_t;
        let (exit_tx, exit) = mpsc::channel();
        thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        Proc {
            name: name.to_string(),
            pid,
            stdout,
            stderr,
            exit,
            status: None,
            log,
            pipes_closed,
        }
    }

    /// Starts a server example and returns it with the address it printed
    /// in its `listening on ADDR` line.
    pub fn server(name: &str, args: &[&str]) -> (Proc, SocketAddr) {
        let proc = Proc::start(name, args);
        let line = proc.wait_stdout(|l| l.starts_with("listening on "));
        let addr = line
            .trim_start_matches("listening on ")
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
        (proc, addr)
    }

    /// Starts the http example on an ephemeral loopback port with two
    /// workers and `extra` arguments.
    pub fn http(extra: &[&str]) -> (Proc, SocketAddr) {
        let mut args = vec!["--addr", "127.0.0.1:0", "--workers", "2"];
        args.extend_from_slice(extra);
        Proc::server("http", &args)
    }

    /// The process id.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Waits for a stdout line matching `pred`; earlier lines are skipped.
    pub fn wait_stdout(&self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line(&self.stdout, "stdout", pred)
    }

    /// Waits for a stderr line matching `pred`; earlier lines are skipped.
    pub fn wait_stderr(&self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line(&self.stderr, "stderr", pred)
    }

    fn wait_line(&self, rx: &Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "{}: no such line on {what} in {WAIT:?}\n{}",
                        self.name,
                        self.log()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{}: {what} closed without such a line\n{}",
                        self.name,
                        self.log()
                    )
                }
            }
        }
    }

    /// The stdout lines not yet consumed, up to the end of the output.
    /// Call after the process has exited.
    pub fn rest_of_stdout(&self) -> Vec<String> {
        let mut rest = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(WAIT) {
            rest.push(line);
        }
        rest
    }

    /// The stderr lines not yet consumed, up to the end of the output.
    /// Call after the process has exited.
    pub fn rest_of_stderr(&self) -> Vec<String> {
        let mut rest = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(WAIT) {
            rest.push(line);
        }
        rest
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        if self.status.is_none() {
            // SAFETY: kill has no memory-safety preconditions; the pid is
            // our child's, not yet reaped (its waiter thread has not
            // reported an exit).
            unsafe { libc::kill(self.pid, signal) };
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        match self.exit.recv_timeout(timeout) {
            Ok(status) => {
                self.status = Some(status);
                status
            }
            Err(_) => panic!(
                "{} did not exit within {timeout:?}\n{}",
                self.name,
                self.log()
            ),
        }
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Ok(status) = self.exit.try_recv() {
                self.status = Some(status);
            } else {
                self.signal(libc::SIGKILL);
                self.status = self.exit.recv_timeout(WAIT).ok();
            }
        }
        // The process is gone, so its pipes are at end of file: the
        // readers close them and drop their senders (no one sends).
        if self.status.is_some() {
            if let Err(RecvTimeoutError::Timeout) = self.pipes_closed.recv_timeout(WAIT) {
                eprintln!(
                    "{}: its output pipes were still open {WAIT:?} after it exited",
                    self.name
                );
            }
        }
        if thread::panicking() {
            eprintln!("--- output of {} ---\n{}", self.name, self.log());
        }
    }
}

/// Forwards the lines of a pipe to a channel (and the log) on a thread of
/// its own, which drops `closed` once it has closed the pipe.
fn lines(
    pipe: impl Read + Send + 'static,
    tag: &'static str,
    log: Arc<Mutex<String>>,
    closed: mpsc::Sender<()>,
) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        forward(pipe, tag, &log, &tx);
        // `forward` took the pipe and closed it.
        drop(closed);
    });
    rx
}

/// Reads `pipe` to its end, sending each line to `tx`; closes the pipe.
fn forward(mut pipe: impl Read, tag: &str, log: &Mutex<String>, tx: &mpsc::Sender<String>) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match pipe.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&pending[..i]).into_owned();
            pending.drain(..=i);
            log.lock().unwrap().push_str(&format!("[{tag}] {line}\n"));
            if tx.send(line).is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let line = String::from_utf8_lossy(&pending).into_owned();
        log.lock().unwrap().push_str(&format!("[{tag}] {line}\n"));
        let _ = tx.send(line);
    }
}

/// Runs an example to completion and returns its exit status, its stdout,
/// and the finished process (whose `log` then holds all its output).
pub fn run(name: &str, args: &[&str], timeout: Duration) -> (ExitStatus, Vec<String>, Proc) {
    let mut proc = Proc::start(name, args);
    let status = proc.wait_exit(timeout);
    let out = proc.rest_of_stdout();
    proc.rest_of_stderr();
    (status, out, proc)
}

/// A blocking connection whose reads and writes give up after [`WAIT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// An HTTP response as the tests see it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }
}

/// A response head: its length in bytes, the status, the headers.
type Head = (usize, u16, Vec<(String, String)>);

/// An HTTP client over one connection that keeps the bytes it has read
/// past the current response (pipelining).
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: connect(addr),
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Sends `bytes` so that the server reads them in (at least) two reads
    /// split at `at`: the first part, then, once the server has provably
    /// read all of it (see [`wait_peer_read`](super::net::wait_peer_read)),
    /// the rest.
    pub fn send_split(&mut self, bytes: &[u8], at: usize) {
        self.send(&bytes[..at]);
        super::net::wait_peer_read(&self.stream, WAIT);
        self.send(&bytes[at..]);
    }

    /// Sends `GET path` with a Host header.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response()
    }

    /// Reads the next response; panics on EOF or a malformed response.
    pub fn response(&mut self) -> Response {
        self.try_response()
            .unwrap_or_else(|e| panic!("no response: {e}"))
    }

    /// Reads the next response.
    pub fn try_response(&mut self) -> io::Result<Response> {
        self.read_response(true)
    }

    /// Reads the response to a `HEAD` request: a `Content-Length` but no
    /// body.
    pub fn head_response(&mut self) -> Response {
        self.read_response(false)
            .unwrap_or_else(|e| panic!("no response: {e}"))
    }

    /// Reads a response head, then (`with_body`) the body its status and
    /// `Content-Length` announce.
    fn read_response(&mut self, with_body: bool) -> io::Result<Response> {
        let (len, status, headers) = loop {
            match self.head()? {
                Some(head) => break head,
                None => self.fill()?,
            }
        };
        let body_len: usize = match status {
            _ if !with_body => 0,
            100..=199 | 204 | 304 => 0,
            _ => headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().parse().expect("numeric Content-Length"))
                .expect("a Content-Length header"),
        };
        while self.buf.len() < len + body_len {
            self.fill()?;
        }
        let body = self.buf[len..len + body_len].to_vec();
        self.buf.drain(..len + body_len);
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// The response head at the start of the buffer, or `None` while it is
    /// incomplete.
    fn head(&self) -> io::Result<Option<Head>> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(len)) => {
                let headers = resp
                    .headers
                    .iter()
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value).into_owned();
                        (h.name.to_string(), value)
                    })
                    .collect();
                Ok(Some((len, resp.code.unwrap(), headers)))
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "malformed response: {e}: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            )),
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = read(&mut self.stream, &mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "end of stream; buffered {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Asserts that the server closes the connection: nothing more is
    /// buffered or arrives, and the next read is the end of the stream.
    pub fn expect_eof(&mut self) {
        assert!(
            self.buf.is_empty(),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let mut chunk = [0u8; 1024];
        match read(&mut self.stream, &mut chunk) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected end of stream, got {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(e) => panic!("expected end of stream, got error {e}"),
        }
    }
}

/// `read`, retrying when a signal interrupts it (std's `read` does not).
pub fn read(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            res => return res,
        }
    }
}
