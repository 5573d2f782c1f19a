//! Running out of descriptors: `accept` fails with `EMFILE`, the process
//! does not spin while connections wait in the accept queue, and accept
//! works again once descriptors are freed.
//!
//! Lowering `RLIMIT_NOFILE` affects the whole process, so the scenario runs
//! in a child: the test binary re-executes itself with `--exact
//! emfile_child` and an environment variable naming the worker count. In
//! the normal run `emfile_child` sees no variable and returns at once.

mod net_support;

use std::io;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::sleep, time::timeout};
use net_support::cpu_time;

const CHILD_ENV: &str = "GOPARK_TEST_EMFILE_CHILD";
const CLIENTS: usize = 8;
/// The window over which CPU time is measured while accept keeps failing.
const WINDOW: Duration = Duration::from_millis(500);
/// CPU time allowed in that window: a spinning runtime would use the whole
/// window (or several times it, across threads).
const CPU_BUDGET: Duration = Duration::from_millis(150);

#[test]
fn accept_reports_emfile_and_recovers() {
    for workers in net_support::WORKERS {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args(["--exact", "emfile_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, workers.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("re-execute the test binary");
        let pid = child.id() as libc::pid_t;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(out) => out.expect("wait for the child"),
            Err(_) => {
                // SAFETY: kill(2) on the pid of our own child, which has
                // not been reaped (its waiter is still blocked).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("the EMFILE child ({workers} workers) did not finish in 60 s");
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "EMFILE child on {workers} workers failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            output.status
        );
    }
}

/// The child's side. Returns at once unless re-executed by the test above.
#[test]
fn emfile_child() {
    let Ok(workers) = std::env::var(CHILD_ENV) else {
        return;
    };
    let workers: usize = workers.parse().expect("worker count");
    net_support::run(workers, "emfile child", Duration::from_secs(20), scenario);
}

fn max_open_fd() -> i32 {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
        .expect("some descriptor is open")
}

fn set_nofile(soft: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let old = lim.rlim_cur;
    lim.rlim_cur = soft;
    // SAFETY: `lim` is a valid rlimit; lowering the soft limit is allowed.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
    old
}

async fn scenario() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // Clients connect (the handshake completes in the kernel's accept
    // queue) and wait for a reply, parked in read.
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let stream = TcpStream::connect(addr).await?;
        clients.push(runtime::spawn(async move {
            // The server answers with the client's own port.
            let mut reply = [0u8; 2];
            stream.read_exact(&mut reply).await?;
            assert_eq!(u16::from_le_bytes(reply), stream.local_addr()?.port());
            Ok::<_, io::Error>(())
        }));
    }

    // Use up every descriptor number below a lowered limit.
    let old_limit = set_nofile(max_open_fd() as libc::rlim_t + 1 + 8);
    let mut filler = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => filler.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
            Err(e) => return Err(e),
        }
    }
    assert!(!filler.is_empty());

    // accept fails with EMFILE, and the listener stays usable.
    match listener.accept().await {
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}"),
        Ok((_, peer)) => panic!("accepted {peer} with no descriptor free"),
    }

    // An accept loop that backs off on EMFILE, as Go's net/http does,
    // while the clients wait: the process must stay (nearly) idle —
    // neither the netpoll thread nor a worker may spin on the listener
    // that stays readable.
    let cpu_before = cpu_time();
    let start = Instant::now();
    let mut failures = 0;
    let mut backoff = Duration::from_millis(5);
    while start.elapsed() < WINDOW {
        match listener.accept().await {
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => failures += 1,
            other => panic!(
                "accept with no descriptor free: {:?}",
                other.map(|(_, a)| a)
            ),
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(100));
    }
    let cpu = cpu_time() - cpu_before;
    eprintln!("EMFILE child: {failures} failed accepts, {cpu:?} of CPU in {WINDOW:?}");
    assert!(failures >= 2, "{failures} accept attempts in {WINDOW:?}");
    assert!(
        cpu < CPU_BUDGET,
        "the process used {cpu:?} of CPU in {WINDOW:?} while accept failed with EMFILE"
    );

    // Free descriptors: every waiting connection is accepted and answered.
    drop(filler);
    set_nofile(old_limit);
    for _ in 0..CLIENTS {
        let (stream, peer) = timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("accept after descriptors are freed")?;
        stream.write_all(&peer.port().to_le_bytes()).await?;
    }
    for c in clients {
        timeout(Duration::from_secs(5), c)
            .await
            .expect("client gets its reply")
            .expect("client task")?;
    }
    // The queue is empty: accept parks again (no stale error, no spin).
    assert!(timeout(Duration::from_millis(50), listener.accept())
        .await
        .is_err());
    Ok(())
}
