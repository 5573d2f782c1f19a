//! Load and integrity (issue 5): many connections echoing seeded random
//! data with every byte compared, full duplex on one connection, connect
//! and close churn through acceptors sharing one listener, and the memory
//! an idle parked connection costs, beside tokio's.
//!
//! Each test prints its figure on a `FIGURE` line (`--nocapture`). The
//! default run uses CI sizes; the sizes are the `#[ignore]`d
//! `*_full` tests, run in release by `scripts/reliability.sh`.
//!
//! The echo client and the memory measurements run in child processes: the
//! test binary re-executes itself (`--exact <child test>`) with an
//! environment variable naming the role. Without it, the child tests
//! return at once.

mod support;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{join, join_all};
use gopark::net::{Shutdown, TcpListener, TcpStream};
use gopark::runtime::{self, time::sleep, time::timeout};
use support::child;
use support::data::{first_difference, pattern};
use support::future::{report_pending, Parked, SignalPending};
use support::net::set_buf;
use support::proc::{env_usize, fd_count};
use support::rt::{serial, Watchdog};
use support::stats::figure;
use tokio::sync::watch;

const ROLE: &str = "GOPARK_RELIABILITY_ROLE";
const ADDR: &str = "GOPARK_RELIABILITY_ADDR";
const CONNS: &str = "GOPARK_RELIABILITY_CONNS";
const BYTES: &str = "GOPARK_RELIABILITY_BYTES";

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------
// Many connections: N concurrent connections each echo B bytes.
// ---------------------------------------------------------------------

/// Socket buffer size of the many-connection echo (both directions, both
/// ends). With the kernel's autotuned buffers (up to several MiB each),
/// 20,000 loopback sockets outgrow this machine's `tcp_mem` (2.2 GiB) and
/// the kernel starts aborting connections ("TCP: out of memory").
const ECHO_SOCKET_BUFFER: libc::c_int = 64 * 1024;

/// Transfers in flight at once in the many-connection echo: every
/// connection is open from the start, but 10,000 transfers at once would
/// again outgrow `tcp_mem` (4 capped buffers of 128 KiB per connection).
const ECHO_ACTIVE: usize = 1_000;

/// Caps `SO_SNDBUF` and `SO_RCVBUF` at [`ECHO_SOCKET_BUFFER`].
fn cap_buffers(stream: &TcpStream) {
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        set_buf(stream, opt, ECHO_SOCKET_BUFFER);
    }
}

/// The server's handler: once `gate` opens, echo until end of stream;
/// returns bytes echoed.
async fn echo(stream: TcpStream, mut gate: watch::Receiver<bool>) -> io::Result<u64> {
    // Every connection stays open until all of them are accepted, so the
    // descriptor peak counts them all by construction: the client connects
    // every stream before it sends a byte, and no handler can finish (and
    // close its socket) before the gate opens.
    gate.wait_for(|&open| open)
        .await
        .map_err(|_| io::Error::other("gate dropped"))?;
    support::net::echo(stream).await
}

/// Where connection `i`'s payload starts in the shared random buffer: every
/// connection sends a different window of it.
fn window(i: usize, bytes: usize) -> usize {
    (i * 4099) % bytes.max(4099)
}

fn echo_many(conns: usize, bytes: usize, limit: Duration) {
    let _serial = serial();
    let what = format!("echo {conns} x {bytes} B");
    let dog = Watchdog::start(what.clone(), limit + Duration::from_secs(60));
    let fds_before = fd_count();
    let rt = support::rt::runtime(2, "load");
    let start = Instant::now();
    let (echoed, errors, fds_in, fds_peak, fds_out, outcome) = rt
        .block_on(async move {
            let fds_in = fd_count();
            let listener = TcpListener::options().backlog(4096).bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let cmd = child::command(
                "echo_client_child",
                &[
                    (ROLE, "echo-client".to_string()),
                    (ADDR, addr.to_string()),
                    (CONNS, conns.to_string()),
                    (BYTES, bytes.to_string()),
                ],
            );
            let client = runtime::spawn_blocking(move || child::run(cmd, limit));
            let (open, gate) = watch::channel(false);
            let mut handlers = Vec::with_capacity(conns);
            for _ in 0..conns {
                let (stream, _) = timeout(limit, listener.accept())
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "accept"))??;
                cap_buffers(&stream);
                handlers.push(runtime::spawn(echo(stream, gate.clone())));
            }
            let fds_peak = fd_count();
            open.send_replace(true);
            drop(listener);
            let (mut echoed, mut errors) = (0u64, 0usize);
            for h in handlers {
                match h.await {
                    Ok(Ok(n)) => echoed += n,
                    Ok(Err(e)) => {
                        errors += 1;
                        eprintln!("server handler: {e}");
                    }
                    Err(e) => {
                        errors += 1;
                        eprintln!("server handler: {e}");
                    }
                }
            }
            let outcome = client.await.expect("client waiter");
            let fds_out = fd_count();
            Ok::<_, io::Error>((echoed, errors, fds_in, fds_peak, fds_out, outcome))
        })
        .expect("echo server");
    let took = start.elapsed();
    drop(rt);
    // The blocking thread that waited for the child exits on its own.
    support::threads::wait_gone("load-");
    dog.disarm();
    outcome.echo_figures();
    outcome.assert_passed(&what);
    let fds_after = fd_count();
    figure(
        "load.echo",
        format!(
            "{conns} connections x {bytes} B echoed in {took:.2?}; server: {echoed} bytes echoed, \
             {errors} errors; peak {fds_peak} fds; fds before/after {fds_before}/{fds_after} \
             (inside the runtime {fds_in}/{fds_out})"
        ),
    );
    assert_eq!(errors, 0, "server handler errors");
    assert_eq!(echoed, (conns * bytes) as u64, "bytes echoed by the server");
    assert!(
        fds_peak >= fds_in + conns,
        "the connections were concurrent"
    );
    assert_eq!(fds_out, fds_in, "descriptors after every handler ended");
    assert_eq!(
        fds_after, fds_before,
        "descriptors after the runtime dropped"
    );
    assert!(took < limit, "{what} took {took:?}");
}

#[test]
fn echo_1000_connections_64_kib() {
    echo_many(1_000, 64 * KIB, Duration::from_secs(60));
}

#[test]
#[ignore = "full size (release): scripts/reliability.sh"]
fn echo_10000_connections_1_mib_full() {
    echo_many(10_000, MIB, Duration::from_secs(120));
}

/// Reads exactly `want.len()` bytes, comparing each read as it arrives.
async fn read_verify(stream: &TcpStream, want: &[u8], buf: &mut [u8]) -> io::Result<()> {
    let mut off = 0;
    while off < want.len() {
        let end = (want.len() - off).min(buf.len());
        let n = stream.read(&mut buf[..end]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("end of stream after {off} of {} bytes", want.len()),
            ));
        }
        if let Some(d) = first_difference(&buf[..n], &want[off..off + n]) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("byte {} differs", off + d),
            ));
        }
        off += n;
    }
    Ok(())
}

/// One connection's transfer: send `want` while reading the echo back.
async fn echo_once(stream: &TcpStream, want: &[u8], buf: &mut [u8]) -> io::Result<()> {
    let (w, r) = join(stream.write_all(want), read_verify(stream, want, buf)).await;
    w?;
    r?;
    // Every byte came back. Only now half-close: the server then closes with
    // nothing left unsent (the kernel may abort an orphaned socket with data
    // under memory pressure), and nothing follows the echo.
    stream.shutdown(Shutdown::Write)?;
    match stream.read(buf).await? {
        0 => Ok(()),
        n => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{n} bytes past the echo"),
        )),
    }
}

/// The echo client, in its own process (its own descriptor table): connects
/// every connection first, so all are open at once, then sends each its
/// window of seeded random data while reading the echo back, at most
/// `ECHO_ACTIVE` at a time.
#[test]
fn echo_client_child() {
    if std::env::var(ROLE).as_deref() != Ok("echo-client") {
        return;
    }
    let addr: SocketAddr = std::env::var(ADDR).unwrap().parse().unwrap();
    let conns = env_usize(CONNS);
    let bytes = env_usize(BYTES);
    let rt = support::rt::runtime(2, "client");
    rt.block_on(async move {
        let data = Arc::new(pattern(0xEC40, 2 * bytes.max(4099)));
        let start = Instant::now();
        let mut streams = Vec::with_capacity(conns);
        let mut connect_errors = 0;
        // At most 256 handshakes in flight: the accept queue stays short.
        let ids: Vec<usize> = (0..conns).collect();
        for chunk in ids.chunks(256) {
            let tries = chunk.iter().map(|_| TcpStream::connect(addr));
            for res in join_all(tries).await {
                match res {
                    Ok(s) => {
                        cap_buffers(&s);
                        streams.push(s);
                    }
                    Err(e) => {
                        connect_errors += 1;
                        eprintln!("connect: {e}");
                    }
                }
            }
        }
        let connected = start.elapsed();
        // Every connection is open; at most ACTIVE transfer at once (see
        // ECHO_ACTIVE), each in turn on its lane.
        let lanes = conns.min(ECHO_ACTIVE);
        let mut queues: Vec<Vec<(usize, TcpStream)>> = (0..lanes).map(|_| Vec::new()).collect();
        for (i, stream) in streams.into_iter().enumerate() {
            queues[i % lanes].push((i, stream));
        }
        let tasks: Vec<_> = queues
            .into_iter()
            .map(|queue| {
                let data = data.clone();
                runtime::spawn(async move {
                    let mut buf = vec![0u8; 64 * KIB];
                    let mut errors = Vec::new();
                    for (i, stream) in queue {
                        let want = &data[window(i, bytes)..window(i, bytes) + bytes];
                        if let Err(e) = echo_once(&stream, want, &mut buf).await {
                            errors.push(format!("connection {i}: {e}"));
                        }
                    }
                    errors
                })
            })
            .collect();
        let mut errors = 0;
        for t in tasks {
            for e in t.await.expect("lane task") {
                errors += 1;
                eprintln!("{e}");
            }
        }
        let took = start.elapsed();
        let gib = (2 * conns * bytes) as f64 / (1u64 << 30) as f64;
        figure(
            "load.echo.client",
            format!(
                "{conns} connections open at once (connected in {connected:.2?}), {bytes} B each \
                 way, every byte compared: {errors} errors, {connect_errors} connect errors, \
                 {took:.2?} in all, {:.2} GiB/s of loopback traffic",
                gib / took.as_secs_f64()
            ),
        );
        assert_eq!(connect_errors, 0, "connect errors");
        assert_eq!(errors, 0, "connection errors");
    });
}

// ---------------------------------------------------------------------
// Full duplex on one connection.
// ---------------------------------------------------------------------

fn full_duplex(bytes: usize) {
    let _serial = serial();
    let dog = Watchdog::start(format!("full duplex {bytes} B"), Duration::from_secs(120));
    let rt = support::rt::runtime(2, "duplex");
    let up = Arc::new(pattern(0xD0_0001, bytes));
    let down = Arc::new(pattern(0xD0_0002, bytes));
    let took = rt
        .block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let (c, accepted) = join(
                TcpStream::connect(listener.local_addr()?),
                listener.accept(),
            )
            .await;
            let (c, s) = (Arc::new(c?), Arc::new(accepted?.0));
            let start = Instant::now();
            // Each side writes and reads at once, from separate tasks.
            let send = |stream: Arc<TcpStream>, data: Arc<Vec<u8>>| {
                runtime::spawn(async move {
                    for chunk in data.chunks(256 * KIB) {
                        stream.write_all(chunk).await?;
                    }
                    stream.shutdown(Shutdown::Write)
                })
            };
            let recv = |stream: Arc<TcpStream>, data: Arc<Vec<u8>>| {
                runtime::spawn(async move {
                    let mut buf = vec![0u8; 256 * KIB];
                    read_verify(&stream, &data, &mut buf).await?;
                    match stream.read(&mut buf).await? {
                        0 => Ok(()),
                        n => Err(io::Error::other(format!("{n} bytes past the end"))),
                    }
                })
            };
            let tasks = [
                send(c.clone(), up.clone()),
                recv(s.clone(), up),
                send(s, down.clone()),
                recv(c, down),
            ];
            for t in tasks {
                timeout(Duration::from_secs(100), t)
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "duplex transfer"))?
                    .expect("duplex task")?;
            }
            Ok::<_, io::Error>(start.elapsed())
        })
        .expect("full duplex");
    drop(rt);
    dog.disarm();
    let mib = bytes as f64 / MIB as f64;
    figure(
        "load.duplex",
        format!(
            "{mib:.0} MiB each way at once on one connection, every byte compared, in \
             {took:.2?}: {:.0} MiB/s each way",
            mib / took.as_secs_f64()
        ),
    );
}

#[test]
fn full_duplex_32_mib_each_way() {
    full_duplex(32 * MIB);
}

#[test]
#[ignore = "full size (release): scripts/reliability.sh"]
fn full_duplex_64_mib_each_way_full() {
    full_duplex(64 * MIB);
}

// ---------------------------------------------------------------------
// Connect/close churn through 8 acceptors sharing one listener.
// ---------------------------------------------------------------------

const ACCEPTORS: usize = 8;
/// Client tasks connecting at once.
const CHURNERS: usize = 32;

fn churn(conns: usize) {
    let _serial = serial();
    let dog = Watchdog::start(format!("churn {conns}"), Duration::from_secs(120));
    let fds_before = fd_count();
    let rt = support::rt::runtime(2, "churn");
    let (per_acceptor, seen, took) = rt
        .block_on(async move {
            let listener = Arc::new(TcpListener::bind("127.0.0.1:0")?);
            let addr = listener.local_addr()?;
            let seen: Arc<Vec<AtomicUsize>> =
                Arc::new((0..conns).map(|_| AtomicUsize::new(0)).collect());
            let start = Instant::now();
            let acceptors: Vec<_> = (0..ACCEPTORS)
                .map(|_| {
                    let (listener, seen) = (listener.clone(), seen.clone());
                    runtime::spawn(async move {
                        let mut accepted = 0usize;
                        loop {
                            let stream = match listener.accept().await {
                                Ok((s, _)) => s,
                                // `close` ends the loop once all are in.
                                Err(_) if listener.poll_desc().is_closed() => return accepted,
                                Err(e) => panic!("accept: {e}"),
                            };
                            accepted += 1;
                            // The client's id comes first; then an ack, then
                            // close (the server closes first: TIME_WAIT stays
                            // here, not on the client's ephemeral ports).
                            let mut id = [0u8; 8];
                            stream.read_exact(&mut id).await.expect("read id");
                            seen[u64::from_le_bytes(id) as usize].fetch_add(1, Ordering::SeqCst);
                            stream.write_all(b"k").await.expect("ack");
                        }
                    })
                })
                .collect();
            let clients: Vec<_> = (0..CHURNERS)
                .map(|c| {
                    runtime::spawn(async move {
                        let mut id = c;
                        while id < conns {
                            let stream = TcpStream::connect(addr).await?;
                            stream.write_all(&(id as u64).to_le_bytes()).await?;
                            let mut ack = [0u8; 1];
                            stream.read_exact(&mut ack).await?;
                            assert_eq!(stream.read(&mut ack).await?, 0, "server closes");
                            id += CHURNERS;
                        }
                        Ok::<_, io::Error>(())
                    })
                })
                .collect();
            for c in clients {
                timeout(Duration::from_secs(100), c)
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "churn clients"))?
                    .expect("client task")?;
            }
            let took = start.elapsed();
            listener.close()?;
            let mut per_acceptor = Vec::new();
            for a in acceptors {
                per_acceptor.push(timeout(Duration::from_secs(5), a).await.map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "close wakes the acceptors")
                })??);
            }
            let seen: Vec<usize> = seen.iter().map(|s| s.load(Ordering::SeqCst)).collect();
            Ok::<_, io::Error>((per_acceptor, seen, took))
        })
        .expect("churn");
    drop(rt);
    dog.disarm();
    let total: usize = per_acceptor.iter().sum();
    let twice = seen.iter().filter(|&&n| n > 1).count();
    let never = seen.iter().filter(|&&n| n == 0).count();
    figure(
        "load.churn",
        format!(
            "{conns} connect/close cycles ({CHURNERS} clients at once) through {ACCEPTORS} \
             acceptors sharing one listener in {took:.2?} ({:.0}/s): {total} accepted, \
             {never} never, {twice} more than once; per acceptor {per_acceptor:?}",
            conns as f64 / took.as_secs_f64()
        ),
    );
    assert_eq!(never, 0, "connections never accepted");
    assert_eq!(twice, 0, "connections accepted more than once");
    assert_eq!(total, conns, "accepts");
    assert_eq!(fd_count(), fds_before, "descriptors after the churn");
}

#[test]
fn churn_10000_connections_8_acceptors() {
    churn(10_000);
}

// ---------------------------------------------------------------------
// Memory per idle parked connection, gopark beside tokio.
// ---------------------------------------------------------------------

/// Idle connections measured.
const IDLE_CONNS: usize = 2_000;
/// The bound of the issue: runtime memory per idle parked connection.
const MAX_BYTES_PER_CONN: usize = 1024;

/// `n` connected pairs of plain blocking std sockets: `(clients, servers)`.
fn std_pairs(n: usize) -> (Vec<std::net::TcpStream>, Vec<std::net::TcpStream>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(std::net::TcpStream::connect(addr).unwrap());
        servers.push(listener.accept().unwrap().0);
    }
    (clients, servers)
}

/// The per-connection figure measured by a child: the resident memory
/// added by registering `IDLE_CONNS` accepted sockets with the runtime and
/// parking a task in `read` (16-byte buffer) on each, over a baseline where
/// the sockets and the started runtime already exist.
#[test]
fn idle_memory_child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let n = env_usize(CONNS);
    // The sockets exist before the baseline: the kernel's memory for them
    // is not the runtime's, and a socket costs the process no user memory.
    let (clients, servers) = std_pairs(n + 1);
    let parked = Parked::new();
    let (before, after) = match role.as_str() {
        "idle-gopark" => {
            let rt = support::rt::runtime(2, "mem");
            let mut servers = servers.into_iter();
            // Warm up: one connection through the whole path first.
            let warm = Parked::new();
            let (w, first) = (warm.clone(), servers.next().unwrap());
            rt.spawn(async move {
                let s = TcpStream::from_std(first).unwrap();
                let mut buf = [0u8; 16];
                report_pending(&w, s.read(&mut buf)).await
            });
            warm.wait(1, Duration::from_secs(10));
            let before = support::proc::rss_bytes();
            for s in servers {
                let p = parked.clone();
                drop(rt.spawn(async move {
                    let s = TcpStream::from_std(s).expect("register");
                    let mut buf = [0u8; 16];
                    // Pinned on the task's stack: the figure counts no
                    // allocation of the test's own.
                    let read = std::pin::pin!(s.read(&mut buf));
                    let _ = SignalPending::new(read, p).await;
                }));
            }
            parked.wait(n, Duration::from_secs(30));
            let after = support::proc::rss_bytes();
            assert_eq!(rt.handle().num_poll_descs(), n + 1, "registered sockets");
            std::mem::forget(rt);
            (before, after)
        }
        "idle-tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let mut servers = servers.into_iter();
            let warm = Parked::new();
            let (w, first) = (warm.clone(), servers.next().unwrap());
            rt.spawn(async move {
                use tokio::io::AsyncReadExt;
                first.set_nonblocking(true).unwrap();
                let mut s = tokio::net::TcpStream::from_std(first).unwrap();
                let mut buf = [0u8; 16];
                report_pending(&w, s.read(&mut buf)).await
            });
            warm.wait(1, Duration::from_secs(10));
            let before = support::proc::rss_bytes();
            for s in servers {
                let p = parked.clone();
                drop(rt.spawn(async move {
                    use tokio::io::AsyncReadExt;
                    s.set_nonblocking(true).unwrap();
                    let mut s = tokio::net::TcpStream::from_std(s).expect("register");
                    let mut buf = [0u8; 16];
                    // Pinned on the task's stack: the figure counts no
                    // allocation of the test's own.
                    let read = std::pin::pin!(s.read(&mut buf));
                    let _ = SignalPending::new(read, p).await;
                }));
            }
            parked.wait(n, Duration::from_secs(30));
            let after = support::proc::rss_bytes();
            std::mem::forget(rt);
            (before, after)
        }
        other => panic!("unknown role {other}"),
    };
    let per_conn = after.saturating_sub(before) / n;
    println!("PER_CONN={per_conn}");
    println!("RSS_DELTA={}", after.saturating_sub(before));
    drop(clients);
}

fn idle_memory_of(role: &str) -> usize {
    let cmd = child::command(
        "idle_memory_child",
        &[(ROLE, role.to_string()), (CONNS, IDLE_CONNS.to_string())],
    );
    let out = child::run(cmd, Duration::from_secs(60));
    out.assert_passed(role);
    out.value("PER_CONN")
        .expect("PER_CONN printed")
        .parse()
        .unwrap()
}

#[test]
fn idle_connection_memory_beside_tokio() {
    let _serial = serial();
    // Each runtime in a fresh process, measured the same way; twice, and
    // the smaller figure kept (a page fault elsewhere in the process can
    // only add to a measurement).
    let gopark = idle_memory_of("idle-gopark").min(idle_memory_of("idle-gopark"));
    let tokio = idle_memory_of("idle-tokio").min(idle_memory_of("idle-tokio"));
    figure(
        "load.idle_memory",
        format!(
            "runtime memory per idle connection with a task parked in read ({IDLE_CONNS} \
             connections, RSS delta over sockets-only baseline): gopark {gopark} B, tokio \
             {tokio} B (ratio {:.2})",
            gopark as f64 / tokio.max(1) as f64
        ),
    );
    assert!(
        gopark <= MAX_BYTES_PER_CONN,
        "gopark uses {gopark} B per idle parked connection (tokio {tokio} B)"
    );
}

// ---------------------------------------------------------------------
// Resident memory stays flat over many requests.
// ---------------------------------------------------------------------

/// Connections the request load runs over at once.
const RSS_CONNS: usize = 100;
/// Requests on one connection before it is closed and a new one opened.
const RSS_PER_CONNECTION: usize = 500;

/// `total` request/response round trips (64 B to 4 KiB, checked) through an
/// echo server, over `RSS_CONNS` client tasks that reconnect every
/// `RSS_PER_CONNECTION` requests — so tasks, PollDescs, buffers and
/// timers come and go all the time.
async fn request_load(addr: SocketAddr, total: usize, first: usize) -> io::Result<()> {
    let data = Arc::new(pattern(0x0555, 8 * KIB));
    let clients: Vec<_> = (0..RSS_CONNS)
        .map(|c| {
            let data = data.clone();
            runtime::spawn(async move {
                let mine = total / RSS_CONNS + usize::from(c < total % RSS_CONNS);
                let mut done = 0;
                let mut back = [0u8; 4 * KIB];
                while done < mine {
                    let stream = TcpStream::connect(addr).await?;
                    for _ in 0..RSS_PER_CONNECTION.min(mine - done) {
                        let k = first + c * 7919 + done;
                        let len = 64 + (k * 131) % (4 * KIB - 64);
                        let msg = &data[k % 4096..k % 4096 + len];
                        stream.write_all(msg).await?;
                        let back = &mut back[..len];
                        timeout(Duration::from_secs(10), stream.read_exact(back))
                            .await
                            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "echo"))??;
                        if back != msg {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs"));
                        }
                        done += 1;
                    }
                }
                Ok::<_, io::Error>(())
            })
        })
        .collect();
    for c in clients {
        c.await.expect("client task")?;
    }
    Ok(())
}

/// RSS after the first `checkpoints[0]` requests, then after each later
/// checkpoint, then after `idle`: the last must stay within 1.2x the first.
/// Runs in a fresh child process, so that what earlier tests left in the
/// heap does not hide growth.
fn rss_steady(checkpoints: &[usize], idle: Duration) {
    let _serial = serial();
    let list: Vec<String> = checkpoints.iter().map(|c| c.to_string()).collect();
    let out = child::run(
        child::command(
            "rss_child",
            &[
                (ROLE, "rss".to_string()),
                (CONNS, list.join(",")),
                (BYTES, idle.as_millis().to_string()),
            ],
        ),
        Duration::from_secs(600),
    );
    out.echo_figures();
    out.assert_passed("RSS child");
}

/// The child's side of [`rss_steady`].
#[test]
fn rss_child() {
    if std::env::var(ROLE).as_deref() != Ok("rss") {
        return;
    }
    let checkpoints: Vec<usize> = std::env::var(CONNS)
        .unwrap()
        .split(',')
        .map(|c| c.parse().unwrap())
        .collect();
    let idle = Duration::from_millis(env_usize(BYTES) as u64);
    let dog = Watchdog::start("RSS over many requests", Duration::from_secs(600));
    let rt = support::rt::runtime(2, "rss");
    let checkpoints = checkpoints.to_vec();
    let (rss, idle_rss, took) = rt
        .block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            runtime::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    // The handler of DESIGN.md's example.
                    runtime::spawn(support::net::echo_in(stream, 4096));
                }
            });
            let start = Instant::now();
            let mut rss = Vec::new();
            let mut done = 0;
            for &at in &checkpoints {
                request_load(addr, at - done, done).await?;
                done = at;
                rss.push((at, support::proc::rss_bytes()));
            }
            let took = start.elapsed();
            // Idle: nothing to await, the runtime is meant to sit still.
            sleep(idle).await;
            Ok::<_, io::Error>((rss, support::proc::rss_bytes(), took))
        })
        .expect("request load");
    drop(rt);
    dog.disarm();
    let first = rss[0].1;
    let total = rss.last().unwrap().0;
    let ratio = idle_rss as f64 / first as f64;
    let mib = |b: usize| b as f64 / MIB as f64;
    let series: Vec<String> = rss
        .iter()
        .map(|(at, b)| format!("{at}: {:.1} MiB", mib(*b)))
        .collect();
    figure(
        "load.rss_steady",
        format!(
            "{total} echo requests ({RSS_CONNS} connections at once, a new connection every \
             {RSS_PER_CONNECTION} requests) in {took:.2?}: RSS after {}; after {idle:?} idle \
             {:.1} MiB: {ratio:.3}x the first",
            series.join(", "),
            mib(idle_rss)
        ),
    );
    assert!(
        ratio <= 1.2,
        "RSS grew {ratio:.3}x over {total} requests ({first} -> {idle_rss} bytes)"
    );
}

#[test]
fn rss_stays_flat_over_many_requests() {
    rss_steady(&[10_000, 25_000, 50_000], Duration::from_secs(1));
}

#[test]
#[ignore = "full size (release): scripts/reliability.sh"]
fn rss_stays_flat_over_a_million_requests_full() {
    rss_steady(
        &[10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000],
        Duration::from_secs(5),
    );
}
