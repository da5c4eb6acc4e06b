//! The chat server end to end over loopback, driven by the project's own blocking client.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chat::ChatOptions;
use serde_json::{json, Value};
use wsproto::{CloseCode, Config, Message};
use wsproto_adapters::blocking::{connect, ClientStream, ConnectOptions, Error, Incoming, WebSocket};
use wsproto_adapters::mio::Handle;

struct ChatServer {
    addr: SocketAddr,
    handle: Handle<chat::Command>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        let _ = self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start(options: ChatOptions) -> ChatServer {
    // A test that hangs is a failed test.
    wsproto_testkit::process_watchdog("chat tests", Duration::from_secs(120));
    let options = ChatOptions { addr: ([127, 0, 0, 1], 0).into(), ..options };
    let (server, chat) = chat::bind(&options).expect("bind");
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let thread = std::thread::spawn(move || {
        server.run(chat).expect("chat server");
    });
    ChatServer { addr, handle, thread: Some(thread) }
}

fn start_default() -> ChatServer {
    start(ChatOptions::default())
}

type Ws = WebSocket<ClientStream>;

fn open_with(server: &ChatServer, subprotocols: &[&str], origin: Option<String>) -> Result<Ws, Error> {
    let options = ConnectOptions {
        config: Arc::new(Config::default()),
        subprotocols: subprotocols.iter().map(|s| s.to_string()).collect(),
        origin,
        headers: Vec::new(),
    };
    connect(&format!("ws://{}/ws", server.addr), options).map(|(ws, _)| ws)
}

fn open(server: &ChatServer) -> Ws {
    let ws = open_with(server, &["chat.v1"], Some(format!("http://{}", server.addr))).expect("connect");
    assert_eq!(ws.subprotocol(), Some("chat.v1"));
    ws
}

fn send(ws: &mut Ws, value: Value) {
    ws.send_text(&value.to_string()).expect("send");
}

/// The next JSON message.
fn recv(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("read") {
            Incoming::Message(Message::Text(text)) => return serde_json::from_str(&text).expect("server sends JSON"),
            Incoming::Closed(closed) => panic!("closed while waiting for a message: {closed:?}"),
            _ => {}
        }
    }
}

/// The next message of a type, skipping others (joins and leaves of unrelated clients).
fn recv_type(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let value = recv(ws);
        if value["type"] == kind {
            return value;
        }
    }
}

/// The close code the server ends this connection with.
fn recv_close(ws: &mut Ws) -> CloseCode {
    loop {
        match ws.read().expect("read") {
            Incoming::Closed(closed) => return closed.code,
            _ => continue,
        }
    }
}

fn join(server: &ChatServer, nick: &str) -> Ws {
    let mut ws = open(server);
    send(&mut ws, json!({"type": "join", "nick": nick}));
    let welcome = recv(&mut ws);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["nick"], nick);
    ws
}

#[test]
fn join_welcome_and_nick_rules() {
    let server = start_default();
    let mut alice = join(&server, "alice");
    let mut ws = open(&server);
    send(&mut ws, json!({"type": "say", "text": "too early"}));
    assert_eq!(recv(&mut ws)["code"], "not_joined");
    for (nick, code) in [
        ("ALICE", "nick_taken"),
        ("   ", "invalid_nick"),
        (&"x".repeat(33), "invalid_nick"),
        ("a\u{1}", "invalid_nick"),
    ] {
        send(&mut ws, json!({"type": "join", "nick": nick}));
        let error = recv(&mut ws);
        assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some(code)), "{nick:?}");
    }
    // The same connection may try again.
    send(&mut ws, json!({"type": "join", "nick": "  bob  "}));
    let welcome = recv(&mut ws);
    assert_eq!(welcome["nick"], "bob");
    assert_eq!(welcome["users"], json!(["alice", "bob"]));
    assert_eq!(recv(&mut alice), json!({"type": "joined", "nick": "bob"}));
    send(&mut ws, json!({"type": "join", "nick": "carol"}));
    assert_eq!(recv(&mut ws)["code"], "already_joined");
}

#[test]
fn messages_reach_everyone_in_one_order() {
    let server = start_default();
    let mut alice = join(&server, "alice");
    let mut bob = join(&server, "bob");
    recv_type(&mut alice, "joined");
    for i in 0..5 {
        send(&mut alice, json!({"type": "say", "text": format!("a{i}")}));
        send(&mut bob, json!({"type": "say", "text": format!("b{i}")}));
    }
    let seen_by = |ws: &mut Ws| -> Vec<(u64, String, String)> {
        (0..10)
            .map(|_| {
                let m = recv_type(ws, "message");
                assert!(m["ts"].as_u64().unwrap() > 1_600_000_000_000);
                (m["id"].as_u64().unwrap(), m["from"].as_str().unwrap().into(), m["text"].as_str().unwrap().into())
            })
            .collect()
    };
    let a = seen_by(&mut alice);
    let b = seen_by(&mut bob);
    assert_eq!(a, b, "one server order for everyone, the sender included");
    assert!(a.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    let from_alice: Vec<&str> = a.iter().filter(|m| m.1 == "alice").map(|m| m.2.as_str()).collect();
    assert_eq!(from_alice, ["a0", "a1", "a2", "a3", "a4"]);
}

#[test]
fn whispers_reach_only_their_target_and_the_sender() {
    let server = start_default();
    let mut alice = join(&server, "alice");
    let mut bob = join(&server, "bob");
    let mut carol = join(&server, "carol");
    send(&mut alice, json!({"type": "whisper", "to": "BOB", "text": "psst"}));
    let to_bob = recv_type(&mut bob, "whisper");
    assert_eq!(
        (to_bob["from"].as_str(), to_bob["to"].as_str(), to_bob["text"].as_str()),
        (Some("alice"), Some("bob"), Some("psst"))
    );
    let echo = recv_type(&mut alice, "whisper");
    assert_eq!(echo["to"], "bob");
    // Carol's next message is the public one that follows, not the whisper.
    send(&mut alice, json!({"type": "say", "text": "public"}));
    let next = recv(&mut carol);
    assert_eq!((next["type"].as_str(), next["text"].as_str()), (Some("message"), Some("public")), "{next}");
    send(&mut alice, json!({"type": "whisper", "to": "nobody", "text": "hello?"}));
    assert_eq!(recv_type(&mut alice, "error")["code"], "no_such_user");
}

#[test]
fn user_list() {
    let server = start_default();
    let mut alice = join(&server, "alice");
    let _bob = join(&server, "Bob");
    send(&mut alice, json!({"type": "users"}));
    assert_eq!(recv_type(&mut alice, "users")["users"], json!(["alice", "Bob"]));
}

#[test]
fn strokes_are_relayed_and_replayed_to_late_joiners() {
    let server = start_default();
    let mut alice = join(&server, "alice");
    let mut bob = join(&server, "bob");
    let stroke = json!({"x0": 0.1, "y0": 0.2, "x1": 0.3, "y1": 0.4, "color": "#ff0000", "width": 3.0});
    let mut draw = stroke.clone();
    draw["type"] = json!("draw");
    send(&mut alice, draw);
    let relayed = recv_type(&mut bob, "draw");
    assert_eq!(relayed["from"], "alice");
    assert_eq!(relayed["color"], "#ff0000");
    send(&mut alice, json!({"type": "draw", "x0": 2.0, "y0": 0, "x1": 0, "y1": 0, "color": "#000000", "width": 1}));
    assert_eq!(recv_type(&mut alice, "error")["code"], "bad_message");
    let mut carol = open(&server);
    send(&mut carol, json!({"type": "join", "nick": "carol"}));
    let welcome = recv(&mut carol);
    assert_eq!(welcome["board"].as_array().map(Vec::len), Some(1));
    assert_eq!(welcome["board"][0]["x1"], 0.3);
    send(&mut bob, json!({"type": "clear"}));
    assert_eq!(recv_type(&mut carol, "clear")["from"], "bob");
    let mut dave = open(&server);
    send(&mut dave, json!({"type": "join", "nick": "dave"}));
    assert_eq!(recv(&mut dave)["board"], json!([]));
}

#[test]
fn bad_input_gets_an_error_and_the_connection_stays_up() {
    let server = start_default();
    let mut alice = join(&server, "alice");
    for (input, code) in [
        ("not json", "bad_json"),
        ("[1,2]", "bad_json"),
        (r#"{"type": "dance"}"#, "unknown_type"),
        (r#"{"type": "say"}"#, "bad_message"),
        (&json!({"type": "say", "text": "x".repeat(2001)}).to_string(), "too_long"),
    ] {
        alice.send_text(input).unwrap();
        assert_eq!(recv(&mut alice)["code"], code, "{input:.40}");
    }
    send(&mut alice, json!({"type": "say", "text": "still here"}));
    assert_eq!(recv(&mut alice)["text"], "still here");
}

#[test]
fn binary_oversized_and_flooding_clients_are_closed_with_the_right_codes() {
    let server = start(ChatOptions { max_message: 1000, ..ChatOptions::default() });
    let mut watcher = join(&server, "watcher");

    let mut binary = join(&server, "binary");
    binary.send_binary(b"\x00\x01").unwrap();
    assert_eq!(recv_close(&mut binary), CloseCode::UNSUPPORTED_DATA);

    let mut big = join(&server, "big");
    big.send_text(&"x".repeat(1001)).unwrap();
    assert_eq!(recv_close(&mut big), CloseCode::MESSAGE_TOO_BIG);

    let mut flood = join(&server, "flood");
    for _ in 0..100 {
        if flood.send_text(&json!({"type": "users"}).to_string()).is_err() {
            break;
        }
    }
    let mut saw_error = false;
    let code = loop {
        match flood.read().expect("read") {
            Incoming::Message(Message::Text(t)) => saw_error |= t.contains("rate_limited"),
            Incoming::Closed(closed) => break closed.code,
            _ => {}
        }
    };
    assert!(saw_error, "an error before the close");
    assert_eq!(code, CloseCode::POLICY_VIOLATION);
    // The others see them leave.
    let mut left = Vec::new();
    while left.len() < 3 {
        let m = recv_type(&mut watcher, "left");
        left.push(m["nick"].as_str().unwrap().to_owned());
    }
    left.sort();
    assert_eq!(left, ["big", "binary", "flood"]);
}

#[test]
fn heartbeat_reaps_a_client_that_stops_answering() {
    let server = start(ChatOptions {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(200),
        ..ChatOptions::default()
    });
    let mut alive = join(&server, "alive");
    // This client never reads again, so it never answers a ping.
    let _silent = join(&server, "silent");
    recv_type(&mut alive, "joined");
    // `alive` keeps reading, so its pongs go out; it sees `silent` reaped.
    let left = recv_type(&mut alive, "left");
    assert_eq!(left, json!({"type": "left", "nick": "silent", "reason": "timed out"}));
    send(&mut alive, json!({"type": "users"}));
    assert_eq!(recv_type(&mut alive, "users")["users"], json!(["alive"]));
}

#[test]
fn handshake_policies_answer_403_503_and_400() {
    let server = start(ChatOptions { max_clients: 2, ..ChatOptions::default() });
    let foreign = open_with(&server, &["chat.v1"], Some("http://evil.example".into()));
    assert!(matches!(foreign, Err(Error::Rejected { status: 403 })), "{:?}", foreign.err());
    let no_protocol = open_with(&server, &["chat.v0"], None);
    assert!(matches!(no_protocol, Err(Error::Rejected { status: 400 })), "{:?}", no_protocol.err());
    let _a = join(&server, "a");
    let _b = join(&server, "b");
    let full = open_with(&server, &["chat.v1"], None);
    assert!(matches!(full, Err(Error::Rejected { status: 503 })), "{:?}", full.err());
}

#[test]
fn the_page_is_served_with_a_strict_policy() {
    use std::io::{Read, Write};
    let server = start_default();
    let get = |request: &str| {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let page = get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(page.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(page.contains("Content-Security-Policy: default-src 'none'; script-src 'self';"));
    assert!(page.contains("Cache-Control: no-cache\r\n"));
    assert!(page.contains(r#"<script type="module" src="/app.js"></script>"#));
    assert!(get("GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n").contains("Content-Type: text/javascript"));
    assert!(get("GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n").contains("Content-Type: text/css"));
    assert!(get("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(get("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").starts_with("HTTP/1.1 405 "));
}

#[test]
fn a_single_node_takes_a_join_with_resume_and_ignores_it() {
    let server = start_default();
    let mut ws = open(&server);
    send(&mut ws, json!({"type": "join", "nick": "back", "resume": 41}));
    let welcome = recv(&mut ws);
    assert_eq!((welcome["type"].as_str(), welcome["nick"].as_str()), (Some("welcome"), Some("back")), "{welcome}");
    send(&mut ws, json!({"type": "say", "text": "hi"}));
    assert_eq!(recv(&mut ws)["text"], "hi", "nothing replayed, then live");
}
