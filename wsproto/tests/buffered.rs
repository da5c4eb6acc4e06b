//! Buffered input ([`Connection::receive_buf`]): whole frames split off the caller's read
//! buffer without a copy, unfinished small frames left in it, and the same events as from a
//! slice whatever the chunking.

mod support;

use std::ops::Range;
use std::time::Instant;

use proptest::prelude::*;
use support::*;
use wsproto::bytes::BytesMut;
use wsproto::frame::MAX_HEADER_LEN;
use wsproto::*;

/// The addresses `bytes` occupies.
fn addresses(bytes: &[u8]) -> Range<usize> {
    let range = bytes.as_ptr_range();
    range.start as usize..range.end as usize
}

fn within(inner: &[u8], outer: &Range<usize>) -> bool {
    let inner = addresses(inner);
    outer.start <= inner.start && inner.end <= outer.end
}

#[test]
fn whole_frames_share_the_read_buffer() {
    let now = Instant::now();
    let mut server = open_server(Config::default(), now);
    let input = [client_frame(0x81, "grüße".as_bytes()), client_frame(0x82, &[7; 300])].concat();
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(&input);
    let read_buffer = addresses(&buf);
    server.receive_buf(now, &mut buf);
    assert!(buf.is_empty());
    let events = drain_events(&mut server);
    let [Event::Message(Message::Text(text)), Event::Message(Message::Binary(binary))] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(text, "grüße");
    assert_eq!(&binary[..], &[7; 300]);
    assert!(within(text.as_bytes(), &read_buffer), "the text was copied");
    assert!(within(binary, &read_buffer), "the binary payload was copied");
}

#[test]
fn a_reused_read_buffer_gets_its_space_back_once_messages_are_dropped() {
    let now = Instant::now();
    let mut server = open_server(Config::default(), now);
    let frame = client_frame(0x82, &[1; 1000]);
    let mut buf = BytesMut::with_capacity(8192);
    let start = buf.as_ptr() as usize;
    for _ in 0..100 {
        buf.reserve(8192);
        assert_eq!(buf.as_ptr() as usize, start, "the buffer's space was not reclaimed");
        buf.extend_from_slice(&frame);
        buf.extend_from_slice(&frame);
        server.receive_buf(now, &mut buf);
        assert_eq!(drain_events(&mut server).len(), 2);
    }
}

/// A call with nothing appended to the unfinished frame the last call left is no news from
/// the peer: a silent peer is still reaped at the keep-alive deadline (found by fuzzing: the
/// leftover counted as a sign of life every time, so the pong deadline moved on for ever).
#[test]
fn bytes_left_in_the_buffer_are_no_sign_of_life() {
    let start = Instant::now();
    let mut server = open_server(keep_alive(), start);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&client_frame(0x82, &[3; 100])[..10]);
    server.receive_buf(start, &mut buf);
    assert_eq!(buf.len(), 10);
    let ping_at = server.poll_timeout().expect("the idle deadline");
    server.handle_timeout(ping_at);
    assert!(!drain_output(&mut server).is_empty(), "the keep-alive ping");
    let deadline = server.poll_timeout().expect("the pong deadline");
    // The driver reads nothing new but hands the buffer over again, as a loop may.
    server.receive_buf(deadline - std::time::Duration::from_secs(1), &mut buf);
    assert_eq!(buf.len(), 10);
    assert_eq!(server.poll_timeout(), Some(deadline), "the pong deadline moved");
    server.handle_timeout(deadline);
    let closed = drain_events(&mut server).into_iter().find_map(|e| e.closed().cloned()).expect("closed");
    assert_eq!(closed.cause, CloseCause::KeepAliveTimeout);

    // Bytes appended are news: the rest of the frame arrives in time and counts.
    let mut server = open_server(keep_alive(), start);
    let frame = client_frame(0x82, &[3; 100]);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&frame[..10]);
    server.receive_buf(start, &mut buf);
    let ping_at = server.poll_timeout().unwrap();
    server.handle_timeout(ping_at);
    drain_output(&mut server);
    let deadline = server.poll_timeout().unwrap();
    buf.extend_from_slice(&frame[10..]);
    server.receive_buf(deadline - std::time::Duration::from_secs(1), &mut buf);
    assert!(buf.is_empty());
    assert!(server.poll_timeout().unwrap() > deadline, "data from the peer is a sign of life");
    assert_eq!(drain_events(&mut server), vec![Event::Message(Message::binary(vec![3; 100]))]);
}

#[test]
fn an_unfinished_small_frame_waits_in_the_buffer_and_a_large_one_does_not() {
    let now = Instant::now();
    let mut server = open_server(Config::default(), now);
    let small = client_frame(0x82, &[3; 1000]);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&small[..600]);
    server.receive_buf(now, &mut buf);
    assert_eq!(buf.len(), 600, "the start of a small frame stays for the next read");
    assert!(drain_events(&mut server).is_empty());
    buf.extend_from_slice(&small[600..]);
    server.receive_buf(now, &mut buf);
    assert!(buf.is_empty());
    assert_eq!(drain_events(&mut server), vec![Event::Message(Message::binary(vec![3; 1000]))]);

    // A frame over MAX_BUFFERED_FRAME is taken piece by piece: the buffer never holds it whole.
    let large = client_frame(0x82, &vec![5; 3 * MAX_BUFFERED_FRAME]);
    for piece in large.chunks(10_000) {
        buf.extend_from_slice(piece);
        server.receive_buf(now, &mut buf);
        assert!(buf.len() <= MAX_HEADER_LEN, "{} bytes left", buf.len());
    }
    assert_eq!(drain_events(&mut server), vec![Event::Message(Message::binary(vec![5; 3 * MAX_BUFFERED_FRAME]))]);
}

#[test]
fn errors_in_whole_frames_get_the_rfc_close_codes() {
    let cases = [
        (client_frame(0x81, b"ok \xff"), CloseCode::INVALID_PAYLOAD),
        // Unmasked, from a client.
        ([&[0x82u8, 0x02][..], b"hi"].concat(), CloseCode::PROTOCOL_ERROR),
        (client_frame(0x92, b"rsv"), CloseCode::PROTOCOL_ERROR),
    ];
    for (frame, code) in cases {
        let input = [client_frame(0x81, b"before"), frame, client_frame(0x81, b"after")].concat();
        let (events, _) = run_server_buffered(Config::default(), &input, input.len());
        assert_eq!(events[0], text("before"));
        assert_eq!(closed_with(&events).0, code, "{events:?}");
        assert_eq!(events.len(), 2, "nothing after the error: {events:?}");
    }
    // A frame over the limit fails at its header, before its payload arrives.
    let config = Config { max_frame_size: 100, ..Config::default() };
    let frame = client_frame(0x82, &[0; 101]);
    let (events, _) = run_server_buffered(config, &frame[..10], 10);
    assert_eq!(closed_with(&events).0, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn fixtures_agree_between_slices_and_buffers() {
    // `run_both_ways` feeds every fixture through both paths, whole and byte by byte.
    let input = fixture_stream();
    let (events, _) = run_both_ways(Config::default(), &input);
    assert!(!events.is_empty());
}

#[cfg(feature = "deflate")]
#[test]
fn compressed_messages_through_a_buffer() {
    let config = Config { deflate: Some(DeflateConfig::default()), ..Config::default() };
    for piece in [1, 100, usize::MAX] {
        let mut pair = Pair::with_piece(config.clone(), config.clone(), piece).buffered();
        let text = "squeeze me, squeeze me, squeeze me. ".repeat(200);
        pair.client.send_text(&text).unwrap();
        pair.client.send_text("plain").unwrap();
        pair.server.send_text(&text).unwrap();
        pair.run();
        assert_eq!(pair.server_events, vec![support::text(&text), support::text("plain")]);
        assert_eq!(pair.client_events, vec![support::text(&text)]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_chunking_through_a_buffer_gives_the_same_events(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let input = fixture_stream();
        let expected = run_server(Config::default(), &input, input.len());
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len())).collect();
        points.sort_unstable();
        let now = Instant::now();
        let mut server = open_server(Config::default(), now);
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        let mut at = 0;
        for p in points.into_iter().chain([input.len()]) {
            buf.extend_from_slice(&input[at..p]);
            server.receive_buf(now, &mut buf);
            events.extend(drain_events(&mut server));
            at = p;
        }
        prop_assert_eq!(&events, &expected.0);
        prop_assert_eq!(parse_server_frames(&drain_output(&mut server)), expected.1);
    }
}
