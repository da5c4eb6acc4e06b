//! The connection state machine (RFC 6455 §4-§7) over sub-structs, one per concern:
//!
//! - `opening`: the opening handshake (§4), state that exists only until the connection opens;
//! - `receive`: the receive path, frames in and events out (§5, §6.2, RFC 7692 §6.2);
//! - `send`: the send path, the application's commands and the outgoing queue (§5, §6.1);
//! - `closing`: every state transition, from opening to the close handshake (§7) and the end;
//! - `timers`: handshake, keep-alive, close and drain deadlines, handled in one `match`.
//!
//! This file holds the public [`Connection`]: its getters, the dispatch of the inputs (receive,
//! end of file, timeout) and the outputs the driver polls.

mod closing;
mod opening;
mod receive;
mod send;
mod timers;
mod upgrade;

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::config::Config;
use crate::deflate::Session as Compression;
use crate::error::UsageError;
use crate::event::Event;
use crate::frame::PreparedFrame;
use crate::handshake::OutgoingRequest;
use crate::handshake::{Request, Response};
use crate::random::OsRandom;
use crate::random::RandomSource;
use crate::role::Role;
use crate::timer::{Timer, TimerTable};

use closing::Closing;
use opening::Opening;
use receive::Receiver;
use send::Sender;
pub use upgrade::UpgradeError;

pub use receive::{MAX_BUFFERED_FRAME, MAX_INFLATED_CHUNK};

/// Where a connection is in its life, as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The opening handshake is under way (server: possibly waiting for `accept`).
    Handshaking,
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's; messages may still arrive.
    Closing,
    /// Over: the `Closed` event has been queued.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Server: reading the request head.
    AwaitingRequest,
    /// Server: a request was reported; waiting for `accept` or `respond`.
    RequestPending {
        upgrade: bool,
    },
    /// Client: reading the response head.
    AwaitingResponse,
    Open,
    /// We sent close; waiting for the peer's.
    Closing,
    Closed,
}

/// One WebSocket connection, server or client, as a pure state machine (see the crate docs for
/// the run loop).
///
/// Methods fall in four kinds:
/// - getters (`&self`): [`state`](Self::state), [`role`](Self::role), [`subprotocol`](Self::subprotocol), ...
/// - inputs, each taking the current time: [`receive`](Self::receive),
///   [`receive_eof`](Self::receive_eof), [`handle_timeout`](Self::handle_timeout),
///   [`advance_outgoing`](Self::advance_outgoing) (bytes written);
/// - application commands: [`accept`](Self::accept), [`respond`](Self::respond),
///   [`send_text`](Self::send_text), [`send_binary`](Self::send_binary), [`send`](Self::send),
///   [`send_uncompressed`](Self::send_uncompressed), [`send_fragment`](Self::send_fragment), [`send_prepared`](Self::send_prepared),
///   [`ping`](Self::ping), [`pong`](Self::pong), [`close`](Self::close),
///   [`close_with_cause`](Self::close_with_cause), [`abort`](Self::abort);
/// - outputs, to drain after every input or command: [`poll_event`](Self::poll_event),
///   [`outgoing`](Self::outgoing), [`poll_timeout`](Self::poll_timeout),
///   [`should_close_transport`](Self::should_close_transport).
pub struct Connection {
    role: Role,
    config: Arc<Config>,
    /// Only `closing` writes it.
    state: State,
    /// The last time passed in; commands that start timers count from it.
    now: Instant,
    /// The opening handshake's state, dropped once the connection opens or ends.
    opening: Option<Box<Opening>>,
    /// Server: the request answered. Kept for [`request`](Self::request).
    request: Option<Box<Request>>,
    /// Client: the server's response. Kept for [`response`](Self::response).
    response: Option<Box<Response>>,
    subprotocol: Option<Box<str>>,
    /// permessage-deflate, when negotiated (RFC 7692): both paths use it.
    /// Boxed: most connections never negotiate it, and the session is large.
    compression: Option<Box<Compression>>,
    recv: Receiver,
    send: Sender,
    events: VecDeque<Event>,
    closing: Closing,
    timers: TimerTable,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("queued", &self.send.out.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn new(role: Role, config: Arc<Config>, now: Instant, rng: Option<Box<dyn RandomSource>>) -> Connection {
        let mut timers = TimerTable::default();
        if let Some(timeout) = config.handshake_timeout {
            timers.set(Timer::Handshake, now + timeout);
        }
        let state = match role {
            Role::Server => State::AwaitingRequest,
            Role::Client => State::AwaitingResponse,
        };
        Connection {
            role,
            config,
            state,
            now,
            opening: Some(Box::default()),
            request: None,
            response: None,
            subprotocol: None,
            compression: None,
            recv: Receiver::default(),
            send: Sender::new(rng),
            events: VecDeque::new(),
            closing: Closing::default(),
            timers,
        }
    }

    /// A server connection for a freshly accepted transport; it starts reading a request.
    pub fn server(config: Arc<Config>, now: Instant) -> Connection {
        Connection::new(Role::Server, config, now, None)
    }

    /// A client connection: the upgrade request is queued at once, with a fresh random key.
    pub fn client(config: Arc<Config>, request: OutgoingRequest, now: Instant) -> Result<Connection, UsageError> {
        Connection::client_with_rng(config, request, now, Box::new(OsRandom::new()))
    }

    /// A client connection that takes its key and masking keys from `rng` (for tests).
    pub fn client_with_rng(
        config: Arc<Config>,
        request: OutgoingRequest,
        now: Instant,
        mut rng: Box<dyn RandomSource>,
    ) -> Result<Connection, UsageError> {
        let (head, client) = Opening::client_request(&config, request, rng.as_mut())?;
        let mut conn = Connection::new(Role::Client, config, now, Some(rng));
        conn.send.out.push_bytes(&head);
        if let Some(opening) = conn.opening.as_mut() {
            opening.client = Some(client);
        }
        Ok(conn)
    }

    // ---- getters ----

    /// Server or client.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> ConnectionState {
        match self.state {
            State::AwaitingRequest | State::RequestPending { .. } | State::AwaitingResponse => {
                ConnectionState::Handshaking
            }
            State::Open => ConnectionState::Open,
            State::Closing => ConnectionState::Closing,
            State::Closed => ConnectionState::Closed,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The subprotocol agreed in the handshake.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The permessage-deflate parameters agreed in the handshake, if it was negotiated.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub fn compression(&self) -> Option<crate::DeflateParams> {
        self.compression.as_ref().map(|c| c.params())
    }

    /// Server: the request being answered or accepted; once the connection is open, only
    /// with [`Config::keep_handshake`].
    pub fn request(&self) -> Option<&Request> {
        self.request.as_deref()
    }

    /// Client: the server's handshake response, once it arrived; once the connection is open,
    /// only with [`Config::keep_handshake`].
    pub fn response(&self) -> Option<&Response> {
        self.response.as_deref()
    }

    /// Bytes waiting in the outgoing queue.
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.send.out.len()
    }

    /// Whether the adapter should read from the transport now. False while a server waits for
    /// the application to answer a request, while inflated data waits to be taken (take the
    /// events first), and once the transport should close.
    #[must_use]
    pub fn wants_read(&self) -> bool {
        !self.closing.close_transport
            && !self.recv.inflated_waiting
            && !matches!(self.state, State::RequestPending { .. })
    }

    /// Whether the adapter should write now: bytes are queued. Keep write interest while it is
    /// true; it stays true after the connection ended until the last bytes are written (or the
    /// drain deadline dropped them, see [`Config::drain_timeout`]).
    #[must_use]
    pub fn wants_write(&self) -> bool {
        self.send.out.len() > 0
    }

    /// Whether the transport should be closed once the outgoing queue is drained: the
    /// connection has ended (a server closes TCP first, RFC 6455 §7.1.1; a client waits for
    /// the server's close or the close timeout). After the drain deadline the queue is empty,
    /// so this then means "close now".
    #[must_use]
    pub fn should_close_transport(&self) -> bool {
        self.closing.close_transport
    }

    /// The bytes [`send_prepared`](Self::send_prepared) would queue for `frame` on this
    /// connection now: the shared compressed encoding where permessage-deflate applies to it,
    /// a masked header on a client, the plain frame otherwise. For accounting a broadcast
    /// against queue limits.
    #[must_use]
    pub fn wire_len(&self, frame: &PreparedFrame) -> usize {
        self.prepared_wire_len(frame)
    }

    // ---- outputs ----

    /// The next event, if any.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if self.recv.inflated_waiting {
            self.resume_held_input();
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
        }
        // The events before the ending are taken, and whatever the application sent in answer
        // to them is queued: now the close frame may follow.
        self.apply_pending_ending();
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fills `slices` with the queued outgoing bytes, in order, for a vectored write; answers
    /// how many slices it filled (0 when nothing is queued).
    #[must_use]
    pub fn outgoing<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        self.send.out.slices(slices)
    }

    /// The first contiguous run of queued outgoing bytes, for a plain write.
    #[must_use]
    pub fn outgoing_front(&self) -> &[u8] {
        self.send.out.front()
    }

    /// Marks `n` queued bytes as written to the transport at `now` (the time the write
    /// returned). The time matters: the keep-alive pong deadline counts from when our ping was
    /// written, not from when it was queued, so a slow drain of earlier data is not taken for
    /// a dead peer. Call it after every write, with the count the write returned.
    ///
    /// # Panics
    /// If `n` exceeds [`queued_bytes`](Self::queued_bytes): the adapter acknowledged bytes it
    /// was never given.
    pub fn advance_outgoing(&mut self, now: Instant, n: usize) {
        self.now = self.now.max(now);
        self.send.out.advance(n);
        self.on_written();
    }

    /// Frees the buffers kept for reuse between writes, for a connection about to sit idle.
    pub fn release_buffers(&mut self) {
        self.send.out.release_spare();
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
        if !self.recv.frame.as_ref().is_some_and(|f| f.opcode.is_control()) {
            self.recv.control = Vec::new();
        }
    }

    // ---- inputs ----

    /// Hands the connection bytes read from the transport. Every byte is consumed: what does
    /// not yet make a whole unit (head, frame header, message) is kept, within the limits.
    pub fn receive(&mut self, now: Instant, data: &[u8]) {
        self.now = self.now.max(now);
        if data.is_empty() || self.closing.close_transport {
            return;
        }
        match self.state {
            State::AwaitingRequest | State::AwaitingResponse => self.receive_handshake(data),
            State::RequestPending { .. } => self.hold_before_answer(data),
            State::Open | State::Closing => {
                self.note_activity();
                if self.recv.inflated_waiting {
                    self.recv.held_mut().bytes.extend_from_slice(data);
                } else {
                    self.receive_frames(data);
                }
            }
            State::Closed => {}
        }
    }

    /// Hands the connection the transport's bytes in a buffer it may take them from: a whole
    /// frame of an unfragmented, uncompressed message is split off `buf` and delivered without
    /// a copy (its [`Message`](crate::Message) shares `buf`'s allocation), and an unfinished
    /// frame whose payload is at most [`MAX_BUFFERED_FRAME`] bytes is left in `buf`: append the
    /// next read to it and call again. Everything else is consumed as by
    /// [`receive`](Self::receive). So what `buf` holds afterwards is empty or the start of one
    /// frame, at most [`MAX_HEADER_LEN`](crate::frame::MAX_HEADER_LEN) + `MAX_BUFFERED_FRAME`
    /// bytes. A call with nothing appended since the last one left an unfinished frame does
    /// nothing (in particular, it is no sign of life for the keep-alive).
    ///
    /// A read buffer reused this way allocates nothing per message once messages are dropped
    /// before the next read: [`BytesMut::reserve`] then reclaims the space they shared.
    pub fn receive_buf(&mut self, now: Instant, buf: &mut BytesMut) {
        self.now = self.now.max(now);
        let left = std::mem::take(&mut self.recv.left_in_buf) as usize;
        if left > 0 && buf.len() == left {
            // Nothing appended to the unfinished frame the last call left: nothing new from
            // the peer, which must not count as a sign of life for the keep-alive (§5.5.2).
            self.recv.left_in_buf = left as u32;
            return;
        }
        if !matches!(self.state, State::Open | State::Closing) || self.recv.inflated_waiting {
            self.receive(now, buf);
            buf.clear();
            return;
        }
        if buf.is_empty() || self.closing.close_transport {
            buf.clear();
            return;
        }
        self.note_activity();
        self.receive_frames_buf(buf);
        // At most MAX_HEADER_LEN + MAX_BUFFERED_FRAME bytes (see above).
        self.recv.left_in_buf = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    }

    /// Tells the connection the transport reached end of file: the peer will send nothing more.
    /// Input still held behind inflated data (see [`wants_read`](Self::wants_read)) is processed
    /// first: the end of file then takes effect as the events are taken.
    pub fn receive_eof(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.recv.inflated_waiting && self.recv.has_held_input() {
            // Whatever the peer sent before its end of file is processed first.
            self.recv.held_mut().eof = true;
            return;
        }
        self.on_eof();
    }

    /// Fires the timers due at `now`. Harmless when nothing is due, so calling it early or
    /// twice is fine.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.fire_timers(now);
    }
}
#[cfg(all(test, target_pointer_width = "64"))]
mod size_tests {
    /// What every open connection costs before any buffer: kept small by boxing what most
    /// connections never need (the deflate session, a message in progress, the handshake).
    #[test]
    fn an_open_connection_and_an_event_stay_small() {
        assert!(std::mem::size_of::<super::Connection>() <= 456, "{}", std::mem::size_of::<super::Connection>());
        assert!(std::mem::size_of::<crate::Event>() <= 48, "{}", std::mem::size_of::<crate::Event>());
    }
}
