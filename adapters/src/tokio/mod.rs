//! A tokio driver: one WebSocket connection over any `AsyncRead + AsyncWrite + Unpin` stream
//! (a `TcpStream`, a TLS stream, a `DuplexStream` in tests), as a [`Stream`] of messages and a
//! [`Sink`] of messages, with inherent `async` methods beside them.
//!
//! ```
//! use std::sync::Arc;
//! use wsproto::{Config, Message};
//! use wsproto_adapters::tokio::{accept, connect, ConnectOptions, Error};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("ws://{}/echo", listener.local_addr()?);
//! // A server: a task per connection that echoes every message.
//! tokio::spawn(async move {
//!     while let Ok((stream, _)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let mut ws = accept(stream, Arc::new(Config::default())).await?;
//!             while let Some(message) = ws.recv().await {
//!                 ws.send(message?).await?;
//!             }
//!             Ok::<(), Error>(())
//!         });
//!     }
//! });
//! // A client.
//! let (mut ws, _response) = connect(&url, ConnectOptions::default()).await?;
//! ws.send(Message::Text("hello".into())).await?;
//! assert_eq!(ws.recv().await.transpose()?, Some(Message::Text("hello".into())));
//! let closed = ws.close(wsproto::CloseCode::NORMAL, "bye").await?;
//! assert!(closed.clean);
//! # Ok(())
//! # }
//! ```
//!
//! # The run loop
//!
//! A [`WebSocket`] runs the core's run loop inside the calls the application makes: each
//! [`recv`](WebSocket::recv) (or poll of the `Stream`) writes what is queued, runs the core's
//! deadlines on tokio's timer ([`Connection::poll_timeout`]: the opening handshake, keep-alive
//! pings, the close timeout), reads the stream and answers the next message. Pings are
//! answered while the application only reads; a close from the peer is echoed and the
//! transport ended (a server shuts TCP down first, RFC 6455 §7.1.1).
//!
//! The stream ends (`None`) after a clean close handshake; any other ending (the peer broke
//! the protocol, a keep-alive or close timeout, the peer's end of stream without a close) is
//! one last [`Error::Ended`] carrying the core's [`Closed`]. [`WebSocket::closed`] tells how
//! it ended either way.
//!
//! # Back-pressure
//!
//! Sending waits while more than the high-water mark
//! ([`set_high_water`](WebSocket::set_high_water), default 64 KiB) is queued for a peer that
//! reads slowly. Receiving reads the socket only when the application asks for a message and
//! the core has none left: an application that stops reading stops the reads, so the peer
//! meets TCP's back-pressure, and the connection holds at most one read's worth
//! ([`READ_BUFFER_SIZE`]) of unread messages beside the one being reassembled.
//!
//! # Cancel safety
//!
//! Every method is safe to cancel (e.g. as the losing branch of `tokio::select!`):
//! - [`recv`](WebSocket::recv): bytes read go into the core in the poll that read them and a
//!   message leaves the core only in the poll that returns it, so a dropped `recv` loses no
//!   message and no partial frame; the next call resumes.
//! - [`send`](WebSocket::send): the message is queued whole in the core in one poll, or not at
//!   all. Dropped before that, nothing was queued (the message is dropped with the future);
//!   dropped after, the whole message is queued and the next call on the connection (any
//!   `recv`, `send` or `flush`) writes it on.
//! - [`feed`](WebSocket::feed): as `send`, without waiting for the write.
//! - [`flush`](WebSocket::flush), [`ping`](WebSocket::ping): what is not written yet stays
//!   queued.
//! - [`close`](WebSocket::close): the close frame is queued in the first poll; a dropped
//!   `close` leaves the connection closing, and `recv` then sees the rest of the handshake.
//!
//! # Tasks
//!
//! [`split`](WebSocket::split) gives a [`Reader`] and a [`Writer`] for two tasks; see there.
//!
//! # TLS
//!
//! With the `tokio-tls` feature, [`connect`] takes `wss://` URLs (SNI, ALPN `http/1.1`, the
//! Mozilla roots or [`ConnectOptions::tls`]) and [`accept_tls`] serves a [`ServerTls`] over an
//! accepted `TcpStream`: tokio-rustls underneath, and the same WebSocket code over its stream
//! as over any other. Without the feature, any TLS stream handed to [`client`] or
//! [`accept_with`] works the same.
//!
//! [`ServerTls`]: crate::tls::ServerTls
//!
//! # HTTP servers
//!
//! A WebSocket served from an HTTP server's upgrade (hyper, axum) starts from the core's
//! [`Connection::upgraded`](wsproto::Connection::upgraded), which checks the request and
//! answers the 101's header fields for the server to send; [`WebSocket::from_open`] then runs
//! the connection on the upgraded stream. `examples/hyper-upgrade` shows it beside ordinary
//! routes.
//!
//! [`Connection::poll_timeout`]: wsproto::Connection::poll_timeout

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use ::tokio::io::{AsyncRead, AsyncWrite};
use ::tokio::net::TcpStream;
use futures_core::Stream;
use futures_sink::Sink;
use wsproto::{
    Accept, CloseCause, CloseCode, Closed, Config, Connection, Event, HandshakeError, Message, OutgoingRequest,
    OutgoingResponse, ReceiveMode, Request, Response, SendError, UsageError, WsUrl,
};

mod engine;
mod split;
mod stream;
#[cfg(feature = "tokio-tls")]
mod tls;

use self::engine::Engine;
pub use self::engine::READ_BUFFER_SIZE;
pub use self::split::{Reader, ReuniteError, Writer};
pub use self::stream::ClientStream;
#[cfg(feature = "tokio-tls")]
pub use self::tls::{accept_tls, tls_accept, ServerTlsStream};

/// Why a call on a [`WebSocket`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream failed (including a TCP connect that failed or timed out). After an I/O
    /// error the connection is over.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The opening handshake failed (RFC 6455 §4). Server: the request was invalid or broke the
    /// config's policies and was answered with the error's status. Client: the server's 101
    /// response was invalid.
    #[error("opening handshake failed: {0}")]
    Handshake(HandshakeError),
    /// The upgrade was answered with this HTTP status instead of 101: client, by the server;
    /// server, by us at the application's request, or a plain HTTP request was answered.
    #[error("upgrade answered with HTTP status {status}")]
    Rejected {
        /// The status of the answer.
        status: u16,
    },
    /// The core refused a command (a ping over 125 bytes, an invalid close code or header);
    /// nothing was queued.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The `Sink` was given a message before `poll_ready` made room for the one it holds back.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The connection ended without a clean close handshake: the core's account of why (a
    /// protocol error of the peer, a keep-alive or close timeout, the peer's end of stream).
    #[error("connection ended: {} ({:?})", .0.code, .0.cause)]
    Ended(Closed),
    /// The connection is over (or closing, for a send): nothing more can be sent or received.
    #[error("the connection is closed")]
    Closed,
    /// The URL is not a valid `ws://` URL; the text says what is wrong.
    #[error("invalid WebSocket URL: {0}")]
    InvalidUrl(&'static str),
    /// A `wss://` URL without the `tokio-tls` feature. Enable it, or connect a TLS stream
    /// yourself and hand it to [`client`].
    #[error("wss:// needs the tokio-tls feature of wsproto-adapters (or tokio::client over a TLS stream)")]
    TlsUnsupported,
    /// The TLS handshake with `host` failed (a certificate that does not verify for it, a
    /// peer that speaks no TLS, an alert).
    #[cfg(feature = "tokio-tls")]
    #[error("TLS with {host}: {error}")]
    Tls {
        /// The host name (client) or the peer's address (server).
        host: String,
        /// What rustls reported.
        error: rustls::Error,
    },
    /// [`ReceiveMode::Streaming`] is not supported by this adapter, which hands out whole
    /// messages.
    #[error("the tokio adapter receives whole messages; ReceiveMode::Streaming is not supported")]
    StreamingUnsupported,
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

fn check_config(config: &Config) -> Result<(), Error> {
    match config.receive_mode {
        ReceiveMode::Messages => Ok(()),
        ReceiveMode::Streaming => Err(Error::StreamingUnsupported),
    }
}

/// Options for [`connect`]; `ConnectOptions::default()` offers no subprotocol and uses the
/// default [`Config`].
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Limits and timers for the connection. `handshake_timeout` also bounds the TCP connect.
    pub config: Arc<Config>,
    /// Subprotocols to offer, most preferred first (RFC 6455 §4.1 `Sec-WebSocket-Protocol`).
    pub subprotocols: Vec<String>,
    /// The `Origin` header, for servers that check it (RFC 6455 §10.2).
    pub origin: Option<String>,
    /// Extra header fields for the upgrade request (e.g. `Authorization`, `Cookie`).
    pub headers: Vec<(String, String)>,
    /// `wss://` with this rustls configuration (its roots, client certificates; ALPN
    /// `http/1.1` is asked for unless it sets ALPN itself). `None`: the Mozilla roots of
    /// webpki-roots and the crate's crypto provider ([`crate::tls::provider`]).
    #[cfg(feature = "tokio-tls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Server: completes the opening handshake on an accepted TCP connection, accepting every
/// valid upgrade request (the config's origin and subprotocol policies still apply; see
/// [`accept_with`] to decide per request). Sets `TCP_NODELAY`: frames are written whole.
pub async fn accept(stream: TcpStream, config: Arc<Config>) -> Result<WebSocket<TcpStream>, Error> {
    stream.set_nodelay(true)?;
    accept_with(stream, config, |_| Ok(Accept::new())).await
}

/// Server: completes the opening handshake on any stream, letting `decide` answer the
/// request: `Ok(accept)` opens the connection (choosing a subprotocol, adding headers),
/// `Err(response)` refuses it (e.g. [`OutgoingResponse::service_unavailable`]) and this returns
/// [`Error::Rejected`].
///
/// `decide` sees only requests that passed RFC 6455 §4.2.1 and the config's policies; the
/// others are answered by the core with their status (400, 403, 426, 431) and returned as
/// [`Error::Handshake`]. A plain HTTP request (no `Upgrade: websocket`) is shown to `decide`
/// too: `Err(response)` answers it, `Ok(_)` answers 426. An answer the core refuses (an
/// invalid header, a subprotocol the client did not offer) is replaced by a 500 and returned
/// as [`Error::Usage`]. The core's handshake timeout bounds the whole exchange.
pub async fn accept_with<S, F>(stream: S, config: Arc<Config>, decide: F) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&Request) -> Result<Accept, OutgoingResponse>,
{
    // The handshake's state lives on the heap only while it runs: a task that goes on to serve
    // the connection keeps no room for it for the connection's life.
    Box::pin(server_handshake(stream, config, decide)).await
}

async fn server_handshake<S, F>(stream: S, config: Arc<Config>, mut decide: F) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&Request) -> Result<Accept, OutgoingResponse>,
{
    check_config(&config)?;
    let mut engine = Engine::new(stream, Connection::server(config, Instant::now()));
    let mut refused = None;
    loop {
        let response = match std::future::poll_fn(|cx| engine.poll_event(cx)).await? {
            Event::Request(request) => match decide(&request) {
                Ok(accept) => match engine.conn.accept(accept) {
                    Ok(()) => {
                        tracing::debug!(path = request.path(), "upgrade accepted");
                        std::future::poll_fn(|cx| engine.poll_write_queue(cx, 0)).await?;
                        return Ok(WebSocket { engine });
                    }
                    Err(error) => {
                        tracing::debug!("answer refused, sending 500: {error}");
                        refused = Some(error);
                        OutgoingResponse::new(500).text("internal server error\n")
                    }
                },
                Err(response) => response,
            },
            Event::HttpRequest(request) => match decide(&request) {
                Err(response) => response,
                Ok(_) => OutgoingResponse::upgrade_required().header("Upgrade", "websocket"),
            },
            Event::Closed(closed) => {
                tracing::debug!("opening handshake failed: {:?}", closed.cause);
                return Err(match refused {
                    Some(error) => Error::Usage(error),
                    None => handshake_failure(*closed),
                });
            }
            _ => continue,
        };
        // The core then reports `Closed` (cause `Rejected`) once the answer is out.
        if let Err(error) = engine.conn.respond(response) {
            refused = Some(error);
            engine.conn.respond(OutgoingResponse::new(500).text("internal server error\n"))?;
        }
    }
}

/// Client: opens a TCP connection to a `ws://` or `wss://` URL and completes the opening
/// handshake. Answers the connection and the server's 101 response (its subprotocol, headers).
///
/// `wss://` (feature `tokio-tls`; without it [`Error::TlsUnsupported`]) sends the host as
/// SNI, asks for ALPN `http/1.1` and checks the certificate against the host, with
/// [`ConnectOptions::tls`] or the default roots; a certificate that does not verify is
/// [`Error::Tls`] naming the host. The config's handshake timeout bounds the TCP connect and
/// the TLS handshake together; the opening handshake then has its own. A non-101 answer is
/// [`Error::Rejected`] with its status. Sets `TCP_NODELAY`.
pub async fn connect(url: &str, options: ConnectOptions) -> Result<(WebSocket<ClientStream>, Response), Error> {
    let url = WsUrl::parse(url).map_err(Error::InvalidUrl)?;
    #[cfg(not(feature = "tokio-tls"))]
    if url.secure {
        return Err(Error::TlsUnsupported);
    }
    let deadline = options.config.handshake_timeout.map(|limit| ::tokio::time::Instant::now() + limit);
    let connecting = TcpStream::connect((url.host.as_str(), url.port));
    let tcp = match deadline {
        Some(deadline) => ::tokio::time::timeout_at(deadline, connecting)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out"))??,
        None => connecting.await?,
    };
    tcp.set_nodelay(true)?;
    let stream = match url.secure {
        #[cfg(feature = "tokio-tls")]
        true => ClientStream::Tls(Box::new(tls::tls_connect(tcp, &url.host, options.tls.as_ref(), deadline).await?)),
        _ => ClientStream::Plain(tcp),
    };
    let request = OutgoingRequest {
        host: url.host_header(),
        target: url.target,
        origin: options.origin,
        subprotocols: options.subprotocols,
        extensions: Vec::new(),
        headers: options.headers,
    };
    client(stream, options.config, request).await
}

/// Client: completes the opening handshake over `stream` (any transport, e.g. a TLS stream
/// already connected), sending `request`. A non-101 answer is [`Error::Rejected`], an invalid
/// 101 [`Error::Handshake`].
pub async fn client<S>(
    stream: S,
    config: Arc<Config>,
    request: OutgoingRequest,
) -> Result<(WebSocket<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // As in `accept_with`: the handshake's state on the heap while it runs.
    Box::pin(client_handshake(stream, config, request)).await
}

async fn client_handshake<S>(
    stream: S,
    config: Arc<Config>,
    request: OutgoingRequest,
) -> Result<(WebSocket<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    check_config(&config)?;
    let conn = Connection::client(config, request, Instant::now())?;
    let mut engine = Engine::new(stream, conn);
    loop {
        match std::future::poll_fn(|cx| engine.poll_event(cx)).await? {
            Event::Connected(response) => {
                tracing::debug!(subprotocol = response.subprotocol(), "connected");
                return Ok((WebSocket { engine }, *response));
            }
            Event::Closed(closed) => {
                tracing::debug!("opening handshake failed: {:?}", closed.cause);
                return Err(handshake_failure(*closed));
            }
            _ => {}
        }
    }
}

/// One WebSocket connection over a tokio stream, server or client, once the opening handshake
/// is done (see [`accept`], [`accept_with`], [`connect`], [`client`]).
///
/// A [`Stream`] of `Result<Message, Error>` and a [`Sink`] of [`Message`]s, with the
/// same as inherent methods: [`recv`](Self::recv), [`send`](Self::send),
/// [`close`](Self::close). See the [module docs](self) for cancel safety and back-pressure.
#[derive(Debug)]
pub struct WebSocket<S> {
    engine: Engine<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// The next message, or `None` once the connection has ended after a clean close
    /// handshake (an unclean end is one [`Error::Ended`] first). Pongs go out, timers run and
    /// the peer's close is answered while it waits.
    ///
    /// Cancel-safe: a `recv` dropped before it answers loses no message and no partial frame.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        std::future::poll_fn(|cx| poll_message(&mut self.engine, cx)).await
    }

    /// Sends a message: waits while the queue is over the high-water mark (or, for a message
    /// larger than the queue's room, until it is empty), queues the message whole, and writes
    /// it out. [`Error::Closed`] once a close frame was sent or received.
    ///
    /// Cancel-safe: cancelled, it has queued the whole message or nothing (see the
    /// [module docs](self#cancel-safety)).
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        let mut message = Some(message);
        std::future::poll_fn(|cx| self.engine.poll_queue_message(cx, &mut message)).await?;
        self.flush().await
    }

    /// Queues a message as [`send`](Self::send) does (waiting while the queue is over the
    /// high-water mark) without waiting for it to be written: the next [`recv`](Self::recv),
    /// `send` or [`flush`](Self::flush) writes it, so a loop that answers messages writes its
    /// answers in batches, once no more input is ready. Call `flush` if nothing follows.
    ///
    /// Cancel-safe as `send`: the whole message is queued, or nothing.
    pub async fn feed(&mut self, message: Message) -> Result<(), Error> {
        let mut message = Some(message);
        std::future::poll_fn(|cx| self.engine.poll_queue_message(cx, &mut message)).await
    }

    /// Sends a ping (at most 125 bytes) and writes it out; the pong is handled by the core
    /// (it also keeps the keep-alive timer satisfied).
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.engine.conn.ping(payload)?;
        self.flush().await
    }

    /// Writes everything queued and flushes the stream. Cancel-safe: what is not written yet
    /// stays queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.engine.poll_flush(cx)).await
    }

    /// Closes the connection (RFC 6455 §7.1.2): sends a close frame with a sendable code and a
    /// reason of at most 123 bytes, then waits for the peer's close (at most the core's close
    /// timeout) and the end of the transport; messages that arrive meanwhile are dropped.
    /// Answers how the connection ended. If it was already closing (or closed), waits for
    /// (or answers) that ending instead.
    ///
    /// Cancel-safe: the close frame is queued in the first poll; after a cancel the
    /// connection is closing and `recv` sees the rest.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<Closed, Error> {
        close_engine(&mut self.engine, code, reason)?;
        std::future::poll_fn(|cx| poll_until_closed(&mut self.engine, cx)).await
    }

    /// How the connection ended, once it has (after `recv` answered `None` or
    /// [`Error::Ended`], or `close` returned).
    pub fn closed(&self) -> Option<&Closed> {
        self.engine.ended.as_ref()
    }

    /// Sends wait while more than `bytes` are queued (default 64 KiB, at most
    /// `Config::max_queued_bytes`).
    pub fn set_high_water(&mut self, bytes: usize) {
        self.engine.high_water = bytes.min(self.engine.conn.config().max_queued_bytes);
    }

    /// The protocol state: [`Connection::state`], [`Connection::subprotocol`], ...
    pub fn connection(&self) -> &Connection {
        &self.engine.conn
    }

    /// The subprotocol agreed in the opening handshake.
    pub fn subprotocol(&self) -> Option<&str> {
        self.engine.conn.subprotocol()
    }

    /// The stream, e.g. for its peer address. Reading or writing it directly would corrupt
    /// the connection.
    pub fn get_ref(&self) -> &S {
        &self.engine.stream
    }

    /// Splits the connection into a [`Reader`] and a [`Writer`] for two tasks (see there);
    /// [`Reader::reunite`] puts them back together.
    pub fn split(self) -> (Reader<S>, Writer<S>) {
        split::split(self.engine)
    }

    /// Runs a connection whose opening handshake was done elsewhere over `stream`: an HTTP
    /// server's upgrade (e.g. hyper's), where the server sent the 101 response with the header
    /// fields the core computed and the core starts open. [`Error::Closed`] if `conn` is not
    /// open; [`Error::StreamingUnsupported`] in streaming mode.
    pub fn from_open(stream: S, conn: Connection) -> Result<Self, Error> {
        check_config(conn.config())?;
        if conn.state() != wsproto::ConnectionState::Open {
            return Err(Error::Closed);
        }
        Ok(WebSocket { engine: Engine::new(stream, conn) })
    }

    pub(crate) fn from_engine(engine: Engine<S>) -> Self {
        WebSocket { engine }
    }
}

/// Starts the close handshake unless it is under way already.
fn close_engine<S: AsyncRead + AsyncWrite + Unpin>(
    engine: &mut Engine<S>,
    code: CloseCode,
    reason: &str,
) -> Result<(), Error> {
    match engine.conn.close(code, reason) {
        Ok(()) | Err(UsageError::Closed) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// The run loop until the connection is over, dropping messages; answers how it ended.
fn poll_until_closed<S: AsyncRead + AsyncWrite + Unpin>(
    engine: &mut Engine<S>,
    cx: &mut Context<'_>,
) -> Poll<Result<Closed, Error>> {
    loop {
        if engine.is_finished() {
            return Poll::Ready(engine.ended.clone().ok_or(Error::Closed));
        }
        match ready!(engine.poll_event(cx)) {
            Ok(Event::Closed(closed)) => return Poll::Ready(Ok(*closed)),
            Ok(_) => {}
            Err(error) => return Poll::Ready(Err(error)),
        }
    }
}

/// The next message for the `Stream`: a clean close ends it, any other ending is one
/// [`Error::Ended`]; pings and pongs are the core's business.
pub(crate) fn poll_message<S: AsyncRead + AsyncWrite + Unpin>(
    engine: &mut Engine<S>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Message, Error>>> {
    loop {
        if engine.is_finished() {
            return Poll::Ready(None);
        }
        return Poll::Ready(match ready!(engine.poll_event(cx)) {
            Ok(Event::Message(message)) => Some(Ok(message)),
            Ok(Event::Closed(closed)) if closed.clean => None,
            Ok(Event::Closed(closed)) => Some(Err(Error::Ended(*closed))),
            Ok(_) => continue,
            Err(Error::Closed) => None,
            Err(error) => Some(Err(error)),
        });
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        poll_message(&mut self.get_mut().engine, cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().engine.poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        self.get_mut().engine.start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().engine.poll_flush(cx)
    }

    /// Closes with 1000 (Normal Closure) and waits for the end, as [`WebSocket::close`].
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let engine = &mut self.get_mut().engine;
        ready!(engine.poll_flush(cx)).or_else(|e| if matches!(e, Error::Closed) { Ok(()) } else { Err(e) })?;
        close_engine(engine, CloseCode::NORMAL, "")?;
        poll_until_closed(engine, cx).map_ok(|_| ())
    }
}
