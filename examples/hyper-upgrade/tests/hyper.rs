//! The hyper example end to end: plain routes and the WebSocket on one server; the 101 carries
//! the core's answer (permessage-deflate negotiated or not); a bad upgrade gets its status.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsproto::{CloseCode, Config, DeflateConfig, Message};
use wsproto_adapters::tokio::{connect, ConnectOptions};

const LIMIT: Duration = Duration::from_secs(30);

async fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = Arc::new(Config { deflate: Some(DeflateConfig::default()), ..Config::default() });
    tokio::spawn(hyper_upgrade::serve(listener, config));
    addr
}

/// One plain HTTP/1.1 request; answers the whole response (the server closes after it).
async fn http(addr: &str, head: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the head and a short body; the connection stays open (keep-alive), so stop once the
    // body's length is in.
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse::<usize>())
                })
                .and_then(Result::ok)
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    String::from_utf8(response).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_routes_beside_the_websocket() {
    tokio::time::timeout(LIMIT, async {
        let addr = start().await;
        let home = http(&addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(home.starts_with("HTTP/1.1 200"), "{home}");
        assert!(home.ends_with("hello from hyper; the WebSocket is at /ws\n"), "{home}");
        let health = http(&addr, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}");
        let missing = http(&addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        // An upgrade without a key is refused with the core's status.
        let bad = http(&addr, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n").await;
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    })
    .await
    .unwrap();
}

async fn websocket(deflate: bool) {
    let addr = start().await;
    let config = Config { deflate: deflate.then(DeflateConfig::default), ..Config::default() };
    let options = ConnectOptions { config: Arc::new(config), ..ConnectOptions::default() };
    let (mut ws, response) = connect(&format!("ws://{addr}/ws"), options).await.unwrap();
    let extensions = response.header("sec-websocket-extensions").unwrap_or_default().to_owned();
    assert_eq!(extensions.contains("permessage-deflate"), deflate, "{extensions:?}");
    assert_eq!(ws.connection().compression().is_some(), deflate);
    let messages = [
        Message::Text("hello".into()),
        Message::text("compress me ".repeat(10_000)),
        Message::Binary((0..100_000).map(|i| (i % 251) as u8).collect()),
    ];
    for message in messages {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), message);
    }
    ws.ping(b"still there?").await.unwrap();
    let closed = ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    assert!(closed.clean, "{closed:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn websocket_with_permessage_deflate() {
    tokio::time::timeout(LIMIT, websocket(true)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_without_compression() {
    tokio::time::timeout(LIMIT, websocket(false)).await.unwrap();
}
