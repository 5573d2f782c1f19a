//! The owned halves of a [`TcpStream`].

use std::net::SocketAddr;

use super::TcpStream;

crate::split::owned_halves!(TcpStream, SocketAddr);
