//! The same messages through our connection and through the peers, for the codec benches and
//! the allocation counts: decode of masked client frames by a server, encode of server frames.
//!
//! Every library sees identical wire bytes from an in-memory stream and delivers whole messages
//! with text validated as UTF-8 (tungstenite `read`, fastwebsockets `FragmentCollector`, our
//! `Connection` in `Messages` mode), and each encodes with its natural API into a sink that
//! discards the bytes.

use std::hint::black_box;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use wsproto::{Accept, Config, Connection, Event, MessageKind};

use crate::frames::{self, Kind, MASK_KEY};
use crate::mem::{ready, Feeder, MemStream};

/// The payload sizes the issue asks for: empty, small, the 7-bit/16-bit length boundary, and
/// up to the 64-bit length form.
pub const SIZES: [usize; 8] = [0, 20, 125, 126, 1 << 10, 16 << 10, 64 << 10, 1 << 20];

/// One message shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Text or binary.
    pub kind: Kind,
    /// Payload bytes.
    pub size: usize,
    /// Frames per message: 1 or 64.
    pub fragments: usize,
}

impl Case {
    /// Every combination of [`SIZES`], both kinds and 1 or 64 fragments.
    pub fn all() -> Vec<Case> {
        let mut cases = Vec::new();
        for fragments in [1, 64] {
            for kind in [Kind::Binary, Kind::Text] {
                for size in SIZES {
                    cases.push(Case { kind, size, fragments });
                }
            }
        }
        cases
    }

    /// A file-name-safe identifier, e.g. `text_1024_x64`.
    pub fn id(&self) -> String {
        format!("{}_{}_x{}", self.kind.name(), self.size, self.fragments)
    }

    /// For tables, e.g. `text 1 KiB ×64`.
    pub fn label(&self) -> String {
        format!("{} {} ×{}", self.kind.name(), size_label(self.size), self.fragments)
    }

    /// Messages per bench iteration: enough small ones to make an iteration worth timing
    /// (about 64 KiB of wire bytes, at most 64 messages), one large one.
    pub fn batch(&self) -> usize {
        let wire = self.size + 14 * self.fragments;
        ((64 << 10) / wire).clamp(1, 64)
    }

    /// The message's payload.
    pub fn payload(&self) -> Vec<u8> {
        frames::payload(self.kind, self.size)
    }

    /// [`batch`](Self::batch) messages as a client sends them (masked).
    ///
    /// The bytes sit in an allocation 2 KiB longer than they are. Otherwise the buffer a
    /// decoder allocates for a large message lands right after them in the heap, its start
    /// 16-20 bytes past the payload's modulo 4 KiB, and on this machine's CPU (AMD Zen 3)
    /// `memcpy` between two buffers that close modulo 4 KiB runs 10-30× slower (loads alias
    /// the stores just made): a property of where the allocator put two buffers, which the
    /// bench would otherwise report as the decoder's speed (see RESULTS.md).
    pub fn client_wire(&self) -> Bytes {
        let payload = self.payload();
        let mut out = Vec::new();
        for _ in 0..self.batch() {
            frames::encode_message(&mut out, self.kind, &payload, self.fragments, Some(MASK_KEY));
        }
        let len = out.len();
        out.resize(len + 2048, 0);
        Bytes::from(out).slice(..len)
    }
}

/// `20 B`, `1 KiB`, `64 KiB`, `1 MiB`.
pub fn size_label(size: usize) -> String {
    if size >= 1 << 20 && size.is_multiple_of(1 << 20) {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size.is_multiple_of(1 << 10) {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// A WebSocket library under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lib {
    /// `wsproto::Connection`.
    Ours,
    /// tungstenite's `WebSocket` over an in-memory `Read + Write`.
    Tungstenite,
    /// fastwebsockets' `WebSocket` (with `FragmentCollector` for reading) over an in-memory
    /// `AsyncRead + AsyncWrite`.
    Fastwebsockets,
}

impl Lib {
    /// All three, ours first.
    pub const ALL: [Lib; 3] = [Lib::Ours, Lib::Tungstenite, Lib::Fastwebsockets];

    /// A file-name-safe name.
    pub fn id(self) -> &'static str {
        match self {
            Lib::Ours => "ours",
            Lib::Tungstenite => "tungstenite",
            Lib::Fastwebsockets => "fastwebsockets",
        }
    }

    /// A server-side decoder.
    pub fn decoder(self) -> Box<dyn Decode> {
        match self {
            Lib::Ours => Box::new(OursCodec::new()),
            Lib::Tungstenite => Box::new(TungsteniteCodec::new()),
            Lib::Fastwebsockets => Box::new(FastDecoder::new()),
        }
    }

    /// A server-side encoder.
    pub fn encoder(self) -> Box<dyn Encode> {
        match self {
            Lib::Ours => Box::new(OursCodec::new()),
            Lib::Tungstenite => Box::new(TungsteniteCodec::new()),
            Lib::Fastwebsockets => Box::new(FastEncoder::new()),
        }
    }
}

/// Decodes client frames as a server.
pub trait Decode {
    /// Takes `input` (exactly `messages` whole messages) and decodes every message, handing
    /// each to `black_box`; answers the payload bytes delivered.
    fn decode(&mut self, input: &Bytes, messages: usize) -> usize;

    /// Like [`decode`](Self::decode) but answers the messages, to check them.
    fn decode_collect(&mut self, input: &Bytes, messages: usize) -> Vec<(Kind, Vec<u8>)>;
}

/// What an encoder sends: the payload, as bytes, text and fragments.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The message shape.
    pub case: Case,
    /// The payload.
    pub payload: Bytes,
    /// The payload as text (ASCII for text cases, empty for binary).
    pub text: String,
    /// The payload's fragments (one piece for unfragmented cases).
    pub pieces: Vec<Bytes>,
    /// The text as tungstenite's cheaply cloned text type, built once like `payload`.
    pub tungstenite_text: tungstenite::Utf8Bytes,
}

impl Outgoing {
    /// The message for `case`.
    pub fn new(case: Case) -> Outgoing {
        // 2 KiB of slack after the payload, for the reason given at `Case::client_wire`: the
        // buffer an encoder copies it into must not land right after it.
        let mut payload = case.payload();
        payload.resize(case.size + 2048, 0);
        let payload = Bytes::from(payload).slice(..case.size);
        let text = match case.kind {
            Kind::Text => {
                let mut text = String::with_capacity(case.size + 2048);
                text.push_str(std::str::from_utf8(&payload).expect("text payloads are ASCII"));
                text
            }
            Kind::Binary => String::new(),
        };
        let pieces = frames::fragment_ranges(payload.len(), case.fragments).map(|r| payload.slice(r)).collect();
        let tungstenite_text = text.clone().into();
        Outgoing { case, payload, text, pieces, tungstenite_text }
    }
}

/// Encodes server frames.
pub trait Encode {
    /// Encodes the message and hands the bytes to the (discarding) transport; answers the
    /// wire bytes.
    fn encode(&mut self, message: &Outgoing) -> usize;
}

fn kind_of(kind: MessageKind) -> Kind {
    match kind {
        MessageKind::Text => Kind::Text,
        MessageKind::Binary => Kind::Binary,
    }
}

/// Our server connection, opened by a real handshake.
pub struct OursCodec {
    conn: Connection,
    now: Instant,
    /// The read buffer, reused: bytes are copied in as from a socket, and whole frames split
    /// off as messages (what the mio adapter's loop does).
    read_buf: BytesMut,
}

impl OursCodec {
    /// A server connection past its handshake, with the default config.
    pub fn new() -> OursCodec {
        let now = Instant::now();
        let mut conn = Connection::server(Arc::new(Config::default()), now);
        conn.receive(now, &frames::upgrade_request("bench"));
        match conn.poll_event() {
            Some(Event::Request(_)) => {}
            other => panic!("expected a request, got {other:?}"),
        }
        conn.accept(Accept::new()).expect("accept");
        let n = conn.queued_bytes();
        conn.advance_outgoing(now, n);
        OursCodec { conn, now, read_buf: BytesMut::new() }
    }

    /// Hands the connection `input` the way a driver does: appended to the read buffer, which
    /// keeps what the connection leaves in it.
    fn feed(&mut self, input: &[u8]) {
        self.read_buf.extend_from_slice(input);
        self.conn.receive_buf(self.now, &mut self.read_buf);
    }

    /// Our echo server's work per message, as the mio adapter does it: receive `messages`
    /// client messages, send each back with [`Connection::send`] (which takes the buffer),
    /// drain the queue. The buffers kept for reuse stay: the adapter frees them only at its
    /// once-a-second sweep, for connections whose queue stayed empty.
    pub fn echo(&mut self, input: &Bytes, messages: usize) {
        self.feed(input);
        let mut count = 0;
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Message(message) => {
                    self.conn.send(message).expect("send");
                    count += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(count, messages);
        self.drain();
    }

    fn drain(&mut self) -> usize {
        let mut total = 0;
        while self.conn.queued_bytes() > 0 {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = self.conn.outgoing(&mut slices);
            let written: usize = black_box(&slices[..n]).iter().map(|s| s.len()).sum();
            self.conn.advance_outgoing(self.now, written);
            total += written;
        }
        total
    }
}

impl Default for OursCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decode for OursCodec {
    fn decode(&mut self, input: &Bytes, messages: usize) -> usize {
        self.feed(input);
        let (mut count, mut bytes) = (0, 0);
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Message(message) => {
                    bytes += message.as_bytes().len();
                    count += 1;
                    black_box(message);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(count, messages);
        bytes
    }

    fn decode_collect(&mut self, input: &Bytes, messages: usize) -> Vec<(Kind, Vec<u8>)> {
        self.feed(input);
        let mut out = Vec::new();
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Message(message) => out.push((kind_of(message.kind()), message.as_bytes().to_vec())),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(out.len(), messages);
        out
    }
}

impl Encode for OursCodec {
    fn encode(&mut self, message: &Outgoing) -> usize {
        let kind = match message.case.kind {
            Kind::Text => MessageKind::Text,
            Kind::Binary => MessageKind::Binary,
        };
        if message.case.fragments == 1 {
            match message.case.kind {
                Kind::Text => self.conn.send_text(&message.text),
                Kind::Binary => self.conn.send_binary(&message.payload),
            }
            .expect("send");
        } else {
            let last = message.pieces.len() - 1;
            for (i, piece) in message.pieces.iter().enumerate() {
                self.conn.send_fragment(kind, piece, i == last).expect("send_fragment");
            }
        }
        self.drain()
    }
}

/// tungstenite's server `WebSocket` over a [`MemStream`].
pub struct TungsteniteCodec {
    ws: tungstenite::WebSocket<MemStream>,
    feeder: Feeder,
}

impl TungsteniteCodec {
    /// A server socket past its handshake, with the default config.
    pub fn new() -> TungsteniteCodec {
        let (stream, feeder) = MemStream::new();
        let ws = tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Server, None);
        TungsteniteCodec { ws, feeder }
    }

    fn read(&mut self) -> tungstenite::Message {
        match self.ws.read() {
            Ok(message @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_))) => message,
            other => panic!("unexpected {other:?}"),
        }
    }
}

impl Default for TungsteniteCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Decode for TungsteniteCodec {
    fn decode(&mut self, input: &Bytes, messages: usize) -> usize {
        self.feeder.set(input.clone());
        let mut bytes = 0;
        for _ in 0..messages {
            let message = self.read();
            bytes += message.len();
            black_box(message);
        }
        assert_eq!(self.feeder.remaining(), 0);
        bytes
    }

    fn decode_collect(&mut self, input: &Bytes, messages: usize) -> Vec<(Kind, Vec<u8>)> {
        self.feeder.set(input.clone());
        (0..messages)
            .map(|_| match self.read() {
                tungstenite::Message::Text(text) => (Kind::Text, text.as_bytes().to_vec()),
                tungstenite::Message::Binary(data) => (Kind::Binary, data.to_vec()),
                _ => unreachable!(),
            })
            .collect()
    }
}

impl Encode for TungsteniteCodec {
    fn encode(&mut self, message: &Outgoing) -> usize {
        use tungstenite::protocol::frame::coding::{Data, OpCode};
        use tungstenite::protocol::frame::Frame;
        use tungstenite::Message;
        let before = self.ws.get_ref().written;
        if message.case.fragments == 1 {
            let message = match message.case.kind {
                Kind::Text => Message::Text(message.tungstenite_text.clone()),
                Kind::Binary => Message::Binary(message.payload.clone()),
            };
            self.ws.write(message).expect("write");
        } else {
            let last = message.pieces.len() - 1;
            for (i, piece) in message.pieces.iter().enumerate() {
                let data = match (i, message.case.kind) {
                    (0, Kind::Text) => Data::Text,
                    (0, Kind::Binary) => Data::Binary,
                    _ => Data::Continue,
                };
                let frame = Frame::message(piece.clone(), OpCode::Data(data), i == last);
                self.ws.write(Message::Frame(frame)).expect("write");
            }
        }
        self.ws.flush().expect("flush");
        self.ws.get_ref().written - before
    }
}

/// fastwebsockets' server `WebSocket` with its `FragmentCollector`, over a [`MemStream`].
pub struct FastDecoder {
    ws: fastwebsockets::FragmentCollector<MemStream>,
    feeder: Feeder,
}

impl FastDecoder {
    /// A server socket past its handshake, with the default settings.
    pub fn new() -> FastDecoder {
        let (stream, feeder) = MemStream::new();
        let ws = fastwebsockets::WebSocket::after_handshake(stream, fastwebsockets::Role::Server);
        FastDecoder { ws: fastwebsockets::FragmentCollector::new(ws), feeder }
    }
}

impl Default for FastDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn fast_kind(opcode: fastwebsockets::OpCode) -> Kind {
    match opcode {
        fastwebsockets::OpCode::Text => Kind::Text,
        fastwebsockets::OpCode::Binary => Kind::Binary,
        other => panic!("unexpected {other:?}"),
    }
}

impl Decode for FastDecoder {
    fn decode(&mut self, input: &Bytes, messages: usize) -> usize {
        self.feeder.set(input.clone());
        let mut bytes = 0;
        for _ in 0..messages {
            let frame = ready(self.ws.read_frame()).expect("read_frame");
            fast_kind(frame.opcode);
            bytes += frame.payload.len();
            black_box(frame);
        }
        assert_eq!(self.feeder.remaining(), 0);
        bytes
    }

    fn decode_collect(&mut self, input: &Bytes, messages: usize) -> Vec<(Kind, Vec<u8>)> {
        self.feeder.set(input.clone());
        (0..messages)
            .map(|_| {
                let frame = ready(self.ws.read_frame()).expect("read_frame");
                (fast_kind(frame.opcode), frame.payload.to_vec())
            })
            .collect()
    }
}

/// fastwebsockets' server `WebSocket` writing frames into a [`MemStream`].
pub struct FastEncoder {
    ws: fastwebsockets::WebSocket<MemStream>,
}

impl FastEncoder {
    /// A server socket past its handshake, with the default settings.
    pub fn new() -> FastEncoder {
        FastEncoder { ws: fastwebsockets::WebSocket::after_handshake(MemStream::new().0, fastwebsockets::Role::Server) }
    }
}

impl Default for FastEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encode for FastEncoder {
    fn encode(&mut self, message: &Outgoing) -> usize {
        use fastwebsockets::{Frame, OpCode, Payload};
        let first = match message.case.kind {
            Kind::Text => OpCode::Text,
            Kind::Binary => OpCode::Binary,
        };
        let mut wire = 0;
        let last = message.pieces.len() - 1;
        for (i, piece) in message.pieces.iter().enumerate() {
            let opcode = if i == 0 { first } else { OpCode::Continuation };
            let frame = Frame::new(i == last, opcode, None, Payload::Borrowed(piece));
            wire += frames::header_len(piece.len(), false) + piece.len();
            ready(self.ws.write_frame(frame)).expect("write_frame");
        }
        wire
    }
}
