//! Names off the workers: [`ToSocketAddrs`] and [`lookup_host`].
//!
//! The system resolver (`getaddrinfo`) is a blocking call that may wait on
//! a DNS server for seconds. On a worker thread that would hold up every
//! task queued behind it; the monitor hands a stuck worker's queue to a
//! replacement thread after 10 ms, but only up to twice `worker_threads`
//! threads, so a handful of slow lookups at once would still stall the
//! runtime. So a host name is resolved on the blocking pool
//! ([`spawn_blocking`](gopark_runtime::spawn_blocking)), as tokio does,
//! and the task that asked parks until the answer comes back. (Go resolves
//! in pure Go on its netpoller where it can, and through cgo on a thread of
//! its own otherwise; gopark uses the system resolver, so it takes the
//! second road.)
//!
//! What needs no resolver never leaves the calling thread: a
//! [`SocketAddr`], an `(IpAddr, u16)` pair, and a string that parses as an
//! IP address with a port (`"127.0.0.1:80"`, `"[::1]:80"`) are turned into
//! addresses inline, with no thread hop and no system call; a string
//! without a valid port fails at once with `InvalidInput`. Only a real
//! host name (`"localhost:80"`, `("example.com", 443)`) costs the hop: a
//! queue push and a wake-up of a pool thread, a few microseconds beside
//! the lookup itself.
//!
//! [`ToSocketAddrs`] is gopark's own trait, as tokio's is: `std`'s cannot
//! tell a literal from a name without resolving it. It is implemented for
//! the same types as std's, and sealed.
//!
//! The synchronous binds ([`TcpListener::bind`](crate::TcpListener::bind),
//! [`UdpSocket::bind`](crate::UdpSocket::bind)) are sync like std's and
//! cannot wait for the pool without blocking the thread anyway: given a
//! host name, they call the resolver inline, as std does. A bind names a
//! local address, almost always a literal or `localhost` (answered from
//! `/etc/hosts`); when it is not, the monitor's hand-off bounds what the
//! other tasks wait to about 10 ms.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What the connecting and binding functions take as an address: an
/// address, an IP and a port, or a host name and a port
/// (`"localhost:8080"`, `("example.com", 443)`).
///
/// gopark's counterpart of `std::net::ToSocketAddrs` (and tokio's trait of
/// the same name), implemented for the same types. Literals are resolved
/// inline; host names on the blocking pool (see [`lookup_host`]). Sealed:
/// it cannot be implemented outside this crate.
pub trait ToSocketAddrs: sealed::Sealed {}

/// The addresses of a [`ToSocketAddrs`] value: known already, or a name
/// for the resolver. (Nominally public, for the sealed trait's method;
/// this module is private, so no user can name it.)
#[doc(hidden)]
#[derive(Debug)]
pub enum Addrs {
    /// Resolved without the resolver (a literal).
    Known(Vec<SocketAddr>),
    /// A host name and a port, for the system resolver.
    Name(String, u16),
}

impl Addrs {
    /// Resolves on the blocking pool if it must; the task parks meanwhile.
    pub(crate) async fn resolve(self) -> io::Result<Vec<SocketAddr>> {
        match self {
            Addrs::Known(addrs) => Ok(addrs),
            Addrs::Name(host, port) => {
                match gopark_runtime::spawn_blocking(move || getaddrinfo(&host, port)).await {
                    Ok(res) => res,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // The pool refused or dropped the job: the runtime is
                    // shutting down.
                    Err(e) => Err(io::Error::other(format!("name lookup: {e}"))),
                }
            }
        }
    }

    /// Resolves on the calling thread, blocking it while the resolver
    /// works: for the synchronous binds.
    pub(crate) fn resolve_inline(self) -> io::Result<Vec<SocketAddr>> {
        match self {
            Addrs::Known(addrs) => Ok(addrs),
            Addrs::Name(host, port) => getaddrinfo(&host, port),
        }
    }
}

/// The system resolver, through std (which calls `getaddrinfo`).
fn getaddrinfo(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).map(Iterator::collect)
}

/// The addresses `addr` names, resolved on the blocking pool if it is a
/// host name; `InvalidInput` if it names none.
pub(crate) async fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    non_empty(addr.to_addrs()?.resolve().await?)
}

/// The addresses `addr` names, resolved on the calling thread (for the
/// synchronous binds); `InvalidInput` if it names none.
pub(crate) fn resolve_inline(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    non_empty(addr.to_addrs()?.resolve_inline()?)
}

fn non_empty(addrs: Vec<SocketAddr>) -> io::Result<Vec<SocketAddr>> {
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        ));
    }
    Ok(addrs)
}

/// Looks up the addresses of `host`, tokio's `lookup_host`: a host name
/// and a port (`"localhost:80"`, `("localhost", 80)`) go to the system
/// resolver on the blocking pool, so a slow DNS server holds up only the
/// task that asked; an IP literal (`"127.0.0.1:80"`) is parsed inline.
///
/// A name the resolver does not know fails with the resolver's error
/// (`getaddrinfo`'s message, kind `Other` or `Uncategorized`); a string
/// with no port, or a port out of range, fails at once with
/// `InvalidInput`.
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
///
/// gopark_runtime::block_on(async {
///     let addrs: Vec<SocketAddr> = gopark_net::lookup_host("127.0.0.1:8080").await?.collect();
///     assert_eq!(addrs, [SocketAddr::from((Ipv4Addr::LOCALHOST, 8080))]);
///
///     // A name: resolved on the blocking pool, from /etc/hosts here.
///     for addr in gopark_net::lookup_host(("localhost", 8080)).await? {
///         assert!(addr.ip().is_loopback());
///         assert_eq!(addr.port(), 8080);
///     }
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub async fn lookup_host(
    host: impl ToSocketAddrs,
) -> io::Result<impl Iterator<Item = SocketAddr> + Send + 'static> {
    let addrs = host.to_addrs()?;
    Ok(addrs.resolve().await?.into_iter())
}

pub(crate) mod sealed {
    use super::Addrs;
    use std::io;

    /// The conversion behind [`ToSocketAddrs`](super::ToSocketAddrs).
    pub trait Sealed {
        /// The addresses, or the name to resolve.
        #[doc(hidden)]
        fn to_addrs(&self) -> io::Result<Addrs>;
    }
}

use sealed::Sealed;

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

macro_rules! known {
    ($($ty:ty, $s:ident => $addr:expr;)*) => {$(
        impl ToSocketAddrs for $ty {}
        impl Sealed for $ty {
            fn to_addrs(&self) -> io::Result<Addrs> {
                let $s = self;
                Ok(Addrs::Known(vec![$addr]))
            }
        }
    )*};
}

known! {
    SocketAddr, a => *a;
    SocketAddrV4, a => SocketAddr::V4(*a);
    SocketAddrV6, a => SocketAddr::V6(*a);
    (IpAddr, u16), a => SocketAddr::new(a.0, a.1);
    (Ipv4Addr, u16), a => SocketAddr::new(IpAddr::V4(a.0), a.1);
    (Ipv6Addr, u16), a => SocketAddr::new(IpAddr::V6(a.0), a.1);
}

impl ToSocketAddrs for [SocketAddr] {}
impl Sealed for [SocketAddr] {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(Addrs::Known(self.to_vec()))
    }
}

impl ToSocketAddrs for Vec<SocketAddr> {}
impl Sealed for Vec<SocketAddr> {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(Addrs::Known(self.clone()))
    }
}

impl<const N: usize> ToSocketAddrs for [SocketAddr; N] {}
impl<const N: usize> Sealed for [SocketAddr; N] {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(Addrs::Known(self.to_vec()))
    }
}

/// `host` and `port`: an IP literal inline, anything else a name.
fn host_port(host: &str, port: u16) -> Addrs {
    match host.parse::<IpAddr>() {
        Ok(ip) => Addrs::Known(vec![SocketAddr::new(ip, port)]),
        Err(_) => Addrs::Name(host.to_owned(), port),
    }
}

impl ToSocketAddrs for (&str, u16) {}
impl Sealed for (&str, u16) {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(host_port(self.0, self.1))
    }
}

impl ToSocketAddrs for (String, u16) {}
impl Sealed for (String, u16) {
    fn to_addrs(&self) -> io::Result<Addrs> {
        Ok(host_port(&self.0, self.1))
    }
}

impl ToSocketAddrs for str {}
impl Sealed for str {
    fn to_addrs(&self) -> io::Result<Addrs> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(Addrs::Known(vec![addr]));
        }
        // `host:port`, as std splits it: at the last colon.
        let (host, port) = self
            .rsplit_once(':')
            .ok_or_else(|| invalid("invalid socket address"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| invalid("invalid port value"))?;
        Ok(host_port(host, port))
    }
}

impl ToSocketAddrs for String {}
impl Sealed for String {
    fn to_addrs(&self) -> io::Result<Addrs> {
        self.as_str().to_addrs()
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {}
impl<T: ToSocketAddrs + ?Sized> Sealed for &T {
    fn to_addrs(&self) -> io::Result<Addrs> {
        (**self).to_addrs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(a: impl ToSocketAddrs) -> Vec<SocketAddr> {
        match a.to_addrs().unwrap() {
            Addrs::Known(v) => v,
            Addrs::Name(h, p) => panic!("{h}:{p} went to the resolver"),
        }
    }

    fn name(a: impl ToSocketAddrs) -> (String, u16) {
        match a.to_addrs().unwrap() {
            Addrs::Name(h, p) => (h, p),
            Addrs::Known(v) => panic!("{v:?} did not go to the resolver"),
        }
    }

    #[test]
    fn literals_stay_inline() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        assert_eq!(known("127.0.0.1:80"), [v4]);
        assert_eq!(known("[::1]:443"), [v6]);
        assert_eq!(known(String::from("[::1]:443")), [v6]);
        assert_eq!(known(("127.0.0.1", 80)), [v4]);
        assert_eq!(known(("::1", 443)), [v6]);
        assert_eq!(known((String::from("::1"), 443)), [v6]);
        assert_eq!(known(v4), [v4]);
        let by_ref: &SocketAddr = &v4;
        assert_eq!(known(by_ref), [v4]);
        assert_eq!(known((Ipv4Addr::LOCALHOST, 80)), [v4]);
        assert_eq!(known((Ipv6Addr::LOCALHOST, 443)), [v6]);
        assert_eq!(known((IpAddr::V4(Ipv4Addr::LOCALHOST), 80)), [v4]);
        assert_eq!(known(&[v4, v6][..]), [v4, v6]);
        assert_eq!(known([v4, v6]), [v4, v6]);
    }

    #[test]
    fn names_go_to_the_resolver() {
        assert_eq!(name("localhost:80"), ("localhost".into(), 80));
        assert_eq!(name(("example.com", 443)), ("example.com".into(), 443));
        assert_eq!(name(String::from("a.b:1")), ("a.b".into(), 1));
    }

    #[test]
    fn lookup_host_is_send() {
        fn send<T: Send>(_: T) {}
        send(lookup_host("localhost:0"));
        send(resolve(String::from("localhost:0")));
    }

    #[test]
    fn a_missing_or_bad_port_fails_at_once() {
        for bad in [
            "localhost",
            "localhost:",
            "localhost:http",
            "localhost:65536",
            "",
        ] {
            let err = bad.to_addrs().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }
}
