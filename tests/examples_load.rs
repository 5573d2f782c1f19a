//! The load example against the echo and http examples, all as child
//! processes on loopback.

mod support;

use std::time::Duration;

use support::example::{Proc, WAIT};

/// The first number after `label` on the line that starts with it.
fn figure(out: &[String], label: &str) -> u64 {
    let line = out
        .iter()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {out:#?}"));
    line[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// Runs the load generator to completion; returns its summary.
fn load(args: &[&str]) -> Vec<String> {
    let (status, out, proc) = support::example::run("load", args, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "load {args:?}\n{}", proc.log());
    assert_eq!(figure(&out, "errors:"), 0, "{out:#?}");
    assert!(
        out.iter()
            .any(|l| l.starts_with("latency:") && l.contains("p50") && l.contains("p99")),
        "{out:#?}"
    );
    out
}

#[test]
fn http_figures_agree_with_what_the_server_counted() {
    let (mut server, addr) = Proc::server("http", &["--addr", "127.0.0.1:0", "--workers", "1"]);
    let addr = addr.to_string();
    let plain = load(&[
        "http",
        "--addr",
        &addr,
        "-c",
        "4",
        "-d",
        "1s",
        "--workers",
        "1",
    ]);
    let pipelined = load(&[
        "http",
        "--addr",
        &addr,
        "-c",
        "2",
        "-d",
        "1s",
        "--pipeline",
        "8",
        "--workers",
        "1",
    ]);
    let sent = figure(&plain, "requests:") + figure(&pipelined, "requests:");
    assert!(figure(&plain, "requests:") > 0 && figure(&pipelined, "requests:") > 0);
    assert_eq!(figure(&plain, "errors:"), 0);

    server.signal(libc::SIGTERM);
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0));
    let served = server
        .rest_of_stdout()
        .iter()
        .find_map(|l| {
            l.strip_prefix("served ")
                .and_then(|l| l.strip_suffix(" requests"))
                .map(|n| n.parse::<u64>().unwrap())
        })
        .expect("a 'served N requests' line");
    assert_eq!(sent, served, "load counted {sent}, the server {served}");
}

#[test]
fn echo_mode_round_trips_without_errors() {
    let (_server, addr) = Proc::server("echo", &["127.0.0.1:0"]);
    let addr = addr.to_string();
    let out = load(&["echo", "--addr", &addr, "-c", "4", "-s", "1000", "-d", "1s"]);
    assert!(figure(&out, "requests:") > 0, "{out:#?}");
    // A message larger than the socket buffers does not deadlock. (The
    // duration includes making the message, slow in a debug build.)
    let out = load(&[
        "echo", "--addr", &addr, "-c", "1", "-s", "4000000", "-d", "1s",
    ]);
    assert!(figure(&out, "requests:") > 0, "{out:#?}");
}

#[test]
fn ctrl_c_stops_early_with_a_summary() {
    let (_server, addr) = Proc::server("http", &["--addr", "127.0.0.1:0", "--workers", "1"]);
    let addr = addr.to_string();
    let mut load = Proc::start("load", &["http", "--addr", &addr, "-c", "2", "-d", "60s"]);
    load.wait_stderr(|l| l.contains("req/s")); // the first progress line
    load.signal(libc::SIGINT);
    let status = load.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", load.log());
    let out = load.rest_of_stdout();
    assert!(figure(&out, "requests:") > 0, "{out:#?}");
    assert!(load.log().contains("stopping early"));
}

#[test]
fn no_server_is_a_failure_with_connect_errors() {
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (status, out, proc) = support::example::run(
        "load",
        &[
            "http",
            "--addr",
            &port.to_string(),
            "-c",
            "2",
            "-d",
            "200ms",
        ],
        WAIT,
    );
    assert_eq!(status.code(), Some(1), "{}", proc.log());
    assert_eq!(figure(&out, "requests:"), 0);
    assert!(figure(&out, "errors:") > 0, "{out:#?}");
}

#[test]
fn light_mode_times_every_echo_of_an_idle_server() {
    let (_server, addr) = Proc::server("echo", &["127.0.0.1:0"]);
    let addr = addr.to_string();
    let args = [
        "light", "--addr", &addr, "-n", "200", "-c", "2", "--gap-us", "500",
    ];
    let (status, out, proc) = support::example::run("load", &args, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "load {args:?}\n{}", proc.log());
    let line = out
        .iter()
        .find(|l| l.starts_with("light "))
        .unwrap_or_else(|| panic!("no summary line in {out:#?}"));
    let value = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    assert_eq!(value("n"), 200.0, "{line}");
    let (p50, p99, max) = (value("p50_us"), value("p99_us"), value("max_us"));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{line}");
}

#[test]
fn bad_arguments_exit_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["ftp"],
        &["http", "-c", "0"],
        &["http", "-d", "10x"],
        &["http", "-d"],
        &["http", "-s", "64"],
        &["echo", "--pipeline", "2"],
        &["http", "--path", "no-slash"],
        &["http", "--bogus"],
        &["light", "-s", "100"],
        &["echo", "-n", "10"],
        &["light", "--gap-us", "0"],
    ];
    for &args in cases {
        let (status, _, proc) = support::example::run("load", args, WAIT);
        assert_eq!(status.code(), Some(2), "args {args:?}\n{}", proc.log());
    }
}
