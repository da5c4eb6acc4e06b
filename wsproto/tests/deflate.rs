//! permessage-deflate (RFC 7692) through the connection.

#![cfg(feature = "deflate")]

mod support;

use std::sync::Arc;
use std::time::Instant;

use support::*;
use wsproto::frame::FrameHeader;
use wsproto::*;

fn with_deflate(deflate: DeflateConfig) -> Config {
    Config { deflate: Some(deflate), max_message_size: 1 << 20, ..Config::default() }
}

fn pair(client: DeflateConfig, server: DeflateConfig) -> Pair {
    Pair::new(with_deflate(client), with_deflate(server))
}

#[test]
fn negotiated_both_ways_and_messages_round_trip() {
    for (piece, buffered) in [1, 7, usize::MAX].into_iter().flat_map(|piece| [(piece, false), (piece, true)]) {
        let mut pair =
            Pair::with_piece(with_deflate(DeflateConfig::default()), with_deflate(DeflateConfig::default()), piece);
        if buffered {
            pair = pair.buffered();
        }
        let params = pair.server.compression().expect("server agreed");
        assert_eq!(pair.client.compression(), Some(params));
        let text = "a text that repeats itself, repeats itself, repeats itself. ".repeat(50);
        let binary: Vec<u8> = (0..50_000u32).map(|i| (i % 7) as u8).collect();
        for _ in 0..3 {
            pair.client.send_text(&text).unwrap();
            pair.server.send(Message::binary(binary.clone())).unwrap();
        }
        pair.client.send_text("short").unwrap();
        pair.run();
        assert_eq!(pair.server_events, [text.as_str(), text.as_str(), text.as_str(), "short"].map(support::text));
        assert_eq!(pair.client_events, vec![Event::Message(Message::binary(binary.clone())); 3]);
    }
}

#[test]
fn compressed_frames_carry_rsv1_on_the_first_frame_only_and_shrink() {
    let mut pair = pair(DeflateConfig::default(), DeflateConfig::default());
    let text = "hello hello hello hello hello hello hello hello hello hello";
    pair.server.send_text(text).unwrap();
    let out = drain_output(&mut pair.server);
    let (header, len) = FrameHeader::parse(&out).unwrap().unwrap();
    assert_eq!(header.rsv, 0b100);
    assert!((header.payload_len as usize) < text.len() / 2);
    pair.client.receive(pair.now, &out);
    assert_eq!(drain_events(&mut pair.client), vec![support::text(text)]);
    // Below min_size a message goes uncompressed.
    pair.server.send_text("tiny").unwrap();
    let out = drain_output(&mut pair.server);
    assert_eq!(FrameHeader::parse(&out).unwrap().unwrap().0.rsv, 0);
    // Fragmented sends go uncompressed.
    pair.server.send_fragment(MessageKind::Text, text.as_bytes(), false).unwrap();
    let out = drain_output(&mut pair.server);
    assert_eq!(FrameHeader::parse(&out).unwrap().unwrap().0.rsv, 0);
    assert!(len > 0);
}

#[test]
fn a_message_sent_uncompressed_leaves_the_context_in_step() {
    // With context takeover, a message skipped by the compressor must not enter its
    // context either: the next compressed message still inflates at the peer.
    let mut pair = pair(DeflateConfig::default(), DeflateConfig::default());
    let text = "a line that the next message repeats, a line that the next message repeats";
    pair.server.send_text(text).unwrap();
    pair.server.send_uncompressed(Message::text(text.to_owned())).unwrap();
    let out = drain_output(&mut pair.server);
    let (first, len) = FrameHeader::parse(&out).unwrap().unwrap();
    let (second, _) = FrameHeader::parse(&out[len + first.payload_len as usize..]).unwrap().unwrap();
    assert_eq!((first.rsv, second.rsv), (0b100, 0));
    assert_eq!(second.payload_len as usize, text.len());
    pair.client.receive(pair.now, &out);
    pair.server.send_text(text).unwrap();
    let out = drain_output(&mut pair.server);
    pair.client.receive(pair.now, &out);
    assert_eq!(drain_events(&mut pair.client), vec![support::text(text); 3]);
}

#[test]
fn rfc_7692_hello_frames_decode_with_and_without_context_takeover() {
    // §7.2.3.1 and §7.2.3.2: "Hello" twice with the context kept, as a server sends them.
    let mut pair = pair(DeflateConfig::default(), DeflateConfig::default());
    pair.client.receive(pair.now, &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    pair.client.receive(pair.now, &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    assert_eq!(drain_events(&mut pair.client), vec![support::text("Hello"), support::text("Hello")]);
    // §7.2.3.3: a message of one compressed frame split over two frames, RSV1 on the first.
    pair.client.receive(pair.now, &[0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(drain_events(&mut pair.client), vec![support::text("Hello")]);
    // Our own encoding of "Hello" is the RFC's, byte for byte.
    let config = DeflateConfig { min_size: 0, ..DeflateConfig::default() };
    let mut pair = self::pair(config.clone(), config);
    pair.server.send_text("Hello").unwrap();
    assert_eq!(drain_output(&mut pair.server), [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
}

#[test]
fn no_context_takeover_and_window_bits_are_honoured() {
    let client =
        DeflateConfig { server_no_context_takeover: true, server_max_window_bits: 9, ..DeflateConfig::default() };
    let server =
        DeflateConfig { client_no_context_takeover: true, client_max_window_bits: 10, ..DeflateConfig::default() };
    let mut pair = pair(client, server);
    let params = pair.server.compression().unwrap();
    assert_eq!((params.server_no_context_takeover, params.client_no_context_takeover), (true, true),);
    assert_eq!((params.server_max_window_bits, params.client_max_window_bits), (9, 10));
    let text = "no context takeover means the same bytes every time. ".repeat(20);
    pair.server.send_text(&text).unwrap();
    let first = drain_output(&mut pair.server);
    pair.server.send_text(&text).unwrap();
    let second = drain_output(&mut pair.server);
    assert_eq!(first, second, "a fresh context each message");
    pair.client.receive(pair.now, &first);
    pair.client.receive(pair.now, &second);
    pair.client.send_text(&text).unwrap();
    pair.client.send_text(&text).unwrap();
    pair.run();
    assert_eq!(pair.client_events, vec![support::text(&text), support::text(&text)]);
    assert_eq!(pair.server_events, vec![support::text(&text), support::text(&text)]);
}

#[test]
fn a_prepared_frame_is_compressed_once_for_every_context_free_peer() {
    let server = DeflateConfig { server_no_context_takeover: true, ..DeflateConfig::default() };
    let mut a = pair(DeflateConfig::default(), server.clone());
    let mut b = pair(DeflateConfig::default(), server);
    let text = "broadcast, broadcast, broadcast, broadcast, broadcast!".repeat(10);
    let frame = PreparedFrame::text(&text);
    a.server.send_prepared(&frame).unwrap();
    b.server.send_prepared(&frame).unwrap();
    let (out_a, out_b) = (drain_output(&mut a.server), drain_output(&mut b.server));
    assert_eq!(out_a, out_b);
    assert_eq!(FrameHeader::parse(&out_a).unwrap().unwrap().0.rsv, 0b100);
    assert!(out_a.len() < text.len() / 4);
    a.client.receive(a.now, &out_a);
    assert_eq!(drain_events(&mut a.client), vec![support::text(&text)]);
    // With the context kept, the frame goes through the connection's own context instead.
    let mut kept = pair(DeflateConfig::default(), DeflateConfig::default());
    kept.server.send_prepared(&frame).unwrap();
    kept.server.send_prepared(&frame).unwrap();
    kept.run();
    assert_eq!(kept.client_events, vec![support::text(&text), support::text(&text)]);
}

#[test]
fn a_deflate_bomb_closes_with_1009_before_it_inflates() {
    let config = Config { max_message_size: 64 << 10, ..with_deflate(DeflateConfig::default()) };
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(config), now);
    let head = String::from_utf8_lossy(HANDSHAKE)
        .replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
    server.receive(now, head.as_bytes());
    let _ = server.poll_event();
    server.accept(Accept::new()).unwrap();
    drain_output(&mut server);
    // 4 MiB of zeros deflate to about 4 KiB: a small frame that would inflate a thousandfold.
    let mut compress = flate2::Compress::new(flate2::Compression::best(), false);
    let mut bomb = Vec::with_capacity(64 << 10);
    compress.compress_vec(&vec![0u8; 4 << 20], &mut bomb, flate2::FlushCompress::Sync).unwrap();
    assert!(bomb.len() < 64 << 10);
    server.receive(now, &client_frame(0xC2, &bomb[..bomb.len() - 4]));
    let events = drain_events(&mut server);
    assert_eq!(closed_with(&events).0, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn compression_errors_close_with_the_right_codes() {
    let now = Instant::now();
    let open = || {
        let mut server = Connection::server(Arc::new(with_deflate(DeflateConfig::default())), now);
        let head = String::from_utf8_lossy(HANDSHAKE)
            .replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
        server.receive(now, head.as_bytes());
        let _ = server.poll_event();
        server.accept(Accept::new()).unwrap();
        assert!(String::from_utf8(drain_output(&mut server)).unwrap().contains("permessage-deflate"));
        server
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("RSV1 on a continuation", [client_frame(0x01, b"a"), client_frame(0xC0, b"b")].concat(), 1002),
        ("RSV1 on a ping", client_frame(0xC9, b""), 1002),
        ("RSV2 with deflate", client_frame(0xA1, b"x"), 1002),
        ("garbage that does not inflate", client_frame(0xC1, &[0xff, 0xff, 0xff]), 1007),
        ("inflates to invalid UTF-8", client_frame(0xC1, &deflated(b"ok \xff\xfe")), 1007),
    ];
    for (name, input, code) in cases {
        for piece in [1, input.len()] {
            let mut server = open();
            for chunk in input.chunks(piece) {
                server.receive(now, chunk);
            }
            assert_eq!(closed_with(&drain_events(&mut server)).0, CloseCode(code), "{name}");
        }
    }
}

/// `data` deflated as a fresh context compresses a whole message (RFC 7692 §7.2.1; window 15,
/// level 6): the payload of the first compressed frame a new server sends.
fn deflated(data: &[u8]) -> Vec<u8> {
    let deflate = DeflateConfig { min_size: 0, ..DeflateConfig::default() };
    let mut pair = pair(deflate.clone(), deflate);
    pair.server.send_binary(data).unwrap();
    let out = drain_output(&mut pair.server);
    let (header, len) = FrameHeader::parse(&out).unwrap().expect("a whole frame");
    assert_eq!(header.rsv, wsproto::frame::RSV1);
    out[len..].to_vec()
}

#[test]
fn a_client_refuses_parameters_it_did_not_offer() {
    let now = Instant::now();
    for response_extensions in [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate, permessage-deflate",
        "permessage-deflate; client_max_window_bits=8",
        "permessage-deflate; mystery",
    ] {
        let mut client = Connection::client_with_rng(
            Arc::new(with_deflate(DeflateConfig::default())),
            OutgoingRequest::new("x", "/"),
            now,
            Box::new(CountingRng(3)),
        )
        .unwrap();
        let request = String::from_utf8(drain_output(&mut client)).unwrap();
        assert!(request.contains("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"));
        let key = request.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: {response_extensions}\r\n\r\n",
            accept_key(key.as_bytes())
        );
        client.receive(now, response.as_bytes());
        let (_, cause) = closed_with(&drain_events(&mut client));
        assert!(matches!(cause, CloseCause::Handshake(_)), "{response_extensions}: {cause:?}");
    }
}

#[test]
fn wire_len_is_the_compressed_size_where_it_will_be_compressed() {
    let context_free = DeflateConfig { server_no_context_takeover: true, ..DeflateConfig::default() };
    let mut pair = pair(context_free.clone(), context_free);
    let frame = PreparedFrame::text(&"compress me please ".repeat(50));
    let expected = pair.server.wire_len(&frame);
    assert!(expected < frame.uncompressed_len() / 4, "{expected} is the compressed size");
    pair.server.send_prepared(&frame).unwrap();
    assert_eq!(pair.server.queued_bytes(), expected);
}

#[test]
fn without_context_takeover_connections_borrow_states_from_the_pool_per_message() {
    let no_takeover = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        pool: DeflatePool::new(4),
        ..DeflateConfig::default()
    };
    let server_pool = no_takeover.pool.clone();
    let client_config = DeflateConfig { pool: DeflatePool::new(4), ..no_takeover.clone() };
    let client_pool = client_config.pool.clone();
    let text = "borrowed, used, given back; borrowed, used, given back. ".repeat(20);
    // Ten connections one after the other, all from the same configs: each message borrows a
    // state and gives it back, so one of each kind serves them all.
    let mut pairs = Vec::new();
    for _ in 0..10 {
        let mut pair = Pair::new(with_deflate(client_config.clone()), with_deflate(no_takeover.clone()));
        for _ in 0..3 {
            pair.client.send_text(&text).unwrap();
            pair.server.send_text(&text).unwrap();
        }
        pair.run();
        assert_eq!(pair.server_events, vec![support::text(&text); 3]);
        assert_eq!(pair.client_events, vec![support::text(&text); 3]);
        // Between messages the connections hold nothing: every state is back in its pool.
        assert_eq!(server_pool.idle(), (1, 1));
        assert_eq!(client_pool.idle(), (1, 1));
        pairs.push(pair);
    }
    // A state another connection used compresses exactly like a fresh one (it was reset).
    let mut fresh = Pair::new(
        with_deflate(DeflateConfig { pool: DeflatePool::new(4), ..client_config.clone() }),
        with_deflate(DeflateConfig { pool: DeflatePool::new(4), ..no_takeover.clone() }),
    );
    fresh.server.send_text(&text).unwrap();
    pairs[9].server.send_text(&text).unwrap();
    assert_eq!(drain_output(&mut fresh.server), drain_output(&mut pairs[9].server));
}

#[test]
fn the_pool_keeps_at_most_max_idle_states() {
    let config = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        pool: DeflatePool::new(2),
        ..DeflateConfig::default()
    };
    let pool = config.pool.clone();
    let text = "several inflating at once ".repeat(20);
    let mut pairs: Vec<Pair> =
        (0..5).map(|_| Pair::new(with_deflate(DeflateConfig::default()), with_deflate(config.clone()))).collect();
    // Five messages in progress at once on the server side: five inflaters borrowed.
    let mut wires = Vec::new();
    for pair in &mut pairs {
        pair.client.send_text(&text).unwrap();
        wires.push(drain_output(&mut pair.client));
    }
    for (pair, wire) in pairs.iter_mut().zip(&wires) {
        pair.server.receive(pair.now, &wire[..wire.len() - 3]);
    }
    assert_eq!(pool.idle().1, 0, "each message in progress holds its inflater");
    for (pair, wire) in pairs.iter_mut().zip(&wires) {
        pair.server.receive(pair.now, &wire[wire.len() - 3..]);
        assert_eq!(drain_events(&mut pair.server), vec![support::text(&text)]);
    }
    assert_eq!(pool.idle().1, 2, "given back, but only max_idle kept");
}
