//! Thin drivers for the [`wsproto`] core: they move bytes between sockets and a
//! [`wsproto::Connection`], turn its deadlines into socket timeouts or poll timeouts, and hand
//! its events to the application.
//!
//! - [`blocking`]: one connection over any `Read + Write` stream (helpers for `TcpStream`),
//!   for clients, tests and thread-per-connection servers.
//! - [`server`]: a mio event loop that serves many connections on one thread, with
//!   broadcast that encodes a frame once for all recipients.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod blocking;
pub mod server;
