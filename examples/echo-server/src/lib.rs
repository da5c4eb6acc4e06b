//! The echo server, the Autobahn conformance target: every text and binary message is sent
//! back as it came. The binary (`echo-server`) serves it on the mio adapter, a thread per
//! connection on the blocking adapter, or a task per connection on the tokio adapter; the load benches (`benches/`) measure this same config
//! and handler, so that the server measured is the one people run.
#![deny(missing_docs)]

use std::net::TcpStream;
use std::sync::Arc;

use wsproto::{Config, DeflateConfig, Message};
use wsproto_adapters::blocking::{accept, Incoming};
use wsproto_adapters::mio::{ConnId, Context, Handler};
use wsproto_adapters::tls::ServerTls;

/// Limits large enough for Autobahn's biggest cases (16 MiB messages, 4 MiB in 64-byte
/// fragments); the defaults suit a public server better. permessage-deflate (RFC 7692) is
/// accepted with the defaults: context takeover both ways, 15-bit windows, level 6, messages
/// under 32 bytes sent as they are.
pub fn echo_config() -> Config {
    Config {
        max_frame_size: 64 << 20,
        max_message_size: 64 << 20,
        max_fragments: 1 << 20,
        max_queued_bytes: 256 << 20,
        deflate: Some(DeflateConfig::default()),
        ..Config::default()
    }
}

/// The mio adapter's handler: every message goes back as it came.
pub struct Echo;

impl Handler for Echo {
    type State = ();
    type Command = ();

    fn on_open(&mut self, _: &mut Context, _: ConnId) {}

    fn on_message(&mut self, ctx: &mut Context, id: ConnId, message: Message) {
        let _ = ctx.send(id, message);
    }
}

/// Serves one connection on the blocking adapter until it ends: the handshake, then every
/// message back as it came.
pub fn blocking_echo(stream: TcpStream, config: Arc<Config>) {
    let mut ws = match accept(stream, config) {
        Ok(ws) => ws,
        Err(e) => return tracing::debug!("handshake failed: {e}"),
    };
    loop {
        match ws.read() {
            Ok(Incoming::Message(message)) => {
                if ws.send(message).is_err() {
                    return;
                }
            }
            Ok(Incoming::Closed(closed)) => return tracing::debug!("closed: {closed:?}"),
            Ok(_) => {}
            Err(e) => return tracing::debug!("connection ended: {e}"),
        }
    }
}

/// Serves one connection on the tokio adapter until it ends: the handshake, then every message
/// back as it came. Echoes are fed, not flushed one by one: the next `recv` writes them once no
/// more input is ready, so pipelined messages are answered in one write. A refused echo (the
/// peer's close arrived) does not end the loop: reading on completes the close handshake and
/// ends the transport.
pub async fn tokio_echo(stream: tokio::net::TcpStream, config: Arc<Config>) {
    tokio_echo_after(wsproto_adapters::tokio::accept(stream, config)).await;
}

/// [`tokio_echo`] over TLS (`wss://`): the TLS handshake first, bounded by the config's
/// handshake timeout.
pub async fn tokio_echo_tls(stream: tokio::net::TcpStream, tls: ServerTls, config: Arc<Config>) {
    tokio_echo_after(async move { wsproto_adapters::tokio::accept_tls(stream, &tls, config).await }).await;
}

/// The echo loop after `accepting`. One `async fn` that owns the connection across every await
/// (rather than one that awaits another holding it): the task of an idle connection is then
/// about the size of the connection (1.5 KB), not two and a half times that (measured with
/// `size_of_val` on the future).
async fn tokio_echo_after<S>(
    accepting: impl std::future::Future<
        Output = Result<wsproto_adapters::tokio::WebSocket<S>, wsproto_adapters::tokio::Error>,
    >,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut ws = match accepting.await {
        Ok(ws) => ws,
        Err(e) => return tracing::debug!("handshake failed: {e}"),
    };
    while let Some(message) = ws.recv().await {
        match message {
            Ok(message) => match ws.feed(message).await {
                Ok(()) | Err(wsproto_adapters::tokio::Error::Closed) => {}
                Err(e) => return tracing::debug!("connection ended: {e}"),
            },
            Err(e) => return tracing::debug!("connection ended: {e}"),
        }
    }
    tracing::debug!("closed: {:?}", ws.closed());
}
