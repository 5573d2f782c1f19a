//! The registered descriptors: epoll tokens to [`PdInner`]s.
//!
//! A token is the slab index in its low 32 bits and a generation in the
//! high 32. The generation of each registration is new (it never is 0, so
//! no token equals the wake eventfd's), so an event that was harvested for
//! a descriptor since closed — maybe its number and its slot reused by now
//! — names a generation that no longer matches and is dropped.

use std::sync::Arc;

use slab::Slab;

use super::half::Half;
use super::poll_desc::PdInner;

#[derive(Default)]
pub(crate) struct Registry {
    slots: Slab<Arc<PdInner>>,
    next_gen: u32,
}

impl Registry {
    /// Makes a new registration; `add` puts its token in the epoll
    /// instance, and on failure nothing is registered.
    pub(crate) fn insert<E>(
        &mut self,
        add: impl FnOnce(u64) -> Result<(), E>,
    ) -> Result<Arc<PdInner>, E> {
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        let entry = self.slots.vacant_entry();
        let token = (u64::from(self.next_gen) << 32) | entry.key() as u64;
        add(token)?;
        let inner = Arc::new(PdInner {
            token,
            read: Half::new(),
            write: Half::new(),
        });
        entry.insert(inner.clone());
        Ok(inner)
    }

    /// Removes `pd`'s registration; returns `false` if it was gone already.
    pub(crate) fn remove(&mut self, pd: &Arc<PdInner>) -> bool {
        let idx = slot_of(pd.token);
        if self.slots.get(idx).is_some_and(|p| Arc::ptr_eq(p, pd)) {
            self.slots.remove(idx);
            true
        } else {
            false
        }
    }

    /// The live registration an event's token names, if any.
    pub(crate) fn get(&self, token: u64) -> Option<&Arc<PdInner>> {
        self.slots
            .get(slot_of(token))
            .filter(|pd| pd.token == token)
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn all(&self) -> Vec<Arc<PdInner>> {
        self.slots.iter().map(|(_, pd)| pd.clone()).collect()
    }
}

fn slot_of(token: u64) -> usize {
    (token & 0xFFFF_FFFF) as usize
}
