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
//! With the `tls` feature, `Server::with_tls` serves `wss://`: each connection gets a rustls
//! session driven by the same loop as a sans-IO layer under the WebSocket connection (socket →
//! the loop's read buffer → `read_tls` → `process_new_packets` → plaintext chunks → core; core →
//! plaintext writer → `write_tls` → socket). Consequences:
//! - a read takes up to a whole read buffer of records in one system call (rustls reading the
//!   socket itself would take at most 4 KiB per call), and nothing is kept between reads;
//! - the handshake deadline, which starts at accept, covers the TLS handshake too;
//! - whatever is queued when the socket can take it goes to rustls in one vectored write, so a
//!   burst of small frames leaves in as few TLS records as fit (one per 16 KiB), not one each;
//! - rustls holds at most a bounded amount of records per connection (see `tls`); the rest
//!   stays in the connection's queue, so a peer that stops reading is a slow consumer as
//!   before;
//! - closing sends close_notify before our FIN. A peer whose stream ends without
//!   close_notify, or with it but before the WebSocket close handshake, ends abnormally
//!   (`Closed::clean` false, 1006); after a completed close handshake (which already
//!   authenticates the end, RFC 6455 §7.1.4) a missing close_notify changes nothing;
//! - bytes that are not TLS (garbage, plain HTTP) end the connection with a TLS alert.
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
use std::io::{self, Read};
#[cfg(feature = "tls")]
use std::io::{IoSlice, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::mio::net::{TcpListener, TcpStream};
use ::mio::{Events, Interest, Poll, Token, Waker};

use crate::server::core::{Admission, Core};
use crate::server::{Command, Wake};
pub use crate::server::{ConnId, Context, Handle, Handler, ServerOptions};
#[cfg(feature = "tls")]
use crate::tls::ServerTls;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// Whether a short read proves the socket drained (edge-triggered epoll on TCP), see
/// `EventLoop::read`.
const SHORT_READ_DRAINS: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The least time an ended connection gets to flush its last bytes and see the peer's FIN
/// (otherwise the config's close timeout) before the socket is dropped.
const LINGER: Duration = Duration::from_secs(2);

/// How often connections whose queue emptied give back the buffers they kept for reuse.
const BUFFER_SWEEP: Duration = Duration::from_secs(1);

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
    #[cfg(feature = "tls")]
    tls: Option<ServerTls>,
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
        Ok(Server {
            poll,
            listener,
            waker,
            commands,
            sender,
            options,
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Serves every connection over TLS (`wss://`, and `https://` for plain HTTP requests).
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
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
            keeping: Vec::new(),
            next_sweep: Instant::now() + BUFFER_SWEEP,
            sockets: Vec::new(),
            core: Core::new(self.options, handler),
            shutdown_deadline: None,
            #[cfg(feature = "tls")]
            tls: self.tls,
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
    /// Listed in `EventLoop::keeping`: its queue emptied and its buffers wait for the sweep.
    keeping_buffers: bool,
    /// The queue has emptied once (the handshake's answer is out): until then the connection
    /// is new, and what its handshake needed is freed at once rather than kept for reuse.
    flushed_once: bool,
    /// The TLS session under the WebSocket connection, for a TLS server.
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ServerConnection>>,
}

impl Socket {
    /// Whether bytes below the WebSocket queue (TLS records) still wait for the socket.
    fn transport_pending(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.wants_write();
        }
        false
    }
}

struct EventLoop<H: Handler> {
    poll: Poll,
    listener: Option<TcpListener>,
    commands: Receiver<Command<H::Command>>,
    /// Deadlines, earliest first; stale entries are skipped when they come due.
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    read_buffer: Vec<u8>,
    /// Connections whose queue emptied since the last sweep: they keep their buffers for the
    /// next write until then, so a busy connection does not free and reallocate them at every
    /// message; the sweep frees them for those still empty ([`Connection::release_buffers`]).
    keeping: Vec<ConnId>,
    next_sweep: Instant,
    /// Sockets by [`ConnId::index`]; a slot is filled exactly while the core has the id.
    sockets: Vec<Option<Socket>>,
    core: Core<H>,
    shutdown_deadline: Option<Instant>,
    #[cfg(feature = "tls")]
    tls: Option<ServerTls>,
}

impl<H: Handler> EventLoop<H> {
    fn socket(&mut self, id: ConnId) -> Option<&mut Socket> {
        self.sockets.get_mut(id.index()).and_then(Option::as_mut)
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            let sweep = (!self.keeping.is_empty()).then_some(self.next_sweep);
            let timeout =
                [next_timer, sweep].into_iter().flatten().min().map(|at| at.saturating_duration_since(Instant::now()));
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
            self.sweep_buffers();
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

    /// Frees the buffers of the connections whose queue emptied since the last sweep and is
    /// still empty: what an idle connection holds goes back to the floor within one
    /// [`BUFFER_SWEEP`] (a busy one frees and reallocates them at most once per sweep).
    fn sweep_buffers(&mut self) {
        let now = self.core.now();
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + BUFFER_SWEEP;
        for id in std::mem::take(&mut self.keeping) {
            // A stale id (the connection is gone, its slot perhaps reused) is skipped.
            let Some(conn) = self.core.connection_mut(id) else { continue };
            if conn.queued_bytes() == 0 {
                conn.release_buffers();
            }
            if let Some(socket) = self.sockets.get_mut(id.index()).and_then(Option::as_mut) {
                socket.keeping_buffers = false;
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
            #[cfg(feature = "tls")]
            let tls = match self.tls.as_ref().map(ServerTls::session).transpose() {
                Ok(session) => session.map(Box::new),
                Err(e) => {
                    tracing::warn!(%peer, "TLS session refused: {e}");
                    continue;
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
            self.sockets[id.index()] = Some(Socket {
                stream,
                scheduled: None,
                linger_until: None,
                fin_sent: false,
                writable_interest: false,
                keeping_buffers: false,
                flushed_once: false,
                #[cfg(feature = "tls")]
                tls,
            });
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
        #[cfg(feature = "tls")]
        if socket.tls.is_some() {
            return self.read_tls(id, short_read_drains);
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
        let written = match () {
            #[cfg(feature = "tls")]
            () if socket.tls.is_some() => write_tls(socket, conn),
            () => write_plain(&mut socket.stream, conn),
        };
        if let Err(e) = written {
            tracing::debug!(%id, "write error: {e}");
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
        if conn.queued_bytes() == 0 && !socket.transport_pending() {
            if !socket.flushed_once {
                socket.flushed_once = true;
                conn.release_buffers();
            } else if !socket.keeping_buffers {
                socket.keeping_buffers = true;
                self.keeping.push(id);
            }
            if conn.should_close_transport() && !socket.fin_sent && close_notify(socket) {
                // The server closes TCP first (RFC 6455 §7.1.1): a half-close, so that what the
                // peer still sends is read and dropped rather than answered with a reset that
                // could destroy our last frame before the peer reads it.
                let _ = socket.stream.shutdown(Shutdown::Write);
                socket.fin_sent = true;
                self.drain_lingering(id);
                return;
            }
        }
        let wants_write = conn.queued_bytes() > 0 || socket.transport_pending();
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

    /// Reads a TLS connection: the socket into the loop's read buffer (one system call for up
    /// to a whole buffer of records, where rustls's own `read_tls` reads at most 4 KiB per
    /// call), that ciphertext into rustls, and every chunk rustls decrypts into the core
    /// straight from rustls's buffer. A read's ciphertext is always taken whole, so nothing
    /// is kept between reads: a connection that pauses (see `Core::may_read`) has taken at
    /// most one read buffer beyond its limit, as a plain one does. Like [`read`](Self::read),
    /// a short read ends the loop where `short_read_drains` holds.
    #[cfg(feature = "tls")]
    fn read_tls(&mut self, id: ConnId, short_read_drains: bool) {
        while self.core.may_read(id) {
            let Some(socket) = self.sockets.get_mut(id.index()).and_then(Option::as_mut) else { return };
            let (read, eof) = match socket.stream.read(&mut self.read_buffer) {
                Ok(0) => (0, true),
                Ok(n) => (n, false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(%id, "read error: {e}");
                    self.core.receive_eof(id);
                    return;
                }
            };
            if !self.decrypt(id, read, eof) || eof || (short_read_drains && read < self.read_buffer.len()) {
                return;
            }
        }
    }

    /// Hands `read_buffer[..read]` (or, with `eof`, the end of the TCP stream) to the
    /// connection's rustls session and the plaintext to the core; answers whether the
    /// connection goes on (false once the stream ended, cleanly or not, or TLS failed).
    #[cfg(feature = "tls")]
    fn decrypt(&mut self, id: ConnId, read: usize, eof: bool) -> bool {
        let Some(socket) = self.sockets.get_mut(id.index()).and_then(Option::as_mut) else { return false };
        let Some(tls) = socket.tls.as_mut() else { return false };
        let mut ciphertext = &self.read_buffer[..read];
        loop {
            // rustls takes at most 4 KiB beyond a partial record per call, and must process
            // what it holds before it takes more.
            match tls.read_tls(&mut ciphertext) {
                // Ok(0) from an empty slice is how rustls learns of the end of the stream.
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(%id, "TLS read error: {e}");
                    self.core.receive_eof(id);
                    return false;
                }
            }
            if let Err(e) = tls.process_new_packets() {
                // Not TLS, or TLS gone wrong: rustls queued an alert; send it if the socket
                // takes it now, then end the connection (reported to the handler if open).
                tracing::debug!(%id, "TLS error: {e}");
                let _ = tls.write_tls(&mut socket.stream);
                self.core.write_failed(id);
                self.remove(id);
                return false;
            }
            loop {
                let mut reader = tls.reader();
                match io::BufRead::fill_buf(&mut reader) {
                    Ok([]) => {
                        // close_notify: the peer will send nothing more.
                        self.core.receive_eof(id);
                        return false;
                    }
                    Ok(plaintext) => {
                        let n = plaintext.len();
                        self.core.receive(id, plaintext);
                        io::BufRead::consume(&mut reader, n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // UnexpectedEof: the stream ended without close_notify (a truncation).
                        tracing::debug!(%id, "TLS stream ended without close_notify: {e}");
                        self.core.receive_eof(id);
                        return false;
                    }
                }
            }
            if tls.wants_write() {
                self.core.mark_dirty(id);
            }
            if ciphertext.is_empty() && !eof {
                return true;
            }
        }
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

/// Writes the connection's queue to a plain socket until it is empty or the socket is full.
fn write_plain(stream: &mut TcpStream, conn: &mut wsproto::Connection) -> io::Result<()> {
    while conn.queued_bytes() > 0 {
        match crate::write_outgoing::<64>(stream, conn) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => conn.advance_outgoing(Instant::now(), written),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Moves the connection's queue into the TLS session and its records to the socket, until
/// both are empty or the socket is full. Each vectored write into rustls becomes as few
/// records as its bytes fill (up to 16 KiB each), however many frames it holds; rustls takes
/// only up to its buffer limit, and what it refuses stays in the queue. The core is told bytes
/// are written when rustls takes them (the pong deadline starts then): the records go to the
/// socket in the same call unless it is full.
#[cfg(feature = "tls")]
fn write_tls(socket: &mut Socket, conn: &mut wsproto::Connection) -> io::Result<()> {
    let Some(tls) = socket.tls.as_mut() else { return Ok(()) };
    loop {
        while conn.queued_bytes() > 0 {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = conn.outgoing(&mut slices);
            match tls.writer().write_vectored(&slices[..n])? {
                0 => break,
                taken => conn.advance_outgoing(Instant::now(), taken),
            }
        }
        if !tls.wants_write() {
            return Ok(());
        }
        match tls.write_tls(&mut socket.stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Before our FIN on a TLS connection: queues close_notify and writes it. Answers whether
/// the FIN may follow now (always for a plain socket; for TLS once the alert is out, else the
/// socket's writability brings the connection back here).
fn close_notify(socket: &mut Socket) -> bool {
    #[cfg(feature = "tls")]
    if let Some(tls) = socket.tls.as_mut() {
        tls.send_close_notify();
        while tls.wants_write() {
            match tls.write_tls(&mut socket.stream) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }
    let _ = socket;
    true
}
