//! `gopark::io::copy` and `copy_bidirectional` over gopark's sockets:
//! bytes compared, counts returned, ends of stream passed through, errors
//! of the right kind; and the re-exported buffered readers and writers.

mod support;

use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use gopark::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime;
use support::data::{assert_bytes_eq, pattern};

/// A connected pair of gopark TCP streams.
async fn pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (client, accepted) = futures_util::join!(TcpStream::connect(addr), listener.accept());
    Ok((client?, accepted?.0))
}

/// Reads `stream` to its end.
async fn read_to_end(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(all);
        }
        all.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn copy_moves_every_byte_and_counts_them() {
    support::rt::run_io(2, "copy", support::rt::LIMIT, || async {
        let data = pattern(1, 3 << 20);
        let (a, mut b) = pair().await?;
        let (mut c, d) = pair().await?;
        // a -> b, copied b -> c, read at d.
        let sent = data.clone();
        let writer = runtime::spawn(async move {
            a.write_all(&sent).await?;
            a.shutdown(Shutdown::Write)
        });
        let copier = runtime::spawn(async move {
            let n = gopark::io::copy(&mut b, &mut c).await?;
            c.shutdown(Shutdown::Write)?;
            Ok::<_, io::Error>(n)
        });
        let got = read_to_end(&d).await?;
        writer.await.unwrap()?;
        assert_eq!(copier.await.unwrap()?, data.len() as u64);
        assert_bytes_eq(&got, &data, "copied stream");
        Ok(())
    });
}

#[test]
fn copy_bidirectional_both_ways_with_counts_and_half_close() {
    support::rt::run_io(2, "copybi", support::rt::LIMIT, || async {
        let up = pattern(2, 1 << 20);
        let down = pattern(3, (1 << 20) + 17);
        let (client, mut proxy_front) = pair().await?;
        let (mut proxy_back, server) = pair().await?;
        let proxy = runtime::spawn(async move {
            gopark::io::copy_bidirectional(&mut proxy_front, &mut proxy_back).await
        });
        let (up2, down2) = (up.clone(), down.clone());
        let server = runtime::spawn(async move {
            // Reads the whole request (its end passed through the proxy),
            // then answers and ends its own stream.
            let got = read_to_end(&server).await?;
            server.write_all(&down2).await?;
            server.shutdown(Shutdown::Write)?;
            Ok::<_, io::Error>(got == up2)
        });
        client.write_all(&up).await?;
        client.shutdown(Shutdown::Write)?;
        let got = read_to_end(&client).await?;
        assert_bytes_eq(&got, &down, "downstream");
        assert!(server.await.unwrap()?, "upstream bytes differ");
        let (there, back) = proxy.await.unwrap()?;
        assert_eq!((there, back), (up.len() as u64, down.len() as u64));
        Ok(())
    });
}

#[test]
fn copy_bidirectional_reports_a_reset() {
    support::rt::run_io(1, "copyrst", support::rt::LIMIT, || async {
        let (client, mut front) = pair().await?;
        let (mut back, server) = pair().await?;
        let proxy =
            runtime::spawn(
                async move { gopark::io::copy_bidirectional(&mut front, &mut back).await },
            );
        client.write_all(b"x").await?;
        let mut one = [0u8; 1];
        server.read_exact(&mut one).await?;
        // The client resets its connection: SO_LINGER 0, then close.
        support::net::reset(client)?;
        let err = proxy.await.unwrap().expect_err("a reset is an error");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        drop(server);
        Ok(())
    });
}

/// A writer that accepts nothing.
struct Full;

impl futures_io::AsyncWrite for Full {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(0))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[test]
fn a_writer_that_takes_nothing_is_write_zero_not_a_spin() {
    runtime::block_on(async {
        let mut reader: &[u8] = b"some bytes";
        let err = gopark::io::copy(&mut reader, &mut Full).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    });
}

#[test]
fn buffered_writer_and_line_reader_over_a_socket() {
    support::rt::run_io(2, "lines", support::rt::LIMIT, || async {
        let (a, b) = pair().await?;
        let writer = runtime::spawn(async move {
            let mut w = BufWriter::new(a);
            for i in 0..1000 {
                w.write_all(format!("line {i}\n").as_bytes()).await?;
            }
            w.close().await
        });
        let lines: Vec<String> = BufReader::new(b)
            .lines()
            .map(|l| l.expect("a line"))
            .collect()
            .await;
        writer.await.unwrap()?;
        assert_eq!(lines.len(), 1000);
        assert!(lines
            .iter()
            .enumerate()
            .all(|(i, l)| *l == format!("line {i}")));
        Ok(())
    });
}
