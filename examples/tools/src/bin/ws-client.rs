//! A small command-line WebSocket client: connects, sends each `--send` message, prints what
//! comes back, and closes. Handy for poking at a server, and the other half of the interop
//! test against Python's `websockets` (`scripts/interop-python.py`).
//!
//! `ws-client ws://127.0.0.1:9001/ --send hello --send world --deflate [--tokio]`;
//! `ws-client wss://example.org/ --send hello` over TLS (`--ca ca.pem` to trust a private CA);
//! `--proxy http://user:pw@proxy:3128` or `--proxy socks5://proxy:1080` through a proxy,
//! `--proxy-from-env` through the one `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` name.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use wsproto::{CloseCode, Config, DeflateConfig, Message};
use wsproto_adapters::blocking::{ConnectOptions, Connector, Incoming, Proxy};

#[derive(Debug, Parser)]
#[command(about = "Send messages to a WebSocket server and print the replies")]
struct Args {
    /// The server, e.g. ws://127.0.0.1:9001/
    url: String,
    /// A text message to send; after each, one reply is awaited and printed.
    #[arg(long)]
    send: Vec<String>,
    /// Offer permessage-deflate (RFC 7692).
    #[arg(long)]
    deflate: bool,
    /// Subprotocols to offer, comma-separated.
    #[arg(long, value_delimiter = ',')]
    protocols: Vec<String>,
    /// Print the server's handshake response headers.
    #[arg(long)]
    headers: bool,
    /// Use the tokio adapter (a current-thread runtime) instead of the blocking one
    /// (ws:// and wss://, with --ca; no proxy for now).
    #[arg(long, conflicts_with_all = ["proxy", "proxy_from_env"])]
    tokio: bool,
    /// wss://: trust the CA certificates in this PEM file instead of the Mozilla roots.
    #[arg(long, value_name = "PATH")]
    ca: Option<PathBuf>,
    /// Connect through this proxy: http://[user:password@]host:port (CONNECT) or
    /// socks5://[user:password@]host:port.
    #[arg(long, value_name = "URL", conflicts_with = "proxy_from_env")]
    proxy: Option<String>,
    /// Connect through the environment's proxy: HTTPS_PROXY for wss://, HTTP_PROXY for ws://,
    /// except for the hosts in NO_PROXY.
    #[arg(long)]
    proxy_from_env: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config =
        Config { deflate: args.deflate.then(DeflateConfig::default), max_message_size: 64 << 20, ..Config::default() };
    if args.tokio {
        return run_tokio(args, config);
    }
    let options =
        ConnectOptions { config: Arc::new(config), subprotocols: args.protocols, ..ConnectOptions::default() };
    let mut connector = Connector::new();
    if let Some(url) = &args.proxy {
        match Proxy::parse(url) {
            Ok(proxy) => connector = connector.proxy(proxy),
            Err(e) => {
                eprintln!("ws-client: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if args.proxy_from_env {
        connector = connector.proxy_from_env();
    }
    if let Some(ca) = &args.ca {
        match wsproto_adapters::tls::client_config_trusting(ca) {
            Ok(config) => connector = connector.tls_config(config),
            Err(e) => {
                eprintln!("ws-client: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (mut ws, response) = match connector.connect(&args.url, options) {
        Ok(connected) => connected,
        Err(e) => {
            eprintln!("ws-client: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.headers {
        for header in response.headers() {
            println!("< {}: {}", header.name, String::from_utf8_lossy(&header.value));
        }
    }
    for text in &args.send {
        if let Err(e) = ws.send_text(text) {
            eprintln!("ws-client: send failed: {e}");
            return ExitCode::FAILURE;
        }
        loop {
            match ws.read() {
                Ok(Incoming::Message(Message::Text(reply))) => {
                    println!("{reply}");
                    break;
                }
                Ok(Incoming::Message(Message::Binary(reply))) => {
                    println!("<{} bytes of binary>", reply.len());
                    break;
                }
                Ok(Incoming::Closed(closed)) => {
                    eprintln!("ws-client: closed by the server: {} {}", closed.code, closed.reason);
                    return ExitCode::FAILURE;
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("ws-client: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    if let Err(e) = ws.close(CloseCode::NORMAL, "") {
        eprintln!("ws-client: close failed: {e}");
        return ExitCode::FAILURE;
    }
    loop {
        match ws.read() {
            Ok(Incoming::Closed(_)) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(e) => {
                eprintln!("ws-client: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// `--tokio`: the same exchange on the tokio adapter.
fn run_tokio(args: Args, config: Config) -> ExitCode {
    use wsproto_adapters::tokio::{connect, ConnectOptions};
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ws-client: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tls = match args.ca.as_ref().map(wsproto_adapters::tls::client_config_trusting).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("ws-client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options =
        ConnectOptions { config: Arc::new(config), subprotocols: args.protocols, tls, ..ConnectOptions::default() };
    let result: Result<(), String> = runtime.block_on(async {
        let (mut ws, response) = connect(&args.url, options).await.map_err(|e| e.to_string())?;
        if args.headers {
            for header in response.headers() {
                println!("< {}: {}", header.name, String::from_utf8_lossy(&header.value));
            }
        }
        for text in &args.send {
            ws.send(Message::text(text.clone())).await.map_err(|e| format!("send failed: {e}"))?;
            match ws.recv().await {
                Some(Ok(Message::Text(reply))) => println!("{reply}"),
                Some(Ok(Message::Binary(reply))) => println!("<{} bytes of binary>", reply.len()),
                Some(Err(e)) => return Err(e.to_string()),
                None => {
                    let closed = ws.closed().cloned();
                    return Err(format!("closed by the server: {closed:?}"));
                }
            }
        }
        ws.close(CloseCode::NORMAL, "").await.map(|_| ()).map_err(|e| format!("close failed: {e}"))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ws-client: {e}");
            ExitCode::FAILURE
        }
    }
}
