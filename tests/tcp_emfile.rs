//! Running out of descriptors: `accept` fails with `EMFILE`, the process
//! does not spin while connections wait in the accept queue, and accept
//! works again once descriptors are freed.
//!
//! Lowering `RLIMIT_NOFILE` affects the whole process, so the scenario runs
//! in a child: the test binary re-executes itself with `--exact
//! emfile_child` and an environment variable naming the worker count. In
//! the normal run `emfile_child` sees no variable and returns at once.

mod support;

use std::io;
use std::time::{Duration, Instant};

use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::sleep, time::timeout};
use support::child;
use support::proc::{cpu_time, OutOfFiles};

const CHILD_ENV: &str = "GOPARK_TEST_EMFILE_CHILD";
const CLIENTS: usize = 8;
/// The window over which CPU time is measured while accept keeps failing.
const WINDOW: Duration = Duration::from_millis(500);
/// CPU time allowed in that window: a spinning runtime would use the whole
/// window (or several times it, across threads).
const CPU_BUDGET: Duration = Duration::from_millis(150);

#[test]
fn accept_reports_emfile_and_recovers() {
    for workers in support::rt::WORKERS {
        let out = child::run(
            child::command("emfile_child", &[(CHILD_ENV, workers.to_string())]),
            Duration::from_secs(60),
        );
        out.assert_passed(&format!("EMFILE child on {workers} workers"));
    }
}

/// The child's side. Returns at once unless re-executed by the test above.
#[test]
fn emfile_child() {
    let Ok(workers) = std::env::var(CHILD_ENV) else {
        return;
    };
    let workers: usize = workers.parse().expect("worker count");
    support::rt::run_io(workers, "emfile child", Duration::from_secs(20), scenario);
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
    let no_files = OutOfFiles::take(8)?;

    // accept fails with EMFILE, and the listener stays usable. A
    // descriptor number that another thread held for a moment while `take`
    // filled the table comes free later: glibc opens
    // /sys/devices/system/cpu/online when a thread first allocates, to size
    // its malloc arenas. A connection is then accepted on it, and kept
    // open, so the number is used up again; it is answered at the end.
    let mut early = Vec::new();
    loop {
        match listener.accept().await {
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
            Ok((_, peer)) if early.len() >= 2 => {
                panic!("accepted {peer} with no descriptor free")
            }
            Ok(accepted) => early.push(accepted),
        }
    }

    // An accept loop that backs off on EMFILE, as Go's net/http does,
    // while the clients wait: the process must stay (nearly) idle —
    // neither the netpoll thread nor a worker may spin on the listener
    // that stays readable.
    let cpu_before = cpu_time();
    let start = Instant::now();
    let mut failures = 0;
    let mut backoff = Duration::from_millis(5);
    // (As above: a number freed by another thread is used up once more.)
    while start.elapsed() < WINDOW {
        match listener.accept().await {
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => failures += 1,
            Ok(accepted) if early.len() < 2 => early.push(accepted),
            other => panic!(
                "accept with no descriptor free ({} freed by others): {:?}",
                early.len(),
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
    drop(no_files);
    for (stream, peer) in &early {
        stream.write_all(&peer.port().to_le_bytes()).await?;
    }
    for _ in early.len()..CLIENTS {
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
