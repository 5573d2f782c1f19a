//! The constructors of [`PollDesc`] that find the calling thread's runtime.
//! The netpoller defines the type and its mechanism; which runtime a new
//! descriptor joins is this layer's to say.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::netpoll::{sys, PollDesc};

impl PollDesc {
    /// Registers `fd` with the current runtime's netpoller (or the default
    /// runtime's, outside one), switching it to non-blocking mode.
    pub fn new(fd: OwnedFd) -> io::Result<PollDesc> {
        sys::set_nonblocking(fd.as_raw_fd())?;
        PollDesc::new_nonblocking(fd)
    }

    /// Like [`new`](PollDesc::new), for a descriptor created non-blocking
    /// (`SOCK_NONBLOCK`, `O_NONBLOCK`): saves the `fcntl` calls. A blocking
    /// descriptor registered this way blocks its worker thread.
    pub fn new_nonblocking(fd: OwnedFd) -> io::Result<PollDesc> {
        PollDesc::with_netpoller(fd, super::default::current_netpoller())
    }
}
