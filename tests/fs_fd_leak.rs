//! `gopark::fs` leaves no descriptor open: after every operation has
//! returned, the process holds exactly the descriptors it held before —
//! including after failures, a `File` dropped with a write in flight, and
//! a `ReadDir` dropped half-way (whose descriptors the pool closes when
//! their operation ends, at the latest when the runtime shuts down).
//!
//! One test in this binary, so nothing else opens descriptors meanwhile.

mod support;

use std::io;
use std::time::Duration;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use gopark::fs::{self, File};
use support::leak::on_each_runtime;
use support::proc::fd_count;
use support::rt::eventually;

#[test]
fn no_descriptor_left_open() {
    let dir = std::env::temp_dir().join(format!("gopark-fs-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let d = dir.clone();
    on_each_runtime("fsfds", Duration::from_secs(30), move || {
        let dir = d.clone();
        async move {
            let before = fd_count();
            for i in 0..50 {
                let path = dir.join(format!("f{i}"));
                fs::write(&path, b"some bytes").await?;
                assert_eq!(fs::read(&path).await?, b"some bytes");
                let mut f = File::options().read(true).write(true).open(&path).await?;
                f.write_all(b"more").await?;
                f.flush().await?;
                let mut s = String::new();
                f.read_to_string(&mut s).await?;
                f.sync_all().await?;
                drop(f);
                // Failures close what they opened.
                assert!(File::create_new(&path).await.is_err());
                assert!(fs::read(dir.join("missing")).await.is_err());
            }
            let mut entries = fs::read_dir(&dir).await?;
            while entries.next_entry().await?.is_some() {}
            drop(entries);
            assert_eq!(
                fd_count(),
                before,
                "descriptors after every operation returned"
            );

            // Dropped with work in flight: the pool closes them when the
            // operation ends.
            for i in 0..10 {
                let mut f = File::create(dir.join(format!("g{i}"))).await?;
                f.write_all(&vec![7u8; 1 << 20]).await?;
                drop(f);
                let mut entries = fs::read_dir(&dir).await?;
                entries.next_entry().await?;
                drop(entries);
            }
            eventually("the pool closed what was dropped in flight", || {
                fd_count() == before
            })
            .await;
            Ok::<_, io::Error>(())
        }
    });
    std::fs::remove_dir_all(&dir).expect("remove the temp dir");
}
