//! `#[gopark::main]` and `#[gopark::test]`: run an `async fn` on a gopark
//! runtime, the way `#[tokio::main]` and `#[tokio::test]` do on tokio's.
//!
//! Use them through the `gopark` crate, which re-exports both. Each builds
//! a runtime with `gopark::runtime::Builder` (every setting at its default
//! unless an argument says otherwise), runs the function's body on it with
//! `block_on`, and shuts the runtime down when the body returns, with
//! `Runtime::shutdown_timeout(1 s)`: any task still running is cancelled
//! and the threads exit, and a task stuck in a blocking call (or a
//! blocking-pool job) holds the exit up for one second at most — the
//! process ends soon after `main` does, as a Go program's does.
//!
//! Arguments, all optional, as `key = value` pairs:
//!
//! | argument | meaning |
//! |---|---|
//! | `worker_threads = N` | `Builder::worker_threads(N)`; `N` ≥ 1. Default: one per core, or `GOPARK_WORKERS`. |
//! | `start_paused = true` | `Builder::start_paused(true)`: the runtime's clock stands still and jumps to the next timer whenever every task is blocked (virtual time, for tests). Default: `false`. |
//! | `crate = "path"` | where the `gopark` crate is, if it was renamed in `Cargo.toml`. Default: `::gopark`. |
//!
//! Mistakes are compile errors that point at the mistake: a function
//! without `async`, an unknown argument (the error lists the accepted
//! ones), a bad value, parameters on the function.
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod entry;

/// Runs `async fn main` on a gopark runtime.
///
/// ```no_run
/// use gopark::net::TcpListener;
///
/// #[gopark::main]
/// async fn main() -> std::io::Result<()> {
///     let listener = TcpListener::bind("127.0.0.1:7000")?;
///     loop {
///         let (stream, _peer) = listener.accept().await?;
///         gopark::runtime::spawn(async move {
///             let mut buf = [0u8; 4096];
///             loop {
///                 let n = stream.read(&mut buf).await?;
///                 if n == 0 {
///                     return Ok::<_, std::io::Error>(());
///                 }
///                 stream.write_all(&buf[..n]).await?;
///             }
///         });
///     }
/// }
/// ```
///
/// With arguments (see the [crate docs](crate) for the list):
///
/// ```
/// #[gopark::main(worker_threads = 2)]
/// async fn main() {
///     let handle = gopark::runtime::Handle::current();
///     assert_eq!(handle.num_workers(), 2);
///     let answer = gopark::runtime::spawn(async { 6 * 7 }).await.unwrap();
///     assert_eq!(answer, 42);
/// }
/// ```
///
/// The function may return anything `main` may return, such as a
/// `Result`; it becomes an ordinary `fn main` whose body builds the
/// runtime and blocks on the original body.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test on a gopark runtime of its own.
///
/// It adds `#[test]`, so write it instead of `#[test]`, not beside it. Each
/// test gets a new runtime, dropped when the test returns: its tasks are
/// cancelled and its threads joined, so nothing carries over to the next
/// test.
///
/// ```
/// #[gopark::test(worker_threads = 2)]
/// async fn spawned_tasks_run() {
///     let handle = gopark::runtime::Handle::current();
///     assert_eq!(handle.num_workers(), 2);
///     assert_eq!(gopark::runtime::spawn(async { 1 + 1 }).await.unwrap(), 2);
/// }
/// # fn main() {}
/// ```
///
/// A test may return a `Result`, as `#[test]` functions may.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Test, args.into(), item.into()).into()
}
