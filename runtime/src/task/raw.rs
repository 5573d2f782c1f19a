//! The task allocation and the type-erased functions that drive it.
//!
//! Every raw pointer of the task system lives in this file. A task is one
//! `Cell<F, S>`: a [`Header`] (state word, vtable, owned-list key) followed
//! by the scheduler handle, the future-then-output stage, and the join
//! waker. Everything outside this file holds a [`RawTask`] (a counted
//! pointer to the header) and goes through the vtable.
//!
//! A `RawTask` *is* one reference: it is neither `Copy` nor `Clone`, the
//! methods that give the reference up take `self`, and only the `unsafe`
//! constructors ([`RawTask::from_raw`], [`RawTask::duplicate`]) make one
//! without a count of its own behind it. So a task cannot be touched
//! through a `RawTask` after that `RawTask` let its reference go: the
//! compiler refuses the use of a moved value. (A `RawTask` dropped
//! without `drop_reference` only leaks its task.)

use std::any::Any;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
// The owned-list key is written once, before the task is shared: a plain
// std atomic even under loom.
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::state::{State, TransitionToIdle, TransitionToNotified, TransitionToRunning};
use super::{JoinError, Schedule};
use crate::loom::UnsafeCell;

/// The type-erased head of every task.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    vtable: &'static Vtable,
    /// Where the task sits in the runtime's owned-task list (`u32::MAX`
    /// while it is in none). Four bytes, beside `since`'s four: the header
    /// is 56 bytes.
    owned_key: AtomicU32,
    /// When the task last parked (or was spawned), for the dump.
    pub(crate) since: super::trace::Since,
    /// Where it was spawned and what it last parked on, for the dump.
    pub(crate) trace: super::trace::Trace,
    /// The task's id, unique for the life of the process.
    pub(crate) id: super::Id,
}

struct Vtable {
    poll: unsafe fn(NonNull<Header>),
    schedule: unsafe fn(NonNull<Header>),
    dealloc: unsafe fn(NonNull<Header>),
    try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    drop_join_handle_slow: unsafe fn(NonNull<Header>),
    shutdown: unsafe fn(NonNull<Header>),
}

/// Where the future is in its life.
enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

#[repr(C)]
struct Cell<F: Future, S> {
    header: Header,
    scheduler: S,
    stage: UnsafeCell<Stage<F>>,
    /// Written by the `JoinHandle` only while `JOIN_WAKER` is clear; read by
    /// the task side only while it is set and the task is complete.
    join_waker: UnsafeCell<Option<Waker>>,
}

/// A counted pointer to a task: one reference (see the module docs).
#[must_use = "a RawTask is a reference: give it to an owner or call `drop_reference`"]
pub(crate) struct RawTask {
    ptr: NonNull<Header>,
}

// SAFETY: every access to the task goes through the atomic state word or is
// made exclusive by it; the future and the output are `Send`, or only
// touched on one thread (see `RawTask::new`).
unsafe impl Send for RawTask {}
// SAFETY: as above; shared access only touches the atomic header.
unsafe impl Sync for RawTask {}

impl RawTask {
    /// Allocates a task. The state starts with three references (the
    /// owned-task list's, the first `Notified`'s and the `JoinHandle`'s);
    /// this returns the first, and [`duplicate`](RawTask::duplicate) makes
    /// the other two.
    ///
    /// # Safety
    ///
    /// If `F` or `F::Output` is not `Send` (a `LocalSet`'s task), `scheduler`
    /// runs and cancels the task only on the calling thread, and cancels it
    /// there before that thread lets it go, so that the future and an
    /// unclaimed output are only ever touched and dropped there.
    #[inline]
    pub(crate) unsafe fn new<F, S>(
        future: F,
        scheduler: S,
        spawned_at: &'static std::panic::Location<'static>,
    ) -> RawTask
    where
        F: Future + 'static,
        F::Output: 'static,
        S: Schedule,
    {
        let cell = Box::new(Cell {
            header: Header {
                state: State::new(),
                vtable: vtable::<F, S>(),
                owned_key: AtomicU32::new(u32::MAX),
                since: super::trace::Since::recent(),
                trace: super::trace::Trace::new(spawned_at),
                id: super::Id::next(),
            },
            scheduler,
            stage: UnsafeCell::new(Stage::Running(future)),
            join_waker: UnsafeCell::new(None),
        });
        let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
        RawTask { ptr }
    }

    /// Takes over a reference from a raw header pointer.
    ///
    /// # Safety
    ///
    /// `ptr` points to a live task's header, and the caller gives up one
    /// reference it holds (a waker's, or one the state word just counted)
    /// to the returned value.
    pub(super) unsafe fn from_raw(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    /// The header pointer, carrying this reference (see `from_raw`).
    pub(super) fn into_ptr(self) -> NonNull<()> {
        self.ptr.cast()
    }

    /// Another `RawTask` for the same task, standing for a reference that
    /// the state word already counts but no `RawTask` holds yet.
    ///
    /// # Safety
    ///
    /// Such a reference exists: one of the three counted at spawn, or one
    /// a transition just added (`TransitionToNotified::Submit`).
    pub(crate) unsafe fn duplicate(&self) -> RawTask {
        RawTask { ptr: self.ptr }
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: `self` is a reference, so the allocation is alive while
        // `self` is borrowed.
        unsafe { self.ptr.as_ref() }
    }

    /// The task's address: its identity, e.g. in the owned-task list.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Runs the task once; consumes the `Notified` reference.
    pub(crate) fn poll(self) {
        // SAFETY: the vtable matches the cell it was created with, and
        // `self` hands its reference over.
        unsafe { (self.header().vtable.poll)(self.ptr) }
    }

    /// Hands a `Notified` reference to the scheduler.
    pub(crate) fn schedule(self) {
        // SAFETY: as above.
        unsafe { (self.header().vtable.schedule)(self.ptr) }
    }

    /// Cancels the task if it is idle; consumes no reference.
    pub(crate) fn shutdown(&self) {
        // SAFETY: the vtable matches the cell; `self` keeps it alive.
        unsafe { (self.header().vtable.shutdown)(self.ptr) }
    }

    /// Drops this reference, freeing the task if it was the last.
    pub(crate) fn drop_reference(self) {
        if self.header().state.ref_dec() {
            // SAFETY: that was the last reference.
            unsafe { self.dealloc() }
        }
    }

    /// Gives up this reference without touching the count: the caller
    /// accounts for it in a combined `ref_dec_n`. (A `RawTask` has no
    /// destructor; this only says so at the call site.)
    fn forget_reference(self) {
        let _ = self;
    }

    /// Frees the task.
    ///
    /// # Safety
    ///
    /// No reference is left: the state word's count reached zero on this
    /// reference's account.
    unsafe fn dealloc(self) {
        // SAFETY: the vtable matches the cell; the caller guarantees that
        // nobody else can reach it.
        unsafe { (self.header().vtable.dealloc)(self.ptr) }
    }

    /// Moves the task's output into `dst` if the task is complete;
    /// otherwise registers `waker` to be woken when it is.
    ///
    /// # Safety
    ///
    /// `dst` must point to a `Poll<Result<T, JoinError>>` where `T` is the
    /// task's output type, and the caller must hold `JOIN_INTEREST`.
    pub(crate) unsafe fn try_read_output(&self, dst: *mut (), waker: &Waker) {
        // SAFETY: forwarded from the caller; `self` keeps the task alive.
        unsafe { (self.header().vtable.try_read_output)(self.ptr, dst, waker) }
    }

    /// Drops the `JoinHandle`'s interest and its reference.
    pub(crate) fn drop_join_handle(self) {
        if self.header().state.drop_join_handle_fast() {
            // The fast path gave the reference up with the interest.
            self.forget_reference();
            return;
        }
        // SAFETY: the vtable matches the cell; `self` is the JoinHandle's
        // reference, which the slow path drops.
        unsafe { (self.header().vtable.drop_join_handle_slow)(self.ptr) }
    }

    /// Asks the task to stop (`JoinHandle::abort`).
    pub(crate) fn remote_abort(&self) {
        if self.header().state.transition_to_notified_and_cancel() == TransitionToNotified::Submit {
            // SAFETY: `Submit` counted a reference for the `Notified`.
            unsafe { self.duplicate() }.schedule();
        }
    }
}

fn vtable<F, S>() -> &'static Vtable
where
    F: Future + 'static,
    F::Output: 'static,
    S: Schedule,
{
    &Vtable {
        poll: poll::<F, S>,
        schedule: schedule::<F, S>,
        dealloc: dealloc::<F, S>,
        try_read_output: try_read_output::<F, S>,
        drop_join_handle_slow: drop_join_handle_slow::<F, S>,
        shutdown: shutdown::<F, S>,
    }
}

/// # Safety
/// `ptr` must point to a live `Cell<F, S>`.
unsafe fn cell<'a, F: Future, S>(ptr: NonNull<Header>) -> &'a Cell<F, S> {
    // SAFETY: `Header` is the first field of the `repr(C)` cell, and the
    // caller guarantees the cell is alive and of this type.
    unsafe { ptr.cast::<Cell<F, S>>().as_ref() }
}

/// # Safety
///
/// `ptr` points to a live `Cell<F, S>`, and the caller hands over one
/// reference (the `Notified`'s).
unsafe fn schedule<F: Future, S: Schedule>(ptr: NonNull<Header>) {
    // SAFETY: the caller holds a reference and hands it over.
    let (cell, task) = unsafe { (cell::<F, S>(ptr), RawTask::from_raw(ptr)) };
    cell.scheduler.schedule(super::Notified(task));
}

/// # Safety
///
/// `ptr` points to a `Cell<F, S>` made by `RawTask::new` that no reference
/// reaches any more.
unsafe fn dealloc<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the last reference is gone, so nobody else can reach the
    // cell; it was made by `Box::new` in `RawTask::new`.
    drop(unsafe { Box::from_raw(ptr.cast::<Cell<F, S>>().as_ptr()) });
}

/// # Safety
///
/// `ptr` points to a live `Cell<F, S>`, and the caller hands over the
/// `Notified` reference.
unsafe fn poll<F, S>(ptr: NonNull<Header>)
where
    F: Future,
    S: Schedule,
{
    // SAFETY: the caller hands over the `Notified` reference.
    let (cell, task) = unsafe { (cell::<F, S>(ptr), RawTask::from_raw(ptr)) };
    match cell.header.state.transition_to_running() {
        TransitionToRunning::Success => {}
        TransitionToRunning::Cancelled => {
            cancel_future(cell);
            complete(cell, Some(task));
            return;
        }
        TransitionToRunning::Failed => {
            task.drop_reference();
            return;
        }
    }

    // A waker that borrows the `Notified` reference instead of adding one.
    let waker = ManuallyDrop::new(
        // SAFETY: the vtable's functions uphold the RawWaker contract for a
        // pointer to a live task header.
        unsafe { Waker::from_raw(RawWaker::new(ptr.as_ptr() as *const (), &WAKER_VTABLE)) },
    );
    let mut cx = Context::from_waker(&waker);
    cell.header.trace.begin_poll();
    let res = panic::catch_unwind(AssertUnwindSafe(|| {
        let _current = super::id::enter(cell.header.id);
        cell.stage.with_mut(|stage| {
            // SAFETY: RUNNING is set, so this thread owns the stage, and the
            // cell is never moved while the task is alive.
            let stage = unsafe { &mut *stage };
            let Stage::Running(fut) = stage else {
                unreachable!("polled a task whose future is gone")
            };
            // SAFETY: the future lives in the heap cell and is never moved
            // until it is dropped in place.
            let fut = unsafe { Pin::new_unchecked(fut) };
            crate::coop::with_budget(|| fut.poll(&mut cx))
        })
    }));
    match res {
        Ok(Poll::Ready(out)) => {
            set_stage(cell, Stage::Finished(Ok(out)));
            complete(cell, Some(task));
        }
        Ok(Poll::Pending) => match cell.header.state.transition_to_idle() {
            TransitionToIdle::Ok => {
                cell.header.trace.parked();
                cell.header.since.note_recent();
                task.drop_reference();
            }
            TransitionToIdle::OkNotified => cell.scheduler.yield_now(super::Notified(task)),
            TransitionToIdle::Cancelled => {
                cancel_future(cell);
                complete(cell, Some(task));
            }
        },
        Err(panic) => {
            set_stage(
                cell,
                Stage::Finished(Err(JoinError::panic(cell.header.id, panic))),
            );
            complete(cell, Some(task));
        }
    }
}

/// # Safety
///
/// `ptr` points to a live `Cell<F, S>` that the caller keeps alive with a
/// reference of its own for the whole call.
unsafe fn shutdown<F, S>(ptr: NonNull<Header>)
where
    F: Future,
    S: Schedule,
{
    // SAFETY: the caller holds a reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    if cell.header.state.transition_to_shutdown() {
        cancel_future(cell);
        // The caller's reference stays the caller's.
        complete(cell, None);
    }
}

/// Replaces the stage; the caller owns it (RUNNING, or complete without
/// join interest).
fn set_stage<F: Future, S>(cell: &Cell<F, S>, new: Stage<F>) {
    // Dropping the old stage runs user code (the future's or the output's
    // destructor); a panic there must not unwind into the worker.
    let old = cell.stage.with_mut(|stage| {
        // SAFETY: the caller owns the stage exclusively.
        unsafe { std::mem::replace(&mut *stage, Stage::Consumed) }
    });
    let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(old)));
    cell.stage.with_mut(|stage| {
        // SAFETY: as above.
        unsafe { *stage = new };
    });
}

fn cancel_future<F: Future, S>(cell: &Cell<F, S>) {
    let old = cell.stage.with_mut(|stage| {
        // SAFETY: RUNNING is set: this thread owns the stage.
        unsafe { std::mem::replace(&mut *stage, Stage::Consumed) }
    });
    let err = match panic::catch_unwind(AssertUnwindSafe(|| drop(old))) {
        Ok(()) => JoinError::cancelled(cell.header.id),
        Err(panic) => JoinError::panic(cell.header.id, panic),
    };
    set_stage(cell, Stage::Finished(Err(err)));
}

/// Publishes the output, wakes the joiner, leaves the owned list, and drops
/// the references this path held: the owned list's, and `running` (the
/// `Notified` reference of a poll), if given. Without `running` the caller
/// keeps a reference of its own across the call.
fn complete<F: Future, S: Schedule>(cell: &Cell<F, S>, running: Option<RawTask>) {
    let prev = cell.header.state.transition_to_complete();
    if !prev.is_join_interested() {
        // Nobody will read the output: drop it here, on the task side.
        set_stage(cell, Stage::Consumed);
    } else if prev.is_join_waker_set() {
        cell.join_waker.with(|w| {
            // SAFETY: JOIN_WAKER was set when COMPLETE was, so the JoinHandle
            // no longer writes the slot.
            if let Some(w) = unsafe { &*w } {
                w.wake_by_ref();
            }
        });
    }
    let released = cell.scheduler.release(&cell.header);
    let n = usize::from(released.is_some()) + usize::from(running.is_some());
    // Both references are given up in the one decrement below.
    if let Some(list_ref) = released {
        list_ref.forget_reference();
    }
    let last = n > 0 && cell.header.state.ref_dec_n(n);
    match running {
        // SAFETY: that decrement took the last references.
        Some(task) if last => unsafe { task.dealloc() },
        Some(task) => task.forget_reference(),
        None => debug_assert!(!last, "the caller holds a reference"),
    }
}

/// # Safety
///
/// As [`RawTask::try_read_output`], with `ptr` pointing to a live
/// `Cell<F, S>` whose `F::Output` is the type behind `dst`.
unsafe fn try_read_output<F: Future, S>(ptr: NonNull<Header>, dst: *mut (), waker: &Waker) {
    // SAFETY: the JoinHandle holds a reference.
    let cell = unsafe { cell::<F, S>(ptr) };
    if !can_read_output(&cell.header, &cell.join_waker, waker) {
        return;
    }
    let stage = cell.stage.with_mut(|stage| {
        // SAFETY: COMPLETE with JOIN_INTEREST: the JoinHandle owns the output.
        unsafe { std::mem::replace(&mut *stage, Stage::Consumed) }
    });
    let Stage::Finished(out) = stage else {
        panic!("JoinHandle polled after it returned its output")
    };
    // SAFETY: the caller guarantees `dst` has the output's type.
    let dst = unsafe { &mut *(dst as *mut Poll<Result<F::Output, JoinError>>) };
    *dst = Poll::Ready(out);
}

/// Returns `true` if the task is complete; otherwise makes sure `waker`
/// will be woken when it completes.
fn can_read_output(header: &Header, slot: &UnsafeCell<Option<Waker>>, waker: &Waker) -> bool {
    let snapshot = header.state.load();
    if snapshot.is_complete() {
        return true;
    }
    if snapshot.is_join_waker_set() {
        let same = slot.with(|w| {
            // SAFETY: the task side only reads the slot; we only read too.
            unsafe { &*w }.as_ref().is_some_and(|w| w.will_wake(waker))
        });
        if same {
            return false;
        }
        // Take the slot back before replacing the waker.
        if header.state.unset_join_waker().is_err() {
            return true;
        }
    }
    slot.with_mut(|w| {
        // SAFETY: JOIN_WAKER is clear, so the task side does not touch the slot.
        unsafe { *w = Some(waker.clone()) };
    });
    header.state.set_join_waker().is_err()
}

/// # Safety
///
/// `ptr` points to a live `Cell<F, S>`, and the caller is the `JoinHandle`
/// handing over its reference.
unsafe fn drop_join_handle_slow<F: Future, S>(ptr: NonNull<Header>) {
    // SAFETY: the JoinHandle hands its reference over.
    let (cell, task) = unsafe { (cell::<F, S>(ptr), RawTask::from_raw(ptr)) };
    if cell.header.state.unset_join_interested().is_err() {
        // Complete with join interest: the output is ours to drop.
        set_stage(cell, Stage::Consumed);
    }
    task.drop_reference();
}

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

/// The header of the task behind `waker`, if it is one of this runtime's
/// task wakers (its vtable says so).
pub(crate) fn header_of(waker: &Waker) -> Option<&Header> {
    if !std::ptr::eq(waker.vtable(), &WAKER_VTABLE) {
        return None;
    }
    // SAFETY: a waker of `WAKER_VTABLE` holds a reference to a live task
    // (or borrows the polling worker's), which `waker` keeps for as long as
    // the returned borrow of it.
    Some(unsafe { waker_header(waker.data()) })
}

/// The task a waker's data pointer names.
///
/// # Safety
///
/// `data` comes from a waker of [`WAKER_VTABLE`] that the caller holds (or
/// consumes): a non-null pointer to a live task's header, for as long as
/// the returned value lives.
unsafe fn waker_header<'a>(data: *const ()) -> &'a Header {
    // SAFETY: as the caller guarantees.
    unsafe { &*(data as *const Header) }
}

/// # Safety
///
/// `data` is a live waker's, as for [`waker_header`].
unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: the caller's waker keeps the task alive.
    unsafe { waker_header(data) }.state.ref_inc();
    RawWaker::new(data, &WAKER_VTABLE)
}

/// # Safety
///
/// `data` is a live waker's, which this call consumes (with its reference).
unsafe fn waker_wake(data: *const ()) {
    // SAFETY: the waker's reference is handed over; the pointer is non-null
    // because wakers are only made from task headers.
    let task = unsafe { RawTask::from_raw(NonNull::new_unchecked(data as *mut Header)) };
    match task.header().state.transition_to_notified_by_val() {
        // The waker's reference becomes the `Notified`'s.
        TransitionToNotified::Submit => task.schedule(),
        // SAFETY: that was the last reference.
        TransitionToNotified::Dealloc => unsafe { task.dealloc() },
        // The transition dropped the waker's reference.
        TransitionToNotified::DoNothing => task.forget_reference(),
    }
}

/// # Safety
///
/// `data` is a live waker's, which stays alive.
unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: the caller's waker keeps the task alive.
    let header = unsafe { waker_header(data) };
    if header.state.transition_to_notified_by_ref() == TransitionToNotified::Submit {
        // SAFETY: `Submit` counted a reference for the `Notified`.
        let task = unsafe { RawTask::from_raw(NonNull::from(header)) };
        task.schedule();
    }
}

/// # Safety
///
/// `data` is a live waker's, which this call consumes (with its reference).
unsafe fn waker_drop(data: *const ()) {
    // SAFETY: the waker's reference is handed over.
    let task = unsafe { RawTask::from_raw(NonNull::new_unchecked(data as *mut Header)) };
    task.drop_reference();
}

/// The payload of a task that panicked.
pub(crate) type Panic = Box<dyn Any + Send + 'static>;

impl Header {
    /// The address of the task this header heads: its identity.
    pub(crate) fn addr(&self) -> usize {
        self as *const Header as usize
    }

    /// The task's key in its owned-task list; `usize::MAX` if it is in
    /// none.
    pub(crate) fn owned_key(&self) -> usize {
        // Relaxed: written once before the task is shared, read by the
        // runtime that wrote it.
        match self.owned_key.load(Ordering::Relaxed) {
            u32::MAX => usize::MAX,
            key => key as usize,
        }
    }

    /// Notes the task's key in its owned-task list.
    ///
    /// # Panics
    ///
    /// If the key does not fit in 32 bits (some hundred million tasks
    /// alive in one list shard at once).
    pub(crate) fn set_owned_key(&self, key: usize) {
        let key = u32::try_from(key)
            .ok()
            .filter(|&k| k != u32::MAX)
            .expect("more than 2^32 - 1 tasks in one owned-task list");
        self.owned_key.store(key, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// Seven words: the state, the vtable, the owned-list key beside the
    /// park time, the spawn site, the wait record (two words), the id.
    #[test]
    fn header_is_seven_words() {
        assert_eq!(std::mem::size_of::<super::Header>(), 7 * 8);
    }
}
