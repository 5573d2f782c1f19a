//! Echo servers under load: many concurrent clients moving large payloads,
//! and thousands of connections open at once. Every byte is checked.

#[macro_use]
mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::future::join;
use gopark::net::{Shutdown, TcpListener, TcpStream};
use gopark::runtime::{self, JoinHandle};
use support::data::{assert_bytes_eq, pattern};
use support::net::{echo, read_and_verify, read_to_end};
use support::rt::handle;

/// Accepts exactly `n` connections, echoing each in its own task; returns
/// the bytes each echoed.
fn echo_server(listener: TcpListener, n: usize) -> JoinHandle<io::Result<Vec<u64>>> {
    runtime::spawn(async move {
        let mut handlers = Vec::with_capacity(n);
        for _ in 0..n {
            let (stream, _) = listener.accept().await?;
            handlers.push(runtime::spawn(echo(stream)));
        }
        let mut totals = Vec::with_capacity(n);
        for h in handlers {
            totals.push(h.await.expect("echo handler")?);
        }
        Ok(totals)
    })
}

rt_test! {
    async fn small_echo() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = echo_server(listener, 1);
        let client = TcpStream::connect(addr).await?;
        assert_eq!(client.peer_addr()?, addr);
        for msg in [&b"a"[..], b"hello", &[0u8; 1000], b"last"] {
            client.write_all(msg).await?;
            let mut back = vec![0u8; msg.len()];
            client.read_exact(&mut back).await?;
            assert_eq!(back, msg);
        }
        client.shutdown(Shutdown::Write)?;
        assert_eq!(client.read(&mut [0u8; 8]).await?, 0, "EOF after the server closes");
        assert_eq!(server.await.unwrap()?, vec![1 + 5 + 1000 + 4]);
        Ok(())
    }
}

const CLIENTS: usize = 50;
const PAYLOAD: usize = 1 << 20;

rt_test! {
    async fn fifty_clients_echo_one_mib_each() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = echo_server(listener, CLIENTS);
        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            clients.push(runtime::spawn(async move {
                let data = pattern(i as u64, PAYLOAD);
                let stream = TcpStream::connect(addr).await?;
                // Write and read at once from one task: echoing 1 MiB
                // would otherwise deadlock on full buffers.
                let send = async {
                    // Odd-sized writes, so reads and writes never line up.
                    for chunk in data.chunks(100_003) {
                        stream.write_all(chunk).await?;
                    }
                    stream.shutdown(Shutdown::Write)
                };
                let recv = async {
                    read_and_verify(&stream, &data, 7919).await?;
                    assert_eq!(stream.read(&mut [0u8; 16]).await?, 0, "no bytes past the payload");
                    Ok::<_, io::Error>(())
                };
                let (s, r) = join(send, recv).await;
                s?;
                r
            }));
        }
        for c in clients {
            c.await.expect("client task")?;
        }
        let totals = server.await.expect("server task")?;
        assert_eq!(totals, vec![PAYLOAD as u64; CLIENTS]);
        Ok(())
    }
}

const CONNS: usize = 2000;

rt_test! {
    async fn two_thousand_concurrent_connections() -> io::Result<()> {
        let h = handle();
        let base = h.num_poll_descs();
        let listener = TcpListener::options().backlog(4096).bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let acc = accepted.clone();
        // Each connection: the client sends its id, the server answers
        // id * 3 + 1 and then holds the connection until the client closes.
        let server = runtime::spawn(async move {
            let mut handlers = Vec::with_capacity(CONNS);
            for _ in 0..CONNS {
                let (stream, _) = listener.accept().await?;
                acc.fetch_add(1, Ordering::Relaxed);
                handlers.push(runtime::spawn(async move {
                    let mut id = [0u8; 8];
                    stream.read_exact(&mut id).await?;
                    let reply = u64::from_le_bytes(id) * 3 + 1;
                    stream.write_all(&reply.to_le_bytes()).await?;
                    let rest = read_to_end(&stream).await?;
                    assert!(rest.is_empty(), "nothing after the id");
                    Ok::<_, io::Error>(())
                }));
            }
            for h in handlers {
                h.await.expect("handler")?;
            }
            Ok::<_, io::Error>(())
        });
        let mut clients = Vec::with_capacity(CONNS);
        for i in 0..CONNS as u64 {
            clients.push(runtime::spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                stream.write_all(&i.to_le_bytes()).await?;
                let mut reply = [0u8; 8];
                stream.read_exact(&mut reply).await?;
                assert_eq!(u64::from_le_bytes(reply), i * 3 + 1, "reply of connection {i}");
                // Keep it open: returned to the test, which holds all of them.
                Ok::<_, io::Error>(stream)
            }));
        }
        let mut open = Vec::with_capacity(CONNS);
        for c in clients {
            open.push(c.await.expect("client task")?);
        }
        // Every connection is open and used at this point.
        assert_eq!(accepted.load(Ordering::Relaxed), CONNS);
        assert!(
            h.num_poll_descs() >= base + 2 * CONNS,
            "{} poll descs registered, expected at least {}",
            h.num_poll_descs(),
            base + 2 * CONNS
        );
        let mut ports: Vec<u16> = open.iter().map(|s| s.local_addr().unwrap().port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), CONNS, "distinct connections");
        drop(open);
        server.await.expect("server task")?;
        assert_eq!(h.num_poll_descs(), base, "every descriptor deregistered");
        Ok(())
    }
}

rt_test! {
    async fn echo_with_mixed_sizes() -> io::Result<()> {
        // One connection, message sizes from 1 byte to 256 KiB, each echoed
        // and checked before the next: exercises short reads and writes
        // and the readiness bookkeeping between them.
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = echo_server(listener, 1);
        let sizes: Vec<usize> = std::iter::successors(Some(1usize), |s| Some(s * 3 + 1))
            .take_while(|&s| s <= 256 * 1024)
            .collect();
        let client = TcpStream::connect(addr).await?;
        for (seed, &size) in sizes.iter().enumerate() {
            let msg = pattern(seed as u64, size);
            let (w, r) = join(client.write_all(&msg), async {
                let mut back = vec![0u8; size];
                client.read_exact(&mut back).await?;
                Ok::<_, io::Error>(back)
            })
            .await;
            w?;
            assert_bytes_eq(&r?, &msg, &format!("echo of {size} bytes"));
        }
        drop(client);
        let total: usize = sizes.iter().sum();
        assert_eq!(server.await.unwrap()?, vec![total as u64]);
        Ok(())
    }
}

rt_test! {
    // Regression: a short read that drained the last bytes cleared read
    // readiness although the FIN had arrived too; the EOF edge was lost and
    // the next read hung (see tcp_errors.rs eof_after_short_read_is_not_lost).
    limit = std::time::Duration::from_secs(5);
    async fn echo_until_eof_with_large_buffer() -> io::Result<()> {
        // The server of DESIGN.md: read into a 4 KiB buffer until EOF.
        let (client, server) = support::net::pair().await?;
        let echo = runtime::spawn(support::net::echo_in(server, 4096));
        for i in 0..20u64 {
            let msg = pattern(i, 100);
            client.write_all(&msg).await?;
            let mut back = [0u8; 100];
            client.read_exact(&mut back).await?;
            assert_bytes_eq(&back, &msg, "echo");
        }
        // The last message and the FIN arrive together.
        client.write_all(b"bye").await?;
        client.shutdown(Shutdown::Write)?;
        let mut back = [0u8; 3];
        client.read_exact(&mut back).await?;
        echo.await.expect("echo task")?;
        assert_eq!(client.read(&mut back).await?, 0);
        Ok(())
    }
}
