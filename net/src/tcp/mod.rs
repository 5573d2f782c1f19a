//! TCP: a listener and a stream.

mod listener;
mod stream;

pub use listener::{ListenOptions, TcpListener};
pub use stream::TcpStream;

pub(crate) use listener::sock_addr as sock_addr_of;
