//! Proxies for clients: an HTTP CONNECT tunnel (RFC 9110 §9.3.6, with Basic authentication,
//! RFC 7617) or SOCKS5 (RFC 1928, username/password RFC 1929), chosen by the caller or from
//! the environment's `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY`. Either carries
//! `ws://` and `wss://` alike: the tunnel is a TCP stream to the server, and TLS runs through
//! it end to end.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use super::connect::connect_tcp;
use super::Error;

/// The longest proxy answer head read (a CONNECT response's status line and headers).
const MAX_RESPONSE_HEAD: usize = 8 << 10;

/// Which kind of proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT.
    Http,
    /// SOCKS5; the proxy resolves the server's name.
    Socks5,
}

/// A proxy to reach servers through: `http://[user:password@]host[:port]` (port 80 by
/// default; a bare `host:port` is taken as HTTP) or `socks5://` / `socks5h://` (port 1080).
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl Proxy {
    /// Parses a proxy URL (see the type's docs). User and password may be percent-encoded.
    pub fn parse(url: &str) -> Result<Proxy, Error> {
        let invalid = |why: &str| Error::Proxy { proxy: redact(url), message: why.to_owned() };
        let (kind, rest, default_port) = match url.split_once("://") {
            None => (ProxyKind::Http, url, 80),
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" => (ProxyKind::Http, rest, 80),
                "socks5" | "socks5h" => (ProxyKind::Socks5, rest, 1080),
                "https" => return Err(invalid("TLS to the proxy itself (https://) is not supported")),
                _ => return Err(invalid("the scheme must be http://, socks5:// or socks5h://")),
            },
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode =
                    |s: &str| percent_decode(s).ok_or_else(|| invalid("bad percent-encoding in the user info"));
                (Some((decode(user)?, decode(password)?)), hostport)
            }
            None => (None, authority),
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| invalid("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            Some(port) => port.parse().map_err(|_| invalid("the port is not a number from 0 to 65535"))?,
            None => default_port,
        };
        Ok(Proxy { kind, host: host.to_owned(), port, credentials })
    }

    /// Which kind of proxy this is.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's `host:port`, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Opens a TCP stream to `host:port` through the proxy; `timeout` bounds the connect to
    /// the proxy and each read and write of the proxy's handshake.
    pub(crate) fn tunnel(&self, host: &str, port: u16, timeout: Option<Duration>) -> Result<TcpStream, Error> {
        let mut stream = connect_tcp(&self.host, self.port, timeout)
            .map_err(|e| self.error(format!("cannot reach the proxy: {e}")))?;
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)?;
        match self.kind {
            ProxyKind::Http => self.http_connect(&mut stream, host, port)?,
            ProxyKind::Socks5 => self.socks5_connect(&mut stream, host, port)?,
        }
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        tracing::debug!(proxy = %self.address(), "tunnel to {host}:{port} open");
        Ok(stream)
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Proxy { proxy: self.address(), message: message.into() }
    }

    fn io_error(&self, error: io::Error) -> Error {
        self.error(format!("the proxy's handshake failed: {error}"))
    }

    fn http_connect(&self, stream: &mut TcpStream, host: &str, port: u16) -> Result<(), Error> {
        let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some((user, password)) = &self.credentials {
            request.push_str(&format!("Proxy-Authorization: Basic {}\r\n", base64(format!("{user}:{password}"))));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).map_err(|e| self.io_error(e))?;
        // Byte by byte: what follows the head is the server's, not ours to consume.
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_RESPONSE_HEAD {
                return Err(self.error("the proxy's answer head is too long"));
            }
            let mut byte = [0u8];
            match stream.read(&mut byte) {
                Ok(0) => return Err(self.error("the proxy closed the connection before answering")),
                Ok(_) => head.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e)),
            }
        }
        let status_line = head.split(|&b| b == b'\r').next().unwrap_or_default();
        let status_line = String::from_utf8_lossy(status_line);
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let status: Option<u16> = parts.next().and_then(|s| s.parse().ok());
        match status {
            Some(200..=299) if version.starts_with("HTTP/1.") => Ok(()),
            Some(407) => Err(self.error(format!(
                "the proxy wants authentication ({status_line}){}",
                if self.credentials.is_some() { ": the credentials were refused" } else { "" }
            ))),
            Some(_) => Err(self.error(format!("CONNECT {target} answered: {status_line}"))),
            None => Err(self.error(format!("not an HTTP answer: {status_line:.80}"))),
        }
    }

    fn socks5_connect(&self, stream: &mut TcpStream, host: &str, port: u16) -> Result<(), Error> {
        let io = |e| self.io_error(e);
        // Greeting: no authentication, or username/password when we have credentials.
        let greeting: &[u8] = if self.credentials.is_some() { &[5, 2, 0, 2] } else { &[5, 1, 0] };
        stream.write_all(greeting).map_err(io)?;
        let mut choice = [0u8; 2];
        stream.read_exact(&mut choice).map_err(io)?;
        match (choice, &self.credentials) {
            ([5, 0], _) => {}
            ([5, 2], Some((user, password))) => {
                let (user, password) = (user.as_bytes(), password.as_bytes());
                let (Ok(user_len), Ok(password_len)) = (u8::try_from(user.len()), u8::try_from(password.len())) else {
                    return Err(self.error("SOCKS5 user and password are limited to 255 bytes each"));
                };
                let mut auth = vec![1, user_len];
                auth.extend_from_slice(user);
                auth.push(password_len);
                auth.extend_from_slice(password);
                stream.write_all(&auth).map_err(io)?;
                let mut status = [0u8; 2];
                stream.read_exact(&mut status).map_err(io)?;
                if status[1] != 0 {
                    return Err(self.error("the SOCKS5 proxy refused the user and password"));
                }
            }
            ([5, 0xFF], _) | ([5, 2], None) => {
                return Err(self.error("the SOCKS5 proxy accepts none of our authentication methods"))
            }
            _ => return Err(self.error("not a SOCKS5 answer")),
        }
        let mut request = vec![5, 1, 0];
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => {
                request.push(1);
                request.extend_from_slice(&ip.octets());
            }
            Ok(IpAddr::V6(ip)) => {
                request.push(4);
                request.extend_from_slice(&ip.octets());
            }
            Err(_) => {
                let Ok(len) = u8::try_from(host.len()) else {
                    return Err(self.error("a SOCKS5 host name is limited to 255 bytes"));
                };
                request.push(3);
                request.push(len);
                request.extend_from_slice(host.as_bytes());
            }
        }
        request.extend_from_slice(&port.to_be_bytes());
        stream.write_all(&request).map_err(io)?;
        let mut reply = [0u8; 4];
        stream.read_exact(&mut reply).map_err(io)?;
        if reply[0] != 5 {
            return Err(self.error("not a SOCKS5 answer"));
        }
        if reply[1] != 0 {
            return Err(self.error(format!("SOCKS5 CONNECT to {host}:{port} failed: {}", socks5_reply(reply[1]))));
        }
        // The bound address, which we do not need, then the port.
        let address_len = match reply[3] {
            1 => 4,
            4 => 16,
            3 => {
                let mut len = [0u8];
                stream.read_exact(&mut len).map_err(io)?;
                usize::from(len[0])
            }
            _ => return Err(self.error("a SOCKS5 answer with an unknown address type")),
        };
        let mut bound = [0u8; 255 + 2];
        stream.read_exact(&mut bound[..address_len + 2]).map_err(io)?;
        Ok(())
    }
}

/// RFC 1928 §6 reply codes.
fn socks5_reply(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown error",
    }
}

/// The proxy settings of an environment: which proxy serves `ws://` and `wss://`, and which
/// hosts are reached directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// For `ws://` (`http_proxy` / `HTTP_PROXY`, else `all_proxy` / `ALL_PROXY`).
    pub http: Option<String>,
    /// For `wss://` (`https_proxy` / `HTTPS_PROXY`, else `all_proxy` / `ALL_PROXY`).
    pub https: Option<String>,
    /// Hosts reached directly, comma-separated (`no_proxy` / `NO_PROXY`): `*` for all, a
    /// name for it and its subdomains (a leading dot is allowed), an IP address, each with an
    /// optional `:port`.
    pub no_proxy: Option<String>,
}

impl ProxyEnv {
    /// Reads the process environment (lowercase names first, as curl does).
    pub fn from_env() -> Self {
        let var = |names: &[&str]| {
            names.iter().find_map(|name| std::env::var(name).ok().filter(|value| !value.trim().is_empty()))
        };
        let all = var(&["all_proxy", "ALL_PROXY"]);
        ProxyEnv {
            http: var(&["http_proxy", "HTTP_PROXY"]).or_else(|| all.clone()),
            https: var(&["https_proxy", "HTTPS_PROXY"]).or(all),
            no_proxy: var(&["no_proxy", "NO_PROXY"]),
        }
    }

    /// The proxy for a server, or `None` to connect directly.
    pub fn proxy_for(&self, host: &str, port: u16, secure: bool) -> Result<Option<Proxy>, Error> {
        let Some(url) = (if secure { &self.https } else { &self.http }) else { return Ok(None) };
        if self.bypasses(host, port) {
            return Ok(None);
        }
        Proxy::parse(url.trim()).map(Some)
    }

    fn bypasses(&self, host: &str, port: u16) -> bool {
        let Some(list) = &self.no_proxy else { return false };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        list.split(',').map(str::trim).filter(|entry| !entry.is_empty()).any(|entry| {
            if entry == "*" {
                return true;
            }
            let (pattern, entry_port) = split_port(entry);
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let pattern = pattern.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
            let pattern = pattern.to_ascii_lowercase();
            host == pattern || (pattern.parse::<IpAddr>().is_err() && host.ends_with(&format!(".{pattern}")))
        })
    }
}

/// `name:port` or `[v6]:port` into its parts; a bare IPv6 address has no port.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(bracketed) = entry.strip_prefix('[') {
        if let Some((host, after)) = bracketed.split_once(']') {
            return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (entry, None),
    }
}

/// A proxy URL without its password, for messages.
fn redact(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((userinfo, rest)) => {
            let (scheme, user) = userinfo.split_once("://").map_or(("", userinfo), |(s, u)| (s, u));
            let user = user.split(':').next().unwrap_or_default();
            let scheme = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
            format!("{scheme}{user}:***@{rest}")
        }
        None => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Standard base64 with padding (RFC 4648 §4), for Basic credentials.
fn base64(text: String) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(text.len().div_ceil(3) * 4);
    for chunk in text.as_bytes().chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(plain.to_owned()), encoded);
        }
    }

    #[test]
    fn proxy_urls() {
        let p = Proxy::parse("http://us%40er:p%3Ass@proxy.example:3128/").unwrap();
        assert_eq!((p.kind, p.host.as_str(), p.port), (ProxyKind::Http, "proxy.example", 3128));
        assert_eq!(p.credentials, Some(("us@er".to_owned(), "p:ss".to_owned())));
        assert!(!format!("{p:?}").contains("p:ss"), "Debug never shows the password");
        assert_eq!(Proxy::parse("proxy.example").unwrap().port, 80);
        let s = Proxy::parse("socks5h://[::1]").unwrap();
        assert_eq!((s.kind, s.host.as_str(), s.port), (ProxyKind::Socks5, "::1", 1080));
        assert_eq!(s.address(), "[::1]:1080");
        for bad in ["https://proxy:443", "ftp://x", "http://:80", "http://x:99999", "http://a%zz@x"] {
            assert!(matches!(Proxy::parse(bad), Err(Error::Proxy { .. })), "{bad}");
        }
        match Proxy::parse("ftp://user:secret@x") {
            Err(error) => assert!(!error.to_string().contains("secret"), "{error}"),
            Ok(_) => panic!("ftp accepted"),
        }
    }

    #[test]
    fn the_environment_picks_by_scheme_and_no_proxy() {
        let env = ProxyEnv {
            http: Some("http://plain:8080".into()),
            https: Some("socks5://secure:1080".into()),
            no_proxy: Some(" .internal.example, localhost:9000 ,10.0.0.1,[::1]".into()),
        };
        let host_of = |host: &str, port, secure| env.proxy_for(host, port, secure).unwrap().map(|p| p.host);
        assert_eq!(host_of("example.org", 80, false).as_deref(), Some("plain"));
        assert_eq!(host_of("example.org", 443, true).as_deref(), Some("secure"));
        assert_eq!(host_of("internal.example", 443, true), None);
        assert_eq!(host_of("a.b.INTERNAL.example.", 443, true), None);
        assert_eq!(host_of("notinternal.example", 443, true).as_deref(), Some("secure"));
        assert_eq!(host_of("localhost", 9000, false), None);
        assert_eq!(host_of("localhost", 9001, false).as_deref(), Some("plain"));
        assert_eq!(host_of("10.0.0.1", 80, false), None);
        assert_eq!(host_of("110.0.0.1", 80, false).as_deref(), Some("plain"));
        assert_eq!(host_of("::1", 80, false), None);
        let all = ProxyEnv { no_proxy: Some("*".into()), ..env.clone() };
        assert_eq!(all.proxy_for("example.org", 80, false).unwrap(), None);
        let none = ProxyEnv::default();
        assert_eq!(none.proxy_for("example.org", 80, false).unwrap(), None);
    }
}
