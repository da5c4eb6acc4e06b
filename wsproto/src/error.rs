//! Errors: what the peer did wrong ([`ProtocolError`], [`HandshakeError`]), what the
//! application called wrongly ([`UsageError`]), and data sends that did not happen
//! ([`SendError`]: backpressure or misuse; [`MessageNotSent`] hands the message back).

use crate::close::CloseCode;
use crate::frame::HeaderError;

/// The peer broke RFC 6455 after the handshake. Each carries the close code we answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A malformed frame header.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// RSV bits set that no negotiated extension defines (RFC 6455 §5.2).
    #[error("reserved bits {0:#05b} set without a negotiated extension")]
    ReservedBits(u8),
    /// A client frame without a masking key (RFC 6455 §5.1).
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A server frame with a masking key (RFC 6455 §5.1).
    #[error("server frame is masked")]
    MaskedFrame,
    /// A control frame with FIN clear (RFC 6455 §5.5).
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u64),
    /// A continuation frame with no message in progress (RFC 6455 §5.4).
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is unfinished (RFC 6455 §5.4).
    #[error("new data frame while a fragmented message is unfinished")]
    ExpectedContinuation,
    /// Text that is not UTF-8 (RFC 6455 §8.1): close code 1007.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A close frame with a one-byte payload (RFC 6455 §5.5.1).
    #[error("close frame payload of one byte")]
    TruncatedClose,
    /// A close code that may not be sent (RFC 6455 §7.4).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8: close code 1007.
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
    /// A compressed message (permessage-deflate, RFC 7692) that does not inflate: close code 1007.
    #[error("compressed message does not inflate")]
    InvalidCompressedData,
    /// A frame longer than the configured maximum: close code 1009.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The length the header announced.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A message longer than the configured maximum: close code 1009.
    #[error("message exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// The configured limit.
        max: usize,
    },
    /// A message in more fragments than the configured maximum: close code 1009.
    #[error("message exceeds the limit of {max} fragments")]
    TooManyFragments {
        /// The configured limit.
        max: usize,
    },
}

impl ProtocolError {
    /// The close code this error is answered with (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge { .. }
            | ProtocolError::MessageTooLarge { .. }
            | ProtocolError::TooManyFragments { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// The opening handshake failed (RFC 6455 §4). On the server each carries the HTTP status it
/// was answered with; on the client it says what was wrong with the server's response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head is not valid HTTP/1.1.
    #[error("malformed HTTP: {0}")]
    Malformed(String),
    /// The head is longer than the configured limit (431 on the server).
    #[error("handshake exceeds {0} bytes")]
    TooLarge(usize),
    /// The head has more header fields than the configured limit (431 on the server).
    #[error("handshake has more than {0} header fields")]
    TooManyHeaders(usize),
    /// Something the request must have is missing or wrong (400): the text says what.
    #[error("bad upgrade request: {0}")]
    BadRequest(&'static str),
    /// `Sec-WebSocket-Version` is not 13 (426 with `Sec-WebSocket-Version: 13`).
    #[error("unsupported WebSocket version {0:?}")]
    UnsupportedVersion(String),
    /// The `Origin` is not on the allow-list (403).
    #[error("origin {0:?} is not allowed")]
    OriginNotAllowed(Option<String>),
    /// The client offered none of the subprotocols the server requires (400).
    #[error("no supported subprotocol offered (supported: {0})")]
    NoSubprotocol(String),
    /// The server answered with a status other than 101.
    #[error("server answered {0} instead of 101")]
    Status(u16),
    /// Something the server's 101 response must have is missing or wrong: the text says what.
    #[error("bad upgrade response: {0}")]
    BadResponse(&'static str),
    /// The server chose a subprotocol the client did not offer (RFC 6455 §4.1, step 6).
    #[error("server chose subprotocol {0:?}, which was not offered")]
    SubprotocolNotOffered(String),
    /// The server chose an extension the client did not offer (RFC 6455 §4.1, step 5).
    #[error("server chose extension {0:?}, which was not offered")]
    ExtensionNotOffered(String),
    /// The handshake did not finish within the configured time.
    #[error("handshake timed out")]
    Timeout,
}

impl HandshakeError {
    /// The HTTP status a server answers this error with, where it is the server's to answer.
    pub fn status(&self) -> Option<u16> {
        Some(match self {
            HandshakeError::Malformed(_) | HandshakeError::BadRequest(_) | HandshakeError::NoSubprotocol(_) => 400,
            HandshakeError::TooLarge(_) | HandshakeError::TooManyHeaders(_) => 431,
            HandshakeError::UnsupportedVersion(_) => 426,
            HandshakeError::OriginNotAllowed(_) => 403,
            HandshakeError::Timeout => 408,
            _ => return None,
        })
    }
}

/// The application used the API wrongly: asked for something this connection can never do in
/// its present state or with these arguments (sending before open or after close, accepting
/// twice, a bad header name, an oversized control payload). Nothing was queued. Fix the
/// calling code; retrying the same call will fail again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// The opening handshake has not completed.
    #[error("the connection is not open yet")]
    NotOpen,
    /// A close frame was sent or received, or the connection failed: no more data may be sent.
    #[error("the connection is closing or closed")]
    Closed,
    /// A control frame payload over 125 bytes (RFC 6455 §5.5).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(usize),
    /// A close code that may not be sent (RFC 6455 §7.4).
    #[error("close code {0} may not be sent")]
    InvalidCloseCode(u16),
    /// A text fragment that is not UTF-8, or text that ends inside a code point.
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// A whole message was sent while a fragmented one is unfinished, or a continuation was sent
    /// as a different kind than the message it continues.
    #[error("a fragmented message is in progress")]
    FragmentInProgress,
    /// `accept` or `respond` without a request waiting for an answer, or `accept` for a plain
    /// HTTP request.
    #[error("no request is waiting for this answer")]
    NoPendingRequest,
    /// A header name or value that would break the HTTP head (CR, LF, or an invalid name).
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// `Accept::subprotocol` names a subprotocol the client did not offer.
    #[error("subprotocol {0:?} was not offered by the client")]
    SubprotocolNotOffered(String),
}

/// A data send that did not happen: either the queue is full (backpressure: wait until
/// [`Connection::queued_bytes`](crate::Connection::queued_bytes) drops, then retry) or the
/// call itself was wrong ([`UsageError`]). Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Queueing this would take the outgoing queue past `Config::max_queued_bytes`.
    #[error("outgoing queue full ({queued} bytes queued, limit {limit})")]
    QueueFull {
        /// Bytes queued now.
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The call was wrong whatever the queue holds.
    #[error(transparent)]
    Usage(#[from] UsageError),
}
