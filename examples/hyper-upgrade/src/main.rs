//! `hyper-upgrade --addr 127.0.0.1:8080`: plain routes at `/` and `/health`, a WebSocket echo
//! at `/ws` (permessage-deflate accepted), all on one hyper server.

use std::sync::Arc;

use wsproto::{Config, DeflateConfig};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().skip_while(|a| a != "--addr").nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("hyper-upgrade listening on http://{} (WebSocket at /ws)", listener.local_addr()?);
    let config = Arc::new(Config { deflate: Some(DeflateConfig::default()), ..Config::default() });
    hyper_upgrade::serve(listener, config).await
}
