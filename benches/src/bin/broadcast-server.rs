//! A broadcast-echo server on our mio adapter: every message received is encoded once and sent
//! to every open connection, the sender included (the server the load harness measures for
//! broadcast). `broadcast-server [ADDR]`, default `127.0.0.1:9002`.

use wsproto_benches::servers::ServerKind;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let addr =
        addr.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    ServerKind::OursBroadcast.serve(addr, |addr| eprintln!("broadcast-server listening on ws://{addr}"))
}
