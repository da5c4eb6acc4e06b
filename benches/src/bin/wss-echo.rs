//! wss:// echo throughput, in one run: our mio server over TLS, the same server in plain
//! ws://, and tokio-tungstenite over tokio-rustls (current-thread runtime, the same rustls and
//! ring provider), all driven by one client: `CLIENTS` threads, each a tungstenite connection
//! over a rustls client stream, sending batches of `BATCH` messages and reading their echoes.
//!
//! `cargo run --release -p wsproto-benches --bin wss-echo [seconds]` prints a
//! Markdown table of messages per second and the ratios the TLS issue asks for. The client runs
//! in the same process and shares the cores, the same for every server.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_server::{echo_config, Echo};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use wsproto_adapters::mio::{Server, ServerOptions};
use wsproto_adapters::tls::ServerTls;
use wsproto_testkit::tls::TestPki;

const CLIENTS: usize = 4;
const BATCH: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    OursTls,
    OursPlain,
    TokioTungsteniteTls,
}

fn ours(tls: Option<ServerTls>) -> SocketAddr {
    let options = ServerOptions { config: Arc::new(echo_config()), ..ServerOptions::default() };
    let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), options).unwrap();
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || server.run(Echo));
    addr
}

fn tokio_tungstenite(tls: &ServerTls) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config().clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            use futures_util::{StreamExt, TryStreamExt};
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let Ok(ws) = tokio_tungstenite::accept_async(tls).await else { return };
                    // As the load harness's tokio-tungstenite echo: forward feeds and flushes
                    // only when no more input is ready.
                    let (write, read) = ws.split();
                    let _ = read.try_filter(|m| std::future::ready(m.is_text() || m.is_binary())).forward(write).await;
                });
            }
        });
    });
    addr
}

trait Stream: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> Stream for T {}

fn client(addr: SocketAddr, tls: Option<&Arc<ClientConfig>>) -> tungstenite::WebSocket<Box<dyn Stream + Send>> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    let (url, stream): (String, Box<dyn Stream + Send>) = match tls {
        Some(config) => {
            let conn =
                rustls::ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
            (format!("wss://localhost:{}/", addr.port()), Box::new(rustls::StreamOwned::new(conn, tcp)))
        }
        None => (format!("ws://localhost:{}/", addr.port()), Box::new(tcp)),
    };
    tungstenite::client(url, stream).expect("handshake").0
}

/// Messages per second echoed for `duration`.
fn run(addr: SocketAddr, tls: Option<&Arc<ClientConfig>>, size: usize, duration: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut ws = client(addr, tls);
            let (stop, count) = (stop.clone(), count.clone());
            let payload = vec![b'x'; size];
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..BATCH {
                        ws.write(tungstenite::Message::binary(payload.clone())).unwrap();
                    }
                    ws.flush().unwrap();
                    let mut got = 0;
                    while got < BATCH {
                        if let tungstenite::Message::Binary(data) = ws.read().unwrap() {
                            assert_eq!(data.len(), size);
                            got += 1;
                        }
                    }
                    count.fetch_add(BATCH as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(duration / 5);
    let (start, before) = (Instant::now(), count.load(Ordering::Relaxed));
    std::thread::sleep(duration);
    let messages = count.load(Ordering::Relaxed) - before;
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    messages as f64 / elapsed.as_secs_f64()
}

fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let duration = Duration::from_secs(seconds);
    let pki = TestPki::localhost();
    let tls = ServerTls::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).unwrap();
    let client_config = pki.client_config();
    let servers = [
        (Kind::OursTls, ours(Some(tls.clone()))),
        (Kind::OursPlain, ours(None)),
        (Kind::TokioTungsteniteTls, tokio_tungstenite(&tls)),
    ];
    println!("| messages | ours wss (msg/s) | ours ws (msg/s) | tokio-tungstenite wss (msg/s) | ours wss / ours ws | ours wss / tokio-tungstenite wss |");
    println!("|---|---|---|---|---|---|");
    for size in [20, 16 << 10] {
        let mut rates = Vec::new();
        for (kind, addr) in servers {
            let tls = (kind != Kind::OursPlain).then_some(&client_config);
            rates.push(run(addr, tls, size, duration));
        }
        println!(
            "| {BATCH} × {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
            if size < 1024 { format!("{size} B") } else { format!("{} KiB", size >> 10) },
            rates[0],
            rates[1],
            rates[2],
            rates[0] / rates[1],
            rates[0] / rates[2],
        );
    }
}
