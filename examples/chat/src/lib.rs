//! The chat server: one port serves the web client (`GET /`) and the WebSocket (`GET /ws`),
//! speaking a JSON protocol under the subprotocol `chat.v1` (see `protocol.md` beside this
//! crate).
//!
//! It sits on the mio adapter without touching mio: the adapter handles the handshake
//! policies (origin allow-list 403, connection limit 503, subprotocol 400), keep-alive
//! (a silent client is reaped with 1011) and backpressure; this crate is the application:
//! `protocol` (the JSON messages), `room` (members, nicks, the board, message order),
//! `limits` (flood control), `http` (the static files) and `handler` (the adapter's
//! `Handler`).
#![deny(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use wsproto::{Config, DeflateConfig, KeepAlive, OriginPolicy, SubprotocolPolicy};
use wsproto_adapters::mio::{Server, ServerOptions};
use wsproto_adapters::tls::ServerTls;

mod cluster;
mod handler;
mod http;
pub mod limits;
mod protocol;
mod room;

pub use cluster::{ClusterOptions, Command};
pub use handler::Chat;
pub use protocol::{validate_nick, MAX_NICK_CHARS, MAX_TEXT_CHARS, SUBPROTOCOL};

/// How the chat server is set up (the `chat` binary's flags).
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Origins allowed to open a WebSocket; empty means the server's own origin.
    pub origins: Vec<String>,
    /// Connections beyond this get 503.
    pub max_clients: usize,
    /// Idle time before a heartbeat ping.
    pub ping_interval: Duration,
    /// How long a client may stay silent after a ping before it is reaped.
    pub ping_timeout: Duration,
    /// The largest message a client may send (1009 beyond).
    pub max_message: usize,
    /// Sustained chat messages per second per client before it is closed with 1008.
    pub max_rate: f64,
    /// Sustained drawing segments per second per client (a moving pointer sends many).
    pub max_draw_rate: f64,
    /// Strokes the board keeps for late joiners; the oldest are dropped beyond.
    pub board_limit: usize,
    /// Serve the page and the WebSocket over TLS (`https://`, `wss://`) with this certificate.
    pub tls: Option<ServerTls>,
    /// Join a cluster on this Redis (`--redis`); `None`: a single node, no Redis.
    pub cluster: Option<ClusterOptions>,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            addr: ([127, 0, 0, 1], 3000).into(),
            origins: Vec::new(),
            max_clients: 1000,
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(10),
            max_message: 64 << 10,
            max_rate: 20.0,
            max_draw_rate: 200.0,
            board_limit: 10_000,
            tls: None,
            cluster: None,
        }
    }
}

/// Binds the chat server (and in cluster mode starts its Redis threads); run it with
/// `server.run(handler)`.
pub fn bind(options: &ChatOptions) -> io::Result<(Server<Command>, Chat)> {
    let listener = std::net::TcpListener::bind(options.addr)?;
    let addr = listener.local_addr()?;
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    let origins = if options.origins.is_empty() { own_origins(scheme, addr) } else { options.origins.clone() };
    let config = Config {
        max_message_size: options.max_message,
        max_frame_size: options.max_message,
        keep_alive: Some(KeepAlive { interval: options.ping_interval, timeout: options.ping_timeout }),
        origins: OriginPolicy::AllowList { origins, allow_missing: true },
        subprotocols: SubprotocolPolicy { supported: vec![SUBPROTOCOL.into()], required: true },
        max_queued_bytes: 4 << 20,
        // Browsers offer permessage-deflate. Resetting our context after each message lets a
        // broadcast be compressed once for every member instead of once per member.
        deflate: Some(DeflateConfig { server_no_context_takeover: true, ..DeflateConfig::default() }),
        ..Config::default()
    };
    let server_options =
        ServerOptions { config: Arc::new(config), max_connections: options.max_clients, ..ServerOptions::default() };
    let mut server = Server::from_std(listener, server_options)?;
    if let Some(tls) = &options.tls {
        server = server.with_tls(tls.clone());
    }
    let chat = match &options.cluster {
        None => Chat::single(options),
        Some(cluster) => {
            let link = cluster::Link::start(cluster, options.board_limit, server.handle())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("--redis: {e}")))?;
            Chat::cluster(options, cluster::ClusterRoom::new(link, cluster, options.board_limit))
        }
    };
    Ok((server, chat))
}

/// The origins a browser shows for pages served by this server itself (`scheme` is `http`,
/// or `https` over TLS).
fn own_origins(scheme: &str, addr: SocketAddr) -> Vec<String> {
    let port = addr.port();
    let mut origins = vec![format!("{scheme}://{addr}")];
    if addr.ip().is_loopback() {
        origins.push(format!("{scheme}://localhost:{port}"));
        origins.push(format!("{scheme}://127.0.0.1:{port}"));
    }
    origins
}
