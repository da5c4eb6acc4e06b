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
//! 1. **Input**: [`Connection::receive`] with the bytes read, or [`Connection::receive_buf`]
//!    with the read buffer itself (whole frames are then split off it as messages without a
//!    copy, and an unfinished small frame is left in it for the next read); or
//!    [`Connection::receive_eof`] at end of file, or [`Connection::handle_timeout`] when the
//!    deadline has passed. Each takes `now`.
//! 2. **Events**: call [`Connection::poll_event`] until it answers `None`, acting on each
//!    (a server answers [`Event::Request`] with [`Connection::accept`] or
//!    [`Connection::respond`]; messages go to the application; [`Event::Closed`] is the last,
//!    and its [`CloseCause`] says who ended it and why).
//! 3. **Commands** from the application at any time: [`Connection::send_text`],
//!    [`Connection::ping`], [`Connection::close`], ...; then drain again. Closes the driver
//!    decides for its own reasons use [`Connection::close_with_cause`] (a policy, a shutdown)
//!    or [`Connection::abort`] (a slow consumer: no close handshake), so that the `Closed`
//!    event carries [`CloseCause::Local`].
//! 4. **Bytes out**: write [`Connection::outgoing`] (vectored) or [`Connection::outgoing_front`]
//!    and acknowledge each write with [`Connection::advance_outgoing`]`(now, n)` (the time
//!    matters: the keep-alive deadline counts from when the ping was written); keep write
//!    interest while [`Connection::wants_write`] is true.
//! 5. **Close the transport** once [`Connection::should_close_transport`] is true and the queue
//!    is empty. The queue always empties: after [`Config::drain_timeout`] what a peer does not
//!    read is dropped.
//! 6. **Sleep** until readable, writable (if bytes are queued) or [`Connection::poll_timeout`].
//!    Read only while [`Connection::wants_read`] is true: it is false while a server waits for
//!    the application's answer to a request and, with permessage-deflate, while inflated data
//!    waits to be taken (the connection holds the rest of the read and inflates it as events
//!    are taken, so that a few compressed bytes cannot make one read cost megabytes).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use wsproto::{Accept, CloseCause, CloseCode, Connection, Config, Event, LocalCause, Message};
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
//! server.advance_outgoing(now, head.len());
//!
//! // A masked text frame "Hello" from the client (RFC 6455 §5.7).
//! server.receive(now, &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//! assert_eq!(server.poll_event(), Some(Event::Message(Message::Text("Hello".into()))));
//! server.send_text("Hello yourself").unwrap();
//! assert!(server.wants_write());
//! let written = server.outgoing_front().len();
//! server.advance_outgoing(now, written);
//!
//! // Shutting down: a close of our own, which the `Closed` event tells apart from the peer's.
//! server.close_with_cause(CloseCode::GOING_AWAY, "shutting down", LocalCause::Shutdown).unwrap();
//! // The client answers with its close frame (masked, code 1001).
//! server.receive(now, &[0x88, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x34, 0x13]);
//! let Some(Event::Closed(closed)) = server.poll_event() else { panic!() };
//! assert_eq!(closed.cause, CloseCause::Local(LocalCause::Shutdown));
//! assert!(closed.clean && server.should_close_transport());
//! ```
//!
//! # Errors
//!
//! What the *peer* does wrong never panics and never surfaces as an `Err`: it becomes the
//! RFC's answer (an HTTP status during the handshake, a close frame with the right code after
//! it) and an [`Event::Closed`] whose [`CloseCause`] says why. What the *application* calls
//! wrongly (sending after close, a 200-byte ping, accepting twice, a bad header name) is a
//! [`UsageError`]; a data send refused for backpressure is [`SendError::QueueFull`] (data
//! sends answer [`SendError`], which is either). Nothing is queued on an error, and
//! [`Connection::send`] hands the message back ([`MessageNotSent`]).
//!
//! # Names
//!
//! Handshake heads are named for their direction: what arrives is [`Request`] (on a server)
//! and [`Response`] (on a client); what we build to send is [`OutgoingRequest`] (a client's
//! upgrade request) and [`OutgoingResponse`] (a server's plain HTTP answer or rejection), with
//! [`Accept`] for the server's 101.
//!
//! # Messages and memory
//!
//! A [`Message`]'s payload is a reference-counted buffer ([`Utf8Bytes`] for text, validated
//! once; [`bytes::Bytes`] for binary): cloning or broadcasting it copies nothing, and through
//! `receive_buf` it shares the read buffer it arrived in. A message kept for long keeps that
//! buffer's allocation alive; copy it (`Bytes::copy_from_slice`) to keep only its bytes.
//! Once open, a connection holds neither its handshake (unless [`Config::keep_handshake`]) nor,
//! after [`Connection::release_buffers`], any buffer: an idle connection is a few hundred bytes.
//!
//! # Limits
//!
//! Every buffer is bounded by [`Config`]: handshake heads, frames, messages, fragments and the
//! outgoing queue. Nothing is allocated on the strength of a length the peer merely announces.
//! Compressed messages are bounded after inflation, as they inflate; see the `deflate`
//! feature's `DeflateConfig` for what a compressed connection costs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
// `unsafe` is denied everywhere but in `text`, which views validated UTF-8 as `str` (its
// `// SAFETY:` argument is at the top of the module; Miri runs its tests in CI).
#![deny(unsafe_code)]

mod close;
mod config;
mod connection;
mod deflate;
mod error;
mod event;
pub mod frame;
mod handshake;
mod outgoing;
mod random;
mod role;
mod text;
mod timer;
pub mod utf8;

pub use close::{CloseCode, MAX_CLOSE_REASON};
pub use config::{Config, KeepAlive, OriginPolicy, ReceiveMode, SubprotocolPolicy};
pub use connection::{Connection, ConnectionState, UpgradeError, MAX_BUFFERED_FRAME, MAX_INFLATED_CHUNK};
pub use error::{HandshakeError, ProtocolError, SendError, UsageError};
pub use event::{CloseCause, Closed, Event, LocalCause, Message, MessageKind, MessageNotSent};
pub use frame::{HeaderError, PreparedFrame};
pub use handshake::{
    accept_key, Accept, ExtensionOffer, Header, OutgoingRequest, OutgoingResponse, Request, Response, WsUrl,
};
pub use random::{OsRandom, RandomSource};
pub use role::Role;
pub use text::Utf8Bytes;

/// The `bytes` crate this one's messages are made of ([`Message::Binary`] holds a
/// [`Bytes`](bytes::Bytes)), re-exported so that callers use the same version.
pub use bytes;

#[cfg(feature = "deflate")]
#[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
pub use deflate::{DeflateConfig, DeflateParams, DeflatePool};
