//! The integration tests' one toolkit. Every test file says
//!
//! ```ignore
//! #[macro_use] // only where the file uses `rt_test!`
//! mod support;
//! ```
//!
//! and takes what it needs from the module of its topic:
//!
//! * [`rt`]: runtimes, bounded runs and the [`rt_test!`] macro that runs one
//!   body on a 1-worker and a 4-worker runtime (tokio's `rt_common.rs`
//!   idea); the [`Watchdog`](rt::Watchdog) that aborts a hung process;
//!   [`serial`](rt::serial) for files whose tests measure the whole
//!   process; [`quiet_panics`](rt::quiet_panics) for deliberate panics.
//! * [`future`]: futures that report on themselves —
//!   [`SignalPending`](future::SignalPending) tells the test the moment a
//!   wrapped operation has parked (returned `Pending`, its waker
//!   registered), so a test can stage "wake a parked task" without
//!   sleeping; drop counters and drop hooks; [`poll_once`](future::poll_once).
//! * [`fd`]: plain descriptors (pipes) made async by hand through the
//!   public `PollDesc`, one `read(2)`/`write(2)` at a time.
//! * [`leak`]: every way a connection ends, and the census of descriptors,
//!   registrations and tasks taken before a test and checked after it.
//! * [`net`]: loopback pairs, closed ports, resets, socket buffer sizes,
//!   reading and verifying streams, the echo handler of DESIGN.md.
//! * [`unix`]: Unix socket paths that remove themselves, abstract names.
//! * [`data`]: seeded payloads, byte comparisons that name the first
//!   differing offset instead of printing megabytes, and [`Seen`](data::Seen),
//!   the ledger of numbered messages that arrive exactly once.
//! * [`proc`]: the process as `/proc` and `getrusage` see it: descriptors,
//!   CPU time, resident memory, environment knobs, and the descriptor limit
//!   (running out of descriptors on purpose, for `EMFILE` tests).
//! * [`threads`]: per-thread CPU time and context switches from
//!   `/proc/self/task`, for "an idle runtime costs nothing" checks.
//! * [`stats`]: percentiles of measured durations, and the `FIGURE` lines
//!   that `scripts/reliability.sh` collects.
//! * [`child`]: re-executing the test binary as a child process playing a
//!   role (a process with a low descriptor limit, a client with its own
//!   descriptor table, `SIGPIPE` at its default disposition).
//! * [`example`]: running an example program as a child process and
//!   talking HTTP to it with plain blocking sockets.
//! * `http_client` (feature `hyper`): hyper's client on gopark, one
//!   HTTP/1.1 or HTTP/2 connection.
//!
//! A test binary uses only part of the toolkit; the rest is not dead code
//! of the project, so dead-code warnings are off for this module.
#![allow(dead_code, unused_macros)]

#[macro_use]
pub mod rt;
pub mod child;
pub mod data;
pub mod example;
pub mod fd;
pub mod future;
#[cfg(feature = "hyper")]
pub mod http_client;
pub mod leak;
pub mod net;
pub mod proc;
pub mod stats;
pub mod threads;
pub mod unix;

// The names the runtime suites have always used (`support::run`,
// `support::DropCount`, ...), kept at the top level. Not every test binary
// uses each of them.
#[allow(unused_imports)]
pub use future::{DropCount, DropGuard, OnDrop};
#[allow(unused_imports)]
pub use rt::{guard, on_worker_of, run, runtime, thread_name, Watchdog, LIMIT, WORKERS};
