//! hyper over TLS on gopark: HTTP/1.1 and HTTP/2, chosen by ALPN, with
//! rustls (futures-rustls on gopark's streams; no tokio).
//!
//! ```text
//! cargo run --release --features tls --example https -- [OPTIONS]
//! curl --cacert /tmp/gopark-https-ca.pem https://localhost:3443/
//! curl --cacert /tmp/gopark-https-ca.pem --http2 https://127.0.0.1:3443/json
//! h2load -n 1000 -c 10 https://127.0.0.1:3443/
//!
//! --addr ADDR        address to listen on (default 127.0.0.1:3443; port 0
//!                    picks a free port)
//! --cert PATH        the certificate chain, PEM (with --key)
//! --key PATH         the private key, PEM (with --cert)
//! --write-ca PATH    without --cert: where to write the CA certificate
//!                    that curl is to trust (default: the temporary
//!                    directory's gopark-https-ca.pem)
//! --workers N        worker threads (default: one per core, or GOPARK_WORKERS)
//! -h, --help         print the help
//! ```
//!
//! The routes are the hyper example's (`examples/hyper/service.rs`): `GET /`
//! answers `Hello, World!`, `GET /json` a small JSON document, `POST /echo`
//! streams the body back.
//!
//! Without `--cert`/`--key` it makes a certificate at start with `rcgen`: a
//! CA, and a certificate it signs for `localhost`, `127.0.0.1` and `::1`.
//! It writes the CA certificate out, so that a client can trust it
//! (`curl --cacert PATH`), and prints `CA certificate: PATH` on stdout.
//!
//! `gopark::hyper::tls::TlsListener` runs each handshake on a task of its
//! own, with a 10 s bound: a client that sends garbage instead of a
//! ClientHello has its connection closed, and the others are served
//! meanwhile. `gopark::hyper::serve` does the rest, as in the hyper
//! example: it prints `listening on https://ADDR` once bound, shuts down
//! gracefully on SIGINT or SIGTERM (at most 30 s; a second signal exits at
//! once, with status 130), and prints `served N requests` on exit. Bad
//! arguments or unreadable PEM files exit with status 2.

#[path = "hyper/service.rs"]
mod service;

#[path = "support/nofile.rs"]
mod nofile;
#[path = "support/shutdown.rs"]
mod shutdown;
#[path = "support/signals.rs"]
mod signals;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gopark::hyper::serve;
use gopark::hyper::tls::{self, rustls::ServerConfig, TlsListener};
use gopark::net::TcpListener;
use gopark::runtime::Builder;
use hyper::service::service_fn;
use shutdown::Shutdown;

/// How long a shutdown waits for connections to finish.
const GRACE: Duration = Duration::from_secs(30);
/// How long a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "\
usage: https [OPTIONS]

hyper over TLS on gopark: HTTP/1.1 and HTTP/2 chosen by ALPN. GET /
answers 'Hello, World!', GET /json a small JSON document, POST /echo the body.

  --addr ADDR       address to listen on (default 127.0.0.1:3443; port 0
                    picks a free port)
  --cert PATH       the certificate chain, PEM (with --key)
  --key PATH        the private key, PEM (with --cert)
  --write-ca PATH   without --cert: where to write the CA certificate of the
                    certificate made at start (default: the temporary
                    directory's gopark-https-ca.pem)
  --workers N       worker threads (default: one per core, or GOPARK_WORKERS)
  -h, --help        print this help

SIGINT (Ctrl-C) or SIGTERM shuts down gracefully; a second one exits at once.";

struct Config {
    addr: String,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    write_ca: Option<PathBuf>,
    workers: Option<usize>,
}

/// Parses the arguments after the program name; `Ok(None)` asks for help.
fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Config>, String> {
    let mut config = Config {
        addr: "127.0.0.1:3443".to_string(),
        cert: None,
        key: None,
        write_ca: None,
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
            "--addr" => config.addr = value()?,
            "--cert" => config.cert = Some(value()?.into()),
            "--key" => config.key = Some(value()?.into()),
            "--write-ca" => config.write_ca = Some(value()?.into()),
            "--workers" => {
                let v = value()?;
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => config.workers = Some(n),
                    _ => return Err(format!("--workers: expected a positive number, got '{v}'")),
                }
            }
            _ => return Err(format!("unknown argument '{arg}'")),
        }
    }
    match (&config.cert, &config.key, &config.write_ca) {
        (Some(_), None, _) | (None, Some(_), _) => Err("--cert and --key go together".to_string()),
        (Some(_), Some(_), Some(_)) => {
            Err("--write-ca is for a certificate made at start, not with --cert".to_string())
        }
        _ => Ok(Some(config)),
    }
}

/// The TLS configuration: from the PEM files, or made at start.
fn tls_config(config: &Config) -> Result<Arc<ServerConfig>, String> {
    if let (Some(cert), Some(key)) = (&config.cert, &config.key) {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        return tls::server_config(&read(cert)?, &read(key)?).map_err(|e| e.to_string());
    }
    let (ca_pem, cert_pem, key_pem) = make_certificate().map_err(|e| e.to_string())?;
    let path = config
        .write_ca
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("gopark-https-ca.pem"));
    std::fs::write(&path, ca_pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("CA certificate: {}", path.display());
    tls::server_config(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(|e| e.to_string())
}

/// A CA, and a server certificate it signs for the loopback names: the CA
/// certificate, the server's certificate and the server's key, in PEM.
fn make_certificate() -> Result<(String, String, String), rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "gopark https example CA");
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate()?;
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let mut leaf = CertificateParams::new(names)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok((ca_cert.pem(), cert.pem(), key.serialize_pem()))
}

fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("https: {msg}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let tls = match tls_config(&config) {
        Ok(tls) => tls,
        Err(msg) => {
            eprintln!("https: {msg}");
            return ExitCode::from(2);
        }
    };
    nofile::raise_limit();
    let mut builder = Builder::new();
    builder.thread_name("https");
    if let Some(n) = config.workers {
        builder.worker_threads(n);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("https: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve_until_signal(&config.addr, tls)) {
        Ok(served) => {
            println!("served {served} requests");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("https: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until a signal, then drains; returns how many requests were
/// answered.
async fn serve_until_signal(addr: &str, tls: Arc<ServerConfig>) -> io::Result<u64> {
    // Before the server says it is listening.
    let shutdown = Shutdown::listen()?;
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    println!("listening on https://{}", listener.local_addr()?);
    let listener = TlsListener::new(listener, tls);

    let served = Arc::new(AtomicU64::new(0));
    let counted = served.clone();
    let service = service_fn(move |req| {
        let counted = counted.clone();
        async move {
            let resp = service::route(req).await;
            // Relaxed: a statistic, read after every connection ended.
            counted.fetch_add(1, Ordering::Relaxed);
            resp
        }
    });
    let server = serve(listener, service).configure(|b| {
        b.http1().header_read_timeout(HEADER_TIMEOUT);
    });
    shutdown.serve("https", server, GRACE).await?;
    Ok(served.load(Ordering::Relaxed))
}
