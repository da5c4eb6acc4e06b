//! Connection tests: a server fed raw client bytes, and a client/server pair over an in-memory
//! link with a fake clock. Every fixture runs whole and one byte at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::frame::{apply_mask, FrameHeader, OpCode};
use crate::*;

const HANDSHAKE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Deterministic "randomness" for client keys and masks.
struct CountingRng(u8);

impl RandomSource for CountingRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(31).wrapping_add(17);
            *b = self.0;
        }
    }
}

/// A frame as a client sends it (masked with a fixed key), with full control of every bit.
fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let fin = first_byte & 0x80 != 0;
    let rsv = (first_byte >> 4) & 7;
    let opcode = OpCode::from_u8(first_byte & 0x0F).expect("test uses valid opcodes");
    let header = FrameHeader { fin, rsv, opcode, mask: Some(key), payload_len: payload.len() as u64 };
    let mut out = Vec::new();
    header.encode(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out
}

fn text(s: &str) -> Event {
    Event::Message(Message::Text(s.into()))
}

fn drain_events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn drain_output(conn: &mut Connection) -> Vec<u8> {
    let out = conn.outgoing_front().to_vec();
    conn.advance_outgoing(out.len());
    if conn.queued_bytes() > 0 {
        let mut rest = drain_output(conn);
        let mut all = out;
        all.append(&mut rest);
        return all;
    }
    out
}

/// Splits server output into (opcode, payload) frames; panics on anything a server must not send.
fn parse_server_frames(mut bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (header, len) = FrameHeader::parse(bytes).unwrap().expect("whole frames");
        assert!(header.mask.is_none(), "server frames are never masked");
        let end = len + header.payload_len as usize;
        frames.push((header.opcode, bytes[len..end].to_vec()));
        bytes = &bytes[end..];
    }
    frames
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// An accepted server that has written its 101.
fn open_server(config: Config, now: Instant) -> Connection {
    let mut server = Connection::server(Arc::new(config), now);
    server.receive(now, HANDSHAKE);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::new()).unwrap();
    let head = drain_output(&mut server);
    assert!(head.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    server
}

/// Feeds `input` to a fresh open server in pieces of `piece` bytes; answers its events and the
/// frames it sent.
fn run_server(config: Config, input: &[u8], piece: usize) -> (Vec<Event>, Vec<(OpCode, Vec<u8>)>) {
    let now = Instant::now();
    let mut server = open_server(config, now);
    let mut events = Vec::new();
    let mut output = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        server.receive(now, chunk);
        events.extend(drain_events(&mut server));
        // As an adapter does after every write that empties the queue.
        output.extend(drain_output(&mut server));
        server.release_buffers();
    }
    (events, parse_server_frames(&output))
}

/// Runs a fixture whole and one byte at a time and checks both give the same events and output.
fn run_both_ways(config: Config, input: &[u8]) -> (Vec<Event>, Vec<(OpCode, Vec<u8>)>) {
    let whole = run_server(config.clone(), input, input.len());
    let bytewise = run_server(config, input, 1);
    assert_eq!(whole, bytewise, "fed whole vs one byte at a time");
    whole
}

fn closed_with(events: &[Event]) -> (CloseCode, CloseCause) {
    match events.last() {
        Some(Event::Closed(closed)) => (closed.code, closed.cause.clone()),
        other => panic!("expected Closed last, got {other:?}"),
    }
}

// ---- RFC 6455 §5.7 examples through the connection ----

#[test]
fn rfc_examples_through_the_server() {
    // Masked "Hello", fragmented "Hel"+"lo", masked ping "Hello" answered by an unmasked pong.
    let mut input = vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    input.extend(client_frame(0x01, b"Hel"));
    input.extend(client_frame(0x80, b"lo"));
    input.extend(client_frame(0x89, b"Hello"));
    let (events, frames) = run_both_ways(Config::default(), &input);
    assert_eq!(events, vec![text("Hello"), text("Hello"), Event::Ping(b"Hello".to_vec())]);
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
        server.send(Message::Binary(payload.clone())).unwrap();
        assert_eq!(drain_output(&mut server), out);
        // Decoding: the client side receives it back whole.
        let (events, _) = run_both_ways(Config::default(), &client_frame(0x82, &payload));
        assert_eq!(events, vec![Event::Message(Message::Binary(payload))]);
    }
}

#[test]
fn unmasked_server_hello_decodes_on_a_client() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.client.receive(pair.now, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(drain_events(&mut pair.client), vec![text("Hello")]);
}

// ---- every protocol violation gets its close code ----

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
            Event::Message(Message::Binary(b"kept".to_vec())),
            Event::Ping(b"p".to_vec()),
            Event::Pong(b"q".to_vec()),
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
    assert_eq!(events, vec![text(""), Event::Message(Message::Binary(vec![])), text("κόσμε")]);
}

#[test]
fn auto_pong_can_be_switched_off() {
    let config = Config { auto_pong: false, ..Config::default() };
    let (events, frames) = run_both_ways(config, &client_frame(0x89, b"x"));
    assert_eq!(events, vec![Event::Ping(b"x".to_vec())]);
    assert!(frames.is_empty());
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
        vec![Event::Chunk { kind: MessageKind::Text, data: b"abc".to_vec(), first: true, last: false }]
    );
    server.receive(now, &first[9..]);
    server.receive(now, &client_frame(0x80, b""));
    let events = drain_events(&mut server);
    assert_eq!(
        events,
        vec![
            Event::Chunk { kind: MessageKind::Text, data: b"def".to_vec(), first: false, last: false },
            Event::Chunk { kind: MessageKind::Text, data: vec![], first: false, last: true },
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

// ---- the handshake ----

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
    assert_eq!(server.accept(Accept::new()), Err(SendError::NoPendingRequest));
    server.respond(HttpResponse::new(200).body("text/html", "<p>hi</p>")).unwrap();
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
    pick.poll_event();
    assert_eq!(
        pick.accept(Accept::new().subprotocol("chat.v9")),
        Err(SendError::SubprotocolNotOffered("chat.v9".into()))
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
    server.respond(HttpResponse::service_unavailable()).unwrap();
    assert!(String::from_utf8(drain_output(&mut server)).unwrap().starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    assert!(matches!(closed_with(&drain_events(&mut server)).1, CloseCause::Rejected { status: 503 }));
}

#[test]
fn client_reports_a_rejection_with_its_status() {
    let now = Instant::now();
    let mut client = Connection::client_with_rng(
        Arc::new(Config::default()),
        ClientRequest::new("x", "/"),
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

// ---- the pair harness ----

/// A client and a server over an in-memory link, with a fake clock.
struct Pair {
    client: Connection,
    server: Connection,
    now: Instant,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    /// Deliver bytes in pieces of this size (the link chunking).
    piece: usize,
    /// A cut link: bytes written are lost.
    cut: bool,
}

impl Pair {
    fn new(client_config: Config, server_config: Config) -> Pair {
        Pair::with_piece(client_config, server_config, usize::MAX)
    }

    fn with_piece(client_config: Config, server_config: Config, piece: usize) -> Pair {
        let now = Instant::now();
        let mut request = ClientRequest::new("example.com", "/chat");
        request.subprotocols = vec!["chat.v1".into()];
        let client =
            Connection::client_with_rng(Arc::new(client_config), request, now, Box::new(CountingRng(7))).unwrap();
        let server = Connection::server(Arc::new(server_config), now);
        let mut pair = Pair { client, server, now, client_events: vec![], server_events: vec![], piece, cut: false };
        pair.run();
        assert!(matches!(pair.client_events.remove(0), Event::Connected(_)));
        assert!(matches!(pair.server_events.remove(0), Event::Request(_)));
        assert_eq!(pair.client.state(), ConnectionState::Open);
        assert_eq!(pair.server.state(), ConnectionState::Open);
        pair
    }

    fn transfer(from: &mut Connection, to: &mut Connection, now: Instant, piece: usize, cut: bool) -> bool {
        let bytes = drain_output(from);
        if !cut {
            for chunk in bytes.chunks(piece.max(1)) {
                to.receive(now, chunk);
            }
        }
        !bytes.is_empty()
    }

    /// Moves bytes both ways until nothing moves; the server accepts every upgrade.
    fn run(&mut self) {
        loop {
            let mut moved = Pair::transfer(&mut self.client, &mut self.server, self.now, self.piece, self.cut);
            while let Some(event) = self.server.poll_event() {
                if matches!(event, Event::Request(_)) {
                    self.server.accept(Accept::new()).unwrap();
                }
                self.server_events.push(event);
            }
            moved |= Pair::transfer(&mut self.server, &mut self.client, self.now, self.piece, self.cut);
            self.client_events.extend(drain_events(&mut self.client));
            self.server_events.extend(drain_events(&mut self.server));
            if !moved {
                break;
            }
        }
    }

    /// Advances the fake clock to the next deadline of either side (at most `limit`), fires
    /// timers, and runs the link.
    fn advance_to_next_timeout(&mut self, limit: Instant) -> bool {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()].into_iter().flatten().min();
        match next {
            Some(at) if at <= limit => {
                self.now = self.now.max(at);
                self.client.handle_timeout(self.now);
                self.server.handle_timeout(self.now);
                self.run();
                true
            }
            _ => {
                self.now = limit;
                false
            }
        }
    }

    fn advance_until(&mut self, limit: Instant) {
        while self.advance_to_next_timeout(limit) {}
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
        pair.client.send(Message::Binary(big.clone())).unwrap();
        pair.server.send_text("hello client").unwrap();
        pair.server.send(Message::Text("κόσμε".repeat(5000))).unwrap();
        pair.client.send_fragment(MessageKind::Text, "κ".as_bytes(), false).unwrap();
        assert_eq!(pair.client.send_text("interleaved"), Err(SendError::FragmentInProgress));
        pair.client.ping(b"mid").unwrap();
        pair.client.send_fragment(MessageKind::Text, "όσμε".as_bytes(), true).unwrap();
        pair.run();
        assert_eq!(
            pair.server_events,
            vec![
                text("hello server"),
                Event::Message(Message::Binary(vec![0, 1, 2, 255])),
                Event::Message(Message::Binary(big.clone())),
                Event::Ping(b"mid".to_vec()),
                text("κόσμε"),
            ]
        );
        assert_eq!(
            pair.client_events,
            vec![text("hello client"), text(&"κόσμε".repeat(5000)), Event::Pong(b"mid".to_vec())]
        );
    }
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
fn misuse_is_an_error_and_queues_nothing() {
    let mut pair = Pair::new(Config::default(), Config::default());
    assert_eq!(pair.client.ping(&[0; 126]), Err(SendError::ControlTooLong(126)));
    assert_eq!(pair.client.close(CloseCode(1005), ""), Err(SendError::InvalidCloseCode(1005)));
    assert_eq!(pair.client.close(CloseCode::NORMAL, &"x".repeat(124)), Err(SendError::ControlTooLong(126)));
    assert_eq!(pair.client.send_fragment(MessageKind::Text, b"\xff", true), Err(SendError::InvalidUtf8));
    assert_eq!(pair.client.send_fragment(MessageKind::Text, b"\xce", true), Err(SendError::InvalidUtf8));
    pair.client.send_fragment(MessageKind::Binary, b"a", false).unwrap();
    assert_eq!(pair.client.send_fragment(MessageKind::Text, b"b", true), Err(SendError::FragmentInProgress));
    pair.client.send_fragment(MessageKind::Binary, b"b", true).unwrap();
    pair.client.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(pair.client.send_text("late"), Err(SendError::Closed));
    assert_eq!(pair.client.close(CloseCode::NORMAL, ""), Err(SendError::Closed));
    let now = Instant::now();
    let mut fresh = Connection::server(Arc::new(Config::default()), now);
    assert_eq!(fresh.send_text("early"), Err(SendError::NotOpen));
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

// ---- close paths ----

#[test]
fn client_initiated_close_is_clean_on_both_sides() {
    for piece in [1, usize::MAX] {
        let mut pair = Pair::with_piece(Config::default(), Config::default(), piece);
        pair.client.close(CloseCode::NORMAL, "done").unwrap();
        assert_eq!(pair.client.state(), ConnectionState::Closing);
        pair.run();
        let server_closed =
            Closed { code: CloseCode::NORMAL, reason: "done".into(), clean: true, cause: CloseCause::PeerClosed };
        assert_eq!(pair.server_events, vec![Event::Closed(server_closed)]);
        assert_eq!(
            pair.client_events,
            vec![Event::Closed(Closed {
                code: CloseCode::NORMAL,
                reason: "".into(),
                clean: true,
                cause: CloseCause::LocalClosed
            })]
        );
        // The server closes TCP first; the client waits for it.
        assert!(pair.server.should_close_transport());
        assert!(!pair.client.should_close_transport());
        assert!(pair.client.wants_read());
        pair.client.receive_eof(pair.now);
        assert!(pair.client.should_close_transport());
        assert_eq!(pair.client.poll_event(), None, "nothing after Closed");
    }
}

#[test]
fn server_initiated_close_and_client_tcp_wait_timeout() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.server.close(CloseCode(4000), "app says bye").unwrap();
    pair.run();
    assert!(matches!(
        &pair.client_events[..],
        [Event::Closed(Closed { code: CloseCode(4000), clean: true, cause: CloseCause::PeerClosed, .. })]
    ));
    assert!(matches!(
        &pair.server_events[..],
        [Event::Closed(Closed { code: CloseCode(4000), clean: true, cause: CloseCause::LocalClosed, .. })]
    ));
    // The server never closes TCP (the link is idle): the client gives up after the close timeout.
    let limit = pair.now + Duration::from_secs(60);
    pair.advance_until(limit);
    assert!(pair.client.should_close_transport());
}

#[test]
fn close_without_status_is_echoed_empty() {
    let (events, frames) = run_both_ways(Config::default(), &client_frame(0x88, b""));
    assert_eq!(
        events,
        vec![Event::Closed(Closed {
            code: CloseCode::NO_STATUS,
            reason: "".into(),
            clean: true,
            cause: CloseCause::PeerClosed
        })]
    );
    assert_eq!(frames, vec![(OpCode::Close, vec![])]);
}

#[test]
fn everything_after_a_close_frame_is_ignored() {
    let input = [
        client_frame(0x88, &close_payload(1000, "")),
        client_frame(0x81, b"late"),
        client_frame(0x89, b""),
        vec![0xFF; 20],
    ]
    .concat();
    let (events, frames) = run_both_ways(Config::default(), &input);
    assert_eq!(events.len(), 1);
    assert_eq!(frames, vec![(OpCode::Close, close_payload(1000, ""))]);
}

#[test]
fn close_handshake_timeout_when_the_peer_never_answers() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.cut = true;
    pair.server.close(CloseCode::GOING_AWAY, "").unwrap();
    pair.run();
    let limit = pair.now + Duration::from_secs(60);
    pair.advance_until(limit);
    assert_eq!(
        pair.server_events,
        vec![Event::Closed(Closed {
            code: CloseCode::ABNORMAL,
            reason: "".into(),
            clean: false,
            cause: CloseCause::CloseTimeout
        })]
    );
    assert!(pair.server.should_close_transport());
}

#[test]
fn messages_arriving_while_closing_are_still_reported() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.client.send_text("in flight").unwrap();
    pair.server.close(CloseCode::NORMAL, "").unwrap();
    pair.run();
    assert_eq!(pair.server_events[0], text("in flight"));
    assert!(matches!(pair.server_events[1], Event::Closed(Closed { clean: true, .. })));
}

#[test]
fn simultaneous_close() {
    let mut pair = Pair::new(Config::default(), Config::default());
    pair.client.close(CloseCode::NORMAL, "c").unwrap();
    pair.server.close(CloseCode::NORMAL, "s").unwrap();
    pair.run();
    assert!(matches!(
        &pair.client_events[..],
        [Event::Closed(Closed { clean: true, cause: CloseCause::LocalClosed, .. })]
    ));
    assert!(matches!(
        &pair.server_events[..],
        [Event::Closed(Closed { clean: true, cause: CloseCause::LocalClosed, .. })]
    ));
}

#[test]
fn eof_mid_message_reports_abnormal_closure() {
    let now = Instant::now();
    let mut server = open_server(Config::default(), now);
    let frame = client_frame(0x81, b"unfinished");
    server.receive(now, &frame[..8]);
    server.receive_eof(now);
    assert_eq!(
        drain_events(&mut server),
        vec![Event::Closed(Closed {
            code: CloseCode::ABNORMAL,
            reason: "".into(),
            clean: false,
            cause: CloseCause::Eof
        })]
    );
    assert!(server.should_close_transport());
    server.receive(now, &frame[8..]);
    assert_eq!(server.poll_event(), None);
}

// ---- keep-alive, in virtual minutes ----

fn keep_alive() -> Config {
    Config {
        keep_alive: Some(KeepAlive { interval: Duration::from_secs(20), timeout: Duration::from_secs(10) }),
        ..Config::default()
    }
}

#[test]
fn keep_alive_pings_a_live_peer_for_minutes_without_closing() {
    let mut pair = Pair::new(Config::default(), keep_alive());
    let limit = pair.now + Duration::from_secs(600);
    pair.advance_until(limit);
    assert_eq!(pair.server.state(), ConnectionState::Open);
    let pings = pair.client_events.iter().filter(|e| matches!(e, Event::Ping(_))).count();
    let pongs = pair.server_events.iter().filter(|e| matches!(e, Event::Pong(_))).count();
    assert_eq!((pings, pongs), (30, 30), "one ping per 20 s over 10 minutes");
}

#[test]
fn keep_alive_reaps_a_silent_peer_with_1011() {
    let mut pair = Pair::new(Config::default(), keep_alive());
    let start = pair.now;
    pair.cut = true;
    let limit = pair.now + Duration::from_secs(600);
    pair.advance_until(limit);
    let (code, cause) = closed_with(&pair.server_events);
    assert_eq!((code, cause), (CloseCode::INTERNAL_ERROR, CloseCause::KeepAliveTimeout));
    assert!(pair.server.should_close_transport());
    // Closed at the ping (20 s) plus the timeout (10 s), not later.
    assert!(pair.server.poll_timeout().is_none());
    assert!(pair.now >= start + Duration::from_secs(30));
}

#[test]
fn any_data_counts_as_a_sign_of_life() {
    let mut pair = Pair::new(Config { auto_pong: false, ..Config::default() }, keep_alive());
    // The client never answers pings but talks every 15 s: the server never pings at all.
    for _ in 0..40 {
        pair.now += Duration::from_secs(15);
        pair.client.handle_timeout(pair.now);
        pair.server.handle_timeout(pair.now);
        pair.client.send_text("still here").unwrap();
        pair.run();
    }
    assert_eq!(pair.server.state(), ConnectionState::Open);
    assert!(!pair.client_events.iter().any(|e| matches!(e, Event::Ping(_))));
}

#[test]
fn handle_timeout_early_or_twice_is_harmless() {
    let mut pair = Pair::new(Config::default(), keep_alive());
    let t = pair.now;
    for _ in 0..3 {
        pair.server.handle_timeout(t);
        pair.server.handle_timeout(t + Duration::from_secs(19));
    }
    assert_eq!(pair.server.queued_bytes(), 0);
    assert_eq!(pair.server.poll_timeout(), Some(t + Duration::from_secs(20)));
}

// ---- property: any chunking gives the same events ----

fn fixture_stream() -> Vec<u8> {
    [
        client_frame(0x81, "Hello κόσμε".as_bytes()),
        client_frame(0x02, &[1; 300]),
        client_frame(0x89, b"ping"),
        client_frame(0x80, &[2; 70_000]),
        client_frame(0x8A, b""),
        client_frame(0x01, b"a"),
        client_frame(0x00, b"b"),
        client_frame(0x80, b"c"),
        client_frame(0x88, &close_payload(1000, "bye")),
    ]
    .concat()
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
                server.poll_event();
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

#[test]
fn answers_to_messages_leave_before_the_close_frame_that_followed_them() {
    let now = Instant::now();
    for ending in [client_frame(0x88, &close_payload(1000, "")), client_frame(0xC1, b"rsv")] {
        let mut server = open_server(Config::default(), now);
        server.receive(now, &[client_frame(0x81, b"echo me"), ending].concat());
        let Some(Event::Message(message)) = server.poll_event() else { panic!("message first") };
        server.send(message).unwrap();
        assert!(matches!(server.poll_event(), Some(Event::Closed(_))));
        let frames = parse_server_frames(&drain_output(&mut server));
        assert_eq!(frames[0], (OpCode::Text, b"echo me".to_vec()));
        assert_eq!(frames[1].0, OpCode::Close);
    }
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
    assert_eq!(server.accept(Accept::new()), Err(SendError::NoPendingRequest));
}

// ---- permessage-deflate (RFC 7692) ----

#[cfg(feature = "deflate")]
mod deflate {
    use super::*;

    fn with_deflate(deflate: DeflateConfig) -> Config {
        Config { deflate: Some(deflate), max_message_size: 1 << 20, ..Config::default() }
    }

    fn pair(client: DeflateConfig, server: DeflateConfig) -> Pair {
        Pair::new(with_deflate(client), with_deflate(server))
    }

    #[test]
    fn negotiated_both_ways_and_messages_round_trip() {
        for piece in [1, 7, usize::MAX] {
            let mut pair =
                Pair::with_piece(with_deflate(DeflateConfig::default()), with_deflate(DeflateConfig::default()), piece);
            let params = pair.server.compression().expect("server agreed");
            assert_eq!(pair.client.compression(), Some(params));
            let text = "a text that repeats itself, repeats itself, repeats itself. ".repeat(50);
            let binary: Vec<u8> = (0..50_000u32).map(|i| (i % 7) as u8).collect();
            for _ in 0..3 {
                pair.client.send_text(&text).unwrap();
                pair.server.send(Message::Binary(binary.clone())).unwrap();
            }
            pair.client.send_text("short").unwrap();
            pair.run();
            assert_eq!(pair.server_events, [text.as_str(), text.as_str(), text.as_str(), "short"].map(super::text));
            assert_eq!(pair.client_events, vec![Event::Message(Message::Binary(binary.clone())); 3]);
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
        assert_eq!(drain_events(&mut pair.client), vec![super::text(text)]);
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
        pair.server.send_uncompressed(Message::Text(text.to_owned())).unwrap();
        let out = drain_output(&mut pair.server);
        let (first, len) = FrameHeader::parse(&out).unwrap().unwrap();
        let (second, _) = FrameHeader::parse(&out[len + first.payload_len as usize..]).unwrap().unwrap();
        assert_eq!((first.rsv, second.rsv), (0b100, 0));
        assert_eq!(second.payload_len as usize, text.len());
        pair.client.receive(pair.now, &out);
        pair.server.send_text(text).unwrap();
        let out = drain_output(&mut pair.server);
        pair.client.receive(pair.now, &out);
        assert_eq!(drain_events(&mut pair.client), vec![super::text(text); 3]);
    }

    #[test]
    fn rfc_7692_hello_frames_decode_with_and_without_context_takeover() {
        // §7.2.3.1 and §7.2.3.2: "Hello" twice with the context kept, as a server sends them.
        let mut pair = pair(DeflateConfig::default(), DeflateConfig::default());
        pair.client.receive(pair.now, &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        pair.client.receive(pair.now, &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
        assert_eq!(drain_events(&mut pair.client), vec![super::text("Hello"), super::text("Hello")]);
        // §7.2.3.3: a message of one compressed frame split over two frames, RSV1 on the first.
        pair.client.receive(pair.now, &[0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(drain_events(&mut pair.client), vec![super::text("Hello")]);
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
        assert_eq!(pair.client_events, vec![super::text(&text), super::text(&text)]);
        assert_eq!(pair.server_events, vec![super::text(&text), super::text(&text)]);
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
        assert_eq!(drain_events(&mut a.client), vec![super::text(&text)]);
        // With the context kept, the frame goes through the connection's own context instead.
        let mut kept = pair(DeflateConfig::default(), DeflateConfig::default());
        kept.server.send_prepared(&frame).unwrap();
        kept.server.send_prepared(&frame).unwrap();
        kept.run();
        assert_eq!(kept.client_events, vec![super::text(&text), super::text(&text)]);
    }

    #[test]
    fn a_deflate_bomb_closes_with_1009_before_it_inflates() {
        let config = Config { max_message_size: 64 << 10, ..with_deflate(DeflateConfig::default()) };
        let now = Instant::now();
        let mut server = Connection::server(Arc::new(config), now);
        let head = String::from_utf8_lossy(HANDSHAKE)
            .replace("\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n");
        server.receive(now, head.as_bytes());
        server.poll_event();
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
            server.poll_event();
            server.accept(Accept::new()).unwrap();
            assert!(String::from_utf8(drain_output(&mut server)).unwrap().contains("permessage-deflate"));
            server
        };
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("RSV1 on a continuation", [client_frame(0x01, b"a"), client_frame(0xC0, b"b")].concat(), 1002),
            ("RSV1 on a ping", client_frame(0xC9, b""), 1002),
            ("RSV2 with deflate", client_frame(0xA1, b"x"), 1002),
            ("garbage that does not inflate", client_frame(0xC1, &[0xff, 0xff, 0xff]), 1007),
            (
                "inflates to invalid UTF-8",
                client_frame(0xC1, &crate::deflate::compress_standalone(b"ok \xff\xfe", 15, 6)),
                1007,
            ),
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
                ClientRequest::new("x", "/"),
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
}
