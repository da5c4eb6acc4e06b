//! The servers the load harness measures, each single-threaded (tungstenite: a thread per
//! connection, its natural model): ours on the mio adapter, the raw-TCP ceilings on mio, and
//! the peers on their usual runtimes.
//!
//! Each binds `addr` (port 0 for any), reports the bound address through `ready`, and serves
//! until killed.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use echo_server::{echo_config, Echo};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use wsproto::{Config, DeflateConfig, Message, PreparedFrame};
use wsproto_adapters::mio::{ConnId, Context, Handler, Server, ServerOptions};

/// Which server to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// Our mio adapter with the echo server's handler and config ([`echo_server`]), the server
    /// people run: its limits, and permessage-deflate accepted with the defaults. Only the load
    /// generator's compressed workloads offer it; the others negotiate nothing.
    OursEcho,
    /// Our tokio adapter with the echo server's config and loop (`echo_server::tokio_echo`), a
    /// task per connection on a current-thread runtime, as the tokio peers run.
    OursTokioEcho,
    /// The same with permessage-deflate configured for memory ([`lean_deflate`]).
    OursEchoLean,
    /// mio, read and write back the same bytes: the echo ceiling.
    RawEcho,
    /// tungstenite, blocking, a thread per connection.
    TungsteniteEcho,
    /// tokio-tungstenite on a current-thread runtime.
    TokioTungsteniteEcho,
    /// fastwebsockets on a current-thread runtime.
    FastwebsocketsEcho,
    /// Our mio adapter: every message is broadcast to every open connection.
    OursBroadcast,
    /// mio, every whole frame received is written to every connection: the fan-out ceiling.
    RawBroadcast,
    /// tokio-tungstenite on a current-thread runtime with a `tokio::sync::broadcast` channel.
    TokioTungsteniteBroadcast,
    /// fastwebsockets (split halves) on a current-thread runtime with a broadcast channel.
    FastwebsocketsBroadcast,
}

impl ServerKind {
    /// Every kind.
    pub const ALL: [ServerKind; 11] = [
        ServerKind::OursEcho,
        ServerKind::OursTokioEcho,
        ServerKind::OursEchoLean,
        ServerKind::RawEcho,
        ServerKind::TungsteniteEcho,
        ServerKind::TokioTungsteniteEcho,
        ServerKind::FastwebsocketsEcho,
        ServerKind::OursBroadcast,
        ServerKind::RawBroadcast,
        ServerKind::TokioTungsteniteBroadcast,
        ServerKind::FastwebsocketsBroadcast,
    ];

    /// The command-line name.
    pub fn id(self) -> &'static str {
        match self {
            ServerKind::OursEcho => "ours-echo",
            ServerKind::OursTokioEcho => "ours-tokio-echo",
            ServerKind::OursEchoLean => "ours-echo-lean",
            ServerKind::RawEcho => "raw-echo",
            ServerKind::TungsteniteEcho => "tungstenite-echo",
            ServerKind::TokioTungsteniteEcho => "tokio-tungstenite-echo",
            ServerKind::FastwebsocketsEcho => "fastwebsockets-echo",
            ServerKind::OursBroadcast => "ours-broadcast",
            ServerKind::RawBroadcast => "raw-broadcast",
            ServerKind::TokioTungsteniteBroadcast => "tokio-tungstenite-broadcast",
            ServerKind::FastwebsocketsBroadcast => "fastwebsockets-broadcast",
        }
    }

    /// The kind for a command-line name.
    pub fn from_id(id: &str) -> Option<ServerKind> {
        ServerKind::ALL.into_iter().find(|k| k.id() == id)
    }

    /// Whether this is a raw-TCP ceiling (no WebSocket: the client's masked frames come back as
    /// they were sent, and the handshake request is echoed instead of answered).
    pub fn is_raw(self) -> bool {
        matches!(self, ServerKind::RawEcho | ServerKind::RawBroadcast)
    }

    /// Runs the server until the process is killed.
    pub fn serve(self, addr: SocketAddr, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
        match self {
            ServerKind::OursEcho => ours(addr, ready, echo_config(), Echo),
            ServerKind::OursEchoLean => {
                ours(addr, ready, Config { deflate: Some(lean_deflate()), ..echo_config() }, Echo)
            }
            ServerKind::OursBroadcast => ours(addr, ready, echo_config(), Broadcast),
            ServerKind::OursTokioEcho => peers::ours_tokio(addr, ready),
            ServerKind::RawEcho => raw_echo(addr, ready),
            ServerKind::RawBroadcast => raw_broadcast(addr, ready),
            ServerKind::TungsteniteEcho => tungstenite_echo(addr, ready),
            ServerKind::TokioTungsteniteEcho => peers::tokio_tungstenite(addr, ready, false),
            ServerKind::TokioTungsteniteBroadcast => peers::tokio_tungstenite(addr, ready, true),
            ServerKind::FastwebsocketsEcho => peers::fastwebsockets(addr, ready, false),
            ServerKind::FastwebsocketsBroadcast => peers::fastwebsockets(addr, ready, true),
        }
    }
}

/// Every message is encoded once and queued on every open connection, the sender included.
pub struct Broadcast;

impl Handler for Broadcast {
    type State = ();
    type Command = ();

    fn on_open(&mut self, _: &mut Context, _: ConnId) {}

    fn on_message(&mut self, ctx: &mut Context, _id: ConnId, message: Message) {
        ctx.broadcast(&PreparedFrame::message(&message));
    }
}

/// permessage-deflate set for memory rather than ratio: no context takeover either way (the
/// server asks the client for it in its answer, RFC 7692 §7.1.1.2) and the smallest window
/// (9 bits) for what the server compresses. Neither direction then keeps a zlib state between
/// messages: each message borrows one from the config's pool and gives it back.
pub fn lean_deflate() -> DeflateConfig {
    DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 9,
        ..DeflateConfig::default()
    }
}

fn ours(addr: SocketAddr, ready: impl FnOnce(SocketAddr), config: Config, handler: impl Handler) -> io::Result<()> {
    let options = ServerOptions { config: Arc::new(config), max_connections: 20_000, ..ServerOptions::default() };
    let server = Server::bind(addr, options)?;
    ready(server.local_addr()?);
    server.run(handler)?;
    Ok(())
}

const LISTENER: Token = Token(usize::MAX);

/// A raw connection: bytes waiting to be written (the ceilings write at once and only buffer
/// what the socket did not take).
struct RawConn {
    stream: TcpStream,
    out: Vec<u8>,
    out_pos: usize,
    writable_interest: bool,
    /// Fan-out only: the handshake request has been echoed; what follows is frames.
    opened: bool,
    /// Fan-out only: the start of a frame not yet whole.
    partial: Vec<u8>,
    /// Fan-out only: queued in this turn's flush list.
    dirty: bool,
    /// A readiness event reported the peer's FIN or an error: read until `WouldBlock`.
    peer_closed: bool,
}

impl RawConn {
    fn new(stream: TcpStream) -> RawConn {
        RawConn {
            stream,
            out: Vec::new(),
            out_pos: 0,
            writable_interest: false,
            opened: false,
            partial: Vec::new(),
            dirty: false,
            peer_closed: false,
        }
    }

    /// Writes queued bytes; `Err` when the connection is dead.
    fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        Ok(())
    }

    fn update_interest(&mut self, poll: &Poll, token: Token) -> io::Result<()> {
        let want = self.out_pos < self.out.len();
        if want != self.writable_interest {
            let interest = if want { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            poll.registry().reregister(&mut self.stream, token, interest)?;
            self.writable_interest = want;
        }
        Ok(())
    }
}

/// Connections by token, reusing freed slots.
#[derive(Default)]
struct RawSlab {
    slots: Vec<Option<RawConn>>,
    free: Vec<usize>,
}

impl RawSlab {
    fn accept_all(&mut self, listener: &TcpListener, poll: &Poll) {
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let index = self.free.pop().unwrap_or_else(|| {
                        self.slots.push(None);
                        self.slots.len() - 1
                    });
                    if poll.registry().register(&mut stream, Token(index), Interest::READABLE).is_ok() {
                        self.slots[index] = Some(RawConn::new(stream));
                    } else {
                        self.free.push(index);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn remove(&mut self, index: usize, poll: &Poll) {
        if let Some(mut conn) = self.slots.get_mut(index).and_then(Option::take) {
            let _ = poll.registry().deregister(&mut conn.stream);
            self.free.push(index);
        }
    }
}

/// The echo ceiling: read whatever arrived and write it straight back, no WebSocket at all.
fn raw_echo(addr: SocketAddr, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    ready(listener.local_addr()?);
    let mut events = Events::with_capacity(1024);
    let mut slab = RawSlab::default();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                slab.accept_all(&listener, &poll);
                continue;
            }
            let index = event.token().0;
            let Some(Some(conn)) = slab.slots.get_mut(index) else { continue };
            conn.peer_closed |= event.is_read_closed() || event.is_error();
            // Read while nothing is left unwritten, until `WouldBlock` (edge-triggered) or a
            // short read, which on Linux proves the socket drained (as in our adapter).
            let mut dead = conn.flush().is_err();
            while !dead && conn.out.is_empty() {
                match conn.stream.read(&mut buf) {
                    Ok(0) => dead = true,
                    Ok(n) => {
                        conn.out.extend_from_slice(&buf[..n]);
                        dead = conn.flush().is_err();
                        if n < buf.len() && !conn.peer_closed {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => dead = true,
                }
            }
            if dead || conn.update_interest(&poll, event.token()).is_err() {
                slab.remove(index, &poll);
            }
        }
    }
}

/// The length of the whole frame at the start of `buf`, if it is all there (a minimal header
/// parse: the fan-out ceiling must not interleave partial frames of different senders).
fn whole_frame_len(buf: &[u8]) -> Option<usize> {
    let [_, b1, rest @ ..] = buf else { return None };
    let masked = if b1 & 0x80 != 0 { 4 } else { 0 };
    let (len, ext) = match b1 & 0x7F {
        126 => (u16::from_be_bytes(*rest.first_chunk::<2>()?) as usize, 2),
        127 => (usize::try_from(u64::from_be_bytes(*rest.first_chunk::<8>()?)).ok()?, 8),
        len => (len as usize, 0),
    };
    let total = 2 + ext + masked + len;
    (buf.len() >= total).then_some(total)
}

/// The fan-out ceiling: echo the handshake request, then copy every whole frame received to
/// every connection (the sender included), written once per loop turn per connection, as our
/// adapter does.
fn raw_broadcast(addr: SocketAddr, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    ready(listener.local_addr()?);
    let mut events = Events::with_capacity(1024);
    let mut slab = RawSlab::default();
    let mut buf = vec![0u8; 64 << 10];
    // Whole frames received this turn, to go to everyone.
    let mut turn: Vec<u8> = Vec::new();
    let mut dirty: Vec<usize> = Vec::new();
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                slab.accept_all(&listener, &poll);
                continue;
            }
            let index = event.token().0;
            let Some(Some(conn)) = slab.slots.get_mut(index) else { continue };
            conn.peer_closed |= event.is_read_closed() || event.is_error();
            let mut dead = false;
            loop {
                match conn.stream.read(&mut buf) {
                    Ok(0) => dead = true,
                    Ok(n) => {
                        conn.partial.extend_from_slice(&buf[..n]);
                        if !conn.opened {
                            if let Some(end) = conn.partial.windows(4).position(|w| w == b"\r\n\r\n") {
                                conn.out.extend(conn.partial.drain(..end + 4));
                                conn.opened = true;
                                if !conn.dirty {
                                    conn.dirty = true;
                                    dirty.push(index);
                                }
                            }
                        }
                        if conn.opened {
                            let mut at = 0;
                            while let Some(len) = whole_frame_len(&conn.partial[at..]) {
                                at += len;
                            }
                            turn.extend_from_slice(&conn.partial[..at]);
                            conn.partial.drain(..at);
                        }
                        if n == buf.len() || conn.peer_closed {
                            continue;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => dead = true,
                }
                break;
            }
            if dead {
                slab.remove(index, &poll);
            }
        }
        if !turn.is_empty() {
            for (index, slot) in slab.slots.iter_mut().enumerate() {
                if let Some(conn) = slot.as_mut().filter(|c| c.opened) {
                    conn.out.extend_from_slice(&turn);
                    if !conn.dirty {
                        conn.dirty = true;
                        dirty.push(index);
                    }
                }
            }
            turn.clear();
        }
        for index in dirty.drain(..) {
            let Some(Some(conn)) = slab.slots.get_mut(index) else { continue };
            conn.dirty = false;
            if conn.flush().is_err() || conn.update_interest(&poll, Token(index)).is_err() {
                slab.remove(index, &poll);
            }
        }
        // Writable events for connections with a backlog: flush them too.
        for event in events.iter() {
            if event.token() != LISTENER && event.is_writable() {
                let index = event.token().0;
                let Some(Some(conn)) = slab.slots.get_mut(index) else { continue };
                if conn.flush().is_err() || conn.update_interest(&poll, event.token()).is_err() {
                    slab.remove(index, &poll);
                }
            }
        }
    }
}

/// tungstenite's blocking model: a thread per connection, each message sent back at once.
fn tungstenite_echo(addr: SocketAddr, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    ready(listener.local_addr()?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        std::thread::spawn(move || {
            let Ok(mut ws) = tungstenite::accept(stream) else { return };
            while let Ok(message) = ws.read() {
                if (message.is_text() || message.is_binary()) && ws.send(message).is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

/// The tokio-based peers, each on a current-thread runtime.
mod peers {
    use std::io;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use futures_util::{future, SinkExt, StreamExt, TryStreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::broadcast;

    fn runtime() -> io::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    }

    fn bind(addr: SocketAddr, ready: impl FnOnce(SocketAddr)) -> io::Result<tokio::net::TcpListener> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        ready(listener.local_addr()?);
        tokio::net::TcpListener::from_std(listener)
    }

    /// Our tokio adapter: the echo server's task per connection.
    pub(super) fn ours_tokio(addr: SocketAddr, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
        runtime()?.block_on(async move {
            let listener = bind(addr, ready)?;
            let config = std::sync::Arc::new(echo_server::echo_config());
            loop {
                let (stream, _) = listener.accept().await?;
                tokio::spawn(echo_server::tokio_echo(stream, config.clone()));
            }
        })
    }

    /// Echo: tokio-tungstenite's own echo example (`read.forward(write)`, which flushes when
    /// the read side has nothing more ready). Broadcast: each connection's task forwards what
    /// it reads to a broadcast channel and writes what the channel delivers.
    pub(super) fn tokio_tungstenite(addr: SocketAddr, ready: impl FnOnce(SocketAddr), fan_out: bool) -> io::Result<()> {
        runtime()?.block_on(async move {
            let listener = bind(addr, ready)?;
            let (tx, _) = broadcast::channel::<tungstenite::Message>(4096);
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
                    if !fan_out {
                        let (write, read) = ws.split();
                        let _ = read.try_filter(|m| future::ready(m.is_text() || m.is_binary())).forward(write).await;
                        return;
                    }
                    let mut rx = tx.subscribe();
                    let (mut write, mut read) = ws.split();
                    loop {
                        tokio::select! {
                            message = read.next() => match message {
                                Some(Ok(m)) if m.is_text() || m.is_binary() => { let _ = tx.send(m); }
                                Some(Ok(_)) => {}
                                _ => return,
                            },
                            received = rx.recv() => match received {
                                Ok(m) => {
                                    if write.feed(m).await.is_err() { return; }
                                    while let Ok(m) = rx.try_recv() {
                                        if write.feed(m).await.is_err() { return; }
                                    }
                                    if write.flush().await.is_err() { return; }
                                }
                                Err(broadcast::error::RecvError::Lagged(_)) => {}
                                Err(broadcast::error::RecvError::Closed) => return,
                            },
                        }
                    }
                });
            }
        })
    }

    /// Reads the upgrade request and writes the 101 by hand on the raw socket, so that
    /// fastwebsockets runs on a plain `TcpStream` (its fastest path; its `upgrade` feature
    /// would put a hyper connection underneath).
    async fn handshake(stream: &mut TcpStream) -> io::Result<()> {
        let mut buf = Vec::with_capacity(1024);
        loop {
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            match request.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => {
                    let key = request
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                        .ok_or(io::ErrorKind::InvalidData)?
                        .value;
                    let response = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                         Sec-WebSocket-Accept: {}\r\n\r\n",
                        wsproto::accept_key(key)
                    );
                    return stream.write_all(response.as_bytes()).await;
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(io::ErrorKind::InvalidData.into()),
            }
        }
    }

    /// Echo: fastwebsockets' own echo example (`FragmentCollector`, `read_frame` then
    /// `write_frame`, in `tokio::task::unconstrained`). Broadcast: split halves, the read half
    /// feeding a broadcast channel, a writer task per connection draining it.
    pub(super) fn fastwebsockets(addr: SocketAddr, ready: impl FnOnce(SocketAddr), fan_out: bool) -> io::Result<()> {
        use fastwebsockets::{FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, Role, WebSocket};
        runtime()?.block_on(async move {
            let listener = bind(addr, ready)?;
            let (tx, _) = broadcast::channel::<(OpCode, Bytes)>(4096);
            loop {
                let (mut stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                let tx = tx.clone();
                tokio::spawn(tokio::task::unconstrained(async move {
                    if handshake(&mut stream).await.is_err() {
                        return;
                    }
                    let ws = WebSocket::after_handshake(stream, Role::Server);
                    if !fan_out {
                        let mut ws = FragmentCollector::new(ws);
                        while let Ok(frame) = ws.read_frame().await {
                            let echo = matches!(frame.opcode, OpCode::Text | OpCode::Binary);
                            if frame.opcode == OpCode::Close || (echo && ws.write_frame(frame).await.is_err()) {
                                return;
                            }
                        }
                        return;
                    }
                    let mut rx = tx.subscribe();
                    let (read, mut write) = ws.split(|s| s.into_split());
                    tokio::spawn(tokio::task::unconstrained(async move {
                        loop {
                            match rx.recv().await {
                                Ok((opcode, data)) => {
                                    let frame = Frame::new(true, opcode, None, Payload::Borrowed(&data));
                                    if write.write_frame(frame).await.is_err() {
                                        return;
                                    }
                                }
                                Err(broadcast::error::RecvError::Lagged(_)) => {}
                                Err(broadcast::error::RecvError::Closed) => return,
                            }
                        }
                    }));
                    let mut read = FragmentCollectorRead::new(read);
                    let mut ignore = |_frame| async { Ok::<(), std::io::Error>(()) };
                    while let Ok(frame) = read.read_frame(&mut ignore).await {
                        match frame.opcode {
                            OpCode::Close => return,
                            OpCode::Text | OpCode::Binary => {
                                let _ = tx.send((frame.opcode, Bytes::copy_from_slice(&frame.payload)));
                            }
                            _ => {}
                        }
                    }
                }));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::whole_frame_len;

    #[test]
    fn whole_frames() {
        assert_eq!(whole_frame_len(&[0x81]), None);
        assert_eq!(whole_frame_len(&[0x81, 0x02, b'h']), None);
        assert_eq!(whole_frame_len(&[0x81, 0x02, b'h', b'i', 0x81]), Some(4));
        assert_eq!(whole_frame_len(&[0x81, 0x81, 1, 2, 3, 4, b'x']), Some(7));
        let mut long = vec![0x82, 126, 0x01, 0x00];
        long.resize(4 + 255, 0);
        assert_eq!(whole_frame_len(&long), None);
        long.push(0);
        assert_eq!(whole_frame_len(&long), Some(260));
    }
}
