//! The proxy example, run as a child process in front of an upstream made
//! of plain threads: 100 MiB through it both ways at once, every byte
//! compared; a half-closed conversation; an upstream that refuses.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::thread;

use support::data::{assert_bytes_eq, pattern};
use support::example::{connect, Proc, WAIT};

/// An upstream that echoes every connection's bytes until its peer ends
/// its stream, then ends its own. Serves `conns` connections.
fn echo_upstream(conns: usize) -> (SocketAddr, thread::JoinHandle<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = thread::spawn(move || {
        let mut total = 0;
        for _ in 0..conns {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).unwrap();
                total += n as u64;
            }
            s.shutdown(Shutdown::Write).unwrap();
        }
        total
    });
    (addr, t)
}

fn start_proxy(upstream: SocketAddr) -> (Proc, SocketAddr) {
    Proc::server("proxy", &["127.0.0.1:0", &upstream.to_string()])
}

#[test]
fn moves_100_mib_both_ways_through_the_proxy() {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 100;
    let (upstream, echo) = echo_upstream(1);
    let (_proxy, addr) = start_proxy(upstream);
    let stream = connect(addr);
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // A different window of one buffer per chunk, so a chunk delivered
    // twice or out of order shows.
    let data = pattern(7, CHUNK + CHUNKS);
    let mut writer = stream.try_clone().unwrap();
    let sent = data.clone();
    let w = thread::spawn(move || {
        for i in 0..CHUNKS {
            writer.write_all(&sent[i..i + CHUNK]).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = vec![0u8; CHUNK];
    for i in 0..CHUNKS {
        (&stream).read_exact(&mut back).unwrap();
        assert_bytes_eq(&back, &data[i..i + CHUNK], &format!("chunk {i}"));
    }
    // The upstream's end of stream comes through as ours.
    assert_eq!((&stream).read(&mut back).unwrap(), 0, "no end of stream");
    w.join().unwrap();
    assert_eq!(echo.join().unwrap(), (CHUNK * CHUNKS) as u64);
}

#[test]
fn a_half_closed_request_gets_its_whole_reply() {
    // The upstream reads the request to its end before it answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut request = Vec::new();
        s.read_to_end(&mut request).unwrap();
        s.write_all(b"you said: ").unwrap();
        s.write_all(&request).unwrap();
    });
    let (_proxy, addr) = start_proxy(upstream);
    let mut stream = connect(addr);
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"hello").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"you said: hello");
    server.join().unwrap();
}

#[test]
fn an_upstream_that_refuses_closes_the_client() {
    // A port nobody listens on: bind one, note it, close it.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (proxy, addr) = start_proxy(closed);
    // Twice: the first refusal does not take the proxy down.
    for _ in 0..2 {
        let mut stream = connect(addr);
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 16];
        // End of stream, or a reset: either way no data and no hang.
        match stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("{n} bytes from a proxy with no upstream"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        let line = proxy.wait_stderr(|l| l.contains("upstream"));
        assert!(line.contains(&closed.to_string()), "{line}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [&[][..], &["a", "b", "c"], &["not an address"]] {
        let (status, _, proc) = support::example::run("proxy", args, WAIT);
        assert_eq!(
            status.code(),
            Some(2),
            "{args:?}: {status:?}\n{}",
            proc.log()
        );
    }
}
