//! gopark's runtime: a work-stealing scheduler and a Go-style netpoller.
//!
//! Users write one plain, sequential-looking `async` handler per connection.
//! Underneath:
//!
//! * **Tasks** ([`spawn`], [`JoinHandle`]) are single allocations whose
//!   transitions an atomic state word decides (see the `task` module).
//! * **Workers** (one per core, or `GOPARK_WORKERS`) run tasks from local
//!   queues, a LIFO slot and a global injector, steal from each other when
//!   idle, and park when there is nothing to do.
//! * **One netpoll thread** per runtime owns its epoll instance. Every
//!   descriptor is non-blocking and registered once, edge-triggered, through
//!   a [`PollDesc`]; an operation that gets `EAGAIN` parks its task there,
//!   and the netpoll thread hands every task that became ready (and every
//!   expired [timer](time)) back to the scheduler in one batch.
//!
//! ```
//! use std::time::Duration;
//!
//! let total = gopark_runtime::block_on(async {
//!     let mut handles = Vec::new();
//!     for i in 0..10u64 {
//!         handles.push(gopark_runtime::spawn(async move {
//!             gopark_runtime::time::sleep(Duration::from_millis(i)).await;
//!             i
//!         }));
//!     }
//!     let mut total = 0;
//!     for h in handles {
//!         total += h.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 45);
//! ```
#![warn(missing_docs, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

// Layers, top to bottom; each module imports only from the ones below it.
mod blocking;
mod coop;
mod loom;
mod netpoll;
mod rt;
mod scheduler;
mod task;
pub mod time;

pub use netpoll::{Direction, PollDesc, ReadyEvent};
pub use rt::{block_on, spawn, spawn_blocking, yield_now, Builder, Handle, Runtime};
pub use task::{JoinError, JoinHandle};
