//! At an idle runtime (every worker parked) the netpoll thread polls the
//! first task its wake-up made ready itself, instead of waking a worker
//! for it (`Builder::netpoll_inline`, on by default). A task that then
//! blocks the netpoll thread is noticed by its watchdog, which serves I/O
//! and timers in its place until the task returns.
//!
//! Whether a wake-up finds every worker parked is up to the scheduler of
//! the machine, and nothing announces it; so the tests that need an inline
//! poll try a bounded number of times, with a pause before each try, and
//! check by the thread's name that the task did run on the netpoll thread
//! (and by the metrics that the runtime counted it). The clients run on
//! plain threads with blocking sockets, outside the runtime under test.
//! The default run's bounds separate a stand-in from its absence by orders
//! of magnitude and hold beside a CPU hog; the `_tight` variant
//! (`--ignored`, on a quiet machine) holds the latencies to 20 ms.
//!
//! Every test takes the binary's lock: they count the process's
//! descriptors and the runtime's threads, and time wake-ups.

mod support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Waker};
use std::thread;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time, Builder, JoinHandle, Runtime};
use support::stats::{Bounds, Stats};
use support::{proc, thread_name, threads, OnDrop, Watchdog};

/// The size of every message; its first byte says what the server does.
const MSG: usize = 64;
/// The server echoes the message.
const ECHO: u8 = b'E';
/// The server says in byte 1 whether it read the message on the netpoll
/// thread (`I`) or not (`W`); on the netpoll thread, it first holds the
/// thread (see [`Server::hold`]).
const STICK: u8 = b'S';

/// How long a stuck task holds the netpoll thread at least.
const STUCK_FOR: Duration = Duration::from_secs(1);
/// The longest it holds it if nobody releases it.
const STUCK_AT_MOST: Duration = Duration::from_secs(60);
/// Tries at an inline poll before a test gives up.
const TRIES: usize = 50;
/// The pause before each try: the workers finish and park.
const SETTLE: Duration = Duration::from_millis(20);
/// Bound of one wait for the runtime (a hang detector).
const LIMIT: Duration = Duration::from_secs(30);

/// A runtime with two workers, its threads named `name-…`.
fn runtime(name: &str, inline: bool) -> Runtime {
    Builder::new()
        .worker_threads(2)
        .thread_name(name)
        .netpoll_inline(inline)
        .build()
        .expect("build runtime")
}

/// `true` on the netpoll thread of the runtime named `name`.
fn on_netpoll_thread(name: &str) -> bool {
    on_netpoll_thread_name(name, &thread_name())
}

/// `true` if `thread` is the name of the netpoll thread of the runtime
/// named `name`.
fn on_netpoll_thread_name(name: &str, thread: &str) -> bool {
    thread == format!("{name}-netpoll")
}

/// Waits (bounded) until `cond` holds: for counters that the runtime
/// bumps just after the event a test can see.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < LIMIT,
            "{what}: still false after {LIMIT:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// What the server's connection handlers share with the test.
struct Server {
    name: &'static str,
    /// Messages a handler read on the netpoll thread.
    on_netpoll: AtomicUsize,
    /// Told, for each `STICK` message, whether it was read on the
    /// netpoll thread, before the handler holds it.
    probes: Mutex<mpsc::Sender<bool>>,
    /// Lets a held netpoll thread go (after `STUCK_FOR`).
    release: AtomicBool,
    /// How long the netpoll thread was held, once it was.
    held: Mutex<Option<Duration>>,
}

impl Server {
    fn new(name: &'static str) -> (Arc<Server>, mpsc::Receiver<bool>) {
        let (tx, rx) = mpsc::channel();
        let srv = Server {
            name,
            on_netpoll: AtomicUsize::new(0),
            probes: Mutex::new(tx),
            release: AtomicBool::new(false),
            held: Mutex::new(None),
        };
        (Arc::new(srv), rx)
    }

    /// Blocks the calling thread, inside the task's poll, for
    /// [`STUCK_FOR`] and then until released (at most [`STUCK_AT_MOST`]).
    fn hold(&self) {
        let start = Instant::now();
        while (start.elapsed() < STUCK_FOR || !self.release.load(Ordering::SeqCst))
            && start.elapsed() < STUCK_AT_MOST
        {
            thread::sleep(Duration::from_millis(5));
        }
        *self.held.lock().unwrap() = Some(start.elapsed());
    }

    /// One connection: reads whole messages and answers each (see
    /// [`ECHO`], [`STICK`]) until the client closes it.
    async fn handle(self: Arc<Self>, stream: TcpStream) -> io::Result<()> {
        let mut buf = [0u8; MSG];
        loop {
            let mut got = 0;
            while got < MSG {
                match stream.read(&mut buf[got..]).await? {
                    0 if got == 0 => return Ok(()),
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => got += n,
                }
            }
            // Still in the poll whose read completed.
            let inline = on_netpoll_thread(self.name);
            if inline {
                self.on_netpoll.fetch_add(1, Ordering::SeqCst);
            }
            if buf[0] == STICK {
                let _ = self.probes.lock().unwrap().send(inline);
                if inline {
                    self.hold();
                }
                buf[1] = if inline { b'I' } else { b'W' };
            }
            stream.write_all(&buf).await?;
        }
    }
}

/// Starts a server on `rt` that accepts `conns` connections, runs a
/// handler for each, and returns their results once all are closed.
fn serve(
    rt: &Runtime,
    srv: &Arc<Server>,
    conns: usize,
) -> (SocketAddr, JoinHandle<Vec<io::Result<()>>>) {
    let listener = rt
        .block_on(async { TcpListener::bind("127.0.0.1:0") })
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let srv = srv.clone();
    let server = rt.spawn(async move {
        let mut handlers = Vec::new();
        for _ in 0..conns {
            let (stream, _) = listener.accept().await.expect("accept");
            handlers.push(runtime::spawn(srv.clone().handle(stream)));
        }
        drop(listener);
        let mut results = Vec::new();
        for h in handlers {
            results.push(h.await.expect("handler task"));
        }
        results
    });
    (addr, server)
}

/// Waits (bounded) for the server started by [`serve`] to end, once its
/// clients closed their connections, and checks every handler's result.
fn server_ends(rt: &Runtime, server: JoinHandle<Vec<io::Result<()>>>) {
    rt.block_on(time::timeout(LIMIT, server))
        .expect("the handler ended")
        .expect("server task")
        .into_iter()
        .for_each(|r| r.expect("handler"));
}

fn connect(addr: SocketAddr) -> StdStream {
    let s = StdStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

/// A message tagged `tag`, numbered `n`.
fn message(tag: u8, n: usize) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[0] = tag;
    m[2..10].copy_from_slice(&(n as u64).to_le_bytes());
    m
}

/// One echo round trip; checks the answer and returns how long it took.
fn echo(s: &mut StdStream, n: usize) -> Duration {
    let msg = message(ECHO, n);
    let mut back = [0u8; MSG];
    let t = Instant::now();
    s.write_all(&msg).expect("write");
    s.read_exact(&mut back).expect("echo back");
    let took = t.elapsed();
    assert_eq!(back, msg, "echo {n} differs");
    took
}

/// A quiet machine: the held netpoll thread costs a client nothing beyond
/// the watchdog's limit (10 ms).
const TIGHT: Bounds = Bounds {
    p99: Duration::from_millis(20),
    max: Duration::from_millis(100),
    timer: Duration::from_millis(20),
};

/// Echo round trips on the other connection while the thread is held.
const ROUND_TRIPS: usize = 1000;
/// 10 ms timers fired meanwhile.
const TIMERS: usize = 50;

/// Two workers. A task woken by a read on connection A, polled on the
/// netpoll thread, blocks it ([`STUCK_FOR`], and until the echoes and
/// timers are done); meanwhile connection B's echoes are answered and
/// timers fire on time. Then the runtime goes on: A's handler answers
/// again, every task ends, and the runtime's threads and descriptors go
/// back to what they were.
///
/// Before each try at an inline poll, the client pauses `pause`: with
/// [`SETTLE`], the netpoll thread's sleeps outlast the watchdog's limit,
/// and the timer is armed as the run begins. With a shorter pause, A first
/// echoes a dozen times at that pace, so the thread's sleeps are short and
/// it arms the timer ahead of its sleeps instead: the timer then comes due
/// while the held run is younger than the limit, and
/// the watchdog must arm it again for the rest of the run's time.
fn netpoll_thread_stuck(name: &'static str, bounds: Bounds, pause: Duration) {
    let _serial = support::rt::serial();
    let dog = Watchdog::start(name, Duration::from_secs(180));
    let fds_before = proc::fd_count();
    let rt = runtime(name, true);
    // Two workers, the netpoll thread and its watchdog.
    let steady = threads::wait_for(name, 4).threads;
    let metrics = rt.handle().metrics();
    let (srv, probes) = Server::new(name);
    // A failing assertion lets the netpoll thread go too, so the
    // runtime's drop does not wait for STUCK_AT_MOST.
    let _release_on_panic = OnDrop({
        let srv = srv.clone();
        move || srv.release.store(true, Ordering::SeqCst)
    });
    let (addr, server) = serve(&rt, &srv, 2);
    let mut a = connect(addr);
    let mut b = connect(addr);
    // Both handlers exist and wait in a read.
    echo(&mut a, 0);
    echo(&mut b, 0);

    let (polls_before, stand_ins_before) =
        (metrics.netpoll_inline_polls(), metrics.netpoll_stand_ins());
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(
            tries <= TRIES,
            "{TRIES} reads at an idle runtime, none polled on the netpoll thread"
        );
        if pause < SETTLE {
            for n in 1..=PACED {
                thread::sleep(pause);
                echo(&mut a, n);
            }
        }
        thread::sleep(pause);
        a.write_all(&message(STICK, tries)).expect("write");
        let inline = probes.recv_timeout(LIMIT).expect("the handler read");
        if inline {
            break;
        }
        // A worker was awake and ran it: it answered at once.
        let mut back = [0u8; MSG];
        a.read_exact(&mut back).expect("answer");
        assert_eq!(back[1], b'W');
    }

    // The netpoll thread is held from here on.
    let lateness = rt.spawn(async {
        let mut worst = Duration::ZERO;
        for _ in 0..TIMERS {
            let due = Instant::now() + Duration::from_millis(10);
            time::sleep_until(due).await;
            worst = worst.max(due.elapsed());
        }
        worst
    });
    let lat: Vec<Duration> = (1..=ROUND_TRIPS).map(|n| echo(&mut b, n)).collect();
    let worst_timer = rt
        .block_on(time::timeout(LIMIT, lateness))
        .expect("the timers fired")
        .expect("timer task");
    let stand_ins = metrics.netpoll_stand_ins() - stand_ins_before;
    let still_held = srv.held.lock().unwrap().is_none();
    srv.release.store(true, Ordering::SeqCst);

    // A's handler answers the message it was held in, then echoes again.
    let mut back = [0u8; MSG];
    a.read_exact(&mut back).expect("the held handler's answer");
    assert_eq!(back[1], b'I', "the handler ran on the netpoll thread");
    let held = srv.held.lock().unwrap().expect("held");
    wait_until("the inline poll is counted", || {
        metrics.netpoll_inline_polls() > polls_before
    });
    for n in 1..=100 {
        echo(&mut a, n);
        echo(&mut b, ROUND_TRIPS + n);
    }
    // One more inline poll, through the netpoll thread given back.
    let mut again = 0;
    let before = metrics.netpoll_inline_polls();
    while metrics.netpoll_inline_polls() == before {
        again += 1;
        assert!(again <= TRIES, "no inline poll after the stand-in");
        thread::sleep(SETTLE);
        echo(&mut a, again);
    }

    // Every task ends.
    drop((a, b));
    server_ends(&rt, server);
    wait_until("no task left", || metrics.num_alive_tasks() == 0);
    let threads_after = threads::wait_exactly(name, steady).threads;
    // The metrics hold the runtime's shared state (its descriptors) too.
    drop(metrics);
    drop(rt);
    threads::wait_gone(name);
    let fds_after = proc::fd_count();
    dog.disarm();

    let s = Stats::new(lat);
    println!(
        "{name}: netpoll thread held for {held:?} (inline at try {tries}, again after \
         {again} more); {ROUND_TRIPS} echoes \
         beside it: {}; {TIMERS} timers at most {worst_timer:?} late; {stand_ins} stand-in(s); \
         threads {steady} -> {threads_after}; fds {fds_before} -> {fds_after}",
        s.summary()
    );
    assert!(
        still_held,
        "the netpoll thread was let go before the echoes and timers were done"
    );
    assert!(held < STUCK_AT_MOST, "the held task was never released");
    assert!(stand_ins >= 1, "the watchdog stood in for the held thread");
    assert!(s.max() < bounds.max, "an echo took {:?}", s.max());
    assert!(s.pct(99.0) < bounds.p99, "p99 {:?}", s.pct(99.0));
    assert!(
        worst_timer < bounds.timer,
        "a 10 ms timer fired {worst_timer:?} late"
    );
    assert_eq!(fds_after, fds_before, "descriptors left open");
}

/// Echoes at the short pause before each try (see
/// [`netpoll_thread_stuck`]): more than the streak of short sleeps after
/// which the netpoll thread arms the timer ahead (8).
const PACED: usize = 12;
/// The short pause: longer than a ping-pong's sleeps (1 ms), shorter than
/// half the watchdog's limit (5 ms).
const SPARSE: Duration = Duration::from_millis(2);

#[test]
fn a_task_blocking_the_netpoll_thread_is_stood_in_for() {
    netpoll_thread_stuck("inlstuck", Bounds::LOOSE, SETTLE);
}

#[test]
fn a_task_blocking_the_netpoll_thread_after_sparse_requests_is_stood_in_for() {
    netpoll_thread_stuck("inlsparse", Bounds::LOOSE, SPARSE);
}

#[test]
#[ignore = "latency bounds for a quiet machine: run alone with --ignored"]
fn a_task_blocking_the_netpoll_thread_is_stood_in_for_tight() {
    netpoll_thread_stuck("inltight", TIGHT, SETTLE);
}

#[test]
#[ignore = "latency bounds for a quiet machine: run alone with --ignored"]
fn a_task_blocking_the_netpoll_thread_after_sparse_requests_is_stood_in_for_tight() {
    netpoll_thread_stuck("inlsptight", TIGHT, SPARSE);
}

/// Echo round trips one at a time, each after a pause (the workers park),
/// until `enough` says so or `most` were made; returns how many.
fn echoes_with_pauses(s: &mut StdStream, most: usize, mut enough: impl FnMut() -> bool) -> usize {
    for n in 1..=most {
        thread::sleep(SETTLE);
        echo(s, n);
        if enough() {
            return n;
        }
    }
    most
}

/// With `netpoll_inline(false)`, echoes at an idle runtime never run on
/// the netpoll thread, and the metrics count no inline poll.
#[test]
fn inline_off_never_polls_on_the_netpoll_thread() {
    let _serial = support::rt::serial();
    let name = "inloff";
    let dog = Watchdog::start(name, Duration::from_secs(60));
    let rt = runtime(name, false);
    let (srv, _probes) = Server::new(name);
    let (addr, server) = serve(&rt, &srv, 1);
    let mut c = connect(addr);
    echoes_with_pauses(&mut c, 30, || false);
    drop(c);
    server_ends(&rt, server);
    let polls = rt.handle().metrics().netpoll_inline_polls();
    let stand_ins = rt.handle().metrics().netpoll_stand_ins();
    drop(rt);
    dog.disarm();
    assert_eq!(
        srv.on_netpoll.load(Ordering::SeqCst),
        0,
        "read on the netpoll thread"
    );
    assert_eq!(polls, 0, "inline polls counted");
    assert_eq!(stand_ins, 0, "stand-ins counted");
}

/// With it on, echoes at an idle runtime are read on the netpoll thread,
/// and counted.
#[test]
fn echoes_at_an_idle_runtime_are_polled_inline() {
    let _serial = support::rt::serial();
    let name = "inlon";
    let dog = Watchdog::start(name, Duration::from_secs(60));
    let rt = runtime(name, true);
    let metrics = rt.handle().metrics();
    let (srv, _probes) = Server::new(name);
    let (addr, server) = serve(&rt, &srv, 1);
    let mut c = connect(addr);
    let made = echoes_with_pauses(&mut c, TRIES, || srv.on_netpoll.load(Ordering::SeqCst) > 0);
    drop(c);
    server_ends(&rt, server);
    let read_inline = srv.on_netpoll.load(Ordering::SeqCst);
    // Each message read on the netpoll thread was read in an inline poll
    // (one poll may read more than one).
    wait_until("the inline polls are counted", || {
        read_inline == 0 || metrics.netpoll_inline_polls() >= 1
    });
    // No stand-in is asserted against: a netpoll thread preempted for
    // 10 ms inside a poll (a busy machine) is stood in for too.
    let stand_ins = metrics.netpoll_stand_ins();
    drop(rt);
    dog.disarm();
    println!(
        "{name}: {read_inline} of {made} echoes read on the netpoll thread; \
         {stand_ins} stand-in(s)"
    );
    assert!(
        read_inline > 0,
        "{made} echoes at an idle runtime, none read on the netpoll thread"
    );
}

/// Round trips in one burst of
/// [`a_ping_pong_inside_an_idle_runtime_takes_few_turns`].
const BURST: usize = 200;

/// A ping-pong between two tasks of an idle runtime, a client and the
/// server's handler, started by a timer (the workers park meanwhile):
/// each message makes the next one ready. The netpoll thread runs the
/// burst itself, and its inline run goes on with looks at epoll of its
/// own, so that the burst's 400 messages take far fewer wake-ups of the
/// thread than round trips. Every echo is compared.
#[test]
fn a_ping_pong_inside_an_idle_runtime_takes_few_turns() {
    let _serial = support::rt::serial();
    let name = "inlpong";
    let dog = Watchdog::start(name, Duration::from_secs(120));
    let rt = runtime(name, true);
    let metrics = rt.handle().metrics();
    let (srv, _probes) = Server::new(name);
    let (addr, server) = serve(&rt, &srv, 1);
    let mut client = Some(
        rt.block_on(async move {
            let c = TcpStream::connect(addr).await?;
            c.set_nodelay(true)?;
            io::Result::Ok(c)
        })
        .expect("connect"),
    );
    let mut tries = 0;
    let turns = loop {
        tries += 1;
        assert!(tries <= TRIES, "no burst ran on the netpoll thread alone");
        let wakeups = metrics.netpoll_wakeups();
        let server_before = srv.on_netpoll.load(Ordering::SeqCst);
        let c = client.take().expect("the client is back");
        let burst = rt.spawn(async move {
            time::sleep(SETTLE).await;
            let mut inline = 0;
            for n in 0..BURST {
                let msg = message(ECHO, n);
                c.write_all(&msg).await?;
                let mut back = [0u8; MSG];
                c.read_exact(&mut back).await?;
                assert_eq!(back, msg, "echo {n} differs");
                if on_netpoll_thread(name) {
                    inline += 1;
                }
            }
            io::Result::Ok((c, inline))
        });
        let (c, client_inline) = rt
            .block_on(time::timeout(LIMIT, burst))
            .expect("the burst ended")
            .expect("burst task")
            .expect("burst");
        client = Some(c);
        let turns = metrics.netpoll_wakeups() - wakeups;
        let server_inline = srv.on_netpoll.load(Ordering::SeqCst) - server_before;
        if client_inline == BURST && server_inline == BURST {
            break turns;
        }
    };
    drop(client);
    server_ends(&rt, server);
    wait_until("no task left", || metrics.num_alive_tasks() == 0);
    drop(metrics);
    drop(rt);
    dog.disarm();
    println!("{name}: {BURST} round trips on the netpoll thread in {turns} wake-ups of it, at try {tries}");
    // One wake-up per message would be 2 * BURST.
    assert!(
        turns < BURST as u64 / 2,
        "{BURST} round trips took {turns} wake-ups of the netpoll thread"
    );
}

/// A task that sleeps (the workers park meanwhile) and, in the poll its
/// timer wakes, runs `body`, told whether that poll runs on the netpoll
/// thread; returns that too.
fn after_a_timer<T: Send + 'static>(
    rt: &Runtime,
    name: &'static str,
    body: impl FnOnce(bool) -> T + Send + 'static,
) -> JoinHandle<(bool, T)> {
    rt.spawn(async move {
        time::sleep(SETTLE).await;
        let inline = on_netpoll_thread(name);
        (inline, body(inline))
    })
}

/// A task polled on the netpoll thread panics: its `JoinHandle` gives a
/// panic `JoinError`, and the runtime goes on serving I/O and timers, and
/// polling tasks on the netpoll thread.
#[test]
fn a_panic_in_an_inline_poll_is_the_tasks_join_error() {
    let _serial = support::rt::serial();
    support::rt::quiet_panics();
    let name = "inlpanic";
    let dog = Watchdog::start(name, Duration::from_secs(120));
    let rt = runtime(name, true);
    let metrics = rt.handle().metrics();
    let (srv, _probes) = Server::new(name);
    let (addr, server) = serve(&rt, &srv, 1);
    let mut c = connect(addr);
    echo(&mut c, 0);

    let mut tries = 0;
    let err = loop {
        tries += 1;
        assert!(tries <= TRIES, "no timer task polled on the netpoll thread");
        let task = after_a_timer(&rt, name, |inline| {
            if inline {
                panic!("deliberate panic on the netpoll thread");
            }
        });
        match rt.block_on(time::timeout(LIMIT, task)).expect("task ended") {
            Ok((inline, ())) => assert!(!inline),
            Err(e) => break e,
        }
    };
    assert!(err.is_panic(), "{err}");
    let msg = err.into_panic();
    assert_eq!(
        msg.downcast_ref::<&str>(),
        Some(&"deliberate panic on the netpoll thread")
    );

    // I/O and timers go on.
    for n in 1..=20 {
        echo(&mut c, n);
    }
    let slept = rt.block_on(async {
        let t = Instant::now();
        time::sleep(Duration::from_millis(10)).await;
        t.elapsed()
    });
    assert!(slept >= Duration::from_millis(10));
    // And so do inline polls: the thread survived the panic.
    let polls = metrics.netpoll_inline_polls();
    let mut again = 0;
    loop {
        again += 1;
        assert!(again <= TRIES, "no inline poll after the panic");
        let task = after_a_timer(&rt, name, |_| ());
        let (inline, ()) = rt
            .block_on(time::timeout(LIMIT, task))
            .expect("task ended")
            .expect("task");
        if inline {
            break;
        }
    }
    wait_until("the inline polls are counted", || {
        metrics.netpoll_inline_polls() > polls
    });
    echo(&mut c, 21);
    drop(c);
    server_ends(&rt, server);
    drop(rt);
    dog.disarm();
    println!("{name}: panicked on the netpoll thread at try {tries}, inline again at try {again}");
}

/// A task polled on the netpoll thread spawns tasks and then wakes a task
/// waiting for its message: they all run and complete. The task woken
/// last (the slot's LIFO task) runs next on the netpoll thread, as on a
/// worker, unless the watchdog stood in meanwhile (a busy machine) and
/// handed it to the workers; the spawned tasks, queued behind it, run on
/// the workers.
#[test]
fn tasks_spawned_and_woken_by_an_inline_poll_run() {
    const SPAWNS: usize = 8;
    let _serial = support::rt::serial();
    let name = "inlspawn";
    let dog = Watchdog::start(name, Duration::from_secs(120));
    let rt = runtime(name, true);
    let metrics = rt.handle().metrics();
    let on_worker = |t: &str| t.starts_with(&format!("{name}-worker-"));
    let mut tries = 0;
    let waiter_ran_on = loop {
        tries += 1;
        assert!(tries <= TRIES, "no timer task polled on the netpoll thread");
        let stand_ins = metrics.netpoll_stand_ins();
        let (tx, rx) = oneshot::channel::<usize>();
        let waiter = rt.spawn(async move {
            let got = rx.await.expect("message");
            (got, thread_name())
        });
        let task = after_a_timer(&rt, name, move |_| {
            let spawned: Vec<_> = (0..SPAWNS)
                .map(|i| runtime::spawn(async move { (i, thread_name()) }))
                .collect();
            tx.send(tries).expect("the waiter waits");
            spawned
        });
        let (inline, spawned) = rt
            .block_on(time::timeout(LIMIT, task))
            .expect("task ended")
            .expect("task");
        let (got, waiter_ran_on) = rt
            .block_on(time::timeout(LIMIT, waiter))
            .expect("the waiter ran")
            .expect("waiter");
        assert_eq!(got, tries);
        let mut ran = Vec::new();
        for h in spawned {
            ran.push(
                rt.block_on(time::timeout(LIMIT, h))
                    .expect("a spawned task ran")
                    .expect("spawned task"),
            );
        }
        assert_eq!(
            ran.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            (0..SPAWNS).collect::<Vec<_>>()
        );
        if !inline {
            continue;
        }
        for (i, t) in &ran {
            assert!(on_worker(t), "spawned task {i} ran on {t}");
        }
        if metrics.netpoll_stand_ins() == stand_ins {
            assert!(
                on_netpoll_thread_name(name, &waiter_ran_on),
                "the woken task ran on {waiter_ran_on}, not next on the netpoll thread"
            );
        } else {
            assert!(
                on_worker(&waiter_ran_on) || on_netpoll_thread_name(name, &waiter_ran_on),
                "the woken task ran on {waiter_ran_on}"
            );
        }
        break waiter_ran_on;
    };
    wait_until("no task left", || metrics.num_alive_tasks() == 0);
    assert!(metrics.netpoll_inline_polls() >= 1);
    drop(metrics);
    drop(rt);
    dog.disarm();
    println!("{name}: inline at try {tries}; the woken task ran on {waiter_ran_on}");
}

/// The threads of this process whose names (as the kernel keeps them:
/// the first 15 bytes) start with `prefix`'s first 15 bytes.
fn tids(prefix: &str) -> Vec<libc::pid_t> {
    let want = &prefix[..prefix.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.starts_with(want))
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The one thread named `name` (see [`tids`]).
fn tid_named(name: &str) -> libc::pid_t {
    match tids(name)[..] {
        [tid] => tid,
        ref other => panic!("threads named {name:?}: {other:?}"),
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid set for sched_getaffinity
    // to fill; CPU_ISSET reads inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let ok = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        assert_eq!(ok, 0, "sched_getaffinity: {}", io::Error::last_os_error());
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Puts thread `tid` (0: the calling thread) on CPU `cpu` alone.
fn pin(tid: libc::pid_t, cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET writes
    // inside it, and sched_setaffinity only reads it.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(ok, 0, "sched_setaffinity: {}", io::Error::last_os_error());
}

/// Runtimes dropped in [`a_drop_during_an_inline_poll_returns`].
const DROPS: usize = 50;

/// The runtime is dropped while the netpoll thread polls a task inline,
/// and that poll returns after the shutdown began: every drop returns.
/// The watchdog sleeps on its timer, which the shutdown fires so that it
/// looks and exits; the end of the inline poll disarms the same timer,
/// and a disarm that lands between the firing and the watchdog's read
/// takes the expiry away (`timerfd_settime` resets it), leaving the
/// watchdog asleep and the drop waiting for it. To open that window as a
/// busy machine may: the netpoll thread, the workers and the watchdog
/// share one CPU, the watchdog at `SCHED_IDLE` (it runs only once none
/// of the others wants the CPU), the task spins until the shutdown fails
/// its socket (then 100 µs more), and the drop runs on another CPU the
/// moment the task asks for it. A drop still waiting after 10 s is a
/// hang.
#[test]
fn a_drop_during_an_inline_poll_returns() {
    let _serial = support::rt::serial();
    let cpus = allowed_cpus();
    if cpus.len() < 2 {
        println!("one CPU: the drop cannot run beside the inline poll");
        return;
    }
    let (shared_cpu, drop_cpu) = (cpus[0], cpus[1]);
    let name = "inldrop";
    let mut during = 0;
    for n in 0..DROPS {
        let rt = runtime(name, true);
        threads::wait_for(name, 4);
        pin(tid_named(&format!("{name}-netpoll")), shared_cpu);
        for worker in tids(&format!("{name}-worker-")) {
            pin(worker, shared_cpu);
        }
        let watchdog = tid_named(&format!("{name}-watchdog"));
        pin(watchdog, shared_cpu);
        // SAFETY: a live sched_param, only read.
        let ok = unsafe {
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(watchdog, libc::SCHED_IDLE, &param)
        };
        assert_eq!(ok, 0, "sched_setscheduler: {}", io::Error::last_os_error());
        let (client, server) = rt.block_on(support::net::pair()).expect("pair");
        let go = Arc::new(AtomicBool::new(false));
        let (ran_tx, ran_rx) = mpsc::channel();
        let task = {
            let go = go.clone();
            rt.spawn(async move {
                time::sleep(Duration::from_millis(2)).await;
                let inline = on_netpoll_thread(name);
                go.store(true, Ordering::SeqCst);
                let mut saw_shutdown = false;
                if inline {
                    // In this poll, on the netpoll thread: spin until the
                    // drop fails the socket (at most 5 ms, within the
                    // watchdog's limit), then a little more.
                    let start = Instant::now();
                    let mut cx = Context::from_waker(Waker::noop());
                    let mut buf = [0u8; 1];
                    while start.elapsed() < Duration::from_millis(5) {
                        if server.poll_read(&mut cx, &mut buf).is_ready() {
                            saw_shutdown = true;
                            let failed = Instant::now();
                            while failed.elapsed() < Duration::from_micros(100) {
                                std::hint::spin_loop();
                            }
                            break;
                        }
                    }
                }
                let _ = ran_tx.send((inline, saw_shutdown));
                drop(client);
            })
        };
        drop(task);
        let (dropped_tx, dropped_rx) = mpsc::channel();
        thread::spawn(move || {
            pin(0, drop_cpu);
            let start = Instant::now();
            while !go.load(Ordering::SeqCst) && start.elapsed() < LIMIT {
                std::hint::spin_loop();
            }
            drop(rt);
            let _ = dropped_tx.send(());
        });
        let dropped = dropped_rx.recv_timeout(Duration::from_secs(10));
        let (inline, saw_shutdown) = ran_rx.try_recv().unwrap_or((false, false));
        if inline && saw_shutdown {
            during += 1;
        }
        if dropped.is_err() {
            panic!(
                "drop {n} of a runtime still waits after 10 s (its netpoll thread \
                 polled a task inline: {inline}, which returned after the shutdown \
                 began: {saw_shutdown}); threads left: {:?}",
                threads::usage(name).names
            );
        }
    }
    threads::wait_gone(name);
    println!("{name}: {during} of {DROPS} drops during an inline poll");
    assert!(
        during > 0,
        "none of {DROPS} drops came during an inline poll"
    );
}
