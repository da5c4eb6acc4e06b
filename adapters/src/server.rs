//! A mio event loop that serves many WebSocket connections on one thread.
//!
//! The loop owns the sockets and one [`wsproto::Connection`] per socket; the application sees
//! none of that. It implements [`Handler`] and gets callbacks for requests (accept or reject),
//! opens, messages and closes, each with a [`Context`] to send, broadcast and close. Other
//! threads reach the loop through a [`Handle`] (a channel plus a mio waker).
//!
//! What the loop takes care of:
//! - non-blocking accept; reads into one buffer shared by every connection (an idle
//!   connection holds no read buffer of its own); vectored writes that resume after partial
//!   writes, with write interest only while bytes are queued;
//! - every connection's deadline (handshake, keep-alive, close) merged into the poll timeout;
//! - the connection limit (503 at the handshake), the origin and subprotocol policies of the
//!   [`Config`] (403 / 400), plain HTTP requests handed to [`Handler::on_http`];
//! - backpressure: a connection whose outgoing queue passes half its limit is not read from
//!   until it drains (TCP flow control does the rest); a send that finds the queue full closes
//!   the connection as a slow consumer with [`ServerOptions::slow_consumer_code`];
//! - graceful shutdown: 1001 to everyone, then the loop returns once all are closed;
//! - the server closes TCP first (RFC 6455 §7.1.1), half-closing and draining what the peer
//!   still sends, so our last frame is not lost to a reset.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use wsproto::{
    Accept, CloseCode, Closed, Config, Connection, ConnectionState, Event, HttpResponse, Message, PreparedFrame,
    Request, SendError,
};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// Whether a short read proves the socket drained (edge-triggered epoll on TCP), see
/// `EventLoop::read`.
const SHORT_READ_DRAINS: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The least time an ended connection gets to flush its last bytes and see the peer's FIN
/// (otherwise the config's close timeout) before the socket is dropped.
const LINGER: Duration = Duration::from_secs(2);

/// Identifies a connection for as long as it lives; never reused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// Server-wide settings; the per-connection protocol settings are in `config`.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Limits, timers and policies for every connection (origin allow-list, subprotocols,
    /// keep-alive, handshake timeout, queue limit).
    pub config: Arc<Config>,
    /// Connections beyond this many are answered 503 at the handshake.
    pub max_connections: usize,
    /// The close code for a connection whose outgoing queue is full when a send is attempted:
    /// 1008 (policy violation) or 1013 (try again later).
    pub slow_consumer_code: CloseCode,
    /// The size of the read buffer shared by all connections.
    pub read_buffer_size: usize,
    /// How long a graceful shutdown waits for connections to finish their close handshakes.
    pub shutdown_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            config: Arc::new(Config::default()),
            max_connections: 10_000,
            slow_consumer_code: CloseCode::POLICY_VIOLATION,
            read_buffer_size: 64 << 10,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// The application's side of the loop. Every method has a default except `on_message`.
pub trait Handler {
    /// A WebSocket upgrade request that passed the config's origin and subprotocol policies
    /// and the connection limit: accept it (choosing a subprotocol, adding headers) or reject
    /// it with a response. Default: accept.
    fn on_request(&mut self, ctx: &mut Context, id: ConnId, request: &Request) -> Result<Accept, HttpResponse> {
        let _ = (ctx, id, request);
        Ok(Accept::new())
    }

    /// A plain HTTP request on the same port (no `Upgrade: websocket`). Default: 404.
    fn on_http(&mut self, ctx: &mut Context, id: ConnId, request: &Request) -> HttpResponse {
        let _ = (ctx, id, request);
        HttpResponse::new(404).text("not found\n")
    }

    /// The connection is open; messages may flow.
    fn on_open(&mut self, ctx: &mut Context, id: ConnId) {
        let _ = (ctx, id);
    }

    /// A whole message arrived.
    fn on_message(&mut self, ctx: &mut Context, id: ConnId, message: Message);

    /// An opened connection ended (for any reason: see [`Closed::cause`]). The id is no longer
    /// valid for sending.
    fn on_close(&mut self, ctx: &mut Context, id: ConnId, closed: &Closed) {
        let _ = (ctx, id, closed);
    }
}

/// A command sent to the loop from another thread.
enum Command {
    Send(ConnId, Message),
    Broadcast(PreparedFrame, Option<ConnId>),
    Close(ConnId, CloseCode, String),
    Shutdown,
}

/// Reaches a running loop from any thread: sends, broadcasts, closes and shutdown are carried
/// out by the loop thread at its next wake-up. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle")
    }
}

impl Handle {
    fn submit(&self, command: Command) -> io::Result<()> {
        self.commands.send(command).map_err(|_| io::Error::new(io::ErrorKind::NotConnected, "server stopped"))?;
        self.waker.wake()
    }

    /// Sends a message to one connection.
    pub fn send(&self, id: ConnId, message: Message) -> io::Result<()> {
        self.submit(Command::Send(id, message))
    }

    /// Sends a frame to every open connection.
    pub fn broadcast(&self, frame: PreparedFrame) -> io::Result<()> {
        self.submit(Command::Broadcast(frame, None))
    }

    /// Sends a frame to every open connection but one.
    pub fn broadcast_except(&self, except: ConnId, frame: PreparedFrame) -> io::Result<()> {
        self.submit(Command::Broadcast(frame, Some(except)))
    }

    /// Starts the close handshake with one connection.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: impl Into<String>) -> io::Result<()> {
        self.submit(Command::Close(id, code, reason.into()))
    }

    /// Graceful shutdown: stop accepting, close every connection with 1001, and return from
    /// [`Server::run`] once all are closed (or the shutdown timeout passed).
    pub fn shutdown(&self) -> io::Result<()> {
        self.submit(Command::Shutdown)
    }
}

/// One socket and its protocol state.
struct Entry {
    stream: TcpStream,
    conn: Connection,
    peer: SocketAddr,
    /// `on_open` was called, so `on_close` is owed.
    opened: bool,
    /// Accepted past `max_connections`: answered 503 at the handshake.
    over_limit: bool,
    /// Reading stopped until the outgoing queue drains (backpressure).
    read_paused: bool,
    /// Queued in `Context::dirty` for a write.
    dirty: bool,
    /// The deadline this entry has in the timer heap.
    scheduled: Option<Instant>,
    /// The connection has ended: the socket is dropped at this deadline at the latest, flushed
    /// or not (a peer that stopped reading must not pin it forever).
    linger_until: Option<Instant>,
    /// Our FIN is sent; reading and discarding until the peer's FIN or the linger deadline.
    fin_sent: bool,
    /// The interest registered with the poll.
    writable_interest: bool,
}

/// Connections by index, with generations so a stale [`ConnId`] never reaches a new one.
#[derive(Default)]
struct Slab {
    slots: Vec<(u32, Option<Entry>)>,
    free: Vec<usize>,
    len: usize,
}

impl Slab {
    fn insert(&mut self, entry: Entry) -> ConnId {
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

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        match self.slots.get_mut(id.index as usize) {
            Some((generation, Some(entry))) if *generation == id.generation => Some(entry),
            _ => None,
        }
    }

    fn get(&self, id: ConnId) -> Option<&Entry> {
        match self.slots.get(id.index as usize) {
            Some((generation, Some(entry))) if *generation == id.generation => Some(entry),
            _ => None,
        }
    }

    fn id_at(&self, index: usize) -> Option<ConnId> {
        match self.slots.get(index) {
            Some((generation, Some(_))) => Some(ConnId { index: index as u32, generation: *generation }),
            _ => None,
        }
    }

    fn remove(&mut self, id: ConnId) -> Option<Entry> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.0 != id.generation || slot.1.is_none() {
            return None;
        }
        self.len -= 1;
        self.free.push(id.index as usize);
        slot.1.take()
    }

    fn ids(&self) -> Vec<ConnId> {
        (0..self.slots.len()).filter_map(|i| self.id_at(i)).collect()
    }
}

/// What callbacks use to act on connections. Sends are queued at once and written when the
/// callback returns, together with everything else queued in the same loop turn.
pub struct Context {
    slab: Slab,
    dirty: Vec<ConnId>,
    options: ServerOptions,
    shutting_down: bool,
    now: Instant,
}

impl Context {
    /// The time of the current loop turn.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// How many connections exist (open, handshaking or closing).
    pub fn connection_count(&self) -> usize {
        self.slab.len
    }

    /// The ids of all open connections.
    pub fn open_connections(&self) -> Vec<ConnId> {
        self.slab
            .ids()
            .into_iter()
            .filter(|id| self.slab.get(*id).is_some_and(|e| e.conn.state() == ConnectionState::Open))
            .collect()
    }

    /// The peer's address.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.slab.get(id).map(|e| e.peer)
    }

    /// The handshake request of a connection.
    pub fn request(&self, id: ConnId) -> Option<&Request> {
        self.slab.get(id).and_then(|e| e.conn.request())
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
        self.with_connection(id, |conn| conn.send(message))
    }

    /// Sends a message to one connection without compressing it (see
    /// [`Connection::send_uncompressed`](wsproto::Connection::send_uncompressed)).
    pub fn send_uncompressed(&mut self, id: ConnId, message: Message) -> Result<(), SendError> {
        self.with_connection(id, |conn| conn.send_uncompressed(message))
    }

    /// Sends a text message to one connection.
    pub fn send_text(&mut self, id: ConnId, text: &str) -> Result<(), SendError> {
        self.with_connection(id, |conn| conn.send_text(text))
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

    fn broadcast_filtered(&mut self, frame: &PreparedFrame, except: Option<ConnId>) -> usize {
        let mut delivered = 0;
        for index in 0..self.slab.slots.len() {
            let Some(id) = self.slab.id_at(index) else { continue };
            if Some(id) == except || self.slab.get(id).is_none_or(|e| e.conn.state() != ConnectionState::Open) {
                continue;
            }
            if self.with_connection(id, |conn| conn.send_prepared(frame)).is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// Starts the close handshake with a connection.
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.with_connection(id, |conn| conn.close(code, reason))
    }

    /// Graceful shutdown (see [`Handle::shutdown`]).
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
        let code = self.options.slow_consumer_code;
        let entry = self.slab.get_mut(id).ok_or(SendError::Closed)?;
        let result = command(&mut entry.conn);
        if let Err(SendError::QueueFull { queued, limit }) = result {
            tracing::warn!(%id, peer = %entry.peer, queued, limit, "slow consumer: closing with {code}");
            let _ = entry.conn.close(code, "slow consumer");
        }
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(id);
        }
        result
    }
}

/// A bound listener and its event loop, ready to [`run`](Server::run).
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    waker: Arc<Waker>,
    commands: Receiver<Command>,
    sender: Sender<Command>,
    options: ServerOptions,
}

impl Server {
    /// Binds a listener on `addr`.
    pub fn bind(addr: SocketAddr, options: ServerOptions) -> io::Result<Server> {
        Server::from_std(std::net::TcpListener::bind(addr)?, options)
    }

    /// Serves on a listener the caller bound (e.g. to learn its port before choosing options).
    pub fn from_std(listener: std::net::TcpListener, options: ServerOptions) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (sender, commands) = mpsc::channel();
        Ok(Server { poll, listener, waker, commands, sender, options })
    }

    /// The address the listener is bound to (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle for other threads.
    pub fn handle(&self) -> Handle {
        Handle { commands: self.sender.clone(), waker: self.waker.clone() }
    }

    /// Runs the loop until a graceful shutdown completes; answers the handler.
    pub fn run<H: Handler>(self, handler: H) -> io::Result<H> {
        let read_buffer = vec![0; self.options.read_buffer_size.max(1024)];
        let mut event_loop = EventLoop {
            poll: self.poll,
            listener: Some(self.listener),
            commands: self.commands,
            timers: BinaryHeap::new(),
            read_buffer,
            ctx: Context {
                slab: Slab::default(),
                dirty: Vec::new(),
                options: self.options,
                shutting_down: false,
                now: Instant::now(),
            },
            handler,
            shutdown_deadline: None,
        };
        event_loop.run()?;
        Ok(event_loop.handler)
    }
}

struct EventLoop<H> {
    poll: Poll,
    listener: Option<TcpListener>,
    commands: Receiver<Command>,
    /// Deadlines, earliest first; stale entries are skipped when they come due.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    read_buffer: Vec<u8>,
    ctx: Context,
    handler: H,
    shutdown_deadline: Option<Instant>,
}

impl<H: Handler> EventLoop<H> {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.timers.peek().map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()));
            let timeout = match (timeout, self.shutdown_deadline) {
                (t, Some(deadline)) => {
                    let until = deadline.saturating_duration_since(Instant::now());
                    Some(t.map_or(until, |t| t.min(until)))
                }
                (t, None) => t,
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.ctx.now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => self.run_commands(),
                    Token(index) => {
                        let Some(id) = self.ctx.slab.id_at(index) else { continue };
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(id, !event.is_read_closed() && !event.is_error());
                        }
                        if event.is_writable() {
                            self.mark_dirty(id);
                        }
                    }
                }
            }
            self.fire_timers();
            if self.ctx.shutting_down && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            self.flush_dirty();
            if let Some(deadline) = self.shutdown_deadline {
                if self.ctx.slab.len == 0 {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    for id in self.ctx.slab.ids() {
                        self.remove(id);
                    }
                    return Ok(());
                }
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else { return };
            let (stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: the
                    // listener stays usable; try again at the next readiness.
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            };
            let max = self.ctx.options.max_connections;
            if self.ctx.slab.len >= max.saturating_add(max / 8).saturating_add(16) {
                // Far past the limit: not even a 503 is worth the memory.
                tracing::warn!(%peer, "dropping connection: far over the connection limit");
                continue;
            }
            let _ = stream.set_nodelay(true);
            let over_limit = self.ctx.slab.len >= max;
            let conn = Connection::server(self.ctx.options.config.clone(), self.ctx.now);
            let entry = Entry {
                stream,
                conn,
                peer,
                opened: false,
                over_limit,
                read_paused: false,
                dirty: false,
                scheduled: None,
                linger_until: None,
                fin_sent: false,
                writable_interest: false,
            };
            let id = self.ctx.slab.insert(entry);
            let Some(entry) = self.ctx.slab.get_mut(id) else { continue };
            if let Err(e) =
                self.poll.registry().register(&mut entry.stream, Token(id.index as usize), Interest::READABLE)
            {
                tracing::warn!(%peer, "register failed: {e}");
                self.ctx.slab.remove(id);
                continue;
            }
            tracing::debug!(%id, %peer, "accepted");
            self.schedule(id);
        }
    }

    fn run_commands(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
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
            }
        }
    }

    fn begin_shutdown(&mut self) {
        tracing::info!(connections = self.ctx.slab.len, "shutting down");
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for id in self.ctx.slab.ids() {
            let _ = self.ctx.close(id, CloseCode::GOING_AWAY, "server shutting down");
        }
        self.shutdown_deadline = Some(self.ctx.now + self.ctx.options.shutdown_timeout);
    }

    /// Reads everything the socket has (mio readiness is edge-triggered), feeding the core.
    ///
    /// With `short_read_drains`, a read that fills less than the buffer ends the loop: on
    /// Linux it has emptied the socket's receive queue, and whatever arrives later raises a
    /// new edge, so the read that would only answer `WouldBlock` is saved (one syscall of the
    /// three an echoed message costs; tokio does the same, tokio-rs/tokio#5866). The caller
    /// passes `false` when the readiness event reported the peer's FIN or an error (no further
    /// edge would announce them) and when resuming a paused connection (no edge at all).
    fn read(&mut self, id: ConnId, short_read_drains: bool) {
        let short_read_drains = short_read_drains && SHORT_READ_DRAINS;
        let Some(entry) = self.ctx.slab.get_mut(id) else { return };
        if entry.fin_sent {
            return self.drain_lingering(id);
        }
        let pause_at = self.ctx.options.config.max_queued_bytes / 2;
        loop {
            let Some(entry) = self.ctx.slab.get_mut(id) else { return };
            if !entry.conn.wants_read() {
                break;
            }
            if entry.conn.queued_bytes() > pause_at {
                entry.read_paused = true;
                break;
            }
            match entry.stream.read(&mut self.read_buffer) {
                Ok(0) => {
                    entry.conn.receive_eof(self.ctx.now);
                    self.process(id);
                    break;
                }
                Ok(n) => {
                    entry.conn.receive(self.ctx.now, &self.read_buffer[..n]);
                    self.process(id);
                    if short_read_drains && n < self.read_buffer.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(%id, "read error: {e}");
                    entry.conn.receive_eof(self.ctx.now);
                    self.process(id);
                    break;
                }
            }
        }
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
                        Err(HttpResponse::service_unavailable())
                    } else {
                        self.handler.on_request(&mut self.ctx, id, &request)
                    };
                    let Some(entry) = self.ctx.slab.get_mut(id) else { return };
                    let opened = match decision {
                        Ok(accept) => match entry.conn.accept(accept) {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::warn!(%id, "accept failed: {e}");
                                let _ = entry.conn.respond(HttpResponse::new(500).text("accept failed\n"));
                                false
                            }
                        },
                        Err(response) => {
                            tracing::debug!(%id, status = response.status, "rejected");
                            let _ = entry.conn.respond(response);
                            false
                        }
                    };
                    self.mark_dirty(id);
                    if opened {
                        if let Some(entry) = self.ctx.slab.get_mut(id) {
                            entry.opened = true;
                        }
                        self.handler.on_open(&mut self.ctx, id);
                    }
                }
                Event::HttpRequest(request) => {
                    let response = self.handler.on_http(&mut self.ctx, id, &request);
                    if let Some(entry) = self.ctx.slab.get_mut(id) {
                        let _ = entry.conn.respond(response);
                    }
                    self.mark_dirty(id);
                }
                Event::Message(message) => self.handler.on_message(&mut self.ctx, id, message),
                Event::Closed(closed) => {
                    let opened = std::mem::replace(&mut entry.opened, false);
                    tracing::debug!(%id, code = %closed.code, cause = ?closed.cause, "closed");
                    if opened {
                        self.handler.on_close(&mut self.ctx, id, &closed);
                    }
                }
                // Pings are answered by the core; streaming chunks are not used by this loop.
                _ => {}
            }
        }
        self.mark_dirty(id);
    }

    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(entry) = self.ctx.slab.get_mut(id) {
            if !entry.dirty {
                entry.dirty = true;
                self.ctx.dirty.push(id);
            }
        }
    }

    fn flush_dirty(&mut self) {
        while !self.ctx.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.ctx.dirty);
            for id in dirty {
                if let Some(entry) = self.ctx.slab.get_mut(id) {
                    entry.dirty = false;
                    self.write(id);
                }
            }
        }
    }

    /// Writes what the core has queued, closes the transport when the core says so, resumes
    /// paused reading, and updates interest and the timer.
    fn write(&mut self, id: ConnId) {
        let Some(entry) = self.ctx.slab.get_mut(id) else { return };
        let mut failed = false;
        while entry.conn.queued_bytes() > 0 {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = entry.conn.outgoing(&mut slices);
            match entry.stream.write_vectored(&slices[..n]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(written) => entry.conn.advance_outgoing(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(%id, "write error: {e}");
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            entry.conn.receive_eof(self.ctx.now);
            // Report the close (if this was news) before the entry goes.
            self.process_closed_only(id);
            return self.remove(id);
        }
        if entry.conn.should_close_transport() && entry.linger_until.is_none() {
            entry.linger_until = Some(self.ctx.now + self.ctx.options.config.close_timeout.max(LINGER));
        }
        if entry.conn.queued_bytes() == 0 {
            entry.conn.release_buffers();
            if entry.conn.should_close_transport() && !entry.fin_sent {
                // The server closes TCP first (RFC 6455 §7.1.1): a half-close, so that what the
                // peer still sends is read and dropped rather than answered with a reset that
                // could destroy our last frame before the peer reads it.
                let _ = entry.stream.shutdown(Shutdown::Write);
                entry.fin_sent = true;
                self.drain_lingering(id);
                return;
            }
        }
        let wants_write = entry.conn.queued_bytes() > 0;
        if wants_write != entry.writable_interest {
            let interest = if wants_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if self.poll.registry().reregister(&mut entry.stream, Token(id.index as usize), interest).is_ok() {
                entry.writable_interest = wants_write;
            }
        }
        let resume = entry.read_paused && entry.conn.queued_bytes() <= self.ctx.options.config.max_queued_bytes / 2;
        if resume {
            entry.read_paused = false;
            self.read(id, false);
        }
        self.schedule(id);
    }

    /// After a write failure: hand out a pending `Closed` to the handler.
    fn process_closed_only(&mut self, id: ConnId) {
        while let Some(entry) = self.ctx.slab.get_mut(id) {
            let Some(event) = entry.conn.poll_event() else { return };
            if let Event::Closed(closed) = event {
                if std::mem::replace(&mut entry.opened, false) {
                    self.handler.on_close(&mut self.ctx, id, &closed);
                }
            }
        }
    }

    /// Our FIN is out: discard what the peer still sends until its FIN, then drop the socket.
    fn drain_lingering(&mut self, id: ConnId) {
        let Some(entry) = self.ctx.slab.get_mut(id) else { return };
        loop {
            match entry.stream.read(&mut self.read_buffer) {
                Ok(0) => return self.remove(id),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.remove(id),
            }
        }
        self.schedule(id);
    }

    fn remove(&mut self, id: ConnId) {
        if let Some(mut entry) = self.ctx.slab.remove(id) {
            let _ = self.poll.registry().deregister(&mut entry.stream);
            tracing::debug!(%id, peer = %entry.peer, "removed");
        }
    }

    /// Puts the entry's next deadline in the heap unless an earlier or equal one is there.
    fn schedule(&mut self, id: ConnId) {
        let Some(entry) = self.ctx.slab.get_mut(id) else { return };
        let next = match (entry.conn.poll_timeout(), entry.linger_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = next {
            if entry.scheduled.is_none_or(|scheduled| at < scheduled) {
                entry.scheduled = Some(at);
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.ctx.slab.get_mut(id) else { continue };
            if entry.scheduled != Some(at) {
                continue;
            }
            entry.scheduled = None;
            if entry.linger_until.is_some_and(|until| until <= now) {
                self.remove(id);
                continue;
            }
            entry.conn.handle_timeout(now);
            self.process(id);
            self.schedule(id);
        }
    }
}
