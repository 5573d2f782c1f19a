//! The runtime layer: [`Builder`], [`Runtime`], [`Handle`], the default
//! runtime behind the free functions ([`block_on`], [`spawn`],
//! [`spawn_blocking`]), and which runtime a thread is in.
//!
//! It builds the parts below it — a scheduler, a netpoller with its
//! timers, a blocking pool — starts their threads, and enters each thread
//! into the runtime's context. Nothing below reaches back up: a `Sleep`
//! finds its timers through the timers' own thread-local, a worker knows
//! itself through the scheduler's, and [`PollDesc::new`](crate::PollDesc::new)
//! is defined here, where the current runtime is known.

mod block_on;
mod builder;
mod context;
mod default;
mod dump;
mod handle;
mod metrics;
mod poll_desc;
mod runtime;
mod spawn;
mod trace;

pub use block_on::block_on;
pub use builder::Builder;
pub use dump::{Dump, TaskDump, TaskId, TaskState};
pub use handle::{Handle, TryCurrentError};
pub use metrics::{MetricsSnapshot, RuntimeMetrics, WorkerSnapshot};
pub use runtime::{EnterGuard, Runtime};
pub use spawn::{spawn, spawn_blocking, yield_now};
