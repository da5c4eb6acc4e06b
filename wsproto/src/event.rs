//! What a connection reports to the application.

use crate::close::CloseCode;
use crate::error::{HandshakeError, ProtocolError};
use crate::handshake::{Request, Response};

/// Something that happened on a connection, from [`Connection::poll_event`](crate::Connection::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Server: a valid WebSocket upgrade request arrived (it passed the config's origin and
    /// subprotocol policies). Answer with [`accept`](crate::Connection::accept) or
    /// [`respond`](crate::Connection::respond) (a rejection).
    Request(Request),
    /// Server: a plain HTTP request (no `Upgrade: websocket`). Answer with
    /// [`respond`](crate::Connection::respond); the connection then closes.
    HttpRequest(Request),
    /// Client: the server accepted the upgrade; the connection is open.
    Connected(Response),
    /// A whole message ([`ReceiveMode::Messages`](crate::ReceiveMode::Messages)).
    Message(Message),
    /// A piece of a message's payload as it arrived ([`ReceiveMode::Streaming`](crate::ReceiveMode::Streaming)).
    /// Text is validated as it arrives, but a chunk may end inside a code point.
    Chunk {
        /// Text or binary, from the message's first frame.
        kind: MessageKind,
        /// The payload bytes, unmasked.
        data: Vec<u8>,
        /// The first chunk of its message.
        first: bool,
        /// The last chunk of its message.
        last: bool,
    },
    /// A ping arrived (already answered when `auto_pong` is on).
    Ping(Vec<u8>),
    /// A pong arrived.
    Pong(Vec<u8>),
    /// The connection is over; nothing follows this event.
    Closed(Closed),
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }
}

/// Text or binary (RFC 6455 §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}
