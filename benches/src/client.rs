//! The load generator: plain mio and pre-encoded masked frames, no WebSocket library, so that
//! the client costs as little as possible and is the same for every server.
//!
//! Every workload runs a warm-up, then a timed window; only the window is counted. Each
//! message carries its send time (16 hex digits of nanoseconds, valid in text messages too),
//! which gives the round-trip latency when it comes back, and every 64th message per
//! connection is compared byte for byte with what was sent.
//!
//! A connection may offer permessage-deflate (RFC 7692). Its requests stay pre-encoded (see
//! `Template::compressed`); the server's compressed replies are inflated with one context per
//! connection, kept across messages, and every one is compared with what was sent.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::frames::{self, Kind, DEFLATE_OFFER, EXPECTED_ACCEPT, MASK_KEY};
use crate::procfs;

/// Every how many messages per connection the whole payload is checked.
const SAMPLE_EVERY: u64 = 64;

/// At most this many errors are kept per run.
const MAX_ERRORS: usize = 8;

/// Bytes of each payload used for the timestamp.
const TS_LEN: usize = 16;

/// What every compressed message ends with before its sender strips it, and what its receiver
/// appends again before inflating (RFC 7692 §7.2.1, §7.2.2).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The head of a deflate stored block of [`TS_LEN`] bytes (RFC 1951 §3.2.4): one byte holding
/// BFINAL=0 and BTYPE=00 (then padding to the byte boundary), LEN=16 and NLEN=!16, little-endian.
const STORED_TS_HEAD: [u8; 5] = [0x00, TS_LEN as u8, 0x00, !(TS_LEN as u8), 0xff];

/// The level the compressed templates are deflated with (the server's default too).
const TEMPLATE_LEVEL: u32 = 6;

/// The server under load.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A raw-TCP ceiling: it echoes the handshake request and sends our masked frames back.
    pub raw: bool,
    /// Its process, for CPU time.
    pub pid: Option<u32>,
}

/// How long to warm up and how long to measure.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// Not counted.
    pub warmup: Duration,
    /// Counted.
    pub measure: Duration,
}

/// What a timed window measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Messages echoed, deliveries or handshakes completed in the window.
    pub count: u64,
    /// The window's length.
    pub secs: f64,
    /// Latencies in the window, nanoseconds.
    pub hist: Histogram<u64>,
    /// Server CPU seconds (user + system) in the window.
    pub server_cpu: Option<f64>,
    /// Load generator CPU seconds in the window.
    pub client_cpu: f64,
    /// What went wrong (payload mismatches, closed connections, refused handshakes).
    pub errors: Vec<String>,
    /// Echo only: bytes on the wire per message.
    pub wire: Option<Wire>,
}

/// Bytes on the wire per echoed message in the timed window (frame header, masking key and
/// payload), as the load generator sent and received them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wire {
    /// Each request (the pre-encoded frame; the mean when several take turns).
    pub sent: f64,
    /// The replies, on average.
    pub received: f64,
    /// The share of replies that came compressed (RSV1 set).
    pub compressed: f64,
}

impl Measured {
    /// Count per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.count as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// An empty latency histogram: 1 ns to 100 s, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// The warm-up / window clock shared by the workloads.
struct Clock {
    epoch: Instant,
    measure_from: Instant,
    until: Instant,
    measuring: bool,
    count_at_start: u64,
    server_cpu_at_start: Option<f64>,
    client_cpu_at_start: f64,
    pid: Option<u32>,
}

impl Clock {
    fn new(epoch: Instant, phases: Phases, pid: Option<u32>) -> Clock {
        let now = Instant::now();
        Clock {
            epoch,
            measure_from: now + phases.warmup,
            until: now + phases.warmup + phases.measure,
            measuring: false,
            count_at_start: 0,
            server_cpu_at_start: None,
            client_cpu_at_start: 0.0,
            pid,
        }
    }

    fn poll_timeout(&self, now: Instant) -> Duration {
        let next = if self.measuring { self.until } else { self.measure_from };
        next.saturating_duration_since(now).min(Duration::from_millis(50))
    }

    /// Starts the window when its time has come (clearing the histogram); answers whether the
    /// run is over.
    fn tick(&mut self, now: Instant, count: u64, hist: &mut Histogram<u64>) -> bool {
        if !self.measuring && now >= self.measure_from {
            self.measuring = true;
            self.measure_from = now;
            self.count_at_start = count;
            self.server_cpu_at_start = self.pid.and_then(procfs::cpu_seconds);
            self.client_cpu_at_start = procfs::self_cpu_seconds();
            hist.reset();
        }
        self.measuring && now >= self.until
    }

    fn finish(&self, now: Instant, count: u64, hist: Histogram<u64>, errors: Vec<String>) -> Measured {
        let server_cpu = match (self.server_cpu_at_start, self.pid.and_then(procfs::cpu_seconds)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        Measured {
            count: count - self.count_at_start,
            secs: now.duration_since(self.measure_from).as_secs_f64(),
            hist,
            server_cpu,
            client_cpu: procfs::self_cpu_seconds() - self.client_cpu_at_start,
            errors,
            wire: None,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.duration_since(self.epoch).as_nanos() as u64
    }
}

fn note(errors: &mut Vec<String>, error: impl Into<String>) {
    if errors.len() < MAX_ERRORS {
        errors.push(error.into());
    }
}

/// A non-blocking connect whose socket resets on close (SO_LINGER 0): tens of thousands of
/// short connections must not leave TIME_WAIT sockets behind to exhaust the ephemeral ports.
fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_linger(Some(Duration::ZERO))?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        // EINPROGRESS: the usual answer of a non-blocking connect.
        Err(e) if e.raw_os_error() == Some(115) || e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// A connection going through the opening handshake.
struct Opening {
    stream: TcpStream,
    sent: usize,
    head: Vec<u8>,
    started: Instant,
}

enum Step {
    Wait,
    Done,
    Failed(String),
}

impl Opening {
    fn start(poll: &Poll, addr: SocketAddr, token: Token) -> io::Result<Opening> {
        let mut stream = connect(addr)?;
        poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Opening { stream, sent: 0, head: Vec::new(), started: Instant::now() })
    }

    /// Writes the request, then reads the answer's head (a 101 with the right accept key and
    /// the extension answer `deflate` calls for, or for the raw ceilings the request itself).
    fn step(&mut self, request: &[u8], raw: bool, deflate: bool) -> Step {
        while self.sent < request.len() {
            match self.stream.write(&request[self.sent..]) {
                Ok(n) => self.sent += n,
                // Still connecting, or the buffer is full: wait for writable.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::NotConnected) => return Step::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Step::Failed(format!("handshake write: {e}")),
            }
        }
        let mut buf = [0u8; 2048];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Step::Failed("handshake: connection closed".into()),
                Ok(n) => self.head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Step::Failed(format!("handshake read: {e}")),
            }
        }
        let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
            return if self.head.len() > 4096 { Step::Failed("handshake: head too long".into()) } else { Step::Wait };
        };
        let head = &self.head[..end + 4];
        let ok = if raw {
            head == request
        } else {
            head.starts_with(b"HTTP/1.1 101") && head.windows(EXPECTED_ACCEPT.len()).any(|w| w == EXPECTED_ACCEPT)
        };
        if !ok {
            return Step::Failed(format!("handshake refused: {:?}", String::from_utf8_lossy(head)));
        }
        if !raw {
            if let Err(e) = check_extensions(head, deflate) {
                return Step::Failed(format!("handshake: {e}: {:?}", String::from_utf8_lossy(head)));
            }
        }
        if self.head.len() > end + 4 {
            return Step::Failed("handshake: bytes after the head before any request".into());
        }
        Step::Done
    }
}

/// Checks a 101's `Sec-WebSocket-Extensions` against the offer: none when nothing was offered;
/// else permessage-deflate with only parameters this client can live with. Any the server may
/// choose for its own side will do (replies are inflated with a full 15-bit window, whether or
/// not the server keeps its context), as will `client_no_context_takeover` (our messages never
/// refer to earlier ones); `client_max_window_bits` was not offered, so it may not come back.
fn check_extensions(head: &[u8], offered: bool) -> Result<(), String> {
    let head = String::from_utf8_lossy(head);
    let values: Vec<&str> = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, value)| value.trim())
        .collect();
    let value = match (offered, values.as_slice()) {
        (false, []) => return Ok(()),
        (false, _) => return Err("an extension accepted that was not offered".into()),
        (true, [value]) => *value,
        (true, []) => return Err("permessage-deflate offered but not accepted".into()),
        (true, _) => return Err("more than one extension answer".into()),
    };
    let mut parts = value.split(';').map(str::trim);
    if !parts.next().is_some_and(|name| name.eq_ignore_ascii_case("permessage-deflate")) {
        return Err("an extension other than permessage-deflate accepted".into());
    }
    for param in parts {
        let name = param.split('=').next().unwrap_or_default().trim().to_ascii_lowercase();
        match name.as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" | "server_max_window_bits" => {}
            _ => return Err(format!("permessage-deflate parameter {param:?} not offered or not supported")),
        }
    }
    Ok(())
}

/// Opens `n` connections through the handshake, at most `parallel` at a time, offering
/// permessage-deflate if `deflate` (and requiring it accepted); connection `i` stays
/// registered with `poll` under token `i` (readable and writable, edge-triggered).
pub fn open(poll: &mut Poll, target: &Target, n: usize, parallel: usize, deflate: bool) -> io::Result<Vec<TcpStream>> {
    let offer = deflate.then_some(DEFLATE_OFFER);
    let request = frames::upgrade_request_with(&target.addr.to_string(), offer);
    let deadline = Instant::now() + Duration::from_secs(20) + Duration::from_millis(n as u64);
    let mut slots: Vec<Option<Opening>> = (0..n).map(|_| None).collect();
    let mut done: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    let (mut started, mut finished) = (0, 0);
    let mut events = Events::with_capacity(1024);
    while finished < n {
        while started < n && started - finished < parallel {
            slots[started] = Some(Opening::start(poll, target.addr, Token(started))?);
            started += 1;
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(ErrorKind::TimedOut, format!("opened {finished} of {n} connections")));
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let i = event.token().0;
            let Some(opening) = slots.get_mut(i).and_then(Option::as_mut) else { continue };
            match opening.step(&request, target.raw, deflate) {
                Step::Wait => {}
                Step::Done => {
                    done[i] = slots[i].take().map(|o| o.stream);
                    finished += 1;
                }
                Step::Failed(error) => return Err(io::Error::other(format!("connection {i}: {error}"))),
            }
        }
    }
    Ok(done.into_iter().map(|s| s.expect("every connection finished")).collect())
}

/// A frame as received: its head, the first bytes of its payload (unmasked), and the whole
/// payload when it was sampled.
struct RxFrame {
    opcode: u8,
    fin: bool,
    /// RSV1: a compressed message (only when permessage-deflate was agreed).
    rsv1: bool,
    len: usize,
    /// Header and payload bytes.
    wire_len: usize,
    prefix: [u8; 20],
    payload: Option<Vec<u8>>,
}

/// An incremental frame parser that keeps only the first 20 payload bytes, plus the whole
/// payload of every [`SAMPLE_EVERY`]th frame, or of every frame on a connection that agreed
/// on permessage-deflate (compressed payloads must all be inflated, in order).
#[derive(Default)]
struct Rx {
    /// permessage-deflate agreed: RSV1 allowed, every payload kept.
    deflate: bool,
    /// A buffer handed back by [`Rx::recycle`], for the next payload kept.
    spare: Vec<u8>,
    rsv1: bool,
    wire_head: usize,
    head: [u8; 14],
    head_len: usize,
    in_payload: bool,
    opcode: u8,
    fin: bool,
    mask: Option<[u8; 4]>,
    len: usize,
    pos: usize,
    prefix: [u8; 20],
    frames: u64,
    sample: Option<Vec<u8>>,
}

impl Rx {
    fn new(deflate: bool) -> Rx {
        Rx { deflate, ..Rx::default() }
    }

    /// Takes back a payload buffer once its frame has been checked.
    fn recycle(&mut self, buf: Vec<u8>) {
        if buf.capacity() > self.spare.capacity() {
            self.spare = buf;
        }
    }

    fn head_needed(&self) -> usize {
        if self.head_len < 2 {
            return 2;
        }
        let b1 = self.head[1];
        let ext = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
    }

    fn feed(&mut self, mut data: &[u8], out: &mut Vec<RxFrame>) -> Result<(), String> {
        while !data.is_empty() || (self.in_payload && self.pos == self.len) {
            if !self.in_payload {
                let need = self.head_needed();
                let take = (need - self.head_len).min(data.len());
                self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
                self.head_len += take;
                data = &data[take..];
                if self.head_len < self.head_needed() {
                    continue;
                }
                self.start_payload()?;
                continue;
            }
            let take = (self.len - self.pos).min(data.len());
            let chunk = &data[..take];
            if self.pos < self.prefix.len() {
                let n = (self.prefix.len() - self.pos).min(take);
                self.prefix[self.pos..self.pos + n].copy_from_slice(&chunk[..n]);
                if let Some(key) = self.mask {
                    frames::mask(&mut self.prefix[self.pos..self.pos + n], key, self.pos);
                }
            }
            if let Some(sample) = &mut self.sample {
                sample.extend_from_slice(chunk);
            }
            self.pos += take;
            data = &data[take..];
            if self.pos == self.len {
                let mut payload = self.sample.take();
                if let (Some(payload), Some(key)) = (&mut payload, self.mask) {
                    frames::mask(payload, key, 0);
                }
                out.push(RxFrame {
                    opcode: self.opcode,
                    fin: self.fin,
                    rsv1: self.rsv1,
                    len: self.len,
                    wire_len: self.wire_head + self.len,
                    prefix: self.prefix,
                    payload,
                });
                self.in_payload = false;
            }
        }
        Ok(())
    }

    fn start_payload(&mut self) -> Result<(), String> {
        let head = &self.head[..self.head_len];
        let (b0, b1) = (head[0], head[1]);
        let (len, at) = match b1 & 0x7F {
            126 => (u16::from_be_bytes([head[2], head[3]]) as usize, 4),
            127 => {
                let len = u64::from_be_bytes(head[2..10].try_into().expect("8 bytes"));
                (usize::try_from(len).map_err(|_| "frame length overflows usize")?, 10)
            }
            len => (len as usize, 2),
        };
        self.mask = (b1 & 0x80 != 0).then(|| [head[at], head[at + 1], head[at + 2], head[at + 3]]);
        self.opcode = b0 & 0x0F;
        self.fin = b0 & 0x80 != 0;
        // RSV1 marks a compressed message once permessage-deflate is agreed (RFC 7692 §6);
        // every other reserved bit, and RSV1 without the extension, is an error.
        let reserved = b0 & 0x70;
        if reserved != 0 && !(self.deflate && reserved == 0x40) {
            return Err(format!("reserved bits set in {b0:#04x}"));
        }
        self.rsv1 = reserved != 0;
        self.len = len;
        self.wire_head = self.head_len;
        self.pos = 0;
        self.prefix = [0; 20];
        self.in_payload = true;
        self.head_len = 0;
        self.sample = (self.deflate || self.frames.is_multiple_of(SAMPLE_EVERY)).then(|| {
            let mut buf = std::mem::take(&mut self.spare);
            buf.clear();
            buf.reserve(len);
            buf
        });
        self.frames += 1;
        Ok(())
    }
}

/// 16 lower-case hex digits.
fn put_hex(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b"0123456789abcdef"[(value & 0xF) as usize];
        value >>= 4;
    }
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc << 4 | u64::from(v))
    })
}

/// A pre-encoded masked message, part of whose payload is patched in place: the first bytes
/// of a plain one, the stored block's bytes of a compressed one ([`Template::compressed`]).
struct Template {
    /// The masked frame.
    wire: Vec<u8>,
    /// Where the payload starts in `wire`.
    at: usize,
    /// Where the patch goes in the payload (as sent).
    patch_at: usize,
    /// The unmasked payload, uncompressed: what the receiver gets.
    plain: Vec<u8>,
    opcode: u8,
}

impl Template {
    fn new(kind: Kind, size: usize) -> Template {
        let plain = frames::payload(kind, size);
        let mut wire = Vec::new();
        frames::encode_frame(&mut wire, true, kind.opcode(), Some(MASK_KEY), &plain);
        let at = wire.len() - size;
        Template { wire, at, patch_at: 0, plain, opcode: kind.opcode() }
    }

    /// The same message (binary: `variant` picks other bytes) compressed (RFC 7692 §7.2.1),
    /// still patchable without compressing anything per message: the payload is a deflate
    /// stored block (uncompressed, BFINAL=0)
    /// holding the [`TS_LEN`]-byte timestamp, followed by the rest of the message deflated once
    /// here with a fresh context, sync-flushed, less its trailing `00 00 ff ff`; RSV1 is set on
    /// its single frame.
    ///
    /// Valid behind anything: a stored block is byte-aligned and ends on a byte boundary, so
    /// the compressed rest starts on one as it did when compressed alone; and its
    /// back-references are distances into what it inflated itself (a fresh context has nothing
    /// else), the same bytes whatever the server's inflater holds before them. Nor does it rely
    /// on context takeover: it would do for a server that asked for `client_no_context_takeover`.
    /// The cost: our requests are compressed standalone, not against the previous message as a
    /// client with context takeover would; the replies show what context takeover gives.
    fn compressed(kind: Kind, size: usize, variant: u64) -> Template {
        assert!(size >= TS_LEN, "compressed payloads start with the {TS_LEN}-byte timestamp");
        let plain = frames::payload_variant(kind, size, variant);
        let mut payload = STORED_TS_HEAD.to_vec();
        payload.extend_from_slice(&plain[..TS_LEN]);
        payload.extend_from_slice(&deflate_standalone(&plain[TS_LEN..], TEMPLATE_LEVEL));
        let mut wire = Vec::new();
        frames::encode_frame(&mut wire, true, kind.opcode(), Some(MASK_KEY), &payload);
        // RSV1: this message is compressed (RFC 7692 §6).
        wire[0] |= 0x40;
        let at = wire.len() - payload.len();
        Template { wire, at, patch_at: STORED_TS_HEAD.len(), plain, opcode: kind.opcode() }
    }

    /// Appends the message with `patch` (unmasked bytes) over its patchable bytes.
    fn append(&self, out: &mut Vec<u8>, patch: &[u8]) {
        let start = out.len() + self.at + self.patch_at;
        out.extend_from_slice(&self.wire);
        let payload = &mut out[start..start + patch.len()];
        payload.copy_from_slice(patch);
        // The masking key runs from the payload's first byte (RFC 6455 §5.3).
        frames::mask(payload, MASK_KEY, self.patch_at);
    }

    fn matches(&self, payload: &[u8], patch: &[u8]) -> bool {
        payload.len() == self.plain.len()
            && payload[..patch.len()] == *patch
            && payload[patch.len()..] == self.plain[patch.len()..]
    }
}

/// Raw deflate of `input` with a fresh context and a sync flush, less the trailing
/// `00 00 ff ff` (RFC 7692 §7.2.1).
fn deflate_standalone(input: &[u8], level: u32) -> Vec<u8> {
    let mut compress = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(input.len() + 64);
    loop {
        let consumed = compress.total_in() as usize;
        compress.compress_vec(&input[consumed..], &mut out, FlushCompress::Sync).expect("deflate in memory");
        // The flush is complete once all the input is in and the output did not fill its room.
        if compress.total_in() as usize == input.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if out.ends_with(&TRAILER) {
        out.truncate(out.len() - TRAILER.len());
    }
    // Nothing at all left (empty input): an empty stored block less the trailer (RFC 7692
    // §7.2.3.6), or the receiver would read the trailer it appends as a block's head.
    if out.is_empty() {
        out.push(0x00);
    }
    out
}

/// The receiving side of permessage-deflate on one connection: one raw-inflate context kept
/// across messages (our server compresses with context takeover, so a reply may refer back
/// into the ones before it), and the buffer the last message inflated into.
struct Inflater {
    decompress: Decompress,
    out: Vec<u8>,
}

impl Inflater {
    fn new() -> Inflater {
        Inflater { decompress: Decompress::new(false), out: Vec::new() }
    }

    /// Inflates one compressed message (its whole payload; the trailer its sender stripped is
    /// appended first, RFC 7692 §7.2.2) into `self.out`, refusing more than `limit` bytes.
    fn inflate(&mut self, payload: &mut Vec<u8>, limit: usize) -> Result<&[u8], String> {
        payload.extend_from_slice(&TRAILER);
        self.out.clear();
        let d = &mut self.decompress;
        let start = d.total_in();
        loop {
            if self.out.capacity() - self.out.len() < 4096 {
                self.out.reserve(self.out.capacity().max(4 * payload.len()).max(8192));
            }
            let consumed = (d.total_in() - start) as usize;
            let before = (d.total_in(), d.total_out());
            let status = d
                .decompress_vec(&payload[consumed..], &mut self.out, FlushDecompress::Sync)
                .map_err(|e| format!("inflate: {e}"))?;
            let consumed = (d.total_in() - start) as usize;
            if self.out.len() > limit {
                return Err(format!("inflated past {limit} bytes"));
            }
            if status == Status::StreamEnd {
                // A final block: a sender may end its stream so (RFC 7692 §7.2.3.4); the next
                // message starts a new one.
                // What follows it can only be the trailer we appended.
                d.reset(false);
                if payload.len() - consumed > TRAILER.len() {
                    return Err("bytes after the end of the deflate stream".into());
                }
                break;
            }
            if consumed == payload.len() && self.out.len() < self.out.capacity() {
                break;
            }
            if (d.total_in(), d.total_out()) == before && self.out.len() < self.out.capacity() {
                return Err("inflate: truncated or corrupt compressed message".into());
            }
        }
        Ok(&self.out)
    }
}

/// A connection carrying messages.
struct Conn {
    stream: TcpStream,
    rx: Rx,
    /// permessage-deflate agreed: the replies' inflater.
    inflater: Option<Inflater>,
    tx: Vec<u8>,
    tx_pos: usize,
    /// Echo: the messages in flight, oldest first: send time and template.
    inflight: VecDeque<(u64, usize)>,
    /// Echo: messages sent (which template is next).
    sent: usize,
    dirty: bool,
    dead: bool,
    /// A readiness event reported the server's FIN or an error: read until `WouldBlock`.
    peer_closed: bool,
}

impl Conn {
    fn new(stream: TcpStream, deflate: bool) -> Conn {
        Conn {
            stream,
            rx: Rx::new(deflate),
            inflater: deflate.then(Inflater::new),
            tx: Vec::new(),
            tx_pos: 0,
            inflight: VecDeque::new(),
            sent: 0,
            dirty: false,
            dead: false,
            peer_closed: false,
        }
    }

    /// Echo: queues the next message, taking the templates in turn.
    fn send(&mut self, templates: &[Template], patch: &[u8], ts: u64) {
        let variant = self.sent % templates.len();
        templates[variant].append(&mut self.tx, patch);
        self.inflight.push_back((ts, variant));
        self.sent += 1;
    }

    fn flush(&mut self) -> Result<(), String> {
        while self.tx_pos < self.tx.len() {
            match self.stream.write(&self.tx[self.tx_pos..]) {
                Ok(0) => return Err("write: zero bytes".into()),
                Ok(n) => self.tx_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        self.tx.clear();
        self.tx_pos = 0;
        Ok(())
    }

    /// Reads everything available into `frames`: until `WouldBlock` (edge-triggered), or a
    /// short read, which on Linux proves the socket drained (as tokio and our adapter do).
    fn read(&mut self, buf: &mut [u8], frames: &mut Vec<RxFrame>) -> Result<(), String> {
        loop {
            match self.stream.read(buf) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(n) => {
                    self.rx.feed(&buf[..n], frames)?;
                    if n < buf.len() && !self.peer_closed && cfg!(target_os = "linux") {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// An echo workload.
#[derive(Debug, Clone, Copy)]
pub struct EchoSpec {
    /// Connections.
    pub conns: usize,
    /// Text or binary.
    pub kind: Kind,
    /// Payload bytes (at least 16: the timestamp).
    pub size: usize,
    /// Messages in flight per connection (1: closed loop; 16: pipelined).
    pub depth: usize,
    /// Offer permessage-deflate (and require it) and send compressed messages.
    pub deflate: bool,
}

/// Checks one echoed frame against the message sent (`patch` is the timestamp it carried),
/// inflating it first when it came compressed; hands the payload buffer back to the parser.
fn check_reply(conn: &mut Conn, mut frame: RxFrame, template: &Template, patch: &[u8; TS_LEN]) -> Result<(), String> {
    let size = template.plain.len();
    let ok = if frame.rsv1 {
        let (Some(inflater), Some(payload)) = (conn.inflater.as_mut(), frame.payload.as_mut()) else {
            return Err("a compressed frame without permessage-deflate".into());
        };
        let plain = inflater.inflate(payload, 2 * size + 1024)?;
        plain.len() == size && template.matches(plain, patch)
    } else {
        frame.len == size
            && frame.prefix[..TS_LEN] == *patch
            && frame.payload.as_ref().is_none_or(|p| template.matches(p, patch))
    };
    if let Some(payload) = frame.payload.take() {
        conn.rx.recycle(payload);
    }
    if !(ok && frame.opcode == template.opcode && frame.fin) {
        let compressed = if frame.rsv1 { " (compressed)" } else { "" };
        return Err(format!("echo mismatch: opcode {:#x} len {}{compressed}", frame.opcode, frame.len));
    }
    Ok(())
}

/// Echo: each connection keeps `depth` messages in flight and sends a new one as each comes
/// back. Counts messages echoed.
pub fn echo(target: &Target, spec: EchoSpec, phases: Phases) -> io::Result<Measured> {
    assert!(spec.size >= TS_LEN, "echo payloads carry a 16-byte timestamp");
    let mut poll = Poll::new()?;
    let streams = open(&mut poll, target, spec.conns, 128, spec.deflate)?;
    let mut conns: Vec<Conn> = streams.into_iter().map(|s| Conn::new(s, spec.deflate)).collect();
    // Compressed binary rotates through payloads that differ (a new one before the window of
    // the server's compressor could hold the same again): with context takeover, a message
    // equal to one in its window compresses to back-references, and random bytes would not be
    // incompressible any more. Text repeats itself, as a best case.
    let variants = match (spec.deflate, spec.kind) {
        (true, Kind::Binary) => ((32 << 10) / spec.size + 2).min(64),
        _ => 1,
    };
    let templates: Vec<Template> = (0..variants as u64)
        .map(|v| {
            if spec.deflate {
                Template::compressed(spec.kind, spec.size, v)
            } else {
                Template::new(spec.kind, spec.size)
            }
        })
        .collect();
    // Replies in the window: frames, their wire bytes, how many came compressed.
    let (mut rx_frames, mut rx_bytes, mut rx_compressed) = (0u64, 0u64, 0u64);
    let epoch = Instant::now();
    let mut clock = Clock::new(epoch, phases, target.pid);
    let mut hist = histogram();
    let mut errors = Vec::new();
    let mut count = 0u64;
    let mut patch = [0u8; TS_LEN];
    for conn in &mut conns {
        for _ in 0..spec.depth {
            let ts = clock.nanos(Instant::now());
            put_hex(&mut patch, ts);
            conn.send(&templates, &patch, ts);
        }
        if let Err(e) = conn.flush() {
            note(&mut errors, e);
            conn.dead = true;
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 << 10];
    let mut received = Vec::new();
    loop {
        let now = Instant::now();
        if clock.tick(now, count, &mut hist) {
            let wire = (rx_frames > 0).then(|| Wire {
                sent: templates.iter().map(|t| t.wire.len()).sum::<usize>() as f64 / templates.len() as f64,
                received: rx_bytes as f64 / rx_frames as f64,
                compressed: rx_compressed as f64 / rx_frames as f64,
            });
            return Ok(Measured { wire, ..clock.finish(now, count, hist, errors) });
        }
        poll.poll(&mut events, Some(clock.poll_timeout(now)))?;
        for event in events.iter() {
            let conn = &mut conns[event.token().0];
            if conn.dead {
                continue;
            }
            conn.peer_closed |= event.is_read_closed() || event.is_error();
            let mut result = conn.read(&mut buf, &mut received);
            let now = Instant::now();
            let now_ns = clock.nanos(now);
            for frame in received.drain(..) {
                let Some((sent, variant)) = conn.inflight.pop_front() else {
                    result = Err("a message nobody sent".into());
                    break;
                };
                if clock.measuring {
                    rx_frames += 1;
                    rx_bytes += frame.wire_len as u64;
                    rx_compressed += u64::from(frame.rsv1);
                }
                put_hex(&mut patch, sent);
                if let Err(e) = check_reply(conn, frame, &templates[variant], &patch) {
                    result = Err(e);
                    break;
                }
                hist.saturating_record(now_ns.saturating_sub(sent));
                count += 1;
                put_hex(&mut patch, now_ns);
                conn.send(&templates, &patch, now_ns);
            }
            if let Err(e) = result.and_then(|()| conn.flush()) {
                note(&mut errors, e);
                conn.dead = true;
            }
        }
    }
}

/// Broadcast: `clients` connections; each round one of them (in turn) sends a 20-byte message
/// and the server delivers it to all of them (the sender too); `window` rounds are in flight
/// at once. Counts deliveries; latencies are send-to-delivery.
pub fn broadcast(target: &Target, clients: usize, window: usize, phases: Phases) -> io::Result<Measured> {
    let mut poll = Poll::new()?;
    let streams = open(&mut poll, target, clients, 128, false)?;
    let mut conns: Vec<Conn> = streams.into_iter().map(|s| Conn::new(s, false)).collect();
    let template = Template::new(Kind::Text, 20);
    let epoch = Instant::now();
    let mut clock = Clock::new(epoch, phases, target.pid);
    let mut hist = histogram();
    let mut errors = Vec::new();
    let mut count = 0u64;
    let mut rounds = Rounds { delivered: vec![0; ROUNDS], active: vec![false; ROUNDS], next: 0, clients };
    let mut dirty: Vec<usize> = Vec::new();
    let mut to_launch = window;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 << 10];
    let mut received = Vec::new();
    loop {
        let now = Instant::now();
        for _ in 0..std::mem::take(&mut to_launch) {
            let sender = rounds.launch(&template, &mut conns, clock.nanos(now));
            if !conns[sender].dirty {
                conns[sender].dirty = true;
                dirty.push(sender);
            }
        }
        for i in dirty.drain(..) {
            let conn = &mut conns[i];
            conn.dirty = false;
            if let Err(e) = conn.flush() {
                note(&mut errors, e);
                conn.dead = true;
            }
        }
        if clock.tick(now, count, &mut hist) {
            return Ok(clock.finish(now, count, hist, errors));
        }
        poll.poll(&mut events, Some(clock.poll_timeout(now)))?;
        for event in events.iter() {
            let conn = &mut conns[event.token().0];
            if conn.dead {
                continue;
            }
            conn.peer_closed |= event.is_read_closed() || event.is_error();
            let mut result = conn.read(&mut buf, &mut received);
            let now_ns = clock.nanos(Instant::now());
            for frame in received.drain(..) {
                let (Some(sent), Some(id)) = (parse_hex(&frame.prefix[..TS_LEN]), parse_hex(&frame.prefix[TS_LEN..]))
                else {
                    result = Err("broadcast payload is not ours".into());
                    break;
                };
                let id = id as usize % ROUNDS;
                if frame.opcode != template.opcode || frame.len != 20 || !rounds.active[id] {
                    result = Err(format!("unexpected broadcast frame (round {id})"));
                    break;
                }
                hist.saturating_record(now_ns.saturating_sub(sent));
                count += 1;
                if rounds.deliver(id) {
                    to_launch += 1;
                }
            }
            if let Err(e) = result.and_then(|()| conn.flush()) {
                note(&mut errors, e);
                conn.dead = true;
            }
        }
        if conns.iter().all(|c| c.dead) {
            return Err(io::Error::other(format!("every connection failed: {errors:?}")));
        }
    }
}

/// Round numbers are carried modulo this (4 hex digits).
const ROUNDS: usize = 1 << 16;

/// The broadcast rounds in flight.
struct Rounds {
    /// Deliveries so far of each round in flight, by round number modulo [`ROUNDS`].
    delivered: Vec<u32>,
    active: Vec<bool>,
    next: usize,
    clients: usize,
}

impl Rounds {
    /// Queues the next round's message on its sender; answers the sender.
    fn launch(&mut self, template: &Template, conns: &mut [Conn], now_ns: u64) -> usize {
        let id = self.next % ROUNDS;
        let sender = self.next % self.clients;
        self.next += 1;
        self.active[id] = true;
        self.delivered[id] = 0;
        let mut patch = [0u8; 20];
        put_hex(&mut patch[..TS_LEN], now_ns);
        put_hex(&mut patch[TS_LEN..], id as u64);
        template.append(&mut conns[sender].tx, &patch);
        sender
    }

    /// Counts a delivery; answers whether it completed its round.
    fn deliver(&mut self, id: usize) -> bool {
        self.delivered[id] += 1;
        if self.delivered[id] as usize == self.clients {
            self.active[id] = false;
            return true;
        }
        false
    }
}

/// Handshakes: `parallel` connections at a time open, complete the handshake and reset.
/// Counts handshakes; latencies are connect-to-101.
pub fn handshakes(target: &Target, parallel: usize, phases: Phases) -> io::Result<Measured> {
    let mut poll = Poll::new()?;
    let request = frames::upgrade_request(&target.addr.to_string());
    let epoch = Instant::now();
    let mut clock = Clock::new(epoch, phases, target.pid);
    let mut hist = histogram();
    let mut errors = Vec::new();
    let mut count = 0u64;
    let mut slots: Vec<Option<Opening>> = Vec::with_capacity(parallel);
    for i in 0..parallel {
        slots.push(Some(Opening::start(&poll, target.addr, Token(i))?));
    }
    let mut events = Events::with_capacity(1024);
    loop {
        let now = Instant::now();
        if clock.tick(now, count, &mut hist) {
            return Ok(clock.finish(now, count, hist, errors));
        }
        poll.poll(&mut events, Some(clock.poll_timeout(now)))?;
        for event in events.iter() {
            let i = event.token().0;
            let Some(opening) = slots[i].as_mut() else { continue };
            match opening.step(&request, target.raw, false) {
                Step::Wait => continue,
                Step::Done => {
                    hist.saturating_record(opening.started.elapsed().as_nanos() as u64);
                    count += 1;
                }
                Step::Failed(e) => note(&mut errors, e),
            }
            // Reset this one (SO_LINGER 0) and start the next in its slot.
            slots[i] = None;
            match Opening::start(&poll, target.addr, Token(i)) {
                Ok(opening) => slots[i] = Some(opening),
                Err(e) => note(&mut errors, format!("connect: {e}")),
            }
        }
        if slots.iter().all(Option::is_none) {
            return Err(io::Error::other(format!("every handshake slot failed: {errors:?}")));
        }
    }
}

/// Idle connections: opens `n` (at most 256 handshakes at a time) and answers them open.
pub fn idle(target: &Target, n: usize) -> io::Result<(Poll, Vec<TcpStream>)> {
    idle_after(target, n, false, None)
}

/// What each connection of [`idle_after`] does before it goes idle: send `messages` messages of
/// `size` bytes, one at a time, each echoed back (and checked) before the next.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// Text or binary.
    pub kind: Kind,
    /// Payload bytes (at least 16).
    pub size: usize,
    /// Messages per connection.
    pub messages: usize,
}

/// Opens `n` connections (offering permessage-deflate if `deflate`, compressed messages then),
/// runs `exchange` on all of them at once if given, and answers them open and idle.
pub fn idle_after(
    target: &Target,
    n: usize,
    deflate: bool,
    exchange: Option<Exchange>,
) -> io::Result<(Poll, Vec<TcpStream>)> {
    let mut poll = Poll::new()?;
    let streams = open(&mut poll, target, n, 256, deflate)?;
    let Some(exchange) = exchange.filter(|e| e.messages > 0) else { return Ok((poll, streams)) };
    let template = if deflate {
        Template::compressed(exchange.kind, exchange.size, 0)
    } else {
        Template::new(exchange.kind, exchange.size)
    };
    let mut conns: Vec<Conn> = streams.into_iter().map(|s| Conn::new(s, deflate)).collect();
    let mut patch = [0u8; TS_LEN];
    // Connection i's message m carries i * messages + m, so every reply is told apart.
    let stamp = |patch: &mut [u8; TS_LEN], i: usize, m: usize| put_hex(patch, (i * exchange.messages + m) as u64);
    let fail = |i: usize, e: String| io::Error::other(format!("connection {i}: {e}"));
    // Per connection: messages sent, replies received.
    let (mut sent, mut got) = (vec![1usize; n], vec![0usize; n]);
    let mut left = n;
    for (i, conn) in conns.iter_mut().enumerate() {
        stamp(&mut patch, i, 0);
        template.append(&mut conn.tx, &patch);
        conn.flush().map_err(|e| fail(i, e))?;
    }
    let deadline = Instant::now() + Duration::from_secs(30) + Duration::from_millis((n * exchange.messages) as u64);
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 << 10];
    let mut received = Vec::new();
    while left > 0 {
        if Instant::now() > deadline {
            return Err(io::Error::new(ErrorKind::TimedOut, format!("{left} of {n} connections still exchanging")));
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let i = event.token().0;
            let conn = &mut conns[i];
            conn.peer_closed |= event.is_read_closed() || event.is_error();
            conn.read(&mut buf, &mut received).map_err(|e| fail(i, e))?;
            for frame in received.drain(..) {
                if got[i] == sent[i] {
                    return Err(fail(i, "a message nobody sent".into()));
                }
                stamp(&mut patch, i, got[i]);
                check_reply(conn, frame, &template, &patch).map_err(|e| fail(i, e))?;
                got[i] += 1;
                if sent[i] < exchange.messages {
                    stamp(&mut patch, i, sent[i]);
                    template.append(&mut conn.tx, &patch);
                    sent[i] += 1;
                } else if got[i] == exchange.messages {
                    left -= 1;
                }
            }
            conn.flush().map_err(|e| fail(i, e))?;
        }
    }
    Ok((poll, conns.into_iter().map(|c| c.stream).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_reassembles_frames_split_anywhere() {
        let mut wire = Vec::new();
        let payloads: Vec<Vec<u8>> =
            [0usize, 5, 20, 125, 126, 300, 70_000].iter().map(|&n| frames::payload(Kind::Binary, n)).collect();
        for (i, p) in payloads.iter().enumerate() {
            let key = (i % 2 == 0).then_some(MASK_KEY);
            frames::encode_frame(&mut wire, true, 0x2, key, p);
        }
        for step in [1, 3, 7, 64, 1 << 20] {
            let mut rx = Rx { frames: 0, ..Rx::default() };
            let mut out = Vec::new();
            for chunk in wire.chunks(step) {
                rx.feed(chunk, &mut out).unwrap();
            }
            assert_eq!(out.len(), payloads.len(), "step {step}");
            for (frame, p) in out.iter().zip(&payloads) {
                assert_eq!(frame.len, p.len());
                let n = p.len().min(20);
                assert_eq!(&frame.prefix[..n], &p[..n]);
            }
            // Frame 0 is sampled (every 64th, starting with the first).
            assert_eq!(out[0].payload.as_deref(), Some(&payloads[0][..]));
        }
    }

    #[test]
    fn hex_round_trip() {
        let mut out = [0u8; 16];
        put_hex(&mut out, 0x0123_4567_89ab_cdef);
        assert_eq!(&out, b"0123456789abcdef");
        assert_eq!(parse_hex(&out), Some(0x0123_4567_89ab_cdef));
        assert_eq!(parse_hex(b"xyz"), None);
    }

    #[test]
    fn template_patches_under_the_mask() {
        let t = Template::new(Kind::Text, 40);
        let mut out = Vec::new();
        t.append(&mut out, b"0000000000000abc");
        let mut rx = Rx::default();
        let mut frames = Vec::new();
        rx.feed(&out, &mut frames).unwrap();
        let payload = frames[0].payload.as_ref().unwrap();
        assert!(t.matches(payload, b"0000000000000abc"));
        assert!(!t.matches(payload, b"0000000000000abd"));
    }

    /// The plain payload `template` stands for with `patch` over its timestamp.
    fn patched(template: &Template, patch: &[u8]) -> Vec<u8> {
        let mut plain = template.plain.clone();
        plain[..patch.len()].copy_from_slice(patch);
        plain
    }

    #[test]
    fn compressed_templates_round_trip_through_rx_and_one_inflater() {
        for (kind, size) in [(Kind::Text, 16), (Kind::Text, 1 << 10), (Kind::Text, 16 << 10), (Kind::Binary, 16 << 10)]
        {
            let t = Template::compressed(kind, size, 0);
            assert_eq!(t.wire[0], 0xC0 | kind.opcode(), "FIN, RSV1 and the opcode");
            if kind == Kind::Text && size > 16 {
                assert!(t.wire.len() < size / 4, "{size} B of text went out as {} B", t.wire.len());
            }
            let patches: [&[u8; TS_LEN]; 3] = [b"0000000000000abc", b"00000000deadbeef", b"0123456789abcdef"];
            let mut wire = Vec::new();
            for patch in patches {
                t.append(&mut wire, patch);
            }
            // Several messages through one parser and one inflater, as a connection sees them.
            let mut rx = Rx::new(true);
            let mut frames = Vec::new();
            for chunk in wire.chunks(1000) {
                rx.feed(chunk, &mut frames).unwrap();
            }
            assert_eq!(frames.len(), 3);
            let mut inflater = Inflater::new();
            for (frame, patch) in frames.iter_mut().zip(patches) {
                assert!(frame.rsv1 && frame.fin && frame.opcode == kind.opcode());
                assert_eq!(frame.wire_len, t.wire.len());
                let plain = inflater.inflate(frame.payload.as_mut().unwrap(), 2 * size).unwrap();
                assert_eq!(plain, patched(&t, patch));
                assert!(t.matches(plain, patch));
            }
        }
        // Binary variants are other bytes; text is the same.
        assert_ne!(Template::compressed(Kind::Binary, 64, 1).plain, Template::compressed(Kind::Binary, 64, 0).plain);
        assert_eq!(Template::compressed(Kind::Binary, 64, 0).plain, frames::payload(Kind::Binary, 64));
        assert_eq!(Template::compressed(Kind::Text, 64, 1).plain, frames::payload(Kind::Text, 64));
        // Without the extension RSV1 is refused.
        let mut wire = Vec::new();
        Template::compressed(Kind::Text, 100, 0).append(&mut wire, b"0000000000000abc");
        assert!(Rx::default().feed(&wire, &mut Vec::new()).is_err());
    }

    #[test]
    fn the_extension_answer_is_checked() {
        let head = |ext: &str| format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n{ext}\r\n");
        assert!(check_extensions(head("").as_bytes(), false).is_ok());
        assert!(check_extensions(head("").as_bytes(), true).is_err());
        let plain = head("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(check_extensions(plain.as_bytes(), true).is_ok());
        assert!(check_extensions(plain.as_bytes(), false).is_err());
        let lean = head(
            "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=9\r\n",
        );
        assert!(check_extensions(lean.as_bytes(), true).is_ok());
        let asks = head("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n");
        assert!(check_extensions(asks.as_bytes(), true).is_err());
        let other = head("Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n");
        assert!(check_extensions(other.as_bytes(), true).is_err());
    }

    /// Our compressed templates against a real `wsproto` server with permessage-deflate on, and
    /// its compressed replies (context takeover: later ones refer back) through our inflater.
    #[test]
    fn compressed_templates_are_what_a_wsproto_server_reads() {
        use std::sync::Arc;
        use wsproto::{Accept, Config, Connection, DeflateConfig, Event};

        let now = Instant::now();
        let config = Config { deflate: Some(DeflateConfig::default()), ..Config::default() };
        let mut server = Connection::server(Arc::new(config), now);
        server.receive(now, &frames::upgrade_request_with("bench", Some(DEFLATE_OFFER)));
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        server.accept(Accept::new()).unwrap();
        assert!(server.compression().is_some());
        let drain = |server: &mut Connection| {
            let mut out = Vec::new();
            while server.queued_bytes() > 0 {
                let front = server.outgoing_front().to_vec();
                server.advance_outgoing(now, front.len());
                out.extend_from_slice(&front);
            }
            out
        };
        let head = drain(&mut server);
        assert!(head.starts_with(b"HTTP/1.1 101") && head.windows(4).any(|w| w == b"\r\n\r\n"));
        check_extensions(&head, true).unwrap();

        let mut rx = Rx::new(true);
        let mut inflater = Inflater::new();
        for (kind, size, variant) in [(Kind::Text, 1 << 10, 0), (Kind::Text, 16 << 10, 0), (Kind::Binary, 16 << 10, 3)]
        {
            let t = Template::compressed(kind, size, variant);
            for patch in [b"0000000000000001", b"00000000000000ff"] {
                let mut wire = Vec::new();
                t.append(&mut wire, patch);
                server.receive(now, &wire);
                let message = match server.poll_event() {
                    Some(Event::Message(message)) => message,
                    other => panic!("expected a message, got {other:?}"),
                };
                assert_eq!(message.as_bytes(), &patched(&t, patch)[..]);
                // The echo, compressed by the server (a reply of 32 bytes or more).
                server.send(message).unwrap();
                let reply = drain(&mut server);
                let mut frames = Vec::new();
                rx.feed(&reply, &mut frames).unwrap();
                let [frame] = &mut frames[..] else { panic!("one frame") };
                assert!(frame.rsv1 && frame.fin);
                assert!(frame.wire_len == reply.len());
                let plain = inflater.inflate(frame.payload.as_mut().unwrap(), 2 * size).unwrap();
                assert!(t.matches(plain, patch));
            }
        }
    }
}
