//! http mode: a keep-alive connection writes `pipeline` copies of
//! `GET PATH` at once, reads as many responses, and starts again.
//! Each response's latency counts from the write of its batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gopark::net::TcpStream;
use gopark::runtime::time::sleep;

use crate::args::Config;
use crate::stats::{Failure, Stats};

/// Room for the head of any sane response (bodies stream through).
const BUF_SIZE: usize = 16 * 1024;
/// A read that would have less room than this first moves the buffered
/// bytes to the front.
const MIN_READ: usize = 4 * 1024;
/// Wait before reconnecting after a failure, so a dead server is not
/// hammered.
const RECONNECT_DELAY: Duration = Duration::from_millis(50);

/// Runs connection number `id` until `stop` is set.
pub async fn run(id: usize, cfg: Arc<Config>, stats: Arc<Stats>, stop: Arc<AtomicBool>) {
    let one = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: gopark-load\r\n\r\n",
        cfg.path, cfg.target
    );
    let batch = one.repeat(cfg.pipeline).into_bytes();
    let mut buf = RecvBuf::new();
    // Relaxed: the flag carries no data; seeing it a request late is fine.
    while !stop.load(Ordering::Relaxed) {
        let stream = match TcpStream::connect(cfg.addr).await {
            Ok(stream) => stream,
            Err(_) => {
                stats.fail(id, Failure::Connect);
                sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        buf.clear();
        let conn = Conn {
            id,
            stream: &stream,
            stats: &stats,
            buf: &mut buf,
        };
        match conn.requests(&batch, cfg.pipeline, &stop).await {
            Ok(()) => {} // stopped, or the server closed: reconnect unless stopped
            Err(failure) => {
                stats.fail(id, failure);
                sleep(RECONNECT_DELAY).await;
            }
        }
    }
}

struct Conn<'a> {
    id: usize,
    stream: &'a TcpStream,
    stats: &'a Stats,
    buf: &'a mut RecvBuf,
}

impl Conn<'_> {
    /// Sends batches until `stop` or until the server says it closes.
    async fn requests(
        mut self,
        batch: &[u8],
        depth: usize,
        stop: &AtomicBool,
    ) -> Result<(), Failure> {
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            self.stream
                .write_all(batch)
                .await
                .map_err(|_| Failure::Io)?;
            self.stats.sent(self.id, batch.len());
            for answered in 1..=depth {
                let resp = self.response().await?;
                let ok = (200..300).contains(&resp.status);
                self.stats.record(self.id, sent.elapsed(), resp.bytes, ok);
                if resp.close {
                    // Requests pipelined behind this one will not be answered.
                    return if answered == depth {
                        Ok(())
                    } else {
                        Err(Failure::Io)
                    };
                }
            }
        }
        Ok(())
    }

    /// Reads one response and skips its body.
    async fn response(&mut self) -> Result<Response, Failure> {
        let head = loop {
            if !self.buf.is_empty() {
                if let Some(head) = parse_head(self.buf.data())? {
                    break head;
                }
            }
            if self.buf.is_full() {
                return Err(Failure::Protocol); // a head larger than the buffer
            }
            self.fill().await?;
        };
        self.buf.consume(head.len);
        let mut remaining = head.body_len;
        loop {
            let n = remaining.min(self.buf.len());
            self.buf.consume(n);
            remaining -= n;
            if remaining == 0 {
                break;
            }
            self.fill().await?;
        }
        Ok(Response {
            status: head.status,
            bytes: head.len + head.body_len,
            close: head.close,
        })
    }

    /// Reads more; the end of the stream in the middle of a response is a
    /// failure.
    async fn fill(&mut self) -> Result<(), Failure> {
        match self.buf.read_from(self.stream).await {
            Ok(0) | Err(_) => Err(Failure::Io),
            Ok(_) => Ok(()),
        }
    }
}

struct Response {
    status: u16,
    bytes: usize,
    close: bool,
}

struct Head {
    status: u16,
    len: usize,
    body_len: usize,
    close: bool,
}

/// Parses a response head with httparse; `None` if it is not all here yet.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Protocol),
    };
    let status = resp.code.ok_or(Failure::Protocol)?;
    let mut body_len = None;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| Failure::Protocol)?;
            body_len = Some(v.trim().parse::<usize>().map_err(|_| Failure::Protocol)?);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Failure::Protocol); // chunked responses are not supported
        }
    }
    let body_len = match (status, body_len) {
        (100..=199 | 204 | 304, _) => 0,
        (_, Some(n)) => n,
        // A body delimited by the end of the connection cannot be timed.
        (_, None) => return Err(Failure::Protocol),
    };
    Ok(Some(Head {
        status,
        len,
        body_len,
        close,
    }))
}

/// Received bytes not yet parsed: `buf[start..end]`.
struct RecvBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl RecvBuf {
    fn new() -> RecvBuf {
        RecvBuf {
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn len(&self) -> usize {
        self.end - self.start
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn is_full(&self) -> bool {
        self.start == 0 && self.end == self.buf.len()
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    async fn read_from(&mut self, stream: &TcpStream) -> std::io::Result<usize> {
        if self.is_empty() {
            self.clear();
        } else if self.buf.len() - self.end < MIN_READ {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}
