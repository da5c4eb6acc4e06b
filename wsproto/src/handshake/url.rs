//! `ws://` and `wss://` URLs (RFC 6455 §3), taken apart for the client.

/// A `ws://` or `wss://` URL taken apart for the client (RFC 6455 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the adapter must wrap the stream in TLS.
    pub secure: bool,
    /// The host name or address, without brackets for IPv6.
    pub host: String,
    /// The port (default 80 or 443).
    pub port: u16,
    /// The path and query, at least `/`.
    pub target: String,
}

impl WsUrl {
    /// Parses `ws://host[:port][/path][?query]` (or `wss://`). Fragments are not allowed.
    pub fn parse(url: &str) -> Result<WsUrl, &'static str> {
        let (secure, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "ws://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "wss://") {
            (true, rest)
        } else {
            return Err("URL must start with ws:// or wss://");
        };
        if rest.contains('#') {
            return Err("URL must not have a fragment");
        }
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            // RFC 6455 §3 has no userinfo, and a client would otherwise drop it silently.
            return Err("URL must not contain userinfo (user:password@): send credentials in a header");
        }
        let default_port = if secure { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in host")?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| "invalid port")?,
                None if after.is_empty() => default_port,
                None => return Err("invalid host"),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().map_err(|_| "invalid port")?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err("invalid host");
        }
        Ok(WsUrl { secure, host, port, target })
    }

    /// The `Host` header value: the port is left out when it is the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.secure { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}
