//! Client connections: a `ws://` or `wss://` URL to an open [`WebSocket`], directly or
//! through a proxy.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Duration;

use wsproto::{OutgoingRequest, Response, WsUrl};

use super::proxy::{Proxy, ProxyEnv};
#[cfg(feature = "tls")]
use super::tls::{tls_connect, TlsStream};
use super::{ConnectOptions, Error, Transport, WebSocket};

/// The stream of a client connection made by [`connect`] or [`Connector::connect`]: plain
/// TCP for `ws://`, TLS over TCP for `wss://` (feature `tls`).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream<rustls::ClientConnection>>),
}

impl ClientStream {
    /// The TCP socket under the stream.
    pub fn socket(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(stream) => stream,
            #[cfg(feature = "tls")]
            ClientStream::Tls(stream) => stream.socket(),
        }
    }

    /// The TLS session of a `wss://` connection (its ALPN protocol, version, certificates).
    #[cfg(feature = "tls")]
    pub fn tls_session(&self) -> Option<&rustls::ClientConnection> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(stream) => Some(stream.session()),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(stream) => stream.read(buf),
            #[cfg(feature = "tls")]
            ClientStream::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(stream) => stream.write(buf),
            #[cfg(feature = "tls")]
            ClientStream::Tls(stream) => stream.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(stream) => stream.write_vectored(bufs),
            #[cfg(feature = "tls")]
            ClientStream::Tls(stream) => stream.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(stream) => stream.flush(),
            #[cfg(feature = "tls")]
            ClientStream::Tls(stream) => stream.flush(),
        }
    }
}

impl Transport for ClientStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            ClientStream::Plain(stream) => TcpStream::set_read_timeout(stream, timeout),
            #[cfg(feature = "tls")]
            ClientStream::Tls(stream) => stream.set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            ClientStream::Plain(stream) => TcpStream::set_write_timeout(stream, timeout),
            #[cfg(feature = "tls")]
            ClientStream::Tls(stream) => stream.set_write_timeout(timeout),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        match self {
            ClientStream::Plain(stream) => TcpStream::shutdown(stream, how),
            #[cfg(feature = "tls")]
            ClientStream::Tls(stream) => stream.shutdown(how),
        }
    }

    /// A plain connection can be [`split`](WebSocket::split); a TLS session cannot be shared.
    fn try_clone(&self) -> io::Result<Self> {
        match self {
            ClientStream::Plain(stream) => stream.try_clone().map(ClientStream::Plain),
            #[cfg(feature = "tls")]
            ClientStream::Tls(_) => Err(io::Error::new(io::ErrorKind::Unsupported, "a TLS connection cannot be split")),
        }
    }
}

/// How [`Connector::connect`] reaches servers: directly or through a proxy, and the TLS
/// set-up for `wss://` (feature `tls`). `Connector::default()` (direct, the Mozilla roots) is
/// what [`connect`] uses.
#[derive(Debug, Clone, Default)]
pub struct Connector {
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    proxy: ProxyChoice,
}

#[derive(Debug, Clone, Default)]
enum ProxyChoice {
    #[default]
    Direct,
    Always(Proxy),
    Env(ProxyEnv),
}

impl Connector {
    /// Direct connections; `wss://` checks certificates against the Mozilla roots
    /// (webpki-roots).
    pub fn new() -> Self {
        Connector::default()
    }

    /// `wss://` with the caller's rustls configuration (its roots, client certificates,
    /// versions). ALPN `http/1.1` is added if the configuration asks for no protocol.
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Every connection through this proxy (HTTP CONNECT or SOCKS5), `ws://` and `wss://`
    /// alike; TLS runs through the tunnel to the server.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = ProxyChoice::Always(proxy);
        self
    }

    /// The environment's proxy settings, read now ([`ProxyEnv::from_env`]): `HTTPS_PROXY` for
    /// `wss://`, `HTTP_PROXY` for `ws://`, `NO_PROXY` for the hosts reached directly.
    pub fn proxy_from_env(self) -> Self {
        self.proxy_env(ProxyEnv::from_env())
    }

    /// Proxy settings given as an environment would give them.
    pub fn proxy_env(mut self, env: ProxyEnv) -> Self {
        self.proxy = ProxyChoice::Env(env);
        self
    }

    /// Opens a connection to a `ws://` or `wss://` URL and completes the opening handshake;
    /// see [`connect`].
    pub fn connect(&self, url: &str, options: ConnectOptions) -> Result<(WebSocket<ClientStream>, Response), Error> {
        let url = WsUrl::parse(url).map_err(Error::InvalidUrl)?;
        #[cfg(not(feature = "tls"))]
        if url.secure {
            return Err(Error::TlsUnsupported);
        }
        let timeout = options.config.handshake_timeout;
        let proxy = match &self.proxy {
            ProxyChoice::Direct => None,
            ProxyChoice::Always(proxy) => Some(proxy.clone()),
            ProxyChoice::Env(env) => env.proxy_for(&url.host, url.port, url.secure)?,
        };
        let socket = match proxy {
            Some(proxy) => proxy.tunnel(&url.host, url.port, timeout)?,
            None => connect_tcp(&url.host, url.port, timeout)?,
        };
        socket.set_nodelay(true)?;
        let stream = match url.secure {
            #[cfg(feature = "tls")]
            true => ClientStream::Tls(Box::new(tls_connect(socket, &url.host, self.tls.as_ref(), timeout)?)),
            _ => ClientStream::Plain(socket),
        };
        let request = OutgoingRequest {
            host: url.host_header(),
            target: url.target,
            origin: options.origin,
            subprotocols: options.subprotocols,
            extensions: Vec::new(),
            headers: options.headers,
        };
        WebSocket::client(stream, options.config, request)
    }
}

/// Client: opens a connection to a `ws://` or `wss://` URL and completes the opening
/// handshake. Answers the connection and the server's 101 response (its subprotocol,
/// headers).
///
/// `wss://` (feature `tls`; without it [`Error::TlsUnsupported`]) sends the host as SNI, asks
/// for ALPN `http/1.1` and checks the certificate against the Mozilla roots; a refused
/// certificate is `Error::Tls` naming the host. For other roots use
/// `Connector::tls_config`. The config's handshake timeout bounds the TCP connect (per
/// address), each read and write of the TLS handshake, and the opening handshake. A non-101
/// answer is [`Error::Rejected`] with its status. Sets `TCP_NODELAY` (see
/// [`accept`](super::accept)).
pub fn connect(url: &str, options: ConnectOptions) -> Result<(WebSocket<ClientStream>, Response), Error> {
    Connector::default().connect(url, options)
}

/// Connects to the first address of `host` that answers, each attempt bounded by `timeout`.
pub(crate) fn connect_tcp(host: &str, port: u16, timeout: Option<Duration>) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        let attempt = match timeout {
            Some(timeout) => TcpStream::connect_timeout(&addr, timeout),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(error) => {
                tracing::debug!("connect to {addr} failed: {error}");
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host} resolves to no address"))))
}
