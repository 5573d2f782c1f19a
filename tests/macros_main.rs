//! `#[gopark::test]` and `#[gopark::main]` as users write them: the body
//! really runs on a gopark runtime built with the arguments given, results
//! and `?` work, and the runtime is gone when the function returns.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, Handle};

/// The worker count of a runtime built with the defaults.
fn default_workers() -> usize {
    std::env::var("GOPARK_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[gopark::test]
async fn a_test_runs_on_a_default_runtime() {
    assert_eq!(Handle::current().num_workers(), default_workers());
    // The body runs in block_on on the test's own thread; spawned tasks run
    // on the runtime's workers.
    let name = runtime::spawn(async { std::thread::current().name().map(String::from) })
        .await
        .expect("task");
    let name = name.expect("worker threads are named");
    assert!(name.starts_with("gopark-worker-"), "{name}");
}

#[gopark::test(worker_threads = 3)]
async fn worker_threads_sets_the_worker_count() {
    assert_eq!(Handle::current().num_workers(), 3);
    let handles: Vec<_> = (0..100u64)
        .map(|i| runtime::spawn(async move { i * 2 }))
        .collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.expect("task");
    }
    assert_eq!(sum, 9900);
}

#[gopark::test(worker_threads = 2)]
async fn a_tcp_round_trip_inside_a_test() -> io::Result<()> {
    assert_eq!(Handle::current().num_workers(), 2);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = runtime::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await?;
        stream.write_all(&buf).await
    });
    let client = TcpStream::connect(addr).await?;
    client.write_all(b"hello").await?;
    let mut reply = [0u8; 5];
    client.read_exact(&mut reply).await?;
    assert_eq!(&reply, b"hello");
    server.await.expect("server task")
}

#[gopark::test]
async fn question_mark_converts_into_the_declared_error() -> Result<(), Box<dyn std::error::Error>>
{
    // Two different error types, both converted by `?`.
    let n: u32 = "42".parse()?;
    runtime::time::sleep(Duration::from_millis(1)).await;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    assert_eq!(n, 42);
    assert!(listener.local_addr()?.port() > 0);
    Ok(())
}

#[gopark::test]
#[should_panic(expected = "boom")]
async fn other_attributes_are_kept() {
    runtime::yield_now().await;
    panic!("boom");
}

mod renamed {
    use ::gopark as my_gopark;

    #[my_gopark::test(crate = "my_gopark", worker_threads = 1)]
    async fn crate_argument_names_a_renamed_crate() {
        assert_eq!(my_gopark::runtime::Handle::current().num_workers(), 1);
    }
}

/// A stand-in for the gopark crate at another path, whose `Builder` counts
/// the runtimes it builds: proof that `crate = "..."` is the path used.
mod wrapped {
    pub mod runtime {
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub static BUILT: AtomicUsize = AtomicUsize::new(0);

        pub struct Builder(gopark::runtime::Builder);

        impl Builder {
            pub fn new() -> Builder {
                Builder(gopark::runtime::Builder::new())
            }

            pub fn worker_threads(&mut self, n: usize) -> &mut Builder {
                self.0.worker_threads(n);
                self
            }

            pub fn build(&self) -> std::io::Result<gopark::runtime::Runtime> {
                BUILT.fetch_add(1, Ordering::SeqCst);
                self.0.build()
            }
        }
    }
}

#[gopark::test(crate = "crate::wrapped", worker_threads = 2)]
async fn crate_argument_is_the_path_the_expansion_uses() {
    assert!(wrapped::runtime::BUILT.load(Ordering::SeqCst) >= 1);
    assert_eq!(Handle::current().num_workers(), 2);
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `#[gopark::main]` on a function that is not `main`: it spawns a task
/// that never finishes, and returns the runtime's handle.
#[gopark::main(worker_threads = 2)]
async fn leaves_a_task_behind(dropped: Arc<AtomicBool>) -> Handle {
    let guard = DropFlag(dropped);
    runtime::spawn(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    });
    runtime::yield_now().await;
    Handle::current()
}

#[test]
fn the_runtime_is_dropped_when_the_function_returns() {
    let dropped = Arc::new(AtomicBool::new(false));
    let handle = leaves_a_task_behind(dropped.clone());
    assert_eq!(handle.num_workers(), 2);
    // Runtime::drop cancels every task (dropping its future) and joins the
    // threads before returning.
    assert!(
        dropped.load(Ordering::SeqCst),
        "the task left behind was cancelled"
    );
    assert_eq!(handle.num_alive_tasks(), 0);
    // A task spawned through the stale handle is cancelled at once.
    let late = handle.spawn(async { 1 });
    let res = runtime::block_on(late);
    assert!(res.expect_err("runtime is gone").is_cancelled());
}

#[gopark::main(worker_threads = 1)]
async fn compute() -> u64 {
    let a = runtime::spawn(async { 40 });
    let b = runtime::spawn(async { 2 });
    a.await.expect("a") + b.await.expect("b")
}

#[test]
fn main_returns_the_body_s_value() {
    assert_eq!(compute(), 42);
}

#[gopark::main]
async fn fallible(input: &'static str) -> Result<u32, Box<dyn std::error::Error>> {
    runtime::yield_now().await;
    Ok(input.parse::<u32>()? + 1)
}

#[test]
fn main_returns_results_and_errors() {
    assert_eq!(fallible("41").expect("a number"), 42);
    let err = fallible("forty-one").expect_err("not a number");
    assert!(err.is::<std::num::ParseIntError>(), "{err}");
}
