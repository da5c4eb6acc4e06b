//! The mio event loop over TLS (feature `tls`): certificates made for each run (the testkit's
//! test CA and a leaf for localhost / 127.0.0.1), clients from rustls with tungstenite
//! and tokio-tungstenite on top, and raw sockets for the bad input.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use wsproto::{CloseCode, Closed, Config, Message, OutgoingResponse, PreparedFrame, Request};
use wsproto_adapters::mio::{ConnId, Context, Handle, Handler, Server, ServerOptions};
use wsproto_adapters::tls::ServerTls;
use wsproto_testkit::tls::TestPki;

fn watchdog() {
    wsproto_testkit::process_watchdog("mio TLS tests", Duration::from_secs(120));
}

#[derive(Default)]
struct Seen {
    opened: Vec<ConnId>,
    closed: Vec<(ConnId, Closed)>,
}

/// Echoes; `"burst"` answers 100 small messages at once.
struct TestHandler {
    seen: Arc<Mutex<Seen>>,
}

impl Handler for TestHandler {
    type State = ();
    type Command = ();

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
            Message::Text(text) if text == "burst" => {
                for i in 0..100 {
                    let _ = ctx.send_text(id, &format!("small message {i:06}"));
                }
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
    client: Arc<ClientConfig>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }
}

impl Running {
    fn closed(&self) -> Vec<Closed> {
        self.seen.lock().unwrap().closed.iter().map(|(_, c)| c.clone()).collect()
    }
}

fn start(config: Config) -> Running {
    watchdog();
    let pki = TestPki::localhost();
    // From files, as the chat's flags give them.
    let dir = std::env::temp_dir().join(format!("wsproto-tls-{}-{}", std::process::id(), next_id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
    let tls = ServerTls::from_pem_files(dir.join("cert.pem"), dir.join("key.pem")).expect("PEM files");
    std::fs::remove_dir_all(&dir).unwrap();
    let options = ServerOptions { config: Arc::new(config), ..ServerOptions::default() };
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), options).expect("bind").with_tls(tls);
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let handler = TestHandler { seen: seen.clone() };
    let thread = std::thread::spawn(move || {
        server.run(handler).expect("server loop");
    });
    Running { addr, handle, seen, client: pki.client_config(), thread: Some(thread) }
}

fn next_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A TCP stream that counts the TLS application-data records it reads (content type 23; in
/// TLS 1.3 every encrypted record), by following the record headers as the bytes go by.
struct Counting {
    inner: TcpStream,
    records: Arc<AtomicUsize>,
    /// Bytes of the current record header seen, and the header so far.
    header: Vec<u8>,
    /// Bytes of the current record's body still to come.
    body_left: usize,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if self.body_left > 0 {
                let take = self.body_left.min(rest.len());
                self.body_left -= take;
                rest = &rest[take..];
                continue;
            }
            let take = (5 - self.header.len()).min(rest.len());
            self.header.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.header.len() == 5 {
                if self.header[0] == 23 {
                    self.records.fetch_add(1, Ordering::Relaxed);
                }
                self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
                self.header.clear();
            }
        }
        Ok(n)
    }
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type TlsStream = StreamOwned<ClientConnection, Counting>;
type Ws = tungstenite::WebSocket<TlsStream>;

/// A TLS session to the server, its handshake done, and the counter of records it reads.
fn tls_stream(server: &Running) -> (TlsStream, Arc<AtomicUsize>) {
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let records = Arc::new(AtomicUsize::new(0));
    let counting = Counting { inner: tcp, records: records.clone(), header: Vec::new(), body_left: 0 };
    let conn = ClientConnection::new(server.client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut stream = StreamOwned::new(conn, counting);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).expect("TLS handshake");
    }
    (stream, records)
}

fn wss(server: &Running) -> (Ws, Arc<AtomicUsize>) {
    let (stream, records) = tls_stream(server);
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let url = format!("wss://localhost:{}/", server.addr.port());
    let (ws, response) = tungstenite::client(url, stream).expect("WebSocket handshake over TLS");
    assert_eq!(response.status(), 101);
    (ws, records)
}

fn next_text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("read") {
            tungstenite::Message::Text(text) => return text.to_string(),
            tungstenite::Message::Binary(_) => panic!("binary"),
            _ => {}
        }
    }
}

fn echo_works(ws: &mut Ws, text: &str) {
    ws.send(tungstenite::Message::text(text)).unwrap();
    assert_eq!(next_text(ws), text);
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads until the server ends the stream (EOF or reset), answering how long that took.
fn time_until_closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => continue,
        }
    }
}

#[test]
fn echo_over_tls_and_a_clean_close_with_close_notify() {
    let server = start(Config::default());
    let (mut ws, _) = wss(&server);
    for size in [0usize, 1, 125, 126, 65535, 65536, 1 << 20] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        ws.send(tungstenite::Message::binary(payload.clone())).unwrap();
        loop {
            match ws.read().unwrap() {
                tungstenite::Message::Binary(data) => {
                    assert_eq!(&data[..], &payload[..], "size {size}");
                    break;
                }
                other => assert!(other.is_ping() || other.is_pong(), "{other:?}"),
            }
        }
    }
    echo_works(&mut ws, "κόσμε");
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("closing: {e}"),
        }
    }
    // The server ended TLS with close_notify: rustls reports a clean end (0), not a truncation.
    let stream = ws.get_mut();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).expect("close_notify before the FIN"), 0);
    wait_until("on_close", || server.closed().len() == 1);
    assert!(server.closed()[0].clean);
}

#[test]
fn a_hundred_queued_frames_leave_in_one_or_two_records() {
    let server = start(Config::default());
    let (mut ws, records) = wss(&server);
    echo_works(&mut ws, "warm up");
    let before = records.load(Ordering::Relaxed);
    ws.send(tungstenite::Message::text("burst")).unwrap();
    for i in 0..100 {
        assert_eq!(next_text(&mut ws), format!("small message {i:06}"));
    }
    let used = records.load(Ordering::Relaxed) - before;
    eprintln!("100 queued frames of 20 B: {used} TLS records");
    assert!((1..=2).contains(&used), "{used} records for 100 frames flushed at once");
}

#[test]
fn tokio_tungstenite_with_rustls_is_a_client() {
    let server = start(Config::default());
    let connector = tokio_tungstenite::Connector::Rustls(server.client.clone());
    let url = format!("wss://localhost:{}/", server.addr.port());
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        use futures_util::{SinkExt, StreamExt};
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut ws, response) =
            tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector)).await.expect("wss");
        assert_eq!(response.status(), 101);
        for i in 0..50 {
            let text = format!("message {i} {}", "x".repeat(i * 100));
            ws.send(tokio_tungstenite::tungstenite::Message::text(text.clone())).await.unwrap();
            let echoed = ws.next().await.unwrap().unwrap();
            assert_eq!(echoed.into_text().unwrap().as_str(), text);
        }
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    });
    wait_until("on_close", || server.closed().len() == 1);
    assert!(server.closed()[0].clean);
}

/// A client that sends far more than the server may queue (12 MB of echoes against a 256 KiB
/// queue), reading them only after a while and then on another task than the one sending:
/// the server pauses reading, resumes as the echoes drain, and pauses again, with a read's
/// worth of records taken each time; every message comes back once, in order.
#[test]
fn an_echo_flood_over_tls_pauses_and_resumes_without_loss() {
    const MESSAGES: usize = 600;
    let server = start(Config { max_queued_bytes: 256 << 10, ..Config::default() });
    let connector = tokio_tungstenite::Connector::Rustls(server.client.clone());
    let url = format!("wss://localhost:{}/", server.addr.port());
    let addr = server.addr;
    let message = |i: usize| format!("{i:06} {}", "y".repeat(1 + i * 97 % (40 << 10)));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message as TMessage;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (ws, _) =
            tokio_tungstenite::client_async_tls_with_config(url, tcp, None, Some(connector)).await.expect("wss");
        let (mut sink, mut stream) = ws.split();
        let sender = tokio::spawn(async move {
            for i in 0..MESSAGES {
                sink.feed(TMessage::text(message(i))).await.unwrap();
            }
            sink.flush().await.unwrap();
            sink
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..MESSAGES {
            let echoed = stream.next().await.expect("an echo").expect("read").into_text().unwrap();
            let expected = message(i);
            assert!(
                echoed.as_str() == expected,
                "echo {i}: {} bytes, {:?}…",
                echoed.len(),
                &echoed[..echoed.len().min(20)]
            );
        }
        let sink = sender.await.unwrap();
        let mut ws = sink.reunite(stream).unwrap();
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    });
    wait_until("on_close", || server.closed().len() == 1);
    assert!(server.closed()[0].clean);
}

#[test]
fn an_end_without_close_notify_or_close_handshake_is_abnormal() {
    let server = start(Config::default());
    // The TCP stream ends with no close_notify (a truncation).
    let (mut truncated, _) = wss(&server);
    echo_works(&mut truncated, "one");
    truncated.get_mut().sock.inner.shutdown(Shutdown::Both).unwrap();
    wait_until("first close", || server.closed().len() == 1);
    // close_notify, but no WebSocket close handshake.
    let (mut notified, _) = wss(&server);
    echo_works(&mut notified, "two");
    notified.get_mut().conn.send_close_notify();
    let stream = notified.get_mut();
    while stream.conn.wants_write() {
        stream.conn.write_tls(&mut stream.sock).unwrap();
    }
    wait_until("second close", || server.closed().len() == 2);
    for closed in server.closed() {
        assert!(!closed.clean, "{closed:?}");
        assert_eq!(closed.code, CloseCode::ABNORMAL);
    }
}

#[test]
fn bad_input_over_tls_ends_only_its_own_connection() {
    let config = Config { handshake_timeout: Some(Duration::from_secs(2)), ..Config::default() };
    let server = start(config);
    let (mut healthy, _) = wss(&server);
    echo_works(&mut healthy, "before");

    // Garbage instead of a ClientHello.
    let mut garbage = TcpStream::connect(server.addr).unwrap();
    garbage.write_all(&[0xAB; 1024]).unwrap();
    assert!(time_until_closed(&mut garbage) < Duration::from_secs(1));
    echo_works(&mut healthy, "after garbage");

    // A plain HTTP request on the TLS port.
    let mut http = TcpStream::connect(server.addr).unwrap();
    http.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    assert!(time_until_closed(&mut http) < Duration::from_secs(1));
    echo_works(&mut healthy, "after plain HTTP");

    // A ClientHello a byte a second: closed at the handshake deadline, while others are served.
    let mut hello = Vec::new();
    let mut conn = ClientConnection::new(server.client.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
    conn.write_tls(&mut hello).unwrap();
    let mut slow = TcpStream::connect(server.addr).unwrap();
    let mut slow_reader = slow.try_clone().unwrap();
    let dripping = std::thread::spawn(move || {
        for byte in hello {
            if slow.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let started = Instant::now();
    for i in 0..5 {
        echo_works(&mut healthy, &format!("while dripping {i}"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let waited = started.elapsed() + time_until_closed(&mut slow_reader);
    assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5), "closed after {waited:?}");
    drop(dripping);

    // A peer that vanishes in the middle of a record, after the WebSocket opened.
    let (mut vanishing, _) = wss(&server);
    echo_works(&mut vanishing, "about to vanish");
    let stream = vanishing.get_mut();
    stream.conn.writer().write_all(&[0x81, 0x85, 1, 2, 3, 4, b'h', b'e', b'l', b'l', b'o']).unwrap();
    let mut record = Vec::new();
    stream.conn.write_tls(&mut record).unwrap();
    stream.sock.inner.write_all(&record[..record.len() / 2]).unwrap();
    stream.sock.inner.shutdown(Shutdown::Both).unwrap();
    wait_until("the vanished peer's close", || server.closed().iter().any(|c| !c.clean));
    echo_works(&mut healthy, "after the vanished peer");
    assert_eq!(server.closed().len(), 1, "only the vanished peer ended");
}

#[test]
fn a_tls_peer_that_stops_reading_is_a_slow_consumer() {
    let config = Config { max_queued_bytes: 256 << 10, close_timeout: Duration::from_secs(30), ..Config::default() };
    let server = start(config);
    let (mut fast, _) = wss(&server);
    let (mut slow, _) = wss(&server);
    wait_until("two opens", || server.seen.lock().unwrap().opened.len() == 2);
    let frame = PreparedFrame::binary(&vec![7u8; 64 << 10]);
    for round in 0..400 {
        server.handle.broadcast(frame.clone()).unwrap();
        match fast.read().expect("fast client reads") {
            tungstenite::Message::Binary(data) => assert_eq!(data.len(), 64 << 10, "round {round}"),
            other => panic!("round {round}: {other:?}"),
        }
    }
    let code = loop {
        match slow.read().expect("slow client reads") {
            tungstenite::Message::Close(frame) => break frame.map(|f| u16::from(f.code)),
            _ => continue,
        }
    };
    assert_eq!(code, Some(u16::from(CloseCode::POLICY_VIOLATION)));
    echo_works(&mut fast, "still served");
}

#[test]
fn certificates_reload_without_a_restart() {
    watchdog();
    let dir = std::env::temp_dir().join(format!("wsproto-tls-reload-{}-{}", std::process::id(), next_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let write = |pki: &TestPki| {
        std::fs::write(&cert, &pki.cert_pem).unwrap();
        std::fs::write(&key, &pki.key_pem).unwrap();
    };
    let (first, second) = (TestPki::localhost(), TestPki::localhost());
    write(&first);
    let (tls, reloader) = ServerTls::reloadable(&cert, &key).expect("PEM files");
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerOptions::default()).unwrap().with_tls(tls);
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let thread = std::thread::spawn(move || server.run(TestHandler { seen }).map(drop).expect("server loop"));
    let handshake = |config: &Arc<ClientConfig>| {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut conn = ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp)?;
        }
        Ok::<_, io::Error>((conn, tcp))
    };
    let (first_client, second_client) = (first.client_config(), second.client_config());
    let open = handshake(&first_client).expect("the first certificate");
    assert!(handshake(&second_client).is_err(), "not yet the second");

    // A reload that fails keeps the certificate in use.
    std::fs::write(&key, "not a key").unwrap();
    assert!(reloader.reload().is_err());
    handshake(&first_client).expect("still the first certificate");

    write(&second);
    reloader.reload().expect("reload");
    handshake(&second_client).expect("the second certificate, without a restart");
    assert!(handshake(&first_client).is_err(), "the first is gone for new connections");
    // The connection made before the reload carries on with its session.
    let (mut conn, mut tcp) = open;
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = [0u8; 17];
    stream.read_exact(&mut response).unwrap();
    assert_eq!(&response, b"HTTP/1.1 200 OK\r\n");

    let _ = handle.shutdown();
    thread.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
