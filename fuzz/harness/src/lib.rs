//! The fuzz harness shared by every cargo-fuzz target in `fuzz/` and by this crate's
//! `tests/fuzz_regressions.rs`, which replays the seeds and findings on stable: it depends on
//! `std` and `wsproto` only (and, under the `deflate` feature, on `flate2`, which wsproto's own
//! `deflate` feature brings). The structure-aware scenario of the `frame_sequence` target is
//! [`scenario`].
//!
//! A [`Harness`] drives one [`Connection`] the way an adapter would (feed input, drain events,
//! answer requests, write the outgoing queue, fire timers; or, holding events, like an
//! application that takes them late) and checks after every call that the connection keeps its
//! promises:
//!
//! - events: nothing after `Closed`, at most one `Closed`, `state()` agrees with it; no message
//!   over `max_message_size`, no chunk over `max_frame_size`, streamed text valid UTF-8 as it
//!   arrives and complete at the end, chunk `first`/`last` flags consistent;
//! - output: the head is well-formed HTTP (101 with the right accept key, or an error status
//!   with the matching body length); then every byte re-parses as frames of the right role
//!   (server unmasked, client masked), RSV clear (RSV1 only on a whole compressed message, when
//!   negotiated, which inflates to what was sent), control frames FIN and at most 125 bytes,
//!   our own fragments well sequenced and text valid UTF-8, one close frame at most, with a
//!   sendable code, and nothing after it; data, pings and pongs are exactly what the
//!   application sent or the RFC makes us send (auto-pong echoes, keep-alive pings), in order;
//!   the close code we sent agrees with the `Closed` event's cause;
//! - commands: a failed one queues nothing and changes no state;
//! - timers: after `handle_timeout(t)` nothing is due at `t`; a second call at `t` and a call
//!   before the deadline change nothing;
//! - memory (when the [`CountingAlloc`] global allocator is installed): what the connection
//!   holds stays within a bound made of its configured limits and its queued bytes, no single
//!   call allocates more than its input and the limits justify, and the queue is explained by
//!   the input, the application's sends and the number of calls;
//! - determinism: the same input fed whole and in arbitrary pieces gives the same events and the
//!   same output bytes (see [`compare_runs`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsproto::bytes::{Bytes, BytesMut};
use wsproto::frame::{apply_mask, FrameHeader, OpCode, MAX_CONTROL_PAYLOAD};
use wsproto::{
    accept_key, Accept, CloseCause, CloseCode, Closed, Config, Connection, ConnectionState, Event, KeepAlive, Message,
    MessageKind, OriginPolicy, OutgoingRequest, OutgoingResponse, ProtocolError, RandomSource, ReceiveMode, Role,
    SubprotocolPolicy, MAX_CLOSE_REASON,
};

pub mod scenario;

// ---------------------------------------------------------------------------------------------
// Memory accounting

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

fn note_alloc(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        let _ = TRACKED.try_with(|t| t.set(true));
    });
}

/// A global allocator that counts the live heap bytes of each thread, so that the harness can
/// measure what a connection holds. Install it in each fuzz target binary:
/// `#[global_allocator] static ALLOC: CountingAlloc = CountingAlloc;`. Without it the memory
/// checks are skipped.
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` unchanged; the bookkeeping only touches
// thread-local `Cell`s (const-initialised, no destructor, never allocating).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            note_alloc(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            note_alloc(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        note_alloc(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            note_alloc(new_size as isize - layout.size() as isize);
        }
        p
    }
}

fn live_bytes() -> isize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

fn reset_peak() {
    let live = live_bytes();
    let _ = PEAK.try_with(|p| p.set(live));
}

fn peak_bytes() -> isize {
    PEAK.try_with(Cell::get).unwrap_or(0)
}

/// Runs `f` and answers its result and the most heap it held at once beyond what was live
/// before (0 without [`CountingAlloc`]).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = live_bytes();
    reset_peak();
    let r = f();
    (r, (peak_bytes() - before).max(0) as usize)
}

/// Whether [`CountingAlloc`] is the global allocator (it has seen an allocation on this thread).
pub fn memory_tracked() -> bool {
    drop(std::hint::black_box(Box::new(0u64)));
    TRACKED.try_with(Cell::get).unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// The limits every connection target runs with: small, so the fuzzer reaches them.
pub const MAX_FRAME: usize = 4 << 10;
/// See [`MAX_FRAME`].
pub const MAX_MESSAGE: usize = 16 << 10;
/// See [`MAX_FRAME`].
pub const MAX_FRAGMENTS: usize = 16;
/// See [`MAX_FRAME`].
pub const MAX_HANDSHAKE: usize = 1 << 10;
/// See [`MAX_FRAME`].
pub const MAX_HEADERS: usize = 16;
/// See [`MAX_FRAME`].
pub const MAX_QUEUED: usize = 32 << 10;
/// Keep-alive interval and timeout, handshake and close timeouts (milliseconds).
pub const KEEP_ALIVE_INTERVAL_MS: u64 = 1000;
/// See [`KEEP_ALIVE_INTERVAL_MS`].
pub const KEEP_ALIVE_TIMEOUT_MS: u64 = 500;
/// See [`KEEP_ALIVE_INTERVAL_MS`].
pub const HANDSHAKE_TIMEOUT_MS: u64 = 2000;
/// See [`KEEP_ALIVE_INTERVAL_MS`].
pub const CLOSE_TIMEOUT_MS: u64 = 1000;

/// The origin and subprotocols the config flags may require, and the valid handshake offers.
pub const ORIGIN: &str = "http://allowed.example";

/// The config chosen by a flags byte: bit 0 streaming, bit 1 auto-pong off, bit 2 keep-alive
/// off, bit 3 no handshake timeout, bit 4 origin allow-list (bit 5: a missing origin is
/// allowed), bit 6 subprotocols `superchat, chat` (bit 7: required).
///
/// With the `deflate` feature, mode bit 5 adds permessage-deflate (see [`Mode`]).
#[allow(clippy::needless_update)] // not needless without the `deflate` feature's field
pub fn config(flags: u8, mode: Mode) -> Config {
    let _ = mode; // only read with the `deflate` feature
    let bit = |n: u8| flags & (1 << n) != 0;
    Config {
        max_frame_size: MAX_FRAME,
        max_message_size: MAX_MESSAGE,
        max_fragments: MAX_FRAGMENTS,
        max_handshake_size: MAX_HANDSHAKE,
        max_headers: MAX_HEADERS,
        max_queued_bytes: MAX_QUEUED,
        receive_mode: if bit(0) { ReceiveMode::Streaming } else { ReceiveMode::Messages },
        auto_pong: !bit(1),
        keep_alive: (!bit(2)).then_some(KeepAlive {
            interval: Duration::from_millis(KEEP_ALIVE_INTERVAL_MS),
            timeout: Duration::from_millis(KEEP_ALIVE_TIMEOUT_MS),
        }),
        handshake_timeout: (!bit(3)).then_some(Duration::from_millis(HANDSHAKE_TIMEOUT_MS)),
        close_timeout: Duration::from_millis(CLOSE_TIMEOUT_MS),
        origins: if bit(4) {
            OriginPolicy::AllowList { origins: vec![ORIGIN.into()], allow_missing: bit(5) }
        } else {
            OriginPolicy::Any
        },
        subprotocols: if bit(6) {
            SubprotocolPolicy { supported: vec!["superchat".into(), "chat".into()], required: bit(7) }
        } else {
            SubprotocolPolicy::default()
        },
        #[cfg(feature = "deflate")]
        deflate: mode.deflate(),
        // Fields added later keep their defaults.
        ..Config::default()
    }
}

/// How the harness plays the application, chosen by a mode byte: bit 0 prefix a valid handshake
/// to the input, bit 1 (client) offer subprotocols and an extension, bit 2 (server) reject
/// upgrades with 503, bit 3 (server) accept naming the last offered subprotocol, bit 4 (server)
/// add a header to the 101; bit 5 configure permessage-deflate (with the `deflate` feature),
/// bits 6-7 which variant: context takeover, no context takeover either way, 9-bit windows and
/// every message compressed, level 0 with the server resetting its context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mode(pub u8);

impl Mode {
    fn bit(self, n: u8) -> bool {
        self.0 & (1 << n) != 0
    }
    /// Prefix a valid handshake so that the input reaches the frame parser.
    pub fn prefix(self) -> bool {
        self.bit(0)
    }
    fn client_offers(self) -> bool {
        self.bit(1)
    }
    fn reject(self) -> bool {
        self.bit(2)
    }
    fn choose_last_subprotocol(self) -> bool {
        self.bit(3)
    }
    fn extra_header(self) -> bool {
        self.bit(4)
    }

    /// The permessage-deflate configuration chosen.
    #[cfg(feature = "deflate")]
    pub fn deflate(self) -> Option<wsproto::DeflateConfig> {
        if !self.bit(5) {
            return None;
        }
        let default = wsproto::DeflateConfig::default();
        Some(match self.0 >> 6 {
            0 => default,
            1 => {
                wsproto::DeflateConfig { server_no_context_takeover: true, client_no_context_takeover: true, ..default }
            }
            2 => {
                wsproto::DeflateConfig { server_max_window_bits: 9, client_max_window_bits: 9, min_size: 0, ..default }
            }
            _ => wsproto::DeflateConfig { level: 0, min_size: 0, server_no_context_takeover: true, ..default },
        })
    }
}

/// A valid upgrade request that passes every config flag combination's policies.
/// It offers permessage-deflate, which a server configured for it accepts.
pub const VALID_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Origin: http://allowed.example\r\nSec-WebSocket-Protocol: chat\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

/// The accept key for [`VALID_REQUEST`] (RFC 6455 §1.3's example).
pub const VALID_REQUEST_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Deterministic "randomness" for client keys and masks, so that runs reproduce.
#[derive(Debug, Clone)]
pub struct DetRng(pub u32);

impl RandomSource for DetRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            // xorshift32
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            *b = (self.0 >> 24) as u8;
        }
    }
}

/// The seed every client connection starts from.
pub const RNG_SEED: u32 = 0x1234_5678;

/// The key a client connection sends with [`RNG_SEED`] and the 101 that answers it.
pub fn client_key() -> String {
    let mut nonce = [0u8; 16];
    DetRng(RNG_SEED).fill(&mut nonce);
    base64(&nonce)
}

/// A 101 response that a client created by [`Harness::client`] without permessage-deflate
/// accepts.
pub fn valid_response() -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(client_key().as_bytes())
    )
    .into_bytes()
}

/// The 101 a server configured like the client answers to `request` (the client's own head):
/// a real peer's negotiation, for clients that offer permessage-deflate.
pub fn response_from_server(config: Config, request: &[u8]) -> Vec<u8> {
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(config), now);
    server.receive(now, request);
    match server.poll_event() {
        Some(Event::Request(_)) => server.accept(Accept::new()).expect("accept the client's own request"),
        other => panic!("the client's request was not an upgrade: {other:?}"),
    }
    let head = server.outgoing_front().to_vec();
    assert!(head.starts_with(b"HTTP/1.1 101 "));
    head
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How many times a streamed message may outgrow its frames: 1, except with
/// permessage-deflate, up to deflate's maximum ratio (about 1032:1).
pub fn inflation_factor(config: &Config) -> usize {
    #[cfg(feature = "deflate")]
    if config.deflate.is_some() {
        return 1100;
    }
    let _ = config;
    1
}

/// What inflated data may be out at once beyond one message: nothing, except with
/// permessage-deflate in streaming mode, one chunk (input is processed no further until the
/// application took it; `inflation_per_read_is_bounded` in tests/fuzz_regressions.rs).
pub fn inflated_chunk(config: &Config) -> usize {
    #[cfg(feature = "deflate")]
    if config.deflate.is_some() {
        return wsproto::MAX_INFLATED_CHUNK;
    }
    let _ = config;
    0
}

// ---------------------------------------------------------------------------------------------
// Events

/// Checks each event as it is polled.
#[derive(Debug, Default)]
struct EventChecker {
    closed: Option<Closed>,
    opened: bool,
    head_events: usize,
    /// Streaming: the message being delivered in chunks (kind, bytes so far).
    chunked: Option<(MessageKind, Vec<u8>)>,
}

impl EventChecker {
    fn check(&mut self, role: Role, config: &Config, event: &Event) {
        assert!(self.closed.is_none(), "event after Closed: {event:?}");
        match event {
            Event::Request(request) | Event::HttpRequest(request) => {
                assert_eq!(role, Role::Server, "client reported a request");
                assert_eq!(self.head_events, 0, "second request event");
                self.head_events += 1;
                if matches!(event, Event::Request(_)) {
                    assert_eq!(request.method(), "GET");
                    assert_eq!(request.header("sec-websocket-version"), Some("13"));
                    assert!(config.origins.allows(request.origin()), "origin policy bypassed");
                    let policy = &config.subprotocols;
                    assert!(!policy.required || policy.select(&request.subprotocols()).is_some());
                }
            }
            Event::Connected(response) => {
                assert_eq!(role, Role::Client, "server reported Connected");
                assert_eq!(self.head_events, 0, "second Connected");
                self.head_events += 1;
                assert_eq!(response.status(), 101);
                self.opened = true;
            }
            Event::Message(message) => {
                assert!(self.opened, "message before the connection opened");
                assert!(self.chunked.is_none(), "whole message in streaming mode");
                assert_eq!(config.receive_mode, ReceiveMode::Messages);
                assert!(message.as_bytes().len() <= config.max_message_size, "message over max_message_size");
            }
            Event::Chunk { kind, data, first, last } => {
                assert!(self.opened, "chunk before the connection opened");
                assert_eq!(config.receive_mode, ReceiveMode::Streaming);
                let factor = inflation_factor(config);
                let largest = config.max_frame_size.max(inflated_chunk(config));
                assert!(data.len() <= largest, "chunk larger than a frame or an inflated chunk");
                match (&mut self.chunked, first) {
                    (None, true) => self.chunked = Some((*kind, Vec::new())),
                    (Some(_), true) => panic!("first chunk while a message is in progress"),
                    (None, false) => panic!("continuing chunk without a first one"),
                    (Some((k, _)), false) => assert_eq!(k, kind, "kind changed within a message"),
                }
                let Some((kind, so_far)) = self.chunked.as_mut() else { unreachable!() };
                so_far.extend_from_slice(data);
                assert!(
                    so_far.len() <= config.max_frame_size * config.max_fragments * factor,
                    "streamed message over max_frame_size * max_fragments"
                );
                if *kind == MessageKind::Text {
                    // A prefix of valid text: at most an unfinished code point at the end.
                    if let Err(e) = std::str::from_utf8(so_far) {
                        assert!(e.error_len().is_none() && !last, "streamed text is not UTF-8: {so_far:x?}");
                    }
                }
                if *last {
                    self.chunked = None;
                }
            }
            Event::Ping(payload) | Event::Pong(payload) => {
                assert!(self.opened, "control frame before the connection opened");
                assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
            }
            Event::Closed(closed) => {
                let cause = &closed.cause;
                let clean = matches!(cause, CloseCause::PeerClosed | CloseCause::LocalClosed);
                assert_eq!(closed.clean, clean, "clean flag disagrees with the cause: {closed:?}");
                match cause {
                    CloseCause::PeerClosed | CloseCause::LocalClosed => {
                        assert!(closed.code.is_sendable() || closed.code == CloseCode::NO_STATUS, "{closed:?}");
                        assert!(closed.reason.len() <= MAX_CLOSE_REASON);
                    }
                    CloseCause::Protocol(error) => assert_eq!(closed.code, error.close_code()),
                    CloseCause::KeepAliveTimeout => assert_eq!(closed.code, CloseCode::INTERNAL_ERROR),
                    _ => assert_eq!(closed.code, CloseCode::ABNORMAL, "{closed:?}"),
                }
                self.closed = Some(*closed.clone());
            }
            other => panic!("unknown event {other:?}"),
        }
    }
}

/// Takes a polled event off the connection's allocations; answers it and the heap bytes the
/// connection handed over with it. A payload shares a buffer whose size it does not tell
/// ([`Bytes`]), so it is measured: the payload is copied (exactly its length) and the original
/// dropped, which frees what it held unless something else still shares it.
fn take_event(event: Event) -> (Event, isize) {
    fn copy(bytes: Bytes) -> Bytes {
        Bytes::copy_from_slice(&bytes)
    }
    let before = live_bytes();
    let (event, copied) = match event {
        Event::Message(Message::Text(text)) => {
            let len = text.len();
            (Event::Message(Message::Text(wsproto::Utf8Bytes::from(text.as_str()))), len)
        }
        Event::Message(Message::Binary(data)) => {
            let len = data.len();
            (Event::Message(Message::Binary(copy(data))), len)
        }
        Event::Chunk { kind, data, first, last } => {
            let len = data.len();
            (Event::Chunk { kind, data: copy(data), first, last }, len)
        }
        Event::Ping(payload) => (Event::Ping(copy(payload.clone())), payload.len()),
        Event::Pong(payload) => (Event::Pong(copy(payload.clone())), payload.len()),
        other => {
            let heap = event_heap(&other) as isize;
            return (other, heap);
        }
    };
    (event, before - live_bytes() + copied as isize)
}

/// Whether a run hands its input over through a read buffer: half the runs, by the parity of
/// the setup bytes (every bit of both is already spoken for).
fn buffered_input(flags: u8, mode: Mode) -> bool {
    (flags.count_ones() + mode.0.count_ones()) % 2 == 1
}

/// The heap bytes a payload-free event owns (what the connection hands over when it is polled).
fn event_heap(event: &Event) -> usize {
    fn headers(h: &[wsproto::Header]) -> usize {
        std::mem::size_of_val(h) + h.iter().map(|h| h.name.len() + h.value.len()).sum::<usize>()
    }
    match event {
        Event::Request(r) | Event::HttpRequest(r) => {
            std::mem::size_of::<wsproto::Request>() + r.method().len() + r.target().len() + headers(r.headers())
        }
        Event::Connected(r) => std::mem::size_of::<wsproto::Response>() + headers(r.headers()),
        Event::Closed(c) => std::mem::size_of::<Closed>() + c.reason.capacity(),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// A frame the connection sent, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFrame {
    /// The opcode.
    pub opcode: OpCode,
    /// FIN.
    pub fin: bool,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutPhase {
    /// Reading our own HTTP head.
    Head,
    /// Frames follow.
    Frames,
    /// A non-101 response (with its body) was sent: nothing may follow.
    Done { body_left: usize },
}

/// Parses and checks everything the connection writes.
#[derive(Debug)]
struct OutputChecker {
    role: Role,
    keep_alive: bool,
    buf: Vec<u8>,
    phase: OutPhase,
    /// Server: the status line's code. Client: 0.
    status: Option<u16>,
    /// The whole head as sent.
    head: Vec<u8>,
    frames: Vec<SentFrame>,
    /// Our own fragmented message in progress and its bytes (for UTF-8).
    fragmented: Option<(OpCode, Vec<u8>)>,
    /// The close frame we sent: `None` code for an empty payload.
    close_sent: Option<(Option<u16>, String)>,
    /// What the application sent, in order (data frames exactly).
    expect_data: VecDeque<SentFrame>,
    expect_pings: VecDeque<Vec<u8>>,
    /// Pongs we may send, in order: (payload, required).
    expect_pongs: VecDeque<(Vec<u8>, bool)>,
    required_pongs: usize,
    pongs_sent: usize,
    /// Events have been held: a pong may leave before the harness has seen its ping, and a ping
    /// seen late is registered after pongs the application sent meanwhile. From then on pongs
    /// are matched as a multiset (each explained by a ping or the application, every owed one
    /// sent); runs that never hold events keep the order checked.
    unordered_pongs: bool,
    /// Pongs sent before the harness saw their pings (holding), to be explained by them.
    unexplained_pongs: VecDeque<Vec<u8>>,
    /// A deadline dropped what was still queued (the drain deadline after the end, or the
    /// close timeout with our close frame unread): what was owed may never have left.
    discarded: bool,
    /// permessage-deflate was negotiated: RSV1 messages are inflated with this (never reset:
    /// a context kept is right whether or not the sender resets its own).
    #[cfg(feature = "deflate")]
    inflater: Option<flate2::Decompress>,
}

impl OutputChecker {
    fn new(role: Role, keep_alive: bool) -> Self {
        OutputChecker {
            role,
            keep_alive,
            buf: Vec::new(),
            phase: OutPhase::Head,
            status: None,
            head: Vec::new(),
            frames: Vec::new(),
            fragmented: None,
            close_sent: None,
            expect_data: VecDeque::new(),
            expect_pings: VecDeque::new(),
            expect_pongs: VecDeque::new(),
            required_pongs: 0,
            pongs_sent: 0,
            unordered_pongs: false,
            unexplained_pongs: VecDeque::new(),
            discarded: false,
            #[cfg(feature = "deflate")]
            inflater: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        loop {
            match self.phase {
                OutPhase::Head => {
                    let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        assert!(self.buf.len() <= 64 << 10, "head without an end");
                        return;
                    };
                    let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                    self.on_head(head);
                }
                OutPhase::Done { body_left } => {
                    let take = body_left.min(self.buf.len());
                    self.buf.drain(..take);
                    self.phase = OutPhase::Done { body_left: body_left - take };
                    assert!(self.buf.is_empty(), "bytes after a non-101 response: {:x?}", self.buf);
                    return;
                }
                OutPhase::Frames => {
                    let (header, len) = match FrameHeader::parse(&self.buf) {
                        Ok(Some(parsed)) => parsed,
                        Ok(None) => return,
                        Err(e) => panic!("we sent an invalid frame header ({e}): {:x?}", self.buf),
                    };
                    let Ok(payload_len) = usize::try_from(header.payload_len) else { panic!("huge frame") };
                    if self.buf.len() < len + payload_len {
                        return;
                    }
                    let mut payload = self.buf[len..len + payload_len].to_vec();
                    self.buf.drain(..len + payload_len);
                    match (self.role, header.mask) {
                        (Role::Server, Some(_)) => panic!("server sent a masked frame"),
                        (Role::Client, None) => panic!("client sent an unmasked frame"),
                        (_, Some(key)) => apply_mask(&mut payload, key, 0),
                        (_, None) => {}
                    }
                    let payload = self.uncompress(header.rsv, header.opcode, header.fin, payload);
                    self.on_frame(SentFrame { opcode: header.opcode, fin: header.fin, payload });
                }
            }
        }
    }

    fn on_head(&mut self, head: Vec<u8>) {
        let text = std::str::from_utf8(&head).expect("our head is ASCII/UTF-8");
        let mut lines = text[..text.len() - 4].split("\r\n");
        let first = lines.next().unwrap_or_default();
        let mut content_length = None;
        for line in lines {
            assert!(!line.contains(['\r', '\n', '\0']), "bare CR/LF/NUL in our head: {line:?}");
            let (name, value) = line.split_once(": ").unwrap_or_else(|| panic!("malformed header line {line:?}"));
            assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':'), "{line:?}");
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.parse::<usize>().expect("numeric Content-Length"));
            }
        }
        match self.role {
            Role::Server => {
                let status: u16 = first
                    .strip_prefix("HTTP/1.1 ")
                    .and_then(|rest| rest.get(..3))
                    .and_then(|code| code.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line {first:?}"));
                self.status = Some(status);
                self.phase = if status == 101 {
                    assert!(content_length.is_none());
                    OutPhase::Frames
                } else {
                    OutPhase::Done { body_left: content_length.expect("error responses carry Content-Length") }
                };
            }
            Role::Client => {
                assert!(first.starts_with("GET ") && first.ends_with(" HTTP/1.1"), "bad request line {first:?}");
                self.phase = OutPhase::Frames;
            }
        }
        self.head = head;
    }

    /// RSV1 (permessage-deflate, RFC 7692 §6.1) only when negotiated, only on whole data
    /// messages (we never compress fragments): the payload inflated. Other RSV bits never.
    fn uncompress(&mut self, rsv: u8, opcode: OpCode, fin: bool, payload: Vec<u8>) -> Vec<u8> {
        if rsv == 0 {
            return payload;
        }
        assert_eq!(rsv, 0b100, "we set RSV2 or RSV3");
        assert!(matches!(opcode, OpCode::Text | OpCode::Binary) && fin, "RSV1 on a {opcode:?} frame (fin {fin})");
        #[cfg(feature = "deflate")]
        if let Some(inflater) = self.inflater.as_mut() {
            return inflate(inflater, &payload);
        }
        panic!("RSV1 without permessage-deflate negotiated");
    }

    fn header(&self, name: &str) -> Option<&str> {
        let text = std::str::from_utf8(&self.head).ok()?;
        text.split("\r\n")
            .filter_map(|l| l.split_once(": "))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn on_frame(&mut self, frame: SentFrame) {
        assert!(self.close_sent.is_none(), "frame after our close frame: {frame:?}");
        match frame.opcode {
            OpCode::Close | OpCode::Ping | OpCode::Pong => {
                assert!(frame.fin, "fragmented control frame sent");
                assert!(frame.payload.len() <= MAX_CONTROL_PAYLOAD, "control frame over 125 bytes sent");
            }
            OpCode::Text | OpCode::Binary => {
                assert!(self.fragmented.is_none(), "new message while our fragmented one is unfinished");
                if !frame.fin {
                    self.fragmented = Some((frame.opcode, frame.payload.clone()));
                } else if frame.opcode == OpCode::Text {
                    assert!(std::str::from_utf8(&frame.payload).is_ok(), "we sent invalid UTF-8 text");
                }
            }
            OpCode::Continuation => {
                let Some((opcode, so_far)) = self.fragmented.as_mut() else { panic!("continuation without a message") };
                so_far.extend_from_slice(&frame.payload);
                if frame.fin {
                    if *opcode == OpCode::Text {
                        assert!(std::str::from_utf8(so_far).is_ok(), "we sent invalid UTF-8 text in fragments");
                    }
                    self.fragmented = None;
                }
            }
        }
        match frame.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                let expected = self.expect_data.pop_front();
                assert_eq!(Some(&frame), expected.as_ref(), "data frame differs from what the application sent");
            }
            OpCode::Ping => {
                if self.expect_pings.front() == Some(&frame.payload) {
                    self.expect_pings.pop_front();
                } else {
                    assert!(self.keep_alive && frame.payload.is_empty(), "unexpected ping {:x?}", frame.payload);
                }
            }
            OpCode::Pong => {
                self.pongs_sent += 1;
                if self.unordered_pongs {
                    match self.expect_pongs.iter().position(|(payload, _)| *payload == frame.payload) {
                        Some(i) => drop(self.expect_pongs.remove(i)),
                        None => self.unexplained_pongs.push_back(frame.payload.clone()),
                    }
                } else {
                    // In order, skipping pongs that were only possibly owed.
                    loop {
                        match self.expect_pongs.pop_front() {
                            Some((payload, _)) if payload == frame.payload => break,
                            Some((_, false)) => continue,
                            other => panic!("pong {:x?} sent, {other:x?} expected", frame.payload),
                        }
                    }
                }
            }
            OpCode::Close => {
                let sent = match frame.payload.as_slice() {
                    [] => (None, String::new()),
                    [_] => panic!("one-byte close payload sent"),
                    [hi, lo, reason @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        assert!(CloseCode(code).is_sendable(), "we sent close code {code}");
                        let reason = std::str::from_utf8(reason).expect("our close reason is UTF-8");
                        (Some(code), reason.to_owned())
                    }
                };
                self.close_sent = Some(sent);
            }
        }
        self.frames.push(frame);
    }
}

/// Inflates one compressed message: the payload and the `00 00 ff ff` trailer the sender
/// removed (RFC 7692 §7.2.2).
#[cfg(feature = "deflate")]
fn inflate(inflater: &mut flate2::Decompress, payload: &[u8]) -> Vec<u8> {
    let input = [payload, &[0, 0, 0xff, 0xff]].concat();
    let mut out = Vec::with_capacity(4 * input.len() + 64);
    let mut consumed = 0;
    loop {
        let before = inflater.total_in();
        let status = inflater
            .decompress_vec(&input[consumed..], &mut out, flate2::FlushDecompress::Sync)
            .expect("we sent an invalid deflate stream");
        consumed += (inflater.total_in() - before) as usize;
        assert!(status != flate2::Status::StreamEnd, "we sent a final deflate block");
        if consumed == input.len() && out.len() < out.capacity() {
            return out;
        }
        assert!(out.len() < 64 << 20, "a message we sent inflates beyond 64 MiB");
        out.reserve(out.capacity().max(64));
    }
}

// ---------------------------------------------------------------------------------------------
// The driver

/// How the harness writes the outgoing queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Write everything, in writes of at most `piece` bytes (0: whole runs), through
    /// `outgoing_front` or (`vectored`) through `outgoing` with at most three slices.
    All {
        /// Write size (0: as much as offered).
        piece: usize,
        /// Use the vectored interface.
        vectored: bool,
    },
    /// Write at most this many bytes and leave the rest queued (a slow peer).
    Some(usize),
}

impl Drain {
    /// A drain strategy from a schedule byte: `k = op & 0x1F` gives writes of `k³` bytes (1, 8,
    /// 27, ... 29 791; 0: whole runs); bit 5 vectored; bit 6 write only `k³` bytes in all.
    pub fn from_byte(op: u8) -> Drain {
        let piece = usize::from(op & 0x1F).pow(3);
        match (op & 0x40 != 0, op & 0x20 != 0) {
            (true, _) => Drain::Some(piece),
            (false, vectored) => Drain::All { piece, vectored },
        }
    }
}

/// What a run produced, for comparing runs of the same input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Every byte written.
    pub output: Vec<u8>,
    /// Calls were made while events were held (`Hold`): the run left the documented run loop
    /// (take every event after every input), so it is checked on its own but not compared
    /// with other chunkings. In streaming mode, for one, whether a failure waits for earlier
    /// chunks to be taken depends on whether a read reported any.
    pub off_run_loop: bool,
}

/// A connection driven like an adapter would, checked after every call.
pub struct Harness {
    /// The connection under test.
    pub conn: Connection,
    role: Role,
    config: Arc<Config>,
    mode: Mode,
    /// The virtual clock.
    pub now: Instant,
    events: Vec<Event>,
    written: Vec<u8>,
    ev: EventChecker,
    out: OutputChecker,
    /// The request the server accepted (for the accept key).
    accepted: Option<wsproto::Request>,
    /// The application's close (code, reason) if it was queued.
    app_close: Option<(u16, String)>,
    /// The kind of the application's fragmented message in progress.
    sending: Option<MessageKind>,
    /// The size of the last input, which `accept` may process (bytes behind the request).
    last_input: usize,
    // Memory accounting (only meaningful with `CountingAlloc`).
    tracked: bool,
    /// Net heap bytes allocated inside connection calls, less what events handed over.
    held: isize,
    max_burst: usize,
    /// Bytes received, payload bytes the application queued, connection calls: what the queue
    /// may hold is bounded by them.
    input_total: usize,
    app_total: usize,
    calls: usize,
    /// Leave events in the connection after inputs and commands (a lazy application).
    hold: bool,
    /// A call was made while events were held.
    off_run_loop: bool,
    /// Bytes received and reads since events were last drained: held events may own that many
    /// bytes, and number one per two bytes (a frame) plus one per read (a streamed chunk).
    held_input: usize,
    held_reads: usize,
    /// The transport's end of file was handed over.
    eof_received: bool,
    /// Bytes are handed over through this read buffer (`receive_buf`: whole frames split off
    /// it, an unfinished small frame left in it) rather than as slices; in half the runs.
    read_buf: Option<BytesMut>,
}

impl Harness {
    /// A server connection.
    pub fn server(flags: u8, mode: Mode) -> Harness {
        let config = Arc::new(config(flags, mode));
        Harness::start(Role::Server, config, mode, buffered_input(flags, mode))
    }

    /// A client connection with the deterministic RNG.
    pub fn client(flags: u8, mode: Mode) -> Harness {
        let config = Arc::new(config(flags, mode));
        Harness::start(Role::Client, config, mode, buffered_input(flags, mode))
    }

    fn start(role: Role, config: Arc<Config>, mode: Mode, buffered: bool) -> Harness {
        let now = Instant::now();
        let tracked = memory_tracked();
        let before = live_bytes();
        let conn = match role {
            Role::Server => Connection::server(config.clone(), now),
            Role::Client => {
                let mut request = OutgoingRequest::new("example.com", "/chat");
                if mode.client_offers() {
                    request.subprotocols = vec!["chat".into(), "superchat".into()];
                    if !mode.bit(5) {
                        request.extensions = vec!["permessage-deflate; client_max_window_bits".into()];
                    }
                }
                Connection::client_with_rng(config.clone(), request, now, Box::new(DetRng(RNG_SEED)))
                    .expect("a valid client request")
            }
        };
        let held = live_bytes() - before;
        let keep_alive = config.keep_alive.is_some();
        let mut h = Harness {
            conn,
            role,
            config,
            mode,
            now,
            events: Vec::new(),
            written: Vec::new(),
            ev: EventChecker::default(),
            out: OutputChecker::new(role, keep_alive),
            accepted: None,
            app_close: None,
            sending: None,
            last_input: 0,
            tracked,
            held,
            max_burst: 0,
            input_total: 0,
            app_total: 0,
            calls: 0,
            hold: false,
            off_run_loop: false,
            held_input: 0,
            held_reads: 0,
            eof_received: false,
            read_buf: buffered.then(BytesMut::new),
        };
        h.check_state();
        if role == Role::Client {
            h.drain(Drain::All { piece: 0, vectored: false });
            assert_eq!(h.out.header("sec-websocket-key"), Some(client_key().as_str()));
        }
        h
    }

    /// The valid handshake head of the role's peer (a request, or the 101 response).
    pub fn peer_head(&self) -> Vec<u8> {
        match self.role {
            Role::Server => VALID_REQUEST.to_vec(),
            Role::Client if self.mode.bit(5) => {
                let config = Config {
                    subprotocols: SubprotocolPolicy::default(),
                    origins: OriginPolicy::Any,
                    ..(*self.config).clone()
                };
                response_from_server(config, &self.out.head)
            }
            Role::Client => valid_response(),
        }
    }

    /// Feeds the valid handshake of the role's peer (a request, or the 101 response).
    pub fn handshake(&mut self) {
        let head = self.peer_head();
        self.receive(&head);
    }

    /// The role under test.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `Closed` has been reported.
    pub fn closed(&self) -> bool {
        self.ev.closed.is_some()
    }

    /// Runs one connection call with memory accounting: `input` is how many bytes it was given.
    pub fn call<R>(&mut self, input: usize, f: impl FnOnce(&mut Connection) -> R) -> R {
        self.calls += 1;
        let before = live_bytes();
        reset_peak();
        let r = f(&mut self.conn);
        let after = live_bytes();
        let peak = peak_bytes();
        if self.tracked {
            self.held += after - before;
            let queued = self.conn.queued_bytes();
            let event_size = std::mem::size_of::<Event>();
            let transient = 8 * input + 2 * (input / 2 + 8) * event_size + self.held_bound(queued);
            assert!(
                peak - before <= transient as isize,
                "one call allocated {} bytes at its peak (input {input}, bound {transient})",
                peak - before
            );
        }
        r
    }

    /// What a connection may hold: its limits, twice its queue (buffer growth), the event
    /// queue's largest burst, and some slack for the request copy and small structures.
    fn held_bound(&self, queued: usize) -> usize {
        let c = &self.config;
        2 * queued
            + 2 * c.max_message_size
            + 2 * c.max_frame_size
            + 4 * c.max_handshake_size
            + 2 * c.max_headers * std::mem::size_of::<wsproto::Header>()
            + 2 * (self.max_burst + 4) * std::mem::size_of::<Event>()
            + 2 * self.held_input
            + 2 * inflated_chunk(c)
            + 2 * (self.held_input / 2 + self.held_reads) * std::mem::size_of::<Event>()
            + self.compression_state()
            + (24 << 10)
    }

    /// What zlib keeps for permessage-deflate: a compressor (window, hash chains, buffers:
    /// about 270 KiB at 15 bits) and an inflater (about 40 KiB), made on first use.
    fn compression_state(&self) -> usize {
        #[cfg(feature = "deflate")]
        if self.config.deflate.is_some() {
            return 384 << 10;
        }
        0
    }

    fn check_held(&self) {
        if self.tracked {
            let bound = self.held_bound(self.conn.queued_bytes());
            assert!(
                self.held <= bound as isize,
                "the connection holds about {} heap bytes (queued {}, bound {bound})",
                self.held,
                self.conn.queued_bytes()
            );
        }
    }

    fn check_state(&self) {
        // Heads (at most a few hundred bytes), a close frame, pongs (a 2-byte ping from a server
        // makes a 6-byte masked pong), keep-alive pings (at most one per call), and what the
        // application queued: nothing else may fill the queue.
        let bound = 4096 + 3 * self.input_total + 8 * self.calls + self.app_total;
        assert!(self.conn.queued_bytes() <= bound, "{} bytes queued, bound {bound}", self.conn.queued_bytes());
        let state = self.conn.state();
        if let Some(at) = self.conn.poll_timeout() {
            assert!(at > self.now, "a deadline is due but was not handled");
        }
        if state == ConnectionState::Closed {
            // Server: close the transport at once; client: after the server's close or the timeout.
            let waiting = self.role == Role::Client && self.conn.poll_timeout().is_some();
            assert!(self.conn.should_close_transport() || waiting, "closed but the transport stays open");
            assert!(!self.conn.wants_read() || waiting);
        } else {
            assert!(!self.conn.should_close_transport(), "transport closes before the connection ends");
        }
    }

    /// Polls and checks every event, answering requests like an application.
    fn events(&mut self) {
        let mut burst = 0;
        while let Some(event) = self.call(0, Connection::poll_event) {
            burst += 1;
            let (event, handed_over) = take_event(event);
            self.held -= handed_over;
            if matches!(event, Event::Connected(_)) {
                self.note_compression();
            }
            self.ev.check(self.role, &self.config, &event);
            match &event {
                Event::Request(request) => self.answer_request(*request.clone()),
                Event::HttpRequest(_) => {
                    let response = OutgoingResponse::new(404).text("not found");
                    self.call(self.last_input, |c| c.respond(response)).expect("respond to a pending plain request");
                }
                // Answered if the connection was still open when the ping arrived: for sure when
                // it still is now.
                Event::Ping(payload) if self.config.auto_pong => {
                    let required = self.conn.state() == ConnectionState::Open;
                    self.auto_pong(payload.to_vec(), required);
                }
                _ => {}
            }
            self.events.push(event);
        }
        self.max_burst = self.max_burst.max(burst);
        self.held_input = 0;
        self.held_reads = 0;
        if self.eof_received {
            assert_eq!(self.conn.state(), ConnectionState::Closed, "open after the end of file and every event taken");
        }
        let state = self.conn.state();
        assert_eq!(state == ConnectionState::Closed, self.ev.closed.is_some(), "state {state:?} vs Closed event");
        self.check_state();
        self.check_held();
    }

    /// After an input or command: drain and check the events, or (holding) check the rest.
    fn after_call(&mut self) {
        if self.hold {
            self.off_run_loop = true;
            self.check_state();
            self.check_held();
        } else {
            self.events();
        }
    }

    /// Holds events in the connection (`true`) or drains them after every call again.
    pub fn hold_events(&mut self, hold: bool) {
        self.hold = hold;
        self.out.unordered_pongs |= hold;
        if !hold {
            self.events();
        }
    }

    /// Once open: whether permessage-deflate was negotiated (the output checker inflates).
    fn note_compression(&mut self) {
        #[cfg(feature = "deflate")]
        if let Some(params) = self.conn.compression() {
            assert!(self.config.deflate.is_some(), "compression negotiated without being configured");
            assert!(
                (8..=15).contains(&params.server_max_window_bits) && (8..=15).contains(&params.client_max_window_bits)
            );
            self.out.inflater.get_or_insert_with(|| flate2::Decompress::new_with_window_bits(false, 15));
        }
    }

    fn required_pong(&mut self, payload: Vec<u8>, required: bool) {
        self.out.required_pongs += usize::from(required);
        self.out.expect_pongs.push_back((payload, required));
    }

    /// An auto-pong is owed for a ping the harness has just seen: it may already have left.
    fn auto_pong(&mut self, payload: Vec<u8>, required: bool) {
        match self.out.unexplained_pongs.iter().position(|p| *p == payload) {
            Some(i) => {
                self.out.unexplained_pongs.remove(i);
                self.out.required_pongs += usize::from(required);
            }
            None => self.required_pong(payload, required),
        }
    }

    fn answer_request(&mut self, request: wsproto::Request) {
        if self.mode.reject() {
            let response = OutgoingResponse::service_unavailable();
            self.call(self.last_input, |c| c.respond(response)).expect("reject a pending upgrade");
            return;
        }
        let mut accept = Accept::new();
        if self.mode.choose_last_subprotocol() {
            if let Some(last) = request.subprotocols().last() {
                accept = accept.subprotocol(*last);
            }
        }
        if self.mode.extra_header() {
            accept = accept.header("X-Fuzz", "1");
        }
        self.call(self.last_input, |c| c.accept(accept)).expect("every reported upgrade request can be accepted");
        assert_ne!(self.conn.state(), ConnectionState::Handshaking);
        self.ev.opened = true;
        self.note_compression();
        self.accepted = Some(request);
    }

    /// Feeds bytes read from the transport (ignored, like an adapter would, once it stops
    /// reading).
    pub fn receive(&mut self, data: &[u8]) {
        let now = self.now;
        let open = matches!(self.conn.state(), ConnectionState::Open | ConnectionState::Closing);
        let kept = open && !self.conn.should_close_transport();
        if !self.conn.wants_read() && !kept {
            // An adapter stops reading here; bytes handed over anyway must be ignored. (An open
            // connection stops wanting reads while inflated data waits to be taken; bytes handed
            // over anyway are kept, in order, so they are delivered as usual below.)
            self.unchanged(|h| h.call(data.len(), |c| c.receive(now, data)));
            return;
        }
        self.last_input = data.len();
        self.input_total += data.len();
        self.held_input += data.len();
        self.held_reads += 1;
        match self.read_buf.take() {
            Some(mut buf) => {
                buf.extend_from_slice(data);
                self.call(data.len(), |c| c.receive_buf(now, &mut buf));
                assert!(
                    buf.len() <= wsproto::frame::MAX_HEADER_LEN + wsproto::MAX_BUFFERED_FRAME,
                    "{} bytes left in the read buffer",
                    buf.len()
                );
                self.read_buf = Some(buf);
            }
            None => self.call(data.len(), |c| c.receive(now, data)),
        }
        self.after_call();
    }

    /// End of file from the transport.
    pub fn eof(&mut self) {
        let now = self.now;
        self.call(0, |c| c.receive_eof(now));
        self.eof_received = true;
        self.after_call();
        // Input held behind inflated data that a lazy application has not taken yet is
        // processed first: the end of file takes effect once the events are taken (checked in
        // `events`).
        if !self.hold {
            assert!(self.conn.should_close_transport());
            assert_eq!(self.conn.state(), ConnectionState::Closed);
        }
    }

    /// Advances the clock by `by` and fires the timers; checks that a second call changes
    /// nothing.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.fire();
    }

    /// Jumps to the next deadline (plus `late`), fires it; or, when `early`, calls
    /// `handle_timeout` just before the deadline and checks that nothing happened.
    pub fn jump_to_deadline(&mut self, late: Duration, early: bool) {
        let Some(at) = self.conn.poll_timeout() else { return };
        if early {
            let t = at.checked_sub(Duration::from_millis(1)).unwrap_or(at).max(self.now);
            if t < at {
                self.now = t;
                self.unchanged(|h| {
                    let now = h.now;
                    h.call(0, |c| c.handle_timeout(now))
                });
            }
            return;
        }
        self.now = self.now.max(at + late);
        self.fire();
    }

    /// `handle_timeout` at the current time, checked like [`advance`](Self::advance).
    pub fn fire(&mut self) {
        let now = self.now;
        let queued = self.conn.queued_bytes();
        self.call(0, |c| c.handle_timeout(now));
        // The core writes nothing itself: a deadline that empties the queue dropped it.
        if queued > 0 && self.conn.queued_bytes() == 0 {
            self.out.discarded = true;
        }
        self.after_call();
        self.unchanged(|h| h.call(0, |c| c.handle_timeout(now)));
    }

    /// Runs `f` and checks that it changed nothing observable.
    fn unchanged(&mut self, f: impl FnOnce(&mut Harness)) {
        let before = (self.conn.state(), self.conn.queued_bytes(), self.conn.poll_timeout());
        f(self);
        let after = (self.conn.state(), self.conn.queued_bytes(), self.conn.poll_timeout());
        assert_eq!(before, after, "a call that must change nothing changed something");
        if !self.hold {
            assert!(self.conn.poll_event().is_none(), "a call that must change nothing reported an event");
        }
    }

    /// Writes (some of) the outgoing queue and checks what was written.
    pub fn drain(&mut self, how: Drain) {
        let mut budget = match how {
            Drain::All { .. } => usize::MAX,
            Drain::Some(n) => n,
        };
        let (piece, vectored) = match how {
            Drain::All { piece, vectored } => (if piece == 0 { usize::MAX } else { piece }, vectored),
            Drain::Some(_) => (usize::MAX, false),
        };
        while budget > 0 && self.conn.queued_bytes() > 0 {
            let queued = self.conn.queued_bytes();
            let front = self.conn.outgoing_front();
            assert!(!front.is_empty(), "bytes queued but outgoing_front is empty");
            let chunk: Vec<u8> = if vectored {
                let mut slices = [IoSlice::new(&[]); 3];
                let n = self.conn.outgoing(&mut slices);
                assert!(n >= 1);
                assert!(std::ptr::eq(&*slices[0], front), "the first slice is outgoing_front");
                let total: usize = slices[..n].iter().map(|s| s.len()).sum();
                assert!(total <= queued && (n == slices.len() || total == queued), "slices disagree with queued_bytes");
                let mut chunk = Vec::new();
                let mut want = piece.min(budget);
                for slice in &slices[..n] {
                    let take = slice.len().min(want);
                    chunk.extend_from_slice(&slice[..take]);
                    want -= take;
                }
                chunk
            } else {
                front[..front.len().min(piece).min(budget)].to_vec()
            };
            let n = chunk.len();
            let now = self.now;
            self.call(0, |c| c.advance_outgoing(now, n));
            assert_eq!(self.conn.queued_bytes(), queued - n);
            budget -= n;
            self.out.feed(&chunk);
            self.written.extend_from_slice(&chunk);
        }
        self.check_held();
    }

    // ---- application commands (the scenario target) ----

    /// Records a command's outcome: on `Err` nothing may have been queued or reported.
    fn command<E: std::fmt::Debug>(
        &mut self,
        input: usize,
        f: impl FnOnce(&mut Connection) -> Result<(), E>,
    ) -> Result<(), E> {
        let queued = self.conn.queued_bytes();
        let state = self.conn.state();
        let result = self.call(input, f);
        match &result {
            Ok(()) => {
                assert_eq!(state, ConnectionState::Open, "a command succeeded on a {state:?} connection");
                self.app_total += input + 14;
            }
            Err(_) => {
                assert_eq!(self.conn.queued_bytes(), queued, "a failed command queued bytes");
                assert_eq!(self.conn.state(), state, "a failed command changed the state");
            }
        }
        self.after_call();
        result
    }

    fn expect_data(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        self.out.expect_data.push_back(SentFrame { opcode, fin, payload: payload.to_vec() });
    }

    /// `send_text`.
    pub fn send_text(&mut self, text: &str) {
        if self.command(text.len(), |c| c.send_text(text)).is_ok() {
            self.expect_data(OpCode::Text, true, text.as_bytes());
        }
    }

    /// `send_binary`.
    pub fn send_binary(&mut self, data: &[u8]) {
        if self.command(data.len(), |c| c.send_binary(data)).is_ok() {
            self.expect_data(OpCode::Binary, true, data);
        }
    }

    /// `send` (the owned path, which queues large payloads without copying).
    pub fn send_owned(&mut self, message: Message) {
        let (opcode, payload, capacity) = match &message {
            Message::Text(t) => (OpCode::Text, t.as_bytes().to_vec(), t.len()),
            Message::Binary(b) => (OpCode::Binary, b.to_vec(), b.len()),
        };
        if self.command(payload.len(), |c| c.send(message)).is_ok() {
            // The connection now owns the buffer (allocated outside any call).
            self.held += capacity as isize;
            self.expect_data(opcode, true, &payload);
        }
    }

    /// `send_prepared`.
    pub fn send_prepared(&mut self, message: &Message) {
        let prepared = wsproto::PreparedFrame::message(message);
        if self.command(message.as_bytes().len(), |c| c.send_prepared(&prepared)).is_ok() {
            if self.role == Role::Server {
                // The queue shares the prepared bytes, which outlive the harness's handle.
                self.held += prepared.uncompressed_len() as isize;
            }
            let opcode = if message.kind() == MessageKind::Text { OpCode::Text } else { OpCode::Binary };
            self.expect_data(opcode, true, message.as_bytes());
        }
    }

    /// The kind of the application's fragmented message in progress, if any.
    pub fn sending_fragmented(&self) -> Option<MessageKind> {
        self.sending
    }

    /// `send_fragment`.
    pub fn send_fragment(&mut self, kind: MessageKind, data: &[u8], fin: bool) -> Result<(), wsproto::SendError> {
        self.command(data.len(), |c| c.send_fragment(kind, data, fin))?;
        let opcode = match (self.sending, kind) {
            (Some(sending), _) => {
                assert_eq!(sending, kind, "a fragment of another kind was accepted");
                OpCode::Continuation
            }
            (None, MessageKind::Text) => OpCode::Text,
            (None, MessageKind::Binary) => OpCode::Binary,
        };
        self.sending = if fin { None } else { Some(kind) };
        self.expect_data(opcode, fin, data);
        Ok(())
    }

    /// `ping`.
    pub fn ping(&mut self, payload: &[u8]) {
        let result = self.command(payload.len(), |c| c.ping(payload));
        if payload.len() > MAX_CONTROL_PAYLOAD {
            assert!(result.is_err(), "a ping over 125 bytes was accepted");
        }
        if result.is_ok() {
            self.out.expect_pings.push_back(payload.to_vec());
        }
    }

    /// `pong`.
    pub fn pong(&mut self, payload: &[u8]) {
        let result = self.command(payload.len(), |c| c.pong(payload));
        if payload.len() > MAX_CONTROL_PAYLOAD {
            assert!(result.is_err(), "a pong over 125 bytes was accepted");
        }
        if result.is_ok() {
            self.required_pong(payload.to_vec(), true);
        }
    }

    /// `close`.
    pub fn close(&mut self, code: u16, reason: &str) {
        let result = self.command(reason.len(), |c| c.close(CloseCode(code), reason));
        if !CloseCode(code).is_sendable() || reason.len() > MAX_CLOSE_REASON {
            assert!(result.is_err(), "close({code}, {} bytes) was accepted", reason.len());
        }
        if result.is_ok() {
            assert!(self.app_close.is_none(), "two closes accepted");
            assert_eq!(self.conn.state(), ConnectionState::Closing);
            self.app_close = Some((code, reason.to_owned()));
        }
    }

    /// Frees spare buffers.
    pub fn release_buffers(&mut self) {
        self.call(0, Connection::release_buffers);
    }

    /// Drains everything, runs the end-of-run checks, and answers the record.
    pub fn finish(mut self) -> Record {
        self.hold_events(false);
        self.drain(Drain::All { piece: 0, vectored: false });
        let out = &self.out;
        if !out.discarded {
            assert!(out.buf.is_empty(), "a partial frame or head is left: {:x?}", out.buf);
            assert!(out.expect_data.is_empty(), "data the application sent never left: {:?}", out.expect_data);
            assert!(out.expect_pings.is_empty(), "pings the application sent never left");
            assert!(out.pongs_sent >= out.required_pongs, "{} pongs owed, {} sent", out.required_pongs, out.pongs_sent);
        }
        assert!(out.unexplained_pongs.is_empty(), "pongs without pings: {:x?}", out.unexplained_pongs);
        let opened = self.events.iter().any(|e| matches!(e, Event::Connected(_))) || self.accepted.is_some();
        if !opened {
            assert!(out.frames.is_empty(), "frames before the connection opened");
        }
        if self.role == Role::Server {
            match (out.status, &self.accepted) {
                (Some(101), Some(request)) => {
                    let key = request.header("sec-websocket-key").expect("an accepted request has a key");
                    assert_eq!(out.header("sec-websocket-accept"), Some(accept_key(key.as_bytes()).as_str()));
                    if let Some(protocol) = out.header("sec-websocket-protocol") {
                        assert!(request.subprotocols().contains(&protocol), "chose a subprotocol not offered");
                    }
                }
                (Some(101), None) => panic!("101 without an accepted request"),
                (None, Some(_)) => panic!("accepted but no 101 was written"),
                _ => {}
            }
        }
        if let Some(closed) = &self.ev.closed {
            self.check_close_agreement(closed);
        } else {
            assert!(out.close_sent.is_none() || self.app_close.is_some(), "close frame sent, connection not closed");
        }
        Record { events: self.events, output: self.written, off_run_loop: self.off_run_loop }
    }

    /// The close frame we sent agrees with how the connection ended.
    fn check_close_agreement(&self, closed: &Closed) {
        let sent = &self.out.close_sent;
        let app = self.app_close.as_ref().map(|(code, reason)| (Some(*code), truncate(reason)));
        if self.out.discarded && sent.is_none() {
            // Whatever close frame (or error status) was owed was dropped with the queue by a
            // deadline, as `Config::drain_timeout` says.
            return;
        }
        match &closed.cause {
            CloseCause::PeerClosed => {
                assert!(app.is_none());
                let echo = (closed.code != CloseCode::NO_STATUS).then_some(closed.code.0);
                assert_eq!(sent.as_ref().map(|s| s.0), Some(echo), "close echo differs from the peer's code");
            }
            CloseCause::LocalClosed | CloseCause::CloseTimeout => {
                assert!(app.is_some(), "{:?} without an application close", closed.cause);
                assert_eq!(sent, &app);
            }
            CloseCause::Protocol(error) => match &app {
                Some(_) => assert_eq!(sent, &app),
                None => assert_eq!(sent.as_ref().and_then(|s| s.0), Some(error.close_code().0)),
            },
            CloseCause::KeepAliveTimeout => {
                assert!(app.is_none());
                assert_eq!(sent.as_ref().and_then(|s| s.0), Some(1011));
            }
            CloseCause::Eof => assert_eq!(sent, &app),
            CloseCause::DrainTimeout => panic!("DrainTimeout, yet our close frame was read or nothing was dropped"),
            CloseCause::Handshake(error) => {
                assert!(sent.is_none() && self.out.frames.is_empty());
                if self.role == Role::Server && !matches!(error, wsproto::HandshakeError::Timeout) {
                    assert_eq!(self.out.status, error.status(), "handshake error answered with another status");
                }
            }
            CloseCause::Rejected { status } => {
                assert!(sent.is_none() && self.out.frames.is_empty());
                assert_eq!(self.out.status, Some(*status));
            }
            other => panic!("unknown cause {other:?}"),
        }
    }
}

fn truncate(reason: &str) -> String {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

// ---------------------------------------------------------------------------------------------
// Comparing runs

/// Streaming chunk boundaries follow the reads, so runs are compared with consecutive chunks
/// of a message joined; and a message that fails as it arrives (text that is not UTF-8, a
/// compressed stream that does not inflate) may have been partly delivered before the bad byte
/// arrived in one run and not in another, so its chunks are compared as "one a prefix of the
/// other".
fn normalize(events: &[Event]) -> (Vec<Event>, Vec<u8>) {
    let mut out: Vec<Event> = Vec::new();
    for event in events {
        if let (Event::Chunk { first: false, data, last, .. }, Some(Event::Chunk { data: joined, last: l, .. })) =
            (event, out.last_mut())
        {
            if !*l {
                *joined = [&joined[..], &data[..]].concat().into();
                *l = *last;
                continue;
            }
        }
        out.push(event.clone());
    }
    let failed_midway = matches!(
        out.last().and_then(Event::closed),
        Some(Closed {
            cause: CloseCause::Protocol(ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData),
            ..
        })
    );
    let mut unfinished = Vec::new();
    if failed_midway {
        // Chunks after the last finished message belong to the message that failed.
        let start = out.iter().rposition(|e| matches!(e, Event::Chunk { last: true, .. })).map_or(0, |i| i + 1);
        let mut i = start;
        while i < out.len() {
            if let Event::Chunk { data, .. } = &out[i] {
                unfinished.extend_from_slice(data);
                out.remove(i);
            } else {
                i += 1;
            }
        }
    }
    (out, unfinished)
}

/// Checks that two runs of the same input (differently chunked) agree, if both followed the
/// run loop.
pub fn compare_runs(a: &Record, b: &Record) {
    if a.off_run_loop || b.off_run_loop {
        return;
    }
    let (ea, ua) = normalize(&a.events);
    let (eb, ub) = normalize(&b.events);
    assert_eq!(ea, eb, "events differ between chunkings");
    assert!(ua.starts_with(&ub) || ub.starts_with(&ua), "delivered text of the failed message differs");
    assert!(a.output == b.output, "output differs between chunkings:\n{:x?}\n{:x?}", a.output, b.output);
}

// ---------------------------------------------------------------------------------------------
// Raw-byte targets

/// `frame_header`: `FrameHeader::parse` on arbitrary bytes. When it parses, re-encoding gives
/// the same bytes and `encoded_len` is the consumed length; a prefix of a parsable header needs
/// more bytes; an error is decided by the bytes read so far.
pub fn frame_header(data: &[u8]) {
    match FrameHeader::parse(data) {
        Ok(Some((header, len))) => {
            assert!((2..=14).contains(&len));
            assert_eq!(header.encoded_len(), len);
            let mut encoded = Vec::new();
            header.encode(&mut encoded);
            assert_eq!(encoded, &data[..len], "re-encoding differs");
            assert!(header.payload_len >> 63 == 0);
            assert!(header.rsv <= 7);
            for cut in 0..len {
                assert_eq!(FrameHeader::parse(&data[..cut]), Ok(None), "a prefix did not ask for more");
            }
            assert_eq!(FrameHeader::parse(&encoded), Ok(Some((header, len))));
        }
        Ok(None) => assert!(data.len() < 14),
        Err(error) => {
            // Adding bytes never turns an error into a header.
            let mut longer = data.to_vec();
            longer.extend_from_slice(&[0; 14]);
            assert_eq!(FrameHeader::parse(&longer), Err(error));
        }
    }
}

/// A parsed schedule for the connection targets.
#[derive(Debug, Clone)]
pub struct RawInput<'a> {
    /// Config flags (see [`config`]).
    pub flags: u8,
    /// Application behaviour (see [`Mode`]).
    pub mode: Mode,
    /// (position in `data`, op), sorted by position.
    pub points: Vec<(usize, u8)>,
    /// The bytes the peer sends.
    pub data: &'a [u8],
}

impl<'a> RawInput<'a> {
    /// `[flags][mode][n][n × (pos_hi, pos_lo, op)][data...]`: each point splits `data` at
    /// `pos % (len + 1)`. Ops: `0x00-0x7F` a read boundary, then a write with
    /// [`Drain::from_byte`]; `0x80-0xBF` advance the clock by `((op & 0x3F) + 1) * 50` ms;
    /// `0xC0-0xDF` jump to the next deadline plus `op & 0x0F` ms (bit 4: just before it, which
    /// must change nothing); `0xE0-0xEF` `handle_timeout` now; `0xF0-0xFF` end of file.
    pub fn parse(input: &'a [u8]) -> RawInput<'a> {
        let flags = input.first().copied().unwrap_or(0);
        let mode = Mode(input.get(1).copied().unwrap_or(0));
        let n = usize::from(input.get(2).copied().unwrap_or(0));
        let table_end = (3 + 3 * n).min(input.len());
        let table = input.get(3..table_end).unwrap_or_default();
        let data = input.get(table_end..).unwrap_or_default();
        let mut points: Vec<(usize, u8)> = table
            .chunks_exact(3)
            .map(|p| (usize::from(u16::from_be_bytes([p[0], p[1]])) % (data.len() + 1), p[2]))
            .collect();
        points.sort_by_key(|p| p.0);
        RawInput { flags, mode, points, data }
    }

    /// Runs it on a fresh connection; `chunked` honours every point, otherwise only the time
    /// and end-of-file points split the input (the "whole" run).
    pub fn run(&self, role: Role, chunked: bool) -> Record {
        let mut h = match role {
            Role::Server => Harness::server(self.flags, self.mode),
            Role::Client => Harness::client(self.flags, self.mode),
        };
        if self.mode.prefix() {
            h.handshake();
        }
        let mut at = 0;
        let mut eof = false;
        for &(pos, op) in &self.points {
            if op < 0x80 && !chunked {
                continue;
            }
            h.receive(&self.data[at..pos]);
            at = pos;
            if chunked {
                h.drain(if op < 0x80 { Drain::from_byte(op) } else { Drain::All { piece: 0, vectored: false } });
            } else {
                h.drain(Drain::All { piece: 0, vectored: false });
            }
            match op {
                0x00..=0x7F => {}
                0x80..=0xBF => h.advance(Duration::from_millis((u64::from(op & 0x3F) + 1) * 50)),
                0xC0..=0xDF => h.jump_to_deadline(Duration::from_millis(u64::from(op & 0x0F)), op & 0x10 != 0),
                0xE0..=0xEF => h.fire(),
                0xF0..=0xFF => {
                    h.eof();
                    eof = true;
                    break;
                }
            }
        }
        if !eof {
            h.receive(&self.data[at..]);
        }
        h.finish()
    }
}

/// `server_connection` / `client_connection`: the schedule run chunked and whole, compared.
pub fn connection(role: Role, input: &[u8]) {
    let raw = RawInput::parse(input);
    let chunked = raw.run(role, true);
    let whole = raw.run(role, false);
    compare_runs(&whole, &chunked);
}

/// `server_handshake` / `client_handshake`: `[flags][mode][piece][head bytes...]` fed whole and
/// in pieces of `1 + piece % 8` bytes (one byte at a time included); both must agree.
pub fn handshake(role: Role, input: &[u8]) {
    let flags = input.first().copied().unwrap_or(0);
    let mode = Mode(input.get(1).copied().unwrap_or(0) & !1);
    let piece = 1 + usize::from(input.get(2).copied().unwrap_or(0) % 8);
    let data = input.get(3..).unwrap_or_default();
    let run = |piece: usize| {
        let mut h = match role {
            Role::Server => Harness::server(flags, mode),
            Role::Client => Harness::client(flags, mode),
        };
        for chunk in data.chunks(piece.max(1)) {
            h.receive(chunk);
            h.drain(Drain::All { piece: 0, vectored: false });
        }
        h.finish()
    };
    compare_runs(&run(data.len()), &run(piece));
}
