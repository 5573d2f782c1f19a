//! [`Pool`]: the idle connections of a client, per host.
//!
//! An HTTP/1.1 connection carries one request at a time. After a response,
//! the connection comes back here the moment its body has been read to the
//! end ([`Body`](super::Body)), and the next request to the same host
//! takes the most recently used one (warm, the least likely to have been
//! closed by the server's idle timeout). A connection the server has
//! closed is seen as closed (`is_closed`) and thrown away; so is one idle
//! for longer than the idle timeout.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::Conn;

/// Where a connection goes: `host:port`, as the URI spells it.
pub(crate) type Key = String;

#[derive(Debug)]
pub(crate) struct Pool<B> {
    idle: Mutex<HashMap<Key, Vec<Idle<B>>>>,
    idle_timeout: Option<Duration>,
    max_idle_per_host: usize,
}

#[derive(Debug)]
struct Idle<B> {
    conn: Conn<B>,
    since: Instant,
}

impl<B> Pool<B> {
    pub(crate) fn new(idle_timeout: Option<Duration>, max_idle_per_host: usize) -> Pool<B> {
        Pool {
            idle: Mutex::new(HashMap::new()),
            idle_timeout,
            max_idle_per_host,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Vec<Idle<B>>>> {
        // Nothing panics while holding it; recover the data anyway.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&self, idle: &Idle<B>, now: Instant) -> bool {
        !idle.conn.sender.is_closed()
            && self
                .idle_timeout
                .is_none_or(|limit| now.duration_since(idle.since) < limit)
    }

    /// An idle connection to `key` that is still open, if there is one.
    pub(crate) fn take(&self, key: &str) -> Option<Conn<B>> {
        let now = Instant::now();
        let mut idle = self.lock();
        let list = idle.get_mut(key)?;
        let mut found = None;
        while let Some(conn) = list.pop() {
            if self.fresh(&conn, now) {
                found = Some(conn.conn);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Puts a connection whose response has been read back.
    pub(crate) fn put(&self, key: Key, conn: Conn<B>) {
        if self.max_idle_per_host == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = self.lock();
        let list = idle.entry(key).or_default();
        list.retain(|conn| self.fresh(conn, now));
        if list.len() >= self.max_idle_per_host {
            // The oldest goes; dropping its sender closes the connection.
            list.remove(0);
        }
        list.push(Idle { conn, since: now });
    }

    /// Idle connections, all hosts together.
    pub(crate) fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}
