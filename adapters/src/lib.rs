//! Thin drivers for the [`wsproto`] core: they move bytes between sockets and a
//! [`wsproto::Connection`], turn its deadlines into socket timeouts or poll timeouts, and hand
//! its events to the application.
//!
//! - [`blocking`]: one connection over any `Read + Write` stream (helpers for `TcpStream`),
//!   for clients, tests and thread-per-connection servers; splits into a reader and a writer
//!   for two threads.
//! - [`server`]: what a server does with many connections, apart from any runtime: the
//!   [`Handler`](server::Handler) with its per-connection state and commands, the
//!   [`Context`](server::Context), the registry, broadcast that encodes a frame once for all
//!   recipients, and the limits and policies.
//! - [`mio`]: a mio event loop that runs a [`server::Handler`] for many connections on one
//!   thread; with the `tls` feature it serves `wss://` (`mio::Server::with_tls`).
//! - `tls` (feature `tls`): rustls set-ups with an explicitly chosen crypto provider.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod blocking;
pub mod mio;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
