//! The seam between a driver (an event loop that owns sockets) and the runtime-independent
//! server: the driver reports what happened to a connection, the core runs the handler and the
//! policies, and leaves the ids whose output or interest may have changed on a dirty list for
//! the driver to write.

use std::net::SocketAddr;
use std::time::Instant;

use wsproto::{CloseCode, Connection, Event, OutgoingResponse};

use super::input::Input;
use super::registry::Entry;
use super::{Command, ConnId, Context, Handler, ServerOptions};

/// A handler and its connections, driven by an event loop.
pub(crate) struct Core<H: Handler> {
    pub(crate) ctx: Context<H::State>,
    pub(crate) handler: H,
    input: Input,
}

/// What the driver should do with a connection just accepted.
pub(crate) enum Admission {
    /// Serve it under this id.
    Admitted(ConnId),
    /// Far past the connection limit: drop the socket unanswered (not even a 503 is worth the
    /// memory).
    Refused,
}

impl<H: Handler> Core<H> {
    pub(crate) fn new(options: ServerOptions, handler: H) -> Self {
        Core { ctx: Context::new(options, Instant::now()), handler, input: Input::default() }
    }

    /// Sets the time of the loop turn that is starting.
    pub(crate) fn set_now(&mut self, now: Instant) {
        self.ctx.now = now;
    }

    pub(crate) fn now(&self) -> Instant {
        self.ctx.now
    }

    pub(crate) fn options(&self) -> &ServerOptions {
        &self.ctx.options
    }

    pub(crate) fn len(&self) -> usize {
        self.ctx.slab.len()
    }

    pub(crate) fn id_at(&self, index: usize) -> Option<ConnId> {
        self.ctx.slab.id_at(index)
    }

    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.ctx.slab.ids()
    }

    pub(crate) fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.ctx.slab.get(id).map(|e| &e.conn)
    }

    pub(crate) fn connection_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.ctx.slab.get_mut(id).map(|e| &mut e.conn)
    }

    /// A socket was accepted: applies the connection limit and registers it.
    pub(crate) fn accept(&mut self, peer: SocketAddr) -> Admission {
        let max = self.ctx.options.max_connections;
        let len = self.ctx.slab.len();
        if len >= max.saturating_add(max / 8).saturating_add(16) {
            tracing::warn!(%peer, "dropping connection: far over the connection limit");
            return Admission::Refused;
        }
        let conn = Connection::server(self.ctx.options.config.clone(), self.ctx.now);
        let entry = Entry { conn, peer, state: None, over_limit: len >= max, read_paused: false, dirty: false };
        let id = self.ctx.slab.insert(entry);
        tracing::debug!(%id, %peer, "accepted");
        Admission::Admitted(id)
    }

    /// Whether the driver should read from the connection now. Backpressure: not while its
    /// outgoing queue holds more than half its limit (then it is marked paused until
    /// [`resume_reading`](Self::resume_reading)), nor once the core wants no more input.
    pub(crate) fn may_read(&mut self, id: ConnId) -> bool {
        let pause_at = self.ctx.options.config.max_queued_bytes / 2;
        let Some(entry) = self.ctx.slab.get_mut(id) else { return false };
        if !entry.conn.wants_read() {
            return false;
        }
        if entry.conn.queued_bytes() > pause_at {
            entry.read_paused = true;
            return false;
        }
        true
    }

    /// After a write: whether a paused connection has drained enough to be read again (the
    /// driver then reads it at once, since no readiness edge will announce the bytes waiting).
    pub(crate) fn resume_reading(&mut self, id: ConnId) -> bool {
        let limit = self.ctx.options.config.max_queued_bytes / 2;
        let Some(entry) = self.ctx.slab.get_mut(id) else { return false };
        let resume = entry.read_paused && entry.conn.queued_bytes() <= limit;
        if resume {
            entry.read_paused = false;
        }
        resume
    }

    /// Bytes were read from the connection's socket.
    pub(crate) fn receive(&mut self, id: ConnId, data: &[u8]) {
        let now = self.ctx.now;
        let Some(entry) = self.ctx.slab.get_mut(id) else { return };
        self.input.receive(id, &mut entry.conn, now, data);
        self.process(id);
    }

    /// The peer ended its stream, or reading failed.
    pub(crate) fn receive_eof(&mut self, id: ConnId) {
        let now = self.ctx.now;
        let Some(entry) = self.ctx.slab.get_mut(id) else { return };
        entry.conn.receive_eof(now);
        self.process(id);
    }

    /// The connection's deadline ([`Connection::poll_timeout`]) passed.
    pub(crate) fn handle_timeout(&mut self, id: ConnId, now: Instant) {
        let Some(entry) = self.ctx.slab.get_mut(id) else { return };
        entry.conn.handle_timeout(now);
        self.process(id);
    }

    /// Writing failed: the connection is over. Reports its close to the handler (if it was news);
    /// the driver then drops the socket and calls [`remove`](Self::remove).
    pub(crate) fn write_failed(&mut self, id: ConnId) {
        let now = self.ctx.now;
        let Some(entry) = self.ctx.slab.get_mut(id) else { return };
        entry.conn.receive_eof(now);
        while let Some(entry) = self.ctx.slab.get_mut(id) {
            let Some(event) = entry.conn.poll_event() else { return };
            if let Event::Closed(closed) = event {
                if let Some(state) = entry.state.take() {
                    self.handler.on_close(&mut self.ctx, id, state, &closed);
                }
            }
        }
    }

    /// The driver dropped the connection's socket.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<SocketAddr> {
        self.input.forget(id);
        self.ctx.slab.remove(id).map(|entry| entry.peer)
    }

    /// Runs a command that came through a [`Handle`](super::Handle).
    pub(crate) fn run_command(&mut self, command: Command<H::Command>) {
        match command {
            Command::Send(id, message) => {
                let _ = self.ctx.send(id, message);
            }
            Command::Broadcast(frame, except) => {
                self.ctx.broadcast_filtered(&frame, except);
            }
            Command::Close(id, code, reason) => {
                let _ = self.ctx.close(id, code, &reason);
            }
            Command::Shutdown => self.ctx.shutting_down = true,
            Command::Application(command) => self.handler.on_command(&mut self.ctx, command),
        }
    }

    /// A shutdown was asked for (by a handle or a callback).
    pub(crate) fn shutdown_requested(&self) -> bool {
        self.ctx.shutting_down
    }

    /// Starts a graceful shutdown: every connection gets 1001. The driver stops accepting and
    /// waits, bounded by [`ServerOptions::shutdown_timeout`], until [`len`](Self::len) is 0.
    pub(crate) fn begin_shutdown(&mut self) {
        tracing::info!(connections = self.ctx.slab.len(), "shutting down");
        self.ctx.shutting_down = true;
        for id in self.ctx.slab.ids() {
            let _ = self.ctx.close_with_cause(
                id,
                CloseCode::GOING_AWAY,
                "server shutting down",
                wsproto::LocalCause::Shutdown,
            );
        }
    }

    /// Takes the ids queued for writing since the last call (empty when there are none); each
    /// is written after [`clean`](Self::clean) confirms it still exists.
    pub(crate) fn take_dirty(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.ctx.dirty)
    }

    /// Clears a connection's dirty mark before the driver writes it; `false` if it is gone.
    pub(crate) fn clean(&mut self, id: ConnId) -> bool {
        match self.ctx.slab.get_mut(id) {
            Some(entry) => {
                entry.dirty = false;
                true
            }
            None => false,
        }
    }

    /// Queues a connection for writing (e.g. its socket became writable).
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        self.ctx.mark_dirty(id);
    }

    /// Hands the connection's events to the handler.
    fn process(&mut self, id: ConnId) {
        loop {
            let Some(entry) = self.ctx.slab.get_mut(id) else { return };
            let Some(event) = entry.conn.poll_event() else { break };
            let over_limit = entry.over_limit;
            match event {
                Event::Request(request) => {
                    let decision = if over_limit || self.ctx.shutting_down {
                        Err(OutgoingResponse::service_unavailable())
                    } else {
                        self.handler.on_request(&mut self.ctx, id, &request)
                    };
                    let Some(entry) = self.ctx.slab.get_mut(id) else { return };
                    let opened = match decision {
                        Ok(accept) => match entry.conn.accept(accept) {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::warn!(%id, "accept failed: {e}");
                                let _ = entry.conn.respond(OutgoingResponse::new(500).text("accept failed\n"));
                                false
                            }
                        },
                        Err(response) => {
                            tracing::debug!(%id, status = response.status, "rejected");
                            let _ = entry.conn.respond(response);
                            false
                        }
                    };
                    self.ctx.mark_dirty(id);
                    if opened {
                        self.ctx.opening = Some((id, request));
                        let state = self.handler.on_open(&mut self.ctx, id);
                        self.ctx.opening = None;
                        if let Some(entry) = self.ctx.slab.get_mut(id) {
                            entry.state = Some(state);
                        }
                    }
                }
                Event::HttpRequest(request) => {
                    let response = self.handler.on_http(&mut self.ctx, id, &request);
                    if let Some(entry) = self.ctx.slab.get_mut(id) {
                        let _ = entry.conn.respond(response);
                    }
                    self.ctx.mark_dirty(id);
                }
                Event::Message(message) => self.handler.on_message(&mut self.ctx, id, message),
                Event::Chunk { kind, data, first, last } => {
                    self.handler.on_chunk(&mut self.ctx, id, kind, data, first, last)
                }
                Event::Closed(closed) => {
                    let state = entry.state.take();
                    tracing::debug!(%id, code = %closed.code, cause = ?closed.cause, "closed");
                    if let Some(state) = state {
                        self.handler.on_close(&mut self.ctx, id, state, &closed);
                    }
                }
                // Pings are answered by the core (auto-pong); pongs need nothing; `Connected`
                // is a client's.
                _ => {}
            }
        }
        self.ctx.mark_dirty(id);
    }
}
