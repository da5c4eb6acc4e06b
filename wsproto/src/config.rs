//! Limits, timers and policies for a connection.

use std::time::Duration;

/// How a connection is configured. Share one between many connections with an `Arc`.
///
/// Every limit defends against a peer who announces or sends more than we want to hold: the
/// defaults suit a public server; raise them where you trust the peer (the Autobahn echo server
/// raises them to pass 16 MiB messages).
#[derive(Debug, Clone)]
pub struct Config {
    /// The largest frame payload accepted; larger frames close with 1009, decided from the
    /// header before any of the payload is buffered. Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message accepted (all fragments together); larger ones close with 1009,
    /// decided from each frame header before its payload is buffered. Default 64 MiB.
    pub max_message_size: usize,
    /// The most fragments one message may arrive in; more close with 1009. Default 100 000.
    pub max_fragments: usize,
    /// The longest opening handshake head accepted (request or response); longer is answered
    /// with 431. Default 8 KiB.
    pub max_handshake_size: usize,
    /// The most header fields in a handshake head; more is answered with 431. Default 64.
    pub max_headers: usize,
    /// The outgoing queue's soft limit: a data send that would take the queue past it (while the
    /// queue is not empty) fails with [`SendError::QueueFull`](crate::SendError::QueueFull), the
    /// backpressure signal. Control frames are always queued. Default 16 MiB.
    pub max_queued_bytes: usize,
    /// Whole messages or frame payloads as they arrive. Default [`ReceiveMode::Messages`].
    pub receive_mode: ReceiveMode,
    /// Answer each ping with a pong automatically (RFC 6455 §5.5.2). Default on; when off, the
    /// application answers [`Event::Ping`](crate::Event::Ping) itself.
    pub auto_pong: bool,
    /// Ping an idle peer and give up on one that stops answering. Default off.
    pub keep_alive: Option<KeepAlive>,
    /// How long the opening handshake may take from the connection's creation; a server that
    /// runs out of it answers 408. `None`: no limit. Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// How long to wait for the peer's close frame after sending ours, and (client) for the
    /// server to close TCP after the close handshake (RFC 6455 §7.1.1). Default 5 s.
    pub close_timeout: Duration,
    /// How long the last queued bytes may take to be written once the connection has ended
    /// (our answer to the peer's close frame, the close frame of a protocol error, a handshake
    /// rejection): after it the queue is dropped, so that a peer that stops reading cannot
    /// keep the transport open. See [`CloseCause::DrainTimeout`](crate::CloseCause::DrainTimeout).
    /// Default 5 s.
    pub drain_timeout: Duration,
    /// Server: which `Origin`s may open a connection; others get 403. Default
    /// [`OriginPolicy::Any`].
    pub origins: OriginPolicy,
    /// Server: which subprotocols we speak, in order of preference. Default none, not
    /// required.
    pub subprotocols: SubprotocolPolicy,
    /// Keep the opening handshake's request (server) or response (client) once the connection
    /// is open, for [`Connection::request`](crate::Connection::request) and
    /// [`response`](crate::Connection::response). Off by default: an open connection then holds
    /// neither (a browser's request is half a kilobyte of headers or more); the application
    /// sees both in [`Event::Request`](crate::Event::Request) and
    /// [`Event::Connected`](crate::Event::Connected) and can keep what it needs.
    pub keep_handshake: bool,
    /// permessage-deflate (RFC 7692): a client offers it, a server accepts an offer it can
    /// honour. Off by default; see [`DeflateConfig`](crate::DeflateConfig) for what it costs.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub deflate: Option<crate::DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_fragments: 100_000,
            max_handshake_size: 8 << 10,
            max_headers: 64,
            max_queued_bytes: 16 << 20,
            receive_mode: ReceiveMode::Messages,
            auto_pong: true,
            keep_alive: None,
            handshake_timeout: Some(Duration::from_secs(10)),
            close_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            origins: OriginPolicy::Any,
            subprotocols: SubprotocolPolicy::default(),
            keep_handshake: false,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }
}

/// How received data reaches the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiveMode {
    /// Reassemble each message and deliver it whole as [`Event::Message`](crate::Event::Message).
    #[default]
    Messages,
    /// Deliver payload bytes as they arrive as [`Event::Chunk`](crate::Event::Chunk), for
    /// messages larger than memory. Only `max_frame_size` and `max_fragments` apply; the
    /// application bounds the message itself. A compressed message (permessage-deflate) comes
    /// in chunks of at most [`MAX_INFLATED_CHUNK`](crate::MAX_INFLATED_CHUNK) inflated bytes,
    /// each inflated only once the events before it were taken.
    Streaming,
}

/// Keep-alive: after `interval` without receiving anything, send a ping; if nothing at all
/// arrives within `timeout` after it, close with 1011 (the peer is gone or stuck).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Idle time before a ping.
    pub interval: Duration,
    /// How long to wait for anything (a pong or any other frame) after the ping.
    pub timeout: Duration,
}

/// Which `Origin` header values a server accepts (RFC 6455 §4.2.2, §10.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Any origin, and none.
    #[default]
    Any,
    /// Only these origins (compared ASCII case-insensitively, e.g. `http://127.0.0.1:3000`).
    AllowList {
        /// The accepted origins.
        origins: Vec<String>,
        /// Whether a request without an `Origin` header (not from a browser) is accepted.
        allow_missing: bool,
    },
}

impl OriginPolicy {
    /// Whether a request with this `Origin` header (or none) may connect.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (OriginPolicy::Any, _) => true,
            (OriginPolicy::AllowList { allow_missing, .. }, None) => *allow_missing,
            (OriginPolicy::AllowList { origins, .. }, Some(origin)) => {
                origins.iter().any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin.trim()))
            }
        }
    }
}

/// The subprotocols a server speaks (RFC 6455 §1.9, §4.2.2 `Sec-WebSocket-Protocol`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubprotocolPolicy {
    /// Supported subprotocols, most preferred first. When accepting without naming one, the
    /// first of these that the client offered is chosen.
    pub supported: Vec<String>,
    /// Refuse (400, listing `supported`) a client that offers none of them.
    pub required: bool,
}

impl SubprotocolPolicy {
    /// The subprotocol to choose from the client's offer, by our order of preference.
    pub fn select<'a>(&self, offered: &[&'a str]) -> Option<&'a str> {
        self.supported.iter().find_map(|ours| offered.iter().copied().find(|theirs| *theirs == ours.as_str()))
    }
}
