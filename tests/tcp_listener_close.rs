//! `TcpListener::close` from another task: the parked `accept` fails, and
//! the port stops taking connections while the listener is still alive.

#[macro_use]
mod support;

use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::time::Duration;

use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout};
use support::future::signal_pending;

rt_test! {
    async fn close_wakes_a_parked_accept_and_refuses_new_connections() -> io::Result<()> {
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0")?);
        let addr = listener.local_addr()?;
        let (accept, parked) = {
            let listener = listener.clone();
            signal_pending(async move { listener.accept().await.map(|_| ()) })
        };
        let acceptor = runtime::spawn(accept);
        // Close only once the acceptor has parked: its accept got EAGAIN
        // and registered its waker. From here only close can end it, so a
        // close that fails to wake a parked accept hangs it.
        timeout(Duration::from_secs(10), parked)
            .await
            .expect("the acceptor parks")
            .expect("the acceptor signals before it ends");
        assert!(!acceptor.is_finished(), "accept returned with nobody connecting");
        listener.close()?;
        let res = timeout(Duration::from_secs(10), acceptor)
            .await
            .expect("accept woken by close")
            .expect("acceptor task");
        assert!(res.is_err(), "accept after close must fail");
        let err = timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .expect("connect finishes")
            .expect_err("connect to a closed listener");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        assert!(listener.accept().await.is_err(), "accept after close");
        Ok(())
    }
}
