//! wss:// on the tokio adapter (feature `tokio-tls`): our client and server over tokio-rustls,
//! tokio-tungstenite (rustls) as a client of our server, our client against the mio TLS server,
//! certificate errors that name the host, and peers that speak no TLS or too slowly.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wsproto::{CloseCode, Config, Message};
use wsproto_adapters::tls::ServerTls;
use wsproto_adapters::tokio::{accept_tls, connect, ConnectOptions, Error};
use wsproto_testkit::tls::TestPki;

mod support;

fn server_tls(pki: &TestPki) -> ServerTls {
    support::server_tls(pki)
}

/// A tokio wss:// echo server on a free port; every accept's failure goes to the channel.
async fn echo_server(tls: ServerTls, config: Config) -> (u16, mpsc::UnboundedReceiver<Error>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (failures, failed) = mpsc::unbounded_channel();
    let config = Arc::new(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, config, failures) = (tls.clone(), config.clone(), failures.clone());
            tokio::spawn(async move {
                match accept_tls(tcp, &tls, config).await {
                    Ok(mut ws) => {
                        while let Some(Ok(message)) = ws.recv().await {
                            if ws.send(message).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(error) => {
                        let _ = failures.send(error);
                    }
                }
            });
        }
    });
    (port, failed)
}

fn options(pki: &TestPki) -> ConnectOptions {
    ConnectOptions { tls: Some(pki.client_config()), ..ConnectOptions::default() }
}

fn runtime() -> tokio::runtime::Runtime {
    wsproto_testkit::process_watchdog("tokio TLS tests", Duration::from_secs(60));
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn our_client_and_server_talk_over_tls_with_alpn_http11() {
    runtime().block_on(async {
        let pki = TestPki::localhost();
        let (port, _) = echo_server(server_tls(&pki), Config::default()).await;
        let (mut ws, response) = connect(&format!("wss://localhost:{port}/echo"), options(&pki)).await.expect("wss");
        assert_eq!(response.status(), 101);
        let session = ws.get_ref().tls_session().expect("a TLS session");
        assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
        for size in [0, 1, 125, 126, 20_000, 70_000] {
            let text = "é".repeat(size / 2);
            ws.send(Message::text(text.clone())).await.unwrap();
            assert_eq!(ws.recv().await.transpose().unwrap(), Some(Message::text(text)));
            let binary = vec![size as u8; size];
            ws.send(Message::binary(binary.clone())).await.unwrap();
            assert_eq!(ws.recv().await.transpose().unwrap(), Some(Message::binary(binary)));
        }
        let closed = ws.close(CloseCode::NORMAL, "bye").await.unwrap();
        assert!(closed.clean, "{closed:?}");
    });
}

#[test]
fn tokio_tungstenite_with_rustls_is_a_client_of_our_tokio_server() {
    runtime().block_on(async {
        let pki = TestPki::localhost();
        let (port, _) = echo_server(server_tls(&pki), Config::default()).await;
        let connector = tokio_tungstenite::Connector::Rustls(pki.client_config());
        let url = format!("wss://localhost:{port}/");
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (mut ws, response) =
            tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector)).await.expect("wss");
        assert_eq!(response.status(), 101);
        for i in 0..20 {
            let text = format!("message {i} {}", "x".repeat(i * 1000));
            ws.send(tokio_tungstenite::tungstenite::Message::text(text.clone())).await.unwrap();
            let echoed = ws.next().await.unwrap().unwrap();
            assert_eq!(echoed.into_text().unwrap().as_str(), text);
        }
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    });
}

#[test]
fn our_tokio_client_talks_to_the_mio_tls_server() {
    let pki = TestPki::localhost();
    let server = support::EchoServer::start(Some(server_tls(&pki)));
    runtime().block_on(async {
        let (mut ws, _) = connect(&format!("wss://localhost:{}/", server.port), options(&pki)).await.expect("wss");
        ws.send(Message::Text("over mio".into())).await.unwrap();
        assert_eq!(ws.recv().await.transpose().unwrap(), Some(Message::Text("over mio".into())));
        assert!(ws.close(CloseCode::NORMAL, "").await.unwrap().clean);
    });
}

#[test]
fn a_certificate_nobody_vouches_for_is_an_error_naming_the_host() {
    runtime().block_on(async {
        let pki = TestPki::localhost();
        let (port, _) = echo_server(server_tls(&pki), Config::default()).await;
        // The default roots (webpki-roots) do not know the test CA.
        let Err(error) = connect(&format!("wss://localhost:{port}/"), ConnectOptions::default()).await else {
            panic!("an unknown CA was accepted")
        };
        match &error {
            Error::Tls { host, error: rustls::Error::InvalidCertificate(_) } => assert_eq!(host, "localhost"),
            other => panic!("{other:?}"),
        }
        assert!(error.to_string().contains("localhost"), "{error}");
        // A certificate for other names: refused for this one.
        let other = TestPki::new(&["example.org"]);
        let (port, _) = echo_server(server_tls(&other), Config::default()).await;
        let Err(error) = connect(&format!("wss://localhost:{port}/"), options(&other)).await else {
            panic!("a certificate for example.org was accepted for localhost")
        };
        assert!(matches!(&error, Error::Tls { host, .. } if host == "localhost"), "{error:?}");
    });
}

#[test]
fn peers_that_speak_no_tls_or_too_slowly_fail_alone() {
    runtime().block_on(async {
        let pki = TestPki::localhost();
        let config = Config { handshake_timeout: Some(Duration::from_millis(400)), ..Config::default() };
        let (port, mut failures) = echo_server(server_tls(&pki), config).await;
        // A plain HTTP request on the TLS port, and garbage: TLS errors, answered with an alert.
        for junk in [&b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..], &[0xff; 64][..]] {
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            tcp.write_all(junk).await.unwrap();
            let error = failures.recv().await.unwrap();
            assert!(matches!(error, Error::Tls { .. }), "{error:?}");
        }
        // A ClientHello a byte at a time, slower than the deadline allows.
        let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let writer = tokio::spawn(async move {
            for byte in [0x16u8, 0x03, 0x01, 0x00, 0x80, 0x01] {
                if slow.write_all(&[byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            slow
        });
        // Meanwhile another client is served.
        let (mut ws, _) = connect(&format!("wss://localhost:{port}/"), options(&pki)).await.expect("wss");
        ws.send(Message::Text("still served".into())).await.unwrap();
        assert_eq!(ws.recv().await.transpose().unwrap(), Some(Message::Text("still served".into())));
        let error = tokio::time::timeout(Duration::from_secs(5), failures.recv()).await.expect("bounded").unwrap();
        assert!(matches!(&error, Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut), "{error:?}");
        drop(writer.await);
        assert!(ws.close(CloseCode::NORMAL, "").await.unwrap().clean);
    });
}
