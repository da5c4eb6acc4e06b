//! The connections a server has, by [`ConnId`]: a slab with generations so that a stale id
//! never reaches a newer connection in the same slot.

use std::net::SocketAddr;

use wsproto::Connection;

use super::ConnId;

/// What the runtime-independent server knows of one connection; the driver keeps its socket
/// (and whatever else its runtime needs) in its own table under the same [`ConnId`].
pub(crate) struct Entry<S> {
    pub(crate) conn: Connection,
    pub(crate) peer: SocketAddr,
    /// The handler's state for the connection: `Some` from `on_open` on (so `on_close` is owed)
    /// until `on_close` takes it back.
    pub(crate) state: Option<S>,
    /// Accepted past `max_connections`: answered 503 at the handshake.
    pub(crate) over_limit: bool,
    /// Reading stopped until the outgoing queue drains (backpressure).
    pub(crate) read_paused: bool,
    /// Queued in the dirty list for a write.
    pub(crate) dirty: bool,
}

/// Connections by index, with generations so a stale [`ConnId`] never reaches a new one.
pub(crate) struct Slab<S> {
    slots: Vec<(u32, Option<Entry<S>>)>,
    free: Vec<usize>,
    len: usize,
}

impl<S> Default for Slab<S> {
    fn default() -> Self {
        Slab { slots: Vec::new(), free: Vec::new(), len: 0 }
    }
}

impl<S> Slab<S> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, entry: Entry<S>) -> ConnId {
        self.len += 1;
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push((0, None));
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.0 = slot.0.wrapping_add(1);
        slot.1 = Some(entry);
        ConnId { index: index as u32, generation: slot.0 }
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Entry<S>> {
        match self.slots.get_mut(id.index as usize) {
            Some((generation, Some(entry))) if *generation == id.generation => Some(entry),
            _ => None,
        }
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&Entry<S>> {
        match self.slots.get(id.index as usize) {
            Some((generation, Some(entry))) if *generation == id.generation => Some(entry),
            _ => None,
        }
    }

    pub(crate) fn id_at(&self, index: usize) -> Option<ConnId> {
        match self.slots.get(index) {
            Some((generation, Some(_))) => Some(ConnId { index: index as u32, generation: *generation }),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Entry<S>> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.0 != id.generation || slot.1.is_none() {
            return None;
        }
        self.len -= 1;
        self.free.push(id.index as usize);
        slot.1.take()
    }

    pub(crate) fn ids(&self) -> Vec<ConnId> {
        (0..self.slots.len()).filter_map(|i| self.id_at(i)).collect()
    }

    /// Every connection with its entry, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnId, &Entry<S>)> {
        self.slots.iter().enumerate().filter_map(|(index, (generation, entry))| {
            entry.as_ref().map(|entry| (ConnId { index: index as u32, generation: *generation }, entry))
        })
    }

    /// Every connection with its entry, mutably, in slot order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (ConnId, &mut Entry<S>)> {
        self.slots.iter_mut().enumerate().filter_map(|(index, (generation, entry))| {
            entry.as_mut().map(|entry| (ConnId { index: index as u32, generation: *generation }, entry))
        })
    }
}
