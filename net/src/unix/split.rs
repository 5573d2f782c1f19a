//! The owned halves of a [`UnixStream`].

use std::os::unix::net::SocketAddr;

use super::UnixStream;

crate::split::owned_halves!(UnixStream, SocketAddr);
