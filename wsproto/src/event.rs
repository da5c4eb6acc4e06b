//! What a connection reports to the application.

use crate::close::CloseCode;
use crate::error::{HandshakeError, ProtocolError, SendError};
use crate::handshake::{Request, Response};
use crate::text::Utf8Bytes;
use bytes::Bytes;

/// Something that happened on a connection, from [`Connection::poll_event`](crate::Connection::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Server: a valid WebSocket upgrade request arrived (it passed the config's origin and
    /// subprotocol policies). Answer with [`accept`](crate::Connection::accept) or
    /// [`respond`](crate::Connection::respond) (a rejection).
    Request(Box<Request>),
    /// Server: a plain HTTP request (no `Upgrade: websocket`). Answer with
    /// [`respond`](crate::Connection::respond); the connection then closes.
    HttpRequest(Box<Request>),
    /// Client: the server accepted the upgrade; the connection is open.
    Connected(Box<Response>),
    /// A whole message ([`ReceiveMode::Messages`](crate::ReceiveMode::Messages)).
    Message(Message),
    /// A piece of a message's payload as it arrived ([`ReceiveMode::Streaming`](crate::ReceiveMode::Streaming)).
    /// Text is validated as it arrives, but a chunk may end inside a code point.
    Chunk {
        /// Text or binary, from the message's first frame.
        kind: MessageKind,
        /// The payload bytes, unmasked.
        data: Bytes,
        /// The first chunk of its message.
        first: bool,
        /// The last chunk of its message.
        last: bool,
    },
    /// A ping arrived (already answered when `auto_pong` is on).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The connection is over; nothing follows this event.
    Closed(Box<Closed>),
}

impl Event {
    /// The ending, if this is [`Event::Closed`]: for matching on its fields, which the box
    /// around it (it is large and comes once) keeps a pattern from reaching.
    pub fn closed(&self) -> Option<&Closed> {
        match self {
            Event::Closed(closed) => Some(closed),
            _ => None,
        }
    }
}

/// A whole message. Its payload is a reference-counted buffer: a received message usually
/// shares the connection's read buffer (no copy), and a message can be cloned, or sent to many
/// connections, without copying its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message (from a `String` without a copy, from a `&str` with one).
    pub fn text(text: impl Into<Utf8Bytes>) -> Message {
        Message::Text(text.into())
    }

    /// A binary message (from a `Vec<u8>` or [`Bytes`] without a copy, from a slice with one).
    pub fn binary(data: impl Into<Bytes>) -> Message {
        Message::Binary(data.into())
    }

    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// The payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(s) => Some(s),
            Message::Binary(_) => None,
        }
    }

    /// The text, if this is a text message; otherwise the message itself, back.
    pub fn into_text(self) -> Result<Utf8Bytes, Message> {
        match self {
            Message::Text(s) => Ok(s),
            other => Err(other),
        }
    }

    /// The payload bytes, whatever the kind (text as its UTF-8 encoding), shared.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(s) => s.into_bytes(),
            Message::Binary(b) => b,
        }
    }
}

impl From<Utf8Bytes> for Message {
    /// A text message.
    fn from(text: Utf8Bytes) -> Self {
        Message::Text(text)
    }
}

impl From<String> for Message {
    /// A text message, without a copy.
    fn from(text: String) -> Self {
        Message::Text(text.into())
    }
}

impl From<&str> for Message {
    /// A text message.
    fn from(text: &str) -> Self {
        Message::Text(text.into())
    }
}

impl From<Vec<u8>> for Message {
    /// A binary message, without a copy.
    fn from(data: Vec<u8>) -> Self {
        Message::Binary(data.into())
    }
}

impl From<&[u8]> for Message {
    /// A binary message.
    fn from(data: &[u8]) -> Self {
        Message::Binary(Bytes::copy_from_slice(data))
    }
}

impl From<Bytes> for Message {
    /// A binary message, without a copy.
    fn from(data: Bytes) -> Self {
        Message::Binary(data)
    }
}

/// Text or binary (RFC 6455 §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum MessageKind {
    /// UTF-8 text.
    Text,
    /// Arbitrary bytes.
    Binary,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code that describes the ending: the peer's code when it sent a close frame
    /// (1005 if that frame had none), otherwise the code we sent (protocol errors, keep-alive),
    /// or 1006 when no close frame went either way.
    pub code: CloseCode,
    /// The reason that came with `code`.
    pub reason: String,
    /// Whether both close frames were exchanged (RFC 6455 §7.1.4 "cleanly").
    pub clean: bool,
    /// What ended it.
    pub cause: CloseCause,
}

/// What ended a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseCause {
    /// The peer sent a close frame first; we answered it.
    PeerClosed,
    /// We sent a close frame first; the peer answered it.
    LocalClosed,
    /// We sent a close frame first and the peer did not answer within the close timeout.
    CloseTimeout,
    /// The peer broke the protocol; we sent the matching close code.
    Protocol(ProtocolError),
    /// Keep-alive: the peer sent nothing within the timeout after our ping; we sent 1011.
    KeepAliveTimeout,
    /// The opening handshake failed (server: answered with its HTTP status).
    Handshake(HandshakeError),
    /// Server: the application rejected the handshake or answered a plain HTTP request.
    Rejected {
        /// The status sent.
        status: u16,
    },
    /// The transport ended (EOF) before the close handshake finished.
    Eof,
    /// We ended it for a reason of our own, through
    /// [`Connection::close_with_cause`](crate::Connection::close_with_cause) (a close handshake)
    /// or [`Connection::abort`](crate::Connection::abort) (none). Whatever happened after that
    /// decision (the peer answered, or did not), this is the cause reported; `clean` and `code`
    /// say how the close handshake went.
    Local(LocalCause),
    /// Our last bytes (a close frame, or the answer to the peer's) could not be written within
    /// [`Config::drain_timeout`](crate::Config::drain_timeout): the peer stopped reading. The
    /// unwritten bytes were dropped and the transport should close now.
    DrainTimeout,
}

/// Why we (the driver or the application, not the peer or the protocol) ended a connection;
/// carried by [`CloseCause::Local`] so that an application can tell these closes apart from a
/// peer's close, a protocol error or a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum LocalCause {
    /// The peer reads too slowly: our outgoing queue stayed full (backpressure we gave up on).
    /// Usually with [`Connection::abort`](crate::Connection::abort), since a close frame would
    /// wait behind the very bytes the peer does not read.
    SlowConsumer,
    /// An application policy: a rate limit, a quota, a ban, a message the application refuses.
    /// Usually with code 1008 (policy violation) through
    /// [`Connection::close_with_cause`](crate::Connection::close_with_cause).
    Policy,
    /// The server (or client) is shutting down. Usually with code 1001 (going away).
    Shutdown,
}

/// [`Connection::send`](crate::Connection::send) or
/// [`send_uncompressed`](crate::Connection::send_uncompressed) failed: why, and the message
/// itself, handed back so that the caller can retry it (after backpressure) without a copy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct MessageNotSent {
    /// Why it was not sent.
    pub error: SendError,
    /// The message, untouched.
    pub message: Message,
}

impl MessageNotSent {
    /// The message, to retry or drop.
    pub fn into_message(self) -> Message {
        self.message
    }
}
