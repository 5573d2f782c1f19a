//! The timer heap driven by the netpoll thread.
//!
//! A binary min-heap of `(deadline, slot)` over a slab of entries; each
//! entry knows its heap position. Keys carry a generation so a stale key
//! never reaches a newer timer in a reused slot.
//!
//! Most timers never fire: a server arms a read timeout per request and
//! drops it when the request arrives. So cancelling is cheap, as in Go's
//! runtime: a cancelled timer is only marked ([`Action::Cancelled`], which
//! drops its waker at once) and stays in the heap, unless it is the heap's
//! last element, which is simply popped. Marked entries leave the heap
//!
//! - when they reach the top: [`Timers::next_deadline`] and
//!   [`Timers::fire_expired`] pop them, so neither ever reports, wakes or
//!   expires a cancelled timer (an idle netpoll thread sleeps until the
//!   next live deadline). Such a pop costs what removing the timer at
//!   once would have; what is saved is the removal of timers away from
//!   the top, and of those a rebuild drops first;
//! - all at once when they outnumber the live timers: the heap is rebuilt
//!   from its live entries. The heap and the slab thus hold at most about
//!   twice the live timers, and each rebuild, linear in the heap, is paid
//!   for by at least as many cancellations as there are live timers since
//!   the one before: a constant per cancellation. (Go rebuilds at a
//!   quarter; a cancelled entry here holds no waker, only its two slots,
//!   so the memory bound is cheap and the rarer rebuild wins.)

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
    /// A timer cancelled before it fired, left in the heap until it
    /// reaches the top or the heap is rebuilt. Its key no longer finds it.
    /// Set only by [`Timers::remove`].
    Cancelled,
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
    /// How many entries of `heap` are [`Action::Cancelled`].
    cancelled: usize,
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

    /// The entry `key` names, unless the key is stale or was removed.
    fn entry_mut(&mut self, key: TimerKey) -> Option<&mut Entry> {
        self.entries
            .get_mut(key.idx)
            .filter(|e| e.gen == key.gen && !matches!(e.action, Action::Cancelled))
    }

    /// Removes a timer, fired or not. Returns `false` for a stale key.
    pub(crate) fn remove(&mut self, key: TimerKey) -> bool {
        let Some(entry) = self.entry_mut(key) else {
            return false;
        };
        let pos = entry.pos;
        if pos == FIRED {
            self.entries.remove(key.idx);
            return true;
        }
        self.stats.cancelled += 1;
        if pos + 1 == self.heap.len() {
            // The last leaf: nothing moves.
            self.heap.pop();
            self.entries.remove(key.idx);
            return true;
        }
        // Replacing the action drops the waker now, not at the deadline.
        self.entries[key.idx].action = Action::Cancelled;
        self.cancelled += 1;
        if self.cancelled > self.heap.len() - self.cancelled {
            self.rebuild();
        }
        true
    }

    /// For a `Sleep`: `true` if fired; otherwise stores `waker`.
    pub(crate) fn poll_sleep(&mut self, key: TimerKey, waker: &Waker) -> bool {
        let Some(entry) = self.entry_mut(key) else {
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
            Action::Cancelled => unreachable!("a cancelled timer has no key"),
        }
    }

    /// The earliest deadline of a timer not cancelled (popping the
    /// cancelled ones above it).
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&(deadline, idx)) = self.heap.first() {
            if !matches!(self.entries[idx].action, Action::Cancelled) {
                return Some(deadline);
            }
            self.pop_cancelled_top(idx);
        }
        None
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
            let entry = &mut self.entries[idx];
            match std::mem::replace(&mut entry.action, Action::Fired) {
                Action::Wake(w) => {
                    entry.pos = FIRED;
                    self.heap_remove(0);
                    self.stats.fired += 1;
                    wakers.extend(w);
                }
                Action::Expire(target, tag) => {
                    self.heap_remove(0);
                    self.stats.deadlines += 1;
                    self.entries.remove(idx);
                    expired.push((target, tag));
                }
                Action::Cancelled => self.pop_cancelled_top(idx),
                Action::Fired => unreachable!("a fired timer left the heap"),
            }
        }
    }

    /// Runtime shutdown: fires every sleep (their wakers go to `wakers`),
    /// drops every deadline, and refuses new timers from now on.
    pub(crate) fn close(&mut self, wakers: &mut Vec<Waker>) {
        self.closed = true;
        self.heap.clear();
        self.cancelled = 0;
        self.entries.retain(|_, e| {
            e.pos = FIRED;
            match std::mem::replace(&mut e.action, Action::Fired) {
                Action::Wake(w) => {
                    wakers.extend(w);
                    true
                }
                Action::Fired => true,
                Action::Expire(..) | Action::Cancelled => false,
            }
        });
    }

    /// Live timers pending.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.heap.len() - self.cancelled
    }

    /// Drops the cancelled entry `idx` at the top of the heap.
    fn pop_cancelled_top(&mut self, idx: usize) {
        self.heap_remove(0);
        self.entries.remove(idx);
        self.cancelled -= 1;
    }

    /// Drops every cancelled entry and makes a heap of the rest.
    fn rebuild(&mut self) {
        let entries = &mut self.entries;
        self.heap.retain(|&(_, idx)| {
            let cancelled = matches!(entries[idx].action, Action::Cancelled);
            if cancelled {
                entries.remove(idx);
            }
            !cancelled
        });
        self.cancelled = 0;
        for (pos, &(_, idx)) in self.heap.iter().enumerate() {
            self.entries[idx].pos = pos;
        }
        for pos in (0..self.heap.len() / 2).rev() {
            self.sift_down(pos);
        }
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

    /// Checks the heap's invariants: deadline order, each entry's
    /// position, the count of cancelled entries, and that every entry out
    /// of the heap is a fired one.
    fn check_heap(t: &Timers) {
        let mut cancelled = 0;
        for (pos, &(deadline, idx)) in t.heap.iter().enumerate() {
            assert_eq!(t.entries[idx].pos, pos, "entry knows its position");
            if pos > 0 {
                assert!(t.heap[(pos - 1) / 2].0 <= deadline, "heap order");
            }
            if matches!(t.entries[idx].action, Action::Cancelled) {
                cancelled += 1;
            }
        }
        assert_eq!(cancelled, t.cancelled);
        for (_, e) in t.entries.iter() {
            assert!(e.pos < t.heap.len() || e.pos == FIRED);
        }
    }

    /// A waker that counts how often it was woken; its `Arc` counts how
    /// many wakers of it are held.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The netpoll thread sleeps until `next_deadline`: a cancelled timer
    /// must not show there, even while it is still in the heap, and its
    /// task's waker is let go at once.
    #[test]
    fn a_cancelled_earliest_timer_is_not_the_next_deadline() {
        let mut t = Timers::default();
        let base = Instant::now();
        let ms = |n| base + Duration::from_millis(n);
        let count = std::sync::Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let (first, _) = t.insert(ms(1), Action::Wake(Some(waker.clone()))).unwrap();
        let (second, _) = t.insert(ms(5), Action::Wake(Some(waker.clone()))).unwrap();
        let (_third, _) = t.insert(ms(9), Action::Wake(Some(waker))).unwrap();
        assert_eq!(std::sync::Arc::strong_count(&count), 4);
        assert_eq!(t.next_deadline(), Some(ms(1)));

        assert!(t.remove(first));
        assert_eq!(t.stats.cancelled, 1);
        assert_eq!(std::sync::Arc::strong_count(&count), 3, "waker dropped");
        assert!(!t.remove(first), "a key removes once");
        assert!(t.poll_sleep(first, Waker::noop()), "as if fired");
        assert_eq!(t.stats.cancelled, 1, "counted once");
        assert_eq!(t.next_deadline(), Some(ms(5)));
        check_heap(&t);

        // Cancelled at the top, the earliest is not fired either.
        assert!(t.remove(second));
        let (mut wakers, mut expired) = (Vec::new(), Vec::new());
        t.fire_expired(ms(5), &mut wakers, &mut expired);
        assert!(wakers.is_empty());
        assert_eq!(t.next_deadline(), Some(ms(9)));
        t.fire_expired(ms(9), &mut wakers, &mut expired);
        assert_eq!(wakers.len(), 1);
        assert_eq!(t.stats.fired, 1);
        assert_eq!(t.stats.cancelled, 2);
        assert_eq!(t.next_deadline(), None);
    }

    /// When cancelled timers outnumber the live ones the heap is rebuilt:
    /// the live ones keep their order and their keys, and the keys of the
    /// cancelled ones stay dead, also once their slots are reused.
    #[test]
    fn a_rebuild_keeps_the_live_timers_in_order_and_their_keys() {
        let mut t = Timers::default();
        let base = Instant::now();
        let ms = |n| base + Duration::from_millis(n);
        let order = [
            13u64, 2, 19, 7, 11, 0, 17, 5, 3, 16, 9, 1, 14, 6, 18, 10, 4, 15, 8, 12,
        ];
        let mut keys = Vec::new();
        for &n in &order {
            let (k, _) = t.insert(ms(n), Action::Wake(None)).unwrap();
            keys.push((n, k));
        }
        // Cancel the odd ones, and one more: cancelled then outnumber live.
        let (gone, live): (Vec<_>, Vec<_>) =
            keys.into_iter().partition(|(n, _)| n % 2 == 1 || *n == 8);
        for (_, k) in &gone {
            assert!(t.remove(*k));
            check_heap(&t);
        }
        assert_eq!(t.cancelled, 0, "rebuilt");
        assert_eq!(t.heap.len(), live.len());
        assert_eq!(t.entries.len(), live.len());
        assert_eq!(t.stats.cancelled, gone.len() as u64);

        // New timers take the freed slots; old keys reach none of them.
        let mut fresh = Vec::new();
        for n in [21u64, 23, 25] {
            let (k, _) = t.insert(ms(n), Action::Wake(None)).unwrap();
            fresh.push((n, k));
        }
        assert!(
            gone.iter()
                .any(|(_, g)| fresh.iter().any(|(_, f)| f.idx == g.idx)),
            "a slot was reused"
        );
        for (_, g) in &gone {
            assert!(!t.remove(*g), "stale key");
            assert!(t.poll_sleep(*g, Waker::noop()), "stale key");
        }

        let mut expect: Vec<_> = live.iter().copied().chain(fresh).collect();
        expect.sort_by_key(|&(n, _)| n);
        let (mut wakers, mut expired) = (Vec::new(), Vec::new());
        for (n, k) in expect {
            assert_eq!(t.next_deadline(), Some(ms(n)));
            assert!(!t.poll_sleep(k, Waker::noop()), "still pending");
            t.fire_expired(ms(n), &mut wakers, &mut expired);
            assert!(t.poll_sleep(k, Waker::noop()), "fired at its deadline");
            assert!(t.remove(k));
        }
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.entries.len(), 0);
    }

    /// A server's read timeouts: 100 pending, each new one arming while one
    /// of the others is cancelled, 100,000 times. The heap and the slab
    /// stay within twice the live timers, and the live ones still fire in
    /// deadline order.
    #[test]
    fn churn_stays_bounded_and_fires_the_live_timers_in_order() {
        const LIVE: usize = 100;
        const CYCLES: u64 = 100_000;
        let mut t = Timers::default();
        let base = Instant::now();
        let at = |i: u64| base + Duration::from_secs(30) + Duration::from_micros(i);
        let mut live = Vec::new();
        for i in 0..LIVE as u64 {
            live.push((at(i), t.insert(at(i), Action::Wake(None)).unwrap().0));
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..CYCLES {
            let d = at(LIVE as u64 + i);
            let (key, _) = t
                .insert(d, Action::Wake(Some(Waker::noop().clone())))
                .unwrap();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Half the time the oldest, else any of them.
            let victim = if seed % 2 == 0 {
                (0..live.len()).min_by_key(|&j| live[j].0).unwrap()
            } else {
                (seed >> 1) as usize % live.len()
            };
            let (_, gone) = live.swap_remove(victim);
            live.push((d, key));
            assert!(t.remove(gone));
            assert!(t.heap.len() <= 2 * LIVE + 1, "heap bounded");
            assert!(t.entries.len() <= 2 * LIVE + 1, "slab bounded");
            // Looked at seldom, so that cancelled entries do not leave
            // only by reaching the top.
            if i % 1000 == 0 {
                check_heap(&t);
                let earliest = live.iter().map(|&(d, _)| d).min();
                assert_eq!(t.next_deadline(), earliest);
            }
        }
        assert_eq!(t.len(), LIVE);
        assert_eq!(t.stats.cancelled, CYCLES);

        live.sort_by_key(|&(d, _)| d);
        let (mut wakers, mut expired) = (Vec::new(), Vec::new());
        for (j, &(d, key)) in live.iter().enumerate() {
            assert_eq!(t.next_deadline(), Some(d));
            t.fire_expired(d, &mut wakers, &mut expired);
            assert_eq!(t.stats.fired, j as u64 + 1, "one at a time");
            assert!(t.poll_sleep(key, Waker::noop()));
        }
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.heap.len(), 0);
    }

    struct NoExpire;

    impl Expire for NoExpire {
        fn expire(&self, _: u64, _: &mut Vec<Waker>) {
            unreachable!("close drops deadlines without expiring them");
        }
    }

    /// Shutdown with cancelled timers still in the heap: the live sleeps
    /// are woken, the cancelled ones are not, and every entry but the
    /// fired sleeps is gone.
    #[test]
    fn close_with_cancelled_timers_in_the_heap() {
        let mut t = Timers::default();
        let base = Instant::now();
        let count = std::sync::Arc::new(Count::default());
        let target: std::sync::Arc<dyn Expire> = std::sync::Arc::new(NoExpire);
        let mut sleeps = Vec::new();
        for n in 1..=6u64 {
            let waker = Waker::from(count.clone());
            let at = base + Duration::from_secs(n);
            sleeps.push(t.insert(at, Action::Wake(Some(waker))).unwrap().0);
        }
        let at = base + Duration::from_secs(7);
        let (deadline, _) = t
            .insert(at, Action::Expire(std::sync::Arc::downgrade(&target), 0))
            .unwrap();
        let (cancelled, live) = sleeps.split_at(2);
        for k in cancelled {
            assert!(t.remove(*k));
        }
        assert_eq!(t.cancelled, 2, "left in the heap");

        let mut wakers = Vec::new();
        t.close(&mut wakers);
        assert_eq!(wakers.len(), live.len(), "only the live sleeps");
        drop(wakers);
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.entries.len(), live.len(), "the fired sleeps only");
        assert_eq!(std::sync::Arc::strong_count(&count), 1, "no waker held");
        for k in cancelled {
            assert!(!t.remove(*k));
        }
        assert!(!t.remove(deadline), "dropped by close");
        for k in live {
            assert!(t.poll_sleep(*k, Waker::noop()), "fired by close");
            assert!(t.remove(*k));
        }
        assert_eq!(t.entries.len(), 0);
        assert_eq!(t.stats.cancelled, 2);
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
    /// (or one phase alone, with `--toggle-collect='*tests::churn_random'`:
    /// the program total is then that phase's).
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
