//! The opening handshake (RFC 6455 §4): request and response heads, the accept key,
//! subprotocol and extension headers, ready-made rejections.
//!
//! Parsing is restartable (httparse): an incomplete head answers "need more", never an error,
//! and the caller bounds how much it buffers.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::error::{HandshakeError, SendError};

/// The GUID that RFC 6455 §1.3 appends to the key before hashing.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2, step 5.4).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// One header field as received: the name as sent, the value as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name.
    pub name: String,
    /// The field value, without surrounding white space.
    pub value: Vec<u8>,
}

/// Header lookups shared by requests and responses.
fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(&h.value).ok())
}

/// Every comma-separated element of every `name` field, trimmed, empty ones skipped
/// (RFC 9110 §5.6.1 list syntax; several fields of one name form one list).
fn header_list<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(&h.value).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    header_list(headers, name).any(|v| v.eq_ignore_ascii_case(token))
}

fn copy_headers(parsed: &[httparse::Header<'_>]) -> Vec<Header> {
    parsed.iter().map(|h| Header { name: h.name.to_owned(), value: h.value.trim_ascii().to_vec() }).collect()
}

/// Outcome of trying to parse a head from a buffer.
pub(crate) enum Parsed<T> {
    /// Need more bytes.
    Partial,
    /// The head and how many bytes it took.
    Complete(T, usize),
}

fn map_httparse_error(e: httparse::Error, max_headers: usize) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders(max_headers),
        other => HandshakeError::Malformed(other.to_string()),
    }
}

/// An HTTP request head received by a server: an upgrade request, or a plain request that the
/// application may answer on the same port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    target: String,
    minor_version: u8,
    headers: Vec<Header>,
}

impl Request {
    pub(crate) fn parse(buf: &[u8], max_headers: usize) -> Result<Parsed<Request>, HandshakeError> {
        let mut storage = vec![httparse::EMPTY_HEADER; max_headers];
        let mut req = httparse::Request::new(&mut storage);
        match req.parse(buf).map_err(|e| map_httparse_error(e, max_headers))? {
            httparse::Status::Partial => Ok(Parsed::Partial),
            httparse::Status::Complete(len) => {
                let request = Request {
                    method: req.method.unwrap_or_default().to_owned(),
                    target: req.path.unwrap_or_default().to_owned(),
                    minor_version: req.version.unwrap_or_default(),
                    headers: copy_headers(req.headers),
                };
                Ok(Parsed::Complete(request, len))
            }
        }
    }

    /// The method, e.g. `GET`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent, e.g. `/chat?room=1`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The target's path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target.as_str(), |(path, _)| path)
    }

    /// The target's query, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// All header fields, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first value of a header field (case-insensitive name), if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The `Host` header.
    pub fn host(&self) -> Option<&str> {
        self.header("host")
    }

    /// The `Origin` header, sent by browsers (RFC 6455 §4.1, §10.2).
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    /// The subprotocols the client offers, in its order of preference.
    pub fn subprotocols(&self) -> Vec<&str> {
        header_list(&self.headers, "sec-websocket-protocol").collect()
    }

    /// The extensions the client offers (RFC 6455 §9.1), in its order of preference.
    pub fn extensions(&self) -> Vec<ExtensionOffer> {
        ExtensionOffer::parse_all(&self.headers)
    }

    /// Whether this asks for a WebSocket upgrade (`Upgrade: websocket`) rather than being a
    /// plain HTTP request.
    pub fn is_upgrade(&self) -> bool {
        has_token(&self.headers, "upgrade", "websocket")
    }

    /// Checks an upgrade request against RFC 6455 §4.2.1 and answers its key.
    pub(crate) fn validate_upgrade(&self) -> Result<&str, HandshakeError> {
        if self.method != "GET" {
            return Err(HandshakeError::BadRequest("method must be GET"));
        }
        if self.minor_version < 1 {
            return Err(HandshakeError::BadRequest("HTTP/1.1 or later required"));
        }
        if self.host().is_none() {
            return Err(HandshakeError::BadRequest("missing Host header"));
        }
        if !has_token(&self.headers, "connection", "upgrade") {
            return Err(HandshakeError::BadRequest("Connection header must include upgrade"));
        }
        let mut keys = self.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"));
        let key = match (keys.next(), keys.next()) {
            (Some(key), None) => std::str::from_utf8(&key.value).ok(),
            _ => None,
        };
        let key = key
            .filter(|k| BASE64.decode(k).is_ok_and(|raw| raw.len() == 16))
            .ok_or(HandshakeError::BadRequest("Sec-WebSocket-Key must be base64 of 16 bytes"))?;
        match self.header("sec-websocket-version") {
            None => return Err(HandshakeError::BadRequest("missing Sec-WebSocket-Version")),
            Some("13") => {}
            Some(other) => return Err(HandshakeError::UnsupportedVersion(other.to_owned())),
        }
        Ok(key)
    }
}

/// One offered or accepted extension with its parameters (RFC 6455 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order, each with its value (quotes removed) if it has one.
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// Parses every `Sec-WebSocket-Extensions` field. Malformed elements are skipped: an
    /// extension we cannot read is an extension we do not accept.
    pub(crate) fn parse_all(headers: &[Header]) -> Vec<ExtensionOffer> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
            .filter_map(|h| std::str::from_utf8(&h.value).ok())
            .flat_map(split_outside_quotes(','))
            .filter_map(|element| ExtensionOffer::parse(&element))
            .collect()
    }

    fn parse(element: &str) -> Option<ExtensionOffer> {
        let mut parts = split_outside_quotes(';')(element).into_iter();
        let name = parts.next()?.trim().to_owned();
        if !is_token(&name) {
            return None;
        }
        let mut params = Vec::new();
        for part in parts {
            let part = part.trim();
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => {
                    let v = v.trim();
                    let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                    (k.trim(), Some(v.to_owned()))
                }
                None => (part, None),
            };
            if !is_token(key) {
                return None;
            }
            params.push((key.to_owned(), value));
        }
        Some(ExtensionOffer { name, params })
    }
}

/// Splits on `sep` except inside double quotes.
fn split_outside_quotes(sep: char) -> impl Fn(&str) -> Vec<String> {
    move |s: &str| {
        let mut out = Vec::new();
        let mut current = String::new();
        let mut quoted = false;
        for c in s.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    current.push(c);
                }
                c if c == sep && !quoted => out.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        if !current.trim().is_empty() {
            out.push(current);
        }
        out
    }
}

/// An HTTP token (RFC 9110 §5.6.2), the syntax of header names, subprotocols and extensions.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_header(name: &str, value: &str) -> Result<(), SendError> {
    if !is_token(name) || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(SendError::InvalidHeader(name.to_owned()));
    }
    Ok(())
}

fn write_headers(out: &mut Vec<u8>, headers: &[(String, String)]) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// How the application accepts an upgrade request.
#[derive(Debug, Clone, Default)]
pub struct Accept {
    /// The subprotocol to choose; `None` lets the config's
    /// [`SubprotocolPolicy`](crate::SubprotocolPolicy) choose among the client's offers.
    pub subprotocol: Option<String>,
    /// Extra header fields for the 101 response (e.g. `Set-Cookie`).
    pub headers: Vec<(String, String)>,
}

impl Accept {
    /// Accept with the config's subprotocol policy and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Choose this subprotocol (it must be one the client offered).
    pub fn subprotocol(mut self, name: impl Into<String>) -> Self {
        self.subprotocol = Some(name.into());
        self
    }

    /// Add a header field to the 101 response.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The 101 response head (RFC 6455 §4.2.2, step 5).
    pub(crate) fn encode(
        &self,
        key: &str,
        subprotocol: Option<&str>,
        extensions: Option<&str>,
    ) -> Result<Vec<u8>, SendError> {
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
        out.extend_from_slice(b"Sec-WebSocket-Accept: ");
        out.extend_from_slice(accept_key(key.as_bytes()).as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(protocol) = subprotocol {
            out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            out.extend_from_slice(protocol.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(extensions) = extensions {
            out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
            out.extend_from_slice(extensions.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        write_headers(&mut out, &self.headers);
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }
}

/// An HTTP response that is not an upgrade: a rejection of a handshake, or the answer to a
/// plain HTTP request. Sent with `Content-Length` and `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header fields (`Content-Length` and `Connection` are added when sent).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with this status, no headers and no body.
    pub fn new(status: u16) -> Self {
        HttpResponse { status, headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header field.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a plain-text body (with its `Content-Type`).
    pub fn text(self, body: impl Into<String>) -> Self {
        let mut response = self.header("Content-Type", "text/plain; charset=utf-8");
        response.body = body.into().into_bytes();
        response
    }

    /// Sets a body of the given content type.
    pub fn body(self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        let mut response = self.header("Content-Type", content_type);
        response.body = body.into();
        response
    }

    /// 400 Bad Request, saying why.
    pub fn bad_request(reason: &str) -> Self {
        HttpResponse::new(400).text(format!("{reason}\n"))
    }

    /// 403 Forbidden: the origin is not allowed.
    pub fn forbidden() -> Self {
        HttpResponse::new(403).text("origin not allowed\n")
    }

    /// 426 Upgrade Required with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).
    pub fn upgrade_required() -> Self {
        HttpResponse::new(426)
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .text("WebSocket version 13 required\n")
    }

    /// 503 Service Unavailable: the server is full.
    pub fn service_unavailable() -> Self {
        HttpResponse::new(503).header("Retry-After", "5").text("server is full, try again later\n")
    }

    /// The answer a server gives to a handshake error.
    pub fn for_error(error: &HandshakeError) -> Self {
        match error {
            HandshakeError::OriginNotAllowed(_) => HttpResponse::forbidden(),
            HandshakeError::UnsupportedVersion(_) => HttpResponse::upgrade_required(),
            HandshakeError::NoSubprotocol(supported) => {
                HttpResponse::bad_request(&format!("no supported subprotocol offered; this server speaks: {supported}"))
            }
            other => HttpResponse::new(other.status().unwrap_or(400)).text(format!("{other}\n")),
        }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, SendError> {
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        let mut out = Vec::with_capacity(128 + self.body.len());
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", self.status, reason_phrase(self.status)).as_bytes());
        write_headers(&mut out, &self.headers);
        out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        Ok(out)
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// What a client sends in its upgrade request (RFC 6455 §4.1).
#[derive(Debug, Clone, Default)]
pub struct ClientRequest {
    /// The `Host` header, e.g. `example.com:8080`.
    pub host: String,
    /// The request target, e.g. `/chat?room=1`.
    pub target: String,
    /// The `Origin` header, if any (browsers always send one).
    pub origin: Option<String>,
    /// Subprotocols to offer, most preferred first.
    pub subprotocols: Vec<String>,
    /// Extension offers, each a full element of `Sec-WebSocket-Extensions`. The server may only
    /// choose among these (RFC 6455 §4.1 step 5).
    pub extensions: Vec<String>,
    /// Extra header fields (e.g. `Authorization`, `Cookie`).
    pub headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `target` on `host`.
    pub fn new(host: impl Into<String>, target: impl Into<String>) -> Self {
        ClientRequest { host: host.into(), target: target.into(), ..Default::default() }
    }

    /// The request head with this key.
    pub(crate) fn encode(&self, key: &str) -> Result<Vec<u8>, SendError> {
        let target = if self.target.is_empty() { "/" } else { self.target.as_str() };
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(SendError::InvalidHeader("request target".into()));
        }
        let mut headers: Vec<(String, String)> = vec![
            ("Host".into(), self.host.clone()),
            ("Upgrade".into(), "websocket".into()),
            ("Connection".into(), "Upgrade".into()),
            ("Sec-WebSocket-Key".into(), key.into()),
            ("Sec-WebSocket-Version".into(), "13".into()),
        ];
        if let Some(origin) = &self.origin {
            headers.push(("Origin".into(), origin.clone()));
        }
        if !self.subprotocols.is_empty() {
            if let Some(bad) = self.subprotocols.iter().find(|p| !is_token(p)) {
                return Err(SendError::InvalidHeader(format!("subprotocol {bad}")));
            }
            headers.push(("Sec-WebSocket-Protocol".into(), self.subprotocols.join(", ")));
        }
        if !self.extensions.is_empty() {
            headers.push(("Sec-WebSocket-Extensions".into(), self.extensions.join(", ")));
        }
        headers.extend(self.headers.iter().cloned());
        for (name, value) in &headers {
            check_header(name, value)?;
        }
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(format!("GET {target} HTTP/1.1\r\n").as_bytes());
        write_headers(&mut out, &headers);
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }
}

/// The server's answer to a client's upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<Header>,
}

impl Response {
    pub(crate) fn parse(buf: &[u8], max_headers: usize) -> Result<Parsed<Response>, HandshakeError> {
        let mut storage = vec![httparse::EMPTY_HEADER; max_headers];
        let mut res = httparse::Response::new(&mut storage);
        match res.parse(buf).map_err(|e| map_httparse_error(e, max_headers))? {
            httparse::Status::Partial => Ok(Parsed::Partial),
            httparse::Status::Complete(len) => {
                let response = Response { status: res.code.unwrap_or_default(), headers: copy_headers(res.headers) };
                Ok(Parsed::Complete(response, len))
            }
        }
    }

    /// The status code (101 for an accepted upgrade).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// All header fields, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first value of a header field (case-insensitive name), if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The subprotocol the server chose.
    pub fn subprotocol(&self) -> Option<&str> {
        self.header("sec-websocket-protocol")
    }

    /// The extensions the server chose.
    pub fn extensions(&self) -> Vec<ExtensionOffer> {
        ExtensionOffer::parse_all(&self.headers)
    }

    /// Checks a response against RFC 6455 §4.1 (the client's steps 1-6).
    pub(crate) fn validate(&self, key: &str, request: &ClientRequest) -> Result<(), HandshakeError> {
        if self.status != 101 {
            return Err(HandshakeError::Status(self.status));
        }
        if !has_token(&self.headers, "upgrade", "websocket") {
            return Err(HandshakeError::BadResponse("Upgrade header must be websocket"));
        }
        if !has_token(&self.headers, "connection", "upgrade") {
            return Err(HandshakeError::BadResponse("Connection header must include upgrade"));
        }
        if self.header("sec-websocket-accept") != Some(accept_key(key.as_bytes()).as_str()) {
            return Err(HandshakeError::BadResponse("Sec-WebSocket-Accept does not match the key"));
        }
        let chosen: Vec<&str> = header_list(&self.headers, "sec-websocket-protocol").collect();
        match chosen.as_slice() {
            [] => {}
            [one] if request.subprotocols.iter().any(|p| p == one) => {}
            [one] => return Err(HandshakeError::SubprotocolNotOffered((*one).to_owned())),
            _ => return Err(HandshakeError::BadResponse("more than one subprotocol chosen")),
        }
        let offered: Vec<String> = request
            .extensions
            .iter()
            .flat_map(|e| split_outside_quotes(',')(e))
            .filter_map(|e| split_outside_quotes(';')(&e).first().map(|n| n.trim().to_ascii_lowercase()))
            .collect();
        if let Some(ext) = header_list(&self.headers, "sec-websocket-extensions")
            .filter_map(|e| e.split(';').next().map(str::trim))
            .find(|name| !offered.iter().any(|o| o.eq_ignore_ascii_case(name)))
        {
            return Err(HandshakeError::ExtensionNotOffered(ext.to_owned()));
        }
        Ok(())
    }
}

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
        if host.is_empty() || host.contains('@') {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_key_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    fn parse_request(raw: &str) -> Request {
        match Request::parse(raw.as_bytes(), 64) {
            Ok(Parsed::Complete(r, n)) => {
                assert_eq!(n, raw.len());
                r
            }
            _ => panic!("request did not parse: {raw:?}"),
        }
    }

    const GOOD: &str = "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v3\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo; a=\"1,2\"\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn request_accessors() {
        let r = parse_request(GOOD);
        assert_eq!(r.path(), "/chat");
        assert_eq!(r.query(), Some("room=1"));
        assert_eq!(r.origin(), Some("http://example.com"));
        assert_eq!(r.subprotocols(), ["chat", "superchat", "v3"]);
        let ext = r.extensions();
        assert_eq!(ext.len(), 2);
        assert_eq!(ext[0].name, "permessage-deflate");
        assert_eq!(ext[0].params, [("client_max_window_bits".to_owned(), None)]);
        assert_eq!(ext[1].params, [("a".to_owned(), Some("1,2".to_owned()))]);
        assert!(r.is_upgrade());
        assert_eq!(r.validate_upgrade(), Ok("dGhlIHNhbXBsZSBub25jZQ=="));
    }

    #[test]
    fn request_validation_table() {
        let cases: &[(&str, &str, Option<u16>)] = &[
            ("GET ", "POST ", Some(400)),
            ("HTTP/1.1", "HTTP/1.0", Some(400)),
            ("Host: server.example.com\r\n", "", Some(400)),
            ("keep-alive, Upgrade", "keep-alive", Some(400)),
            ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==", Some(400)),
            ("dGhlIHNhbXBsZSBub25jZQ==", "not base64!", Some(400)),
            ("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", Some(426)),
            ("Sec-WebSocket-Version: 13\r\n", "", Some(400)),
            ("Upgrade: websocket", "Upgrade: WebSocket", None),
            ("Connection: keep-alive, Upgrade", "connection: UPGRADE", None),
        ];
        for (from, to, status) in cases {
            let raw = GOOD.replacen(from, to, 1);
            let got = parse_request(&raw).validate_upgrade().err().and_then(|e| e.status());
            assert_eq!(got, *status, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn partial_and_oversized_heads() {
        for cut in 0..GOOD.len() {
            assert!(matches!(Request::parse(&GOOD.as_bytes()[..cut], 64), Ok(Parsed::Partial)), "cut {cut}");
        }
        assert_eq!(Request::parse(GOOD.as_bytes(), 3).err(), Some(HandshakeError::TooManyHeaders(3)));
        assert!(matches!(
            Request::parse(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 8),
            Err(HandshakeError::Malformed(_))
        ));
    }

    #[test]
    fn client_request_and_response_validation() {
        let mut req = ClientRequest::new("example.com", "/chat");
        req.subprotocols = vec!["chat".into()];
        req.extensions = vec!["x-offered; p=1".into()];
        let head = String::from_utf8(req.encode("dGhlIHNhbXBsZSBub25jZQ==").unwrap()).unwrap();
        assert!(head.starts_with("GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
        let parsed = parse_request(&head);
        assert_eq!(parsed.validate_upgrade(), Ok("dGhlIHNhbXBsZSBub25jZQ=="));

        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
        let check = |extra: &str| {
            let raw = format!("{ok}{extra}\r\n");
            let Ok(Parsed::Complete(res, _)) = Response::parse(raw.as_bytes(), 64) else { panic!() };
            res.validate("dGhlIHNhbXBsZSBub25jZQ==", &req)
        };
        assert_eq!(check(""), Ok(()));
        assert_eq!(check("Sec-WebSocket-Protocol: chat\r\n"), Ok(()));
        assert_eq!(check("Sec-WebSocket-Extensions: x-offered\r\n"), Ok(()));
        assert_eq!(
            check("Sec-WebSocket-Protocol: other\r\n"),
            Err(HandshakeError::SubprotocolNotOffered("other".into()))
        );
        assert_eq!(
            check("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            Err(HandshakeError::ExtensionNotOffered("permessage-deflate".into()))
        );
        let bad_accept = ok.replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAA");
        let Ok(Parsed::Complete(res, _)) = Response::parse(format!("{bad_accept}\r\n").as_bytes(), 64) else {
            panic!()
        };
        assert!(matches!(res.validate("dGhlIHNhbXBsZSBub25jZQ==", &req), Err(HandshakeError::BadResponse(_))));
        let Ok(Parsed::Complete(res, _)) = Response::parse(b"HTTP/1.1 403 Forbidden\r\n\r\n", 64) else { panic!() };
        assert_eq!(res.validate("k", &req), Err(HandshakeError::Status(403)));
    }

    #[test]
    fn header_injection_is_refused() {
        let mut req = ClientRequest::new("example.com", "/");
        req.headers.push(("X-Evil".into(), "a\r\nInjected: yes".into()));
        assert!(matches!(req.encode("k"), Err(SendError::InvalidHeader(_))));
        let resp = HttpResponse::new(200).header("Bad Name", "x");
        assert!(resp.encode().is_err());
    }

    #[test]
    fn rejections_carry_their_headers() {
        let text = |r: HttpResponse| String::from_utf8(r.encode().unwrap()).unwrap();
        assert!(text(HttpResponse::upgrade_required()).contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text(HttpResponse::forbidden()).starts_with("HTTP/1.1 403 Forbidden\r\n"));
        assert!(text(HttpResponse::service_unavailable()).starts_with("HTTP/1.1 503 "));
        assert!(text(HttpResponse::for_error(&HandshakeError::TooLarge(8192))).starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn urls() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/runCase?case=1&agent=x").unwrap();
        assert_eq!(
            (u.secure, u.host.as_str(), u.port, u.target.as_str()),
            (false, "127.0.0.1", 9001, "/runCase?case=1&agent=x")
        );
        assert_eq!(u.host_header(), "127.0.0.1:9001");
        let u = WsUrl::parse("WSS://example.com").unwrap();
        assert_eq!((u.secure, u.port, u.target.as_str(), u.host_header()), (true, 443, "/", "example.com".into()));
        let u = WsUrl::parse("ws://[::1]:80?x").unwrap();
        assert_eq!((u.host.as_str(), u.target.as_str(), u.host_header()), ("::1", "/?x", "[::1]".into()));
        assert!(WsUrl::parse("http://x").is_err());
        assert!(WsUrl::parse("ws://x:99999").is_err());
        assert!(WsUrl::parse("ws://x/#frag").is_err());
    }
}
