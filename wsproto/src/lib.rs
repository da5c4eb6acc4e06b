//! A sans-IO WebSocket (RFC 6455) protocol core for both the client and the server role.
//!
//! A [`Connection`] is a pure state machine: you hand it the bytes you read and the current
//! time; it hands you events, the bytes to write, and the next time it wants to be woken. It
//! owns no socket, reads no clock, starts no thread and keeps no global state, so any runtime
//! (blocking std, mio, tokio, a test with a fake clock) can drive it.
//!
//! # The run loop
//!
//! After *every* input or command, drain the outputs; then wait for the transport or the
//! deadline, whichever comes first:
//!
//! 1. **Input**: [`Connection::receive`] with the bytes read (or [`Connection::receive_eof`] at
//!    end of file), or [`Connection::handle_timeout`] when the deadline has passed. Each takes
//!    `now`.
//! 2. **Events**: call [`Connection::poll_event`] until it answers `None`, acting on each
//!    (a server answers [`Event::Request`] with [`Connection::accept`] or
//!    [`Connection::respond`]; messages go to the application; [`Event::Closed`] is the last).
//! 3. **Commands** from the application at any time: [`Connection::send_text`],
//!    [`Connection::ping`], [`Connection::close`], ...; then drain again.
//! 4. **Bytes out**: write [`Connection::outgoing`] (vectored) or [`Connection::outgoing_front`]
//!    and acknowledge with [`Connection::advance_outgoing`]; keep write interest while
//!    [`Connection::queued_bytes`] is non-zero.
//! 5. **Close the transport** once [`Connection::should_close_transport`] is true and the queue
//!    is empty.
//! 6. **Sleep** until readable, writable (if bytes are queued) or [`Connection::poll_timeout`].
//!    Read only while [`Connection::wants_read`] is true: it is false while a server waits for
//!    the application's answer to a request and, with permessage-deflate, while inflated data
//!    waits to be taken (the connection holds the rest of the read and inflates it as events
//!    are taken, so that a few compressed bytes cannot make one read cost megabytes).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use wsproto::{Accept, Connection, Config, Event, Message};
//!
//! let now = Instant::now();
//! let mut server = Connection::server(Arc::new(Config::default()), now);
//! server.receive(now, b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n");
//! let Some(Event::Request(request)) = server.poll_event() else { panic!() };
//! assert_eq!(request.path(), "/chat");
//! server.accept(Accept::new()).unwrap();
//! // The 101 response is queued; a real adapter writes it to the socket.
//! let head = server.outgoing_front().to_vec();
//! assert!(head.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! server.advance_outgoing(head.len());
//!
//! // A masked text frame "Hello" from the client (RFC 6455 §5.7).
//! server.receive(now, &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//! assert_eq!(server.poll_event(), Some(Event::Message(Message::Text("Hello".into()))));
//! server.send_text("Hello yourself").unwrap();
//! assert!(server.queued_bytes() > 0);
//! ```
//!
//! # Errors
//!
//! What the *peer* does wrong never panics and never surfaces as an `Err`: it becomes the
//! RFC's answer (an HTTP status during the handshake, a close frame with the right code after
//! it) and an [`Event::Closed`] whose [`CloseCause`] says why. What the *application* asks for
//! that cannot be done (sending after close, a 200-byte ping) is a [`SendError`], and nothing
//! is queued.
//!
//! # Limits
//!
//! Every buffer is bounded by [`Config`]: handshake heads, frames, messages, fragments and the
//! outgoing queue. Nothing is allocated on the strength of a length the peer merely announces.
//! Compressed messages are bounded after inflation, as they inflate; see the `deflate`
//! feature's `DeflateConfig` for what a compressed connection costs.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod close;
mod config;
mod connection;
#[cfg(feature = "deflate")]
mod deflate;
#[cfg(not(feature = "deflate"))]
#[path = "deflate_disabled.rs"]
mod deflate;
mod error;
mod event;
pub mod frame;
mod handshake;
mod outgoing;
mod random;
mod timer;
pub mod utf8;

pub use close::{CloseCode, MAX_CLOSE_REASON};
pub use config::{Config, KeepAlive, OriginPolicy, ReceiveMode, SubprotocolPolicy};
pub use connection::{Connection, ConnectionState, PreparedFrame, Role, MAX_INFLATED_CHUNK};
pub use error::{HandshakeError, ProtocolError, SendError};
pub use event::{CloseCause, Closed, Event, Message, MessageKind};
pub use frame::HeaderError;
pub use handshake::{
    accept_key, Accept, ClientRequest, ExtensionOffer, Header, HttpResponse, Request, Response, WsUrl,
};
pub use random::{OsRandom, RandomSource};

#[cfg(feature = "deflate")]
pub use deflate::{DeflateConfig, DeflateParams};

#[cfg(test)]
mod tests;
