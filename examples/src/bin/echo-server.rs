//! An echo server, the Autobahn conformance target: every text and binary message is sent
//! back as it came.
//!
//! `echo-server --addr 127.0.0.1:9001 --adapter mio` serves every connection on one mio
//! thread; `--adapter blocking` runs a thread per connection over the blocking adapter.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use wsproto::{Config, DeflateConfig, Message};
use wsproto_adapters::server::{ConnId, Context, Handler, Server, ServerOptions};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Adapter {
    /// One thread, many connections (mio event loop).
    Mio,
    /// A thread per connection (std blocking sockets).
    Blocking,
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
    /// Log connections (-v) or everything (-vv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Limits large enough for Autobahn's biggest cases (16 MiB messages, 4 MiB in 64-byte
/// fragments); the defaults suit a public server better.
fn echo_config() -> Config {
    Config {
        max_frame_size: 64 << 20,
        max_message_size: 64 << 20,
        max_fragments: 1 << 20,
        max_queued_bytes: 256 << 20,
        deflate: Some(DeflateConfig::default()),
        ..Config::default()
    }
}

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context, id: ConnId, message: Message) {
        let _ = ctx.send(id, message);
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    wsproto_examples::init_logging(args.verbose);
    let config = Arc::new(echo_config());
    match args.adapter {
        Adapter::Mio => {
            let options = ServerOptions { config, ..ServerOptions::default() };
            let server = Server::bind(args.addr, options)?;
            eprintln!("echo-server (mio) listening on ws://{}", server.local_addr()?);
            server.run(Echo)?;
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
    }
    Ok(())
}

fn blocking_echo(stream: std::net::TcpStream, config: Arc<Config>) {
    use wsproto_adapters::blocking::{accept, Incoming};
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
