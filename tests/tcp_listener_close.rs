//! `TcpListener::close` from another task: the parked `accept` fails, and
//! the port stops taking connections while the listener is still alive.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use gopark::net::{TcpListener, TcpStream};
use gopark::runtime::{self, time::timeout};

#[test]
fn close_wakes_a_parked_accept_and_refuses_new_connections() {
    runtime::block_on(async {
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let acceptor = {
            let listener = listener.clone();
            runtime::spawn(async move { listener.accept().await.map(|_| ()) })
        };
        // The acceptor is parked once a connection attempt before close
        // would be accepted; make sure it has run at least once.
        runtime::yield_now().await;
        listener.close().unwrap();
        let res = timeout(Duration::from_secs(5), acceptor)
            .await
            .expect("accept woken by close")
            .unwrap();
        assert!(res.is_err(), "accept after close must fail");
        let err = timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("connect finishes")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        assert!(listener.accept().await.is_err());
    });
}
