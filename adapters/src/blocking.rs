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
//! # TLS
//!
//! With the `tls` feature, [`connect`] takes `wss://` URLs (SNI, ALPN `http/1.1`, the Mozilla
//! roots, or the caller's `rustls::ClientConfig` through `Connector::tls_config`), and a
//! server runs `accept_tls` on an accepted socket. Both use `TlsStream`, whose timeouts and
//! shutdown are the socket's (close_notify precedes our FIN); a TLS connection cannot be
//! split.
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
//! A `WebSocket` is used from one thread at a time. For a reader thread and a writer thread,
//! [`split`](WebSocket::split) it into a [`Reader`] and a [`Writer`] (the stream must support
//! [`Transport::try_clone`], as `TcpStream` and `UnixStream` do) and
//! [`reunite`](Reader::reunite) them later. The halves share the connection behind a lock
//! that neither holds while blocked on the socket, so a writer blocked on a peer that does not
//! read does not stop the reader; the reader still answers pings and the close handshake, and
//! ends the transport. The writer pays one copy of what it writes (the queue is copied out,
//! 64 KiB at a time, so the lock can be released during the write).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsproto::{
    Accept, CloseCause, CloseCode, Closed, Config, Connection, Event, HandshakeError, Message, MessageKind,
    MessageNotSent, OutgoingRequest, OutgoingResponse, Request, Response, Role, SendError, UsageError,
};

mod connect;
mod proxy;
mod split;
#[cfg(feature = "tls")]
mod tls;

pub use self::connect::{connect, ClientStream, Connector};
pub use self::proxy::{Proxy, ProxyEnv, ProxyKind};
pub use self::split::{Reader, SplitError, Writer};
#[cfg(feature = "tls")]
pub use self::tls::{accept_tls, tls_accept, TlsStream};

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

    /// Another handle to the same stream, for [`WebSocket::split`]: both must read and write
    /// the same connection and share its timeouts (a socket's `try_clone`). Default:
    /// `Unsupported`, so such a stream cannot be split.
    fn try_clone(&self) -> io::Result<Self>
    where
        Self: Sized,
    {
        Err(io::Error::new(io::ErrorKind::Unsupported, "this transport cannot be cloned"))
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

    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
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

    fn try_clone(&self) -> io::Result<Self> {
        std::os::unix::net::UnixStream::try_clone(self)
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
    /// The proxy could not be reached, refused the tunnel (407 for missing or wrong
    /// credentials) or did not speak its protocol; or the proxy URL is invalid.
    #[error("proxy {proxy}: {message}")]
    Proxy {
        /// The proxy's address (or its URL, without the password).
        proxy: String,
        /// What went wrong.
        message: String,
    },
    /// A `wss://` URL without the `tls` feature. Enable it, or connect a TLS stream yourself
    /// and hand it to [`WebSocket::client`].
    #[error("wss:// needs the tls feature of wsproto-adapters (or WebSocket::client over a TLS stream)")]
    TlsUnsupported,
    /// The TLS handshake with `host` failed: a certificate not valid for it or not signed by
    /// a trusted root, no common protocol version or cipher suite, a TLS alert.
    #[cfg(feature = "tls")]
    #[error("TLS with {host} failed: {error}")]
    Tls {
        /// The server's name (client) or the peer's address (server).
        host: String,
        /// What rustls reported.
        error: rustls::Error,
    },
}

impl From<UsageError> for Error {
    fn from(error: UsageError) -> Self {
        Error::Send(SendError::Usage(error))
    }
}

impl From<MessageNotSent> for Error {
    fn from(error: MessageNotSent) -> Self {
        Error::Send(error.error)
    }
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

/// What [`WebSocket::read`] and [`Reader::read`] answer: the core's [`Event`], of which only
/// the variants that follow the opening handshake come out — `Message` (or `Chunk` in
/// [`ReceiveMode::Streaming`](wsproto::ReceiveMode::Streaming)), `Ping` (with
/// `Config::auto_pong`, the default, the pong is already on its way), `Pong`, and last
/// `Closed`, once the transport is closed (later reads answer [`Error::Closed`]).
pub type Incoming = Event;

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
    /// Split: the [`Writer`] is writing with the lock released; nobody else writes meanwhile.
    writer_active: bool,
}

/// How a turn of [`WebSocket::step`] ends.
enum Step {
    /// The answer to `read`.
    Done(Result<Incoming, Error>),
    /// Read from the stream with this timeout, then [`WebSocket::after_read`].
    Read(Option<Duration>),
    /// Split: the transport is to be ended, but the writer is writing; wait until it is done.
    WaitForWriter,
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
            writer_active: false,
        }
    }

    /// Server: completes the opening handshake on any stream, letting `decide` answer the
    /// request: `Ok(accept)` opens the connection (choosing a subprotocol, adding headers),
    /// `Err(response)` refuses it (e.g. [`OutgoingResponse::service_unavailable`]) and this
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
        F: FnMut(&Request) -> Result<Accept, OutgoingResponse>,
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
                    Ok(_) => OutgoingResponse::upgrade_required().header("Upgrade", "websocket"),
                },
                Some(Event::Closed(closed)) => {
                    tracing::debug!("opening handshake failed: {:?}", closed.cause);
                    ws.finish_transport(&closed);
                    return Err(handshake_failure(*closed));
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
    fn answer_internal_error(&mut self, error: UsageError) -> Error {
        tracing::debug!("answer refused, sending 500: {error}");
        if let Err(error) = self.conn.respond(OutgoingResponse::new(500).text("internal server error\n")) {
            tracing::debug!("could not answer 500: {error}");
        }
        while let Some(event) = self.conn.poll_event() {
            if let Event::Closed(closed) = event {
                self.finish_transport(&closed);
            }
        }
        error.into()
    }

    /// Client: completes the opening handshake over `stream` (any transport, e.g. a TLS stream
    /// already connected), sending `request`. Answers the connection and the server's 101
    /// response; a non-101 answer is [`Error::Rejected`] with its status, an invalid 101 is
    /// [`Error::Handshake`].
    pub fn client(stream: S, config: Arc<Config>, request: OutgoingRequest) -> Result<(Self, Response), Error> {
        let conn = Connection::client(config, request, Instant::now())?;
        let mut ws = WebSocket::new(stream, conn);
        loop {
            match ws.conn.poll_event() {
                Some(Event::Connected(response)) => {
                    tracing::debug!(subprotocol = response.subprotocol(), "connected");
                    return Ok((ws, *response));
                }
                Some(Event::Closed(closed)) => {
                    tracing::debug!("opening handshake failed: {:?}", closed.cause);
                    ws.finish_transport(&closed);
                    return Err(handshake_failure(*closed));
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
        loop {
            let timeout = match self.step() {
                Step::Done(answer) => return answer,
                Step::Read(timeout) => timeout,
                // Only a split connection has a writer to wait for.
                Step::WaitForWriter => continue,
            };
            if let Err(error) = self.set_read_timeout(socket_timeout(timeout)) {
                return self.pump_failed(error);
            }
            let mut buf = std::mem::take(&mut self.read_buf);
            let result = self.stream.read(&mut buf).map(|n| &buf[..n]);
            let answer = self.after_read(result, timeout);
            self.read_buf = buf;
            if let Some(answer) = answer {
                return answer;
            }
        }
    }

    /// The part of [`read`](Self::read) before a blocking read: hands out the next event, ends
    /// the transport once the connection has ended, writes what is queued and runs due timers.
    /// Answers the result, or the socket timeout for the read the caller then makes.
    fn step(&mut self) -> Step {
        if self.finished {
            return Step::Done(Err(Error::Closed));
        }
        loop {
            while self.closed.is_none() {
                let Some(event) = self.conn.poll_event() else { break };
                match event {
                    Event::Closed(closed) => {
                        tracing::debug!(code = closed.code.0, clean = closed.clean, "closed: {:?}", closed.cause);
                        self.closed = Some(*closed);
                    }
                    // Handshake events cannot follow the handshake.
                    Event::Request(_) | Event::HttpRequest(_) | Event::Connected(_) => {
                        tracing::debug!("ignoring {event:?}")
                    }
                    event => return Step::Done(Ok(event)),
                }
            }
            if self.conn.should_close_transport() {
                if self.writer_active {
                    return Step::WaitForWriter;
                }
                let Some(closed) = self.closed.take() else {
                    // The core ends every connection with a `Closed` event; do not wait for one forever.
                    self.finished = true;
                    return Step::Done(Err(Error::Closed));
                };
                self.finish_transport(&closed);
                self.finished = true;
                return Step::Done(Ok(Event::Closed(Box::new(closed))));
            }
            match self.before_read() {
                Ok(Some(timeout)) => return Step::Read(timeout),
                Ok(None) => continue,
                Err(error) => return Step::Done(self.pump_failed(error)),
            }
        }
    }

    /// The part of [`read`](Self::read) after the blocking read: feeds what came (or the
    /// timeout) to the connection. `Some` is the answer when the transport failed.
    fn after_read(&mut self, result: io::Result<&[u8]>, timeout: Option<Duration>) -> Option<Result<Incoming, Error>> {
        self.handle_read(result, timeout).err().map(|error| self.pump_failed(error))
    }

    /// The transport failed during a turn of the run loop: the answer to `read`.
    fn pump_failed(&mut self, error: io::Error) -> Result<Incoming, Error> {
        if let Some(closed) = self.closed.take() {
            // The connection had ended already; the transport only failed while we
            // waited for the peer to end it.
            tracing::debug!("transport failed after the close: {error}");
            self.shutdown(Shutdown::Both);
            self.finished = true;
            return Ok(Event::Closed(Box::new(closed)));
        }
        Err(self.fail(error))
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
        let Some(timeout) = self.before_read()? else { return Ok(()) };
        self.set_read_timeout(socket_timeout(timeout))?;
        let mut buf = std::mem::take(&mut self.read_buf);
        let result = self.stream.read(&mut buf).map(|n| &buf[..n]);
        let handled = self.handle_read(result, timeout);
        self.read_buf = buf;
        handled
    }

    /// A turn of the run loop up to the blocking read: writes what is queued and runs due
    /// timers. Answers the timeout for the read, or `None` when this turn needs no read.
    fn before_read(&mut self) -> io::Result<Option<Option<Duration>>> {
        self.write_queued()?;
        if self.shut_down {
            // Nothing more can be read from a transport we shut down.
            self.conn.receive_eof(Instant::now());
        }
        if self.conn.should_close_transport() {
            return Ok(None);
        }
        let now = Instant::now();
        let timeout = time_until(self.conn.poll_timeout(), now);
        if timeout == Some(Duration::ZERO) {
            self.conn.handle_timeout(now);
            self.write_queued()?;
            return Ok(None);
        }
        Ok(Some(timeout))
    }

    /// A turn of the run loop after the blocking read: hands the bytes, the end of stream or
    /// the timeout to the connection, and writes what that queued (pongs, close echoes).
    fn handle_read(&mut self, result: io::Result<&[u8]>, timeout: Option<Duration>) -> io::Result<()> {
        match result {
            Ok([]) => {
                tracing::debug!("the peer ended its stream");
                self.eof = true;
                self.conn.receive_eof(Instant::now());
            }
            Ok(data) => self.conn.receive(Instant::now(), data),
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
        // A split connection's writer is at it; it writes what was queued meanwhile too.
        if self.conn.queued_bytes() == 0 || self.shut_down || self.writer_active {
            return Ok(());
        }
        while self.conn.queued_bytes() > 0 && !self.shut_down {
            let timeout = self.write_timeout();
            self.set_write_timeout(timeout)?;
            match crate::write_outgoing::<MAX_WRITE_SLICES>(&mut self.stream, &self.conn) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.conn.advance_outgoing(Instant::now(), n),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if is_timeout(&error) && timeout.is_some() => self.write_timed_out(),
                Err(error) => return Err(error),
            }
        }
        self.stream.flush()
    }

    /// The timeout for the next blocking write: the connection's next deadline, or once it has
    /// ended, the linger deadline.
    fn write_timeout(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let deadline =
            if self.conn.should_close_transport() { Some(self.linger_deadline(now)) } else { self.conn.poll_timeout() };
        socket_timeout(time_until(deadline, now))
    }

    /// A blocked write reached the timeout of [`write_timeout`](Self::write_timeout): runs the
    /// connection's timers, or past the linger deadline gives up on the last bytes.
    fn write_timed_out(&mut self) {
        let now = Instant::now();
        if !self.conn.should_close_transport() {
            self.conn.handle_timeout(now);
        } else if now >= self.linger_deadline(now) {
            tracing::debug!(queued = self.conn.queued_bytes(), "the peer does not read; dropping the last bytes");
            self.shutdown(Shutdown::Both);
        }
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

    /// Sets the read timeout through a clone of the stream (a split half's): clones share the
    /// socket and its options, so the one record of what is set stays true.
    fn set_read_timeout_on(&mut self, clone: &mut S, timeout: Option<Duration>) -> io::Result<()> {
        if self.read_timeout != Some(timeout) {
            clone.set_read_timeout(timeout)?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }

    /// Sets the write timeout through a clone of the stream, like
    /// [`set_read_timeout_on`](Self::set_read_timeout_on).
    fn set_write_timeout_on(&mut self, clone: &mut S, timeout: Option<Duration>) -> io::Result<()> {
        if self.write_timeout != Some(timeout) {
            clone.set_write_timeout(timeout)?;
            self.write_timeout = Some(timeout);
        }
        Ok(())
    }
}
