//! The shared harness of the integration tests: raw client frames fed to a server, and a
//! client/server [`Pair`] over an in-memory link with a fake clock. Fixtures run whole and one
//! byte at a time (`run_both_ways`), as every test here did when they lived in `src/tests.rs`.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use wsproto::bytes::BytesMut;
use wsproto::frame::{apply_mask, FrameHeader, OpCode, MAX_HEADER_LEN};
use wsproto::*;

pub const HANDSHAKE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Deterministic "randomness" for client keys and masks.
pub struct CountingRng(pub u8);

impl RandomSource for CountingRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(31).wrapping_add(17);
            *b = self.0;
        }
    }
}

/// A frame as a client sends it (masked with a fixed key), with full control of every bit.
pub fn client_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
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

pub fn text(s: &str) -> Event {
    Event::Message(Message::Text(s.into()))
}

pub fn drain_events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

///
/// Acknowledged at the connection's own current time: the instant passed is in the past, and a
/// connection never moves its clock back.
pub fn drain_output(conn: &mut Connection) -> Vec<u8> {
    let now = Instant::now();
    let past = now.checked_sub(Duration::from_secs(60)).or_else(|| now.checked_sub(Duration::from_millis(1)));
    drain_output_at(conn, past.unwrap_or(now))
}

/// Everything queued, acknowledged as written at `now`.
pub fn drain_output_at(conn: &mut Connection, now: Instant) -> Vec<u8> {
    let out = conn.outgoing_front().to_vec();
    conn.advance_outgoing(now, out.len());
    if conn.queued_bytes() > 0 {
        let mut rest = drain_output_at(conn, now);
        let mut all = out;
        all.append(&mut rest);
        return all;
    }
    out
}

/// Splits server output into (opcode, payload) frames; panics on anything a server must not send.
pub fn parse_server_frames(mut bytes: &[u8]) -> Vec<(OpCode, Vec<u8>)> {
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

pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// An accepted server that has written its 101.
pub fn open_server(config: Config, now: Instant) -> Connection {
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
pub fn run_server(config: Config, input: &[u8], piece: usize) -> (Vec<Event>, Vec<(OpCode, Vec<u8>)>) {
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

/// As [`run_server`], through [`Connection::receive_buf`]: each piece is appended to one read
/// buffer, which keeps what the connection leaves in it (never more than one small frame).
pub fn run_server_buffered(config: Config, input: &[u8], piece: usize) -> (Vec<Event>, Vec<(OpCode, Vec<u8>)>) {
    let now = Instant::now();
    let mut server = open_server(config, now);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut output = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        buf.extend_from_slice(chunk);
        server.receive_buf(now, &mut buf);
        assert!(buf.len() <= MAX_HEADER_LEN + MAX_BUFFERED_FRAME, "{} bytes left in the buffer", buf.len());
        events.extend(drain_events(&mut server));
        output.extend(drain_output(&mut server));
        server.release_buffers();
    }
    (events, parse_server_frames(&output))
}

/// Runs a fixture whole and one byte at a time, from a slice and through a read buffer, and
/// checks all four give the same events and output.
pub fn run_both_ways(config: Config, input: &[u8]) -> (Vec<Event>, Vec<(OpCode, Vec<u8>)>) {
    let whole = run_server(config.clone(), input, input.len());
    let bytewise = run_server(config.clone(), input, 1);
    assert_eq!(whole, bytewise, "fed whole vs one byte at a time");
    let buffered = run_server_buffered(config.clone(), input, input.len());
    assert_eq!(whole, buffered, "fed whole from a slice vs through a read buffer");
    let buffered_bytewise = run_server_buffered(config, input, 1);
    assert_eq!(whole, buffered_bytewise, "fed whole vs one byte at a time through a read buffer");
    whole
}

pub fn closed_with(events: &[Event]) -> (CloseCode, CloseCause) {
    match events.last() {
        Some(Event::Closed(closed)) => (closed.code, closed.cause.clone()),
        other => panic!("expected Closed last, got {other:?}"),
    }
}

/// A client and a server over an in-memory link, with a fake clock.
pub struct Pair {
    pub client: Connection,
    pub server: Connection,
    pub now: Instant,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    /// Deliver bytes in pieces of this size (the link chunking).
    pub piece: usize,
    /// A cut link: bytes written are lost.
    pub cut: bool,
    /// Receive through read buffers ([`Connection::receive_buf`]): the client's, then the
    /// server's, each keeping what its connection left in it.
    pub buffers: Option<(BytesMut, BytesMut)>,
}

impl Pair {
    pub fn new(client_config: Config, server_config: Config) -> Pair {
        Pair::with_piece(client_config, server_config, usize::MAX)
    }

    pub fn with_piece(client_config: Config, server_config: Config, piece: usize) -> Pair {
        let now = Instant::now();
        let mut request = OutgoingRequest::new("example.com", "/chat");
        request.subprotocols = vec!["chat.v1".into()];
        let client =
            Connection::client_with_rng(Arc::new(client_config), request, now, Box::new(CountingRng(7))).unwrap();
        let server = Connection::server(Arc::new(server_config), now);
        let mut pair = Pair {
            client,
            server,
            now,
            client_events: vec![],
            server_events: vec![],
            piece,
            cut: false,
            buffers: None,
        };
        pair.run();
        assert!(matches!(pair.client_events.remove(0), Event::Connected(_)));
        assert!(matches!(pair.server_events.remove(0), Event::Request(_)));
        assert_eq!(pair.client.state(), ConnectionState::Open);
        assert_eq!(pair.server.state(), ConnectionState::Open);
        pair
    }

    /// The same pair, receiving through read buffers from now on.
    pub fn buffered(mut self) -> Pair {
        self.buffers = Some((BytesMut::new(), BytesMut::new()));
        self
    }

    pub fn transfer(
        from: &mut Connection,
        to: &mut Connection,
        mut to_buf: Option<&mut BytesMut>,
        now: Instant,
        piece: usize,
        cut: bool,
    ) -> bool {
        let bytes = drain_output_at(from, now);
        if !cut {
            for chunk in bytes.chunks(piece.max(1)) {
                match to_buf.as_deref_mut() {
                    Some(buf) => {
                        buf.extend_from_slice(chunk);
                        to.receive_buf(now, buf);
                    }
                    None => to.receive(now, chunk),
                }
            }
        }
        !bytes.is_empty()
    }

    /// Moves bytes both ways until nothing moves; the server accepts every upgrade.
    pub fn run(&mut self) {
        loop {
            let (client_buf, server_buf) = match self.buffers.as_mut() {
                Some((client, server)) => (Some(client), Some(server)),
                None => (None, None),
            };
            let mut moved =
                Pair::transfer(&mut self.client, &mut self.server, server_buf, self.now, self.piece, self.cut);
            while let Some(event) = self.server.poll_event() {
                if matches!(event, Event::Request(_)) {
                    self.server.accept(Accept::new()).unwrap();
                }
                self.server_events.push(event);
            }
            moved |= Pair::transfer(&mut self.server, &mut self.client, client_buf, self.now, self.piece, self.cut);
            self.client_events.extend(drain_events(&mut self.client));
            self.server_events.extend(drain_events(&mut self.server));
            if !moved {
                break;
            }
        }
    }

    /// Advances the fake clock to the next deadline of either side (at most `limit`), fires
    /// timers, and runs the link.
    pub fn advance_to_next_timeout(&mut self, limit: Instant) -> bool {
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

    pub fn advance_until(&mut self, limit: Instant) {
        while self.advance_to_next_timeout(limit) {}
    }
}

pub fn keep_alive() -> Config {
    Config {
        keep_alive: Some(KeepAlive { interval: Duration::from_secs(20), timeout: Duration::from_secs(10) }),
        ..Config::default()
    }
}

pub fn fixture_stream() -> Vec<u8> {
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
