//! The echo server's command line (the config and handler are the library, `lib.rs`).
//!
//! `echo-server --addr 127.0.0.1:9001 --adapter mio` serves every connection on one mio
//! thread; `--adapter blocking` runs a thread per connection over the blocking adapter;
//! `--adapter tokio` a task per connection on a multi-threaded tokio runtime.
//! `--tls-cert cert.pem --tls-key key.pem` serves `wss://` (mio and tokio adapters).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use echo_server::{blocking_echo, echo_config, tokio_echo, tokio_echo_tls, Echo};
use wsproto_adapters::mio::{Server, ServerOptions};
use wsproto_adapters::tls::ServerTls;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Adapter {
    /// One thread, many connections (mio event loop).
    Mio,
    /// A thread per connection (std blocking sockets).
    Blocking,
    /// A task per connection on a multi-threaded tokio runtime.
    Tokio,
}

#[derive(Debug, Parser)]
#[command(about = "WebSocket echo server (the Autobahn conformance target)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    addr: SocketAddr,
    /// Which adapter serves the connections.
    #[arg(long, value_enum, default_value = "mio")]
    adapter: Adapter,
    /// Serve wss:// with this certificate chain (PEM, leaf first; mio and tokio adapters); needs
    /// --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log connections (-v) or everything (-vv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    example_logging::init(args.verbose);
    let config = Arc::new(echo_config());
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::from_pem_files(cert, key).map_err(std::io::Error::other)?),
        _ => None,
    };
    match args.adapter {
        Adapter::Mio => {
            let options = ServerOptions { config, ..ServerOptions::default() };
            let mut server = Server::bind(args.addr, options)?;
            let scheme = if tls.is_some() { "wss" } else { "ws" };
            if let Some(tls) = tls {
                server = server.with_tls(tls);
            }
            eprintln!("echo-server (mio) listening on {scheme}://{}", server.local_addr()?);
            server.run(Echo)?;
        }
        Adapter::Blocking if tls.is_some() => {
            eprintln!("echo-server: --tls-cert is served by --adapter mio or tokio");
            std::process::exit(2);
        }
        Adapter::Blocking => {
            let listener = TcpListener::bind(args.addr)?;
            eprintln!("echo-server (blocking) listening on ws://{}", listener.local_addr()?);
            for stream in listener.incoming() {
                let stream = match stream {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let config = config.clone();
                std::thread::spawn(move || blocking_echo(stream, config));
            }
        }
        Adapter::Tokio => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve_tokio(args.addr, config, tls))?;
        }
    }
    Ok(())
}

/// `--adapter tokio`: a task per connection.
async fn serve_tokio(addr: SocketAddr, config: Arc<wsproto::Config>, tls: Option<ServerTls>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    eprintln!("echo-server (tokio) listening on {scheme}://{}", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => match &tls {
                Some(tls) => {
                    tokio::spawn(tokio_echo_tls(stream, tls.clone(), config.clone()));
                }
                None => {
                    tokio::spawn(tokio_echo(stream, config.clone()));
                }
            },
            Err(e) => tracing::warn!("accept failed: {e}"),
        }
    }
}
