//! Clients through proxies: HTTP CONNECT (with Basic authentication) and SOCKS5 (with
//! username/password), for `ws://` and `wss://`, chosen by the caller or by environment-style
//! settings; the proxies are the testkit's, on loopback.

use std::time::Duration;

use wsproto::{CloseCode, Message};
use wsproto_adapters::blocking::{
    ClientStream, ConnectOptions, Connector, Error, Incoming, Proxy, ProxyEnv, WebSocket,
};
use wsproto_testkit::proxy::TestProxy;
use wsproto_testkit::tls::TestPki;

mod support;

use support::{server_tls, EchoServer};

const WATCHDOG: Duration = Duration::from_secs(60);

/// A plain and a TLS echo server (mio).
struct Servers {
    plain: u16,
    tls: u16,
    pki: TestPki,
    _running: [EchoServer; 2],
}

fn servers() -> Servers {
    let pki = TestPki::localhost();
    let (plain, tls) = (EchoServer::start(None), EchoServer::start(Some(server_tls(&pki))));
    Servers { plain: plain.port, tls: tls.port, pki, _running: [plain, tls] }
}

fn echo_and_close(mut ws: WebSocket<ClientStream>, text: &str) {
    ws.send_text(text).unwrap();
    loop {
        match ws.read().expect("read") {
            Incoming::Message(message) => break assert_eq!(message, Message::Text(text.into())),
            Incoming::Closed(closed) => panic!("closed: {closed:?}"),
            _ => {}
        }
    }
    ws.close(CloseCode::NORMAL, "").unwrap();
    loop {
        if let Incoming::Closed(closed) = ws.read().expect("read") {
            break assert!(closed.clean, "{closed:?}");
        }
    }
}

/// Connects through `connector` to the plain and the TLS server under `host`, echoing once
/// on each.
fn both_schemes(connector: &Connector, servers: &Servers, host: &str) {
    let connector = connector.clone().tls_config(servers.pki.client_config());
    let (ws, _) = connector.connect(&format!("ws://{host}:{}/", servers.plain), ConnectOptions::default()).unwrap();
    assert!(ws.get_ref().tls_session().is_none());
    echo_and_close(ws, "plain through the proxy");
    let (ws, _) = connector.connect(&format!("wss://{host}:{}/", servers.tls), ConnectOptions::default()).unwrap();
    assert_eq!(ws.get_ref().tls_session().and_then(|s| s.alpn_protocol()), Some(&b"http/1.1"[..]));
    echo_and_close(ws, "TLS through the proxy");
}

#[test]
fn http_connect_carries_ws_and_wss_with_basic_auth() {
    wsproto_testkit::within(WATCHDOG, || {
        let servers = servers();
        let open = TestProxy::http(None);
        both_schemes(&Connector::new().proxy(Proxy::parse(&open.url("http")).unwrap()), &servers, "localhost");
        assert_eq!(open.tunnels(), [format!("localhost:{}", servers.plain), format!("localhost:{}", servers.tls)]);

        let guarded = TestProxy::http(Some(("alice", "s3cret:!")));
        let url = format!("http://alice:s3cret%3A%21@{}", guarded.addr);
        both_schemes(&Connector::new().proxy(Proxy::parse(&url).unwrap()), &servers, "127.0.0.1");
        assert_eq!(guarded.tunnels().len(), 2);

        for url in [format!("http://{}", guarded.addr), format!("http://alice:wrong@{}", guarded.addr)] {
            let connector = Connector::new().proxy(Proxy::parse(&url).unwrap());
            match connector.connect(&format!("ws://localhost:{}/", servers.plain), ConnectOptions::default()) {
                Err(error @ Error::Proxy { .. }) => {
                    let message = error.to_string();
                    assert!(message.contains("407") && message.contains(&guarded.addr.to_string()), "{message}");
                    assert!(!message.contains("wrong"), "no password in messages: {message}");
                }
                other => panic!("expected a 407, got {:?}", other.map(|_| ())),
            }
        }
        assert_eq!(guarded.tunnels().len(), 2, "no tunnel without the right credentials");
    })
}

#[test]
fn socks5_carries_ws_and_wss_with_and_without_a_password() {
    wsproto_testkit::within(WATCHDOG, || {
        let servers = servers();
        let open = TestProxy::socks5(None);
        // A name (the proxy resolves it) and an IPv4 address.
        for host in ["localhost", "127.0.0.1"] {
            both_schemes(&Connector::new().proxy(Proxy::parse(&open.url("socks5h")).unwrap()), &servers, host);
        }
        assert_eq!(open.tunnels().len(), 4);
        assert_eq!(open.tunnels()[0], format!("localhost:{}", servers.plain));

        let guarded = TestProxy::socks5(Some(("bob", "pw")));
        let url = format!("socks5://bob:pw@{}", guarded.addr);
        both_schemes(&Connector::new().proxy(Proxy::parse(&url).unwrap()), &servers, "localhost");
        for url in [format!("socks5://bob:nope@{}", guarded.addr), format!("socks5://{}", guarded.addr)] {
            let connector = Connector::new().proxy(Proxy::parse(&url).unwrap());
            match connector.connect(&format!("ws://localhost:{}/", servers.plain), ConnectOptions::default()) {
                Err(Error::Proxy { proxy, message }) => {
                    assert_eq!(proxy, guarded.addr.to_string());
                    assert!(message.contains("SOCKS5"), "{message}");
                }
                other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
            }
        }
        assert_eq!(guarded.tunnels().len(), 2);
    })
}

#[test]
fn environment_settings_pick_the_proxy_by_scheme_and_honour_no_proxy() {
    wsproto_testkit::within(WATCHDOG, || {
        let servers = servers();
        let http = TestProxy::http(None);
        let socks = TestProxy::socks5(None);
        let env = ProxyEnv { http: Some(socks.url("socks5")), https: Some(http.url("http")), no_proxy: None };
        both_schemes(&Connector::new().proxy_env(env.clone()), &servers, "localhost");
        assert_eq!(socks.tunnels(), [format!("localhost:{}", servers.plain)], "ws:// through HTTP_PROXY");
        assert_eq!(http.tunnels(), [format!("localhost:{}", servers.tls)], "wss:// through HTTPS_PROXY");

        let bypass = ProxyEnv { no_proxy: Some("example.com, localhost".into()), ..env };
        both_schemes(&Connector::new().proxy_env(bypass), &servers, "localhost");
        assert_eq!((socks.tunnels().len(), http.tunnels().len()), (1, 1), "NO_PROXY hosts are reached directly");
    })
}

#[test]
fn an_unreachable_proxy_is_a_proxy_error() {
    wsproto_testkit::within(WATCHDOG, || {
        let servers = servers();
        // A port nobody listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let connector = Connector::new().proxy(Proxy::parse(&format!("http://127.0.0.1:{port}")).unwrap());
        match connector.connect(&format!("ws://localhost:{}/", servers.plain), ConnectOptions::default()) {
            Err(Error::Proxy { proxy, message }) => {
                assert_eq!(proxy, format!("127.0.0.1:{port}"));
                assert!(message.contains("cannot reach the proxy"), "{message}");
            }
            other => panic!("expected a proxy error, got {:?}", other.map(|_| ())),
        }
    })
}
