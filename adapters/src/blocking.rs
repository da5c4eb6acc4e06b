//! A blocking driver: one WebSocket connection over a std `Read + Write` stream, for clients,
//! tests and thread-per-connection servers.
//!
//! [`WebSocket`] owns the stream and a [`wsproto::Connection`] and runs the core's run loop
//! inside each call: [`read`](WebSocket::read) writes what is queued, blocks on the stream until
//! bytes arrive or the connection's next deadline passes, and answers the next message or
//! event; the `send_*` methods queue a frame in the core and write it out before returning.
//!
//! ```no_run
//! use wsproto_adapters::blocking::{connect, ConnectOptions, Incoming};
//!
//! let (mut ws, _response) = connect("ws://127.0.0.1:9001/chat", ConnectOptions::default())?;
//! ws.send_text("hello")?;
//! loop {
//!     match ws.read()? {
//!         Incoming::Message(message) => println!("{message:?}"),
//!         Incoming::Closed(closed) => break println!("closed: {} {}", closed.code, closed.reason),
//!         _ => {}
//!     }
//! }
//! # Ok::<(), wsproto_adapters::blocking::Error>(())
//! ```
//!
//! # Timers
//!
//! The connection's deadlines (opening handshake, keep-alive, close handshake) become socket
//! timeouts through [`Transport`]: before each blocking read or write the stream's timeout is set
//! to the time left until [`Connection::poll_timeout`], and when it expires the core's
//! [`handle_timeout`](Connection::handle_timeout) runs. `TcpStream` and `UnixStream` implement
//! it; any other stream gets no timers unless it implements the trait's timeout methods (a read
//! then waits for the peer as long as it takes).
//!
//! The same deadlines bound a blocked write: keep-alive (`Config::keep_alive`) while the
//! connection is open, the close timeout once it is closing. Without keep-alive, a write to a
//! peer that stops reading waits as long as TCP keeps the connection.
//!
//! # Closing
//!
//! [`read`](WebSocket::read) returns [`Incoming::Closed`] only once the transport is done: our
//! last frames written (given at most `Config::close_timeout` to leave), and our side shut down.
//! A server shuts TCP down first (RFC 6455 §7.1.1); a client waits for the server's end of
//! stream, bounded by the core's close timer. After a shutdown the driver reads and discards
//! until the peer's end of stream (within the same bound), so that unread input does not make
//! the kernel reset the connection and destroy our close frame before the peer has read it.
//!
//! # Threads
//!
//! A `WebSocket` is used from one thread at a time; there is no split into reader and writer
//! halves. A reader thread must write too (pongs, close echoes), and with std's blocking
//! sockets such a write can block while the peer's window is full, which stops the reading
//! that the peer may be waiting on. Reading and writing from different threads takes an event
//! loop that waits for readiness in both directions, as the [`server`](crate::server) module does.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsproto::{
    Accept, ClientRequest, CloseCause, CloseCode, Closed, Config, Connection, Event, HandshakeError, HttpResponse,
    Message, MessageKind, Request, Response, Role, SendError, WsUrl,
};

/// How many bytes one read takes from the stream.
const READ_BUFFER_SIZE: usize = 64 << 10;

/// How many queued chunks one vectored write hands the stream.
const MAX_WRITE_SLICES: usize = 32;

/// The shortest timeout set on a stream: std refuses a zero timeout, and a deadline that is due
/// now is handled without waiting at all.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// What the driver needs from a stream besides `Read + Write`: timeouts, so the connection's
/// timers fire while a read or write blocks, and shutdown, to end the transport in order.
///
/// Every method has a default that does nothing: a stream that keeps the defaults works, but
/// gets no timers while blocked (no keep-alive, no handshake or close timeout during a read) and
/// is closed only when dropped. A TLS stream should forward these to the socket it wraps.
pub trait Transport: Read + Write {
    /// Bounds each later blocking read: once `timeout` passes without data it fails with
    /// `WouldBlock` or `TimedOut`. `None` waits indefinitely.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Bounds each later blocking write the same way.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }

    /// Shuts down the writing half (`Shutdown::Write`: the peer reads end of stream after our
    /// last bytes), the reading half, or both.
    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        let _ = how;
        Ok(())
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }

    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
}

#[cfg(unix)]
impl Transport for std::os::unix::net::UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_write_timeout(self, timeout)
    }

    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        std::os::unix::net::UnixStream::shutdown(self, how)
    }
}

/// Why a call on a [`WebSocket`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream failed (including a TCP connect that failed or timed out). After an I/O
    /// error the connection is over: later reads answer [`Error::Closed`].
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The opening handshake failed (RFC 6455 §4). Server: the request was invalid or broke the
    /// config's policies, and was answered with the error's status (e.g. 403 for an origin not
    /// on the allow-list). Client: the server's 101 response was invalid.
    #[error("opening handshake failed: {0}")]
    Handshake(HandshakeError),
    /// The upgrade was answered with this HTTP status instead of 101: client, by the server
    /// (e.g. 403, 503); server, by us at the application's request, or a plain HTTP request
    /// was answered.
    #[error("upgrade answered with HTTP status {status}")]
    Rejected {
        /// The status of the answer.
        status: u16,
    },
    /// The core refused a command (sending after close, a ping over 125 bytes, a full queue,
    /// an invalid header); nothing was queued.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The connection is over: [`WebSocket::read`] already returned [`Incoming::Closed`] or an
    /// error.
    #[error("the connection is closed")]
    Closed,
    /// The URL is not a valid `ws://` URL; the text says what is wrong.
    #[error("invalid WebSocket URL: {0}")]
    InvalidUrl(&'static str),
    /// A `wss://` URL: this crate has no TLS. Connect a TLS stream yourself and hand it to
    /// [`WebSocket::client`].
    #[error("wss:// needs TLS, which this crate does not provide; use WebSocket::client over a TLS stream")]
    TlsUnsupported,
}

impl From<HandshakeError> for Error {
    fn from(error: HandshakeError) -> Self {
        match error {
            HandshakeError::Status(status) => Error::Rejected { status },
            other => Error::Handshake(other),
        }
    }
}

/// The error that a connection which ended during the opening handshake answers.
fn handshake_failure(closed: Closed) -> Error {
    match closed.cause {
        CloseCause::Handshake(error) => error.into(),
        CloseCause::Rejected { status } => Error::Rejected { status },
        CloseCause::Eof => {
            io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed the connection during the opening handshake")
                .into()
        }
        _ => Error::Closed,
    }
}

/// What [`WebSocket::read`] answers: the next message or control event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// A whole message (the default [`ReceiveMode::Messages`](wsproto::ReceiveMode::Messages)).
    Message(Message),
    /// A piece of a message as it arrived ([`ReceiveMode::Streaming`](wsproto::ReceiveMode::Streaming)).
    Chunk {
        /// Text or binary, from the message's first frame.
        kind: MessageKind,
        /// The payload bytes; a text chunk may end inside a code point.
        data: Vec<u8>,
        /// The first chunk of its message.
        first: bool,
        /// The last chunk of its message.
        last: bool,
    },
    /// A ping arrived; with `Config::auto_pong` (the default) the pong is already on its way.
    Ping(Vec<u8>),
    /// A pong arrived.
    Pong(Vec<u8>),
    /// The connection is over and the transport closed; later reads answer [`Error::Closed`].
    Closed(Closed),
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The stream timeout that wakes us at `deadline`: `None` to wait indefinitely, `Some(ZERO)`
/// when it is due already.
fn time_until(deadline: Option<Instant>, now: Instant) -> Option<Duration> {
    deadline.map(|deadline| deadline.saturating_duration_since(now))
}

/// A stream timeout as std accepts it (never zero).
fn socket_timeout(timeout: Option<Duration>) -> Option<Duration> {
    timeout.map(|t| t.max(MIN_TIMEOUT))
}

/// Options for [`connect`]; `ConnectOptions::default()` offers no subprotocol and uses the
/// default [`Config`].
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Limits and timers for the connection. `handshake_timeout` also bounds the TCP connect
    /// (per address the host name resolves to).
    pub config: Arc<Config>,
    /// Subprotocols to offer, most preferred first (RFC 6455 §4.1 `Sec-WebSocket-Protocol`).
    pub subprotocols: Vec<String>,
    /// The `Origin` header, for servers that check it (RFC 6455 §10.2).
    pub origin: Option<String>,
    /// Extra header fields for the upgrade request (e.g. `Authorization`, `Cookie`).
    pub headers: Vec<(String, String)>,
}

/// Server: completes the opening handshake on an accepted TCP connection, accepting every valid
/// upgrade request. The config's policies still apply (an origin not on the allow-list is
/// answered 403, a client without a required subprotocol 400, both as [`Error::Handshake`]);
/// a plain HTTP request is answered 426 Upgrade Required (see [`WebSocket::accept_with`]).
///
/// Sets `TCP_NODELAY`: frames are written whole, so Nagle's algorithm would only delay them.
pub fn accept(stream: TcpStream, config: Arc<Config>) -> Result<WebSocket<TcpStream>, Error> {
    stream.set_nodelay(true)?;
    WebSocket::accept_with(stream, config, |_| Ok(Accept::new()))
}

/// Client: opens a TCP connection to a `ws://` URL and completes the opening handshake.
/// Answers the connection and the server's 101 response (its subprotocol, headers).
///
/// `wss://` is refused with [`Error::TlsUnsupported`]; a non-101 answer is
/// [`Error::Rejected`] with its status. Sets `TCP_NODELAY` (see [`accept`]).
pub fn connect(url: &str, options: ConnectOptions) -> Result<(WebSocket<TcpStream>, Response), Error> {
    let url = WsUrl::parse(url).map_err(Error::InvalidUrl)?;
    if url.secure {
        return Err(Error::TlsUnsupported);
    }
    let stream = connect_tcp(&url.host, url.port, options.config.handshake_timeout)?;
    stream.set_nodelay(true)?;
    let request = ClientRequest {
        host: url.host_header(),
        target: url.target,
        origin: options.origin,
        subprotocols: options.subprotocols,
        extensions: Vec::new(),
        headers: options.headers,
    };
    WebSocket::client(stream, options.config, request)
}

/// Connects to the first address of `host` that answers, each attempt bounded by `timeout`.
fn connect_tcp(host: &str, port: u16, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        let attempt = match timeout {
            Some(timeout) => TcpStream::connect_timeout(&addr, timeout),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(error) => {
                tracing::debug!("connect to {addr} failed: {error}");
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host} resolves to no address"))))
}

/// One WebSocket connection over a blocking stream, server or client.
///
/// Made by [`accept`], [`WebSocket::accept_with`], [`connect`] or [`WebSocket::client`], which
/// return once the opening handshake is done. The stream must be in blocking mode.
pub struct WebSocket<S> {
    stream: S,
    conn: Connection,
    read_buf: Box<[u8]>,
    /// The stream timeouts last set (`None`: not set yet), to skip redundant system calls.
    read_timeout: Option<Option<Duration>>,
    write_timeout: Option<Option<Duration>>,
    /// The `Closed` event, held back until the transport is done.
    closed: Option<Closed>,
    /// Once the connection has ended: until when its last bytes may take to leave and the
    /// peer to end its stream, before we close the transport regardless.
    linger_until: Option<Instant>,
    /// The peer ended its stream.
    eof: bool,
    /// We shut the transport down (or gave up writing to it).
    shut_down: bool,
    /// `read` answered `Closed` or an error: nothing more will come.
    finished: bool,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("conn", &self.conn)
            .field("eof", &self.eof)
            .field("shut_down", &self.shut_down)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<S: Transport> WebSocket<S> {
    fn new(stream: S, conn: Connection) -> Self {
        WebSocket {
            stream,
            conn,
            read_buf: vec![0; READ_BUFFER_SIZE].into_boxed_slice(),
            read_timeout: None,
            write_timeout: None,
            closed: None,
            linger_until: None,
            eof: false,
            shut_down: false,
            finished: false,
        }
    }

    /// Server: completes the opening handshake on any stream, letting `decide` answer the
    /// request: `Ok(accept)` opens the connection (choosing a subprotocol, adding headers),
    /// `Err(response)` refuses it (e.g. [`HttpResponse::service_unavailable`]) and this
    /// returns [`Error::Rejected`].
    ///
    /// `decide` sees only requests that passed RFC 6455 §4.2.1 and the config's origin and
    /// subprotocol policies; the others are answered by the core with their status (400, 403,
    /// 426, 431) and returned as [`Error::Handshake`]. It also sees plain HTTP requests (no
    /// `Upgrade: websocket`, see [`Request::is_upgrade`]): `Err(response)` answers one (a health
    /// check on the same port), `Ok(_)` answers 426 Upgrade Required; either way this then
    /// returns [`Error::Rejected`]. An answer the core refuses (an invalid header, a subprotocol
    /// the client did not offer) is replaced by a 500 and returned as [`Error::Send`].
    pub fn accept_with<F>(stream: S, config: Arc<Config>, mut decide: F) -> Result<Self, Error>
    where
        F: FnMut(&Request) -> Result<Accept, HttpResponse>,
    {
        let conn = Connection::server(config, Instant::now());
        let mut ws = WebSocket::new(stream, conn);
        loop {
            let response = match ws.conn.poll_event() {
                Some(Event::Request(request)) => match decide(&request) {
                    Ok(accept) => {
                        if let Err(error) = ws.conn.accept(accept) {
                            return Err(ws.answer_internal_error(error));
                        }
                        tracing::debug!(path = request.path(), "upgrade accepted");
                        // Events for frames that arrived behind the request stay queued for `read`.
                        ws.write_queued().map_err(|e| ws.fail(e))?;
                        return Ok(ws);
                    }
                    Err(response) => response,
                },
                Some(Event::HttpRequest(request)) => match decide(&request) {
                    Err(response) => response,
                    Ok(_) => HttpResponse::upgrade_required().header("Upgrade", "websocket"),
                },
                Some(Event::Closed(closed)) => {
                    tracing::debug!("opening handshake failed: {:?}", closed.cause);
                    ws.finish_transport(&closed);
                    return Err(handshake_failure(closed));
                }
                Some(_) => continue,
                None => {
                    ws.pump().map_err(|e| ws.fail(e))?;
                    continue;
                }
            };
            // On success the core reports `Closed` (cause `Rejected`), handled above.
            if let Err(error) = ws.conn.respond(response) {
                return Err(ws.answer_internal_error(error));
            }
        }
    }

    /// The core refused the application's answer to a request: answer 500 instead, end the
    /// transport, and answer the error to return.
    fn answer_internal_error(&mut self, error: SendError) -> Error {
        tracing::debug!("answer refused, sending 500: {error}");
        if let Err(error) = self.conn.respond(HttpResponse::new(500).text("internal server error\n")) {
            tracing::debug!("could not answer 500: {error}");
        }
        while let Some(event) = self.conn.poll_event() {
            if let Event::Closed(closed) = event {
                self.finish_transport(&closed);
            }
        }
        Error::Send(error)
    }

    /// Client: completes the opening handshake over `stream` (any transport, e.g. a TLS stream
    /// already connected), sending `request`. Answers the connection and the server's 101
    /// response; a non-101 answer is [`Error::Rejected`] with its status, an invalid 101 is
    /// [`Error::Handshake`].
    pub fn client(stream: S, config: Arc<Config>, request: ClientRequest) -> Result<(Self, Response), Error> {
        let conn = Connection::client(config, request, Instant::now())?;
        let mut ws = WebSocket::new(stream, conn);
        loop {
            match ws.conn.poll_event() {
                Some(Event::Connected(response)) => {
                    tracing::debug!(subprotocol = response.subprotocol(), "connected");
                    return Ok((ws, response));
                }
                Some(Event::Closed(closed)) => {
                    tracing::debug!("opening handshake failed: {:?}", closed.cause);
                    ws.finish_transport(&closed);
                    return Err(handshake_failure(closed));
                }
                Some(_) => {}
                None => ws.pump().map_err(|e| ws.fail(e))?,
            }
        }
    }

    /// Blocks until the next message or event, and answers it.
    ///
    /// Writes what is queued first (pongs, close echoes), then reads; keep-alive pings and the
    /// handshake and close timers run while it waits (see [`Transport`]). The last answer is
    /// [`Incoming::Closed`], after the transport was closed (see the module docs); from then on,
    /// and after any error, it answers [`Error::Closed`].
    pub fn read(&mut self) -> Result<Incoming, Error> {
        if self.finished {
            return Err(Error::Closed);
        }
        loop {
            while self.closed.is_none() {
                let Some(event) = self.conn.poll_event() else { break };
                match event {
                    Event::Message(message) => return Ok(Incoming::Message(message)),
                    Event::Chunk { kind, data, first, last } => return Ok(Incoming::Chunk { kind, data, first, last }),
                    Event::Ping(payload) => return Ok(Incoming::Ping(payload)),
                    Event::Pong(payload) => return Ok(Incoming::Pong(payload)),
                    Event::Closed(closed) => {
                        tracing::debug!(code = closed.code.0, clean = closed.clean, "closed: {:?}", closed.cause);
                        self.closed = Some(closed);
                    }
                    // Handshake events cannot follow the handshake.
                    other => tracing::debug!("ignoring {other:?}"),
                }
            }
            if self.conn.should_close_transport() {
                let Some(closed) = self.closed.take() else {
                    // The core ends every connection with a `Closed` event; do not wait for one forever.
                    self.finished = true;
                    return Err(Error::Closed);
                };
                self.finish_transport(&closed);
                self.finished = true;
                return Ok(Incoming::Closed(closed));
            }
            if let Err(error) = self.pump() {
                if let Some(closed) = self.closed.take() {
                    // The connection had ended already; the transport only failed while we
                    // waited for the peer to end it.
                    tracing::debug!("transport failed after the close: {error}");
                    self.shutdown(Shutdown::Both);
                    self.finished = true;
                    return Ok(Incoming::Closed(closed));
                }
                return Err(self.fail(error));
            }
        }
    }

    /// Sends a message, taking its buffer (a large binary message is written without a copy on
    /// a server). Returns once the bytes are written to the stream.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        self.conn.send(message)?;
        self.flush()
    }

    /// Sends a message without compressing it (see
    /// [`Connection::send_uncompressed`](wsproto::Connection::send_uncompressed)) and writes it out.
    pub fn send_uncompressed(&mut self, message: Message) -> Result<(), Error> {
        self.conn.send_uncompressed(message)?;
        self.flush()
    }

    /// Sends a text message and writes it out.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.conn.send_text(text)?;
        self.flush()
    }

    /// Sends a binary message and writes it out.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.conn.send_binary(data)?;
        self.flush()
    }

    /// Sends one fragment of a message (RFC 6455 §5.4): the first sets the kind, `fin` ends the
    /// message; no other message may be sent in between.
    pub fn send_fragment(&mut self, kind: MessageKind, data: &[u8], fin: bool) -> Result<(), Error> {
        self.conn.send_fragment(kind, data, fin)?;
        self.flush()
    }

    /// Sends a ping (at most 125 bytes); the pong comes back through [`read`](Self::read) as
    /// [`Incoming::Pong`].
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.conn.ping(payload)?;
        self.flush()
    }

    /// Sends a pong (at most 125 bytes): the answer to a ping when `Config::auto_pong` is off,
    /// or an unsolicited heartbeat (RFC 6455 §5.5.3).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.conn.pong(payload)?;
        self.flush()
    }

    /// Starts the close handshake (RFC 6455 §7.1.2) with a sendable code and a reason of at
    /// most 123 bytes. Keep calling [`read`](Self::read): messages the peer sent meanwhile
    /// still arrive, then [`Incoming::Closed`] once the peer answered (or the close timeout
    /// passed) and the transport is closed.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason)?;
        self.flush()
    }

    /// Writes everything queued to the stream (the `send_*` methods do this themselves).
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        self.write_queued().map_err(|e| self.fail(e))
    }

    /// The protocol state: [`Connection::state`], [`Connection::subprotocol`],
    /// [`Connection::request`] (server), [`Connection::response`] (client), ...
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The subprotocol agreed in the opening handshake.
    pub fn subprotocol(&self) -> Option<&str> {
        self.conn.subprotocol()
    }

    /// The stream, e.g. for its peer address. Reading or writing it directly would corrupt
    /// the connection.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    // ---- the run loop ----

    /// One turn of the run loop: write what is queued, wait for input or the next deadline,
    /// hand what came to the connection, and write what that queued (pongs, close echoes).
    fn pump(&mut self) -> io::Result<()> {
        self.write_queued()?;
        if self.shut_down {
            // Nothing more can be read from a transport we shut down.
            self.conn.receive_eof(Instant::now());
        }
        if self.conn.should_close_transport() {
            return Ok(());
        }
        let now = Instant::now();
        let timeout = time_until(self.conn.poll_timeout(), now);
        if timeout == Some(Duration::ZERO) {
            self.conn.handle_timeout(now);
            return self.write_queued();
        }
        self.set_read_timeout(socket_timeout(timeout))?;
        match self.stream.read(&mut self.read_buf) {
            Ok(0) => {
                tracing::debug!("the peer ended its stream");
                self.eof = true;
                self.conn.receive_eof(Instant::now());
            }
            Ok(n) => self.conn.receive(Instant::now(), &self.read_buf[..n]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if is_timeout(&error) && timeout.is_some() => self.conn.handle_timeout(Instant::now()),
            Err(error) => return Err(error),
        }
        self.write_queued()
    }

    /// Writes the queue with vectored writes until it is empty, resuming after partial writes.
    /// A write that blocks past the connection's next deadline runs the timers; once the
    /// connection has ended, its last bytes get until the linger deadline, then are dropped.
    fn write_queued(&mut self) -> io::Result<()> {
        if self.conn.queued_bytes() == 0 || self.shut_down {
            return Ok(());
        }
        while self.conn.queued_bytes() > 0 && !self.shut_down {
            let now = Instant::now();
            let deadline = if self.conn.should_close_transport() {
                Some(self.linger_deadline(now))
            } else {
                self.conn.poll_timeout()
            };
            let timeout = socket_timeout(time_until(deadline, now));
            self.set_write_timeout(timeout)?;
            let written = {
                let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
                let count = self.conn.outgoing(&mut slices);
                self.stream.write_vectored(&slices[..count])
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.conn.advance_outgoing(n),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if is_timeout(&error) && timeout.is_some() => {
                    let now = Instant::now();
                    if !self.conn.should_close_transport() {
                        self.conn.handle_timeout(now);
                    } else if now >= self.linger_deadline(now) {
                        tracing::debug!(
                            queued = self.conn.queued_bytes(),
                            "the peer does not read; dropping the last bytes"
                        );
                        self.shutdown(Shutdown::Both);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        self.stream.flush()
    }

    /// Until when an ended connection may linger: its last bytes leaving, the peer's end of
    /// stream arriving. Counted from the first time it is asked for.
    fn linger_deadline(&mut self, now: Instant) -> Instant {
        let close_timeout = self.conn.config().close_timeout;
        *self.linger_until.get_or_insert(now + close_timeout)
    }

    /// Ends the transport of a connection that has ended: writes its last bytes, shuts our side
    /// down, and (unless the peer is done or unresponsive) reads and discards until the peer's
    /// end of stream, within the linger deadline. Failures are only logged: the connection is
    /// over either way.
    fn finish_transport(&mut self, closed: &Closed) {
        if let Err(error) = self.write_queued() {
            tracing::debug!("writing the last bytes failed: {error}");
        }
        if self.shut_down {
            return;
        }
        self.shutdown(Shutdown::Write);
        // A client that closed cleanly has had the server's end of stream or its close timeout.
        let peer_done = self.eof
            || (self.conn.role() == Role::Client && closed.clean)
            || matches!(closed.cause, CloseCause::KeepAliveTimeout | CloseCause::CloseTimeout)
            || matches!(closed.cause, CloseCause::Handshake(HandshakeError::Timeout));
        if !peer_done {
            self.discard_until_eof();
        }
        self.shutdown(Shutdown::Both);
    }

    fn discard_until_eof(&mut self) {
        loop {
            let now = Instant::now();
            let left = self.linger_deadline(now).saturating_duration_since(now);
            if left.is_zero() {
                return tracing::debug!("the peer did not end its stream in time");
            }
            if let Err(error) = self.set_read_timeout(socket_timeout(Some(left))) {
                return tracing::debug!("setting the read timeout failed: {error}");
            }
            match self.stream.read(&mut self.read_buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if is_timeout(&error) => {}
                Err(error) => return tracing::debug!("reading until the end of stream failed: {error}"),
            }
        }
    }

    fn shutdown(&mut self, how: Shutdown) {
        if how == Shutdown::Both {
            self.shut_down = true;
        }
        if let Err(error) = self.stream.shutdown(how) {
            tracing::debug!("shutdown({how:?}) failed: {error}");
        }
    }

    /// The transport failed: the connection is over. Answers the error to return.
    fn fail(&mut self, error: io::Error) -> Error {
        tracing::debug!("transport failed: {error}");
        self.conn.receive_eof(Instant::now());
        self.shutdown(Shutdown::Both);
        self.finished = true;
        Error::Io(error)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.read_timeout != Some(timeout) {
            self.stream.set_read_timeout(timeout)?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.write_timeout != Some(timeout) {
            self.stream.set_write_timeout(timeout)?;
            self.write_timeout = Some(timeout);
        }
        Ok(())
    }
}
