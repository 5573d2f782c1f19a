//! A todo service: axum over HTTP, PostgreSQL through tokio-postgres, all
//! on gopark's one netpoller.
//!
//! ```text
//! cargo run --release --example todo -- --pg-host /var/run/postgresql --pg-user todo
//! curl -H 'content-type: application/json' -d '{"title":"write the guide"}' \
//!      http://127.0.0.1:3000/todos
//! curl http://127.0.0.1:3000/todos
//! curl -X PATCH -H 'content-type: application/json' -d '{"done":true}' \
//!      http://127.0.0.1:3000/todos/1
//! curl -X DELETE http://127.0.0.1:3000/todos/1
//! ```
//!
//! Run with `--help` for the options. The database is named the way libpq
//! names it: `--database-url` (or `DATABASE_URL`) takes
//! `postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME` or
//! `host=... user=... dbname=...`, where a host that starts with `/` is a
//! socket directory; `--pg-host`, `--pg-port`, `--pg-user` and
//! `--pg-dbname` override its parts. The table (`todos`) is created at the
//! first connection.
//!
//! The routes are in `api.rs`, the connections in `db.rs`: a pool of
//! `--pool` tokio-postgres clients over gopark sockets, each kept up by a
//! manager task that reconnects when the database goes away and comes
//! back. While no connection is up, requests get a 503 at once; a query
//! that takes longer than `--query-timeout-ms` gets a 503 when that time
//! is up (and the server drops it: the same bound is its
//! `statement_timeout`).
//!
//! On stdout it prints `listening on http://ADDR` once bound, then a line
//! whenever a database connection comes up or goes down (`database:
//! connection I up (K of N)`, `database: connection I lost (K of N): ...`).
//! SIGINT or SIGTERM shuts down gracefully, as the axum example does; a
//! second signal exits at once.

mod api;
mod db;

#[path = "../support/nofile.rs"]
mod nofile;
#[path = "../support/shutdown.rs"]
mod shutdown;
#[path = "../support/signals.rs"]
mod signals;

use std::io;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use gopark::hyper;
use gopark::net::TcpListener;
use gopark::runtime::Builder;

use db::{Db, Target};
use shutdown::Shutdown;

/// How long a shutdown waits for connections to finish.
const GRACE: Duration = Duration::from_secs(30);
/// How long a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: todo [OPTIONS]

A todo list in PostgreSQL behind an HTTP API: POST /todos, GET /todos,
GET|PUT|PATCH|DELETE /todos/{id}, GET /healthz.

  --addr ADDR             HTTP address to listen on (default 127.0.0.1:3000;
                          port 0 picks a free port)
  --database-url URL      postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME or
                          'host=... user=... dbname=...' (default:
                          $DATABASE_URL); a host starting with / is a socket
                          directory
  --pg-host HOST          a socket directory (/var/run/postgresql, the
                          default) or HOST[:PORT]
  --pg-port PORT          the server's port (default 5432; with a socket
                          directory it names the socket)
  --pg-user USER          the role to log in as (default: $USER)
  --pg-dbname NAME        the database (default: the role's name)
  --pool N                database connections (default 4)
  --query-timeout-ms MS   bound on each query, and its statement_timeout
                          (default 5000)
  --workers N             worker threads (default: one per core, or
                          GOPARK_WORKERS)
  -h, --help              print this help

A password comes from the URL or from $PGPASSWORD. SIGINT (Ctrl-C) or
SIGTERM shuts down gracefully; a second one exits at once.";

/// The parsed command line.
struct Args {
    addr: String,
    database_url: Option<String>,
    pg_host: Option<String>,
    pg_port: Option<u16>,
    pg_user: Option<String>,
    pg_dbname: Option<String>,
    pool: usize,
    query_timeout: Duration,
    workers: Option<usize>,
}

/// Parses the arguments after the program name; `Ok(None)` asks for help.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        addr: "127.0.0.1:3000".to_string(),
        database_url: None,
        pg_host: None,
        pg_port: None,
        pg_user: None,
        pg_dbname: None,
        pool: 4,
        query_timeout: Duration::from_secs(5),
        workers: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--addr" => parsed.addr = value()?,
            "--database-url" => parsed.database_url = Some(value()?),
            "--pg-host" => parsed.pg_host = Some(value()?),
            "--pg-port" => parsed.pg_port = Some(number(&name, &value()?)?),
            "--pg-user" => parsed.pg_user = Some(value()?),
            "--pg-dbname" => parsed.pg_dbname = Some(value()?),
            "--pool" => parsed.pool = number(&name, &value()?)?,
            "--query-timeout-ms" => {
                parsed.query_timeout = Duration::from_millis(number(&name, &value()?)?)
            }
            "--workers" => parsed.workers = Some(number(&name, &value()?)?),
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    Ok(Some(parsed))
}

/// A positive number.
fn number<T: FromStr + PartialOrd + Default>(name: &str, v: &str) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("{name}: expected a positive number, got '{v}'")),
    }
}

/// The PostgreSQL configuration and the servers to try, from the URL and
/// the flags that override its parts.
fn pg_config(args: &Args) -> Result<(tokio_postgres::Config, Vec<Target>), String> {
    let url = args
        .database_url
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok());
    let from_url = match &url {
        Some(url) => tokio_postgres::Config::from_str(url).map_err(|e| {
            let why = std::error::Error::source(&e).map(|s| format!(": {s}"));
            format!("--database-url: {e}{}", why.unwrap_or_default())
        })?,
        None => tokio_postgres::Config::new(),
    };
    let mut config = from_url.clone();
    if args.pg_host.is_some() || args.pg_port.is_some() {
        // The flags name the server: start again from the URL's login.
        config = tokio_postgres::Config::new();
        if let Some(user) = from_url.get_user() {
            config.user(user);
        }
        if let Some(password) = from_url.get_password() {
            config.password(password);
        }
        if let Some(dbname) = from_url.get_dbname() {
            config.dbname(dbname);
        }
        if let Some(options) = from_url.get_options() {
            config.options(options);
        }
        if let Some(host) = &args.pg_host {
            match split_host_port(host)? {
                (host, Some(port)) => config.host(host).port(port),
                (host, None) => config.host(host),
            };
        } else {
            for host in from_url.get_hosts() {
                match host {
                    tokio_postgres::config::Host::Tcp(name) => config.host(name),
                    tokio_postgres::config::Host::Unix(path) => config.host_path(path),
                };
            }
        }
        if let Some(port) = args.pg_port {
            config.port(port);
        }
    }
    if let Some(user) = &args.pg_user {
        config.user(user);
    }
    if config.get_user().is_none() {
        let user = std::env::var("USER").unwrap_or_else(|_| "postgres".to_string());
        config.user(&user);
    }
    if let Some(dbname) = &args.pg_dbname {
        config.dbname(dbname);
    }
    if config.get_password().is_none() {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
    }
    config.application_name("gopark-todo");
    let targets = Target::all(&config);
    Ok((config, targets))
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT`, or a socket directory.
fn split_host_port(host: &str) -> Result<(&str, Option<u16>), String> {
    if host.starts_with('/') {
        return Ok((host, None));
    }
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once("]:") {
            Some((v6, port)) => (v6, Some(port)),
            None => (rest.trim_end_matches(']'), None),
        },
        None => match host.split_once(':') {
            // Two colons or more: an IPv6 address without a port.
            Some((_, rest)) if rest.contains(':') => (host, None),
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("--pg-host: bad port in '{host}'"))
        })
        .transpose()?;
    Ok((name, port))
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("todo: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (pg, targets) = match pg_config(&args) {
        Ok(pg) => pg,
        Err(msg) => {
            eprintln!("todo: {msg}");
            return ExitCode::from(2);
        }
    };
    nofile::raise_limit();
    let mut builder = Builder::new();
    builder.thread_name("todo");
    if let Some(n) = args.workers {
        builder.worker_threads(n);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("todo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(&args, pg, targets)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("todo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the API until a signal, then drains.
async fn serve(args: &Args, pg: tokio_postgres::Config, targets: Vec<Target>) -> io::Result<()> {
    // Before the server says it is listening.
    let shutdown = Shutdown::listen()?;
    let addr = &args.addr;
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    println!("listening on http://{}", listener.local_addr()?);
    // Connected after the listener is up: the service answers (503) while
    // the database is still coming, or not there at all.
    let names: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    println!("database: {} ({} connections)", names.join(", "), args.pool);
    let db = Db::start(pg, targets, args.pool, args.query_timeout);
    let app = api::app(db.clone());

    let server = hyper::serve(listener, app).configure(|b| {
        b.http1().header_read_timeout(HEADER_TIMEOUT);
    });
    let result = shutdown.serve("todo", server, GRACE).await;
    // The pool's managers retry until told to stop: stop them before the
    // runtime goes.
    db.close();
    result
}
