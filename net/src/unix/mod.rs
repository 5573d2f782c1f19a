//! Unix domain sockets: [`UnixListener`], [`UnixStream`] and
//! [`UnixDatagram`], with the conventions of the TCP types (methods on
//! `&self`, Go's deadlines, `futures_io` traits), plus what only local
//! sockets have: the peer's credentials ([`UnixStream::peer_cred`]) and,
//! on Linux, abstract addresses.
//!
//! Addresses are `std`'s [`SocketAddr`]. Every constructor that takes a
//! path has a twin taking a `SocketAddr` (`bind_addr`, `connect_addr`,
//! `send_to_addr`), as in `std`, for abstract names made with
//! [`SocketAddrExt::from_abstract_name`](std::os::linux::net::SocketAddrExt::from_abstract_name).
//! A path whose first byte is NUL is taken as an abstract name too (as in
//! tokio and mio).
//!
//! Errors about an address name it: connecting to a path where no socket
//! file exists (never created, or removed) fails with `NotFound` and says
//! so; a socket file with no listener behind it gives `ConnectionRefused`;
//! binding over an existing file gives `AddrInUse`.
//!
//! ```
//! use std::os::linux::net::SocketAddrExt;
//! use std::os::unix::net::SocketAddr;
//! use gopark_net::{UnixListener, UnixStream};
//!
//! gopark_runtime::block_on(async {
//!     // An abstract address: no socket file to clean up.
//!     let addr = SocketAddr::from_abstract_name(format!("gopark-mod-{}", std::process::id()))?;
//!     let listener = UnixListener::bind_addr(&addr)?;
//!     let server = gopark_runtime::spawn(async move {
//!         let (stream, _) = listener.accept().await?;
//!         let cred = stream.peer_cred()?;
//!         stream.write_all(&cred.uid().to_le_bytes()).await
//!     });
//!     let client = UnixStream::connect_addr(&addr).await?;
//!     let mut uid = [0u8; 4];
//!     client.read_exact(&mut uid).await?;
//!     assert_eq!(u32::from_le_bytes(uid), client.peer_cred()?.uid());
//!     server.await??;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! .unwrap();
//! ```

use gopark_runtime::PollDesc;

mod addr;
mod datagram;
mod listener;
mod split;
mod stream;

pub use datagram::UnixDatagram;
pub use listener::UnixListener;
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use std::os::unix::net::SocketAddr;
pub use stream::UnixStream;

/// A connected pair of non-blocking Unix sockets of type `ty`
/// (`socketpair(2)`), both registered with the current runtime.
fn socket_pair(ty: socket2::Type) -> std::io::Result<(PollDesc, PollDesc)> {
    let (a, b) = socket2::Socket::pair(socket2::Domain::UNIX, ty.nonblocking().cloexec(), None)?;
    let a = PollDesc::new_nonblocking(std::os::fd::OwnedFd::from(a))?;
    let b = a.sibling(std::os::fd::OwnedFd::from(b))?;
    Ok((a, b))
}

/// The credentials of the process at the other end of a [`UnixStream`]
/// (`SO_PEERCRED`), as they were when it connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UCred {
    pid: Option<i32>,
    uid: u32,
    gid: u32,
}

impl UCred {
    fn from_raw(cred: libc::ucred) -> UCred {
        UCred {
            pid: (cred.pid != 0).then_some(cred.pid),
            uid: cred.uid,
            gid: cred.gid,
        }
    }

    /// The peer's process id, if the kernel knows it.
    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// The peer's effective user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The peer's effective group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }
}
