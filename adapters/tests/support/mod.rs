//! Shared by the TLS and proxy tests: an echo handler and mio echo servers over TLS (with a
//! test certificate) and plain TCP, shut down when dropped.
#![allow(dead_code)]

use std::time::Duration;

use wsproto::Message;
use wsproto_adapters::mio::{ConnId, Context, Handle, Handler, Server, ServerOptions};
use wsproto_adapters::tls::ServerTls;
use wsproto_testkit::tls::TestPki;

/// Echoes every message.
pub struct Echo;

impl Handler for Echo {
    type State = ();
    type Command = ();

    fn on_open(&mut self, _ctx: &mut Context, _id: ConnId) {}

    fn on_message(&mut self, ctx: &mut Context, id: ConnId, message: Message) {
        let _ = ctx.send(id, message);
    }
}

/// The server side of `pki`'s leaf certificate.
pub fn server_tls(pki: &TestPki) -> ServerTls {
    ServerTls::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).expect("the test certificate")
}

/// A mio echo server on a loopback port, over TLS if `tls`; shut down when dropped.
pub struct EchoServer {
    pub port: u16,
    handle: Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    pub fn start(tls: Option<ServerTls>) -> Self {
        wsproto_testkit::process_watchdog("TLS and proxy tests", Duration::from_secs(120));
        let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerOptions::default()).unwrap();
        if let Some(tls) = tls {
            server = server.with_tls(tls);
        }
        let port = server.local_addr().unwrap().port();
        let handle = server.handle();
        let thread = std::thread::spawn(move || server.run(Echo).map(drop).expect("server loop"));
        EchoServer { port, handle, thread: Some(thread) }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
