//! The runtime-independent half of a WebSocket server: what a server does with its
//! connections, apart from how their bytes move. An event loop (the [`mio`](crate::mio)
//! driver, later others) owns the sockets and drives this part through a narrow seam.
//!
//! The application implements [`Handler`] and gets callbacks for requests (accept or reject),
//! opens, messages, streamed chunks, commands from other threads and closes, each with a
//! [`Context`] to send, broadcast, close and reach per-connection state. Other threads reach the
//! loop through a [`Handle`].
//!
//! What lives here, the same for every runtime:
//! - [`ConnId`] and the registry of connections, each with the handler's typed
//!   [`Handler::State`] (made by [`Handler::on_open`], reachable through
//!   [`Context::state_mut`], handed back to [`Handler::on_close`]);
//! - the connection limit (503 at the handshake, and sockets dropped unanswered far past it),
//!   plain HTTP requests handed to [`Handler::on_http`] (the config's origin and subprotocol
//!   policies, 403 / 400, are the core's);
//! - backpressure: a connection whose outgoing queue passes half its limit is not read from
//!   until it drains; a send that finds the queue full closes the connection as a slow consumer
//!   with [`ServerOptions::slow_consumer_code`];
//! - broadcast of a [`PreparedFrame`] encoded once for all recipients;
//! - the commands of a [`Handle`], application commands included ([`Handler::on_command`]);
//! - graceful shutdown: 1001 to everyone (the driver then waits for them, bounded by
//!   [`ServerOptions::shutdown_timeout`]).
//!
//! The seam, for a driver: it reports that a connection was accepted, that bytes or the end of
//! stream were read, that a write failed, that a deadline passed, and it runs the commands that
//! arrive through the [`Handle`]. It asks in return, per connection on its dirty list: write what
//! [`Connection::outgoing`](wsproto::Connection::outgoing) has, whether to keep reading
//! (backpressure), whether to close the transport, and when the next deadline is. Received
//! bytes are handed over as a borrowed slice of the driver's buffer and messages go to the
//! handler by value: nothing is copied between the driver and the core.

mod context;
pub(crate) mod core;
mod handler;
mod input;
mod registry;

use std::io;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use wsproto::{CloseCode, Config, Message, PreparedFrame};

pub use self::context::Context;
pub use self::handler::Handler;

/// Identifies a connection for as long as it lives; never reused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

impl ConnId {
    /// The slot the connection occupies: drivers keep their sockets in a table by this index
    /// (a mio token). Reused after the connection is gone, unlike the id.
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }
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
    /// keep-alive, handshake timeout, queue limit, receive mode). Default: `Config::default()`.
    pub config: Arc<Config>,
    /// Connections beyond this many are answered 503 at the handshake. Default: 10 000.
    pub max_connections: usize,
    /// The close code for a connection whose outgoing queue is full when a send is attempted:
    /// 1008 (policy violation) or 1013 (try again later). Default: 1008.
    pub slow_consumer_code: CloseCode,
    /// The size of the read buffer shared by all connections (at least 1 KiB). Default: 64 KiB.
    /// A connection is no longer read once its queue passes half of `config.max_queued_bytes`,
    /// but what the read in progress brought is still handled (its echoes queued, say), so keep
    /// `max_queued_bytes` well above twice this, or a peer that reads can still be closed as a
    /// slow consumer.
    pub read_buffer_size: usize,
    /// How long a graceful shutdown waits for connections to finish their close handshakes.
    /// Default: 5 s.
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

/// A command sent to the loop from another thread.
pub(crate) enum Command<C> {
    Send(ConnId, Message),
    Broadcast(PreparedFrame, Option<ConnId>),
    Close(ConnId, CloseCode, String),
    Shutdown,
    /// For [`Handler::on_command`].
    Application(C),
}

/// How a [`Handle`] wakes its driver's loop after queueing a command (for mio, its `Waker`).
pub(crate) trait Wake: Send + Sync {
    fn wake(&self) -> io::Result<()>;
}

/// Reaches a running loop from any thread: sends, broadcasts, closes, shutdown and the
/// application's own commands ([`Handler::on_command`]) are carried out on the loop thread at
/// its next wake-up, in the order they were submitted. Cheap to clone.
///
/// `C` is the handler's [`Handler::Command`] (`()` for a handler that takes none).
pub struct Handle<C = ()> {
    commands: Sender<Command<C>>,
    waker: Arc<dyn Wake>,
}

impl<C> Clone for Handle<C> {
    fn clone(&self) -> Self {
        Handle { commands: self.commands.clone(), waker: self.waker.clone() }
    }
}

impl<C> std::fmt::Debug for Handle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle")
    }
}

impl<C: Send + 'static> Handle<C> {
    pub(crate) fn new(commands: Sender<Command<C>>, waker: Arc<dyn Wake>) -> Self {
        Handle { commands, waker }
    }

    fn submit(&self, command: Command<C>) -> io::Result<()> {
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

    /// Delivers an application command to [`Handler::on_command`] on the loop thread (e.g. a
    /// backplane's "a user joined on another node").
    pub fn command(&self, command: C) -> io::Result<()> {
        self.submit(Command::Application(command))
    }

    /// Graceful shutdown: stop accepting, close every connection with 1001, and return from
    /// the loop's `run` once all are closed (or the shutdown timeout passed).
    pub fn shutdown(&self) -> io::Result<()> {
        self.submit(Command::Shutdown)
    }
}
