//! The todo example against a real PostgreSQL server: `initdb` and
//! `postgres` on a temporary directory, listening on a Unix socket only,
//! started by the test (as `nobody` when the test runs as root, since
//! PostgreSQL refuses to run as root) and removed when it ends, however it
//! ends.
//!
//! * CRUD end to end, with the bodies compared; bad JSON and bad ids get a
//!   400; 1,000 requests from 50 concurrent clients all succeed and every
//!   row they wrote is there.
//! * The whole server killed (SIGKILL to the postmaster and every backend)
//!   while clients write: requests get a 503 at once while it is down, the
//!   service reconnects by itself when it is back, and every write that got
//!   a 201 is in the table.
//! * tokio-postgres on gopark directly: a `timeout` around a query drops
//!   the future but the server keeps running the query until it is
//!   cancelled; `statement_timeout` stops it on the server.
//!
//! Without PostgreSQL installed the tests say so loudly and pass, unless
//! `CI` is set: there a missing PostgreSQL is a failure (`.ci/run`
//! installs Debian's `postgresql` package).
//!
//! `cargo test` builds the examples before it runs the tests; a filtered
//! run (`--test examples_todo`) does not: run `cargo build --example todo`
//! first.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::{chown, DirBuilderExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gopark::net::UnixStream;
use gopark::runtime::{self, time::timeout};
use serde_json::{json, Value};
use support::example::{Client, Proc, Response};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client as PgClient, NoTls};
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(30);
/// The uid and gid PostgreSQL runs as when the test runs as root
/// (`nobody` and `nogroup` on Debian).
const NOBODY: u32 = 65534;
/// The pool size the example is started with.
const POOL: usize = 4;

// ---------------------------------------------------------------------
// A PostgreSQL server of the test's own.

/// The directory of `initdb` and `postgres`: Debian's
/// `/usr/lib/postgresql/<newest version>/bin`, or wherever `initdb` on the
/// `PATH` really lives.
fn pg_bindir() -> Option<PathBuf> {
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = newest {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("initdb"))
        .find(|p| p.exists())
        .and_then(|p| fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

/// A PostgreSQL server on a temporary directory, listening on a socket in
/// it. Dropping it kills the server and removes the directory.
struct Postgres {
    bindir: PathBuf,
    /// The temporary directory: the socket's directory, holding `data/`.
    dir: PathBuf,
    /// The postmaster, while it runs.
    server: Option<Child>,
    /// The server's log lines, as they come.
    lines: Option<Receiver<String>>,
    /// Everything it logged, for failure messages.
    log: Arc<Mutex<String>>,
}

impl Postgres {
    /// `initdb` and `postgres`; `None` (after saying so) when PostgreSQL is
    /// not installed and `CI` is not set.
    fn start(test: &str) -> Option<Postgres> {
        let Some(bindir) = pg_bindir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or on \
                 the PATH), and CI is set: .ci/run installs it with apt-get"
            );
            eprintln!(
                "\n!!! {test}: SKIPPED: PostgreSQL is not installed (no initdb in \
                 /usr/lib/postgresql/*/bin or on the PATH). Install it with \
                 `apt-get install postgresql` to run this test. !!!\n"
            );
            return None;
        };
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gopark-todo-{}-{}",
            std::process::id(),
            // Relaxed: only uniqueness matters.
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut pg = Postgres {
            bindir,
            dir,
            server: None,
            lines: None,
            log: Arc::new(Mutex::new(String::new())),
        };
        if as_root() {
            chown(&pg.dir, Some(NOBODY), Some(NOBODY)).expect("chown the temporary directory");
        }
        pg.initdb();
        pg.launch();
        Some(pg)
    }

    /// The directory `--pg-host` names: the socket lives in it.
    fn socket_dir(&self) -> &Path {
        &self.dir
    }

    fn socket(&self) -> PathBuf {
        self.dir.join(".s.PGSQL.5432")
    }

    /// A command for one of the server's programs, as the user it runs as.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(program));
        if as_root() {
            // std drops the supplementary groups too when root changes uid.
            cmd.uid(NOBODY).gid(NOBODY);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn initdb(&self) {
        let data = self.dir.join("data");
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", "todo", "-A", "trust", "--no-locale", "-E", "UTF8"])
            .arg("--no-sync")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("start initdb");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(WAIT) {
            Ok(out) => out.expect("run initdb"),
            Err(_) => panic!("initdb did not finish within {WAIT:?}"),
        };
        assert!(
            out.status.success(),
            "initdb failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the postmaster and waits until it accepts connections.
    fn launch(&mut self) {
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-c", "listen_addresses="])
            .args(["-c", "fsync=off"])
            .args(["-c", "shared_buffers=16MB"])
            .args(["-c", "max_connections=40"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent. The postmaster dies with the test process, even one
        // killed by a watchdog before any Drop could run (its backends
        // follow it); the flag outlives exec, and it is set after std has
        // switched the user, which would have cleared it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut server = cmd.spawn().expect("start postgres");
        let stderr = server.stderr.take().unwrap();
        self.server = Some(server);
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().unwrap().push_str(&format!("{line}\n"));
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.lines = Some(rx);
        self.wait_log("database system is ready to accept connections");
    }

    /// Waits for a log line that contains `text`.
    fn wait_log(&self, text: &str) {
        let rx = self.lines.as_ref().expect("the server is running");
        let deadline = Instant::now() + WAIT;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(text) => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("postgres: no {text:?} within {WAIT:?}\n{}", self.log())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("postgres exited before {text:?}\n{}", self.log())
                }
            }
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Kills the postmaster and all its backends with SIGKILL, as a crash
    /// would, and waits until every one of them has exited.
    fn crash(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let pid = server.id() as libc::pid_t;
        let backends = children_of(pid);
        for &p in backends.iter().chain([&pid]) {
            // SAFETY: kill has no memory-safety preconditions. The
            // backends' pids are live: their parent, our unreaped child,
            // has not been told to exit yet.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        server.wait().expect("reap postgres");
        for p in backends {
            wait_gone(p);
        }
        self.lines = None;
    }

    /// Starts the server again on the same data (crash recovery first).
    fn restart(&mut self) {
        assert!(self.server.is_none(), "the server is still running");
        self.launch();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.crash();
        if thread::panicking() {
            eprintln!("--- postgres log ---\n{}", self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The processes whose parent is `parent`, from `/proc`.
fn children_of(parent: libc::pid_t) -> Vec<libc::pid_t> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parens.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let ppid = after.split_whitespace().nth(1).and_then(|s| s.parse().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

/// Waits until process `pid`, not our child, has exited: its pidfd turns
/// readable. A zombie counts as exited.
fn wait_gone(pid: libc::pid_t) {
    // SAFETY: pidfd_open takes a pid and flags, no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if fd < 0 {
        let e = io::Error::last_os_error();
        assert_eq!(
            e.raw_os_error(),
            Some(libc::ESRCH),
            "pidfd_open({pid}): {e}"
        );
        return; // already gone
    }
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = Instant::now() + WAIT;
    let ready = loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as libc::c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break n > 0;
        }
    };
    // SAFETY: `fd` is ours, opened above, closed once.
    unsafe { libc::close(fd) };
    assert!(ready, "backend {pid} still alive {WAIT:?} after SIGKILL");
}

// ---------------------------------------------------------------------
// The example, and HTTP to it.

/// Starts the todo example against `pg`; waits until its whole pool is up.
fn start_todo(pg: &Postgres, extra: &[&str]) -> (Proc, std::net::SocketAddr) {
    let host = pg.socket_dir().to_str().unwrap().to_string();
    let pool = POOL.to_string();
    let mut args = vec![
        "--addr",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--pg-host",
        &host,
        "--pg-user",
        "todo",
        "--pg-dbname",
        "postgres",
        "--pool",
        &pool,
    ];
    args.extend_from_slice(extra);
    let (proc, addr) = Proc::server("todo", &args);
    let all_up = format!("({POOL} of {POOL})");
    proc.wait_stdout(|l| l.contains(" up ") && l.ends_with(&all_up));
    (proc, addr)
}

/// Sends one request, with a JSON body if `body` is given.
fn call(client: &mut Client, method: &str, path: &str, body: Option<&Value>) -> Response {
    let request = match body {
        Some(body) => {
            let body = body.to_string();
            format!(
                "{method} {path} HTTP/1.1\r\nHost: todo\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
        None => format!("{method} {path} HTTP/1.1\r\nHost: todo\r\n\r\n"),
    };
    client.send(request.as_bytes());
    client.response()
}

/// Sends a raw body with `content_type`.
fn call_raw(client: &mut Client, path: &str, content_type: Option<&str>, body: &str) -> Response {
    let ct = content_type
        .map(|ct| format!("Content-Type: {ct}\r\n"))
        .unwrap_or_default();
    client.send(
        format!(
            "POST {path} HTTP/1.1\r\nHost: todo\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    client.response()
}

fn json_body(resp: &Response) -> Value {
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", resp.body_str()))
}

/// Asserts an error answer: `status` and `{"error": "...needle..."}`.
fn assert_error(resp: &Response, status: u16, needle: &str) {
    assert_eq!(resp.status, status, "{}", resp.body_str());
    let body = json_body(resp);
    let msg = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(msg.contains(needle), "{msg:?} does not mention {needle:?}");
}

/// Every row, by id.
fn list(client: &mut Client) -> BTreeMap<i64, Value> {
    let resp = call(client, "GET", "/todos", None);
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    let rows = json_body(&resp);
    let rows = rows.as_array().expect("a JSON array");
    let map: BTreeMap<i64, Value> = rows
        .iter()
        .map(|r| (r["id"].as_i64().expect("an id"), r.clone()))
        .collect();
    assert_eq!(map.len(), rows.len(), "duplicate ids in {rows:?}");
    // Listed by id.
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "not by id: {ids:?}");
    map
}

// ---------------------------------------------------------------------
// The tests.

/// One server for everything but the crash: starting PostgreSQL costs
/// more than all these checks together.
#[test]
fn crud_bad_input_concurrency_and_query_timeouts() {
    let Some(pg) = Postgres::start("crud_bad_input_concurrency_and_query_timeouts") else {
        return;
    };
    let (_todo, addr) = start_todo(&pg, &[]);
    let mut c = Client::connect(addr);
    let remaining = crud(&mut c);
    bad_input(&mut c);
    thousand_concurrent_requests(addr, remaining);
    timed_out_query_runs_on_until_cancelled(&pg.socket());
}

/// Create, read, update and delete, with the bodies compared; returns the
/// row left in the table.
fn crud(c: &mut Client) -> Value {
    // Create, then read it back every way.
    assert!(list(c).is_empty());
    let resp = call(
        c,
        "POST",
        "/todos",
        Some(&json!({"title": "write the guide", "done": false})),
    );
    assert_eq!(resp.status, 201, "{}", resp.body_str());
    let created = json_body(&resp);
    let id = created["id"].as_i64().expect("an id");
    assert_eq!(
        created,
        json!({"id": id, "title": "write the guide", "done": false})
    );
    assert_eq!(resp.header("location"), Some(&*format!("/todos/{id}")));
    let resp = call(c, "GET", &format!("/todos/{id}"), None);
    assert_eq!(resp.status, 200);
    assert_eq!(json_body(&resp), created);
    assert_eq!(list(c).into_values().collect::<Vec<_>>(), vec![created]);

    // `done` may be left out.
    let resp = call(c, "POST", "/todos", Some(&json!({"title": "second"})));
    assert_eq!(resp.status, 201);
    let second = json_body(&resp);
    let id2 = second["id"].as_i64().unwrap();
    assert_eq!(second, json!({"id": id2, "title": "second", "done": false}));
    assert!(id2 > id);

    // PATCH changes the fields given, PUT replaces the row.
    let resp = call(
        c,
        "PATCH",
        &format!("/todos/{id}"),
        Some(&json!({"done": true})),
    );
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    assert_eq!(
        json_body(&resp),
        json!({"id": id, "title": "write the guide", "done": true})
    );
    let resp = call(
        c,
        "PATCH",
        &format!("/todos/{id}"),
        Some(&json!({"title": "write the porting guide"})),
    );
    assert_eq!(
        json_body(&resp),
        json!({"id": id, "title": "write the porting guide", "done": true})
    );
    let resp = call(
        c,
        "PUT",
        &format!("/todos/{id}"),
        Some(&json!({"title": "ship it", "done": false})),
    );
    assert_eq!(resp.status, 200);
    let replaced = json!({"id": id, "title": "ship it", "done": false});
    assert_eq!(json_body(&resp), replaced);
    let resp = call(c, "GET", &format!("/todos/{id}"), None);
    assert_eq!(json_body(&resp), replaced);

    // Delete; then it is gone, for every verb.
    let resp = call(c, "DELETE", &format!("/todos/{id}"), None);
    assert_eq!(resp.status, 204);
    assert!(resp.body.is_empty());
    let path = format!("/todos/{id}");
    let missing = format!("no todo {id}");
    assert_error(&call(c, "GET", &path, None), 404, &missing);
    assert_error(&call(c, "DELETE", &path, None), 404, &missing);
    let body = json!({"title": "x"});
    assert_error(&call(c, "PUT", &path, Some(&body)), 404, &missing);
    assert_error(&call(c, "PATCH", &path, Some(&body)), 404, &missing);
    assert_eq!(
        list(c).into_values().collect::<Vec<_>>(),
        vec![second.clone()]
    );
    second
}

/// Bad input: a 400 with a message, never a row.
fn bad_input(c: &mut Client) {
    let json = Some("application/json");
    assert_error(&call_raw(c, "/todos", json, "{\"title\":"), 400, "EOF");
    assert_error(&call_raw(c, "/todos", json, "not json"), 400, "expected");
    assert_error(
        &call_raw(c, "/todos", json, "{\"title\":5}"),
        400,
        "invalid type",
    );
    assert_error(
        &call_raw(c, "/todos", json, "{\"title\":\"a\",\"done\":\"yes\"}"),
        400,
        "invalid type",
    );
    assert_error(
        &call_raw(c, "/todos", json, "{}"),
        400,
        "missing field `title`",
    );
    assert_error(
        &call_raw(c, "/todos", json, "{\"title\":\"a\",\"colour\":1}"),
        400,
        "unknown field `colour`",
    );
    assert_error(
        &call_raw(c, "/todos", json, "{\"title\":\"  \"}"),
        400,
        "empty",
    );
    assert_error(
        &call_raw(c, "/todos", json, "{\"title\":\"a\\u0000b\"}"),
        400,
        "NUL",
    );
    let long = json!({ "title": "x".repeat(1001) }).to_string();
    assert_error(&call_raw(c, "/todos", json, &long), 400, "longer");
    assert_error(
        &call_raw(c, "/todos", None, "{\"title\":\"a\"}"),
        415,
        "Content-Type",
    );
    assert_error(&call(c, "GET", "/todos/abc", None), 400, "integer");
    assert_error(&call(c, "GET", "/nowhere", None), 404, "no such route");
    assert_eq!(list(c).len(), 1, "a bad request wrote a row");
}

/// 50 clients at once, 20 requests each: a POST, then a GET of what it
/// created, ten times. Every row is there afterwards, beside `before`.
fn thousand_concurrent_requests(addr: std::net::SocketAddr, before: Value) {
    const CLIENTS: usize = 50;
    const ROUNDS: usize = 10;
    let start = Arc::new(Barrier::new(CLIENTS));
    let began = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let start = start.clone();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                start.wait();
                let mut made = Vec::new();
                for i in 0..ROUNDS {
                    let title = format!("client {t} item {i}");
                    let resp = call(&mut c, "POST", "/todos", Some(&json!({ "title": title })));
                    assert_eq!(resp.status, 201, "{}", resp.body_str());
                    let row = json_body(&resp);
                    let id = row["id"].as_i64().unwrap();
                    assert_eq!(row, json!({"id": id, "title": title, "done": false}));
                    let resp = call(&mut c, "GET", &format!("/todos/{id}"), None);
                    assert_eq!(resp.status, 200, "{}", resp.body_str());
                    assert_eq!(json_body(&resp), row);
                    made.push(row);
                }
                made
            })
        })
        .collect();
    let mut made = Vec::new();
    for w in workers {
        made.extend(w.join().expect("a client failed"));
    }
    let took = began.elapsed();
    assert!(took < 2 * WAIT, "1,000 requests took {took:?}");
    let rows = list(&mut Client::connect(addr));
    assert_eq!(rows.len(), 1 + CLIENTS * ROUNDS);
    assert_eq!(rows[&before["id"].as_i64().unwrap()], before);
    for row in &made {
        assert_eq!(&rows[&row["id"].as_i64().unwrap()], row);
    }
}

#[test]
fn a_database_crash_gets_503s_then_heals_without_losing_a_write() {
    let Some(mut pg) =
        Postgres::start("a_database_crash_gets_503s_then_heals_without_losing_a_write")
    else {
        return;
    };
    let (mut todo, addr) = start_todo(&pg, &["--query-timeout-ms", "2000"]);

    // Writers keep posting through the crash. Each acknowledged row is
    // reported; a 503 makes the writer pause as Retry-After asks (briefly)
    // and go on; anything else fails the test.
    const WRITERS: usize = 4;
    let stop = Arc::new(AtomicBool::new(false));
    let (acked_tx, acked) = mpsc::channel::<(i64, String)>();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let stop = stop.clone();
            let acked_tx = acked_tx.clone();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut unavailable = 0u32;
                let began = Instant::now();
                for i in 0..100_000 {
                    // Relaxed: a flag read in a loop; the join orders the rest.
                    if stop.load(Ordering::Relaxed) || began.elapsed() > 4 * WAIT {
                        break;
                    }
                    let title = format!("writer {w} row {i}");
                    let resp = call(&mut c, "POST", "/todos", Some(&json!({ "title": title })));
                    match resp.status {
                        201 => {
                            let row = json_body(&resp);
                            let id = row["id"].as_i64().unwrap();
                            assert_eq!(row, json!({"id": id, "title": title, "done": false}));
                            let _ = acked_tx.send((id, title));
                        }
                        503 => {
                            assert_eq!(resp.header("retry-after"), Some("1"));
                            unavailable += 1;
                            thread::sleep(Duration::from_millis(10));
                        }
                        other => panic!("writer {w}: {other}: {}", resp.body_str()),
                    }
                }
                unavailable
            })
        })
        .collect();
    drop(acked_tx);
    let mut acknowledged = BTreeMap::new();
    let mut take_acks = |n: usize, when: &str| {
        for _ in 0..n {
            match acked.recv_timeout(WAIT) {
                Ok((id, title)) => assert!(acknowledged.insert(id, title).is_none()),
                Err(e) => panic!("no acknowledged write {when} within {WAIT:?}: {e}"),
            }
        }
    };
    take_acks(20, "before the crash");

    pg.crash();

    // Down: every request gets a 503 with a message, promptly (the socket
    // closed with the server; the 2 s query bound is the worst case).
    let mut c = Client::connect(addr);
    for (method, path, body) in [
        ("GET", "/todos", None),
        ("POST", "/todos", Some(json!({"title": "while down"}))),
        ("GET", "/todos/1", None),
        ("DELETE", "/todos/1", None),
    ] {
        let began = Instant::now();
        let resp = call(&mut c, method, path, body.as_ref());
        let took = began.elapsed();
        assert_error(&resp, 503, "database");
        assert!(
            took < Duration::from_secs(5),
            "{method} {path}: 503 after {took:?}"
        );
    }
    todo.wait_stdout(|l| l.contains(&format!("lost (0 of {POOL})")));
    let resp = call(&mut c, "GET", "/healthz", None);
    assert_eq!(resp.status, 503);
    assert_eq!(json_body(&resp)["connections_up"], 0);

    // Back: the service reconnects by itself.
    pg.restart();
    todo.wait_stdout(|l| l.starts_with("database: connection ") && l.contains(" up ("));
    let resp = call(&mut c, "GET", "/todos", None);
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    assert_eq!(call(&mut c, "GET", "/healthz", None).status, 200);
    take_acks(20, "after the restart");

    // Relaxed: the joins below order everything the writers did.
    stop.store(true, Ordering::Relaxed);
    let mut unavailable = 0;
    for w in writers {
        unavailable += w.join().expect("a writer failed");
    }
    for (id, title) in acked.try_iter() {
        assert!(acknowledged.insert(id, title).is_none());
    }
    assert!(unavailable > 0, "no writer saw the database down");

    // No acknowledged write is lost, and nothing appears that nobody wrote.
    let rows = list(&mut c);
    for (id, title) in &acknowledged {
        let row = rows
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged row {id} ({title}) lost"));
        assert_eq!(row, &json!({"id": id, "title": title, "done": false}));
    }
    for row in rows.values() {
        let title = row["title"].as_str().unwrap();
        assert!(
            title.starts_with("writer ") || title == "while down",
            "a row nobody wrote: {row}"
        );
    }

    // Down again, and the service is asked to stop while its pool is
    // retrying: it exits, and cleanly.
    drop(c);
    pg.crash();
    todo.wait_stdout(|l| l.contains(&format!("lost (0 of {POOL})")));
    todo.signal(libc::SIGTERM);
    let status = todo.wait_exit(WAIT);
    assert!(status.success(), "{status}\n{}", todo.log());
}

/// Opens a tokio-postgres connection over a gopark Unix socket; its
/// connection task runs on gopark.
async fn pg_connect(socket: &Path) -> PgClient {
    let stream = UnixStream::connect(socket).await.expect("connect");
    let mut config = tokio_postgres::Config::new();
    config.user("todo").dbname("postgres");
    let (client, connection) = config
        .connect_raw(stream.compat(), NoTls)
        .await
        .expect("log in");
    runtime::spawn(connection);
    client
}

/// How many sessions are running `sql` right now.
async fn running(observer: &PgClient, sql: &str) -> i64 {
    observer
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'",
            &[&sql],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

/// Waits (bounded, re-checking every 20 ms) until `running` is `want`.
async fn wait_running(observer: &PgClient, sql: &str, want: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = running(observer, sql).await;
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql:?} running in {now} sessions, not {want}, after {WAIT:?}"
        );
        runtime::time::sleep(Duration::from_millis(20)).await;
    }
}

/// tokio-postgres on gopark directly: a `timeout` drops the query's
/// future, not the query; a cancel request or `statement_timeout` ends it.
fn timed_out_query_runs_on_until_cancelled(socket: &Path) {
    let socket = socket.to_path_buf();
    support::rt::run_test(2, "pg_timeout", 3 * WAIT, || async move {
        let client = pg_connect(&socket).await;
        let observer = pg_connect(&socket).await;
        const SLOW: &str = "SELECT pg_sleep(60)";

        // The timeout drops the future; the server goes on.
        let began = Instant::now();
        let res = timeout(Duration::from_millis(200), client.query(SLOW, &[])).await;
        assert!(res.is_err(), "pg_sleep(60) finished: {res:?}");
        assert!(began.elapsed() < Duration::from_secs(10));
        wait_running(&observer, SLOW, 1).await;

        // A cancel request, on a connection of its own, stops it; the
        // client's connection stays usable.
        client
            .cancel_token()
            .cancel_query_raw(UnixStream::connect(&socket).await.unwrap().compat(), NoTls)
            .await
            .expect("cancel");
        wait_running(&observer, SLOW, 0).await;
        let one: i32 = timeout(WAIT, client.query_one("SELECT 1", &[]))
            .await
            .expect("SELECT 1 in time")
            .expect("SELECT 1")
            .get(0);
        assert_eq!(one, 1);

        // statement_timeout: the server gives up by itself.
        client
            .batch_execute("SET statement_timeout = 100")
            .await
            .unwrap();
        let began = Instant::now();
        let err = timeout(WAIT, client.query(SLOW, &[]))
            .await
            .expect("statement_timeout did not fire")
            .expect_err("pg_sleep(60) finished");
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
        assert!(began.elapsed() < Duration::from_secs(20));
    });
}
