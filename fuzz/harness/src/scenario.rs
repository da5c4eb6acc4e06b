//! The structure-aware `frame_sequence` target: a sequence of operations (peer frames encoded
//! for real, timer jumps, end of file, application commands, slow writes) played against an
//! open server or client connection through the [`Harness`], once
//! with the peer's bytes in the pieces the scenario chooses and once whole, and compared.
//!
//! The replays in this crate's `tests/fuzz_regressions.rs` build without the `arbitrary`
//! feature: regression scenarios there are written as Rust values.

use std::time::Duration;

use crate::{compare_runs, Drain, Harness, Mode, Record};
use wsproto::{Message, MessageKind};

/// One fuzz case: the config flags (see [`crate::config`]), the role under test, the
/// application's handshake behaviour (see [`Mode`]; rejection is masked off so that the
/// connection opens) and the operations.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Config flags.
    pub flags: u8,
    /// Test a client (the peer is a server and sends unmasked frames) instead of a server.
    pub client: bool,
    /// Handshake behaviour bits.
    pub mode: u8,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

/// A frame opcode the peer uses: the core's own [`OpCode`](wsproto::frame::OpCode), whose
/// `arbitrary` feature derives `Arbitrary` in the order the committed `frame_sequence` corpus
/// was written with.
pub use wsproto::frame::OpCode as Kind;

/// Something wrong (or unusual) with a peer frame.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oddity {
    /// RSV bits (low three bits used).
    Rsv(u8),
    /// A reserved opcode instead of the frame's kind (mapped into 0x3-0x7, 0xB-0xF).
    ReservedOpcode(u8),
    /// Masked from a server, unmasked from a client.
    WrongMask,
    /// The length in the 16-bit form even when shorter would do.
    Length16,
    /// The length in the 64-bit form even when shorter would do.
    Length64,
    /// The 64-bit form with the most significant bit set.
    LengthTopBit,
    /// Announce this length instead of the payload's (the stream then desynchronises).
    Announce(u32),
}

/// A close code for a peer's or the application's close.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// One of the interesting codes (index into a table of valid and invalid ones).
    Known(u8),
    /// Any 16-bit value.
    Any(u16),
    /// No code: an empty close payload.
    Empty,
    /// A one-byte payload.
    OneByte(u8),
}

const KNOWN_CODES: [u16; 20] = [
    1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 1015, 1016, 2999, 3000, 4999,
    5000,
];

impl Code {
    fn payload(self, reason: &str) -> Vec<u8> {
        match self {
            Code::Known(i) => {
                [&KNOWN_CODES[usize::from(i) % KNOWN_CODES.len()].to_be_bytes()[..], reason.as_bytes()].concat()
            }
            Code::Any(code) => [&code.to_be_bytes()[..], reason.as_bytes()].concat(),
            Code::Empty => Vec::new(),
            Code::OneByte(b) => vec![b],
        }
    }

    fn value(self) -> u16 {
        match self {
            Code::Known(i) => KNOWN_CODES[usize::from(i) % KNOWN_CODES.len()],
            Code::Any(code) => code,
            Code::Empty => 1005,
            Code::OneByte(b) => u16::from(b),
        }
    }
}

/// A control frame between fragments.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// A ping.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
}

/// Byte sequences that are never valid UTF-8 (or only valid with more bytes).
const BAD_UTF8: [&[u8]; 9] = [
    b"\xff",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe0\x80\xaf",
    b"\x80",
    b"\xce",
    b"\xf0\x9f\x98",
    b"\xf8\x88\x80\x80\x80",
];

/// One step of a scenario.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A peer frame, correctly masked for its role unless `oddity` says otherwise.
    Frame {
        /// The opcode.
        kind: Kind,
        /// FIN.
        fin: bool,
        /// The payload.
        payload: Vec<u8>,
        /// What is wrong with it.
        oddity: Option<Oddity>,
    },
    /// A peer frame with a large payload of one repeated byte (e.g. 64 KiB).
    Big {
        /// The opcode.
        kind: Kind,
        /// FIN.
        fin: bool,
        /// The payload length.
        len: u16,
        /// The payload byte.
        byte: u8,
    },
    /// A text (or binary) message in fragments cut at `cuts` (byte offsets, possibly inside a
    /// code point), with control frames between the fragments.
    Fragmented {
        /// Text rather than binary.
        text: bool,
        /// The message.
        data: String,
        /// Where to cut (each modulo the length).
        cuts: Vec<u8>,
        /// Control frames, one after each fragment in turn.
        controls: Vec<Control>,
    },
    /// A peer close frame.
    Close {
        /// The code.
        code: Code,
        /// The reason.
        reason: String,
    },
    /// A permessage-deflate message (RSV1, RFC 7692), compressed as the negotiated parameters
    /// allow the peer (window, context takeover), optionally in two fragments. Without
    /// compression negotiated it is a protocol error.
    Deflated {
        /// Text rather than binary.
        text: bool,
        /// The uncompressed message.
        data: Vec<u8>,
        /// Where to cut the compressed payload into two fragments.
        cut: Option<u8>,
    },
    /// A compressed message of `zeros * 16` zero bytes (at most 64 KiB: four times
    /// `max_message_size`, twice the inflater's buffer; larger only slows the fuzzer down in
    /// zlib): a small frame that inflates past the limit.
    Bomb {
        /// Size in units of 16 bytes.
        zeros: u16,
    },
    /// A text message with an invalid UTF-8 sequence, optionally in two fragments.
    BadUtf8 {
        /// Valid text before.
        prefix: String,
        /// Which bad sequence.
        bad: u8,
        /// Valid text after.
        suffix: String,
        /// Where to cut into two fragments.
        cut: Option<u8>,
    },
    /// Many small peer frames of one kind (payload bytes `b'p'`): event and pong bursts.
    PeerBurst {
        /// How many.
        count: u8,
        /// The opcode.
        kind: Kind,
        /// Payload length.
        len: u8,
    },
    /// Raw bytes on the wire.
    Raw(Vec<u8>),
    /// Deliver the peer bytes so far, in reads of `piece` bytes (0: at once); later implicit
    /// deliveries use the same size.
    Flush(u8),
    /// Advance the clock by this many milliseconds and fire the timers.
    Timeout(u16),
    /// Jump to the next deadline (plus `late` ms), or just before it (`early`).
    Deadline {
        /// How late.
        late: u8,
        /// Just before the deadline instead: must change nothing.
        early: bool,
    },
    /// The transport reaches end of file.
    Eof,
    /// From now on write the outgoing queue after each step like this (see [`Drain::from_byte`]).
    Writer(u8),
    /// Many small messages (`b'x'` bytes), each followed by a write with the current writer:
    /// a long exchange with a slow peer in a few input bytes.
    AppBurst {
        /// How many.
        count: u8,
        /// Length of each.
        len: u8,
        /// Text rather than binary.
        text: bool,
    },
    /// `send_text`.
    AppText(String),
    /// `send_binary`.
    AppBinary(Vec<u8>),
    /// `send` of a large repeated-byte message (the owned, uncopied path from 16 KiB).
    AppBig {
        /// Text (ASCII) rather than binary.
        text: bool,
        /// Length, modulo 24 KiB.
        len: u16,
        /// The byte (made ASCII for text).
        byte: u8,
    },
    /// `send_prepared`.
    AppPrepared {
        /// Text rather than binary.
        text: bool,
        /// The payload.
        data: String,
    },
    /// `send_fragment` with arbitrary bytes (text fragments may be refused as invalid UTF-8).
    AppFragment {
        /// Text rather than binary.
        text: bool,
        /// The fragment.
        data: Vec<u8>,
        /// The last fragment.
        fin: bool,
    },
    /// A text message sent in two fragments cut at a byte offset (possibly inside a code point).
    AppTextSplit {
        /// The text.
        text: String,
        /// Where to cut (modulo the length).
        cut: u8,
    },
    /// `ping`.
    AppPing(Vec<u8>),
    /// `pong`.
    AppPong(Vec<u8>),
    /// `close`.
    AppClose {
        /// The code.
        code: Code,
        /// The reason.
        reason: String,
    },
    /// `release_buffers`.
    Release,
    /// Leave events in the connection (`true`: a lazy application, which takes them only at a
    /// later step, with timers and commands in between) or take them after every call again.
    /// Such runs leave the documented run loop: their own invariants are checked, but they are
    /// not compared with other chunkings.
    Hold(bool),
}

/// The most peer bytes one scenario generates (keeps each run fast).
const MAX_WIRE: usize = 512 << 10;

struct Wire {
    bytes: Vec<u8>,
    total: usize,
    /// Peer frames are masked (the peer is a client).
    masked: bool,
    keys: u32,
    /// The peer's compressor and whether it resets after each message, as negotiated.
    #[cfg(feature = "deflate")]
    deflater: Option<(flate2::Compress, bool)>,
}

impl Wire {
    fn key(&mut self) -> [u8; 4] {
        self.keys = self.keys.wrapping_add(1).wrapping_mul(0x9E37_79B9);
        self.keys.to_be_bytes()
    }

    fn frame(&mut self, opcode: u8, fin: bool, payload: &[u8], oddity: Option<Oddity>) {
        if self.total + payload.len() > MAX_WIRE {
            return;
        }
        let mut opcode = opcode;
        let mut rsv = 0;
        let mut masked = self.masked;
        let mut announced = payload.len() as u64;
        let mut form = 0; // 0 minimal, 16, 64
        match oddity {
            None => {}
            Some(Oddity::Rsv(bits)) => rsv = bits & 7,
            Some(Oddity::ReservedOpcode(op)) => opcode = [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF][usize::from(op) % 10],
            Some(Oddity::WrongMask) => masked = !masked,
            Some(Oddity::Length16) if payload.len() <= 0xFFFF => form = 16,
            Some(Oddity::Length16) => {}
            Some(Oddity::Length64) => form = 64,
            Some(Oddity::LengthTopBit) => {
                form = 64;
                announced |= 1 << 63;
            }
            Some(Oddity::Announce(len)) => announced = u64::from(len),
        }
        let start = self.bytes.len();
        self.bytes.push((u8::from(fin) << 7) | (rsv << 4) | opcode);
        let mask_bit = if masked { 0x80 } else { 0 };
        match (form, announced) {
            (0, len @ 0..=125) => self.bytes.push(mask_bit | len as u8),
            (0 | 16, len @ 0..=0xFFFF) => {
                self.bytes.push(mask_bit | 126);
                self.bytes.extend_from_slice(&(len as u16).to_be_bytes());
            }
            (_, len) => {
                self.bytes.push(mask_bit | 127);
                self.bytes.extend_from_slice(&len.to_be_bytes());
            }
        }
        let key = masked.then(|| self.key());
        if let Some(key) = key {
            self.bytes.extend_from_slice(&key);
        }
        let body = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        if let Some(key) = key {
            wsproto::frame::apply_mask(&mut self.bytes[body..], key, 0);
        }
        self.total += self.bytes.len() - start;
    }

    /// A compressed message: the first frame carries RSV1, a continuation does not.
    fn compressed(&mut self, text: bool, data: &[u8], cut: Option<u8>) {
        let payload = self.compress(data);
        let (opcode, rsv1) = (if text { 0x1 } else { 0x2 }, Oddity::Rsv(0b100));
        match cut_points(&cut.map_or(vec![], |c| vec![c]), payload.len()).first() {
            Some(&at) => {
                self.frame(opcode, false, &payload[..at], Some(rsv1));
                self.frame(0x0, true, &payload[at..], None);
            }
            None => self.frame(opcode, true, &payload, Some(rsv1)),
        }
    }

    #[cfg(feature = "deflate")]
    fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let (compress, reset) =
            self.deflater.get_or_insert_with(|| (flate2::Compress::new(flate2::Compression::default(), false), true));
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            let before = compress.total_in();
            compress.compress_vec(&data[consumed..], &mut out, flate2::FlushCompress::Sync).expect("deflate");
            consumed += (compress.total_in() - before) as usize;
            if consumed == data.len() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        if *reset {
            compress.reset();
        }
        if out.ends_with(&[0, 0, 0xff, 0xff]) {
            out.truncate(out.len() - 4);
        }
        out
    }

    /// Without the feature, RSV1 frames carry the data as it is (a protocol error anyway).
    #[cfg(not(feature = "deflate"))]
    fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        data.to_vec()
    }

    fn raw(&mut self, bytes: &[u8]) {
        if self.total + bytes.len() <= MAX_WIRE {
            self.bytes.extend_from_slice(bytes);
            self.total += bytes.len();
        }
    }

    /// Delivers the pending bytes in reads of `piece` (0 or whole run: at once).
    fn flush(&mut self, h: &mut Harness, piece: usize) {
        let bytes = std::mem::take(&mut self.bytes);
        let piece = if piece == 0 { bytes.len().max(1) } else { piece };
        for chunk in bytes.chunks(piece) {
            h.receive(chunk);
        }
    }
}

/// Cut points for `len` bytes from arbitrary offsets: sorted, deduplicated, inside `1..len`.
fn cut_points(cuts: &[u8], len: usize) -> Vec<usize> {
    let mut points: Vec<usize> =
        if len < 2 { Vec::new() } else { cuts.iter().map(|&c| 1 + usize::from(c) % (len - 1)).collect() };
    points.sort_unstable();
    points.dedup();
    points
}

/// Plays a scenario once with the chosen read sizes and once with whole reads; compares.
pub fn run(scenario: &Scenario) {
    let chunked = execute(scenario, true);
    let whole = execute(scenario, false);
    compare_runs(&whole, &chunked);
}

/// Plays a scenario; `chunked` honours `Flush` read sizes, otherwise pending bytes are always
/// delivered at once.
pub fn execute(scenario: &Scenario, chunked: bool) -> Record {
    // Reject (bit 2) and the prefix bit (0) are masked off: the handshake is always done here.
    let mode = Mode(scenario.mode & !0b101);
    let mut h =
        if scenario.client { Harness::client(scenario.flags, mode) } else { Harness::server(scenario.flags, mode) };
    h.handshake();
    let mut wire = Wire {
        bytes: Vec::new(),
        total: 0,
        masked: !scenario.client,
        keys: 0,
        #[cfg(feature = "deflate")]
        deflater: h.conn.compression().map(|params| {
            // The peer compresses with its own direction's window and context rule.
            let (bits, reset) = if scenario.client {
                (params.server_max_window_bits, params.server_no_context_takeover)
            } else {
                (params.client_max_window_bits, params.client_no_context_takeover)
            };
            (flate2::Compress::new_with_window_bits(flate2::Compression::default(), false, bits.max(9)), reset)
        }),
    };
    let mut piece = 0;
    let mut writer = Drain::All { piece: 0, vectored: false };
    h.drain(writer);
    for op in &scenario.ops {
        let read = if chunked { piece } else { 0 };
        match op {
            Op::Frame { kind, fin, payload, oddity } => wire.frame(kind.as_u8(), *fin, payload, *oddity),
            Op::Big { kind, fin, len, byte } => wire.frame(kind.as_u8(), *fin, &vec![*byte; usize::from(*len)], None),
            Op::Fragmented { text, data, cuts, controls } => {
                let bytes = data.as_bytes();
                let points = cut_points(cuts, bytes.len());
                let mut start = 0;
                let mut controls = controls.iter();
                for (i, end) in points.iter().copied().chain([bytes.len()]).enumerate() {
                    let opcode = match (i, text) {
                        (0, true) => 0x1,
                        (0, false) => 0x2,
                        _ => 0x0,
                    };
                    wire.frame(opcode, end == bytes.len(), &bytes[start..end], None);
                    start = end;
                    match controls.next() {
                        Some(Control::Ping(p)) if end < bytes.len() => wire.frame(0x9, true, p, None),
                        Some(Control::Pong(p)) if end < bytes.len() => wire.frame(0xA, true, p, None),
                        _ => {}
                    }
                }
            }
            Op::Close { code, reason } => wire.frame(0x8, true, &code.payload(reason), None),
            Op::BadUtf8 { prefix, bad, suffix, cut } => {
                let message =
                    [prefix.as_bytes(), BAD_UTF8[usize::from(*bad) % BAD_UTF8.len()], suffix.as_bytes()].concat();
                match cut_points(&cut.map_or(vec![], |c| vec![c]), message.len()).first() {
                    Some(&at) => {
                        wire.frame(0x1, false, &message[..at], None);
                        wire.frame(0x0, true, &message[at..], None);
                    }
                    None => wire.frame(0x1, true, &message, None),
                }
            }
            Op::PeerBurst { count, kind, len } => {
                for _ in 0..*count {
                    wire.frame(kind.as_u8(), true, &vec![b'p'; usize::from(*len)], None);
                }
            }
            Op::Raw(bytes) => wire.raw(bytes),
            Op::Deflated { text, data, cut } => wire.compressed(*text, data, *cut),
            Op::Bomb { zeros } => wire.compressed(false, &vec![0; usize::from(*zeros % 4097) * 16], None),
            Op::AppBurst { count, len, text } => {
                wire.flush(&mut h, read);
                let payload = vec![b'x'; usize::from(*len)];
                for _ in 0..*count {
                    if *text {
                        h.send_text(std::str::from_utf8(&payload).expect("ASCII"));
                    } else {
                        h.send_binary(&payload);
                    }
                    h.drain(writer);
                }
            }
            Op::Flush(p) => {
                piece = usize::from(*p);
                wire.flush(&mut h, if chunked { piece } else { 0 });
            }
            other => {
                wire.flush(&mut h, read);
                command(&mut h, other);
                if let Op::Writer(w) = other {
                    writer = Drain::from_byte(*w);
                }
            }
        }
        h.drain(writer);
    }
    wire.flush(&mut h, if chunked { piece } else { 0 });
    h.finish()
}

fn command(h: &mut Harness, op: &Op) {
    match op {
        Op::Timeout(ms) => h.advance(Duration::from_millis(u64::from(*ms))),
        Op::Deadline { late, early } => h.jump_to_deadline(Duration::from_millis(u64::from(*late)), *early),
        Op::Eof => {
            if !h.conn.should_close_transport() {
                h.eof();
            }
        }
        Op::Writer(_) => {}
        Op::AppText(text) => h.send_text(text),
        Op::AppBinary(data) => h.send_binary(data),
        Op::AppBig { text, len, byte } => {
            let len = usize::from(*len) % (24 << 10);
            let message = if *text {
                Message::text(char::from(byte % 0x80).to_string().repeat(len))
            } else {
                Message::binary(vec![*byte; len])
            };
            h.send_owned(message);
        }
        Op::AppPrepared { text, data } => {
            let message = if *text { Message::text(data.clone()) } else { Message::binary(data.clone().into_bytes()) };
            h.send_prepared(&message);
        }
        Op::AppFragment { text, data, fin } => {
            let kind = if *text { MessageKind::Text } else { MessageKind::Binary };
            let _ = h.send_fragment(kind, data, *fin);
        }
        Op::AppTextSplit { text, cut } => {
            let bytes = text.as_bytes();
            let at = if bytes.is_empty() { 0 } else { usize::from(*cut) % (bytes.len() + 1) };
            let fresh = h.sending_fragmented().is_none();
            if h.send_fragment(MessageKind::Text, &bytes[..at], false).is_ok() {
                let rest = h.send_fragment(MessageKind::Text, &bytes[at..], true);
                // Valid text cut anywhere is valid in fragments (the queue may be full, though),
                // unless it continues a message that already ends inside a code point.
                if fresh {
                    assert!(
                        !matches!(rest, Err(wsproto::SendError::Usage(wsproto::UsageError::InvalidUtf8))),
                        "valid text refused as invalid UTF-8"
                    );
                }
            }
        }
        Op::AppPing(p) => h.ping(p),
        Op::AppPong(p) => h.pong(p),
        Op::AppClose { code, reason } => h.close(code.value(), reason),
        Op::Release => h.release_buffers(),
        Op::Hold(hold) => h.hold_events(*hold),
        Op::Frame { .. }
        | Op::Big { .. }
        | Op::PeerBurst { .. }
        | Op::AppBurst { .. }
        | Op::Deflated { .. }
        | Op::Bomb { .. }
        | Op::Fragmented { .. }
        | Op::Close { .. }
        | Op::BadUtf8 { .. }
        | Op::Raw(_)
        | Op::Flush(_) => unreachable!("peer operations are encoded, not commanded"),
    }
}
