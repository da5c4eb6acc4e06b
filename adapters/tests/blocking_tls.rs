//! The blocking adapter over TLS (feature `tls`): `wss://` in `connect` against the mio
//! server, certificate errors, and `accept_tls` with its timeouts and close_notify.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsproto::{Accept, CloseCause, CloseCode, Closed, Config, KeepAlive, Message};
use wsproto_adapters::blocking::{
    accept_tls, connect, ClientStream, ConnectOptions, Connector, Error, Incoming, TlsStream, WebSocket,
};
use wsproto_testkit::tls::TestPki;

mod support;

use support::{server_tls, EchoServer};

const WATCHDOG: Duration = Duration::from_secs(60);

fn mio_server(pki: &TestPki) -> EchoServer {
    EchoServer::start(Some(server_tls(pki)))
}

fn next_message(ws: &mut WebSocket<ClientStream>) -> Message {
    loop {
        match ws.read().expect("read") {
            Incoming::Message(message) => return message,
            Incoming::Closed(closed) => panic!("closed: {closed:?}"),
            _ => {}
        }
    }
}

fn read_closed<S: wsproto_adapters::blocking::Transport>(ws: &mut WebSocket<S>) -> Closed {
    loop {
        if let Incoming::Closed(closed) = ws.read().expect("read") {
            return *closed;
        }
    }
}

#[test]
fn wss_in_connect_with_the_callers_roots() {
    wsproto_testkit::within(WATCHDOG, || {
        let pki = TestPki::localhost();
        let server = mio_server(&pki);
        let connector = Connector::new().tls_config(pki.client_config());
        for host in ["localhost", "127.0.0.1"] {
            let url = format!("wss://{host}:{}/", server.port);
            let (mut ws, response) = connector.connect(&url, ConnectOptions::default()).expect("wss connect");
            assert!(response.subprotocol().is_none());
            let session = ws.get_ref().tls_session().expect("a TLS session");
            assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
            for size in [0usize, 125, 70_000, 1 << 20] {
                let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
                ws.send_binary(&payload).unwrap();
                assert_eq!(next_message(&mut ws), Message::binary(payload), "{host}, {size} bytes");
            }
            ws.close(CloseCode::NORMAL, "bye").unwrap();
            let closed = read_closed(&mut ws);
            assert!(closed.clean, "{closed:?}");
            assert_eq!(closed.cause, CloseCause::LocalClosed);
        }
    })
}

#[test]
fn a_certificate_error_names_the_host() {
    wsproto_testkit::within(WATCHDOG, || {
        let pki = TestPki::localhost();
        let server = mio_server(&pki);
        // The default roots (webpki-roots) do not know the test CA.
        match connect(&format!("wss://localhost:{}/", server.port), ConnectOptions::default()) {
            Err(error @ Error::Tls { .. }) => {
                let Error::Tls { host, error: cause } = &error else { unreachable!() };
                assert_eq!(host, "localhost");
                assert!(matches!(cause, rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)));
                let message = error.to_string();
                assert!(message.contains("localhost") && message.contains("certificate"), "{message}");
            }
            other => panic!("expected a certificate error, got {:?}", other.map(|_| ())),
        }
        // A trusted CA, but a certificate for another name.
        let other = TestPki::new(&["other.example"]);
        let server = mio_server(&other);
        let connector = Connector::new().tls_config(other.client_config());
        match connector.connect(&format!("wss://localhost:{}/", server.port), ConnectOptions::default()) {
            Err(Error::Tls { host, error: rustls::Error::InvalidCertificate(cause) }) => {
                assert_eq!(host, "localhost");
                assert!(matches!(cause, rustls::CertificateError::NotValidForNameContext { .. }), "{cause:?}");
            }
            other => panic!("expected a name mismatch, got {:?}", other.map(|_| ())),
        }
    })
}

/// A blocking TLS server for one connection at a time, running `serve` on each accept.
fn blocking_server<T: Send + 'static>(
    config: Config,
    pki: &TestPki,
    serve: impl FnOnce(Result<WebSocket<TlsStream<rustls::ServerConnection>>, Error>) -> T + Send + 'static,
) -> (u16, wsproto_testkit::Pending<T>) {
    let tls = server_tls(pki);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = Arc::new(config);
    let server = wsproto_testkit::spawn_within("the TLS server", WATCHDOG, move || {
        let (stream, _) = listener.accept().unwrap();
        serve(accept_tls(stream, &tls, config))
    });
    (port, server)
}

#[test]
fn accept_tls_serves_our_client_and_sees_its_sni() {
    wsproto_testkit::within(WATCHDOG, || {
        let pki = TestPki::localhost();
        let (port, server) = blocking_server(Config::default(), &pki, |ws| {
            let mut ws = ws.expect("server handshake");
            let sni = ws.get_ref().session().server_name().map(str::to_owned);
            let closed = loop {
                match ws.read().expect("server read") {
                    Incoming::Message(message) => ws.send(message).unwrap(),
                    Incoming::Closed(closed) => break closed,
                    _ => {}
                }
            };
            (sni, closed)
        });
        let connector = Connector::new().tls_config(pki.client_config());
        let (mut ws, _) = connector.connect(&format!("wss://localhost:{port}/"), ConnectOptions::default()).unwrap();
        ws.send_text("over blocking TLS").unwrap();
        assert_eq!(next_message(&mut ws), Message::Text("over blocking TLS".into()));
        ws.close(CloseCode::NORMAL, "").unwrap();
        assert!(read_closed(&mut ws).clean);
        let (sni, closed) = server.join();
        assert_eq!(sni.as_deref(), Some("localhost"), "SNI");
        assert_eq!(closed.cause, CloseCause::PeerClosed);
        assert!(closed.clean);
    })
}

#[test]
fn accept_tls_timers_reach_the_socket() {
    wsproto_testkit::within(WATCHDOG, || {
        let pki = TestPki::localhost();
        // The handshake timeout bounds the TLS handshake: a client that says nothing.
        let quick = Config { handshake_timeout: Some(Duration::from_millis(500)), ..Config::default() };
        let (port, server) = blocking_server(quick, &pki, |ws| ws.map(drop));
        let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let started = Instant::now();
        match server.join() {
            Err(Error::Io(error)) => assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(silent.read(&mut [0; 16]), Ok(0) | Err(_)), "the socket was closed");

        // Keep-alive on an open TLS connection: a client that stops answering is reaped.
        let keep_alive = Config {
            keep_alive: Some(KeepAlive { interval: Duration::from_millis(200), timeout: Duration::from_millis(300) }),
            ..Config::default()
        };
        let (port, server) = blocking_server(keep_alive, &pki, |ws| read_closed(&mut ws.expect("handshake")));
        let connector = Connector::new().tls_config(pki.client_config());
        let (ws, _) = connector.connect(&format!("wss://localhost:{port}/"), ConnectOptions::default()).unwrap();
        let closed = server.join();
        assert_eq!(closed.cause, CloseCause::KeepAliveTimeout);
        drop(ws);
    })
}

#[test]
fn accept_with_over_tls_answers_https_and_ends_with_close_notify() {
    wsproto_testkit::within(WATCHDOG, || {
        let pki = TestPki::localhost();
        let tls = server_tls(&pki);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = wsproto_testkit::spawn_within("server", WATCHDOG, move || {
            let (stream, _) = listener.accept().unwrap();
            let stream = wsproto_adapters::blocking::tls_accept(stream, &tls, Some(Duration::from_secs(5))).unwrap();
            let result = WebSocket::accept_with(stream, Arc::new(Config::default()), |request| {
                if request.path() == "/health" {
                    Err(wsproto::OutgoingResponse::new(200).text("ok\n"))
                } else {
                    Ok(Accept::new())
                }
            });
            matches!(result, Err(Error::Rejected { status: 200 }))
        });
        // A plain HTTPS request through rustls: the health answer.
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(pki.client_config(), name).unwrap();
        let mut https = rustls::StreamOwned::new(conn, tcp);
        https.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut response = String::new();
        https.read_to_string(&mut response).expect("close_notify before the end");
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("ok\n"), "{response}");
        assert!(server.join());
    })
}
