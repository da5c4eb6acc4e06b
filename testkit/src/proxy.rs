//! Small proxies on loopback for client tests: HTTP CONNECT (with optional Basic
//! authentication) and SOCKS5 (with optional username/password), each recording the
//! tunnels it opened. They serve until the test process ends.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine;

/// A running proxy.
pub struct TestProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    tunnels: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    /// An HTTP CONNECT proxy; with `credentials`, a request without the right
    /// `Proxy-Authorization: Basic` is answered 407.
    pub fn http(credentials: Option<(&str, &str)>) -> Self {
        let expected = credentials.map(|(user, password)| {
            format!("basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        });
        Self::start(move |client| http_handshake(client, expected.as_deref()))
    }

    /// A SOCKS5 proxy; with `credentials`, only username/password authentication with them.
    pub fn socks5(credentials: Option<(&str, &str)>) -> Self {
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        Self::start(move |client| socks5_handshake(client, credentials.as_ref()))
    }

    /// The targets (`host:port` as the client named them) of the tunnels opened so far.
    pub fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }

    /// The URL to give a client: `http://` or `socks5://` with this address.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    fn start<F>(handshake: F) -> Self
    where
        F: Fn(&mut TcpStream) -> io::Result<Option<(String, u16)>> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let seen = tunnels.clone();
        let handshake = Arc::new(handshake);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let (handshake, seen) = (handshake.clone(), seen.clone());
                thread::spawn(move || {
                    if let Ok(Some((host, port))) = handshake(&mut client) {
                        seen.lock().unwrap().push(format!("{host}:{port}"));
                        let _ = relay(client, &host, port);
                    }
                });
            }
        });
        TestProxy { addr, tunnels }
    }
}

/// Reads a CONNECT head; answers 200 and the target, or an error status and `None`.
fn http_handshake(client: &mut TcpStream, expected: Option<&str>) -> io::Result<Option<(String, u16)>> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || client.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(None);
    };
    if let Some(expected) = expected {
        // The scheme is case-insensitive, the credentials are not.
        let given = lines
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("proxy-authorization"))
            .and_then(|(_, value)| value.trim().split_once(' '))
            .map(|(scheme, credentials)| format!("{} {}", scheme.to_ascii_lowercase(), credentials.trim()));
        if given.as_deref() != Some(expected) {
            client.write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n",
            )?;
            return Ok(None);
        }
    }
    let Some((host, port)) = split_target(target) else {
        client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(None);
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    Ok(Some((host, port)))
}

fn split_target(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_owned(), port.parse().ok()?))
}

/// RFC 1928 (and RFC 1929 when credentials are required); answers the target.
fn socks5_handshake(
    client: &mut TcpStream,
    credentials: Option<&(String, String)>,
) -> io::Result<Option<(String, u16)>> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting)?;
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods)?;
    let wanted = if credentials.is_some() { 2 } else { 0 };
    if greeting[0] != 5 || !methods.contains(&wanted) {
        client.write_all(&[5, 0xFF])?;
        return Ok(None);
    }
    client.write_all(&[5, wanted])?;
    if let Some((user, password)) = credentials {
        let mut version_len = [0u8; 2];
        client.read_exact(&mut version_len)?;
        let mut given_user = vec![0u8; usize::from(version_len[1])];
        client.read_exact(&mut given_user)?;
        let mut len = [0u8];
        client.read_exact(&mut len)?;
        let mut given_password = vec![0u8; usize::from(len[0])];
        client.read_exact(&mut given_password)?;
        if given_user != user.as_bytes() || given_password != password.as_bytes() {
            client.write_all(&[1, 1])?;
            return Ok(None);
        }
        client.write_all(&[1, 0])?;
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request)?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip)?;
            Ipv4Addr::from(ip).to_string()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip)?;
            Ipv6Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8];
            client.read_exact(&mut len)?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return Ok(None),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    if request[1] != 1 {
        client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0])?;
        return Ok(None);
    }
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    Ok(Some((host, u16::from_be_bytes(port))))
}

/// Copies both ways between the client and the target until either side ends.
fn relay(client: TcpStream, host: &str, port: u16) -> io::Result<()> {
    let server = TcpStream::connect((host, port))?;
    let (mut client_read, mut server_write) = (client.try_clone()?, server.try_clone()?);
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut server_write);
        let _ = server_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut server_read, mut client_write) = (server, client);
    let _ = io::copy(&mut server_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Write);
    let _ = upstream.join();
    Ok(())
}
