//! `Connection::upgraded`: the opening handshake answered by an HTTP server (hyper, axum), the
//! core checking the request, computing the 101's fields and starting open.

mod support;

use std::sync::Arc;
use std::time::Instant;

use support::*;
use wsproto::*;

fn header(name: &str, value: &str) -> Header {
    Header { name: name.to_owned(), value: value.as_bytes().to_vec() }
}

/// The RFC 6455 §1.3 example request as an HTTP server hands it over, plus `extra`.
fn request(extra: &[(&str, &str)]) -> Request {
    let mut headers = vec![
        header("host", "server.example.com"),
        header("upgrade", "websocket"),
        header("connection", "Upgrade"),
        header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        header("sec-websocket-version", "13"),
    ];
    headers.extend(extra.iter().map(|(n, v)| header(n, v)));
    Request::new("GET", "/chat?room=1", headers)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[test]
fn answers_the_101_fields_and_starts_open() {
    let now = Instant::now();
    let accept = Accept::new().subprotocol("chat").header("Set-Cookie", "id=1");
    let (mut conn, fields) = Connection::upgraded(
        Arc::new(Config::default()),
        &request(&[("sec-websocket-protocol", "superchat, chat")]),
        accept,
        now,
    )
    .unwrap();
    assert_eq!(field(&fields, "upgrade"), Some("websocket"));
    assert_eq!(field(&fields, "connection"), Some("Upgrade"));
    // RFC 6455 §1.3's worked example.
    assert_eq!(field(&fields, "sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert_eq!(field(&fields, "sec-websocket-protocol"), Some("chat"));
    assert_eq!(field(&fields, "set-cookie"), Some("id=1"));
    assert_eq!(field(&fields, "sec-websocket-extensions"), None);
    assert_eq!(conn.state(), ConnectionState::Open);
    assert_eq!(conn.subprotocol(), Some("chat"));
    // The request is the caller's; the open connection keeps it only when asked to.
    assert!(conn.request().is_none());
    let keep = Config { keep_handshake: true, ..Config::default() };
    let (kept, _) = Connection::upgraded(Arc::new(keep), &request(&[]), Accept::new(), now).unwrap();
    assert_eq!(kept.request().map(Request::target), Some("/chat?room=1"));
    // Nothing queued: no 101 head on the upgraded stream; frames flow both ways.
    assert_eq!(conn.queued_bytes(), 0);
    conn.receive(now, &client_frame(0x81, b"hello"));
    assert_eq!(drain_events(&mut conn), vec![text("hello")]);
    conn.send_text("back").unwrap();
    assert_eq!(conn.outgoing_front(), b"\x81\x04back");
}

#[test]
fn the_subprotocol_policy_chooses_when_the_application_does_not() {
    let config = Config {
        subprotocols: SubprotocolPolicy { supported: vec!["v2".into(), "v1".into()], required: true },
        ..Config::default()
    };
    let config = Arc::new(config);
    let (_, fields) = Connection::upgraded(
        config.clone(),
        &request(&[("sec-websocket-protocol", "v1, v2")]),
        Accept::new(),
        Instant::now(),
    )
    .unwrap();
    assert_eq!(field(&fields, "sec-websocket-protocol"), Some("v2"));
    // Required and none offered: refused as a server connection refuses it (400).
    let refused = Connection::upgraded(config, &request(&[]), Accept::new(), Instant::now()).unwrap_err();
    assert!(matches!(refused, UpgradeError::Request(HandshakeError::NoSubprotocol(_))), "{refused:?}");
}

#[test]
fn invalid_requests_and_policies_are_refused_with_their_status() {
    let now = Instant::now();
    let no_key = Request::new(
        "GET",
        "/",
        vec![
            header("host", "x"),
            header("upgrade", "websocket"),
            header("connection", "upgrade"),
            header("sec-websocket-version", "13"),
        ],
    );
    let post = Request::new("POST", "/", request(&[]).headers().to_vec());
    let old_version = Request::new(
        "GET",
        "/",
        request(&[])
            .headers()
            .iter()
            .filter(|h| h.name != "sec-websocket-version")
            .cloned()
            .chain([header("sec-websocket-version", "8")])
            .collect(),
    );
    for (request, status) in [(no_key, 400), (post, 400), (old_version, 426)] {
        match Connection::upgraded(Arc::new(Config::default()), &request, Accept::new(), now) {
            Err(UpgradeError::Request(error)) => assert_eq!(error.status(), Some(status), "{error}"),
            other => panic!("{other:?}"),
        }
    }
    let origins = OriginPolicy::AllowList { origins: vec!["https://good.example".into()], allow_missing: false };
    let config = Arc::new(Config { origins, ..Config::default() });
    let bad_origin = request(&[("origin", "https://evil.example")]);
    match Connection::upgraded(config.clone(), &bad_origin, Accept::new(), now) {
        Err(UpgradeError::Request(error)) => assert_eq!(error.status(), Some(403)),
        other => panic!("{other:?}"),
    }
    assert!(Connection::upgraded(config, &request(&[("origin", "https://good.example")]), Accept::new(), now).is_ok());
}

#[test]
fn answers_the_core_cannot_send_are_the_applications_errors() {
    let now = Instant::now();
    let config = Arc::new(Config::default());
    let not_offered = Connection::upgraded(config.clone(), &request(&[]), Accept::new().subprotocol("chat"), now);
    assert!(matches!(not_offered, Err(UpgradeError::Answer(UsageError::SubprotocolNotOffered(_)))));
    let bad_header = Connection::upgraded(config, &request(&[]), Accept::new().header("X-Bad", "a\r\nb"), now);
    assert!(matches!(bad_header, Err(UpgradeError::Answer(UsageError::InvalidHeader(_)))));
}

#[cfg(feature = "deflate")]
#[test]
fn permessage_deflate_is_negotiated_for_the_101() {
    let config = Arc::new(Config { deflate: Some(DeflateConfig::default()), ..Config::default() });
    let offer = request(&[("sec-websocket-extensions", "permessage-deflate; client_max_window_bits")]);
    let (conn, fields) = Connection::upgraded(config.clone(), &offer, Accept::new(), Instant::now()).unwrap();
    assert!(field(&fields, "sec-websocket-extensions").is_some_and(|v| v.starts_with("permessage-deflate")));
    assert!(conn.compression().is_some());
    let (conn, fields) = Connection::upgraded(config, &request(&[]), Accept::new(), Instant::now()).unwrap();
    assert_eq!(field(&fields, "sec-websocket-extensions"), None);
    assert!(conn.compression().is_none());
}
