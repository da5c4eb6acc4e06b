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
