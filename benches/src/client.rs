//! The load generator: plain mio and pre-encoded masked frames, no WebSocket library, so that
//! the client costs as little as possible and is the same for every server.
//!
//! Every workload runs a warm-up, then a timed window; only the window is counted. Each
//! message carries its send time (16 hex digits of nanoseconds, valid in text messages too),
//! which gives the round-trip latency when it comes back, and every 64th message per
//! connection is compared byte for byte with what was sent.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::frames::{self, Kind, EXPECTED_ACCEPT, MASK_KEY};
use crate::procfs;

/// Every how many messages per connection the whole payload is checked.
const SAMPLE_EVERY: u64 = 64;

/// At most this many errors are kept per run.
const MAX_ERRORS: usize = 8;

/// Bytes of each payload used for the timestamp.
const TS_LEN: usize = 16;

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

    /// Writes the request, then reads the answer's head (a 101 with the right accept key, or
    /// for the raw ceilings the request itself).
    fn step(&mut self, request: &[u8], raw: bool) -> Step {
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
        if self.head.len() > end + 4 {
            return Step::Failed("handshake: bytes after the head before any request".into());
        }
        Step::Done
    }
}

/// Opens `n` connections through the handshake, at most `parallel` at a time; connection `i`
/// stays registered with `poll` under token `i` (readable and writable, edge-triggered).
pub fn open(poll: &mut Poll, target: &Target, n: usize, parallel: usize) -> io::Result<Vec<TcpStream>> {
    let request = frames::upgrade_request(&target.addr.to_string());
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
            match opening.step(&request, target.raw) {
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
    len: usize,
    prefix: [u8; 20],
    payload: Option<Vec<u8>>,
}

/// An incremental frame parser that keeps only the first 20 payload bytes, plus the whole
/// payload of every [`SAMPLE_EVERY`]th frame.
#[derive(Default)]
struct Rx {
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
                out.push(RxFrame { opcode: self.opcode, fin: self.fin, len: self.len, prefix: self.prefix, payload });
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
        if b0 & 0x70 != 0 {
            return Err(format!("reserved bits set in {b0:#04x}"));
        }
        self.len = len;
        self.pos = 0;
        self.prefix = [0; 20];
        self.in_payload = true;
        self.head_len = 0;
        self.sample = self.frames.is_multiple_of(SAMPLE_EVERY).then(|| Vec::with_capacity(len));
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

/// A pre-encoded masked message whose first payload bytes are patched in place.
struct Template {
    /// The masked frame.
    wire: Vec<u8>,
    /// Where the payload starts in `wire`.
    at: usize,
    /// The unmasked payload.
    plain: Vec<u8>,
    opcode: u8,
}

impl Template {
    fn new(kind: Kind, size: usize) -> Template {
        let plain = frames::payload(kind, size);
        let mut wire = Vec::new();
        frames::encode_frame(&mut wire, true, kind.opcode(), Some(MASK_KEY), &plain);
        let at = wire.len() - size;
        Template { wire, at, plain, opcode: kind.opcode() }
    }

    /// Appends the message with `patch` (unmasked bytes) over the start of its payload.
    fn append(&self, out: &mut Vec<u8>, patch: &[u8]) {
        let start = out.len();
        out.extend_from_slice(&self.wire);
        let payload = &mut out[start + self.at..start + self.at + patch.len()];
        payload.copy_from_slice(patch);
        frames::mask(payload, MASK_KEY, 0);
    }

    fn matches(&self, payload: &[u8], patch: &[u8]) -> bool {
        payload.len() == self.plain.len()
            && payload[..patch.len()] == *patch
            && payload[patch.len()..] == self.plain[patch.len()..]
    }
}

/// A connection carrying messages.
struct Conn {
    stream: TcpStream,
    rx: Rx,
    tx: Vec<u8>,
    tx_pos: usize,
    inflight: VecDeque<u64>,
    dirty: bool,
    dead: bool,
    /// A readiness event reported the server's FIN or an error: read until `WouldBlock`.
    peer_closed: bool,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            rx: Rx::default(),
            tx: Vec::new(),
            tx_pos: 0,
            inflight: VecDeque::new(),
            dirty: false,
            dead: false,
            peer_closed: false,
        }
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
}

/// Echo: each connection keeps `depth` messages in flight and sends a new one as each comes
/// back. Counts messages echoed.
pub fn echo(target: &Target, spec: EchoSpec, phases: Phases) -> io::Result<Measured> {
    assert!(spec.size >= TS_LEN, "echo payloads carry a 16-byte timestamp");
    let mut poll = Poll::new()?;
    let streams = open(&mut poll, target, spec.conns, 128)?;
    let mut conns: Vec<Conn> = streams.into_iter().map(Conn::new).collect();
    let template = Template::new(spec.kind, spec.size);
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
            template.append(&mut conn.tx, &patch);
            conn.inflight.push_back(ts);
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
            let now = Instant::now();
            let now_ns = clock.nanos(now);
            for frame in received.drain(..) {
                let Some(sent) = conn.inflight.pop_front() else {
                    result = Err("a message nobody sent".into());
                    break;
                };
                put_hex(&mut patch, sent);
                let ok = frame.opcode == template.opcode
                    && frame.fin
                    && frame.len == spec.size
                    && frame.prefix[..TS_LEN] == patch
                    && frame.payload.as_ref().is_none_or(|p| template.matches(p, &patch));
                if !ok {
                    result = Err(format!("echo mismatch: opcode {:#x} len {}", frame.opcode, frame.len));
                    break;
                }
                hist.saturating_record(now_ns.saturating_sub(sent));
                count += 1;
                put_hex(&mut patch, now_ns);
                template.append(&mut conn.tx, &patch);
                conn.inflight.push_back(now_ns);
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
    let streams = open(&mut poll, target, clients, 128)?;
    let mut conns: Vec<Conn> = streams.into_iter().map(Conn::new).collect();
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
            match opening.step(&request, target.raw) {
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
    let mut poll = Poll::new()?;
    let streams = open(&mut poll, target, n, 256)?;
    Ok((poll, streams))
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
}
