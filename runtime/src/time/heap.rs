//! The timer heap driven by the netpoll thread.
//!
//! A binary min-heap of deadlines over a slab of entries; each entry knows
//! its heap position, so cancelling a timer (a `timeout` whose request
//! finished first, a `Sleep` dropped early) is an O(log n) removal, not a
//! tombstone that lingers until its deadline. Keys carry a generation so a
//! stale key never cancels a newer timer in a reused slot.

use std::sync::Weak;
use std::task::Waker;
use std::time::Instant;

use slab::Slab;

/// Identifies one timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    idx: usize,
    gen: u64,
}

/// What happens when a timer fires.
pub(crate) enum Action {
    /// A `Sleep`: wake its task; the entry stays, marked fired, until the
    /// `Sleep` sees it.
    Wake(Option<Waker>),
    /// A deadline of something else (a socket's): call its
    /// [`Expire::expire`] with the tag, outside the timer lock.
    Expire(Weak<dyn Expire>, u64),
    /// A `Sleep` whose timer has fired.
    Fired,
}

struct Entry {
    pos: usize,
    gen: u64,
    action: Action,
}

const FIRED: usize = usize::MAX;

#[derive(Default)]
pub(crate) struct Timers {
    heap: Vec<(Instant, usize)>,
    entries: Slab<Entry>,
    next_gen: u64,
    /// `Some(t)` while the netpoll thread sleeps in `epoll_wait` until `t`
    /// (`None` inside, for no timeout): a new timer earlier than that must
    /// wake it.
    sleeping_until: Option<Option<Instant>>,
    /// Set at runtime shutdown: no thread will fire a timer any more, so
    /// none may be added.
    closed: bool,
    /// Counters, for the runtime's metrics.
    pub(crate) stats: TimerStats,
}

/// What the timer heap counts (under its lock).
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct TimerStats {
    /// Timers added.
    pub(crate) armed: u64,
    /// Sleeps whose deadline came.
    pub(crate) fired: u64,
    /// Deadline timers (socket deadlines) that came due.
    pub(crate) deadlines: u64,
    /// Timers removed before they came due.
    pub(crate) cancelled: u64,
}

/// What a deadline timer fires: implemented by whatever keeps deadlines
/// (a `PollDesc` half), so this module names none of them.
pub(crate) trait Expire: Send + Sync {
    /// The timer armed with `tag` fired; the wakers of what it times out
    /// go to `wakers`.
    fn expire(&self, tag: u64, wakers: &mut Vec<Waker>);
}

/// Deadline work that must run outside the timer lock.
pub(crate) type Expired = Vec<(Weak<dyn Expire>, u64)>;

impl Timers {
    /// Adds a timer. Returns its key and whether the netpoll thread must be
    /// woken to sleep less, or `None` once the runtime has shut down (the
    /// caller treats the timer as fired: nobody would ever fire it).
    #[must_use]
    pub(crate) fn insert(&mut self, deadline: Instant, action: Action) -> Option<(TimerKey, bool)> {
        if self.closed {
            return None;
        }
        self.stats.armed += 1;
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        let pos = self.heap.len();
        let idx = self.entries.insert(Entry { pos, gen, action });
        self.heap.push((deadline, idx));
        self.sift_up(pos);
        let wake = match self.sleeping_until {
            Some(None) => true,
            Some(Some(until)) => deadline < until,
            None => false,
        };
        if wake {
            // One wake-up is enough until the thread goes back to sleep.
            self.sleeping_until = None;
        }
        Some((TimerKey { idx, gen }, wake))
    }

    fn entry(&self, key: TimerKey) -> Option<&Entry> {
        self.entries.get(key.idx).filter(|e| e.gen == key.gen)
    }

    /// Removes a timer, fired or not. Returns `false` for a stale key.
    pub(crate) fn remove(&mut self, key: TimerKey) -> bool {
        let Some(entry) = self.entry(key) else {
            return false;
        };
        let pos = entry.pos;
        if pos != FIRED {
            self.heap_remove(pos);
            self.stats.cancelled += 1;
        }
        self.entries.remove(key.idx);
        true
    }

    /// For a `Sleep`: `true` if fired; otherwise stores `waker`.
    pub(crate) fn poll_sleep(&mut self, key: TimerKey, waker: &Waker) -> bool {
        let Some(entry) = self.entries.get_mut(key.idx).filter(|e| e.gen == key.gen) else {
            return true;
        };
        match &mut entry.action {
            Action::Fired => true,
            Action::Wake(slot) => {
                match slot {
                    Some(w) if w.will_wake(waker) => {}
                    _ => *slot = Some(waker.clone()),
                }
                false
            }
            Action::Expire(..) => unreachable!("sleep key names a deadline timer"),
        }
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|&(d, _)| d)
    }

    pub(crate) fn set_sleeping(&mut self, until: Option<Option<Instant>>) {
        self.sleeping_until = until;
    }

    /// Fires every timer due at `now`: sleeps' wakers go to `wakers`,
    /// socket deadlines to `expired`.
    pub(crate) fn fire_expired(
        &mut self,
        now: Instant,
        wakers: &mut Vec<Waker>,
        expired: &mut Expired,
    ) {
        while let Some(&(deadline, idx)) = self.heap.first() {
            if deadline > now {
                break;
            }
            self.heap_remove(0);
            let entry = &mut self.entries[idx];
            entry.pos = FIRED;
            match std::mem::replace(&mut entry.action, Action::Fired) {
                Action::Wake(w) => {
                    self.stats.fired += 1;
                    wakers.extend(w);
                }
                Action::Expire(target, tag) => {
                    self.stats.deadlines += 1;
                    self.entries.remove(idx);
                    expired.push((target, tag));
                }
                Action::Fired => {}
            }
        }
    }

    /// Runtime shutdown: fires every sleep (their wakers go to `wakers`),
    /// drops every deadline, and refuses new timers from now on.
    pub(crate) fn close(&mut self, wakers: &mut Vec<Waker>) {
        self.closed = true;
        self.heap.clear();
        let keys: Vec<usize> = self.entries.iter().map(|(k, _)| k).collect();
        for k in keys {
            let e = &mut self.entries[k];
            e.pos = FIRED;
            match std::mem::replace(&mut e.action, Action::Fired) {
                Action::Wake(w) => wakers.extend(w),
                Action::Expire(..) => {
                    self.entries.remove(k);
                }
                Action::Fired => {}
            }
        }
    }

    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    fn heap_remove(&mut self, pos: usize) {
        let last = self.heap.len() - 1;
        self.heap.swap(pos, last);
        self.heap.pop();
        if pos < self.heap.len() {
            let idx = self.heap[pos].1;
            self.entries[idx].pos = pos;
            self.sift_down(pos);
            self.sift_up(pos);
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if self.heap[parent].0 <= self.heap[pos].0 {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        let n = self.heap.len();
        loop {
            let left = 2 * pos + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.heap[right].0 < self.heap[left].0 {
                right
            } else {
                left
            };
            if self.heap[pos].0 <= self.heap[child].0 {
                break;
            }
            self.swap(pos, child);
            pos = child;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        let (ia, ib) = (self.heap[a].1, self.heap[b].1);
        self.entries[ia].pos = a;
        self.entries[ib].pos = b;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_removes_cancelled() {
        let mut t = Timers::default();
        let base = Instant::now();
        let mut keys = Vec::new();
        for i in [5u64, 1, 9, 3, 7, 2, 8] {
            let (k, _) = t
                .insert(base + Duration::from_millis(i), Action::Wake(None))
                .unwrap();
            keys.push((i, k));
        }
        // Cancel 3 and 8.
        for (i, k) in &keys {
            if *i == 3 || *i == 8 {
                assert!(t.remove(*k));
                assert!(!t.remove(*k), "a key removes once");
            }
        }
        let mut fired = Vec::new();
        for ms in 0..=10u64 {
            let mut w = Vec::new();
            let mut e = Vec::new();
            t.fire_expired(base + Duration::from_millis(ms), &mut w, &mut e);
            for (i, k) in &keys {
                if *i == ms && *i != 3 && *i != 8 {
                    assert!(t.poll_sleep(*k, &std::task::Waker::noop().clone()));
                    fired.push(*i);
                }
            }
        }
        assert_eq!(fired, vec![1, 2, 5, 7, 9]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn earlier_timer_wakes_sleeping_poller_once() {
        let mut t = Timers::default();
        let base = Instant::now();
        t.set_sleeping(Some(Some(base + Duration::from_secs(1))));
        let (_, wake) = t
            .insert(base + Duration::from_secs(2), Action::Wake(None))
            .unwrap();
        assert!(!wake);
        let (_, wake) = t
            .insert(base + Duration::from_millis(1), Action::Wake(None))
            .unwrap();
        assert!(wake);
        let (_, wake) = t.insert(base, Action::Wake(None)).unwrap();
        assert!(!wake, "already woken");
    }

    /// A sleep that registers after shutdown closed the heap must not wait
    /// for a thread that will never fire it: the insert is refused, so the
    /// sleep completes.
    #[test]
    fn a_closed_heap_refuses_new_timers() {
        let mut t = Timers::default();
        let base = Instant::now();
        let (key, _) = t
            .insert(base + Duration::from_secs(60), Action::Wake(None))
            .unwrap();
        let mut wakers = Vec::new();
        t.close(&mut wakers);
        assert!(
            t.poll_sleep(key, std::task::Waker::noop()),
            "fired by close"
        );
        assert!(t
            .insert(base + Duration::from_secs(60), Action::Wake(None))
            .is_none());
        assert_eq!(t.len(), 0);
    }

    /// The cost of the timer a server arms per request and cancels when the
    /// request comes first (a header-read timeout): insert at now + 30 s,
    /// cancel one of [`CHURN_LIVE`] pending timers, [`CHURN_CYCLES`] times.
    /// A harness, not a check: run it under callgrind and divide each
    /// `churn_*` function's inclusive instruction count by the cycles:
    ///
    /// ```text
    /// cargo test --release -p gopark-runtime --lib --no-run
    /// valgrind --tool=callgrind --callgrind-out-file=cg.out \
    ///     target/release/deps/gopark_runtime-<hash> --ignored --exact \
    ///     time::heap::tests::insert_cancel_cost
    /// callgrind_annotate --inclusive=yes cg.out | grep churn_
    /// ```
    ///
    /// `oldest` cancels the oldest pending timer (requests finish in
    /// order), `random` any of them; the `_looking` variants also ask for
    /// the next deadline every cycle, as the netpoll thread does each time
    /// it goes to sleep (at most once per request).
    #[test]
    #[ignore = "a harness to run under callgrind"]
    fn insert_cancel_cost() {
        churn_oldest();
        churn_random();
        churn_oldest_looking();
        churn_random_looking();
    }

    const CHURN_LIVE: usize = 100;
    const CHURN_CYCLES: u64 = 100_000;

    #[inline(never)]
    fn churn_oldest() {
        churn(false, false);
    }

    #[inline(never)]
    fn churn_random() {
        churn(true, false);
    }

    #[inline(never)]
    fn churn_oldest_looking() {
        churn(false, true);
    }

    #[inline(never)]
    fn churn_random_looking() {
        churn(true, true);
    }

    fn churn(random: bool, look: bool) {
        let mut t = Timers::default();
        let base = Instant::now();
        let at = |i: u64| base + Duration::from_secs(30) + Duration::from_micros(i);
        let mut live = std::collections::VecDeque::new();
        for i in 0..CHURN_LIVE as u64 {
            live.push_back(t.insert(at(i), Action::Wake(None)).unwrap().0);
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..CHURN_CYCLES {
            let (key, _) = t
                .insert(at(CHURN_LIVE as u64 + i), Action::Wake(None))
                .unwrap();
            let gone = if random {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                live.swap_remove_back(seed as usize % live.len()).unwrap()
            } else {
                live.pop_front().unwrap()
            };
            live.push_back(key);
            assert!(t.remove(gone));
            if look {
                std::hint::black_box(t.next_deadline());
            }
        }
        assert_eq!(t.len(), CHURN_LIVE);
    }
}
