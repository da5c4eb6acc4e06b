//! The connection state machine that ties handshake, framing, control frames, timers and the
//! outgoing queue together.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;

use crate::close::{parse_close_payload, CloseCode, ClosePayloadError, MAX_CLOSE_REASON};
use crate::config::{Config, ReceiveMode};
use crate::deflate::Session as Compression;
use crate::error::{HandshakeError, ProtocolError, SendError};
use crate::event::{CloseCause, Closed, Event, Message, MessageKind};
use crate::frame::{apply_mask, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::handshake::{Accept, ClientRequest, HttpResponse, Parsed, Request, Response};
use crate::outgoing::OutQueue;
use crate::random::{OsRandom, RandomSource};
use crate::timer::{Timer, TimerTable};
use crate::utf8::Utf8Validator;

/// Which end of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We accepted the TCP connection: we receive masked frames and send unmasked ones.
    Server,
    /// We opened it: we mask every frame we send (RFC 6455 §5.3).
    Client,
}

/// Where a connection is in its life, as the application sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// The opening handshake is under way (server: possibly waiting for `accept`).
    Handshaking,
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's; messages may still arrive.
    Closing,
    /// Over: the `Closed` event has been queued.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Server: reading the request head.
    AwaitingRequest,
    /// Server: a request was reported; waiting for `accept` or `respond`.
    RequestPending {
        upgrade: bool,
    },
    /// Client: reading the response head.
    AwaitingResponse,
    Open,
    /// We sent close; waiting for the peer's.
    Closing,
    Closed,
}

/// The frame whose payload is arriving.
#[derive(Debug)]
struct FrameInProgress {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    remaining: u64,
    /// Payload bytes of this frame received so far (the masking key position).
    received: usize,
}

/// The data message being reassembled (or streamed).
#[derive(Debug)]
struct MessageInProgress {
    kind: MessageKind,
    /// Messages mode: the payload so far. Streaming mode: unused.
    buf: Vec<u8>,
    /// Payload bytes so far, all frames.
    len: usize,
    fragments: usize,
    utf8: Utf8Validator,
    /// Streaming mode: whether a chunk of this message has been reported yet.
    reported: bool,
    /// RSV1 on the first frame: the payload is deflated (RFC 7692 §6.1).
    compressed: bool,
    /// Compressed messages: the inflated size so far.
    inflated: usize,
    /// Streaming mode: the last inflation stopped because its chunk was full.
    inflater_full: bool,
}

/// Streaming mode: the most inflated bytes one [`Event::Chunk`] of a compressed message
/// carries (permessage-deflate).
pub const MAX_INFLATED_CHUNK: usize = 32 << 10;

/// Received bytes not yet processed because inflated data waits to be taken (see
/// `Connection::inflated_waiting`).
#[derive(Debug, Default)]
struct HeldInput {
    bytes: Vec<u8>,
    /// How much of `bytes` has been processed.
    start: usize,
    /// The transport's end of file arrived behind these bytes.
    eof: bool,
}

/// How the peer ended the connection, waiting for the events before it to be taken.
#[derive(Debug)]
enum Ending {
    PeerClose { code: CloseCode, reason: String },
    Failure(ProtocolError),
}

/// A frame encoded once and queued on many connections without copying: the unmasked bytes a
/// server sends are the same for every peer (RFC 6455 §5.1), so broadcast costs one encoding.
#[derive(Debug, Clone)]
pub struct PreparedFrame {
    bytes: Bytes,
    header_len: usize,
    opcode: OpCode,
    /// Compressed encodings (permessage-deflate, a fresh context each), made on first use, one
    /// per window size (9-15 bits) that recipients agreed to.
    #[cfg(feature = "deflate")]
    compressed: Arc<[std::sync::OnceLock<Bytes>; 7]>,
}

impl PreparedFrame {
    /// A text message in one frame.
    pub fn text(text: &str) -> Self {
        Self::encode(OpCode::Text, text.as_bytes())
    }

    /// A binary message in one frame.
    pub fn binary(data: &[u8]) -> Self {
        Self::encode(OpCode::Binary, data)
    }

    /// A message of either kind in one frame.
    pub fn message(message: &Message) -> Self {
        match message {
            Message::Text(text) => Self::text(text),
            Message::Binary(data) => Self::binary(data),
        }
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> Self {
        let header = FrameHeader { fin: true, rsv: 0, opcode, mask: None, payload_len: payload.len() as u64 };
        let mut bytes = Vec::with_capacity(header.encoded_len() + payload.len());
        header.encode(&mut bytes);
        let header_len = bytes.len();
        bytes.extend_from_slice(payload);
        PreparedFrame {
            bytes: Bytes::from(bytes),
            header_len,
            opcode,
            #[cfg(feature = "deflate")]
            compressed: Arc::default(),
        }
    }

    /// The frame compressed with a fresh context and this window, encoded once per window.
    #[cfg(feature = "deflate")]
    fn compressed(&self, window_bits: u8, level: u32) -> Bytes {
        let slot = usize::from(window_bits.clamp(9, 15) - 9);
        self.compressed[slot]
            .get_or_init(|| {
                let payload = crate::deflate::compress_standalone(self.payload(), window_bits, level);
                let header = FrameHeader {
                    fin: true,
                    rsv: 0b100,
                    opcode: self.opcode,
                    mask: None,
                    payload_len: payload.len() as u64,
                };
                let mut bytes = Vec::with_capacity(header.encoded_len() + payload.len());
                header.encode(&mut bytes);
                bytes.extend_from_slice(&payload);
                Bytes::from(bytes)
            })
            .clone()
    }

    /// The encoded size on the wire (server role).
    pub fn wire_len(&self) -> usize {
        self.bytes.len()
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.header_len..]
    }
}

/// One WebSocket connection, server or client, as a pure state machine (see the crate docs for
/// the run loop).
///
/// Methods fall in four kinds:
/// - getters (`&self`): [`state`](Self::state), [`role`](Self::role), [`subprotocol`](Self::subprotocol), ...
/// - inputs, each taking the current time: [`receive`](Self::receive),
///   [`receive_eof`](Self::receive_eof), [`handle_timeout`](Self::handle_timeout);
/// - application commands: [`accept`](Self::accept), [`respond`](Self::respond),
///   [`send_text`](Self::send_text), [`send_binary`](Self::send_binary), [`send`](Self::send),
///   [`send_uncompressed`](Self::send_uncompressed), [`send_fragment`](Self::send_fragment), [`send_prepared`](Self::send_prepared),
///   [`ping`](Self::ping), [`pong`](Self::pong), [`close`](Self::close);
/// - outputs, to drain after every input or command: [`poll_event`](Self::poll_event),
///   [`outgoing`](Self::outgoing) with [`advance_outgoing`](Self::advance_outgoing),
///   [`poll_timeout`](Self::poll_timeout), [`should_close_transport`](Self::should_close_transport).
pub struct Connection {
    role: Role,
    config: Arc<Config>,
    state: State,
    rng: Option<Box<dyn RandomSource>>,
    /// The last time passed in; commands that start timers count from it.
    now: Instant,

    /// Handshake head bytes, then any bytes that followed the head before the connection opened.
    handshake_buf: Vec<u8>,
    /// A line ending that may end the head has arrived within the first `max_handshake_size`
    /// bytes: from then on every read re-parses the head (httparse may still answer "partial",
    /// e.g. behind leading blank lines, and only more bytes settle it).
    head_end_seen: bool,
    request: Option<Request>,
    client: Option<(ClientRequest, String)>,
    response: Option<Response>,
    subprotocol: Option<String>,

    header_buf: [u8; MAX_HEADER_LEN],
    header_len: usize,
    frame: Option<FrameInProgress>,
    message: Option<MessageInProgress>,
    control: Vec<u8>,

    /// permessage-deflate, when negotiated (RFC 7692).
    compression: Option<Compression>,
    /// Unmasked compressed payload on its way to the inflater.
    compressed_scratch: Vec<u8>,
    /// An event carrying inflated data waits to be taken. A few compressed bytes can stand for
    /// megabytes, so input is processed no further until the application has taken it: what
    /// one read costs in memory is then one message (streaming mode: one chunk), not every
    /// message the read holds.
    inflated_waiting: bool,
    held: HeldInput,

    out: OutQueue,
    sending_fragmented: Option<MessageKind>,
    send_utf8: Utf8Validator,

    events: VecDeque<Event>,
    ending: Option<Ending>,
    timers: TimerTable,
    close_transport: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("queued", &self.out.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A server connection for a freshly accepted transport; it starts reading a request.
    pub fn server(config: Arc<Config>, now: Instant) -> Connection {
        let mut conn = Connection::new(Role::Server, config, now, None);
        conn.state = State::AwaitingRequest;
        conn
    }

    /// A client connection: the upgrade request is queued at once, with a fresh random key.
    pub fn client(config: Arc<Config>, request: ClientRequest, now: Instant) -> Result<Connection, SendError> {
        Connection::client_with_rng(config, request, now, Box::new(OsRandom::new()))
    }

    /// A client connection that takes its key and masking keys from `rng` (for tests).
    pub fn client_with_rng(
        config: Arc<Config>,
        request: ClientRequest,
        now: Instant,
        mut rng: Box<dyn RandomSource>,
    ) -> Result<Connection, SendError> {
        let mut request = request;
        if let Some(offer) = Compression::offer(&config) {
            request.extensions.push(offer);
        }
        let mut nonce = [0u8; 16];
        rng.fill(&mut nonce);
        let key = BASE64.encode(nonce);
        let head = request.encode(&key)?;
        let mut conn = Connection::new(Role::Client, config, now, Some(rng));
        conn.state = State::AwaitingResponse;
        conn.out.push_bytes(&head);
        conn.client = Some((request, key));
        Ok(conn)
    }

    fn new(role: Role, config: Arc<Config>, now: Instant, rng: Option<Box<dyn RandomSource>>) -> Connection {
        let mut timers = TimerTable::default();
        if let Some(timeout) = config.handshake_timeout {
            timers.set(Timer::Handshake, now + timeout);
        }
        Connection {
            role,
            config,
            state: State::AwaitingRequest,
            rng,
            now,
            handshake_buf: Vec::new(),
            head_end_seen: false,
            request: None,
            client: None,
            response: None,
            subprotocol: None,
            header_buf: [0; MAX_HEADER_LEN],
            header_len: 0,
            frame: None,
            message: None,
            control: Vec::new(),
            compression: None,
            compressed_scratch: Vec::new(),
            inflated_waiting: false,
            held: HeldInput::default(),
            out: OutQueue::default(),
            sending_fragmented: None,
            send_utf8: Utf8Validator::new(),
            events: VecDeque::new(),
            ending: None,
            timers,
            close_transport: false,
        }
    }

    // ---- getters ----

    /// Server or client.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the connection is in its life.
    pub fn state(&self) -> ConnectionState {
        match self.state {
            State::AwaitingRequest | State::RequestPending { .. } | State::AwaitingResponse => {
                ConnectionState::Handshaking
            }
            State::Open => ConnectionState::Open,
            State::Closing => ConnectionState::Closing,
            State::Closed => ConnectionState::Closed,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The subprotocol agreed in the handshake.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_deref()
    }

    /// The permessage-deflate parameters agreed in the handshake, if it was negotiated.
    #[cfg(feature = "deflate")]
    pub fn compression(&self) -> Option<crate::DeflateParams> {
        self.compression.as_ref().map(|c| c.params())
    }

    /// Server: the request being answered or accepted.
    pub fn request(&self) -> Option<&Request> {
        self.request.as_ref()
    }

    /// Client: the server's handshake response, once it arrived.
    pub fn response(&self) -> Option<&Response> {
        self.response.as_ref()
    }

    /// Bytes waiting in the outgoing queue.
    pub fn queued_bytes(&self) -> usize {
        self.out.len()
    }

    /// Whether the adapter should read from the transport now. False while a server waits for
    /// the application to answer a request, while inflated data waits to be taken (take the
    /// events first), and once the transport should close.
    pub fn wants_read(&self) -> bool {
        !self.close_transport && !self.inflated_waiting && !matches!(self.state, State::RequestPending { .. })
    }

    /// Whether the transport should be closed once the outgoing queue is drained: the
    /// connection has ended (a server closes TCP first, RFC 6455 §7.1.1; a client waits for
    /// the server's close or the close timeout).
    pub fn should_close_transport(&self) -> bool {
        self.close_transport
    }

    // ---- outputs ----

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if self.inflated_waiting {
            self.resume_held_input();
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
        }
        // The events before the ending are taken, and whatever the application sent in answer
        // to them is queued: now the close frame may follow.
        let ending = self.ending.take()?;
        self.apply_ending(ending);
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fills `slices` with the queued outgoing bytes, in order, for a vectored write; answers
    /// how many slices it filled (0 when nothing is queued).
    pub fn outgoing<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        self.out.slices(slices)
    }

    /// The first contiguous run of queued outgoing bytes, for a plain write.
    pub fn outgoing_front(&self) -> &[u8] {
        self.out.front()
    }

    /// Marks `n` queued bytes as written to the transport.
    ///
    /// # Panics
    /// If `n` exceeds [`queued_bytes`](Self::queued_bytes): the adapter acknowledged bytes it
    /// was never given.
    pub fn advance_outgoing(&mut self, n: usize) {
        self.out.advance(n);
    }

    /// Frees the buffers kept for reuse between writes, for a connection about to sit idle.
    pub fn release_buffers(&mut self) {
        self.out.release_spare();
        if !self.frame.as_ref().is_some_and(|f| f.opcode.is_control()) {
            self.control = Vec::new();
        }
    }

    // ---- inputs ----

    /// Hands the connection bytes read from the transport. Every byte is consumed: what does
    /// not yet make a whole unit (head, frame header, message) is kept, within the limits.
    pub fn receive(&mut self, now: Instant, data: &[u8]) {
        self.now = self.now.max(now);
        if data.is_empty() || self.close_transport {
            return;
        }
        match self.state {
            State::AwaitingRequest | State::AwaitingResponse => self.receive_handshake(data),
            State::RequestPending { .. } => {
                // A client must wait for our answer before sending frames (RFC 6455 §4.1), and
                // an adapter should not read now (`wants_read`): hold a head's worth at most.
                self.handshake_buf.extend_from_slice(data);
                let limit = self.config.max_handshake_size;
                if self.handshake_buf.len() > limit {
                    self.fail_handshake(HandshakeError::BadRequest("data sent before the handshake was answered"));
                }
            }
            State::Open | State::Closing => {
                self.note_activity();
                if self.inflated_waiting {
                    self.held.bytes.extend_from_slice(data);
                } else {
                    self.receive_frames(data);
                }
            }
            State::Closed => {}
        }
    }

    /// Tells the connection the transport reached end of file: the peer will send nothing more.
    /// Input still held behind inflated data (see [`wants_read`](Self::wants_read)) is processed
    /// first: the end of file then takes effect as the events are taken.
    pub fn receive_eof(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.inflated_waiting && self.held.start < self.held.bytes.len() {
            // Whatever the peer sent before its end of file is processed first.
            self.held.eof = true;
            return;
        }
        if let Some(ending) = self.ending.take() {
            self.apply_ending(ending);
        }
        match self.state {
            State::Closed => {}
            State::AwaitingRequest | State::AwaitingResponse | State::RequestPending { .. } => {
                self.finish(CloseCode::ABNORMAL, String::new(), false, CloseCause::Eof)
            }
            State::Open | State::Closing => self.finish(CloseCode::ABNORMAL, String::new(), false, CloseCause::Eof),
        }
        self.close_transport = true;
    }

    /// Fires the timers due at `now`. Harmless when nothing is due, so calling it early or
    /// twice is fine.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        // The peer's close or failure that waits for its events to be taken arrived before any
        // deadline now due: it takes effect first (else a timer would end the connection in its
        // place, and the ending, applied later, would queue a second close frame).
        if self.ending.is_some() && self.timers.next().is_some_and(|at| at <= now) {
            if let Some(ending) = self.ending.take() {
                self.apply_ending(ending);
            }
        }
        if self.timers.take_expired(Timer::Handshake, now)
            && matches!(self.state, State::AwaitingRequest | State::AwaitingResponse | State::RequestPending { .. })
        {
            let error = HandshakeError::Timeout;
            self.finish(CloseCode::ABNORMAL, String::new(), false, CloseCause::Handshake(error));
        }
        if self.timers.take_expired(Timer::PongDeadline, now) && self.state == State::Open {
            let reason = "keep-alive timeout".to_owned();
            self.queue_close(CloseCode::INTERNAL_ERROR, &reason);
            self.finish(CloseCode::INTERNAL_ERROR, reason, false, CloseCause::KeepAliveTimeout);
        }
        if self.timers.take_expired(Timer::Idle, now) && self.state == State::Open {
            if let Some(keep_alive) = self.config.keep_alive {
                self.queue_control(OpCode::Ping, b"");
                self.timers.set(Timer::PongDeadline, now + keep_alive.timeout);
            }
        }
        if self.timers.take_expired(Timer::Close, now) {
            match self.state {
                State::Closing => self.finish(CloseCode::ABNORMAL, String::new(), false, CloseCause::CloseTimeout),
                // A client gave the server its time to close TCP (RFC 6455 §7.1.1).
                State::Closed => self.close_transport = true,
                _ => {}
            }
        }
    }

    // ---- application commands ----

    /// Server: accepts the pending upgrade request; the connection opens and any frames that
    /// arrived behind the request are processed.
    pub fn accept(&mut self, accept: Accept) -> Result<(), SendError> {
        if self.state != (State::RequestPending { upgrade: true }) {
            return Err(SendError::NoPendingRequest);
        }
        let request = self.request.as_ref().ok_or(SendError::NoPendingRequest)?;
        let key = request.validate_upgrade().map_err(|_| SendError::NoPendingRequest)?;
        let offered = request.subprotocols();
        let subprotocol = match &accept.subprotocol {
            Some(chosen) if offered.contains(&chosen.as_str()) => Some(chosen.clone()),
            Some(chosen) => return Err(SendError::SubprotocolNotOffered(chosen.clone())),
            None => self.config.subprotocols.select(&offered).map(str::to_owned),
        };
        let compression = Compression::negotiate(&self.config, &request.extensions());
        let extensions = compression.as_ref().map(|(_, response)| response.as_str());
        let head = accept.encode(key, subprotocol.as_deref(), extensions)?;
        self.out.push_bytes(&head);
        self.subprotocol = subprotocol;
        self.compression = compression.map(|(session, _)| session);
        self.open();
        Ok(())
    }

    /// Server: answers the pending request with a plain HTTP response: a rejection of an
    /// upgrade (e.g. [`HttpResponse::service_unavailable`]) or the answer to a plain request.
    /// The connection then closes.
    pub fn respond(&mut self, response: HttpResponse) -> Result<(), SendError> {
        if !matches!(self.state, State::RequestPending { .. }) {
            return Err(SendError::NoPendingRequest);
        }
        let head = response.encode()?;
        self.out.push_bytes(&head);
        let status = response.status;
        self.finish(CloseCode::ABNORMAL, String::new(), false, CloseCause::Rejected { status });
        Ok(())
    }

    /// Sends a text message in one frame.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.check_data_send(text.len())?;
        self.queue_data(OpCode::Text, true, text.as_bytes());
        Ok(())
    }

    /// Sends a binary message in one frame.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.check_data_send(data.len())?;
        self.queue_data(OpCode::Binary, true, data);
        Ok(())
    }

    /// Sends a message in one frame, taking its buffer: a large unmasked payload is queued
    /// without a copy.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.send_message(message, true)
    }

    /// Sends a message in one frame without compressing it, whatever permessage-deflate
    /// agreed (RFC 7692 compresses message by message): for payloads that deflate cannot
    /// shrink, such as images, video or archives, where compressing only costs CPU. Without
    /// the extension it is [`send`](Self::send).
    pub fn send_uncompressed(&mut self, message: Message) -> Result<(), SendError> {
        self.send_message(message, false)
    }

    fn send_message(&mut self, message: Message, compress: bool) -> Result<(), SendError> {
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.into_bytes()),
            Message::Binary(data) => (OpCode::Binary, data),
        };
        self.check_data_send(payload.len())?;
        if compress {
            if let Some(compressed) = self.compress_whole_message(opcode, true, &payload) {
                self.queue_compressed(opcode, compressed);
                return Ok(());
            }
        }
        let header = self.data_header(opcode, true, payload.len());
        self.out.push_frame_owned(&header, payload);
        Ok(())
    }

    /// Sends one fragment of a message (RFC 6455 §5.4): the first fragment sets the kind, later
    /// ones must repeat it, `fin` ends the message. Text fragments are checked as UTF-8 across
    /// fragment boundaries.
    pub fn send_fragment(&mut self, kind: MessageKind, data: &[u8], fin: bool) -> Result<(), SendError> {
        self.check_open()?;
        let opcode = match self.sending_fragmented {
            None => match kind {
                MessageKind::Text => OpCode::Text,
                MessageKind::Binary => OpCode::Binary,
            },
            Some(current) if current == kind => OpCode::Continuation,
            Some(_) => return Err(SendError::FragmentInProgress),
        };
        self.check_queue(data.len())?;
        if kind == MessageKind::Text {
            let mut utf8 = if opcode == OpCode::Continuation { self.send_utf8.clone() } else { Utf8Validator::new() };
            utf8.feed(data).map_err(|_| SendError::InvalidUtf8)?;
            if fin && !utf8.is_complete() {
                return Err(SendError::InvalidUtf8);
            }
            self.send_utf8 = utf8;
        }
        self.sending_fragmented = if fin { None } else { Some(kind) };
        self.queue_data(opcode, fin, data);
        Ok(())
    }

    /// Queues a prepared frame (see [`PreparedFrame`]). On a server connection the shared bytes
    /// are queued as they are; a client must mask, so it copies the payload.
    pub fn send_prepared(&mut self, frame: &PreparedFrame) -> Result<(), SendError> {
        self.check_data_send(frame.wire_len())?;
        let len = frame.payload().len();
        match (self.role, self.compression.as_ref().map(|c| (c.min_size(), c.context_free_encoding()))) {
            (Role::Server, None) => self.out.push_shared(frame.bytes.clone()),
            (Role::Server, Some((min_size, _))) if len < min_size => self.out.push_shared(frame.bytes.clone()),
            // Our side resets its context: one compressed encoding serves every such peer.
            #[cfg(feature = "deflate")]
            (Role::Server, Some((_, Some((window_bits, level))))) => {
                self.out.push_shared(frame.compressed(window_bits, level))
            }
            // A client masks, and a kept context must see every message: encode here.
            _ => self.queue_data(frame.opcode, true, frame.payload()),
        }
        Ok(())
    }

    /// Sends a ping (at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Sends a pong (at most 125 bytes), e.g. an unsolicited heartbeat or, with `auto_pong`
    /// off, the answer to a ping.
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    /// Starts the close handshake (RFC 6455 §7.1.2): sends a close frame and waits (at most the
    /// close timeout) for the peer's. Messages that arrive meanwhile are still reported.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        if !code.is_sendable() {
            return Err(SendError::InvalidCloseCode(code.0));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(SendError::ControlTooLong(reason.len() + 2));
        }
        self.check_open()?;
        self.queue_close(code, reason);
        self.state = State::Closing;
        self.timers.clear(Timer::Idle);
        self.timers.clear(Timer::PongDeadline);
        self.timers.set(Timer::Close, self.now + self.config.close_timeout);
        Ok(())
    }

    // ---- internals: sending ----

    fn check_open(&self) -> Result<(), SendError> {
        match self.state {
            State::Open => Ok(()),
            State::AwaitingRequest | State::RequestPending { .. } | State::AwaitingResponse => Err(SendError::NotOpen),
            State::Closing | State::Closed => Err(SendError::Closed),
        }
    }

    fn check_queue(&self, len: usize) -> Result<(), SendError> {
        let limit = self.config.max_queued_bytes;
        let queued = self.out.len();
        if queued > 0 && queued.saturating_add(len) > limit {
            return Err(SendError::QueueFull { queued, limit });
        }
        Ok(())
    }

    fn check_data_send(&self, len: usize) -> Result<(), SendError> {
        self.check_open()?;
        if self.sending_fragmented.is_some() {
            return Err(SendError::FragmentInProgress);
        }
        self.check_queue(len)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        self.check_open()?;
        self.queue_control(opcode, payload);
        Ok(())
    }

    fn mask_key(&mut self) -> Option<[u8; 4]> {
        let rng = self.rng.as_mut()?;
        let mut key = [0u8; 4];
        rng.fill(&mut key);
        Some(key)
    }

    fn data_header(&mut self, opcode: OpCode, fin: bool, len: usize) -> FrameHeader {
        FrameHeader { fin, rsv: 0, opcode, mask: self.mask_key(), payload_len: len as u64 }
    }

    fn queue_data(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        if let Some(compressed) = self.compress_whole_message(opcode, fin, payload) {
            return self.queue_compressed(opcode, compressed);
        }
        let header = self.data_header(opcode, fin, payload.len());
        self.out.push_frame(&header, payload);
    }

    /// permessage-deflate compresses whole messages only: fragmented sends go uncompressed,
    /// which RFC 7692 allows message by message.
    fn compress_whole_message(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) -> Option<Vec<u8>> {
        if !fin || opcode == OpCode::Continuation {
            return None;
        }
        self.compression.as_mut()?.compress(payload)
    }

    /// Queues a compressed message: one frame with RSV1 set (RFC 7692 §6.1).
    fn queue_compressed(&mut self, opcode: OpCode, compressed: Vec<u8>) {
        let mut header = self.data_header(opcode, true, compressed.len());
        header.rsv = 0b100;
        self.out.push_frame_owned(&header, compressed);
    }

    fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let header =
            FrameHeader { fin: true, rsv: 0, opcode, mask: self.mask_key(), payload_len: payload.len() as u64 };
        self.out.push_frame(&header, payload);
    }

    /// Queues a close frame; 1005 means "no status" and sends an empty payload.
    fn queue_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        let len = if code == CloseCode::NO_STATUS {
            0
        } else {
            let reason = truncate_utf8(reason, MAX_CLOSE_REASON);
            payload[..2].copy_from_slice(&code.0.to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
            2 + reason.len()
        };
        self.queue_control(OpCode::Close, &payload[..len]);
    }

    // ---- internals: handshake ----

    fn receive_handshake(&mut self, data: &[u8]) {
        let searched = self.handshake_buf.len().saturating_sub(3);
        self.handshake_buf.extend_from_slice(data);
        let limit = self.config.max_handshake_size;
        // Only the first `limit` bytes can hold a head we accept, so only they are searched and
        // parsed: what lies beyond cannot change the outcome, which therefore does not depend
        // on how the bytes were split into reads.
        let window = &self.handshake_buf[..self.handshake_buf.len().min(limit)];
        // Parse only once a line ending that may end the head has arrived: re-parsing a growing
        // head on every byte would be quadratic.
        let tail = window.get(searched..).unwrap_or_default();
        self.head_end_seen |= tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n");
        if !self.head_end_seen {
            if self.handshake_buf.len() > limit {
                self.fail_handshake(HandshakeError::TooLarge(limit));
            }
            return;
        }
        let max_headers = self.config.max_headers;
        let too_large = self.handshake_buf.len() > limit;
        match self.role {
            Role::Server => match Request::parse(window, max_headers) {
                Ok(Parsed::Partial) if !too_large => {}
                Ok(Parsed::Partial) => self.fail_handshake(HandshakeError::TooLarge(limit)),
                Ok(Parsed::Complete(request, len)) => {
                    self.handshake_buf.drain(..len);
                    self.on_request(request);
                }
                Err(error) => self.fail_handshake(error),
            },
            Role::Client => match Response::parse(window, max_headers) {
                Ok(Parsed::Partial) if !too_large => {}
                Ok(Parsed::Partial) => self.fail_handshake(HandshakeError::TooLarge(limit)),
                Ok(Parsed::Complete(response, len)) => {
                    self.handshake_buf.drain(..len);
                    self.on_response(response);
                }
                Err(error) => self.fail_handshake(error),
            },
        }
    }

    fn on_request(&mut self, request: Request) {
        if !request.is_upgrade() {
            self.state = State::RequestPending { upgrade: false };
            self.request = Some(request.clone());
            self.events.push_back(Event::HttpRequest(request));
            return;
        }
        if let Err(error) = self.check_request(&request) {
            self.request = Some(request);
            return self.fail_handshake(error);
        }
        self.state = State::RequestPending { upgrade: true };
        self.request = Some(request.clone());
        self.events.push_back(Event::Request(request));
    }

    /// RFC 6455 §4.2.1 plus the config's origin and subprotocol policies.
    fn check_request(&self, request: &Request) -> Result<(), HandshakeError> {
        request.validate_upgrade()?;
        if !self.config.origins.allows(request.origin()) {
            return Err(HandshakeError::OriginNotAllowed(request.origin().map(str::to_owned)));
        }
        let policy = &self.config.subprotocols;
        if policy.required && policy.select(&request.subprotocols()).is_none() {
            return Err(HandshakeError::NoSubprotocol(policy.supported.join(", ")));
        }
        Ok(())
    }

    fn on_response(&mut self, response: Response) {
        let Some((request, key)) = &self.client else { return };
        let compression =
            response.validate(key, request).and_then(|()| Compression::from_response(&self.config, &response));
        let compression = match compression {
            Ok(compression) => compression,
            Err(error) => {
                self.response = Some(response);
                return self.fail_handshake(error);
            }
        };
        self.compression = compression;
        self.subprotocol = response.subprotocol().map(str::to_owned);
        self.response = Some(response.clone());
        self.events.push_back(Event::Connected(response));
        self.open();
    }

    /// The handshake failed: a server answers with the error's status; either side then ends.
    fn fail_handshake(&mut self, error: HandshakeError) {
        if self.role == Role::Server && error.status().is_some() {
            if let Ok(head) = HttpResponse::for_error(&error).encode() {
                self.out.push_bytes(&head);
            }
        }
        self.finish(CloseCode::ABNORMAL, String::new(), false, CloseCause::Handshake(error));
    }

    /// The handshake succeeded: start keep-alive and process what arrived behind the head.
    fn open(&mut self) {
        self.state = State::Open;
        self.timers.clear(Timer::Handshake);
        self.note_activity();
        let pending = std::mem::take(&mut self.handshake_buf);
        if !pending.is_empty() {
            self.receive_frames(&pending);
        }
    }

    // ---- internals: receiving frames ----

    fn note_activity(&mut self) {
        if let Some(keep_alive) = self.config.keep_alive {
            if self.state == State::Open {
                self.timers.set(Timer::Idle, self.now + keep_alive.interval);
                self.timers.clear(Timer::PongDeadline);
            }
        }
    }

    /// Processes received frame bytes; what is left when inflated data must first be taken
    /// is held for [`resume_held_input`](Self::resume_held_input).
    fn receive_frames(&mut self, input: &[u8]) {
        let rest = self.process_frames(input);
        if self.inflated_waiting && !rest.is_empty() {
            self.held.bytes.extend_from_slice(rest);
        }
    }

    /// Processes frames until the input is used up, the connection ends or inflated data waits
    /// to be taken; answers the input left.
    fn process_frames<'a>(&mut self, mut input: &'a [u8]) -> &'a [u8] {
        while !input.is_empty()
            && matches!(self.state, State::Open | State::Closing)
            && self.ending.is_none()
            && !self.inflated_waiting
        {
            let step = if self.frame.is_some() { self.receive_payload(input) } else { self.receive_header(input) };
            match step {
                Ok(consumed) => input = &input[consumed..],
                Err(error) => {
                    self.fail(error);
                    return &[];
                }
            }
        }
        if matches!(self.state, State::Open | State::Closing) && self.ending.is_none() {
            input
        } else {
            &[]
        }
    }

    /// The application took every event: go on with the input held behind inflated data.
    fn resume_held_input(&mut self) {
        self.inflated_waiting = false;
        if let Err(error) = self.drain_inflater() {
            return self.fail(error);
        }
        if self.inflated_waiting {
            return;
        }
        let mut held = std::mem::take(&mut self.held);
        let left = self.process_frames(&held.bytes[held.start..]).len();
        if self.inflated_waiting && left > 0 {
            held.start = held.bytes.len() - left;
            self.held = held;
        } else if held.eof {
            self.receive_eof(self.now);
        }
    }

    /// Reads (part of) a frame header; answers how many input bytes it took.
    fn receive_header(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let (parsed, consumed) = if self.header_len == 0 {
            match FrameHeader::parse(input)? {
                Some((header, len)) => (header, len),
                None => {
                    // Shorter than a header: fewer than MAX_HEADER_LEN bytes.
                    self.header_buf[..input.len()].copy_from_slice(input);
                    self.header_len = input.len();
                    return Ok(input.len());
                }
            }
        } else {
            let had = self.header_len;
            let take = input.len().min(MAX_HEADER_LEN - had);
            self.header_buf[had..had + take].copy_from_slice(&input[..take]);
            match FrameHeader::parse(&self.header_buf[..had + take])? {
                Some((header, len)) => {
                    self.header_len = 0;
                    (header, len - had)
                }
                None => {
                    self.header_len = had + take;
                    return Ok(take);
                }
            }
        };
        self.on_header(parsed, input.len() - consumed)?;
        Ok(consumed)
    }

    /// Checks a frame header against the role, the message in progress and the limits, before
    /// any of its payload is buffered. `available` is how much payload input is at hand, so that
    /// nothing is reserved on the strength of a length the peer merely announced.
    fn on_header(&mut self, header: FrameHeader, available: usize) -> Result<(), ProtocolError> {
        // RSV1 belongs to permessage-deflate, when negotiated, on a message's first frame only
        // (RFC 7692 §6.1); every other reserved bit is an error (RFC 6455 §5.2).
        let compressed =
            header.rsv == 0b100 && self.compression.is_some() && matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv != 0 && !compressed {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let len = header.payload_len;
        if header.opcode.is_control() {
            if !header.fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlTooLong(len));
            }
            self.control.clear();
        } else {
            let max_frame = self.config.max_frame_size;
            if len > max_frame as u64 {
                return Err(ProtocolError::FrameTooLarge { len, max: max_frame });
            }
            let len = len as usize;
            let streaming = self.config.receive_mode == ReceiveMode::Streaming;
            match (header.opcode, &mut self.message) {
                (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
                (OpCode::Continuation, Some(message)) => {
                    message.fragments += 1;
                    if message.fragments > self.config.max_fragments {
                        return Err(ProtocolError::TooManyFragments { max: self.config.max_fragments });
                    }
                }
                (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
                (opcode, None) => {
                    let kind = if opcode == OpCode::Text { MessageKind::Text } else { MessageKind::Binary };
                    let buf = if streaming { Vec::new() } else { Vec::with_capacity(len.min(available)) };
                    self.message = Some(MessageInProgress {
                        kind,
                        buf,
                        len: 0,
                        fragments: 1,
                        utf8: Utf8Validator::new(),
                        reported: false,
                        compressed,
                        inflated: 0,
                        inflater_full: false,
                    });
                }
            }
            let message = self.message.as_ref().map_or(0, |m| m.len);
            let max_message = self.config.max_message_size;
            if !streaming && message.saturating_add(len) > max_message {
                return Err(ProtocolError::MessageTooLarge { max: max_message });
            }
        }
        self.frame = Some(FrameInProgress {
            opcode: header.opcode,
            fin: header.fin,
            mask: header.mask,
            remaining: header.payload_len,
            received: 0,
        });
        if header.payload_len == 0 {
            self.finish_frame()?;
        }
        Ok(())
    }

    /// Takes payload bytes of the frame in progress; answers how many.
    fn receive_payload(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let Some(frame) = self.frame.as_mut() else { return Ok(0) };
        let take = usize::try_from(frame.remaining).map_or(input.len(), |r| r.min(input.len()));
        let chunk = &input[..take];
        if !frame.opcode.is_control() && self.message.as_ref().is_some_and(|m| m.compressed) {
            return self.receive_compressed_payload(chunk);
        }
        let offset = frame.received;
        frame.received += take;
        frame.remaining -= take as u64;
        let done = frame.remaining == 0;
        let (mask, opcode, fin) = (frame.mask, frame.opcode, frame.fin);

        if opcode.is_control() {
            let start = self.control.len();
            self.control.extend_from_slice(chunk);
            if let Some(key) = mask {
                apply_mask(&mut self.control[start..], key, offset);
            }
        } else if let Some(message) = self.message.as_mut() {
            message.len += take;
            match self.config.receive_mode {
                ReceiveMode::Messages => {
                    let start = message.buf.len();
                    message.buf.extend_from_slice(chunk);
                    let new = &mut message.buf[start..];
                    if let Some(key) = mask {
                        apply_mask(new, key, offset);
                    }
                    if message.kind == MessageKind::Text {
                        message.utf8.feed(new).map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                }
                ReceiveMode::Streaming => {
                    let mut data = chunk.to_vec();
                    if let Some(key) = mask {
                        apply_mask(&mut data, key, offset);
                    }
                    if message.kind == MessageKind::Text {
                        message.utf8.feed(&data).map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                    let last = done && fin;
                    if last && message.kind == MessageKind::Text && !message.utf8.is_complete() {
                        return Err(ProtocolError::InvalidUtf8);
                    }
                    let first = !message.reported;
                    message.reported = true;
                    self.events.push_back(Event::Chunk { kind: message.kind, data, first, last });
                }
            }
        }
        self.finish_payload(done, take)
    }

    /// Inflates payload bytes of a compressed message (RFC 7692 §7.2.2); answers how many it
    /// took, which in streaming mode may be fewer than offered (see [`Self::inflate`]).
    fn receive_compressed_payload(&mut self, chunk: &[u8]) -> Result<usize, ProtocolError> {
        let Some(frame) = self.frame.as_mut() else { return Ok(0) };
        let mut scratch = std::mem::take(&mut self.compressed_scratch);
        scratch.clear();
        scratch.extend_from_slice(chunk);
        if let Some(key) = frame.mask {
            apply_mask(&mut scratch, key, frame.received);
        }
        let took = self.inflate(&scratch);
        self.compressed_scratch = scratch;
        let took = took?;
        let Some(frame) = self.frame.as_mut() else { return Ok(took) };
        frame.received += took;
        frame.remaining -= took as u64;
        let done = frame.remaining == 0;
        // The trailer and the last chunk come with the end of the message.
        self.finish_payload(done, took)
    }

    /// Feeds unmasked compressed bytes of the message in progress to the inflater; answers how
    /// many it took. Messages mode inflates into the message, checked against
    /// `max_message_size`. Streaming mode reports what comes out as a chunk and stops once
    /// `MAX_INFLATED_CHUNK` bytes are out; the inflater may then hold more output (it reads
    /// input ahead), which [`drain_inflater`](Self::drain_inflater) delivers once the chunk
    /// was taken.
    fn inflate(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let Some(message) = self.message.as_mut() else { return Ok(0) };
        let compression = self.compression.as_mut().ok_or(ProtocolError::ReservedBits(0b100))?;
        let streaming = self.config.receive_mode == ReceiveMode::Streaming;
        let (limit, max_output) =
            if streaming { (usize::MAX, MAX_INFLATED_CHUNK) } else { (self.config.max_message_size, usize::MAX) };
        let mut streamed = Vec::new();
        let out = if streaming { &mut streamed } else { &mut message.buf };
        let utf8 = (message.kind == MessageKind::Text).then_some(&mut message.utf8);
        let took = compression.inflate(input, &mut message.inflated, limit, max_output, &mut text_sink(out, utf8))?;
        message.len += took;
        message.inflater_full = streamed.len() == max_output;
        if !streamed.is_empty() {
            let first = !message.reported;
            message.reported = true;
            self.events.push_back(Event::Chunk { kind: message.kind, data: streamed, first, last: false });
            self.inflated_waiting = true;
        }
        Ok(took)
    }

    /// Streaming mode: the output the inflater still holds from input already taken, as the
    /// next chunk, before any further input.
    fn drain_inflater(&mut self) -> Result<(), ProtocolError> {
        if self.message.as_ref().is_some_and(|m| m.compressed && m.inflater_full) {
            self.inflate(&[])?;
        }
        Ok(())
    }

    fn finish_payload(&mut self, done: bool, take: usize) -> Result<usize, ProtocolError> {
        if done {
            self.finish_frame()?;
        }
        Ok(take)
    }

    /// The frame in progress has all its payload.
    fn finish_frame(&mut self) -> Result<(), ProtocolError> {
        let Some(frame) = self.frame.take() else { return Ok(()) };
        match frame.opcode {
            OpCode::Ping => {
                let payload = std::mem::take(&mut self.control);
                if self.config.auto_pong && self.state == State::Open {
                    self.queue_control(OpCode::Pong, &payload);
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::Pong => {
                let payload = std::mem::take(&mut self.control);
                self.events.push_back(Event::Pong(payload));
            }
            OpCode::Close => self.on_close_frame()?,
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                if frame.fin {
                    self.finish_message(frame.received == 0)?;
                }
            }
        }
        Ok(())
    }

    /// The final frame of the data message in progress has all its payload.
    /// `final_frame_empty`: streaming mode reported no chunk for it yet.
    fn finish_message(&mut self, final_frame_empty: bool) -> Result<(), ProtocolError> {
        let Some(mut message) = self.message.take() else { return Ok(()) };
        // A compressed message ends with its trailer restored (RFC 7692 §7.2.2).
        let mut tail = Vec::new();
        if message.compressed {
            let compression = self.compression.as_mut().ok_or(ProtocolError::ReservedBits(0b100))?;
            let streaming = self.config.receive_mode == ReceiveMode::Streaming;
            let limit = if streaming { usize::MAX } else { self.config.max_message_size };
            let out = if streaming { &mut tail } else { &mut message.buf };
            let utf8 = (message.kind == MessageKind::Text).then_some(&mut message.utf8);
            compression.finish_message(&mut message.inflated, limit, &mut text_sink(out, utf8))?;
        }
        if message.kind == MessageKind::Text && !message.utf8.is_complete() {
            return Err(ProtocolError::InvalidUtf8);
        }
        self.inflated_waiting |= message.compressed;
        match self.config.receive_mode {
            ReceiveMode::Messages => {
                let message = match message.kind {
                    MessageKind::Text => {
                        Message::Text(String::from_utf8(message.buf).map_err(|_| ProtocolError::InvalidUtf8)?)
                    }
                    MessageKind::Binary => Message::Binary(message.buf),
                };
                self.events.push_back(Event::Message(message));
            }
            ReceiveMode::Streaming if final_frame_empty || message.compressed => {
                let first = !message.reported;
                self.events.push_back(Event::Chunk { kind: message.kind, data: tail, first, last: true });
            }
            ReceiveMode::Streaming => {}
        }
        Ok(())
    }

    fn on_close_frame(&mut self) -> Result<(), ProtocolError> {
        let (code, reason) = parse_close_payload(&self.control).map_err(|e| match e {
            ClosePayloadError::Truncated => ProtocolError::TruncatedClose,
            ClosePayloadError::InvalidCode(code) => ProtocolError::InvalidCloseCode(code),
            ClosePayloadError::InvalidReason => ProtocolError::InvalidCloseReason,
        })?;
        self.end(Ending::PeerClose { code, reason });
        Ok(())
    }

    /// The peer broke the protocol: "fail the WebSocket connection" (RFC 6455 §7.1.7).
    fn fail(&mut self, error: ProtocolError) {
        self.end(Ending::Failure(error));
    }

    /// Input processing stops here. The ending takes effect (close frame queued, `Closed`
    /// reported) once the application has taken the events before it, so that its answers to
    /// them (an echo, say) leave before our close frame: nothing already accepted is lost.
    fn end(&mut self, ending: Ending) {
        self.frame = None;
        self.message = None;
        if self.events.is_empty() {
            self.apply_ending(ending);
        } else {
            self.ending = Some(ending);
        }
    }

    fn apply_ending(&mut self, ending: Ending) {
        match ending {
            Ending::PeerClose { code, reason } => {
                let cause = if self.state == State::Closing {
                    CloseCause::LocalClosed
                } else {
                    // Echo the peer's code (RFC 6455 §5.5.1), or an empty close for "no status".
                    self.queue_close(code, "");
                    CloseCause::PeerClosed
                };
                self.finish(code, reason, true, cause);
                if self.role == Role::Client {
                    // The server closes TCP first (RFC 6455 §7.1.1); give it the close timeout.
                    self.close_transport = false;
                    self.timers.set(Timer::Close, self.now + self.config.close_timeout);
                }
            }
            Ending::Failure(error) => {
                let code = error.close_code();
                let reason = error.to_string();
                if self.state == State::Open {
                    self.queue_close(code, &reason);
                }
                self.finish(code, reason, false, CloseCause::Protocol(error));
            }
        }
    }

    /// Ends the connection: reports `Closed` once and drops everything in progress.
    fn finish(&mut self, code: CloseCode, reason: String, clean: bool, cause: CloseCause) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.timers.clear_all();
        self.close_transport = true;
        self.frame = None;
        self.message = None;
        self.control = Vec::new();
        self.handshake_buf = Vec::new();
        self.held = HeldInput::default();
        self.events.push_back(Event::Closed(Closed { code, reason, clean, cause }));
    }
}

/// Where inflated bytes go: appended to `out`, validated on the way when the message is text.
fn text_sink<'a>(
    out: &'a mut Vec<u8>,
    mut utf8: Option<&'a mut Utf8Validator>,
) -> impl FnMut(&[u8]) -> Result<(), ProtocolError> + 'a {
    move |piece| {
        if let Some(utf8) = utf8.as_deref_mut() {
            utf8.feed(piece).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        out.extend_from_slice(piece);
        Ok(())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
