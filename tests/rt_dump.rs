//! `Handle::dump()`, `GOPARK_SCHEDTRACE` and `GOPARK_DUMP_ON_SIGQUIT`:
//! every live task with its spawn site, its state and its age; the
//! schedtrace line; the dump on SIGQUIT with the process going on.
//!
//! The environment-variable tests run this test binary again as a child
//! with a role in `GOPARK_DUMP_TEST_ROLE` (and the variable under test),
//! since the runtime reads its environment when it is built.

mod support;

use std::io::Write;
use std::net::TcpStream as StdStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use gopark::net::TcpListener;
use gopark::runtime::{self, time, Builder, Direction, TaskState};
use support::Watchdog;

const ROLE: &str = "GOPARK_DUMP_TEST_ROLE";

/// Waits (bounded) until `cond` holds for a fresh dump.
fn dump_until(
    handle: &runtime::Handle,
    what: &str,
    cond: impl Fn(&runtime::Dump) -> bool,
) -> runtime::Dump {
    let start = Instant::now();
    loop {
        let dump = handle.dump();
        if cond(&dump) {
            return dump;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{what}: {dump}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_dump_says_where_each_task_waits_and_where_it_was_spawned() {
    let dog = Watchdog::start("dump states", Duration::from_secs(60));
    let rt = Builder::new().worker_threads(2).build().expect("runtime");
    let listener = rt
        .block_on(async { TcpListener::bind("127.0.0.1:0") })
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let client = StdStream::connect(addr).expect("connect");
    let (server, _) = rt.block_on(listener.accept()).expect("accept");
    let fd = {
        use std::os::fd::AsRawFd;
        server.as_raw_fd()
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    server.set_read_deadline(Some(deadline)).expect("deadline");

    let line = line!() + 1;
    let reader = rt.spawn(async move {
        let mut buf = [0u8; 8];
        server.read(&mut buf).await
    });
    let sleeper = rt.spawn(time::sleep(Duration::from_secs(3600)));
    let (_hold, held) = oneshot::channel::<()>();
    let idle = rt.spawn(async move {
        let _ = held.await;
    });
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let runner = rt.spawn(async move {
        // Busy on a worker until told to stop (bounded).
        let start = Instant::now();
        while go_rx.try_recv().is_err() && start.elapsed() < Duration::from_secs(30) {
            std::hint::spin_loop();
        }
    });
    let joiner = {
        let h = rt.spawn(time::sleep(Duration::from_secs(7200)));
        rt.spawn(h)
    };

    let dump = dump_until(rt.handle(), "every task in its state", |d| {
        d.tasks().len() == 6
            && d.tasks()
                .iter()
                .all(|t| !matches!(t.state, TaskState::Queued))
            && d.tasks()
                .iter()
                .any(|t| matches!(t.state, TaskState::Running { .. }))
            && d.tasks()
                .iter()
                .any(|t| matches!(t.state, TaskState::Joining { .. }))
            && d.tasks()
                .iter()
                .filter(|t| matches!(t.state, TaskState::Sleeping { .. }))
                .count()
                == 2
    });
    println!("{dump}");
    let text = dump.to_string();
    let find = |pred: &dyn Fn(&TaskState) -> bool| {
        dump.tasks()
            .iter()
            .find(|t| pred(&t.state))
            .unwrap_or_else(|| panic!("no such task in\n{dump}"))
            .clone()
    };
    let io = find(&|s| matches!(s, TaskState::Io { .. }));
    match io.state {
        TaskState::Io {
            fd: got,
            direction,
            deadline: Some(left),
        } => {
            assert_eq!(got, fd);
            assert_eq!(direction, Direction::Read);
            assert!(left > Duration::from_secs(200) && left <= Duration::from_secs(300));
        }
        other => panic!("{other:?}"),
    }
    assert!(io.spawned_at.file().ends_with("rt_dump.rs"));
    assert_eq!(io.spawned_at.line(), line);
    assert!(text.contains(&format!("parked on fd {fd} for read (deadline in")));
    let sleeping: Vec<Duration> = dump
        .tasks()
        .iter()
        .filter_map(|t| match t.state {
            TaskState::Sleeping { remaining } => Some(remaining),
            _ => None,
        })
        .collect();
    assert!(sleeping
        .iter()
        .any(|&r| r > Duration::from_secs(3500) && r <= Duration::from_secs(3600)));
    assert!(sleeping
        .iter()
        .any(|&r| r > Duration::from_secs(7100) && r <= Duration::from_secs(7200)));
    let joining = find(&|s| matches!(s, TaskState::Joining { .. }));
    if let TaskState::Joining { task } = joining.state {
        let target = dump
            .tasks()
            .iter()
            .find(|t| t.id == task)
            .expect("joined task listed");
        assert!(matches!(target.state, TaskState::Sleeping { .. }));
    }
    assert!(matches!(
        find(&|s| matches!(s, TaskState::Running { .. })).state,
        TaskState::Running { worker: 0 | 1 }
    ));
    find(&|s| matches!(s, TaskState::Idle));

    go_tx.send(()).unwrap();
    for h in [sleeper, idle] {
        h.abort();
    }
    drop(client);
    rt.block_on(async {
        let _ = reader.await;
        runner.await.unwrap();
        joiner.abort();
    });
    drop(rt);
    dog.disarm();
}

#[test]
fn a_dump_of_100_000_tasks_takes_milliseconds() {
    let dog = Watchdog::start("big dump", Duration::from_secs(120));
    let rt = Builder::new().worker_threads(2).build().expect("runtime");
    const N: usize = 100_000;
    let release = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let release = release.clone();
            rt.spawn(async move {
                release.acquire().await.expect("open").forget();
            })
        })
        .collect();
    let dump = dump_until(rt.handle(), "every task parked", |d| {
        d.tasks().len() == N && d.tasks().iter().all(|t| matches!(t.state, TaskState::Idle))
    });
    let timed = rt.handle().dump();
    println!(
        "a dump of {N} tasks took {:?} (and {:?} before)",
        timed.took(),
        dump.took()
    );
    assert_eq!(timed.tasks().len(), N);
    // The workers are held off one shard at a time; the whole dump is
    // bounded far above what it takes, even in a debug build on a loaded
    // machine, and far below what a stop-the-world walk would cost.
    assert!(timed.took() < Duration::from_secs(5), "{:?}", timed.took());
    release.add_permits(N);
    rt.block_on(async {
        for h in handles {
            h.await.expect("task");
        }
    });
    drop(rt);
    dog.disarm();
}

/// The child side of the environment tests.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let rt = Builder::new().worker_threads(2).build().expect("runtime");
    match role.as_str() {
        "schedtrace" => rt.block_on(async {
            for i in 0..20u64 {
                runtime::spawn(time::sleep(Duration::from_millis(i)))
                    .await
                    .unwrap();
            }
            time::sleep(Duration::from_millis(300)).await;
        }),
        "sigquit" => rt.block_on(async {
            let _parked = runtime::spawn(time::sleep(Duration::from_secs(3600)));
            // "ready" once the task has parked on its timer: a dump taken
            // while it is still queued would show no sleeper.
            let handle = runtime::Handle::current();
            for _ in 0..10_000 {
                if handle.dump().to_string().contains("sleeping,") {
                    break;
                }
                time::sleep(Duration::from_millis(1)).await;
            }
            println!("ready");
            std::io::stdout().flush().unwrap();
            // Wait for the parent's go (a line on stdin), bounded.
            let line = runtime::spawn_blocking(|| {
                let mut s = String::new();
                std::io::stdin().read_line(&mut s).map(|_| s)
            });
            let _ = time::timeout(Duration::from_secs(30), line).await;
            println!("still running");
        }),
        other => panic!("unknown role {other}"),
    }
    drop(rt);
}

fn child(role: &str, env: (&str, &str)) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_role",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(ROLE, role)
    .env(env.0, env.1)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

#[test]
fn schedtrace_writes_a_line_every_period() {
    let dog = Watchdog::start("schedtrace", Duration::from_secs(60));
    let out = child("schedtrace", ("GOPARK_SCHEDTRACE", "50"))
        .output()
        .expect("child");
    dog.disarm();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("gopark ")).collect();
    // ~500 ms of runtime at one line per 50 ms; a loaded machine may lose
    // a few, never most.
    assert!(lines.len() >= 3, "{err}");
    for l in &lines {
        for field in [
            "workers=2",
            "running=",
            "parked=",
            "globalq=",
            "localq=[",
            "tasks=",
            "spawned=+",
            "polls=+",
            "netpoll: wakeups=+",
            "events=+",
            "timers: armed=+",
            "fired=+",
            "blocking=",
        ] {
            assert!(l.contains(field), "{field} missing from {l}");
        }
    }
    // The ages grow, a period apart (each line is due one period after
    // the one before, and printed when the thread wakes for it).
    let ages: Vec<u64> = lines
        .iter()
        .map(|l| {
            l["gopark ".len()..]
                .split("ms:")
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ages[0] >= 50, "{ages:?}");
    assert!(
        ages.windows(2)
            .all(|w| w[1] / 50 > w[0] / 50 || w[1] >= w[0] + 40),
        "{ages:?}"
    );
    // The 20 spawns and their timers appear in the counters.
    let spawned: u64 = lines.iter().map(|l| field(l, "spawned=+")).sum();
    assert!(spawned >= 20, "{err}");
}

fn field(line: &str, name: &str) -> u64 {
    let rest = &line[line.find(name).unwrap() + name.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn sigquit_writes_the_dump_and_the_process_goes_on() {
    use std::io::{BufRead, BufReader};

    let dog = Watchdog::start("sigquit", Duration::from_secs(60));
    let mut proc = child("sigquit", ("GOPARK_DUMP_ON_SIGQUIT", "1"))
        .spawn()
        .expect("child");
    let mut stdout = BufReader::new(proc.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).expect("read") > 0,
            "child exited early"
        );
    }
    // SAFETY: signals the child we started.
    assert_eq!(unsafe { libc::kill(proc.id() as i32, libc::SIGQUIT) }, 0);
    // Read the child's stderr line by line until the dump's task line.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = proc.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines() {
            let Ok(l) = l else { return };
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    let mut err = String::new();
    while !err.contains("sleeping,") {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => {
                err.push_str(&l);
                err.push('\n');
            }
            Err(e) => panic!("no dump on stderr ({e}): {err}"),
        }
    }
    // The process went on: tell it to finish, and it does, normally.
    writeln!(proc.stdin.take().unwrap(), "go").expect("stdin");
    let status = proc.wait().expect("wait");
    reader.join().unwrap();
    err.extend(rx.try_iter().map(|l| l + "\n"));
    let mut rest = String::new();
    stdout.read_line(&mut rest).ok();
    dog.disarm();
    assert!(
        status.success(),
        "the child died of SIGQUIT: {status:?}\n{err}"
    );
    assert!(rest.contains("still running"), "{rest}");
    assert!(err.contains("live task(s) on 2 worker(s)"), "{err}");
    assert!(err.contains("sleeping,"), "{err}");
    assert!(err.contains("rt_dump.rs"), "{err}");
}
