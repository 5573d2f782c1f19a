//! The default runtime behind the free functions: created on first use,
//! never shut down; and the netpoller or timers of whichever runtime the
//! calling thread is in.

use std::sync::{Arc, OnceLock};

use super::{context, Builder, Handle, Runtime};
use crate::netpoll::Netpoller;
use crate::time::driver::TimeDriver;

static DEFAULT: OnceLock<Runtime> = OnceLock::new();

/// The default runtime, created on first use and never shut down.
pub(crate) fn default_handle() -> &'static Handle {
    DEFAULT
        .get_or_init(|| {
            Builder::new()
                .build()
                .unwrap_or_else(|e| panic!("failed to start the default gopark runtime: {e}"))
        })
        .handle()
}

/// The netpoller of the current runtime, or of the default runtime.
pub(super) fn current_netpoller() -> Arc<Netpoller> {
    context::with_current(|h| match h {
        Some(h) => h.shared.io.clone(),
        None => default_handle().shared.io.clone(),
    })
}

/// The default runtime's timers, for a timer polled off every runtime.
pub(super) fn default_time_driver() -> Arc<TimeDriver> {
    default_handle().shared.io.time.clone()
}
