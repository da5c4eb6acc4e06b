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
//! - `tokio` (feature `tokio`): one connection over any tokio stream as a `Stream` and a
//!   `Sink` of messages, cancel-safe, splittable into halves for two tasks; with the
//!   `tokio-tls` feature `connect` takes `wss://` and `accept_tls` serves it (tokio-rustls).
//! - `tls` (feature `tls`): rustls set-ups with an explicitly chosen crypto provider.
//!
//! # tokio
//!
//! With the `tokio` feature, `wsproto_adapters::tokio` runs one connection over any
//! `AsyncRead + AsyncWrite + Unpin` stream (a `TcpStream`, a TLS stream, an HTTP server's
//! upgraded stream): `accept` / `accept_with` for a server, `connect` / `client` for a client,
//! then `recv` / `send` / `close` or the `Stream` and `Sink` traits. Pings are answered and the
//! core's timers run while the application awaits `recv`; every method is cancel-safe;
//! `split` gives a reader and a writer for two tasks. A server is a task per connection:
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsproto_adapters::tokio::Error> {
//! use std::sync::Arc;
//! use wsproto::{CloseCode, Config, Message};
//! use wsproto_adapters::tokio::{accept, connect, ConnectOptions};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("ws://{}/", listener.local_addr()?);
//! tokio::spawn(async move {
//!     let config = Arc::new(Config::default());
//!     while let Ok((tcp, _)) = listener.accept().await {
//!         let config = config.clone();
//!         tokio::spawn(async move {
//!             let mut ws = accept(tcp, config).await?;
//!             while let Some(message) = ws.recv().await {
//!                 ws.send(message?).await?;
//!             }
//!             Ok::<_, wsproto_adapters::tokio::Error>(())
//!         });
//!     }
//! });
//!
//! let (mut ws, _) = connect(&url, ConnectOptions::default()).await?;
//! ws.send(Message::Text("hello".into())).await?;
//! assert_eq!(ws.recv().await.transpose()?, Some(Message::Text("hello".into())));
//! ws.close(CloseCode::NORMAL, "").await?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod blocking;
pub mod mio;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;

/// Writes what `conn` has queued, up to `SLICES` chunks of it, in one call: a queue that is one
/// contiguous slice (small frames share the coalescing buffer, so most are) with a plain
/// `write`, which is `send` on a socket and skips the file layer `writev` goes through
/// (benches/RESULTS.md, broadcast); several with `write_vectored`. Answers what the stream
/// answered; the caller advances the queue.
fn write_outgoing<const SLICES: usize>(
    stream: &mut impl std::io::Write,
    conn: &wsproto::Connection,
) -> std::io::Result<usize> {
    let mut slices = [std::io::IoSlice::new(&[]); SLICES];
    match conn.outgoing(&mut slices) {
        1 => stream.write(&slices[0]),
        count => stream.write_vectored(&slices[..count]),
    }
}
