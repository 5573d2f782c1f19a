//! The echo example, run as a child process on an ephemeral port.

mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::thread;

use support::data::pattern;
use support::example::{connect, example_path, Proc, WAIT};

#[test]
fn echoes_every_byte_to_concurrent_clients() {
    let (_server, addr) = Proc::server("echo", &["127.0.0.1:0"]);
    thread::scope(|s| {
        for client in 0..4u64 {
            s.spawn(move || {
                let stream = connect(addr);
                for len in [1, 100, 4096, 65_536, 1 << 20] {
                    let message = pattern(client, len);
                    // Write from another thread: a megabyte does not fit in
                    // the socket buffers while nobody reads the echo.
                    let mut writer = stream.try_clone().unwrap();
                    let sent = message.clone();
                    let w = thread::spawn(move || writer.write_all(&sent).unwrap());
                    let mut back = vec![0u8; len];
                    (&stream).read_exact(&mut back).unwrap();
                    w.join().unwrap();
                    assert!(
                        back == message,
                        "client {client}: echo of {len} bytes differs"
                    );
                }
            });
        }
    });
}

#[test]
fn exits_zero_on_sigint() {
    let (mut server, addr) = Proc::server("echo", &["127.0.0.1:0"]);
    let mut stream = connect(addr);
    stream.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");

    server.signal(libc::SIGINT);
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", server.log());
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["--bogus"][..],
        &["not an address"],
        &["127.0.0.1:0", "extra"],
    ] {
        let (status, _, proc) = support::example::run("echo", args, WAIT);
        assert_eq!(status.code(), Some(2), "args {args:?}\n{}", proc.log());
    }
}

#[test]
fn keeps_serving_after_running_out_of_descriptors() {
    const LIMIT: libc::rlim_t = 32;
    let mut cmd = Command::new(example_path("echo"));
    // A fixed worker count keeps the descriptors the runtime needs fixed.
    cmd.arg("127.0.0.1:0").env("GOPARK_WORKERS", "2");
    support::proc::child_nofile(&mut cmd, LIMIT);
    let server = Proc::spawn("echo", &mut cmd);
    let line = server.wait_stdout(|l| l.starts_with("listening on "));
    let addr: std::net::SocketAddr = line["listening on ".len()..].parse().unwrap();

    // More connections than the server has descriptors for: the kernel
    // completes every handshake, and accept fails with EMFILE.
    let mut clients: Vec<_> = (0..LIMIT as usize + 8).map(|_| connect(addr)).collect();
    server.wait_stderr(|l| l.contains("accept error") && l.contains("retrying in"));

    // The first connections were accepted and are served.
    clients[0].write_all(b"still here").unwrap();
    let mut back = [0u8; 10];
    clients[0].read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here");

    // Once descriptors are free again, new connections are served.
    clients.clear();
    let mut stream = connect(addr);
    stream.write_all(b"after").unwrap();
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"after");
}
