//! A mio event loop that serves many WebSocket connections on one thread: the
//! [`server`](crate::server) logic (handler, registry, policies) driven over mio sockets.
//!
//! The loop owns the sockets and one [`wsproto::Connection`] per socket; the application sees
//! none of that. It implements [`Handler`] and gets callbacks with a [`Context`]; other threads
//! reach the loop through a [`Handle`] (a channel plus a mio waker).
//!
//! What this driver takes care of (the policies themselves are the [`server`](crate::server)
//! module's):
//! - non-blocking accept; reads into one buffer shared by every connection (an idle
//!   connection holds no read buffer of its own); vectored writes that resume after partial
//!   writes, with write interest only while bytes are queued;
//! - edge-triggered readiness: each readable edge is read until the socket is drained (on Linux
//!   a short read proves it), and a connection paused by backpressure is read again as soon as
//!   its queue drains;
//! - every connection's deadline (handshake, keep-alive, close) merged into the poll timeout;
//! - graceful shutdown: the listener closes, everyone gets 1001, and [`Server::run`] returns
//!   once all are closed or [`ServerOptions::shutdown_timeout`] passed;
//! - the server closes TCP first (RFC 6455 §7.1.1), half-closing and draining what the peer
//!   still sends, so our last frame is not lost to a reset.
//!
//! ```no_run
//! use wsproto::Message;
//! use wsproto_adapters::mio::{ConnId, Context, Handler, Server, ServerOptions};
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type State = ();
//!     type Command = ();
//!
//!     fn on_open(&mut self, _ctx: &mut Context, _id: ConnId) {}
//!
//!     fn on_message(&mut self, ctx: &mut Context, id: ConnId, message: Message) {
//!         let _ = ctx.send(id, message);
//!     }
//! }
//!
//! let server = Server::bind("127.0.0.1:9001".parse().unwrap(), ServerOptions::default())?;
//! server.run(Echo)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::mio::net::{TcpListener, TcpStream};
use ::mio::{Events, Interest, Poll, Token, Waker};

use crate::server::core::{Admission, Core};
use crate::server::{Command, Wake};
pub use crate::server::{ConnId, Context, Handle, Handler, ServerOptions};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// Whether a short read proves the socket drained (edge-triggered epoll on TCP), see
/// `EventLoop::read`.
const SHORT_READ_DRAINS: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The least time an ended connection gets to flush its last bytes and see the peer's FIN
/// (otherwise the config's close timeout) before the socket is dropped.
const LINGER: Duration = Duration::from_secs(2);

impl Wake for Waker {
    fn wake(&self) -> io::Result<()> {
        Waker::wake(self)
    }
}

/// A bound listener and its event loop, ready to [`run`](Server::run).
///
/// `C` is the [`Handler::Command`] of the handler it will run (inferred from
/// [`run`](Server::run); `()` for a handler that takes none).
pub struct Server<C = ()> {
    poll: Poll,
    listener: TcpListener,
    waker: Arc<Waker>,
    commands: Receiver<Command<C>>,
    sender: Sender<Command<C>>,
    options: ServerOptions,
}

impl<C> std::fmt::Debug for Server<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("listener", &self.listener).finish_non_exhaustive()
    }
}

impl<C: Send + 'static> Server<C> {
    /// Binds a listener on `addr`.
    pub fn bind(addr: SocketAddr, options: ServerOptions) -> io::Result<Self> {
        Server::from_std(std::net::TcpListener::bind(addr)?, options)
    }

    /// Serves on a listener the caller bound (e.g. to learn its port before choosing options).
    pub fn from_std(listener: std::net::TcpListener, options: ServerOptions) -> io::Result<Self> {
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
    pub fn handle(&self) -> Handle<C> {
        Handle::new(self.sender.clone(), self.waker.clone())
    }

    /// Runs the loop until a graceful shutdown completes; answers the handler.
    pub fn run<H: Handler<Command = C>>(self, handler: H) -> io::Result<H> {
        let read_buffer = vec![0; self.options.read_buffer_size.max(1024)];
        let mut event_loop = EventLoop {
            poll: self.poll,
            listener: Some(self.listener),
            commands: self.commands,
            timers: BinaryHeap::new(),
            read_buffer,
            sockets: Vec::new(),
            core: Core::new(self.options, handler),
            shutdown_deadline: None,
        };
        event_loop.run()?;
        Ok(event_loop.core.handler)
    }
}

/// What the driver keeps per connection beside the core's entry: the socket and its
/// readiness, timer and linger state.
struct Socket {
    stream: TcpStream,
    /// The deadline this connection has in the timer heap.
    scheduled: Option<Instant>,
    /// The connection has ended: the socket is dropped at this deadline at the latest, flushed
    /// or not (a peer that stopped reading must not pin it forever).
    linger_until: Option<Instant>,
    /// Our FIN is sent; reading and discarding until the peer's FIN or the linger deadline.
    fin_sent: bool,
    /// The interest registered with the poll.
    writable_interest: bool,
}

struct EventLoop<H: Handler> {
    poll: Poll,
    listener: Option<TcpListener>,
    commands: Receiver<Command<H::Command>>,
    /// Deadlines, earliest first; stale entries are skipped when they come due.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    read_buffer: Vec<u8>,
    /// Sockets by [`ConnId::index`]; a slot is filled exactly while the core has the id.
    sockets: Vec<Option<Socket>>,
    core: Core<H>,
    shutdown_deadline: Option<Instant>,
}

impl<H: Handler> EventLoop<H> {
    fn socket(&mut self, id: ConnId) -> Option<&mut Socket> {
        self.sockets.get_mut(id.index()).and_then(Option::as_mut)
    }

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
            self.core.set_now(Instant::now());
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => self.run_commands(),
                    Token(index) => {
                        let Some(id) = self.core.id_at(index) else { continue };
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(id, !event.is_read_closed() && !event.is_error());
                        }
                        if event.is_writable() {
                            self.core.mark_dirty(id);
                        }
                    }
                }
            }
            self.fire_timers();
            if self.core.shutdown_requested() && self.shutdown_deadline.is_none() {
                self.begin_shutdown();
            }
            self.flush_dirty();
            if let Some(deadline) = self.shutdown_deadline {
                if self.core.len() == 0 {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    for id in self.core.ids() {
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
            let (mut stream, peer) = match listener.accept() {
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
            let Admission::Admitted(id) = self.core.accept(peer) else { continue };
            let _ = stream.set_nodelay(true);
            if let Err(e) = self.poll.registry().register(&mut stream, Token(id.index()), Interest::READABLE) {
                tracing::warn!(%peer, "register failed: {e}");
                self.core.remove(id);
                continue;
            }
            if self.sockets.len() <= id.index() {
                self.sockets.resize_with(id.index() + 1, || None);
            }
            self.sockets[id.index()] =
                Some(Socket { stream, scheduled: None, linger_until: None, fin_sent: false, writable_interest: false });
            self.schedule(id);
        }
    }

    fn run_commands(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            self.core.run_command(command);
        }
    }

    fn begin_shutdown(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.core.begin_shutdown();
        self.shutdown_deadline = Some(self.core.now() + self.core.options().shutdown_timeout);
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
        let Some(socket) = self.socket(id) else { return };
        if socket.fin_sent {
            return self.drain_lingering(id);
        }
        while self.core.may_read(id) {
            let Some(socket) = self.sockets.get_mut(id.index()).and_then(Option::as_mut) else { return };
            match socket.stream.read(&mut self.read_buffer) {
                Ok(0) => {
                    self.core.receive_eof(id);
                    break;
                }
                Ok(n) => {
                    self.core.receive(id, &self.read_buffer[..n]);
                    if short_read_drains && n < self.read_buffer.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(%id, "read error: {e}");
                    self.core.receive_eof(id);
                    break;
                }
            }
        }
    }

    fn flush_dirty(&mut self) {
        loop {
            let dirty = self.core.take_dirty();
            if dirty.is_empty() {
                return;
            }
            for id in dirty {
                if self.core.clean(id) {
                    self.write(id);
                }
            }
        }
    }

    /// Writes what the core has queued, closes the transport when the core says so, resumes
    /// paused reading, and updates interest and the timer.
    fn write(&mut self, id: ConnId) {
        let Some(socket) = self.sockets.get_mut(id.index()).and_then(Option::as_mut) else { return };
        let Some(conn) = self.core.connection_mut(id) else { return };
        let mut failed = false;
        while conn.queued_bytes() > 0 {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = conn.outgoing(&mut slices);
            match socket.stream.write_vectored(&slices[..n]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(written) => conn.advance_outgoing(Instant::now(), written),
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
            // Report the close (if this was news) before the connection goes.
            self.core.write_failed(id);
            return self.remove(id);
        }
        let now = self.core.now();
        let close_timeout = self.core.options().config.close_timeout;
        let Some(conn) = self.core.connection_mut(id) else { return };
        if conn.should_close_transport() && socket.linger_until.is_none() {
            socket.linger_until = Some(now + close_timeout.max(LINGER));
        }
        if conn.queued_bytes() == 0 {
            conn.release_buffers();
            if conn.should_close_transport() && !socket.fin_sent {
                // The server closes TCP first (RFC 6455 §7.1.1): a half-close, so that what the
                // peer still sends is read and dropped rather than answered with a reset that
                // could destroy our last frame before the peer reads it.
                let _ = socket.stream.shutdown(Shutdown::Write);
                socket.fin_sent = true;
                self.drain_lingering(id);
                return;
            }
        }
        let wants_write = conn.queued_bytes() > 0;
        if wants_write != socket.writable_interest {
            let interest = if wants_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            if self.poll.registry().reregister(&mut socket.stream, Token(id.index()), interest).is_ok() {
                socket.writable_interest = wants_write;
            }
        }
        if self.core.resume_reading(id) {
            self.read(id, false);
        }
        self.schedule(id);
    }

    /// Our FIN is out: discard what the peer still sends until its FIN, then drop the socket.
    fn drain_lingering(&mut self, id: ConnId) {
        let Some(socket) = self.sockets.get_mut(id.index()).and_then(Option::as_mut) else { return };
        loop {
            match socket.stream.read(&mut self.read_buffer) {
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
        let Some(peer) = self.core.remove(id) else { return };
        if let Some(mut socket) = self.sockets.get_mut(id.index()).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut socket.stream);
        }
        tracing::debug!(%id, %peer, "removed");
    }

    /// Puts the connection's next deadline in the heap unless an earlier or equal one is there.
    fn schedule(&mut self, id: ConnId) {
        let Some(timeout) = self.core.connection(id).map(|conn| conn.poll_timeout()) else { return };
        let Some(socket) = self.socket(id) else { return };
        let next = match (timeout, socket.linger_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(at) = next {
            if socket.scheduled.is_none_or(|scheduled| at < scheduled) {
                socket.scheduled = Some(at);
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
            if self.core.id_at(id.index()) != Some(id) {
                continue;
            }
            let Some(socket) = self.socket(id) else { continue };
            if socket.scheduled != Some(at) {
                continue;
            }
            socket.scheduled = None;
            if socket.linger_until.is_some_and(|until| until <= now) {
                self.remove(id);
                continue;
            }
            self.core.handle_timeout(id, now);
            self.schedule(id);
        }
    }
}
