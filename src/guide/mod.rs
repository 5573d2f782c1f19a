//! Guides: gopark for people who know Go or tokio, and the pieces a
//! service is built from.
//!
//! * [`coming_from_go`]: goroutines, channels, `select`, `sync`, `context`,
//!   `net.Conn` deadlines and `time`, each with its gopark counterpart.
//! * [`coming_from_tokio`]: what changes when a tokio program moves to
//!   gopark, and what stays the same.
//! * [`echo_server`]: a complete TCP server: accept loop, error handling,
//!   graceful exit.
//! * [`deadlines`]: Go's read and write deadlines on gopark's sockets.
//! * [`poll_desc`]: making your own descriptor async (an eventfd, a
//!   timerfd, a pipe) with [`PollDesc`](crate::runtime::PollDesc).
//! * [`porting`]: porting a real service: TLS, PostgreSQL, gRPC and
//!   files, and the features that keep tokio's reactor out.
//!
//! The pages hold no code of their own; every example on them is a doc
//! test, run by `cargo test --doc -p gopark`. The crates they use beside
//! gopark — `tokio` (its `sync` module only), `async-channel`, `futures`
//! and `tokio-util` — are the runtime-agnostic ones: none of them starts a
//! reactor or a thread, so gopark's netpoller stays the only one. (The
//! porting page also uses `tokio-postgres`, built without its runtime, and
//! shows, on purpose, tokio's timer panicking for want of tokio's
//! reactor.)

#[doc = include_str!("coming_from_go.md")]
pub mod coming_from_go {}

#[doc = include_str!("coming_from_tokio.md")]
pub mod coming_from_tokio {}

#[doc = include_str!("echo_server.md")]
pub mod echo_server {}

#[doc = include_str!("deadlines.md")]
pub mod deadlines {}

#[doc = include_str!("poll_desc.md")]
pub mod poll_desc {}

#[doc = include_str!("porting.md")]
pub mod porting {}
