//! The tokio adapter over TCP: echo both ways, pings answered while only reading, keep-alive,
//! handshake and close timers on tokio's timer, the close handshake, and the handshake
//! helpers (accept with a subprotocol, reject with an HTTP response, plain HTTP requests).
//! Each test runs on both runtime flavours.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsproto::{Accept, CloseCause, CloseCode, Config, KeepAlive, Message, OutgoingResponse};
use wsproto_adapters::tokio::{accept, accept_with, connect, ConnectOptions, Error};

/// Every test gets this long; a hang fails instead of stalling the suite.
const LIMIT: Duration = Duration::from_secs(30);

#[macro_use]
mod flavours;

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/test", listener.local_addr().unwrap());
    (listener, url)
}

/// An echo server on one connection; answers how it ended.
async fn echo_once(listener: TcpListener, config: Arc<Config>) -> tokio::task::JoinHandle<Result<(), Error>> {
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut ws = accept(stream, config).await?;
        while let Some(message) = ws.recv().await {
            ws.send(message?).await?;
        }
        assert!(ws.closed().is_some_and(|c| c.clean));
        Ok(())
    })
}

async fn echo_and_close() {
    let (listener, url) = listener().await;
    let server = echo_once(listener, Arc::new(Config::default())).await;
    let (mut ws, response) = connect(&url, ConnectOptions::default()).await.unwrap();
    assert_eq!(response.status(), 101);
    for i in 0..100 {
        let message =
            if i % 2 == 0 { Message::text(format!("text {i}")) } else { Message::binary(vec![i as u8; i * 100]) };
        ws.send(message.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), message);
    }
    // A large message, past the high-water mark: queued whole, written as the peer reads.
    let big = Message::Binary((0..1 << 20).map(|i| i as u8).collect());
    ws.send(big.clone()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), big);
    let closed = ws.close(CloseCode::NORMAL, "done").await.unwrap();
    assert!(closed.clean);
    assert_eq!(closed.cause, CloseCause::LocalClosed);
    assert_eq!(ws.closed(), Some(&closed));
    assert!(matches!(ws.send(Message::Text("late".into())).await, Err(Error::Closed)));
    assert!(ws.recv().await.is_none());
    server.await.unwrap().unwrap();
}
both_flavours!(echo_and_close_tcp, echo_and_close);

/// The Stream and Sink traits: `feed` many, `flush` once, read them back with `next`.
async fn stream_and_sink() {
    let (listener, url) = listener().await;
    let server = echo_once(listener, Arc::new(Config::default())).await;
    let (mut ws, _) = connect(&url, ConnectOptions::default()).await.unwrap();
    for i in 0..500 {
        ws.feed(Message::text(format!("{i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..500 {
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(format!("{i}")));
    }
    SinkExt::close(&mut ws).await.unwrap();
    assert!(ws.closed().unwrap().clean);
    assert!(ws.next().await.is_none());
    server.await.unwrap().unwrap();
}
both_flavours!(stream_and_sink_traits, stream_and_sink);

/// A raw client: sends the upgrade request and reads the response head.
async fn raw_upgrade(addr: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tcp
}

async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        if tcp.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A masked client frame (RFC 6455 §5.3) with a short payload.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The server only reads (nothing to echo yet); a ping still gets its pong.
async fn ping_while_reading() {
    let (listener, url) = listener().await;
    let addr = url.trim_start_matches("ws://").trim_end_matches("/test").to_owned();
    let (got, got_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = accept(stream, Arc::new(Config::default())).await.unwrap();
        let first = ws.recv().await;
        got.send(first.map(|m| m.unwrap())).unwrap();
        while ws.recv().await.is_some() {}
    });
    let mut tcp = raw_upgrade(&addr).await;
    tcp.write_all(&client_frame(0x9, b"are you there")).await.unwrap();
    let mut pong = [0u8; 15];
    tcp.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong[..2], &[0x8a, 13]);
    assert_eq!(&pong[2..], b"are you there");
    tcp.write_all(&client_frame(0x1, b"hi")).await.unwrap();
    assert_eq!(got_rx.await.unwrap(), Some(Message::Text("hi".into())));
    drop(tcp);
    server.await.unwrap();
}
both_flavours!(pings_answered_while_only_reading, ping_while_reading);

/// Keep-alive on tokio's timer: the server pings an idle peer, and ends a silent one.
async fn keep_alive() {
    let (listener, url) = listener().await;
    let addr = url.trim_start_matches("ws://").trim_end_matches("/test").to_owned();
    let config = Arc::new(Config {
        keep_alive: Some(KeepAlive { interval: Duration::from_millis(100), timeout: Duration::from_millis(200) }),
        ..Config::default()
    });
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = accept(stream, config).await.unwrap();
        let started = Instant::now();
        let end = ws.recv().await;
        (end.map(|r| r.map_err(|e| e.to_string())), started.elapsed(), ws.closed().cloned())
    });
    let mut tcp = raw_upgrade(&addr).await;
    // The idle ping arrives after the interval; we do not answer it.
    let mut ping = [0u8; 2];
    tcp.read_exact(&mut ping).await.unwrap();
    assert_eq!(ping, [0x89, 0]);
    let (end, elapsed, closed) = server.await.unwrap();
    assert!(matches!(end, Some(Err(_))), "{end:?}");
    let closed = closed.unwrap();
    assert_eq!(closed.cause, CloseCause::KeepAliveTimeout);
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5), "{elapsed:?}");
}
both_flavours!(keep_alive_on_the_tokio_timer, keep_alive);

/// The handshake deadline: a client that sends nothing is given up on.
async fn handshake_timeout() {
    let (listener, url) = listener().await;
    let addr = url.trim_start_matches("ws://").trim_end_matches("/test").to_owned();
    let config = Arc::new(Config { handshake_timeout: Some(Duration::from_millis(200)), ..Config::default() });
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let started = Instant::now();
        (accept(stream, config).await.map(|_| ()), started.elapsed())
    });
    let _silent = TcpStream::connect(&addr).await.unwrap();
    let (result, elapsed) = server.await.unwrap();
    assert!(matches!(result, Err(Error::Handshake(wsproto::HandshakeError::Timeout))), "{result:?}");
    assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(5), "{elapsed:?}");
}
both_flavours!(handshake_timeout_on_the_tokio_timer, handshake_timeout);

/// Our close to a peer that never answers: the close timeout ends it.
async fn close_timeout() {
    let (listener, url) = listener().await;
    let addr = url.trim_start_matches("ws://").trim_end_matches("/test").to_owned();
    let config = Arc::new(Config { close_timeout: Duration::from_millis(200), ..Config::default() });
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = accept(stream, config).await.unwrap();
        let started = Instant::now();
        let closed = ws.close(CloseCode::GOING_AWAY, "bye").await.unwrap();
        (closed, started.elapsed())
    });
    let mut tcp = raw_upgrade(&addr).await;
    let mut close = [0u8; 7];
    tcp.read_exact(&mut close).await.unwrap();
    assert_eq!(&close[..4], &[0x88, 5, 0x03, 0xe9]);
    let (closed, elapsed) = server.await.unwrap();
    assert_eq!(closed.cause, CloseCause::CloseTimeout);
    assert!(!closed.clean);
    // The close timeout, then at most the linger bound while the peer keeps its stream open.
    assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(5), "{elapsed:?}");
}
both_flavours!(close_timeout_on_the_tokio_timer, close_timeout);

/// The peer's close is answered and ends the stream cleanly.
async fn peer_closes() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = accept(stream, Arc::new(Config::default())).await.unwrap();
        ws.send(Message::Text("before".into())).await.unwrap();
        ws.close(CloseCode::NORMAL, "server done").await.unwrap()
    });
    let (mut ws, _) = connect(&url, ConnectOptions::default()).await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::Text("before".into()));
    assert!(ws.recv().await.is_none());
    let closed = ws.closed().unwrap();
    assert!(closed.clean);
    assert_eq!(closed.cause, CloseCause::PeerClosed);
    assert_eq!(closed.reason, "server done");
    let server_closed = server.await.unwrap();
    assert!(server_closed.clean);
}
both_flavours!(peer_close_ends_the_stream, peer_closes);

/// `accept_with`: a subprotocol chosen per request, a rejection with its status, a plain
/// HTTP request answered; the client sees each.
async fn handshake_decisions() {
    let (listener, url) = listener().await;
    let addr = url.trim_start_matches("ws://").trim_end_matches("/test").to_owned();
    let server = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            let (stream, _) = listener.accept().await.unwrap();
            let result = accept_with(stream, Arc::new(Config::default()), |request| match request.path() {
                "/chat" if request.subprotocols().contains(&"chat.v2") => Ok(Accept::new().subprotocol("chat.v2")),
                "/health" => Err(OutgoingResponse::new(200).text("ok\n")),
                _ => Err(OutgoingResponse::forbidden()),
            })
            .await;
            outcomes.push(match result {
                Ok(mut ws) => {
                    let subprotocol = ws.subprotocol().map(str::to_owned);
                    while ws.recv().await.is_some() {}
                    format!("open {subprotocol:?}")
                }
                Err(error) => error.to_string(),
            });
        }
        outcomes
    });
    let options = ConnectOptions { subprotocols: vec!["chat.v1".into(), "chat.v2".into()], ..Default::default() };
    let (mut ws, response) = connect(&format!("ws://{addr}/chat"), options).await.unwrap();
    assert_eq!(response.subprotocol(), Some("chat.v2"));
    assert_eq!(ws.subprotocol(), Some("chat.v2"));
    ws.close(CloseCode::NORMAL, "").await.unwrap();

    let rejected = connect(&format!("ws://{addr}/other"), ConnectOptions::default()).await;
    assert!(matches!(rejected, Err(Error::Rejected { status: 403 })), "{rejected:?}");

    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let outcomes = server.await.unwrap();
    assert_eq!(outcomes[0], "open Some(\"chat.v2\")");
    assert!(outcomes[1].contains("403"), "{}", outcomes[1]);
    assert!(outcomes[2].contains("200"), "{}", outcomes[2]);
}
both_flavours!(accept_with_decides, handshake_decisions);

/// `connect` refuses what it cannot do without touching the network.
#[tokio::test]
async fn connect_refuses_bad_urls() {
    assert!(matches!(connect("http://x/", ConnectOptions::default()).await, Err(Error::InvalidUrl(_))));
    // With the tokio-tls feature, wss:// is served (tests/tokio_tls.rs).
    #[cfg(not(feature = "tokio-tls"))]
    assert!(matches!(connect("wss://x/", ConnectOptions::default()).await, Err(Error::TlsUnsupported)));
    // Streaming mode is refused before anything is sent.
    let streaming = Arc::new(Config { receive_mode: wsproto::ReceiveMode::Streaming, ..Config::default() });
    let request = wsproto::OutgoingRequest::new("x", "/");
    let result = wsproto_adapters::tokio::client(tokio::io::duplex(64).0, streaming, request).await;
    assert!(matches!(result, Err(Error::StreamingUnsupported)));
}

/// A client whose server accepts TCP but never answers: the handshake timeout ends it.
async fn client_handshake_timeout() {
    let (listener, url) = listener().await;
    let _held = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(tcp);
    });
    let config = Arc::new(Config { handshake_timeout: Some(Duration::from_millis(200)), ..Config::default() });
    let started = Instant::now();
    let result = connect(&url, ConnectOptions { config, ..Default::default() }).await;
    assert!(matches!(result, Err(Error::Handshake(wsproto::HandshakeError::Timeout))), "{:?}", result.map(|_| ()));
    assert!(started.elapsed() < Duration::from_secs(5));
}
both_flavours!(client_handshake_timeout_on_the_tokio_timer, client_handshake_timeout);

/// The peer breaks the protocol (an unmasked client frame): the stream's last item is
/// `Error::Ended` with the core's cause, and the peer got the 1002 close.
async fn protocol_error_ends_with_error() {
    let (listener, url) = listener().await;
    let addr = url.trim_start_matches("ws://").trim_end_matches("/test").to_owned();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = accept(stream, Arc::new(Config::default())).await.unwrap();
        let first = ws.recv().await;
        let second = ws.recv().await;
        (first.map(|r| r.map_err(|e| e.to_string())), second.is_none(), ws.closed().cloned())
    });
    let mut tcp = raw_upgrade(&addr).await;
    tcp.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    let mut close = [0u8; 4];
    tcp.read_exact(&mut close).await.unwrap();
    assert_eq!(close[0], 0x88, "a close frame");
    assert_eq!(&close[2..], &[0x03, 0xea], "1002 Protocol Error");
    drop(tcp);
    let (first, then_none, closed) = server.await.unwrap();
    assert!(matches!(first, Some(Err(_))), "{first:?}");
    assert!(then_none);
    assert!(matches!(closed.unwrap().cause, CloseCause::Protocol(wsproto::ProtocolError::UnmaskedFrame)));
}
both_flavours!(protocol_error_is_the_last_item, protocol_error_ends_with_error);

/// An answer the core refuses (a subprotocol the client did not offer) becomes a 500 and
/// `Error::Usage`; the client sees the 500.
async fn refused_answer() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        accept_with(stream, Arc::new(Config::default()), |_| Ok(Accept::new().subprotocol("never-offered")))
            .await
            .map(|_| ())
    });
    let result = connect(&url, ConnectOptions::default()).await;
    assert!(matches!(result, Err(Error::Rejected { status: 500 })), "{:?}", result.map(|_| ()));
    let result = server.await.unwrap();
    assert!(matches!(result, Err(Error::Usage(wsproto::UsageError::SubprotocolNotOffered(_)))), "{result:?}");
}
both_flavours!(refused_answer_is_a_500, refused_answer);

/// `feed` queues without writing; the next `recv` writes what was fed before it waits.
async fn feed_then_recv() {
    let (listener, url) = listener().await;
    let server = echo_once(listener, Arc::new(Config::default())).await;
    let (mut ws, _) = connect(&url, ConnectOptions::default()).await.unwrap();
    for i in 0..300 {
        ws.feed(Message::text(format!("fed {i}"))).await.unwrap();
    }
    assert!(ws.connection().queued_bytes() > 0, "fed, not written");
    for i in 0..300 {
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::text(format!("fed {i}")));
    }
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    server.await.unwrap().unwrap();
}
both_flavours!(feed_is_written_by_the_next_recv, feed_then_recv);

/// `from_open` takes only a connection that is open (e.g. from `Connection::upgraded`).
#[tokio::test]
async fn from_open_needs_an_open_connection() {
    let handshaking = wsproto::Connection::server(Arc::new(Config::default()), Instant::now());
    let result = wsproto_adapters::tokio::WebSocket::from_open(tokio::io::duplex(64).0, handshaking);
    assert!(matches!(result, Err(Error::Closed)));

    let headers = [
        ("host", "x"),
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ]
    .map(|(name, value)| wsproto::Header { name: name.into(), value: value.as_bytes().to_vec() });
    let request = wsproto::Request::new("GET", "/", headers.to_vec());
    let (conn, _fields) =
        wsproto::Connection::upgraded(Arc::new(Config::default()), &request, Accept::new(), Instant::now()).unwrap();
    let (ours, theirs) = tokio::io::duplex(4096);
    let mut server = wsproto_adapters::tokio::WebSocket::from_open(ours, conn).unwrap();
    // The peer: a client already past its handshake, over the raw stream.
    let (mut read, mut write) = tokio::io::split(theirs);
    write.write_all(&client_frame(0x1, b"upgraded")).await.unwrap();
    assert_eq!(server.recv().await.unwrap().unwrap(), Message::Text("upgraded".into()));
    server.send(Message::Text("yes".into())).await.unwrap();
    let mut frame = [0u8; 5];
    read.read_exact(&mut frame).await.unwrap();
    assert_eq!(&frame, b"\x81\x03yes");
}
