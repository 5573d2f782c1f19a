//! The command line: `http [--addr ADDR] [--workers N] [--header-timeout SECS]
//! [--idle-timeout SECS] [--write-timeout SECS] [--send-buffer BYTES]
//! [--metrics]`.

use std::net::ToSocketAddrs;
use std::time::Duration;

pub const USAGE: &str = "\
usage: http [OPTIONS]

An HTTP/1.1 server on gopark: GET / answers 'Hello, World!', GET /json a
small JSON document, anything else 404.

  --addr ADDR             address to listen on (default 127.0.0.1:8080;
                          port 0 picks a free port)
  --workers N             worker threads (default: one per core, or
                          GOPARK_WORKERS)
  --header-timeout SECS   time a client has to send a request's headers
                          (default 10)
  --idle-timeout SECS     time a keep-alive connection may wait for its next
                          request (default 60)
  --write-timeout SECS    time a client has to take a batch of replies
                          (default 10)
  --send-buffer BYTES     socket send buffer of each connection (default
                          131072, which Linux doubles; 0: the kernel's
                          autotuning, up to megabytes per connection)
  --metrics               also serve GET /debug/metrics (the runtime's
                          counters) and GET /debug/tasks (a dump of every
                          live task)
  -h, --help              print this help

SIGINT (Ctrl-C) or SIGTERM shuts down gracefully; a second one exits at once.";

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: String,
    pub workers: Option<usize>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    /// `SO_SNDBUF` for the connections; `None` leaves the kernel's.
    pub send_buffer: Option<usize>,
    /// Serve `/debug/metrics` and `/debug/tasks`.
    pub metrics: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: "127.0.0.1:8080".to_string(),
            workers: None,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            send_buffer: Some(128 * 1024),
            metrics: false,
        }
    }
}

/// What the command line asks for.
pub enum Command {
    Serve(Config),
    Help,
}

/// Parses the arguments after the program name. The error is a message for
/// the user.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut config = Config::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--opt value` and `--opt=value`.
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
            "--addr" => {
                let addr = value()?;
                addr.to_socket_addrs()
                    .map_err(|e| format!("invalid value '{addr}' for --addr: {e}"))?;
                config.addr = addr;
            }
            "--workers" => {
                let v = value()?;
                match v.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => config.workers = Some(n),
                    _ => {
                        return Err(format!(
                            "invalid value '{v}' for --workers: expected an integer from 1 to 1024"
                        ))
                    }
                }
            }
            "--header-timeout" => config.header_timeout = seconds(&name, &value()?)?,
            "--idle-timeout" => config.idle_timeout = seconds(&name, &value()?)?,
            "--write-timeout" => config.write_timeout = seconds(&name, &value()?)?,
            "--metrics" if inline.is_none() => config.metrics = true,
            "--send-buffer" => {
                let v = value()?;
                match v.parse::<usize>() {
                    Ok(0) => config.send_buffer = None,
                    Ok(n) if (4096..=64 << 20).contains(&n) => config.send_buffer = Some(n),
                    _ => {
                        return Err(format!(
                            "invalid value '{v}' for --send-buffer: expected 0 or a number of \
                             bytes from 4096 to 67108864"
                        ))
                    }
                }
            }
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    Ok(Command::Serve(config))
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn seconds(name: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "invalid value '{v}' for {name}: expected a number of seconds, more than 0 and at most 86400"
        )),
    }
}
