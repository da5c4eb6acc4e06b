//! Fuzz findings and seeds, replayed through the fuzz harness itself under plain `cargo test`.
//!
//! The harness (this crate) depends on `std` and `wsproto` only, so every check the fuzz
//! targets make runs here too, on stable, without cargo-fuzz. Raw-byte inputs live in
//! `fuzz/corpus/<target>/` (the seeds) and `fuzz/regressions/<target>/` (crashes found, named
//! after what they broke); structure-aware scenarios are written below as Rust values.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsproto::{CloseCause, Config, Connection, Event, HandshakeError, Role};

use wsproto_fuzz_harness::{self as harness, scenario};

// The memory checks need the counting allocator (it counts per thread, so parallel tests do
// not disturb each other).
#[global_allocator]
static ALLOC: harness::CountingAlloc = harness::CountingAlloc;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every committed file under `fuzz/<kind>/<target>/`, sorted, with its name. Corpus files whose
/// names start with a lowercase hex digit are what libFuzzer adds to a local corpus (named by
/// SHA-1, and ignored by git): they are skipped, so this test replays the same inputs everywhere.
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .filter(|(name, _)| {
            kind != "corpus" || !name.starts_with(|c: char| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
        .map(|(name, p)| (name, std::fs::read(&p).expect("readable input")))
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    assert!(!inputs("corpus", target).is_empty(), "no seeds found in fuzz/corpus/{target}/");
    for kind in ["corpus", "regressions"] {
        for (name, data) in inputs(kind, target) {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data)));
            assert!(result.is_ok(), "fuzz/{kind}/{target}/{name} fails");
        }
    }
}

#[test]
fn frame_header_inputs() {
    replay("frame_header", harness::frame_header);
}

#[test]
fn server_connection_inputs() {
    replay("server_connection", |d| harness::connection(Role::Server, d));
}

#[test]
fn client_connection_inputs() {
    replay("client_connection", |d| harness::connection(Role::Client, d));
}

#[test]
fn server_handshake_inputs() {
    replay("server_handshake", |d| harness::handshake(Role::Server, d));
}

#[test]
fn client_handshake_inputs() {
    replay("client_handshake", |d| harness::handshake(Role::Client, d));
}

#[test]
fn memory_accounting_is_active() {
    assert!(harness::memory_tracked());
}

// ---- Bug 1: whether a handshake head was parsed depended on how it was split into reads ----
//
// `receive_handshake` parsed only when a blank line arrived in the newest bytes. httparse may
// answer "partial" for a buffer that already holds one (leading blank lines, which it skips;
// a status line it needs more bytes to judge), and later reads without a new blank line were
// then never parsed: fed whole, `\r\n\r\n` + garbage failed at once; fed in pieces, the same
// bytes waited for the limit or the timeout. Likewise an error beyond `max_handshake_size` was
// "malformed" (400) when it came in one read and "too large" (431) when the limit was crossed
// first. Now the first `max_handshake_size` bytes alone decide, parsed on every read once a
// blank line has arrived. Found by server_handshake and client_handshake (inputs in
// fuzz/regressions/*_handshake/).

/// The server's handshake outcome for `input` fed in reads of `piece` bytes.
fn server_outcome(config: &Config, input: &[u8], piece: usize) -> Option<CloseCause> {
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(config.clone()), now);
    for chunk in input.chunks(piece) {
        server.receive(now, chunk);
    }
    std::iter::from_fn(|| server.poll_event()).find_map(|e| match e {
        Event::Closed(closed) => Some(closed.cause),
        _ => None,
    })
}

#[test]
fn garbage_behind_a_leading_blank_line_fails_whatever_the_reads() {
    let input = b"\r\n\r\nGET /chat HTTP/1.1\r\nHost: example.com\x10\r\n";
    for piece in [1, 2, 3, 7, input.len()] {
        let outcome = server_outcome(&Config::default(), input, piece);
        assert!(
            matches!(outcome, Some(CloseCause::Handshake(HandshakeError::Malformed(_)))),
            "piece {piece}: {outcome:?}"
        );
    }
}

#[test]
fn an_error_beyond_the_size_limit_is_too_large_whatever_the_reads() {
    let config = Config { max_handshake_size: 256, ..Config::default() };
    let mut input = b"GET /chat HTTP/1.1\r\nX-Padding: ".to_vec();
    input.extend_from_slice(&[b'a'; 300]);
    input.extend_from_slice(b"\x01\r\n\r\n");
    for piece in [1, 100, 255, 256, 257, input.len()] {
        let outcome = server_outcome(&config, &input, piece);
        assert_eq!(outcome, Some(CloseCause::Handshake(HandshakeError::TooLarge(256))), "piece {piece}");
    }
}

// ---- Bug 2: a slow reader made the outgoing queue keep every byte written ----
//
// `OutQueue` appended new frames to its last owned buffer even when that buffer was the front
// one, partly written. Written bytes are only freed with the whole buffer, so while the peer
// read a little slower than the application sent (the queue never quite empty), the buffer
// grew by everything sent: about 130 KB held for 1.4 KB queued after 300 sends of 1 KB, and
// without bound over time. `queued_bytes` stayed small, so the backpressure limit never
// tripped. Now a partly written front buffer is never appended to. Suspected in review and
// confirmed by the harness's memory check (the connection's heap against its limits and queue);
// frame_sequence then re-found it on its own within seconds on a copy without the fix, once its
// `AppBurst` op made many small sends cheap (a scenario of bursts with a slow writer).

#[test]
fn a_slow_reader_does_not_make_the_queue_keep_written_bytes() {
    use scenario::{Op, Scenario};
    // Write at most 1000 bytes after each step while each step queues 1006.
    let mut ops = vec![Op::Writer(0x40 | 10)];
    ops.extend((0..2000).map(|_| Op::AppBinary(vec![7; 1002])));
    // The harness fails if the connection holds more than its limits and twice its queue allow.
    scenario::run(&Scenario { flags: 0b100, client: false, mode: 0, ops });
}

// ---- Bug 3: a timer could end a connection whose peer had already closed it ----
//
// Since the peer's close (or failure) waits until the events before it are taken (so that the
// application's answers to them leave first), `handle_timeout` called before those events were
// taken fired timers as if the peer were silent: the keep-alive timeout sent 1011 and reported
// `KeepAliveTimeout`, or the close timeout reported an unclean `CloseTimeout`, although the
// peer's close had arrived in time; and when the events were then taken, the deferred close was
// applied too, queueing a second close frame after the connection had ended. Now a pending
// ending takes effect first whenever a deadline is due. Found with the scenario's `Hold` op (an
// application that takes its events late).

/// A server that received "hi" and the peer's close in one read, with the events left untaken.
fn server_with_untaken_close(now: Instant, config: Config) -> Connection {
    let mut server = Connection::server(Arc::new(config), now);
    server.receive(now, harness::VALID_REQUEST);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(wsproto::Accept::new()).unwrap();
    let head = server.outgoing_front().len();
    server.advance_outgoing(now, head);
    let key = [1, 2, 3, 4];
    let mut frames = Vec::new();
    for (opcode, payload) in [(0x81u8, &b"hi"[..]), (0x88, &[0x03, 0xE8][..])] {
        frames.extend_from_slice(&[opcode, 0x80 | payload.len() as u8]);
        frames.extend_from_slice(&key);
        frames.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    }
    server.receive(now, &frames);
    server
}

fn close_frames(conn: &mut Connection) -> usize {
    let mut out = Vec::new();
    while conn.queued_bytes() > 0 {
        let front = conn.outgoing_front().to_vec();
        // Written at the connection's own time: an instant in the past never moves its clock.
        conn.advance_outgoing(
            Instant::now().checked_sub(Duration::from_secs(60)).unwrap_or_else(Instant::now),
            front.len(),
        );
        out.extend(front);
    }
    let mut count = 0;
    let mut rest = &out[..];
    while let Ok(Some((header, len))) = wsproto::frame::FrameHeader::parse(rest) {
        count += usize::from(header.opcode == wsproto::frame::OpCode::Close);
        rest = &rest[len + header.payload_len as usize..];
    }
    count
}

#[test]
fn a_keep_alive_deadline_does_not_override_a_peer_close_waiting_for_its_events() {
    let now = Instant::now();
    let keep_alive = wsproto::KeepAlive { interval: Duration::from_secs(1), timeout: Duration::from_secs(1) };
    let mut server = server_with_untaken_close(now, Config { keep_alive: Some(keep_alive), ..Config::default() });
    server.handle_timeout(now + Duration::from_secs(1));
    server.handle_timeout(now + Duration::from_secs(2));
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(matches!(&events[0], Event::Message(wsproto::Message::Text(t)) if t == "hi"));
    assert!(matches!(&events[1], Event::Closed(c) if c.cause == CloseCause::PeerClosed && c.code.0 == 1000));
    assert_eq!(events.len(), 2);
    assert_eq!(close_frames(&mut server), 1);
}

#[test]
fn a_close_deadline_does_not_override_a_peer_close_waiting_for_its_events() {
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(Config::default()), now);
    server.receive(now, harness::VALID_REQUEST);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(wsproto::Accept::new()).unwrap();
    server.close(wsproto::CloseCode::NORMAL, "").unwrap();
    // The peer's answer arrives behind a message; the events are taken after the deadline.
    let mut frames = vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i', 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8];
    server.receive(now + Duration::from_secs(1), &frames);
    server.handle_timeout(now + Duration::from_secs(10));
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    let Some(Event::Closed(closed)) = events.last() else { panic!("{events:?}") };
    assert_eq!((closed.cause.clone(), closed.clean), (CloseCause::LocalClosed, true));
    frames.clear();
    assert_eq!(close_frames(&mut server), 1);
}

#[test]
fn a_late_application_sees_one_close_in_the_scenario() {
    use scenario::{Code, Kind, Op, Scenario};
    let ops = vec![
        Op::Hold(true),
        Op::Frame { kind: Kind::Text, fin: true, payload: b"hi".to_vec(), oddity: None },
        Op::Close { code: Code::Known(0), reason: String::new() },
        Op::Flush(0),
        Op::Timeout(1000),
        Op::Timeout(600),
        Op::Hold(false),
    ];
    scenario::run(&Scenario { flags: 0, client: false, mode: 0, ops });
}

// ---- Harness false positives, kept so they stay fixed ----

/// `AppTextSplit` after a text fragment that ends inside a code point: finishing the message
/// with more text is rightly refused (the first version of the scenario asserted otherwise).
#[test]
fn text_split_after_an_unfinished_code_point_may_be_refused() {
    use scenario::{Code, Op, Scenario};
    let ops = vec![
        Op::AppFragment { text: true, data: vec![b'#', 0xC5], fin: false },
        Op::AppTextSplit { text: String::new(), cut: 220 },
        Op::Close { code: Code::Known(0), reason: String::new() },
    ];
    scenario::run(&Scenario { flags: 47, client: false, mode: 192, ops });
}

/// Events held (`Hold`): the auto-pong for a ping leaves before the harness has seen the ping;
/// it must be matched when the ping is seen (the first version asserted at once).
#[test]
fn an_auto_pong_may_leave_before_its_ping_is_taken() {
    use scenario::{Kind, Op, Scenario};
    let ops = vec![
        Op::Hold(true),
        Op::Frame { kind: Kind::Ping, fin: true, payload: vec![], oddity: None },
        Op::Big { kind: Kind::Pong, fin: true, len: 65535, byte: 255 },
        Op::Hold(true),
    ];
    scenario::run(&Scenario { flags: 0, client: true, mode: 21, ops });
}

/// Events held in streaming mode while the peer's bytes come one per read: every payload byte is
/// a chunk event of its own (the first memory bound allowed one event per two bytes).
#[test]
fn held_streaming_chunks_count_one_event_per_read() {
    use scenario::{Code, Control, Kind, Op, Scenario};
    let ops = vec![
        Op::Fragmented {
            text: true,
            data: "eb\0\0\0\0\n\0\0\0\0&\0\0?\"".into(),
            cuts: vec![255, 121, 57, 223],
            controls: vec![Control::Ping(vec![193, 91, 199, 47, 167, 167, 55, 0, 99, 5])],
        },
        Op::Flush(1),
        Op::PeerBurst { count: 0, kind: Kind::Close, len: 141 },
        Op::AppText(String::new()),
        Op::Hold(true),
        Op::Deadline { late: 99, early: true },
        Op::AppText(String::new()),
        Op::PeerBurst { count: 55, kind: Kind::Text, len: 55 },
        Op::Raw(vec![67, 67, 167, 167]),
        Op::Close { code: Code::Known(0), reason: String::new() },
    ];
    scenario::run(&Scenario { flags: 33, client: false, mode: 24, ops });
}

// ---- Bug 4: an empty compressed message broke the next one (permessage-deflate) ----
//
// zlib emits nothing for a sync flush that follows another with no input between, so an empty
// message sent after another compressed message (with `min_size: 0`, or an empty prepared
// frame) went out as an empty RSV1 payload. The receiver appends `00 00 ff ff` (RFC 7692
// §7.2.2), reads it as the start of a stored block, and takes the next message as that block's
// length: "invalid stored block lengths" in zlib, 1007 from wsproto itself. Now an empty
// compressed message is `0x00`, one empty stored block less the trailer (RFC 7692 §7.2.3.6).
// Found by frame_sequence: the harness inflates what we send with its own flate2 (and the
// payloads were checked against Python's C zlib too).

#[cfg(feature = "deflate")]
#[test]
fn an_empty_compressed_message_does_not_break_the_next() {
    let deflate = wsproto::DeflateConfig { min_size: 0, ..wsproto::DeflateConfig::default() };
    let config = Arc::new(Config { deflate: Some(deflate), ..Config::default() });
    let now = Instant::now();
    let request = wsproto::OutgoingRequest::new("example.com", "/");
    let mut client =
        Connection::client_with_rng(config.clone(), request, now, Box::new(harness::DetRng(harness::RNG_SEED)))
            .unwrap();
    let mut server = Connection::server(config, now);
    let transfer = |from: &mut Connection, to: &mut Connection| {
        while from.queued_bytes() > 0 {
            let bytes = from.outgoing_front().to_vec();
            from.advance_outgoing(now, bytes.len());
            to.receive(now, &bytes);
        }
    };
    transfer(&mut client, &mut server);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(wsproto::Accept::new()).unwrap();
    transfer(&mut server, &mut client);
    assert!(matches!(client.poll_event(), Some(Event::Connected(_))));
    assert!(client.compression().is_some());
    for text in ["first", "", "second", "", "", "third"] {
        client.send_text(text).unwrap();
        server.send_text(text).unwrap();
    }
    transfer(&mut client, &mut server);
    transfer(&mut server, &mut client);
    for conn in [&mut server, &mut client] {
        let got: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
        let texts: Vec<&str> = got
            .iter()
            .map(|e| match e {
                Event::Message(wsproto::Message::Text(t)) => t.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["first", "", "second", "", "", "third"]);
    }
}

#[cfg(feature = "deflate")]
#[test]
fn an_empty_prepared_frame_between_compressed_messages_in_the_scenario() {
    use scenario::{Op, Scenario};
    let ops = vec![
        Op::AppBig { text: false, len: 43433, byte: 169 },
        Op::AppPrepared { text: true, data: String::new() },
        Op::AppBurst { count: 3, len: 169, text: true },
    ];
    // A client with 9-bit windows and every message compressed (mode bits 5 and 7).
    scenario::run(&Scenario { flags: 116, client: true, mode: 165, ops });
}

// ---- Bug 5: which error a corrupt compressed message reported depended on the reads ----
//
// When zlib failed on a corrupt stream, the bytes it had inflated before the corruption were
// dropped unchecked: a read holding both reported "does not inflate", while smaller reads had
// already checked (and, streaming, delivered) those bytes and reported invalid UTF-8. Both are
// 1007, but the cause and the close reason on the wire followed the read boundaries. Now what
// inflated before the error is checked first. Found by client_connection (whole vs chunked).

#[cfg(feature = "deflate")]
#[test]
fn a_corrupt_compressed_message_fails_the_same_whatever_the_reads() {
    // A stored block holding "ab\xffcd" (not UTF-8), then an invalid block type (BTYPE 11).
    let payload = [0x00, 0x05, 0x00, 0xFA, 0xFF, b'a', b'b', 0xFF, b'c', b'd', 0x07];
    let mut frame = vec![0xC1, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(&payload);
    for piece in [1, 3, frame.len()] {
        let config = Config { deflate: Some(wsproto::DeflateConfig::default()), ..Config::default() };
        let now = Instant::now();
        let mut server = Connection::server(Arc::new(config), now);
        server.receive(now, harness::VALID_REQUEST);
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        server.accept(wsproto::Accept::new()).unwrap();
        assert!(server.compression().is_some());
        for chunk in frame.chunks(piece) {
            server.receive(now, chunk);
        }
        let closed = std::iter::from_fn(|| server.poll_event()).find_map(|e| match e {
            Event::Closed(closed) => Some(closed.cause),
            _ => None,
        });
        assert_eq!(closed, Some(CloseCause::Protocol(wsproto::ProtocolError::InvalidUtf8)), "piece {piece}");
    }
}

/// Events held while compressed messages under the limit arrive: each may hold up to
/// `max_message_size`, however small its frame (the first bound scaled only streaming).
#[cfg(feature = "deflate")]
#[test]
fn held_compressed_messages_may_each_be_full_size() {
    use scenario::{Kind, Op, Scenario};
    let mut ops = vec![Op::Hold(true), Op::AppBinary(vec![24])];
    ops.extend((0..15).map(|_| Op::Bomb { zeros: 13107 }));
    ops.push(Op::PeerBurst { count: 209, kind: Kind::Continuation, len: 0 });
    scenario::run(&Scenario { flags: 232, client: true, mode: 255, ops });
}

/// Streaming, events held, an application close while a UTF-8 failure waits: whether it waits
/// depends on whether earlier reads reported chunks, so held runs are not compared across
/// chunkings (found comparing them; each run's own invariants still hold).
#[test]
fn held_runs_are_not_compared_across_chunkings() {
    use scenario::{Code, Op, Scenario};
    let ops = vec![
        Op::Flush(93),
        Op::Hold(true),
        Op::BadUtf8 { prefix: ";".repeat(100) + &"]".repeat(25), bad: 255, suffix: String::new(), cut: Some(255) },
        Op::AppClose { code: Code::Known(237), reason: String::new() },
        Op::Release,
        Op::AppBig { text: true, len: 60909, byte: 237 },
    ];
    scenario::run(&Scenario { flags: 59, client: false, mode: 0, ops });
}

/// Events held with a slow writer: the auto-pong of a ping taken late was expected after an
/// application pong sent meanwhile, but left before it. Once events are held, pongs are matched
/// as a multiset (the first versions checked their order).
#[test]
fn pongs_are_matched_without_order_once_events_are_held() {
    use scenario::{Kind, Op, Scenario};
    let mut ops = vec![Op::Writer(65), Op::AppBinary(vec![])];
    ops.extend((0..7).map(|_| Op::AppTextSplit { text: String::new(), cut: 199 }));
    ops.extend([
        Op::Hold(true),
        Op::Frame { kind: Kind::Ping, fin: true, payload: vec![199, 199, 199, 199, 17, 53], oddity: None },
        Op::AppPong(vec![]),
        Op::Raw(vec![32]),
        Op::Frame { kind: Kind::Continuation, fin: true, payload: vec![24], oddity: None },
    ]);
    scenario::run(&Scenario { flags: 0, client: true, mode: 21, ops });
}

// ---- Bug 6: permessage-deflate inflated a whole read before any event was taken ----
//
// `receive` inflated everything a read held at once. In `ReceiveMode::Streaming` nothing bounded
// it (`max_message_size` does not apply to streams) and a read inflated into one `Chunk`: a
// peer's 1 KiB frame (1 MiB of zeros, deflated) made one `receive` allocate over 1 MiB, and a
// 64 KiB read could become 64 MiB. In messages mode each message stayed within
// `max_message_size`, but a read of small compressed frames (about 30 bytes for 16 KiB of zeros)
// yielded hundreds of full-size messages at once (about 550 times the read). Found by
// frame_sequence (bombs on a streaming server; bombs under the limit with events held). Now
// input is processed no further while inflated data waits to be taken, and streaming chunks of
// a compressed message carry at most 32 KiB: a read costs one message (or one chunk) at a time.
//
// Fuzzing the fix found two gaps, now covered: (1) zlib reads input ahead, so a chunk that stops
// full may leave output that the bytes already taken decode to; it was delivered only when more
// input came, so how much of a message arrived depended on the reads
// (`fuzz/regressions/*_connection/streamed-inflater-output-behind-a-full-chunk`; now drained
// first when the chunk is taken). (2) The end of file arriving behind held input now takes effect
// once that input is processed, as events are taken, instead of at once (the scenario below).

#[cfg(feature = "deflate")]
fn compressed_server(mode: wsproto::ReceiveMode) -> (Connection, Instant) {
    let config = Config { receive_mode: mode, deflate: Some(wsproto::DeflateConfig::default()), ..Config::default() };
    let now = Instant::now();
    let mut server = Connection::server(Arc::new(config), now);
    server.receive(now, harness::VALID_REQUEST);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(wsproto::Accept::new()).unwrap();
    assert!(server.compression().is_some());
    (server, now)
}

/// `len` zeros, deflated (RFC 7692 §7.2.1: sync flush, trailer removed) with a fresh context,
/// in one masked RSV1 binary frame.
#[cfg(feature = "deflate")]
fn deflated_zeros_frame(len: usize) -> Vec<u8> {
    let mut deflate = flate2::Compress::new(flate2::Compression::default(), false);
    let mut payload = Vec::with_capacity(len / 100 + 64);
    deflate.compress_vec(&vec![0; len], &mut payload, flate2::FlushCompress::Sync).unwrap();
    payload.truncate(payload.len() - 4);
    let header = wsproto::frame::FrameHeader {
        fin: true,
        rsv: 0b100,
        opcode: wsproto::frame::OpCode::Binary,
        mask: Some([0; 4]),
        payload_len: payload.len() as u64,
    };
    let mut frame = Vec::new();
    header.encode(&mut frame);
    frame.extend_from_slice(&payload);
    frame
}

/// Takes every event, dropping each at once as an application that handles them would;
/// answers how many messages (streaming: chunks) came and their total size.
#[cfg(feature = "deflate")]
fn take_data_events(conn: &mut Connection) -> (usize, usize) {
    let (mut count, mut bytes) = (0, 0);
    while let Some(event) = conn.poll_event() {
        match event {
            Event::Message(wsproto::Message::Binary(data)) | Event::Chunk { data, .. } => {
                count += 1;
                bytes += data.len();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (count, bytes)
}

#[cfg(feature = "deflate")]
#[test]
fn inflation_per_read_is_bounded() {
    // The inflater's own state (a 32 KiB window and its tables) is allocated by the first
    // compressed message, once per connection: a small one goes first, outside the measure.
    let warmed_up = |mode| {
        let (mut server, now) = compressed_server(mode);
        server.receive(now, &deflated_zeros_frame(10));
        take_data_events(&mut server);
        (server, now)
    };
    // Streaming: one frame of about 1 KiB that inflates to 1 MiB.
    let (mut server, now) = warmed_up(wsproto::ReceiveMode::Streaming);
    let frame = deflated_zeros_frame(1 << 20);
    let ((chunks, inflated), peak) = harness::measure(|| {
        server.receive(now, &frame);
        take_data_events(&mut server)
    });
    assert_eq!(inflated, 1 << 20);
    assert!(chunks >= 32, "{chunks} chunks");
    assert!(peak < 64 * frame.len(), "streaming: a read of {} bytes allocated {peak} bytes", frame.len());

    // Messages: 100 frames of 16 KiB of zeros each (the default limit is 64 MiB per message).
    let (mut server, now) = warmed_up(wsproto::ReceiveMode::Messages);
    let read: Vec<u8> = (0..100).flat_map(|_| deflated_zeros_frame(16 << 10)).collect();
    let ((messages, inflated), peak) = harness::measure(|| {
        server.receive(now, &read);
        take_data_events(&mut server)
    });
    assert_eq!((messages, inflated), (100, 100 * (16 << 10)));
    assert!(peak < 64 * read.len(), "messages: a read of {} bytes allocated {peak} bytes", read.len());
}

/// Input held behind inflated data keeps its order with what comes after it: later reads, a
/// ping (answered when reached), the peer's close and the end of file.
#[cfg(feature = "deflate")]
#[test]
fn input_held_behind_inflated_data_keeps_its_order() {
    let (mut server, now) = compressed_server(wsproto::ReceiveMode::Messages);
    let ping = [0x89, 0x80, 0, 0, 0, 0];
    let close = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];
    let mut first_read: Vec<u8> = (0..3).flat_map(|_| deflated_zeros_frame(1000)).collect();
    first_read.extend_from_slice(&ping);
    server.receive(now, &first_read);
    assert!(!server.wants_read(), "inflated data waits: take the events first");
    // An adapter that reads anyway loses nothing: the bytes wait behind the held ones.
    server.receive(now, &deflated_zeros_frame(2000));
    server.receive(now, &close);
    server.receive_eof(now);
    assert!(!server.should_close_transport());
    let mut seen = Vec::new();
    while let Some(event) = server.poll_event() {
        seen.push(match event {
            Event::Message(wsproto::Message::Binary(data)) => format!("binary {}", data.len()),
            Event::Ping(_) => "ping".to_owned(),
            Event::Closed(closed) => format!("closed {} clean={}", closed.code, closed.clean),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(seen, ["binary 1000", "binary 1000", "binary 1000", "ping", "binary 2000", "closed 1000 clean=true"]);
    assert!(server.should_close_transport());
    // The pong, then the close echo.
    let mut sent = Vec::new();
    while server.queued_bytes() > 0 {
        let front = server.outgoing_front().to_vec();
        server.advance_outgoing(now, front.len());
        sent.extend_from_slice(&front);
    }
    assert!(sent.ends_with(&[0x8a, 0x00, 0x88, 0x02, 0x03, 0xe8]), "{sent:02x?}");
}

/// Found by frame_sequence: a lazy client application (events held) receives three deflate
/// bombs under the limit, then the end of file. The end of file waits behind the held input; once
/// the events are taken, every message arrives and then `Closed`.
#[cfg(feature = "deflate")]
#[test]
fn end_of_file_behind_held_input_in_the_scenario() {
    use scenario::{Op, Scenario};
    let ops = vec![
        Op::Bomb { zeros: 14649 },
        Op::Hold(true),
        Op::Bomb { zeros: 14649 },
        Op::Bomb { zeros: 14649 },
        Op::Eof,
        Op::AppFragment { text: true, data: vec![], fin: false },
    ];
    scenario::run(&Scenario { flags: 31, client: true, mode: 57, ops });
}

// ---- Harness: a drain deadline that drops the queue drops what was owed too ----
//
// Found by frame_sequence in CI: a client fails on a frame over `max_frame_size` and queues its
// close frame (1009), nothing is written, and the next deadline is the drain deadline, which
// drops the queue as `Config::drain_timeout` says. The harness demanded the 1009 frame anyway.
// It now notes a deadline that empties the queue and no longer asks for what was dropped.

#[test]
fn a_close_frame_dropped_at_the_drain_deadline_is_not_owed() {
    use scenario::{Code, Kind, Op, Scenario};
    let ops = vec![
        Op::Big { kind: Kind::Continuation, fin: true, len: 4128, byte: 223 },
        Op::Close { code: Code::OneByte(232), reason: String::new() },
        Op::Deadline { late: 0, early: false },
        Op::Fragmented { text: true, data: "\u{1b}\u{1b}\u{1b}\u{1b}".into(), cuts: vec![1, 17, 0], controls: vec![] },
    ];
    scenario::run(&Scenario { flags: 0, client: true, mode: 21, ops });
}
