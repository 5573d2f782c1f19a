//! Unix socket addresses: `std`'s [`SocketAddr`] to and from socket2's
//! `SockAddr`, and errors that name the address they are about.
//!
//! Three kinds of address exist on Linux: a *pathname* (a socket file in
//! the file system), an *abstract* name (a leading NUL byte, then any bytes;
//! no file, gone when the socket closes) and *unnamed* (a socket that was
//! never bound, such as most clients and both ends of a pair).

use std::error::Error;
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use socket2::SockAddr;

/// The address for a path given to `bind`, `connect` or `send_to`. A path
/// whose first byte is NUL names an abstract address (as in tokio and mio);
/// any other NUL byte is refused, since the kernel would cut the path there
/// and use a different file.
pub(crate) fn from_path(path: &Path) -> io::Result<SockAddr> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.first() != Some(&0) && bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("Unix socket path {path:?} contains a NUL byte"),
        ));
    }
    SockAddr::unix(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "Unix socket path {path:?} is {} bytes long; the limit is {} bytes{}",
                bytes.len(),
                MAX_PATH + usize::from(bytes.first() == Some(&0)),
                if bytes.first() == Some(&0) {
                    ", counting the leading NUL of an abstract name"
                } else {
                    ""
                }
            ),
        )
    })
}

/// Longest pathname the kernel takes: `sun_path` less its terminating NUL.
const MAX_PATH: usize = 107;

/// The address `addr` stands for; an unnamed one asks the kernel to pick
/// an abstract name when bound (Linux's autobind).
pub(crate) fn from_std(addr: &SocketAddr) -> io::Result<SockAddr> {
    if let Some(path) = addr.as_pathname() {
        from_path(path)
    } else if let Some(name) = addr.as_abstract_name() {
        let mut bytes = Vec::with_capacity(name.len() + 1);
        bytes.push(0);
        bytes.extend_from_slice(name);
        from_path(Path::new(OsStr::from_bytes(&bytes)))
    } else {
        from_path(Path::new(""))
    }
}

/// `addr` as `std`'s address type.
pub(crate) fn to_std(addr: &SockAddr) -> io::Result<SocketAddr> {
    if addr.len() == 0 {
        // `recvfrom` reports a datagram from an unbound sender with no
        // address at all, not even a family.
        return SocketAddr::from_pathname("");
    }
    if !addr.is_unix() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a Unix socket address",
        ));
    }
    if let Some(path) = addr.as_pathname() {
        SocketAddr::from_pathname(path)
    } else if let Some(name) = addr.as_abstract_namespace() {
        SocketAddr::from_abstract_name(name)
    } else {
        // An empty path is how `std` spells an unnamed address.
        SocketAddr::from_pathname("")
    }
}

/// What an operation on an address was doing, for its error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Bind,
    Connect,
    SendTo,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Bind => "bind to",
            Op::Connect => "connect to",
            Op::SendTo => "send to",
        }
    }
}

/// An error of `bind`, `connect` or `send_to`, with the address it was
/// about and, for the usual mistakes, what they mean. The `io::Error` that
/// carries it keeps the kind of the original.
#[derive(Debug)]
struct AddrError {
    op: Op,
    addr: String,
    why: Option<&'static str>,
    source: io::Error,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.op.verb(), self.addr)?;
        match self.why {
            Some(why) => write!(f, "{why}: {}", self.source),
            None => write!(f, "{}", self.source),
        }
    }
}

impl Error for AddrError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// How an address is named in messages: a path as a quoted path, an
/// abstract name as `"@name"` (the notation of `ss` and `netstat`).
pub(crate) fn describe(addr: &SockAddr) -> String {
    if let Some(path) = addr.as_pathname() {
        format!("{path:?}")
    } else if let Some(name) = addr.as_abstract_namespace() {
        format!("\"@{}\" (abstract)", name.escape_ascii())
    } else {
        "an unnamed address".to_string()
    }
}

/// Wraps `e`, the error of `op` on `addr`, in a message that names the
/// address and explains the common cases. The kind is kept.
pub(crate) fn error(op: Op, addr: &SockAddr, e: io::Error) -> io::Error {
    let abstract_name = addr.as_abstract_namespace().is_some();
    let why = match (op, e.raw_os_error()) {
        (Op::Connect | Op::SendTo, Some(libc::ENOENT)) => {
            Some("the socket file does not exist (it was removed, or never created)")
        }
        (Op::Connect | Op::SendTo, Some(libc::ECONNREFUSED)) if abstract_name => {
            Some("no socket is bound to this abstract name")
        }
        (Op::Connect, Some(libc::ECONNREFUSED)) => Some(
            "the file exists but no socket is listening on it \
             (left behind by a listener that has gone, or not a socket)",
        ),
        (Op::SendTo, Some(libc::ECONNREFUSED)) => Some(
            "the file exists but no socket is bound to it \
             (left behind by a socket that has gone, or not a socket)",
        ),
        (Op::Connect | Op::SendTo, Some(libc::EPROTOTYPE)) => {
            Some("the socket there is of another type (stream or datagram)")
        }
        (Op::Bind, Some(libc::EADDRINUSE)) if abstract_name => {
            Some("another socket is bound to this abstract name")
        }
        (Op::Bind, Some(libc::EADDRINUSE)) => Some(
            "a file already exists at this path \
             (a socket file left by an earlier listener? remove it before binding)",
        ),
        _ => None,
    };
    io::Error::new(
        e.kind(),
        AddrError {
            op,
            addr: describe(addr),
            why,
            source: e,
        },
    )
}
