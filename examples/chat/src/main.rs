//! The chat server and its web client: `cargo run --release --bin chat`, then open
//! http://127.0.0.1:3000 (or, with `--tls-cert` and `--tls-key`, https://127.0.0.1:3000).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat::{ChatOptions, ClusterOptions};
use clap::Parser;
use wsproto_adapters::tls::ServerTls;

#[derive(Debug, Parser)]
#[command(
    about = "WebSocket chat server with a browser client and a shared drawing board",
    after_help = "HTTPS: a certificate and key for this machine only (self-signed, so the browser asks once):\n  \
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \\\n    \
        -keyout key.pem -out cert.pem -subj /CN=localhost \\\n    \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1\n  \
        chat --tls-cert cert.pem --tls-key key.pem    # then open https://localhost:3000"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Origins allowed to connect, comma-separated (default: this server's own origin).
    #[arg(long, value_delimiter = ',')]
    origins: Vec<String>,
    /// Connections beyond this many get 503.
    #[arg(long, default_value_t = 1000)]
    max_clients: usize,
    /// Seconds of silence before a heartbeat ping.
    #[arg(long, default_value_t = 20)]
    ping_interval: u64,
    /// Seconds to wait for any answer to a heartbeat before reaping the client.
    #[arg(long, default_value_t = 10)]
    ping_timeout: u64,
    /// The largest message a client may send, in bytes (1009 beyond).
    #[arg(long, default_value_t = 64 * 1024)]
    max_message: usize,
    /// Sustained chat messages per second per client before it is closed (1008).
    #[arg(long, default_value_t = 20.0)]
    max_rate: f64,
    /// Serve the page and the WebSocket over TLS (https://, wss://) with this certificate
    /// chain (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Join a cluster of nodes sharing one room on this Redis (`redis://HOST:PORT[/DB]`);
    /// without it the node is alone and needs no Redis.
    #[arg(long)]
    redis: Option<String>,
    /// Cluster mode: milliseconds a node's heartbeat lives; a node silent this long is lost.
    #[arg(long, default_value_t = 3000)]
    node_ttl_ms: u64,
    /// Cluster mode: about how many events the stream keeps (how far back `resume` reaches).
    #[arg(long, default_value_t = 10_000)]
    stream_len: usize,
    /// Cluster mode: milliseconds to wait, once an event arrives, for more to deliver with it
    /// (fewer writes per connection under load, that much more latency; 0: none).
    #[arg(long, default_value_t = 2)]
    gather_ms: u64,
    /// Log each connect, join, leave and reap (-v), and the adapter's details (-vv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    example_logging::init(args.verbose);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key).unwrap_or_else(|e| {
            eprintln!("chat: {e}");
            std::process::exit(2)
        })),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let args_redis = args.redis.clone();
    let options = ChatOptions {
        addr: args.addr,
        origins: args.origins,
        max_clients: args.max_clients,
        ping_interval: Duration::from_secs(args.ping_interval.max(1)),
        ping_timeout: Duration::from_secs(args.ping_timeout.max(1)),
        max_message: args.max_message,
        max_rate: args.max_rate,
        cluster: args.redis.map(|url| ClusterOptions {
            node_ttl: Duration::from_millis(args.node_ttl_ms.max(150)),
            stream_len: args.stream_len.max(1),
            gather: Duration::from_millis(args.gather_ms),
            ..ClusterOptions::new(&url)
        }),
        tls,
        ..ChatOptions::default()
    };
    let (server, chat) = chat::bind(&options)?;
    eprintln!("chat: open {scheme}://{} in a browser", server.local_addr()?);
    if let Some(url) = &args_redis {
        eprintln!("chat: one node of the cluster on {url}");
    }
    server.run(chat)?;
    Ok(())
}
