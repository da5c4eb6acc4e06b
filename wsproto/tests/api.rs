//! The application API: misuse errors, backpressure, what a failed send hands back.

mod support;

use std::sync::Arc;
use std::time::Instant;

use support::*;
use wsproto::*;

#[test]
fn misuse_is_an_error_and_queues_nothing() {
    let mut pair = Pair::new(Config::default(), Config::default());
    assert_eq!(pair.client.ping(&[0; 126]), Err(UsageError::ControlTooLong(126)));
    assert_eq!(pair.client.close(CloseCode(1005), ""), Err(UsageError::InvalidCloseCode(1005)));
    assert_eq!(pair.client.close(CloseCode::NORMAL, &"x".repeat(124)), Err(UsageError::ControlTooLong(126)));
    assert_eq!(pair.client.send_fragment(MessageKind::Text, b"\xff", true), Err(UsageError::InvalidUtf8.into()));
    assert_eq!(pair.client.send_fragment(MessageKind::Text, b"\xce", true), Err(UsageError::InvalidUtf8.into()));
    pair.client.send_fragment(MessageKind::Binary, b"a", false).unwrap();
    assert_eq!(pair.client.send_fragment(MessageKind::Text, b"b", true), Err(UsageError::FragmentInProgress.into()));
    pair.client.send_fragment(MessageKind::Binary, b"b", true).unwrap();
    pair.client.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(pair.client.send_text("late"), Err(UsageError::Closed.into()));
    assert_eq!(pair.client.close(CloseCode::NORMAL, ""), Err(UsageError::Closed));
    let now = Instant::now();
    let mut fresh = Connection::server(Arc::new(Config::default()), now);
    assert_eq!(fresh.send_text("early"), Err(UsageError::NotOpen.into()));
    assert_eq!(fresh.queued_bytes(), 0);
}

#[test]
fn backpressure_refuses_data_past_the_queue_limit() {
    let config = Config { max_queued_bytes: 1000, ..Config::default() };
    let now = Instant::now();
    let mut server = open_server(config, now);
    server.send_binary(&[0; 600]).unwrap();
    assert_eq!(server.send_binary(&[0; 600]), Err(SendError::QueueFull { queued: 604, limit: 1000 }));
    server.ping(b"control frames still go").unwrap();
    drain_output(&mut server);
    // An empty queue takes any one message, however large.
    server.send_binary(&[0; 5000]).unwrap();
}

#[test]
fn a_refused_send_hands_the_message_back() {
    let config = Config { max_queued_bytes: 1000, ..Config::default() };
    let now = Instant::now();
    let mut server = open_server(config, now);
    server.send(Message::binary(vec![1; 600])).unwrap();
    let refused = server.send(Message::binary(vec![2; 600])).unwrap_err();
    assert_eq!(refused.error, SendError::QueueFull { queued: 604, limit: 1000 });
    assert_eq!(refused.into_message(), Message::binary(vec![2; 600]));
    let mut fresh = Connection::server(Arc::new(Config::default()), now);
    let refused = fresh.send_uncompressed("early".into()).unwrap_err();
    assert_eq!(refused.error, SendError::Usage(UsageError::NotOpen));
    assert_eq!(refused.message.as_text(), Some("early"));
}

#[test]
fn misuse_is_apart_from_backpressure() {
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(Config::default()), now);
    assert_eq!(server.accept(Accept::new()), Err(UsageError::NoPendingRequest));
    assert_eq!(server.ping(b""), Err(UsageError::NotOpen));
    server.receive(now, HANDSHAKE);
    let _ = drain_events(&mut server);
    assert_eq!(server.accept(Accept::new().header("Bad Name", "x")), Err(UsageError::InvalidHeader("Bad Name".into())));
    server.accept(Accept::new()).unwrap();
    assert_eq!(server.accept(Accept::new()), Err(UsageError::NoPendingRequest), "accepting twice");
    server.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(server.send_text("after close"), Err(SendError::Usage(UsageError::Closed)));
}

#[test]
fn messages_convert_and_read_as_text() {
    assert_eq!(Message::from("hi"), Message::Text("hi".into()));
    assert_eq!(Message::from(String::from("hi")), Message::Text("hi".into()));
    assert_eq!(Message::from(vec![1u8, 2]), Message::binary(vec![1, 2]));
    assert_eq!(Message::from(&[1u8, 2][..]), Message::binary(vec![1, 2]));
    assert_eq!(Message::from(bytes::Bytes::from_static(b"\x01")), Message::binary(vec![1]));
    assert_eq!(Message::from("hi").as_text(), Some("hi"));
    assert_eq!(Message::from(vec![1u8]).as_text(), None);
    assert_eq!(Message::from("hi").into_text().map(String::from), Ok("hi".to_owned()));
    assert_eq!(Message::from(vec![1u8]).into_text(), Err(Message::binary(vec![1])));
}

#[test]
fn wants_write_follows_the_queue() {
    let now = Instant::now();
    let mut server = open_server(Config::default(), now);
    assert!(!server.wants_write());
    server.send_text("x").unwrap();
    assert!(server.wants_write());
    drain_output(&mut server);
    assert!(!server.wants_write());
}

#[test]
fn wire_len_is_what_send_prepared_queues() {
    let frame = PreparedFrame::text(&"a prepared frame ".repeat(20));
    let mut pair = Pair::new(Config::default(), Config::default());
    for conn in [&mut pair.server, &mut pair.client] {
        let before = conn.queued_bytes();
        let expected = conn.wire_len(&frame);
        conn.send_prepared(&frame).unwrap();
        assert_eq!(conn.queued_bytes() - before, expected);
    }
    // A client masks: four bytes more than the server's shared encoding.
    assert_eq!(pair.client.wire_len(&frame), frame.uncompressed_len() + 4);
}
