//! The mio event loop over loopback: our blocking client and tungstenite against it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsproto::{
    Accept, CloseCode, Closed, Config, Message, OutgoingResponse, PreparedFrame, Request, SubprotocolPolicy,
};
use wsproto_adapters::blocking::{connect, ClientStream, ConnectOptions, Error, Incoming, WebSocket};
use wsproto_adapters::mio::{ConnId, Context, Handle, Handler, Server, ServerOptions};

fn watchdog() {
    wsproto_testkit::process_watchdog("mio server tests", Duration::from_secs(120));
}

/// What the test handler saw, shared with the test thread.
#[derive(Default)]
struct Seen {
    opened: Vec<ConnId>,
    closed: Vec<(ConnId, Closed)>,
}

/// Echoes, except that `"all:TEXT"` is broadcast to everyone but the sender, and `"who"` answers
/// the connection's subprotocol.
struct TestHandler {
    seen: Arc<Mutex<Seen>>,
}

impl Handler for TestHandler {
    type State = ();
    type Command = ();

    fn on_request(&mut self, _ctx: &mut Context, _id: ConnId, request: &Request) -> Result<Accept, OutgoingResponse> {
        if request.path() == "/private" {
            return Err(OutgoingResponse::new(401).text("no\n"));
        }
        Ok(Accept::new())
    }

    fn on_http(&mut self, _ctx: &mut Context, _id: ConnId, request: &Request) -> OutgoingResponse {
        match request.path() {
            "/health" => OutgoingResponse::new(200).text("ok\n"),
            _ => OutgoingResponse::new(404).text("not found\n"),
        }
    }

    fn on_open(&mut self, _ctx: &mut Context, id: ConnId) {
        self.seen.lock().unwrap().opened.push(id);
    }

    fn on_message(&mut self, ctx: &mut Context, id: ConnId, message: Message) {
        match &message {
            Message::Text(text) if text.starts_with("all:") => {
                ctx.broadcast_except(id, &PreparedFrame::text(&text[4..]));
            }
            Message::Text(text) if text == "who" => {
                let protocol = ctx.subprotocol(id).unwrap_or("none").to_owned();
                let _ = ctx.send_text(id, &protocol);
            }
            _ => {
                let _ = ctx.send(id, message);
            }
        }
    }

    fn on_close(&mut self, _ctx: &mut Context, id: ConnId, _state: (), closed: &Closed) {
        self.seen.lock().unwrap().closed.push((id, closed.clone()));
    }
}

struct Running {
    addr: SocketAddr,
    handle: Handle,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn stop(&mut self) -> Duration {
        let started = Instant::now();
        let _ = self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
        started.elapsed()
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn start(options: ServerOptions) -> Running {
    watchdog();
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), options).expect("bind");
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let handler = TestHandler { seen: seen.clone() };
    let thread = std::thread::spawn(move || {
        server.run(handler).expect("server loop");
    });
    Running { addr, handle, seen, thread: Some(thread) }
}

fn client(url: &str) -> WebSocket<ClientStream> {
    connect(url, ConnectOptions::default()).expect("connect").0
}

fn next_message(ws: &mut WebSocket<ClientStream>) -> Message {
    loop {
        match ws.read().expect("read") {
            Incoming::Message(message) => return message,
            Incoming::Closed(closed) => panic!("closed: {closed:?}"),
            _ => {}
        }
    }
}

fn read_until_closed(ws: &mut WebSocket<ClientStream>) -> Closed {
    loop {
        if let Incoming::Closed(closed) = ws.read().expect("read") {
            return *closed;
        }
    }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn echo_of_every_size_and_a_clean_close() {
    let server = start(ServerOptions::default());
    let mut ws = client(&server.url("/"));
    for size in [0, 1, 125, 126, 65535, 65536, 1 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ws.send_binary(&payload).unwrap();
        assert_eq!(next_message(&mut ws), Message::binary(payload));
    }
    ws.send_text("κόσμε").unwrap();
    assert_eq!(next_message(&mut ws), Message::Text("κόσμε".into()));
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    let Incoming::Closed(closed) = ws.read().unwrap() else { panic!("expected Closed") };
    assert!(closed.clean);
    wait_until("on_close", || server.seen.lock().unwrap().closed.len() == 1);
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.closed[0].1.code, CloseCode::NORMAL);
    assert_eq!(seen.closed[0].1.reason, "bye");
}

#[test]
fn broadcast_reaches_everyone_but_the_sender() {
    let server = start(ServerOptions::default());
    let mut clients: Vec<_> = (0..4).map(|_| client(&server.url("/"))).collect();
    wait_until("four opens", || server.seen.lock().unwrap().opened.len() == 4);
    clients[0].send_text("all:hello").unwrap();
    for ws in &mut clients[1..] {
        assert_eq!(next_message(ws), Message::Text("hello".into()));
    }
    // The sender got nothing: its next message is the echo of what it sends now.
    clients[0].send_text("mine").unwrap();
    assert_eq!(next_message(&mut clients[0]), Message::Text("mine".into()));
}

#[test]
fn other_threads_send_through_the_handle() {
    let server = start(ServerOptions::default());
    let mut a = client(&server.url("/"));
    let mut b = client(&server.url("/"));
    wait_until("two opens", || server.seen.lock().unwrap().opened.len() == 2);
    let first = server.seen.lock().unwrap().opened[0];
    let handle = server.handle.clone();
    std::thread::spawn(move || {
        handle.send(first, Message::Text("direct".into())).unwrap();
        handle.broadcast(PreparedFrame::binary(b"to all")).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(next_message(&mut a), Message::Text("direct".into()));
    assert_eq!(next_message(&mut a), Message::binary(b"to all".to_vec()));
    assert_eq!(next_message(&mut b), Message::binary(b"to all".to_vec()));
}

#[test]
fn subprotocols_origins_rejections_and_plain_http() {
    let config = Config {
        subprotocols: SubprotocolPolicy { supported: vec!["v2".into(), "v1".into()], required: true },
        origins: wsproto::OriginPolicy::AllowList { origins: vec!["http://good.example".into()], allow_missing: true },
        ..Config::default()
    };
    let server = start(ServerOptions { config: Arc::new(config), ..ServerOptions::default() });
    let options = |protocols: &[&str], origin: Option<&str>| ConnectOptions {
        subprotocols: protocols.iter().map(|p| p.to_string()).collect(),
        origin: origin.map(str::to_owned),
        ..ConnectOptions::default()
    };
    let (mut ws, response) = connect(&server.url("/"), options(&["v1", "v2"], Some("http://good.example"))).unwrap();
    assert_eq!(response.subprotocol(), Some("v2"));
    ws.send_text("who").unwrap();
    assert_eq!(next_message(&mut ws), Message::Text("v2".into()));
    let rejected = |result: Result<_, Error>| match result {
        Err(Error::Rejected { status }) => status,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("unexpectedly accepted"),
    };
    assert_eq!(rejected(connect(&server.url("/"), options(&["v1"], Some("http://evil.example")))), 403);
    assert_eq!(rejected(connect(&server.url("/"), options(&["v3"], None))), 400);
    assert_eq!(rejected(connect(&server.url("/private"), options(&["v1"], None))), 401);
    let http = |path: &str| {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    assert!(http("/health").starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(http("/health").ends_with("\r\n\r\nok\n"));
    assert!(http("/nope").starts_with("HTTP/1.1 404 "));
}

#[test]
fn connections_past_the_limit_get_503() {
    let server = start(ServerOptions { max_connections: 2, ..ServerOptions::default() });
    let _a = client(&server.url("/"));
    let _b = client(&server.url("/"));
    match connect(&server.url("/"), ConnectOptions::default()) {
        Err(Error::Rejected { status }) => assert_eq!(status, 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_slow_reader_is_closed_by_policy_while_others_carry_on() {
    let config = Config { max_queued_bytes: 256 << 10, close_timeout: Duration::from_secs(30), ..Config::default() };
    let server = start(ServerOptions {
        config: Arc::new(config),
        slow_consumer_code: CloseCode::TRY_AGAIN_LATER,
        ..ServerOptions::default()
    });
    let mut fast = client(&server.url("/"));
    let mut slow = client(&server.url("/"));
    wait_until("two opens", || server.seen.lock().unwrap().opened.len() == 2);
    let frame = PreparedFrame::binary(&vec![7u8; 64 << 10]);
    // Far more than the socket buffers and the queue limit hold for a client that never reads,
    // at the pace of the client that does.
    for round in 0..400 {
        server.handle.broadcast(frame.clone()).unwrap();
        match fast.read().expect("fast client reads") {
            Incoming::Message(Message::Binary(data)) => assert_eq!(data.len(), 64 << 10, "round {round}"),
            other => panic!("round {round}: {other:?}"),
        }
    }
    // The slow client, reading at last, finds what was queued before the policy struck, then
    // the close frame.
    let code = loop {
        match slow.read().expect("slow client reads") {
            Incoming::Closed(closed) => break closed.code,
            _ => continue,
        }
    };
    assert_eq!(code, CloseCode::TRY_AGAIN_LATER);
    // The handler tells this close of ours from a peer's close or a timeout.
    wait_until("the slow client's close", || !server.seen.lock().unwrap().closed.is_empty());
    let cause = server.seen.lock().unwrap().closed[0].1.cause.clone();
    assert_eq!(cause, wsproto::CloseCause::Local(wsproto::LocalCause::SlowConsumer));
    fast.send_text("still served").unwrap();
    assert_eq!(next_message(&mut fast), Message::Text("still served".into()));
}

#[test]
fn keep_alive_reaps_a_client_that_stops_answering() {
    let config = Config {
        keep_alive: Some(wsproto::KeepAlive {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(100),
        }),
        ..Config::default()
    };
    let server = start(ServerOptions { config: Arc::new(config), ..ServerOptions::default() });
    let _silent = client(&server.url("/"));
    let mut alive = client(&server.url("/"));
    let started = Instant::now();
    // The live client talks (and reads, so it answers pings) until the silent one is reaped.
    while server.seen.lock().unwrap().closed.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "the silent client was never reaped");
        alive.send_text("tick").unwrap();
        assert_eq!(next_message(&mut alive), Message::Text("tick".into()));
        std::thread::sleep(Duration::from_millis(10));
    }
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen.closed.len(), 1, "only the silent client");
    assert_eq!(seen.closed[0].0, seen.opened[0]);
    assert_eq!(seen.closed[0].1.cause, wsproto::CloseCause::KeepAliveTimeout);
    assert_eq!(seen.closed[0].1.code, CloseCode::INTERNAL_ERROR);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn graceful_shutdown_sends_1001_to_everyone_and_returns() {
    let mut server = start(ServerOptions::default());
    let mut clients: Vec<_> = (0..3).map(|_| client(&server.url("/"))).collect();
    wait_until("three opens", || server.seen.lock().unwrap().opened.len() == 3);
    let readers: Vec<_> = clients
        .drain(..)
        .map(|mut ws| {
            std::thread::spawn(move || loop {
                match ws.read() {
                    Ok(Incoming::Closed(closed)) => return closed.code,
                    Ok(_) => continue,
                    Err(e) => panic!("read failed: {e}"),
                }
            })
        })
        .collect();
    let took = server.stop();
    for reader in readers {
        assert_eq!(reader.join().unwrap(), CloseCode::GOING_AWAY);
    }
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert_eq!(server.seen.lock().unwrap().closed.len(), 3);
    for (_, closed) in &server.seen.lock().unwrap().closed {
        assert_eq!(closed.cause, wsproto::CloseCause::Local(wsproto::LocalCause::Shutdown));
    }
    assert!(
        TcpStream::connect(server.addr).is_err() || {
            // The port may be reused by then; what matters is that nothing answers a handshake.
            connect(&server.url("/"), ConnectOptions::default()).is_err()
        }
    );
}

#[test]
fn tungstenite_client_interoperates() {
    let server = start(ServerOptions::default());
    let (mut ws, response) = tungstenite::connect(server.url("/")).expect("tungstenite connects");
    assert_eq!(response.status(), 101);
    ws.send(tungstenite::Message::text("from tungstenite")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("from tungstenite"));
    let big = vec![42u8; 300_000];
    ws.send(tungstenite::Message::binary(big.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::binary(big));
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("tungstenite saw {e}"),
        }
    }
}

/// Per-connection state kept by the loop: a name, a message count, a streamed message being
/// assembled.
struct Member {
    name: String,
    count: u32,
    assembling: Vec<u8>,
    chunks: u32,
}

/// Commands other threads send to [`Room`].
enum RoomCommand {
    Rename(ConnId, String),
    /// Tells every member its name and count.
    Roll,
}

/// A handler with typed state and commands, in streaming or message mode: `"count"` answers
/// how many messages the connection sent, `"names"` the sorted names of everyone; a streamed
/// message is answered with its size in bytes and chunks once it is whole.
struct Room {
    closed: Arc<Mutex<Vec<(String, u32)>>>,
    opened: Arc<Mutex<Vec<ConnId>>>,
}

impl Handler for Room {
    type State = Member;
    type Command = RoomCommand;

    fn on_open(&mut self, ctx: &mut Context<Member>, id: ConnId) -> Member {
        self.opened.lock().unwrap().push(id);
        let name = ctx.request(id).map_or("?", |r| r.path()).trim_start_matches('/').to_owned();
        Member { name, count: 0, assembling: Vec::new(), chunks: 0 }
    }

    fn on_message(&mut self, ctx: &mut Context<Member>, id: ConnId, message: Message) {
        let Some(member) = ctx.state_mut(id) else { return };
        member.count += 1;
        let count = member.count;
        match message {
            Message::Text(text) if text == "count" => {
                let _ = ctx.send_text(id, &count.to_string());
            }
            Message::Text(text) if text.starts_with("to:") => {
                // "to:NAME:TEXT" reaches the members called NAME.
                let (name, text) = text[3..].split_once(':').unwrap_or(("", ""));
                let sent = ctx.broadcast_to(&PreparedFrame::text(text), |_, m| m.name == name);
                let _ = ctx.send_text(id, &format!("sent {sent}"));
            }
            Message::Text(text) if text == "names" => {
                let mut names: Vec<_> = ctx.states().map(|(_, m)| m.name.clone()).collect();
                names.sort();
                let _ = ctx.send_text(id, &names.join(","));
            }
            Message::Text(_) => {}
            Message::Binary(data) => {
                let _ = ctx.send_binary(id, &data);
            }
        }
    }

    fn on_chunk(
        &mut self,
        ctx: &mut Context<Member>,
        id: ConnId,
        kind: wsproto::MessageKind,
        data: wsproto::bytes::Bytes,
        first: bool,
        last: bool,
    ) {
        let Some(member) = ctx.state_mut(id) else { return };
        if first {
            member.assembling.clear();
            member.chunks = 0;
        }
        member.assembling.extend_from_slice(&data);
        member.chunks += 1;
        if last {
            let answer = format!("{kind:?} {} {}", member.assembling.len(), member.chunks);
            let whole = std::mem::take(&mut member.assembling);
            let _ = ctx.send_text(id, &answer);
            let _ = ctx.send_binary(id, &whole);
        }
    }

    fn on_command(&mut self, ctx: &mut Context<Member>, command: RoomCommand) {
        match command {
            RoomCommand::Rename(id, name) => {
                if let Some(member) = ctx.state_mut(id) {
                    member.name = name;
                }
            }
            RoomCommand::Roll => {
                let roll: Vec<_> = ctx.states().map(|(id, m)| (id, format!("{}={}", m.name, m.count))).collect();
                for (id, line) in roll {
                    let _ = ctx.send_text(id, &line);
                }
            }
        }
    }

    fn on_close(&mut self, _ctx: &mut Context<Member>, _id: ConnId, member: Member, _closed: &Closed) {
        self.closed.lock().unwrap().push((member.name, member.count));
    }
}

/// A running [`Room`] server and what its handler shares with the test.
struct RunningRoom {
    addr: SocketAddr,
    handle: Handle<RoomCommand>,
    /// The (name, message count) states handed to `on_close`.
    closed: Arc<Mutex<Vec<(String, u32)>>>,
    opened: Arc<Mutex<Vec<ConnId>>>,
    thread: JoinHandle<Room>,
}

fn start_room(config: Config) -> RunningRoom {
    watchdog();
    let options = ServerOptions { config: Arc::new(config), ..ServerOptions::default() };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), options).expect("bind");
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let closed = Arc::new(Mutex::new(Vec::new()));
    let opened = Arc::new(Mutex::new(Vec::new()));
    let room = Room { closed: closed.clone(), opened: opened.clone() };
    let thread = std::thread::spawn(move || server.run(room).expect("server loop"));
    RunningRoom { addr, handle, closed, opened, thread }
}

#[test]
fn per_connection_state_lives_in_the_loop_and_comes_back_at_close() {
    let RunningRoom { addr, handle, closed, thread, .. } = start_room(Config::default());
    let mut alice = client(&format!("ws://{addr}/alice"));
    let mut bob = client(&format!("ws://{addr}/bob"));
    alice.send_text("hi").unwrap();
    alice.send_text("count").unwrap();
    assert_eq!(next_message(&mut alice), Message::Text("2".into()));
    bob.send_text("names").unwrap();
    assert_eq!(next_message(&mut bob), Message::Text("alice,bob".into()));
    bob.send_text("to:alice:psst").unwrap();
    assert_eq!(next_message(&mut bob), Message::Text("sent 1".into()));
    assert_eq!(next_message(&mut alice), Message::Text("psst".into()));
    bob.send_binary(b"\x00\x01").unwrap();
    assert_eq!(next_message(&mut bob), Message::binary(vec![0, 1]));
    bob.close(CloseCode::NORMAL, "").unwrap();
    assert!(matches!(bob.read().unwrap(), Incoming::Closed(_)));
    wait_until("bob's close", || closed.lock().unwrap().len() == 1);
    assert_eq!(closed.lock().unwrap()[0], ("bob".to_owned(), 3));
    handle.shutdown().unwrap();
    assert!(matches!(read_until_closed(&mut alice).code, CloseCode::GOING_AWAY));
    thread.join().unwrap();
    assert_eq!(closed.lock().unwrap()[1], ("alice".to_owned(), 2));
}

#[test]
fn application_commands_from_other_threads_change_state_on_the_loop() {
    let RunningRoom { addr, handle, opened, thread, .. } = start_room(Config::default());
    let mut alice = client(&format!("ws://{addr}/alice"));
    alice.send_text("names").unwrap();
    assert_eq!(next_message(&mut alice), Message::Text("alice".into()));
    let id = opened.lock().unwrap()[0];
    let remote = handle.clone();
    std::thread::spawn(move || {
        remote.command(RoomCommand::Rename(id, "carol".into())).unwrap();
        remote.command(RoomCommand::Roll).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(next_message(&mut alice), Message::Text("carol=1".into()));
    // Application commands and the built-in ones run in the order they were submitted.
    handle.send(id, Message::Text("first".into())).unwrap();
    handle.command(RoomCommand::Roll).unwrap();
    assert_eq!(next_message(&mut alice), Message::Text("first".into()));
    assert_eq!(next_message(&mut alice), Message::Text("carol=1".into()));
    handle.shutdown().unwrap();
    read_until_closed(&mut alice);
    thread.join().unwrap();
}

#[test]
fn streamed_messages_reach_on_chunk_whole() {
    let config = Config { receive_mode: wsproto::ReceiveMode::Streaming, ..Config::default() };
    let RunningRoom { addr, handle, thread, .. } = start_room(config);
    let mut ws = client(&format!("ws://{addr}/s"));
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    ws.send_binary(&payload).unwrap();
    let Message::Text(summary) = next_message(&mut ws) else { panic!("expected the summary") };
    let mut parts = summary.split(' ');
    assert_eq!(parts.next(), Some("Binary"));
    assert_eq!(parts.next(), Some("300000"));
    assert!(parts.next().unwrap().parse::<u32>().unwrap() >= 1);
    assert_eq!(next_message(&mut ws), Message::binary(payload));
    // Fragments of a text message arrive as chunks of one message too.
    ws.send_fragment(wsproto::MessageKind::Text, b"hel", false).unwrap();
    ws.send_fragment(wsproto::MessageKind::Text, b"lo", true).unwrap();
    let Message::Text(summary) = next_message(&mut ws) else { panic!("expected the summary") };
    assert!(summary.starts_with("Text 5 "), "{summary}");
    assert_eq!(next_message(&mut ws), Message::binary(b"hello".to_vec()));
    handle.shutdown().unwrap();
    read_until_closed(&mut ws);
    thread.join().unwrap();
}

#[test]
fn a_handler_without_on_chunk_closes_a_streamed_message_with_1011() {
    let config = Config { receive_mode: wsproto::ReceiveMode::Streaming, ..Config::default() };
    let server = start(ServerOptions { config: Arc::new(config), ..ServerOptions::default() });
    let mut ws = client(&server.url("/"));
    ws.send_text("dropped?").unwrap();
    let closed = loop {
        match ws.read().expect("read") {
            Incoming::Closed(closed) => break closed,
            Incoming::Message(message) => panic!("a streamed message came back whole: {message:?}"),
            _ => {}
        }
    };
    assert_eq!(closed.code, CloseCode::INTERNAL_ERROR);
    wait_until("on_close", || server.seen.lock().unwrap().closed.len() == 1);
}
