//! Messages and fragmentation (RFC 6455 §5.4, §5.6), control frames between fragments (§5.5), streaming mode.

mod support;

use std::time::Instant;

use support::*;
use wsproto::bytes::Bytes;
use wsproto::frame::OpCode;
use wsproto::*;

#[test]
fn control_frames_between_fragments_and_messages_before_an_error_are_kept() {
    let input = [
        client_frame(0x82, b"kept"),
        client_frame(0x01, b"fra"),
        client_frame(0x89, b"p"),
        client_frame(0x8A, b"q"),
        client_frame(0x80, b"gment"),
        vec![0x83, 0x80, 0, 0, 0, 0],
    ]
    .concat();
    let (events, frames) = run_both_ways(Config::default(), &input);
    assert_eq!(
        &events[..4],
        &[
            Event::Message(Message::binary(b"kept".to_vec())),
            Event::Ping(b"p".to_vec().into()),
            Event::Pong(b"q".to_vec().into()),
            text("fragment"),
        ]
    );
    assert_eq!(closed_with(&events).0, CloseCode::PROTOCOL_ERROR);
    assert_eq!(frames[0], (OpCode::Pong, b"p".to_vec()));
}

#[test]
fn empty_messages_and_empty_fragments() {
    let input = [
        client_frame(0x81, b""),
        client_frame(0x02, b""),
        client_frame(0x00, b""),
        client_frame(0x80, b""),
        client_frame(0x01, "κό".as_bytes()),
        client_frame(0x00, b""),
        client_frame(0x80, "σμε".as_bytes()),
    ]
    .concat();
    let (events, _) = run_both_ways(Config::default(), &input);
    assert_eq!(events, vec![text(""), Event::Message(Message::binary(vec![])), text("κόσμε")]);
}

#[test]
fn streaming_mode_reports_chunks_as_they_arrive() {
    let config = Config { receive_mode: ReceiveMode::Streaming, ..Config::default() };
    let now = Instant::now();
    let mut server = open_server(config.clone(), now);
    let first = client_frame(0x01, b"abcdef");
    server.receive(now, &first[..9]);
    assert_eq!(
        drain_events(&mut server),
        vec![Event::Chunk { kind: MessageKind::Text, data: b"abc".to_vec().into(), first: true, last: false }]
    );
    server.receive(now, &first[9..]);
    server.receive(now, &client_frame(0x80, b""));
    let events = drain_events(&mut server);
    assert_eq!(
        events,
        vec![
            Event::Chunk { kind: MessageKind::Text, data: b"def".to_vec().into(), first: false, last: false },
            Event::Chunk { kind: MessageKind::Text, data: Bytes::new(), first: false, last: true },
        ]
    );
    // The concatenated chunks are the same whatever the chunking.
    let input = [client_frame(0x02, b"12345"), client_frame(0x80, b"678")].concat();
    for piece in [1, 2, 3, input.len()] {
        let (events, _) = run_server(config.clone(), &input, piece);
        let data: Vec<u8> = events
            .iter()
            .flat_map(|e| match e {
                Event::Chunk { data, .. } => data.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(data, b"12345678");
        assert!(matches!(events.last(), Some(Event::Chunk { last: true, .. })));
        assert!(matches!(events.first(), Some(Event::Chunk { first: true, .. })));
    }
}

#[test]
fn messages_both_ways_over_any_chunking() {
    for piece in [1, 2, 3, 5, 64, usize::MAX] {
        let mut pair = Pair::with_piece(Config::default(), Config::default(), piece);
        assert_eq!(pair.server.subprotocol(), None);
        pair.client.send_text("hello server").unwrap();
        pair.client.send_binary(&[0, 1, 2, 255]).unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        pair.client.send(Message::binary(big.clone())).unwrap();
        pair.server.send_text("hello client").unwrap();
        pair.server.send(Message::text("κόσμε".repeat(5000))).unwrap();
        pair.client.send_fragment(MessageKind::Text, "κ".as_bytes(), false).unwrap();
        assert_eq!(pair.client.send_text("interleaved"), Err(UsageError::FragmentInProgress.into()));
        pair.client.ping(b"mid").unwrap();
        pair.client.send_fragment(MessageKind::Text, "όσμε".as_bytes(), true).unwrap();
        pair.run();
        assert_eq!(
            pair.server_events,
            vec![
                text("hello server"),
                Event::Message(Message::binary(vec![0, 1, 2, 255])),
                Event::Message(Message::binary(big.clone())),
                Event::Ping(b"mid".to_vec().into()),
                text("κόσμε"),
            ]
        );
        assert_eq!(
            pair.client_events,
            vec![text("hello client"), text(&"κόσμε".repeat(5000)), Event::Pong(b"mid".to_vec().into())]
        );
    }
}

#[test]
fn auto_pong_can_be_switched_off() {
    let config = Config { auto_pong: false, ..Config::default() };
    let (events, frames) = run_both_ways(config, &client_frame(0x89, b"x"));
    assert_eq!(events, vec![Event::Ping(b"x".to_vec().into())]);
    assert!(frames.is_empty());
}
