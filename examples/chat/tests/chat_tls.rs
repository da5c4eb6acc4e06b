//! The chat over HTTPS: one TLS port serves the page and the WebSocket (`wss://`), with a
//! certificate made for this run (the testkit's, rcgen) and a rustls client that trusts only it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chat::ChatOptions;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use wsproto_adapters::mio::Handle;
use wsproto_adapters::tls::ServerTls;
use wsproto_testkit::tls::TestPki;

struct ChatServer {
    addr: SocketAddr,
    handle: Handle<chat::Command>,
    client: Arc<ClientConfig>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        let _ = self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start() -> ChatServer {
    wsproto_testkit::process_watchdog("chat TLS tests", Duration::from_secs(120));
    let pki = TestPki::localhost();
    let tls = ServerTls::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).unwrap();
    let options = ChatOptions { addr: ([127, 0, 0, 1], 0).into(), tls: Some(tls), ..ChatOptions::default() };
    let (server, chat) = chat::bind(&options).expect("bind");
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run(chat).map(drop).expect("chat server"));
    ChatServer { addr, handle, client: pki.client_config(), thread: Some(thread) }
}

fn tls(server: &ChatServer) -> StreamOwned<ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let conn = ClientConnection::new(server.client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    StreamOwned::new(conn, tcp)
}

type Ws = tungstenite::WebSocket<StreamOwned<ClientConnection, TcpStream>>;

fn open(server: &ChatServer) -> Ws {
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", "chat.v1".parse().unwrap());
    headers.insert("Origin", format!("https://localhost:{}", server.addr.port()).parse().unwrap());
    let (ws, response) = tungstenite::client(request, tls(server)).expect("wss handshake");
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "chat.v1");
    ws
}

fn recv(ws: &mut Ws) -> Value {
    loop {
        if let tungstenite::Message::Text(text) = ws.read().expect("read") {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[test]
fn the_page_and_the_websocket_share_one_https_port() {
    let server = start();
    let mut page = tls(&server);
    page.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    page.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response:.200}");
    assert!(response.contains("<!doctype html>"));

    let mut alice = open(&server);
    let mut bob = open(&server);
    for (ws, nick) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        ws.send(tungstenite::Message::text(json!({"type": "join", "nick": nick}).to_string())).unwrap();
        assert_eq!(recv(ws)["type"], "welcome");
    }
    alice.send(tungstenite::Message::text(json!({"type": "say", "text": "over TLS"}).to_string())).unwrap();
    let said = loop {
        let message = recv(&mut bob);
        if message["type"] == "message" {
            break message;
        }
    };
    assert_eq!((said["from"].as_str(), said["text"].as_str()), (Some("alice"), Some("over TLS")), "{said}");
}

#[test]
fn a_plain_http_origin_is_refused_over_https() {
    let server = start();
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "chat.v1".parse().unwrap());
    request.headers_mut().insert("Origin", format!("http://localhost:{}", server.addr.port()).parse().unwrap());
    match tungstenite::client(request, tls(&server)) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 403)
        }
        Err(other) => panic!("expected 403, got {other}"),
        Ok(_) => panic!("an http:// origin was accepted on the https:// server"),
    }
}
