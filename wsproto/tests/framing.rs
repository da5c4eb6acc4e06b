//! Framing (RFC 6455 §5): the RFC examples, protocol violations and their close codes, masking, prepared frames, and any chunking or any bytes.

mod support;

use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use support::*;
use wsproto::frame::{FrameHeader, OpCode};
use wsproto::*;

#[test]
fn rfc_examples_through_the_server() {
    // Masked "Hello", fragmented "Hel"+"lo", masked ping "Hello" answered by an unmasked pong.
    let mut input = vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    input.extend(client_frame(0x01, b"Hel"));
    input.extend(client_frame(0x80, b"lo"));
    input.extend(client_frame(0x89, b"Hello"));
    let (events, frames) = run_both_ways(Config::default(), &input);
    assert_eq!(events, vec![text("Hello"), text("Hello"), Event::Ping(b"Hello".to_vec().into())]);
    assert_eq!(frames, vec![(OpCode::Pong, b"Hello".to_vec())]);
}

#[test]
fn rfc_length_examples_encode_byte_for_byte() {
    let now = Instant::now();
    for (len, header) in [(256usize, vec![0x82, 0x7E, 0x01, 0x00]), (65536, vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])] {
        let mut server = open_server(Config::default(), now);
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        server.send_binary(&payload).unwrap();
        let out = drain_output(&mut server);
        assert_eq!(&out[..header.len()], &header[..]);
        assert_eq!(&out[header.len()..], &payload[..]);
        // And the same payload sent as owned bytes, queued without a copy.
        server.send(Message::binary(payload.clone())).unwrap();
        assert_eq!(drain_output(&mut server), out);
        // Decoding: the client side receives it back whole.
        let (events, _) = run_both_ways(Config::default(), &client_frame(0x82, &payload));
        assert_eq!(events, vec![Event::Message(Message::binary(payload))]);
    }
}

#[test]
fn unmasked_server_hello_decodes_on_a_client() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.client.receive(pair.now, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(drain_events(&mut pair.client), vec![text("Hello")]);
}

#[test]
fn protocol_violations_answer_the_right_close_code() {
    let small = Config { max_frame_size: 1000, max_message_size: 1500, max_fragments: 3, ..Config::default() };
    let frag = |n: usize| -> Vec<u8> {
        let mut v = client_frame(0x02, b"a");
        for _ in 0..n {
            v.extend(client_frame(0x00, b"a"));
        }
        v
    };
    let long_len = {
        // A 127-form length of 2^40 that we must refuse from the header alone.
        let mut v = vec![0x82, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0];
        v.extend([1, 2, 3, 4]);
        v
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("reserved opcode 3", vec![0x83, 0x80, 0, 0, 0, 0], 1002),
        ("reserved opcode 0xB", vec![0x8B, 0x80, 0, 0, 0, 0], 1002),
        ("RSV1 without extension", client_frame(0xC1, b"x"), 1002),
        ("RSV2", client_frame(0xA1, b"x"), 1002),
        ("RSV3", client_frame(0x91, b"x"), 1002),
        ("unmasked client frame", vec![0x81, 0x01, b'x'], 1002),
        ("non-minimal 16-bit length", vec![0x82, 0xFE, 0, 5, 1, 2, 3, 4], 1002),
        ("length with top bit", vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], 1002),
        ("fragmented ping", client_frame(0x09, b"x"), 1002),
        ("ping over 125 bytes", client_frame(0x89, &[0; 126]), 1002),
        ("unexpected continuation", client_frame(0x80, b"x"), 1002),
        ("text while fragmented", [client_frame(0x01, b"a"), client_frame(0x81, b"b")].concat(), 1002),
        ("invalid UTF-8", client_frame(0x81, b"\xff"), 1007),
        ("UTF-8 ends mid code point", client_frame(0x81, b"\xce"), 1007),
        ("close with one byte", client_frame(0x88, &[3]), 1002),
        ("close code 1005", client_frame(0x88, &close_payload(1005, "")), 1002),
        ("close code 999", client_frame(0x88, &close_payload(999, "")), 1002),
        ("close code 5000", client_frame(0x88, &close_payload(5000, "")), 1002),
        ("close reason not UTF-8", client_frame(0x88, &[0x03, 0xe8, 0xff]), 1007),
        ("frame over max_frame_size", client_frame(0x82, &[0; 1001]), 1009),
        ("announced 2^40 bytes", long_len, 1009),
        (
            "message over max_message_size",
            [client_frame(0x02, &[0; 1000]), client_frame(0x80, &[0; 501])].concat(),
            1009,
        ),
        ("too many fragments", frag(3), 1009),
    ];
    for (name, input, code) in cases {
        let (events, frames) = run_both_ways(small.clone(), &input);
        let (got, cause) = closed_with(&events);
        assert_eq!(got, CloseCode(code), "{name}: {cause:?}");
        assert!(matches!(cause, CloseCause::Protocol(_)), "{name}");
        let close = frames.last().unwrap_or_else(|| panic!("{name}: no close frame sent"));
        assert_eq!(close.0, OpCode::Close, "{name}");
        assert_eq!(&close.1[..2], &code.to_be_bytes(), "{name}");
    }
}

#[test]
fn invalid_utf8_fails_fast_in_the_middle_of_a_frame() {
    let now = Instant::now();
    let mut server = open_server(Config::default(), now);
    let frame = client_frame(0x81, b"hello \xf4\x90 and much more that has not arrived");
    // Feed only up to the impossible byte: the frame is far from complete.
    server.receive(now, &frame[..6 + 8]);
    let events = drain_events(&mut server);
    assert_eq!(closed_with(&events).0, CloseCode::INVALID_PAYLOAD);
    // Also across fragments: the bad continuation fails before the message ends.
    let mut server = open_server(Config::default(), now);
    server.receive(now, &client_frame(0x01, b"ok \xf0\x9f"));
    assert!(drain_events(&mut server).is_empty());
    server.receive(now, &client_frame(0x00, b"\x28"));
    assert_eq!(closed_with(&drain_events(&mut server)).0, CloseCode::INVALID_PAYLOAD);
}

#[test]
fn client_frames_are_masked_with_fresh_keys() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.client.send_text("same").unwrap();
    pair.client.send_text("same").unwrap();
    let out = drain_output(&mut pair.client);
    let (h1, n1) = FrameHeader::parse(&out).unwrap().unwrap();
    let (h2, _) = FrameHeader::parse(&out[n1 + 4..]).unwrap().unwrap();
    assert!(h1.mask.is_some() && h2.mask.is_some());
    assert_ne!(h1.mask, h2.mask);
}

#[test]
fn prepared_frames_are_shared_and_work_for_both_roles() {
    let frame = PreparedFrame::text("to everyone");
    let mut a = Pair::new(Config::default(), Config::default());
    let mut b = Pair::new(Config::default(), Config::default());
    a.server.send_prepared(&frame).unwrap();
    b.server.send_prepared(&frame).unwrap();
    a.client.send_prepared(&frame).unwrap();
    a.run();
    b.run();
    assert_eq!(a.client_events, vec![text("to everyone")]);
    assert_eq!(b.client_events, vec![text("to everyone")]);
    assert_eq!(a.server_events, vec![text("to everyone")]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_chunking_gives_the_same_events(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40)) {
        let input = fixture_stream();
        let (expected, expected_frames) = run_server(Config::default(), &input, input.len());
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len())).collect();
        points.sort_unstable();
        let now = Instant::now();
        let mut server = open_server(Config::default(), now);
        let mut events = Vec::new();
        let mut at = 0;
        for p in points.into_iter().chain([input.len()]) {
            server.receive(now, &input[at..p]);
            events.extend(drain_events(&mut server));
            at = p;
        }
        prop_assert_eq!(&events, &expected);
        prop_assert_eq!(parse_server_frames(&drain_output(&mut server)), expected_frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_end_cleanly(
        data in proptest::collection::vec(any::<u8>(), 0..400),
        piece in 1usize..50,
    ) {
        let now = Instant::now();
        for with_handshake in [false, true] {
            let mut server = Connection::server(Arc::new(Config::default()), now);
            if with_handshake {
                server.receive(now, HANDSHAKE);
                let _ = server.poll_event();
                server.accept(Accept::new()).unwrap();
            }
            for chunk in data.chunks(piece) {
                server.receive(now, chunk);
            }
            let events = drain_events(&mut server);
            let closed = events.iter().filter(|e| matches!(e, Event::Closed(_))).count();
            prop_assert!(closed <= 1);
            if closed == 1 {
                prop_assert!(matches!(events.last(), Some(Event::Closed(_))));
            }
        }
    }
}
