//! Allocation discipline: after warm-up, a read or write on a ready socket
//! and a park/wake round trip allocate nothing in the runtime.
//!
//! A counting global allocator counts every allocation in the process;
//! the test drives a ping-pong over one loopback connection (each message
//! is a write, a read that parks its task, a netpoll edge and a wake-up)
//! and checks the count per message.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gopark::net::{TcpListener, TcpStream};
use gopark::runtime;
use support::rt::{runtime, Watchdog};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARMUP: usize = 2_000;
const MESSAGES: usize = 20_000;
/// Round trips counted at once (see `ping_pong_allocs`).
const CHUNK: usize = 500;

/// Allocations per round trip allowed after warm-up. One allocation in
/// the per-message path (a read, a write, a park, a wake-up) shows as 1.0
/// or more, and one in every hundred messages as 0.01. Below that are
/// one-off events that a busy machine makes likelier: a queue that grows
/// once, a worker replaced by the monitor while its thread waited for a
/// CPU.
const MAX_PER_MESSAGE: f64 = 0.01;

fn ping_pong_allocs(workers: usize) -> f64 {
    let rt = runtime(workers, "alloc");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = runtime::spawn(async move {
            let (s, _) = listener.accept().await?;
            let mut buf = [0u8; 64];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(());
                }
                s.write_all(&buf[..n]).await?;
            }
        });
        let client = runtime::spawn(async move {
            let c = TcpStream::connect(addr).await?;
            let mut buf = [0u8; 64];
            let msg = [7u8; 64];
            for _ in 0..WARMUP {
                c.write_all(&msg).await?;
                c.read_exact(&mut buf).await?;
            }
            // Counted in chunks; a chunk in which the monitor handed a
            // worker off (its thread preempted mid-poll for over 10 ms on a
            // busy machine), or the chunk after it, does not count: a
            // hand-off starts a thread and gives the old one a new queue,
            // allocations of a one-off event, not of the message path.
            let metrics = runtime::Handle::current().metrics();
            let (mut counted, mut allocs, mut chunks) = (0, 0, 0);
            let mut handoffs = metrics.blocked_worker_handoffs();
            let mut skip_next = false;
            while counted < MESSAGES {
                chunks += 1;
                assert!(
                    chunks <= 20 * MESSAGES / CHUNK,
                    "hand-offs in most chunks: {counted} messages counted"
                );
                let before = ALLOCS.load(Ordering::SeqCst);
                for _ in 0..CHUNK {
                    c.write_all(&msg).await?;
                    c.read_exact(&mut buf).await?;
                }
                let after = ALLOCS.load(Ordering::SeqCst);
                let now = metrics.blocked_worker_handoffs();
                let handed_off = std::mem::replace(&mut handoffs, now) != now;
                if !handed_off && !std::mem::take(&mut skip_next) {
                    counted += CHUNK;
                    allocs += after - before;
                }
                skip_next |= handed_off;
            }
            assert_eq!(buf, msg);
            println!(
                "{counted} round trips counted, {} beside a hand-off not",
                chunks * CHUNK - counted
            );
            Ok::<_, std::io::Error>(allocs as f64 / counted as f64)
        });
        let per_msg = client.await.unwrap().unwrap();
        server.await.unwrap().unwrap();
        per_msg
    })
}

/// The peer is a blocking `std` client on its own thread, so every wake-up
/// of the server task comes from the netpoll thread through the injector.
fn external_peer_allocs(workers: usize) -> f64 {
    use std::io::{Read, Write};
    let rt = runtime(workers, "alloc");
    let listener = rt
        .block_on(async { TcpListener::bind("127.0.0.1:0") })
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = rt.spawn(async move {
        let (s, _) = listener.accept().await?;
        let mut buf = [0u8; 64];
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            s.write_all(&buf[..n]).await?;
        }
    });
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let mut buf = [0u8; 64];
    let msg = [9u8; 64];
    for _ in 0..WARMUP {
        c.write_all(&msg).unwrap();
        c.read_exact(&mut buf).unwrap();
    }
    let before = ALLOCS.load(Ordering::SeqCst);
    for _ in 0..MESSAGES / 4 {
        c.write_all(&msg).unwrap();
        c.read_exact(&mut buf).unwrap();
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(buf, msg);
    drop(c);
    rt.block_on(server).unwrap().unwrap();
    (after - before) as f64 / (MESSAGES / 4) as f64
}

/// One test, so nothing else in this process allocates while it counts.
#[test]
fn no_allocations_per_message_after_warm_up() {
    let dog = Watchdog::start("allocation counts", Duration::from_secs(120));
    ping_pong_allocates_nothing_per_message();
    wakeups_from_the_netpoll_thread_allocate_nothing();
    dog.disarm();
}

fn wakeups_from_the_netpoll_thread_allocate_nothing() {
    for workers in [1, 2] {
        let per_msg = external_peer_allocs(workers);
        println!("{workers} worker(s), external peer: {per_msg:.4} allocations per round trip");
        assert!(
            per_msg < MAX_PER_MESSAGE,
            "{workers} worker(s): {per_msg} allocations per round trip"
        );
    }
}

fn ping_pong_allocates_nothing_per_message() {
    for workers in [1, 2] {
        let per_msg = ping_pong_allocs(workers);
        println!("{workers} worker(s): {per_msg:.4} allocations per round trip");
        // Two reads, a write, two parks and two wake-ups per round trip.
        assert!(
            per_msg < MAX_PER_MESSAGE,
            "{workers} worker(s): {per_msg} allocations per round trip"
        );
    }
}
