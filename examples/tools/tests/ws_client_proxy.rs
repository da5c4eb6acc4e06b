//! `ws-client --proxy-from-env` with the proxy settings in the process environment (set for the
//! child process only): HTTPS_PROXY for wss://, HTTP_PROXY for ws://, NO_PROXY honoured.

use std::process::Command;
use std::time::Duration;

use wsproto::Message;
use wsproto_adapters::mio::{ConnId, Context, Handler, Server, ServerOptions};
use wsproto_adapters::tls::ServerTls;
use wsproto_testkit::proxy::TestProxy;
use wsproto_testkit::tls::TestPki;

struct Echo;

impl Handler for Echo {
    type State = ();
    type Command = ();

    fn on_open(&mut self, _ctx: &mut Context, _id: ConnId) {}

    fn on_message(&mut self, ctx: &mut Context, id: ConnId, message: Message) {
        let _ = ctx.send(id, message);
    }
}

fn serve(tls: Option<ServerTls>) -> u16 {
    let mut server = Server::bind("127.0.0.1:0".parse().unwrap(), ServerOptions::default()).unwrap();
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || server.run(Echo));
    port
}

fn ws_client(url: &str, env: &[(&str, &str)], ca: &std::path::Path) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ws-client"));
    command.args([url, "--proxy-from-env", "--send", "via env", "--ca"]).arg(ca);
    for name in
        ["http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"]
    {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("ws-client runs");
    assert!(output.status.success(), "{url}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn proxy_settings_come_from_the_environment() {
    wsproto_testkit::process_watchdog("ws-client proxy tests", Duration::from_secs(120));
    let pki = TestPki::localhost();
    let dir = std::env::temp_dir().join(format!("ws-client-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let plain = serve(None);
    let secure = serve(Some(ServerTls::from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).unwrap()));
    let http = TestProxy::http(Some(("me", "pw")));
    let socks = TestProxy::socks5(None);
    let https_proxy = format!("http://me:pw@{}", http.addr);
    let env = [("HTTPS_PROXY", https_proxy.as_str()), ("http_proxy", &socks.url("socks5"))];

    assert_eq!(ws_client(&format!("wss://localhost:{secure}/"), &env, &ca), "via env\n");
    assert_eq!(ws_client(&format!("ws://localhost:{plain}/"), &env, &ca), "via env\n");
    assert_eq!(http.tunnels(), [format!("localhost:{secure}")]);
    assert_eq!(socks.tunnels(), [format!("localhost:{plain}")]);

    let bypass = [env[0], env[1], ("NO_PROXY", "localhost")];
    assert_eq!(ws_client(&format!("wss://localhost:{secure}/"), &bypass, &ca), "via env\n");
    assert_eq!(http.tunnels().len(), 1, "NO_PROXY: reached directly");
    std::fs::remove_dir_all(&dir).unwrap();
}
