//! TCP: [`TcpListener`], [`TcpStream`], and the owned halves of a stream
//! split with [`TcpStream::into_split`].

mod listener;
mod split;
mod stream;

pub use listener::{ListenOptions, TcpListener};
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::TcpStream;

pub(crate) use listener::sock_addr as sock_addr_of;
