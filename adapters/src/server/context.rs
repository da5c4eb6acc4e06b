//! What callbacks act through: the registry of connections, sends, broadcast and closes.

use std::net::SocketAddr;
use std::time::Instant;

use wsproto::{CloseCode, Connection, ConnectionState, Message, PreparedFrame, Request, SendError};

use super::registry::{Entry, Slab};
use super::{ConnId, ServerOptions};

/// What callbacks use to act on connections and reach their state. Sends are queued at once and
/// written when the callback returns, together with everything else queued in the same loop
/// turn.
///
/// `S` is the handler's [`Handler::State`](super::Handler::State).
pub struct Context<S = ()> {
    pub(crate) slab: Slab<S>,
    pub(crate) dirty: Vec<ConnId>,
    pub(crate) options: ServerOptions,
    pub(crate) shutting_down: bool,
    pub(crate) now: Instant,
    /// The request of the connection whose `on_open` runs: the connection itself keeps it
    /// only with [`Config::keep_handshake`](wsproto::Config::keep_handshake).
    pub(crate) opening: Option<(ConnId, Box<Request>)>,
}

impl<S> Context<S> {
    pub(crate) fn new(options: ServerOptions, now: Instant) -> Self {
        Context { slab: Slab::default(), dirty: Vec::new(), options, shutting_down: false, now, opening: None }
    }

    /// The time of the current loop turn.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The server's options.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// How many connections exist (open, handshaking or closing).
    pub fn connection_count(&self) -> usize {
        self.slab.len()
    }

    /// The ids of all open connections.
    pub fn open_connections(&self) -> Vec<ConnId> {
        self.slab.iter().filter(|(_, e)| e.conn.state() == ConnectionState::Open).map(|(id, _)| id).collect()
    }

    /// The handler's state of a connection, from the end of `on_open` until `on_close`.
    pub fn state(&self, id: ConnId) -> Option<&S> {
        self.slab.get(id).and_then(|e| e.state.as_ref())
    }

    /// The handler's state of a connection, mutably.
    pub fn state_mut(&mut self, id: ConnId) -> Option<&mut S> {
        self.slab.get_mut(id).and_then(|e| e.state.as_mut())
    }

    /// Every connection that has a state (opened, `on_close` not yet called), with it.
    pub fn states(&self) -> impl Iterator<Item = (ConnId, &S)> {
        self.slab.iter().filter_map(|(id, e)| e.state.as_ref().map(|state| (id, state)))
    }

    /// Every connection that has a state, with it mutably.
    pub fn states_mut(&mut self) -> impl Iterator<Item = (ConnId, &mut S)> {
        self.slab.iter_mut().filter_map(|(id, e)| e.state.as_mut().map(|state| (id, state)))
    }

    /// The peer's address.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.slab.get(id).map(|e| e.peer)
    }

    /// The handshake request of a connection: in [`Handler::on_request`](super::Handler::on_request) and
    /// [`on_open`](super::Handler::on_open); later only with
    /// [`Config::keep_handshake`](wsproto::Config::keep_handshake).
    pub fn request(&self, id: ConnId) -> Option<&Request> {
        match &self.opening {
            Some((opening, request)) if *opening == id => Some(request),
            _ => self.slab.get(id).and_then(|e| e.conn.request()),
        }
    }

    /// The subprotocol agreed with a connection.
    pub fn subprotocol(&self, id: ConnId) -> Option<&str> {
        self.slab.get(id).and_then(|e| e.conn.subprotocol())
    }

    /// Bytes waiting to be written to a connection.
    pub fn queued_bytes(&self, id: ConnId) -> usize {
        self.slab.get(id).map_or(0, |e| e.conn.queued_bytes())
    }

    /// Sends a message to one connection.
    pub fn send(&mut self, id: ConnId, message: Message) -> Result<(), SendError> {
        self.with_connection(id, |conn| conn.send(message).map_err(|e| e.error))
    }

    /// Sends a message to one connection without compressing it (see
    /// [`Connection::send_uncompressed`](wsproto::Connection::send_uncompressed)).
    pub fn send_uncompressed(&mut self, id: ConnId, message: Message) -> Result<(), SendError> {
        self.with_connection(id, |conn| conn.send_uncompressed(message).map_err(|e| e.error))
    }

    /// Sends a text message to one connection.
    pub fn send_text(&mut self, id: ConnId, text: &str) -> Result<(), SendError> {
        self.with_connection(id, |conn| conn.send_text(text))
    }

    /// Sends a binary message to one connection.
    pub fn send_binary(&mut self, id: ConnId, data: &[u8]) -> Result<(), SendError> {
        self.with_connection(id, |conn| conn.send_binary(data))
    }

    /// Sends a prepared frame to one connection (no copy).
    pub fn send_prepared(&mut self, id: ConnId, frame: &PreparedFrame) -> Result<(), SendError> {
        self.with_connection(id, |conn| conn.send_prepared(frame))
    }

    /// Sends a frame, encoded once, to every open connection. Answers how many got it.
    pub fn broadcast(&mut self, frame: &PreparedFrame) -> usize {
        self.broadcast_filtered(frame, None)
    }

    /// Sends a frame, encoded once, to every open connection but `except`. Answers how many
    /// got it.
    pub fn broadcast_except(&mut self, except: ConnId, frame: &PreparedFrame) -> usize {
        self.broadcast_filtered(frame, Some(except))
    }

    /// Sends a frame, encoded once, to every open connection whose state `to` picks (a room's
    /// members, say), without collecting their ids first. Answers how many got it.
    pub fn broadcast_to(&mut self, frame: &PreparedFrame, mut to: impl FnMut(ConnId, &S) -> bool) -> usize {
        self.broadcast_picked(frame, |id, entry| entry.state.as_ref().is_some_and(|state| to(id, state)))
    }

    pub(crate) fn broadcast_filtered(&mut self, frame: &PreparedFrame, except: Option<ConnId>) -> usize {
        self.broadcast_picked(frame, |id, _| Some(id) != except)
    }

    /// Queues the frame on every open connection `pick` takes, in one walk over the slab (each
    /// entry looked at once, no ids collected).
    fn broadcast_picked(&mut self, frame: &PreparedFrame, mut pick: impl FnMut(ConnId, &Entry<S>) -> bool) -> usize {
        let code = self.options.slow_consumer_code;
        let dirty = &mut self.dirty;
        let mut delivered = 0;
        for (id, entry) in self.slab.iter_mut() {
            if entry.conn.state() != ConnectionState::Open || !pick(id, entry) {
                continue;
            }
            if command_entry(id, entry, dirty, code, |conn| conn.send_prepared(frame)).is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// Starts the close handshake with a connection.
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.with_connection(id, |conn| Ok(conn.close(code, reason)?))
    }

    /// Starts the close handshake with a connection for a reason of the application's own
    /// (e.g. [`LocalCause::Policy`](wsproto::LocalCause::Policy) for a rate limit): the
    /// handler's `on_close` then sees [`CloseCause::Local`](wsproto::CloseCause::Local) with it.
    pub fn close_with_cause(
        &mut self,
        id: ConnId,
        code: CloseCode,
        reason: &str,
        cause: wsproto::LocalCause,
    ) -> Result<(), SendError> {
        self.with_connection(id, |conn| Ok(conn.close_with_cause(code, reason, cause)?))
    }

    /// Graceful shutdown (see [`Handle::shutdown`](super::Handle::shutdown)).
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
    }

    /// Runs a command on a connection, marks it for writing, and applies the slow-consumer
    /// policy when its queue is full.
    fn with_connection(
        &mut self,
        id: ConnId,
        command: impl FnOnce(&mut Connection) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        let entry = self.slab.get_mut(id).ok_or(SendError::Usage(wsproto::UsageError::Closed))?;
        command_entry(id, entry, &mut self.dirty, self.options.slow_consumer_code, command)
    }

    /// Queues a connection for the driver to write (and re-examine).
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(entry) = self.slab.get_mut(id) {
            if !entry.dirty {
                entry.dirty = true;
                self.dirty.push(id);
            }
        }
    }
}

/// Runs a command on a connection's entry, queues it in `dirty` for writing, and applies the
/// slow-consumer policy (close with `slow_consumer_code`) when its queue is full.
fn command_entry<S>(
    id: ConnId,
    entry: &mut Entry<S>,
    dirty: &mut Vec<ConnId>,
    slow_consumer_code: CloseCode,
    command: impl FnOnce(&mut Connection) -> Result<(), SendError>,
) -> Result<(), SendError> {
    let result = command(&mut entry.conn);
    if let Err(SendError::QueueFull { queued, limit }) = result {
        let code = slow_consumer_code;
        tracing::warn!(%id, peer = %entry.peer, queued, limit, "slow consumer: closing with {code}");
        // The close frame waits behind what the peer does not read; the core's close and
        // drain deadlines bound that, and `on_close` sees `Local(SlowConsumer)`.
        let _ = entry.conn.close_with_cause(code, "slow consumer", wsproto::LocalCause::SlowConsumer);
    }
    if !entry.dirty {
        entry.dirty = true;
        dirty.push(id);
    }
    result
}
