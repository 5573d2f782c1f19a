//! The command line: `load http|echo|light [OPTIONS]`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub const USAGE: &str = "\
usage: load http [--addr ADDR] [-c N] [-d DURATION] [--pipeline K] [--path PATH] [--workers N]
       load echo [--addr ADDR] [-c N] [-s BYTES] [-d DURATION] [--workers N]
       load light [--addr ADDR] [-c N] [-n COUNT] [--gap-us G]

A load generator on gopark. Each connection sends a request (http: GET PATH
with keep-alive, K at a time when pipelined; echo: a message of BYTES bytes)
and waits for the answer before sending the next.

  --addr ADDR           server address (default 127.0.0.1:8080 for http,
                        127.0.0.1:7000 for echo)
  -c, --connections N   concurrent connections (default 100)
  -d, --duration D      how long to send, e.g. 10s, 500ms, 2m (default 10s)
  -s, --size BYTES      echo: message size (default 64)
  --pipeline K          http: requests written together per batch (default 1)
  --path PATH           http: request target (default /)
  --workers N           worker threads (default: one per core, or GOPARK_WORKERS)
  -h, --help            print this help

light: the latency of a request that reaches an idle echo server. No
runtime: C blocking connections (default 4) take turns; before each 64-byte
echo the client sleeps a pseudo-random 0..G microseconds (default 3000, the
same sequence every run), then times the write and the read-back. After
COUNT echoes (default 2000) it prints one line:
  light n=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..

Ctrl-C stops early and prints the summary; a second Ctrl-C exits at once.";

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Http,
    Echo,
    /// Sporadic echoes to an idle server, on plain blocking sockets.
    Light,
}

/// The run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// The address as given, for the report.
    pub target: String,
    pub addr: SocketAddr,
    pub connections: usize,
    pub duration: Duration,
    pub size: usize,
    pub pipeline: usize,
    pub path: String,
    pub workers: Option<usize>,
    /// light: echoes to time.
    pub count: usize,
    /// light: the longest pause before an echo, in microseconds.
    pub gap_us: u64,
}

pub enum Command {
    Run(Config),
    Help,
}

/// Parses the arguments after the program name. The error is a message for
/// the user.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let mode = match args.next().as_deref() {
        Some("http") => Mode::Http,
        Some("echo") => Mode::Echo,
        Some("light") => Mode::Light,
        Some("-h" | "--help") => return Ok(Command::Help),
        Some(other) => {
            return Err(format!(
                "unknown mode '{other}': expected 'http', 'echo' or 'light'"
            ))
        }
        None => return Err("missing mode: 'http', 'echo' or 'light'".to_string()),
    };
    let mut target = match mode {
        Mode::Http => "127.0.0.1:8080",
        Mode::Echo | Mode::Light => "127.0.0.1:7000",
    }
    .to_string();
    let mut connections = if mode == Mode::Light { 4 } else { 100 };
    let mut count_ = None;
    let mut gap_us = None;
    let mut duration = Duration::from_secs(10);
    let mut size = None;
    let mut pipeline = None;
    let mut path = None;
    let mut workers = None;

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
            "-h" | "--help" => return Ok(Command::Help),
            "--addr" => target = value()?,
            "-c" | "--connections" => connections = count(&name, &value()?, 100_000)?,
            "-d" | "--duration" => duration = parse_duration(&name, &value()?)?,
            "-s" | "--size" => size = Some(count(&name, &value()?, 64 << 20)?),
            "--pipeline" => pipeline = Some(count(&name, &value()?, 1024)?),
            "--path" => {
                let p = value()?;
                if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err(format!(
                        "invalid value '{p}' for --path: expected a path starting with '/'"
                    ));
                }
                path = Some(p);
            }
            "--workers" => workers = Some(count(&name, &value()?, 1024)?),
            "-n" | "--count" => count_ = Some(count(&name, &value()?, 100_000_000)?),
            "--gap-us" => gap_us = Some(count(&name, &value()?, 60_000_000)? as u64),
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    match mode {
        Mode::Http if size.is_some() => return Err("-s/--size is for echo mode".to_string()),
        Mode::Echo if pipeline.is_some() => return Err("--pipeline is for http mode".to_string()),
        Mode::Echo if path.is_some() => return Err("--path is for http mode".to_string()),
        Mode::Light if size.is_some() || pipeline.is_some() || path.is_some() => {
            return Err("light mode sends 64-byte echoes: no -s, --pipeline or --path".to_string())
        }
        Mode::Http | Mode::Echo if count_.is_some() || gap_us.is_some() => {
            return Err("-n and --gap-us are for light mode".to_string())
        }
        _ => {}
    }
    let addr = target
        .to_socket_addrs()
        .map_err(|e| format!("invalid value '{target}' for --addr: {e}"))?
        .next()
        .ok_or_else(|| format!("'{target}' resolves to no address"))?;
    Ok(Command::Run(Config {
        mode,
        target,
        addr,
        connections,
        duration,
        size: size.unwrap_or(64),
        pipeline: pipeline.unwrap_or(1),
        path: path.unwrap_or_else(|| "/".to_string()),
        workers,
        count: count_.unwrap_or(2000),
        gap_us: gap_us.unwrap_or(3000),
    }))
}

/// A positive integer no larger than `max`.
fn count(name: &str, v: &str, max: usize) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid value '{v}' for {name}: expected an integer from 1 to {max}"
        )),
    }
}

/// `10s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
fn parse_duration(name: &str, v: &str) -> Result<Duration, String> {
    let (number, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    match number.parse::<f64>() {
        Ok(n) if scale.is_finite() && n > 0.0 && n * scale <= 365.0 * 86_400.0 => {
            Ok(Duration::from_secs_f64(n * scale))
        }
        _ => Err(format!(
            "invalid value '{v}' for {name}: expected a duration such as 10s, 500ms or 2m"
        )),
    }
}
