//! Names off the workers: `lookup_host`, and `connect`/`bind`/`send_to` by
//! host name. Literals never leave the calling thread; names go to the
//! blocking pool; and a resolver that takes a second per lookup does not
//! stall a 1-worker runtime.
//!
//! The slow resolver is made, not found: a child process in its own user,
//! mount and network namespaces (`unshare`), whose `/etc/resolv.conf`
//! names a DNS server on its own loopback that receives queries and never
//! answers, with `timeout:1 attempts:1`. Every lookup of a name outside
//! `/etc/hosts` then takes one second, on any machine and without the
//! outside network. Where namespaces are not allowed (some containers),
//! that test says so and skips; the others need nothing.

mod support;

use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gopark::net::{lookup_host, TcpListener, TcpStream, UdpSocket};
use gopark::runtime::{self, time::sleep, Handle};
use support::child;
use support::rt::{join, run_io};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn lookup_host_literals_and_localhost() {
    run_io(1, "lookup", LIMIT, || async {
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, 8080));
        let got: Vec<_> = lookup_host("127.0.0.1:8080").await?.collect();
        assert_eq!(got, [v4]);
        let got: Vec<_> = lookup_host(("127.0.0.1", 8080)).await?.collect();
        assert_eq!(got, [v4]);
        let got: Vec<_> = lookup_host("[::1]:8080").await?.collect();
        assert_eq!(got, ["[::1]:8080".parse::<SocketAddr>().unwrap()]);
        // `localhost` is in /etc/hosts on every machine: the resolver
        // answers without the network.
        let got: Vec<_> = lookup_host(("localhost", 8080)).await?.collect();
        assert!(!got.is_empty(), "localhost has addresses");
        for a in got {
            assert!(a.ip().is_loopback(), "{a} is loopback");
            assert_eq!(a.port(), 8080);
        }
        Ok(())
    });
}

#[test]
fn a_missing_or_bad_port_is_invalid_input() {
    run_io(1, "badport", LIMIT, || async {
        for bad in ["localhost", "localhost:http", "127.0.0.1:70000", "no-colon"] {
            let err = lookup_host(bad).await.map(|_| ()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "lookup_host({bad:?})");
            let err = TcpStream::connect(bad).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "connect({bad:?})");
            let err = TcpListener::bind(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "bind({bad:?})");
        }
        Ok(())
    });
}

/// The blocking pool's thread count on a runtime that started with none:
/// zero after any amount of work with literals, one or more once a name
/// was resolved.
#[test]
fn literals_stay_inline_and_names_use_the_blocking_pool() {
    run_io(1, "inline", LIMIT, || async {
        let metrics = Handle::current().metrics();
        assert_eq!(
            metrics.blocking_threads(),
            0,
            "a fresh runtime has no pool threads"
        );

        // Everything by literal: no thread hop.
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let accepter = runtime::spawn(async move {
            for _ in 0..5 {
                listener.accept().await?;
            }
            Ok::<_, io::Error>(listener)
        });
        TcpStream::connect(("127.0.0.1", port)).await?;
        TcpStream::connect(format!("127.0.0.1:{port}")).await?;
        TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let peer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let peer_port = peer.local_addr()?.port();
        udp.send_to(b"one", ("127.0.0.1", peer_port)).await?;
        udp.connect(format!("127.0.0.1:{peer_port}")).await?;
        udp.send(b"two").await?;
        let mut buf = [0u8; 8];
        assert_eq!(peer.recv(&mut buf).await?, 3);
        assert_eq!(peer.recv(&mut buf).await?, 3);
        assert_eq!(
            metrics.blocking_threads(),
            0,
            "literals were resolved inline"
        );

        // By name: the pool.
        TcpStream::connect(("localhost", port)).await?;
        TcpStream::connect(format!("localhost:{port}")).await?;
        assert!(
            metrics.blocking_threads() >= 1,
            "a name was resolved on the blocking pool"
        );
        udp.send_to(b"three", ("localhost", peer_port)).await?;
        assert_eq!(peer.recv(&mut buf).await?, 5);
        join(accepter).await?;
        Ok(())
    });
}

#[test]
fn udp_connect_by_name() {
    run_io(1, "udpname", LIMIT, || async {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        let port = b.local_addr()?.port();
        // `localhost` may name ::1 first; the connect takes the first
        // address the kernel accepts, and an IPv4 socket refuses ::1.
        a.connect(("localhost", port)).await?;
        a.send(b"hi").await?;
        let mut buf = [0u8; 8];
        let (n, from) = b.recv_from(&mut buf).await?;
        assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr()?));
        Ok(())
    });
}

/// The environment variable that makes the child test below play its role.
const SLOW_CHILD: &str = "GOPARK_TEST_SLOW_RESOLVER";

/// What sets up the child's namespaces before it runs: loopback up, the
/// two resolver files bound over the system's. Exits 97 if any step is not
/// allowed here.
const SETUP: &str = r#"
ip link set lo up && mount --bind "$1" /etc/resolv.conf &&
    { [ ! -e /etc/nsswitch.conf ] || mount --bind "$2" /etc/nsswitch.conf; } || exit 97
shift 2
exec "$@"
"#;

#[test]
fn slow_resolver_does_not_stall_a_one_worker_runtime() {
    if !namespaces_allowed() {
        eprintln!(
            "SKIP: unshare --user --mount --net or ip is not available here; \
             the slow-resolver test needs them"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("gopark-slow-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let resolv = dir.join("resolv.conf");
    let nsswitch = dir.join("nsswitch.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .unwrap();
    std::fs::write(&nsswitch, "hosts: files dns\n").unwrap();

    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "--mount",
        "--net",
        "sh",
        "-c",
        SETUP,
        "sh",
    ])
    .arg(&resolv)
    .arg(&nsswitch)
    .arg(exe)
    .args([
        "--exact",
        "slow_resolver_child",
        "--nocapture",
        "--include-ignored",
        "--test-threads=1",
    ])
    .env(SLOW_CHILD, "1")
    .env("RES_OPTIONS", "timeout:1 attempts:1")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let out = child::run(cmd, Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&dir);
    if out.status.code() == Some(97) {
        eprintln!("SKIP: the namespace setup was refused:\n{}", out.stderr);
        return;
    }
    out.assert_passed("slow resolver child");
    out.echo_figures();
}

/// Whether this machine lets an unprivileged test make its own user,
/// mount and network namespaces, and has `ip` to bring loopback up.
fn namespaces_allowed() -> bool {
    let ok = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok(Command::new("unshare").args([
        "--user",
        "--map-root-user",
        "--mount",
        "--net",
        "ip",
        "link",
        "set",
        "lo",
        "up",
    ]))
}

/// Runs in the namespaces set up above: a DNS server on 127.0.0.1:53 that
/// never answers, so every lookup of a name takes the full one-second
/// timeout. Eight lookups at once (by `lookup_host`, `TcpStream::connect`,
/// `UdpSocket::send_to` and `UdpSocket::connect`) on a 1-worker runtime,
/// while a ticker sleeps 5 ms at a time: resolved on the workers, they
/// would hold both threads the monitor allows for four seconds; on the
/// pool, the ticker never misses more than a beat.
#[test]
fn slow_resolver_child() {
    if std::env::var_os(SLOW_CHILD).is_none() {
        return;
    }
    // Bound and never read: queries arrive, no answer ever leaves.
    let _silent_dns = std::net::UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53");
    const NAME: &str = "slow.gopark.test";
    run_io(1, "slowdns", LIMIT, || async {
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let stop = stop.clone();
            runtime::spawn(async move {
                let (mut last, mut worst, mut ticks) = (Instant::now(), Duration::ZERO, 0u32);
                while !stop.load(Ordering::Relaxed) {
                    sleep(Duration::from_millis(5)).await;
                    let now = Instant::now();
                    worst = worst.max(now - last);
                    last = now;
                    ticks += 1;
                }
                (worst, ticks)
            })
        };
        let start = Instant::now();
        let mut lookups = Vec::new();
        for i in 0..8 {
            lookups.push(runtime::spawn(async move {
                let res = match i % 4 {
                    0 => lookup_host((NAME, 80)).await.map(|_| ()),
                    1 => TcpStream::connect(format!("{NAME}:80")).await.map(|_| ()),
                    2 => {
                        let s = UdpSocket::bind("127.0.0.1:0")?;
                        s.send_to(b"x", (NAME, 80)).await.map(|_| ())
                    }
                    _ => {
                        let s = UdpSocket::bind("127.0.0.1:0")?;
                        s.connect((NAME, 80)).await
                    }
                };
                Ok::<_, io::Error>((res, start.elapsed()))
            }));
        }
        for (i, l) in lookups.into_iter().enumerate() {
            let (res, took) = join(l).await?;
            assert!(res.is_err(), "lookup {i} of a name nobody answers failed");
            // By construction each lookup waits out the timeout; a fast
            // failure means the resolver was not the one set up here, and
            // the test would prove nothing.
            assert!(
                took >= Duration::from_millis(800),
                "lookup {i} failed after {took:?}: the silent DNS server was not asked ({:?})",
                res.unwrap_err()
            );
        }
        let all = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let (worst, ticks) = join(ticker).await;
        println!(
            "FIGURE slow_resolver lookups=8 took_ms={} worst_tick_gap_ms={} ticks={ticks}",
            all.as_millis(),
            worst.as_millis()
        );
        // Eight one-second lookups overlapped on the pool.
        assert!(
            all < Duration::from_secs(4),
            "lookups ran one after another: {all:?}"
        );
        assert!(
            worst < Duration::from_millis(400),
            "the ticker stalled for {worst:?} while names were resolved"
        );
        Ok(())
    });
}
