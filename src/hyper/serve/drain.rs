//! [`Drain`]: the connections of one server, and the phase of its
//! shutdown that each of them watches.
//!
//! The accept loop makes a [`Watch`] for every connection before it spawns
//! the connection's task; the task holds it until the connection ends.
//! Dropping the last one wakes whoever waits in [`Drain::idle`]. A shutdown
//! moves the phase forward — serving, then graceful (finish what is in
//! flight), then forced (close now) — and wakes every connection task, so
//! that it acts on the new phase at once.
//!
//! Cost: a connection task reads one atomic per poll and takes its own,
//! uncontended, lock only when the waker it runs under changed; the shared
//! lock is taken twice per connection (start and end) and once per phase
//! change.
//!
//! No wake-up is lost: the task stores its waker under its slot's lock and
//! then reads the phase; [`Drain::advance`] writes the phase and then takes
//! every slot's lock. Either the task's second read sees the new phase, or
//! the lock orders its store before the take, which finds the waker.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// The phases of a shutdown, in the order they come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Connections serve requests.
    Serving = 0,
    /// Each connection finishes its requests in flight, then closes.
    Graceful = 1,
    /// Each connection closes now.
    Forced = 2,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Serving,
            1 => Phase::Graceful,
            _ => Phase::Forced,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Drain {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    phase: AtomicU8,
    conns: Mutex<Conns>,
}

#[derive(Debug, Default)]
struct Conns {
    next_id: u64,
    slots: HashMap<u64, Arc<Slot>>,
    /// Woken when the last connection ends.
    idle: Option<Waker>,
}

/// Where one connection task leaves its waker.
#[derive(Debug, Default)]
struct Slot {
    waker: Mutex<Option<Waker>>,
}

/// A connection's view of the shutdown; dropping it says the connection
/// has ended.
#[derive(Debug)]
pub(crate) struct Watch {
    inner: Arc<Inner>,
    id: u64,
    slot: Arc<Slot>,
    /// A clone of the waker last left in `slot`, kept here so that a poll
    /// under the same waker touches no lock.
    registered: Option<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; recover the data anyway.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drain {
    pub(crate) fn new() -> Drain {
        Drain {
            inner: Arc::new(Inner {
                phase: AtomicU8::new(Phase::Serving as u8),
                conns: Mutex::new(Conns::default()),
            }),
        }
    }

    /// Registers a new connection.
    pub(crate) fn watch(&self) -> Watch {
        let slot = Arc::new(Slot::default());
        let mut conns = lock(&self.inner.conns);
        let id = conns.next_id;
        conns.next_id += 1;
        conns.slots.insert(id, slot.clone());
        Watch {
            inner: self.inner.clone(),
            id,
            slot,
            registered: None,
        }
    }

    /// Connections that have not ended yet.
    pub(crate) fn open(&self) -> usize {
        lock(&self.inner.conns).slots.len()
    }

    /// Moves every connection to `phase`, and wakes them.
    pub(crate) fn advance(&self, phase: Phase) {
        // SeqCst: paired with the task's read after it stored its waker
        // (see the module's opening).
        self.inner.phase.fetch_max(phase as u8, Ordering::SeqCst);
        let slots: Vec<Arc<Slot>> = lock(&self.inner.conns).slots.values().cloned().collect();
        for slot in slots {
            let waker = lock(&slot.waker).take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }

    /// Resolves once every connection has ended.
    pub(crate) async fn idle(&self) {
        poll_fn(|cx| {
            let mut conns = lock(&self.inner.conns);
            if conns.slots.is_empty() {
                Poll::Ready(())
            } else {
                conns.idle = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl Watch {
    /// Ready with the phase once it is past `seen`.
    pub(crate) fn poll_phase(&mut self, cx: &mut Context<'_>, seen: Phase) -> Poll<Phase> {
        if let Some(phase) = self.moved_past(seen) {
            return Poll::Ready(phase);
        }
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            *lock(&self.slot.waker) = Some(waker.clone());
            self.registered = Some(waker);
        }
        // The second read of the Dekker pair.
        match self.moved_past(seen) {
            Some(phase) => Poll::Ready(phase),
            None => Poll::Pending,
        }
    }

    /// The phase, if it is past `seen`.
    fn moved_past(&mut self, seen: Phase) -> Option<Phase> {
        // SeqCst: paired with `advance`'s write (see the module's opening).
        let phase = Phase::from_u8(self.inner.phase.load(Ordering::SeqCst));
        if phase > seen {
            // `advance` took the waker out of the slot as it woke this
            // task: the next wait must leave one again.
            self.registered = None;
            Some(phase)
        } else {
            None
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let idle = {
            let mut conns = lock(&self.inner.conns);
            conns.slots.remove(&self.id);
            if conns.slots.is_empty() {
                conns.idle.take()
            } else {
                None
            }
        };
        if let Some(waker) = idle {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn a_watch_sees_each_phase_once_and_the_last_drop_ends_the_wait() {
        let drain = Drain::new();
        let mut a = drain.watch();
        let mut b = drain.watch();
        assert_eq!(drain.open(), 2);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(a.poll_phase(&mut cx, Phase::Serving), Poll::Pending);
        drain.advance(Phase::Graceful);
        assert_eq!(
            a.poll_phase(&mut cx, Phase::Serving),
            Poll::Ready(Phase::Graceful)
        );
        assert_eq!(a.poll_phase(&mut cx, Phase::Graceful), Poll::Pending);
        assert!(
            lock(&a.slot.waker).is_some(),
            "after a phase change, the next wait leaves its waker again"
        );
        drain.advance(Phase::Forced);
        // A late phase never moves back.
        drain.advance(Phase::Graceful);
        assert_eq!(
            b.poll_phase(&mut cx, Phase::Serving),
            Poll::Ready(Phase::Forced)
        );
        drop(a);
        assert_eq!(drain.open(), 1);
        drop(b);
        assert_eq!(drain.open(), 0);
    }
}
