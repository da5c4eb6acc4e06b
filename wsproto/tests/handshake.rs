//! The opening handshake (RFC 6455 §4): heads, limits, policies, rejections, timeouts.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use wsproto::*;

#[test]
fn frames_behind_the_request_in_the_same_read_are_kept() {
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(Config::default()), now);
    let input = [HANDSHAKE, &client_frame(0x81, b"early")].concat();
    server.receive(now, &input);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    assert_eq!(server.poll_event(), None);
    assert!(!server.wants_read());
    server.accept(Accept::new()).unwrap();
    assert_eq!(drain_events(&mut server), vec![text("early")]);
}

#[test]
fn oversized_and_malformed_heads_are_answered_and_bounded() {
    let now = Instant::now();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        ([b"GET / HTTP/1.1\r\nX: ".as_slice(), &vec![b'a'; 9000]].concat(), 431),
        (
            [
                b"GET / HTTP/1.1\r\n".to_vec(),
                (0..70).flat_map(|i| format!("X{i}: y\r\n").into_bytes()).collect(),
                b"\r\n".to_vec(),
            ]
            .concat(),
            431,
        ),
        (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n".to_vec(), 400),
        (String::from_utf8_lossy(HANDSHAKE).replace("Version: 13", "Version: 7").into_bytes(), 426),
        (String::from_utf8_lossy(HANDSHAKE).replace("Connection: Upgrade\r\n", "").into_bytes(), 400),
    ];
    for (input, status) in cases {
        for piece in [1, 7, input.len()] {
            let mut server = Connection::server(Arc::new(Config::default()), now);
            for chunk in input.chunks(piece) {
                server.receive(now, chunk);
            }
            let events = drain_events(&mut server);
            assert!(matches!(closed_with(&events).1, CloseCause::Handshake(_)), "{status} {events:?}");
            let out = String::from_utf8(drain_output(&mut server)).unwrap();
            assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
            if status == 426 {
                assert!(out.contains("Sec-WebSocket-Version: 13\r\n"));
            }
            assert!(server.should_close_transport());
        }
    }
}

#[test]
fn plain_http_requests_are_handed_to_the_application() {
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(Config::default()), now);
    server.receive(now, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    let Some(Event::HttpRequest(request)) = server.poll_event() else { panic!() };
    assert_eq!(request.path(), "/index.html");
    assert_eq!(server.accept(Accept::new()), Err(UsageError::NoPendingRequest));
    server.respond(OutgoingResponse::new(200).body("text/html", "<p>hi</p>")).unwrap();
    let out = String::from_utf8(drain_output(&mut server)).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("\r\n\r\n<p>hi</p>"), "{out}");
    assert!(server.should_close_transport());
    assert!(matches!(closed_with(&drain_events(&mut server)).1, CloseCause::Rejected { status: 200 }));
}

#[test]
fn origin_and_subprotocol_policies() {
    let now = Instant::now();
    let config = Config {
        origins: OriginPolicy::AllowList { origins: vec!["http://good.example".into()], allow_missing: false },
        subprotocols: SubprotocolPolicy { supported: vec!["chat.v2".into(), "chat.v1".into()], required: true },
        ..Config::default()
    };
    let request = |origin: &str, protocols: &str| {
        let head = String::from_utf8_lossy(HANDSHAKE)
            .replace("\r\n\r\n", &format!("\r\nOrigin: {origin}\r\nSec-WebSocket-Protocol: {protocols}\r\n\r\n"));
        let mut server = Connection::server(Arc::new(config.clone()), now);
        server.receive(now, head.as_bytes());
        server
    };
    let mut evil = request("http://evil.example", "chat.v1");
    assert!(String::from_utf8(drain_output(&mut evil)).unwrap().starts_with("HTTP/1.1 403 "));
    let mut none = request("http://GOOD.example", "chat.v0, other");
    let out = String::from_utf8(drain_output(&mut none)).unwrap();
    assert!(out.starts_with("HTTP/1.1 400 ") && out.contains("chat.v2, chat.v1"), "{out}");
    let mut good = request("http://GOOD.example", "chat.v1, chat.v2");
    assert!(matches!(good.poll_event(), Some(Event::Request(_))));
    good.accept(Accept::new()).unwrap();
    assert_eq!(good.subprotocol(), Some("chat.v2"));
    assert!(String::from_utf8(drain_output(&mut good)).unwrap().contains("Sec-WebSocket-Protocol: chat.v2\r\n"));
    // The application may pick another offered one, but not one never offered.
    let mut pick = request("http://good.example", "chat.v1, chat.v2");
    let _ = pick.poll_event();
    assert_eq!(
        pick.accept(Accept::new().subprotocol("chat.v9")),
        Err(UsageError::SubprotocolNotOffered("chat.v9".into()))
    );
    pick.accept(Accept::new().subprotocol("chat.v1")).unwrap();
    assert_eq!(pick.subprotocol(), Some("chat.v1"));
}

#[test]
fn application_rejection_with_503() {
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(Config::default()), now);
    server.receive(now, HANDSHAKE);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.respond(OutgoingResponse::service_unavailable()).unwrap();
    assert!(String::from_utf8(drain_output(&mut server)).unwrap().starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    assert!(matches!(closed_with(&drain_events(&mut server)).1, CloseCause::Rejected { status: 503 }));
}

#[test]
fn client_reports_a_rejection_with_its_status() {
    let now = Instant::now();
    let mut client = Connection::client_with_rng(
        Arc::new(Config::default()),
        OutgoingRequest::new("x", "/"),
        now,
        Box::new(CountingRng(1)),
    )
    .unwrap();
    drain_output(&mut client);
    client.receive(now, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    let (_, cause) = closed_with(&drain_events(&mut client));
    assert_eq!(cause, CloseCause::Handshake(HandshakeError::Status(403)));
}

#[test]
fn handshake_timeout() {
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(Config::default()), now);
    server.receive(now, b"GET / HTTP/1.1\r\n");
    let deadline = server.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(10));
    server.handle_timeout(deadline - Duration::from_millis(1));
    assert!(server.poll_event().is_none());
    server.handle_timeout(deadline);
    assert_eq!(closed_with(&drain_events(&mut server)).1, CloseCause::Handshake(HandshakeError::Timeout));
    assert!(server.should_close_transport());
}

#[test]
fn bytes_held_while_the_application_decides_are_bounded() {
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(Config::default()), now);
    server.receive(now, HANDSHAKE);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    for _ in 0..3 {
        server.receive(now, &[0; 4096]);
    }
    let (_, cause) = closed_with(&drain_events(&mut server));
    assert!(matches!(cause, CloseCause::Handshake(HandshakeError::BadRequest(_))), "{cause:?}");
    assert!(String::from_utf8(drain_output(&mut server)).unwrap().starts_with("HTTP/1.1 400 "));
    assert_eq!(server.accept(Accept::new()), Err(UsageError::NoPendingRequest));
}

#[test]
fn a_server_handshake_timeout_is_answered_with_408() {
    // Before the head is complete, and while the application sits on a complete request.
    for input in [&b"GET / HTTP/1.1\r\n"[..], HANDSHAKE] {
        let now = Instant::now();
        let mut server = Connection::server(Arc::new(Config::default()), now);
        server.receive(now, input);
        let _ = drain_events(&mut server);
        let deadline = server.poll_timeout().unwrap();
        server.handle_timeout(deadline);
        assert_eq!(closed_with(&drain_events(&mut server)).1, CloseCause::Handshake(HandshakeError::Timeout));
        let out = String::from_utf8(drain_output(&mut server)).unwrap();
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
        assert!(server.should_close_transport());
    }
}

#[test]
fn a_client_handshake_timeout_just_closes() {
    let now = Instant::now();
    let request = OutgoingRequest::new("example.com", "/");
    let mut client =
        Connection::client_with_rng(Arc::new(Config::default()), request, now, Box::new(CountingRng(1))).unwrap();
    drain_output(&mut client);
    let deadline = client.poll_timeout().unwrap();
    client.handle_timeout(deadline);
    assert_eq!(closed_with(&drain_events(&mut client)).1, CloseCause::Handshake(HandshakeError::Timeout));
    assert_eq!(client.queued_bytes(), 0);
    assert!(client.should_close_transport());
}
