//! The todo example's database side: where PostgreSQL is, a small pool of
//! connections that heals itself, and queries bounded in time.
//!
//! * **Connections.** tokio-postgres is built without its `runtime`
//!   feature, so it never opens a socket itself: each connection is a
//!   gopark `UnixStream` or `TcpStream` handed to
//!   [`Config::connect_raw`]. The [`Connection`](tokio_postgres::Connection)
//!   future it returns (the half that reads and writes the socket) is
//!   spawned as a gopark task; the [`Client`] half sends queries to it.
//! * **The pool.** `N` slots, each owned by a manager task that connects,
//!   prepares the statements, publishes the client, waits for the
//!   connection task to end, then withdraws the client and connects again
//!   with a backoff (50 ms doubling to 1 s) until the database answers.
//!   Requests never wait for a connect: they take a published client
//!   (round robin), or get a 503 at once when there is none. One
//!   tokio-postgres client pipelines the queries of many requests on its
//!   connection, so a few slots serve many concurrent requests.
//! * **Time.** Every query is bounded by
//!   [`timeout`](gopark::runtime::time::timeout); past it the request gets
//!   a 503. Dropping the query's future does not stop the query on the
//!   server, so each session also sets `statement_timeout` to the same
//!   bound: PostgreSQL abandons the query itself. (A cancel request
//!   through `Client::cancel_token` would cancel whatever the backend runs
//!   at that moment, which on a pipelined connection may be another
//!   request's query.)
//!
//! `connect_raw` needs tokio's `AsyncRead`/`AsyncWrite`; gopark's streams
//! implement the futures-io traits, and `tokio_util::compat` adapts them
//! (the `.compat()` calls in [`Target::connect`]).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gopark::net::{TcpStream, UnixStream};
use gopark::runtime::{self, time};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Config, NoTls, Statement};
use tokio_util::compat::FuturesAsyncReadCompatExt;

/// The first wait between failed connects to one slot.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait between failed connects: how long, at most, a slot
/// stays down after the database is back.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The table, made by whichever connection comes first. The advisory lock
/// serialises the `CREATE ... IF NOT EXISTS` of connections that start
/// together (two of them racing can both fail the check and collide).
const SCHEMA: &str = "
    BEGIN;
    SELECT pg_advisory_xact_lock(7243);
    CREATE TABLE IF NOT EXISTS todos (
        id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        title TEXT NOT NULL,
        done  BOOLEAN NOT NULL DEFAULT false
    );
    COMMIT;";

/// Any error on the way to a connection: a socket's or PostgreSQL's.
pub type ConnectError = Box<dyn StdError + Send + Sync>;

/// Where one server listens.
#[derive(Clone, Debug)]
pub enum Target {
    /// A Unix socket: `DIR/.s.PGSQL.PORT`, as libpq names it.
    Unix(PathBuf),
    /// `host:port`.
    Tcp(String),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(path) => write!(f, "{}", path.display()),
            Target::Tcp(addr) => f.write_str(addr),
        }
    }
}

impl Target {
    /// The servers a configuration names, in the order libpq tries them:
    /// its hosts, each with its port (or the one port, or 5432). A host
    /// that starts with `/` is a socket directory. No host means Debian's
    /// socket directory, `/var/run/postgresql`.
    pub fn all(config: &Config) -> Vec<Target> {
        let default_host = [Host::Unix(PathBuf::from("/var/run/postgresql"))];
        let hosts = match config.get_hosts() {
            [] => &default_host[..],
            hosts => hosts,
        };
        let ports = config.get_ports();
        hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = match ports {
                    [] => 5432,
                    [one] => *one,
                    many => many.get(i).copied().unwrap_or(5432),
                };
                match host {
                    Host::Unix(dir) => Target::Unix(dir.join(format!(".s.PGSQL.{port}"))),
                    Host::Tcp(name) if name.contains(':') => {
                        Target::Tcp(format!("[{name}]:{port}"))
                    }
                    Host::Tcp(name) => Target::Tcp(format!("{name}:{port}")),
                }
            })
            .collect()
    }

    /// Opens a socket to the server and logs in. The connection's task is
    /// spawned on gopark; its handle ends when the connection does.
    async fn connect(&self, config: &Config) -> Result<(Conn, ConnTask), ConnectError> {
        // `.compat()`: gopark's futures-io streams as tokio's I/O traits.
        match self {
            Target::Unix(path) => login(UnixStream::connect(path).await?.compat(), config).await,
            Target::Tcp(addr) => {
                login(TcpStream::connect(addr.as_str()).await?.compat(), config).await
            }
        }
    }
}

/// The startup handshake on `stream`, then the schema and the prepared
/// statements.
async fn login<S>(stream: S, config: &Config) -> Result<(Conn, ConnTask), ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = config.connect_raw(stream, NoTls).await.map_err(describe)?;
    // The connection task runs until the socket fails or every clone of the
    // client is dropped (the pool's and those of requests in flight). If
    // what follows fails, dropping `client` ends it.
    let task = runtime::spawn(connection);
    client.batch_execute(SCHEMA).await.map_err(describe)?;
    let stmts = Statements::prepare(&client).await.map_err(describe)?;
    Ok((Conn { client, stmts }, task))
}

/// The spawned task that drives one connection's socket.
type ConnTask = runtime::JoinHandle<Result<(), tokio_postgres::Error>>;

/// The statements every request uses, prepared once per connection.
pub struct Statements {
    pub insert: Statement,
    pub list: Statement,
    pub get: Statement,
    pub replace: Statement,
    pub patch: Statement,
    pub delete: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        const ROW: &str = "id, title, done";
        Ok(Statements {
            insert: client
                .prepare(&format!(
                    "INSERT INTO todos (title, done) VALUES ($1, $2) RETURNING {ROW}"
                ))
                .await?,
            list: client
                .prepare(&format!("SELECT {ROW} FROM todos ORDER BY id"))
                .await?,
            get: client
                .prepare(&format!("SELECT {ROW} FROM todos WHERE id = $1"))
                .await?,
            replace: client
                .prepare(&format!(
                    "UPDATE todos SET title = $2, done = $3 WHERE id = $1 RETURNING {ROW}"
                ))
                .await?,
            // Typed: with COALESCE alone the server could not infer that
            // `$2` is text and `$3` a boolean.
            patch: client
                .prepare_typed(
                    &format!(
                        "UPDATE todos SET title = COALESCE($2, title), \
                         done = COALESCE($3, done) WHERE id = $1 RETURNING {ROW}"
                    ),
                    &[Type::INT8, Type::TEXT, Type::BOOL],
                )
                .await?,
            delete: client.prepare("DELETE FROM todos WHERE id = $1").await?,
        })
    }
}

/// One logged-in connection: the client and its statements.
pub struct Conn {
    pub client: Client,
    pub stmts: Statements,
}

/// What a request gets when the database cannot serve it.
#[derive(Debug)]
pub enum DbError {
    /// No connection, a broken one, a server shutting down or starting up,
    /// or no answer in time: worth retrying later (503).
    Unavailable(String),
    /// Anything else (500).
    Failed(String),
}

impl DbError {
    /// Sorts a tokio-postgres error. One without an SQLSTATE is about the
    /// connection (closed, an I/O error); classes 08 (connection
    /// exception), 53 (insufficient resources) and 57 (operator
    /// intervention: shutdown, recovery, a cancelled or timed-out
    /// statement) pass; the rest is the request's or the schema's.
    fn from_pg(e: tokio_postgres::Error) -> DbError {
        match e.code() {
            None => DbError::Unavailable(format!("database connection failed: {}", describe(e))),
            Some(code) if is_transient(code) => {
                DbError::Unavailable(format!("database unavailable: {}", describe(e)))
            }
            Some(_) => DbError::Failed(format!("database error: {}", describe(e))),
        }
    }
}

/// A tokio-postgres error with what the server said: its `Display` alone
/// is often just "db error".
fn describe(e: tokio_postgres::Error) -> ConnectError {
    let text = match (e.as_db_error(), e.source()) {
        (Some(db), _) => format!("{}: {}", db.severity(), db.message()),
        (None, Some(source)) => format!("{e}: {source}"),
        (None, None) => e.to_string(),
    };
    text.into()
}

fn is_transient(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    matches!(class, "08" | "53" | "57")
}

/// The pool: a few slots, each kept connected by its own manager task.
pub struct Db {
    slots: Vec<Mutex<Option<Arc<Conn>>>>,
    /// Round-robin cursor over the slots.
    next: AtomicUsize,
    /// How many slots hold a client.
    up: AtomicUsize,
    query_timeout: Duration,
    /// The slots' manager tasks, aborted by [`Db::close`].
    managers: Mutex<Vec<runtime::JoinHandle<()>>>,
    /// Set by [`Db::close`]: a manager still running stops at its next
    /// turn.
    closed: AtomicBool,
}

impl Db {
    /// Makes a pool of `size` connections to the first of `targets` that
    /// answers, and starts their managers. Returns at once: the slots fill
    /// as the connections come up.
    pub fn start(
        mut config: Config,
        targets: Vec<Target>,
        size: usize,
        query_timeout: Duration,
    ) -> Arc<Db> {
        // The server drops a statement the service has stopped waiting
        // for. Options the user gave are kept.
        let ms = query_timeout.as_millis().max(1);
        let options = match config.get_options() {
            Some(user) => format!("{user} -c statement_timeout={ms}"),
            None => format!("-c statement_timeout={ms}"),
        };
        config.options(&options);
        let db = Arc::new(Db {
            slots: (0..size).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            up: AtomicUsize::new(0),
            query_timeout,
            managers: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let config = Arc::new(config);
        let targets = Arc::new(targets);
        let managers = (0..size)
            .map(|slot| runtime::spawn(manage(db.clone(), slot, config.clone(), targets.clone())))
            .collect();
        *db.managers.lock().unwrap() = managers;
        db
    }

    /// Stops reconnecting and lets the connections go: they close when
    /// the last request holding one finishes. For the end of a shutdown,
    /// while the runtime still runs, so that no manager is left retrying
    /// against a runtime that is going away.
    pub fn close(&self) {
        // Relaxed: a stop request; the slots' locks order the clients.
        self.closed.store(true, Ordering::Relaxed);
        for manager in self.managers.lock().unwrap().drain(..) {
            manager.abort();
        }
        for i in 0..self.slots.len() {
            self.set(i, None);
        }
    }

    /// How many connections are up.
    pub fn up(&self) -> usize {
        // Relaxed: a figure for a health check; the slots' locks order the
        // clients themselves.
        self.up.load(Ordering::Relaxed)
    }

    /// The size of the pool.
    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// A live connection, or `Unavailable` at once when none is up.
    pub fn conn(&self) -> Result<Arc<Conn>, DbError> {
        let n = self.slots.len();
        // Relaxed: only spreads the load; any starting slot is correct.
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let slot = self.slots[(start + i) % n].lock().unwrap();
            if let Some(conn) = slot.as_ref().filter(|c| !c.client.is_closed()) {
                return Ok(conn.clone());
            }
        }
        Err(DbError::Unavailable(
            "database unavailable: no connection (reconnecting)".into(),
        ))
    }

    /// Runs one query, bounded by the query timeout.
    pub async fn run<T>(
        &self,
        query: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        match time::timeout(self.query_timeout, query).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(DbError::from_pg(e)),
            Err(_elapsed) => Err(DbError::Unavailable(format!(
                "database unavailable: no answer within {} ms",
                self.query_timeout.as_millis()
            ))),
        }
    }

    /// Publishes or withdraws slot `i`'s connection; returns how many are
    /// up afterwards.
    fn set(&self, i: usize, conn: Option<Arc<Conn>>) -> usize {
        let mut slot = self.slots[i].lock().unwrap();
        let was_up = slot.is_some();
        let now_up = conn.is_some();
        *slot = conn;
        // Relaxed: a count for reports; changed under the slot's lock, so
        // each slot adds or removes itself once.
        match (was_up, now_up) {
            (false, true) => self.up.fetch_add(1, Ordering::Relaxed) + 1,
            (true, false) => self.up.fetch_sub(1, Ordering::Relaxed) - 1,
            _ => self.up.load(Ordering::Relaxed),
        }
    }
}

/// Keeps slot `i` connected until the pool is closed.
async fn manage(db: Arc<Db>, i: usize, config: Arc<Config>, targets: Arc<Vec<Target>>) {
    let n = db.size();
    let mut backoff = BACKOFF_MIN;
    // Report the first failure of an outage, not every retry.
    let mut reported = false;
    // Relaxed: see `close`.
    while !db.closed.load(Ordering::Relaxed) {
        match connect_any(&targets, &config, db.query_timeout).await {
            Ok((conn, task)) => {
                backoff = BACKOFF_MIN;
                reported = false;
                // Relaxed: see `close`.
                if db.closed.load(Ordering::Relaxed) {
                    return;
                }
                let up = db.set(i, Some(Arc::new(conn)));
                println!("database: connection {i} up ({up} of {n})");
                let why = match task.await {
                    Ok(Ok(())) => "closed by the server".to_string(),
                    Ok(Err(e)) => describe(e).to_string(),
                    Err(e) => format!("connection task failed: {e}"),
                };
                let up = db.set(i, None);
                println!("database: connection {i} lost ({up} of {n}): {why}");
                // Reconnect at once: the next attempt backs off if the
                // database is really gone.
                continue;
            }
            Err(e) => {
                if !reported {
                    eprintln!("database: connection {i}: cannot connect: {e}; retrying");
                    reported = true;
                }
            }
        }
        time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Tries each target in turn, each bounded by `limit`; the last error if
/// none answers.
async fn connect_any(
    targets: &[Target],
    config: &Config,
    limit: Duration,
) -> Result<(Conn, ConnTask), ConnectError> {
    let mut last: ConnectError = "no database host configured".into();
    for target in targets {
        match time::timeout(limit, target.connect(config)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => last = format!("{target}: {e}").into(),
            Err(_) => last = format!("{target}: no answer within {} ms", limit.as_millis()).into(),
        }
    }
    Err(last)
}
