//! Feature `tokio-io`: tokio's `AsyncRead`/`AsyncWrite` on gopark's
//! streams and owned halves, driven by crates written against them
//! (tokio-util's `Framed`, tokio's `AsyncReadExt`/`AsyncWriteExt`) with
//! gopark's netpoller as the only reactor. No tokio runtime is built
//! anywhere in this file.

#[macro_use]
mod support;

use std::io::{self, ErrorKind};

use futures_util::{SinkExt, StreamExt};
use gopark::net::UnixStream;
use gopark::runtime;
use support::data::{assert_bytes_eq, pattern};
use support::net::pair;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Framed, LinesCodec};

const BULK: usize = 4 << 20;

/// Writes `data` with `write_all`, shuts down with `poll_shutdown`, then
/// reads to end of stream.
async fn send_then_drain<S>(mut s: S, data: Vec<u8>) -> io::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    s.write_all(&data).await?;
    s.flush().await?;
    s.shutdown().await?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).await?;
    Ok(got)
}

/// Reads exactly `len` bytes with `read_exact`, then writes them back and
/// shuts down.
async fn read_exact_then_echo<S>(mut s: S, len: usize) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    // Nothing after the bytes but end of stream (the peer shut down).
    assert_eq!(
        s.read(&mut [0u8; 16]).await?,
        0,
        "end of stream after the data"
    );
    s.write_all(&buf).await?;
    s.shutdown().await
}

rt_test! {
    async fn lines_codec_framed_over_tcp() -> io::Result<()> {
        let (client, server) = pair().await?;
        let server = runtime::spawn(async move {
            let mut lines = Framed::new(server, LinesCodec::new());
            let mut n = 0;
            while let Some(line) = lines.next().await {
                let line = line.map_err(io::Error::other)?;
                lines.send(line.to_uppercase()).await.map_err(io::Error::other)?;
                n += 1;
            }
            Ok::<_, io::Error>(n)
        });
        let mut lines = Framed::new(client, LinesCodec::new());
        for i in 0..100 {
            lines.send(format!("line {i} of the test")).await.map_err(io::Error::other)?;
            let reply = lines.next().await.expect("a reply").map_err(io::Error::other)?;
            assert_eq!(reply, format!("LINE {i} OF THE TEST"));
        }
        // Closing the sink shuts the write side down: the server's stream
        // of lines ends, and so does ours.
        SinkExt::<String>::close(&mut lines).await.map_err(io::Error::other)?;
        assert!(lines.next().await.is_none(), "the server closed after us");
        assert_eq!(server.await.expect("server")?, 100);
        Ok(())
    }
}

rt_test! {
    async fn read_exact_write_all_round_trip_of_mebibytes() -> io::Result<()> {
        let (client, server) = pair().await?;
        let data = pattern(41, BULK);
        let echo = runtime::spawn(read_exact_then_echo(server, BULK));
        let got = send_then_drain(client, data.clone()).await?;
        echo.await.expect("echo")?;
        assert_bytes_eq(&got, &data, "echoed through tokio's traits");
        Ok(())
    }
}

rt_test! {
    async fn owned_halves_and_references_implement_the_traits() -> io::Result<()> {
        let (client, server) = pair().await?;
        let (mut read, mut write) = server.into_split();
        let data = pattern(42, BULK);
        let echo = runtime::spawn(async move {
            // The halves echo with tokio's copy; the write half's
            // `poll_shutdown` passes the end of stream on.
            tokio::io::copy(&mut read, &mut write).await?;
            AsyncWriteExt::shutdown(&mut write).await
        });
        // `&TcpStream` reads and writes too, so two tasks can share one.
        let client = std::sync::Arc::new(client);
        let writer = {
            let client = client.clone();
            let data = data.clone();
            runtime::spawn(async move {
                let mut w = &*client;
                AsyncWriteExt::write_all(&mut w, &data).await?;
                AsyncWriteExt::shutdown(&mut w).await
            })
        };
        let mut got = Vec::new();
        AsyncReadExt::read_to_end(&mut &*client, &mut got).await?;
        writer.await.expect("writer")?;
        echo.await.expect("echo")?;
        assert_bytes_eq(&got, &data, "echoed through the halves");
        Ok(())
    }
}

rt_test! {
    async fn poll_shutdown_gives_the_peer_end_of_stream() -> io::Result<()> {
        let (mut client, mut server) = pair().await?;
        AsyncWriteExt::write_all(&mut client, b"last words").await?;
        AsyncWriteExt::shutdown(&mut client).await?;
        let mut got = Vec::new();
        AsyncReadExt::read_to_end(&mut server, &mut got).await?;
        assert_eq!(got, b"last words");
        // Only the write direction is shut: the client still reads.
        AsyncWriteExt::write_all(&mut server, b"reply").await?;
        drop(server);
        let mut reply = Vec::new();
        AsyncReadExt::read_to_end(&mut client, &mut reply).await?;
        assert_eq!(reply, b"reply");
        // Writing after the shutdown fails.
        let err = AsyncWriteExt::write_all(&mut client, b"more").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
        Ok(())
    }
}

rt_test! {
    async fn unix_stream_through_tokio_traits() -> io::Result<()> {
        let (a, b) = UnixStream::pair()?;
        let data = pattern(43, 1 << 20);
        let (mut br, mut bw) = b.into_split();
        let echo = runtime::spawn(async move {
            tokio::io::copy(&mut br, &mut bw).await?;
            AsyncWriteExt::shutdown(&mut bw).await
        });
        // One task writes while this one reads: the echo cannot stall on a
        // full socket buffer.
        let a = std::sync::Arc::new(a);
        let writer = {
            let (a, data) = (a.clone(), data.clone());
            runtime::spawn(async move {
                let mut w = &*a;
                AsyncWriteExt::write_all(&mut w, &data).await?;
                AsyncWriteExt::shutdown(&mut w).await
            })
        };
        let mut got = Vec::new();
        AsyncReadExt::read_to_end(&mut &*a, &mut got).await?;
        writer.await.expect("writer")?;
        echo.await.expect("echo")?;
        assert_bytes_eq(&got, &data, "echoed over a Unix socket");
        Ok(())
    }
}

rt_test! {
    async fn read_into_an_empty_buffer_returns_at_once() -> io::Result<()> {
        let (mut client, _server) = pair().await?;
        // Nothing was sent: a read of zero bytes must not park.
        assert_eq!(AsyncReadExt::read(&mut client, &mut []).await?, 0);
        Ok(())
    }
}
