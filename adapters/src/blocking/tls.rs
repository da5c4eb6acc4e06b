//! TLS under the blocking driver (feature `tls`): a rustls session over a `TcpStream`, with
//! the socket's timeouts and shutdown reaching through it, for `wss://` clients ([`connect`](
//! super::connect)) and servers ([`accept_tls`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, ServerConnection, SideData};
use wsproto::{Accept, Config};

use super::{Error, Transport, WebSocket};
use crate::tls::{client_config, ServerTls};

/// A rustls session over a blocking `TcpStream`: `ClientConnection` for `wss://` clients,
/// `ServerConnection` for servers.
///
/// As a [`Transport`], its timeouts are the socket's, and shutting down the writing half
/// first sends close_notify (RFC 8446 §6.1) so that the peer can tell our end from a
/// truncation; a peer whose stream ends without close_notify makes a read fail with
/// `UnexpectedEof`. It cannot be cloned, so a TLS connection cannot be
/// [`split`](WebSocket::split).
pub struct TlsStream<C> {
    inner: rustls::StreamOwned<C, TcpStream>,
}

impl<C> std::fmt::Debug for TlsStream<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").field("socket", &self.inner.sock).finish_non_exhaustive()
    }
}

impl<C, S> TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// Runs the TLS handshake over `socket`, each read and write bounded by `timeout`.
    /// Errors name `host` (the server's name for a client, the peer's address for a server).
    fn handshake(mut socket: TcpStream, mut session: C, host: &str, timeout: Option<Duration>) -> Result<Self, Error> {
        socket.set_read_timeout(timeout)?;
        socket.set_write_timeout(timeout)?;
        while session.is_handshaking() {
            if let Err(error) = session.complete_io(&mut socket) {
                return Err(tls_error(host, error));
            }
        }
        while session.wants_write() {
            session.write_tls(&mut socket).map_err(|e| tls_error(host, e))?;
        }
        Ok(TlsStream { inner: rustls::StreamOwned::new(session, socket) })
    }

    /// The TLS session (negotiated ALPN protocol, protocol version, peer certificates).
    pub fn session(&self) -> &C {
        &self.inner.conn
    }

    /// The socket under the session.
    pub fn socket(&self) -> &TcpStream {
        &self.inner.sock
    }
}

/// An error of the TLS handshake with `host`: rustls's own (a refused certificate above
/// all) as [`Error::Tls`], a timeout or a vanished peer as [`Error::Io`] naming the host.
fn tls_error(host: &str, error: io::Error) -> Error {
    let kind = match error.kind() {
        io::ErrorKind::WouldBlock => io::ErrorKind::TimedOut,
        kind => kind,
    };
    let detail = match error.into_inner() {
        Some(inner) => match inner.downcast::<rustls::Error>() {
            Ok(error) => return Error::Tls { host: host.to_owned(), error: *error },
            Err(other) => other.to_string(),
        },
        None => io::Error::from(kind).to_string(),
    };
    Error::Io(io::Error::new(kind, format!("TLS handshake with {host}: {detail}")))
}

impl<C, S> Read for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<C, S> Write for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // One vectored write into rustls becomes as few records as its bytes fill.
        let n = self.inner.conn.writer().write_vectored(bufs)?;
        while self.inner.conn.wants_write() {
            self.inner.conn.write_tls(&mut self.inner.sock)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<C, S> Transport for TlsStream<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.sock.set_read_timeout(timeout)
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.sock.set_write_timeout(timeout)
    }

    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            // close_notify before the FIN (sent once however often this is called); a peer
            // that does not read bounds it by the write timeout already set.
            self.inner.conn.send_close_notify();
            while self.inner.conn.wants_write() {
                if let Err(error) = self.inner.conn.write_tls(&mut self.inner.sock) {
                    tracing::debug!("close_notify not sent: {error}");
                    break;
                }
            }
        }
        self.inner.sock.shutdown(how)
    }
}

/// Server: runs the TLS handshake on an accepted TCP connection, then the WebSocket opening
/// handshake, accepting every valid upgrade (as [`accept`](super::accept) does). The
/// config's handshake timeout bounds each read and write of the TLS handshake, then the
/// WebSocket handshake as usual.
///
/// For the application's own decision, run [`tls_accept`] and then
/// [`WebSocket::accept_with`].
pub fn accept_tls(
    stream: TcpStream,
    tls: &ServerTls,
    config: Arc<Config>,
) -> Result<WebSocket<TlsStream<ServerConnection>>, Error> {
    let stream = tls_accept(stream, tls, config.handshake_timeout)?;
    WebSocket::accept_with(stream, config, |_| Ok(Accept::new()))
}

/// Server: the TLS handshake alone on an accepted TCP connection, each read and write
/// bounded by `timeout`. Sets `TCP_NODELAY`.
pub fn tls_accept(
    stream: TcpStream,
    tls: &ServerTls,
    timeout: Option<Duration>,
) -> Result<TlsStream<ServerConnection>, Error> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr().map_or_else(|_| "the peer".to_owned(), |addr| addr.to_string());
    let session = tls.session().map_err(|error| Error::Tls { host: peer.clone(), error })?;
    TlsStream::handshake(stream, session, &peer, timeout)
}

/// Client: the TLS handshake with `host` over a connected socket (SNI for a host name, the
/// certificate checked against `host`), with `config` or the default roots.
pub(crate) fn tls_connect(
    socket: TcpStream,
    host: &str,
    config: Option<&Arc<ClientConfig>>,
    timeout: Option<Duration>,
) -> Result<TlsStream<ClientConnection>, Error> {
    let config = client_config(config);
    let name = ServerName::try_from(host.to_owned()).map_err(|_| Error::InvalidUrl("host is not a valid TLS name"))?;
    let session = ClientConnection::new(config, name).map_err(|error| Error::Tls { host: host.to_owned(), error })?;
    TlsStream::handshake(socket, session, host, timeout)
}
