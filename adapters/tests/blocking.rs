//! The blocking adapter over loopback TCP: our client against our server (a thread per
//! connection), the config's policies and timers, and interop with tungstenite in both roles.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

#[cfg(unix)]
use std::os::unix::net::UnixStream;

#[cfg(unix)]
use wsproto::OutgoingRequest;
use wsproto::{
    Accept, CloseCause, CloseCode, Closed, Config, HandshakeError, KeepAlive, Message, MessageKind, OriginPolicy,
    OutgoingResponse, ReceiveMode, SendError, SubprotocolPolicy,
};
use wsproto_adapters::blocking::{accept, connect, ConnectOptions, Error, Incoming, Transport, WebSocket};
use wsproto_testkit::Pending;

/// How long any one server or test body may take before the test fails: a broken timer shows as
/// a failure instead of a hung test run.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Runs `body` in a thread and answers its result, failing if it takes longer than `WATCHDOG`.
fn within<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    wsproto_testkit::within(WATCHDOG, body)
}

/// Accepts one connection on a fresh loopback port and runs `serve` on its handshake result
/// in a thread; answers the `ws://` URL and the server.
fn serve_one<T, F>(config: Config, serve: F) -> (String, Pending<T>)
where
    T: Send + 'static,
    F: FnOnce(Result<WebSocket<TcpStream>, Error>) -> T + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("ws://{}/test", listener.local_addr().expect("local address"));
    let config = Arc::new(config);
    let server = wsproto_testkit::spawn_within("the server", WATCHDOG, move || {
        let (stream, _) = listener.accept().expect("accept");
        serve(accept(stream, config))
    });
    (url, server)
}

/// Echoes every message back until the connection ends; answers how it ended.
fn echo<S: Transport>(ws: Result<WebSocket<S>, Error>) -> Closed {
    let mut ws = ws.expect("server handshake");
    loop {
        match ws.read().expect("server read") {
            Incoming::Message(message) => ws.send(message).expect("echo"),
            Incoming::Closed(closed) => {
                assert!(matches!(ws.read(), Err(Error::Closed)), "a read after Closed is an error");
                return *closed;
            }
            _ => {}
        }
    }
}

fn options(config: Config) -> ConnectOptions {
    ConnectOptions { config: Arc::new(config), ..ConnectOptions::default() }
}

/// Reads until a message arrives (skipping pings and pongs).
fn read_message<S: Transport>(ws: &mut WebSocket<S>) -> Message {
    loop {
        match ws.read().expect("read") {
            Incoming::Message(message) => return message,
            Incoming::Closed(closed) => panic!("closed while waiting for a message: {closed:?}"),
            _ => {}
        }
    }
}

fn read_closed<S: Transport>(ws: &mut WebSocket<S>) -> Closed {
    loop {
        match ws.read().expect("read") {
            Incoming::Closed(closed) => return *closed,
            Incoming::Message(message) => panic!("unexpected message {message:?}"),
            _ => {}
        }
    }
}

#[test]
fn messages_ping_and_a_clean_close_between_our_client_and_server() {
    within(|| {
        let (url, server) = serve_one(Config::default(), echo);
        let (mut ws, response) = connect(&url, ConnectOptions::default()).expect("connect");
        assert_eq!(response.status(), 101);

        ws.send_text("hello").unwrap();
        assert_eq!(read_message(&mut ws), Message::Text("hello".into()));
        ws.send_binary(&[0, 1, 2, 255]).unwrap();
        assert_eq!(read_message(&mut ws), Message::binary(vec![0, 1, 2, 255]));
        let large: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        ws.send(Message::binary(large.clone())).unwrap();
        assert_eq!(read_message(&mut ws), Message::binary(large));
        let text = "é€😀".repeat(50_000);
        ws.send_text(&text).unwrap();
        assert_eq!(read_message(&mut ws), Message::text(text));

        ws.ping(b"are you there").unwrap();
        assert_eq!(ws.read().unwrap(), Incoming::Pong((b"are you there".to_vec()).into()));

        ws.close(CloseCode::NORMAL, "bye").unwrap();
        assert!(matches!(ws.send_text("too late"), Err(Error::Send(_))));
        let closed = read_closed(&mut ws);
        assert_eq!((closed.code, closed.clean, closed.cause), (CloseCode::NORMAL, true, CloseCause::LocalClosed));
        assert!(matches!(ws.read(), Err(Error::Closed)));

        let closed = server.join();
        assert_eq!((closed.code, closed.reason.as_str(), closed.clean), (CloseCode::NORMAL, "bye", true));
        assert_eq!(closed.cause, CloseCause::PeerClosed);
    })
}

#[test]
fn a_server_initiated_close_reaches_the_client() {
    within(|| {
        let (url, server) = serve_one(Config::default(), |ws| {
            let mut ws = ws.expect("server handshake");
            ws.send_text("goodbye").unwrap();
            ws.close(CloseCode::GOING_AWAY, "shutting down").unwrap();
            read_closed(&mut ws)
        });
        let (mut ws, _) = connect(&url, ConnectOptions::default()).expect("connect");
        assert_eq!(read_message(&mut ws), Message::Text("goodbye".into()));
        let closed = read_closed(&mut ws);
        assert_eq!((closed.code, closed.reason.as_str()), (CloseCode::GOING_AWAY, "shutting down"));
        assert_eq!((closed.clean, closed.cause), (true, CloseCause::PeerClosed));
        let closed = server.join();
        assert_eq!((closed.clean, closed.cause), (true, CloseCause::LocalClosed));
    })
}

#[test]
fn a_peer_that_vanishes_ends_the_connection_with_1006() {
    within(|| {
        let (url, server) = serve_one(Config::default(), |ws| read_closed(&mut ws.expect("server handshake")));
        let (ws, _) = connect(&url, ConnectOptions::default()).expect("connect");
        drop(ws);
        let closed = server.join();
        assert_eq!((closed.code, closed.clean, closed.cause), (CloseCode::ABNORMAL, false, CloseCause::Eof));
    })
}

#[test]
fn subprotocol_negotiation() {
    within(|| {
        let chat_only = || Config {
            subprotocols: SubprotocolPolicy { supported: vec!["chat.v1".into()], required: true },
            ..Config::default()
        };
        let (url, server) = serve_one(chat_only(), |ws| {
            let ws = ws.expect("server handshake");
            ws.subprotocol().map(str::to_owned)
        });
        let offer =
            ConnectOptions { subprotocols: vec!["chat.v2".into(), "chat.v1".into()], ..ConnectOptions::default() };
        let (ws, response) = connect(&url, offer).expect("connect");
        assert_eq!(response.subprotocol(), Some("chat.v1"));
        assert_eq!(ws.subprotocol(), Some("chat.v1"));
        assert_eq!(server.join().as_deref(), Some("chat.v1"));

        let (url, server) = serve_one(chat_only(), |ws| ws.err());
        let offer = ConnectOptions { subprotocols: vec!["chat.v2".into()], ..ConnectOptions::default() };
        assert!(matches!(connect(&url, offer), Err(Error::Rejected { status: 400 })));
        assert!(matches!(server.join(), Some(Error::Handshake(HandshakeError::NoSubprotocol(_)))));
    })
}

#[test]
fn an_origin_off_the_allow_list_gets_403() {
    within(|| {
        let allow = || Config {
            origins: OriginPolicy::AllowList { origins: vec!["https://good.example".into()], allow_missing: false },
            ..Config::default()
        };
        let (url, server) = serve_one(allow(), |ws| ws.err());
        let evil = ConnectOptions { origin: Some("https://evil.example".into()), ..ConnectOptions::default() };
        assert!(matches!(connect(&url, evil), Err(Error::Rejected { status: 403 })));
        assert!(matches!(server.join(), Some(Error::Handshake(HandshakeError::OriginNotAllowed(_)))));

        let (url, server) = serve_one(allow(), |ws| ws.is_ok());
        let good = ConnectOptions { origin: Some("https://good.example".into()), ..ConnectOptions::default() };
        assert!(connect(&url, good).is_ok());
        assert!(server.join());
    })
}

#[test]
fn the_application_can_refuse_an_upgrade_and_answer_plain_http() {
    within(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server_thread = thread::spawn(move || {
            let mut results = Vec::new();
            for _ in 0..4 {
                let (stream, _) = listener.accept().unwrap();
                let result =
                    WebSocket::accept_with(stream, Arc::new(Config::default()), |request| match request.path() {
                        "/health" => Err(OutgoingResponse::new(200).text("ok\n")),
                        "/full" => Err(OutgoingResponse::service_unavailable()),
                        // The client offered no subprotocol: the core refuses this answer.
                        "/buggy" => Ok(Accept::new().subprotocol("never-offered")),
                        _ => Ok(Accept::new()),
                    });
                results.push(result.err().map(|e| e.to_string()));
            }
            results
        });

        assert!(matches!(
            connect(&format!("ws://{addr}/full"), ConnectOptions::default()),
            Err(Error::Rejected { status: 503 })
        ));
        let http_get = |path: &str| {
            let mut stream = TcpStream::connect(addr).unwrap();
            write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            answer
        };
        assert!(matches!(
            connect(&format!("ws://{addr}/buggy"), ConnectOptions::default()),
            Err(Error::Rejected { status: 500 })
        ));
        let health = http_get("/health");
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n") && health.ends_with("\r\n\r\nok\n"), "{health}");
        let other = http_get("/chat");
        assert!(other.starts_with("HTTP/1.1 426 "), "{other}");
        assert!(other.contains("Upgrade: websocket\r\n") && other.contains("Sec-WebSocket-Version: 13\r\n"), "{other}");

        let results = server_thread.join().unwrap();
        let outcomes: Vec<_> = results.iter().map(|r| r.as_deref().unwrap_or("accepted")).collect();
        assert_eq!(
            outcomes,
            [
                "upgrade answered with HTTP status 503",
                "subprotocol \"never-offered\" was not offered by the client",
                "upgrade answered with HTTP status 200",
                "upgrade answered with HTTP status 426"
            ]
        );
    })
}

#[test]
fn keep_alive_reaps_a_client_that_stops_answering() {
    within(|| {
        let keep_alive = Config {
            keep_alive: Some(KeepAlive { interval: Duration::from_millis(200), timeout: Duration::from_millis(200) }),
            ..Config::default()
        };
        let (url, server) = serve_one(keep_alive, |ws| {
            let mut ws = ws.expect("server handshake");
            let opened = Instant::now();
            (read_closed(&mut ws), opened.elapsed())
        });
        // A client that neither answers pings nor reads: to the server it is gone.
        let silent = Config { auto_pong: false, ..Config::default() };
        let (_silent_client, _) = connect(&url, options(silent)).expect("connect");
        let (closed, after) = server.join();
        assert_eq!((closed.code, closed.cause), (CloseCode::INTERNAL_ERROR, CloseCause::KeepAliveTimeout));
        assert!(after >= Duration::from_millis(400) && after < Duration::from_secs(1), "reaped after {after:?}");
    })
}

#[test]
fn keep_alive_bounds_a_write_to_a_client_that_stops_reading() {
    within(|| {
        let keep_alive = Config {
            keep_alive: Some(KeepAlive { interval: Duration::from_millis(100), timeout: Duration::from_millis(100) }),
            close_timeout: Duration::from_millis(200),
            ..Config::default()
        };
        let (url, server) = serve_one(keep_alive, |ws| {
            let mut ws = ws.expect("server handshake");
            let chunk = vec![7u8; 1 << 20];
            let started = Instant::now();
            // Until the socket buffers fill, sends succeed; then a write blocks until keep-alive
            // gives up on the peer and the close timeout on our last bytes.
            let refused = loop {
                if let Err(error) = ws.send_binary(&chunk) {
                    break error;
                }
            };
            (refused, read_closed(&mut ws), started.elapsed())
        });
        let (_not_reading, _) = connect(&url, ConnectOptions::default()).expect("connect");
        let (refused, closed, after) = server.join();
        assert!(matches!(refused, Error::Send(SendError::Usage(wsproto::UsageError::Closed))), "{refused:?}");
        assert_eq!(closed.cause, CloseCause::KeepAliveTimeout);
        assert!(after < Duration::from_secs(2), "gave up after {after:?}");
    })
}

#[test]
fn keep_alive_spares_a_client_that_answers() {
    within(|| {
        let keep_alive = Config {
            keep_alive: Some(KeepAlive { interval: Duration::from_millis(50), timeout: Duration::from_millis(100) }),
            ..Config::default()
        };
        let (url, server) = serve_one(keep_alive, |ws| read_closed(&mut ws.expect("server handshake")));
        let (mut ws, _) = connect(&url, ConnectOptions::default()).expect("connect");
        // The client answers pings while it reads; several keep-alive rounds pass.
        let mut pings = 0;
        while pings < 4 {
            match ws.read().unwrap() {
                Incoming::Ping(_) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(read_closed(&mut ws).cause, CloseCause::LocalClosed);
        assert_eq!(server.join().cause, CloseCause::PeerClosed);
    })
}

#[test]
fn a_silent_peer_is_bounded_by_the_handshake_and_close_timeouts() {
    within(|| {
        let quick_handshake = Config { handshake_timeout: Some(Duration::from_millis(200)), ..Config::default() };
        let (url, server) = serve_one(quick_handshake, |ws| ws.err());
        let addr = url.trim_start_matches("ws://").trim_end_matches("/test");
        let started = Instant::now();
        let _mute = TcpStream::connect(addr).unwrap();
        assert!(matches!(server.join(), Some(Error::Handshake(HandshakeError::Timeout))));
        assert!(started.elapsed() < Duration::from_secs(1));

        // A server that never reads again never answers our close.
        let (done, wait_for_done) = mpsc::channel::<()>();
        let (url, server) = serve_one(Config::default(), move |ws| {
            let _ws = ws.expect("server handshake");
            let _ = wait_for_done.recv();
        });
        let quick_close = Config { close_timeout: Duration::from_millis(200), ..Config::default() };
        let (mut ws, _) = connect(&url, options(quick_close)).expect("connect");
        let started = Instant::now();
        ws.close(CloseCode::NORMAL, "").unwrap();
        let closed = read_closed(&mut ws);
        assert_eq!((closed.clean, closed.cause), (false, CloseCause::CloseTimeout));
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(done);
        server.join();
    })
}

#[test]
fn streaming_mode_hands_over_a_message_in_chunks() {
    within(|| {
        let streaming = Config { receive_mode: ReceiveMode::Streaming, ..Config::default() };
        let (url, server) = serve_one(streaming, |ws| {
            let mut ws = ws.expect("server handshake");
            let (mut received, mut chunks) = (Vec::new(), 0);
            loop {
                match ws.read().expect("server read") {
                    Incoming::Chunk { kind: MessageKind::Binary, data, first, last } => {
                        assert_eq!(first, chunks == 0);
                        received.extend_from_slice(&data);
                        chunks += 1;
                        if last {
                            return (received, chunks);
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        });
        let (mut ws, _) = connect(&url, ConnectOptions::default()).expect("connect");
        let large: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
        ws.send_binary(&large).unwrap();
        let (received, chunks) = server.join();
        assert_eq!(received, large);
        assert!(chunks > 1, "a 1 MiB message arrives in more than one read");
    })
}

#[cfg(unix)]
#[test]
fn any_transport_works_here_a_unix_socket_pair() {
    within(|| {
        let (server_end, client_end) = UnixStream::pair().unwrap();
        let server = thread::spawn(move || {
            let ws = WebSocket::accept_with(server_end, Arc::new(Config::default()), |_| Ok(Accept::new()));
            echo(ws)
        });
        let request = OutgoingRequest::new("localhost", "/over-unix");
        let (mut ws, _) = WebSocket::client(client_end, Arc::new(Config::default()), request).expect("handshake");
        ws.send_text("over a unix socket").unwrap();
        assert_eq!(read_message(&mut ws), Message::Text("over a unix socket".into()));
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert_eq!(read_closed(&mut ws).cause, CloseCause::LocalClosed);
        assert_eq!(server.join().unwrap().cause, CloseCause::PeerClosed);
    })
}

#[test]
fn urls_we_cannot_serve_are_refused_before_connecting() {
    within(|| {
        // With the feature, wss:// is served (tests/blocking_tls.rs).
        #[cfg(not(feature = "tls"))]
        assert!(matches!(connect("wss://example.com/", ConnectOptions::default()), Err(Error::TlsUnsupported)));
        assert!(matches!(connect("http://example.com/", ConnectOptions::default()), Err(Error::InvalidUrl(_))));
    })
}

// ---- interop with tungstenite ----

#[test]
fn tungstenite_client_against_our_server() {
    within(|| {
        let (url, server) = serve_one(Config::default(), echo);
        let (mut peer, response) = tungstenite::connect(url.as_str()).expect("tungstenite connect");
        assert_eq!(response.status(), 101);

        peer.send(tungstenite::Message::text("hello from tungstenite")).unwrap();
        assert_eq!(peer.read().unwrap(), tungstenite::Message::text("hello from tungstenite"));
        let large: Vec<u8> = (0..300_000).map(|i| (i % 256) as u8).collect();
        peer.send(tungstenite::Message::binary(large.clone())).unwrap();
        assert_eq!(peer.read().unwrap(), tungstenite::Message::binary(large));

        peer.close(None).unwrap();
        loop {
            match peer.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(error) => panic!("tungstenite: {error}"),
            }
        }
        // Our server waits for the client's end of stream after its own (RFC 6455 §7.1.1).
        drop(peer);
        let closed = server.join();
        assert_eq!((closed.code, closed.clean, closed.cause), (CloseCode::NO_STATUS, true, CloseCause::PeerClosed));
    })
}

#[test]
fn our_client_against_a_tungstenite_server() {
    within(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server_thread = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut peer = tungstenite::accept(stream).expect("tungstenite accept");
            let mut echoed = 0;
            loop {
                match peer.read() {
                    Ok(message @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_))) => {
                        peer.send(message).unwrap();
                        echoed += 1;
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::ConnectionClosed) => return echoed,
                    Err(error) => panic!("tungstenite: {error}"),
                }
            }
        });

        let (mut ws, _) = connect(&url, ConnectOptions::default()).expect("connect");
        ws.send_text("hello from wsproto").unwrap();
        assert_eq!(read_message(&mut ws), Message::Text("hello from wsproto".into()));
        let large: Vec<u8> = (0..300_000).map(|i| (i % 7) as u8).collect();
        ws.send_binary(&large).unwrap();
        assert_eq!(read_message(&mut ws), Message::binary(large));
        ws.ping(b"p").unwrap();
        assert_eq!(ws.read().unwrap(), Incoming::Pong(b"p".to_vec().into()));
        ws.close(CloseCode::NORMAL, "done").unwrap();
        let closed = read_closed(&mut ws);
        assert_eq!((closed.code, closed.clean, closed.cause), (CloseCode::NORMAL, true, CloseCause::LocalClosed));
        assert_eq!(server_thread.join().unwrap(), 2);
    })
}

#[test]
fn split_halves_read_and_write_at_once_while_the_peer_pings() {
    const MESSAGES: u32 = 400;
    const SIZE: usize = 32 << 10;
    const PING_EVERY: u32 = 25;
    within(|| {
        // The peer echoes on one thread, so it stops reading whenever its echo blocks: if our
        // reader stalled behind our blocked writer, both sides would wait forever.
        let (url, server) = serve_one(Config::default(), |ws| {
            let mut ws = ws.expect("server handshake");
            let (mut echoed, mut pongs) = (0u32, 0u32);
            loop {
                match ws.read().expect("server read") {
                    Incoming::Message(message) => {
                        ws.send(message).expect("echo");
                        echoed += 1;
                        if echoed % PING_EVERY == 0 {
                            ws.ping(&echoed.to_be_bytes()).expect("ping");
                        }
                    }
                    Incoming::Pong(_) => pongs += 1,
                    Incoming::Closed(closed) => return (echoed, pongs, closed),
                    _ => {}
                }
            }
        });
        let (ws, _) = connect(&url, ConnectOptions::default()).expect("connect");
        let (mut reader, mut writer) = ws.split().expect("split");
        let flood = thread::spawn(move || {
            for i in 0..MESSAGES {
                let payload: Vec<u8> = (0..SIZE).map(|j| (i as usize + j) as u8).collect();
                writer.send_binary(&payload).expect("send");
            }
            writer
        });
        let mut pings = 0;
        let mut received = 0;
        // The last ping follows the last echo; its pong must leave before our close frame.
        while received < MESSAGES || pings < MESSAGES / PING_EVERY {
            match reader.read().expect("read") {
                Incoming::Message(Message::Binary(data)) => {
                    let expected: Vec<u8> = (0..SIZE).map(|j| (received as usize + j) as u8).collect();
                    assert!(data == expected, "message {received} arrived changed");
                    received += 1;
                }
                Incoming::Ping(_) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        let writer = flood.join().expect("the flooding thread");
        let mut ws = reader.reunite(writer).expect("the halves of one connection");
        ws.close(CloseCode::NORMAL, "done").unwrap();
        loop {
            match ws.read().expect("read after reunite") {
                Incoming::Closed(closed) => break assert!(closed.clean),
                Incoming::Ping(_) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        let (echoed, pongs, closed) = server.join();
        assert_eq!(echoed, MESSAGES);
        assert_eq!(pings, MESSAGES / PING_EVERY);
        assert_eq!(pongs, MESSAGES / PING_EVERY, "every ping was answered by the reader half");
        assert_eq!(closed.cause, CloseCause::PeerClosed);
    });
}

#[test]
fn a_split_writer_closes_and_the_reader_sees_the_handshake_end() {
    within(|| {
        let (url, server) = serve_one(Config::default(), echo);
        let (ws, _) = connect(&url, ConnectOptions::default()).expect("connect");
        let (mut reader, mut writer) = ws.split().expect("split");
        let reading = thread::spawn(move || {
            let mut messages = Vec::new();
            loop {
                match reader.read().expect("read") {
                    Incoming::Message(message) => messages.push(message),
                    Incoming::Closed(closed) => {
                        assert!(matches!(reader.read(), Err(Error::Closed)));
                        return (messages, closed);
                    }
                    _ => {}
                }
            }
        });
        writer.send_text("one").unwrap();
        writer.send_binary(b"two").unwrap();
        writer.close(CloseCode::NORMAL, "bye").unwrap();
        assert!(matches!(writer.send_text("late"), Err(Error::Send(_))));
        let (messages, closed) = reading.join().unwrap();
        assert_eq!(messages, vec![Message::Text("one".into()), Message::binary(b"two".to_vec())]);
        assert!(closed.clean);
        assert_eq!(closed.code, CloseCode::NORMAL);
        assert_eq!(server.join().cause, CloseCause::PeerClosed);
    });
}

#[test]
fn a_transport_that_cannot_be_cloned_is_not_split() {
    #[cfg(unix)]
    within(|| {
        /// A Unix socket that keeps `Transport`'s default `try_clone`.
        struct Plain(UnixStream);
        impl Read for Plain {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0.read(buf)
            }
        }
        impl Write for Plain {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.0.flush()
            }
        }
        impl Transport for Plain {}
        let (a, b) = UnixStream::pair().unwrap();
        let server = thread::spawn(move || {
            echo(WebSocket::accept_with(Plain(b), Arc::new(Config::default()), |_| Ok(Accept::new())))
        });
        let request = OutgoingRequest::new("localhost", "/plain");
        let (ws, _) = WebSocket::client(Plain(a), Arc::new(Config::default()), request).expect("handshake");
        let refused = ws.split().expect_err("Plain cannot be cloned");
        assert_eq!(refused.error.kind(), std::io::ErrorKind::Unsupported);
        let mut ws = *refused.websocket;
        ws.send_text("still usable").unwrap();
        assert_eq!(read_message(&mut ws), Message::Text("still usable".into()));
        // Without shutdown or timeouts, only dropping the stream ends it.
        drop(ws);
        assert_eq!(server.join().unwrap().cause, CloseCause::Eof);
    });
}
