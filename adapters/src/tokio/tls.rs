//! wss:// on tokio (feature `tokio-tls`): tokio-rustls under the same WebSocket code, with the
//! crate's crypto provider and certificate set-ups ([`crate::tls`]).

use std::io;
use std::sync::Arc;

use ::tokio::net::TcpStream;
use ::tokio::time::{timeout_at, Instant};
use rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use wsproto::Config;

use super::{accept_with, Error, WebSocket};
use crate::tls::{client_config, ServerTls};

/// A TLS stream a server accepted.
pub type ServerTlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Server: the TLS handshake on an accepted TCP connection (ALPN `http/1.1` when the
/// [`ServerTls`] offers it, as its constructors do), then the opening handshake as
/// [`accept`](super::accept) does it. The config's handshake timeout bounds the TLS handshake
/// (a ClientHello a byte a second is dropped at the deadline), then the opening handshake
/// gets its own. Sets `TCP_NODELAY`. Use [`tls_accept`] and [`accept_with`] to decide on the
/// request.
pub async fn accept_tls(
    stream: TcpStream,
    tls: &ServerTls,
    config: Arc<Config>,
) -> Result<WebSocket<ServerTlsStream>, Error> {
    let stream = tls_accept(stream, tls, &config).await?;
    accept_with(stream, config, |_| Ok(wsproto::Accept::new())).await
}

/// Server: the TLS handshake alone, bounded by the config's handshake timeout. Sets
/// `TCP_NODELAY`. A peer that speaks no TLS (garbage, a plain HTTP request) gets a TLS alert
/// and this answers [`Error::Tls`].
pub async fn tls_accept(stream: TcpStream, tls: &ServerTls, config: &Config) -> Result<ServerTlsStream, Error> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().map_or_else(|_| "the peer".to_owned(), |addr| addr.to_string());
    let accepting = TlsAcceptor::from(tls.config().clone()).accept(stream);
    let accepted = match config.handshake_timeout {
        Some(limit) => timeout_at(Instant::now() + limit, accepting).await.map_err(|_| timed_out("TLS handshake"))?,
        None => accepting.await,
    };
    accepted.map_err(|error| tls_error(error, &peer))
}

/// Client: the TLS handshake with `host` over a connected socket, by `deadline`: SNI for a
/// host name, the certificate checked against `host`, the caller's configuration or the
/// default roots.
pub(super) async fn tls_connect(
    socket: TcpStream,
    host: &str,
    config: Option<&Arc<rustls::ClientConfig>>,
    deadline: Option<Instant>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let name = ServerName::try_from(host.to_owned()).map_err(|_| Error::InvalidUrl("host is not a valid TLS name"))?;
    let connecting = TlsConnector::from(client_config(config)).connect(name, socket);
    let connected = match deadline {
        Some(deadline) => timeout_at(deadline, connecting).await.map_err(|_| timed_out("TLS handshake"))?,
        None => connecting.await,
    };
    connected.map_err(|error| tls_error(error, host))
}

pub(super) fn timed_out(what: &str) -> Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out")).into()
}

/// tokio-rustls reports rustls's errors inside `io::Error`: take them out, naming the peer.
fn tls_error(error: io::Error, host: &str) -> Error {
    match error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(inner) => Error::Tls { host: host.to_owned(), error: inner.clone() },
        None => Error::Io(error),
    }
}
