//! The server side of the opening handshake (RFC 6455 §4.2): the request it receives, the 101
//! it answers with, and the plain HTTP responses it may send instead.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::extensions::ExtensionOffer;
use super::head::{
    accept_key, check_header, copy_headers, find_header, has_token, header_list, map_httparse_error, write_headers,
    Header, Parsed,
};
use crate::error::{HandshakeError, UsageError};

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
    ) -> Result<Vec<u8>, UsageError> {
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
pub struct OutgoingResponse {
    /// The status code.
    pub status: u16,
    /// Header fields (`Content-Length` and `Connection` are added when sent).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl OutgoingResponse {
    /// A response with this status, no headers and no body.
    pub fn new(status: u16) -> Self {
        OutgoingResponse { status, headers: Vec::new(), body: Vec::new() }
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
        OutgoingResponse::new(400).text(format!("{reason}\n"))
    }

    /// 403 Forbidden: the origin is not allowed.
    pub fn forbidden() -> Self {
        OutgoingResponse::new(403).text("origin not allowed\n")
    }

    /// 426 Upgrade Required with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4).
    pub fn upgrade_required() -> Self {
        OutgoingResponse::new(426)
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .text("WebSocket version 13 required\n")
    }

    /// 503 Service Unavailable: the server is full.
    pub fn service_unavailable() -> Self {
        OutgoingResponse::new(503).header("Retry-After", "5").text("server is full, try again later\n")
    }

    /// The answer a server gives to a handshake error.
    pub fn for_error(error: &HandshakeError) -> Self {
        match error {
            HandshakeError::OriginNotAllowed(_) => OutgoingResponse::forbidden(),
            HandshakeError::UnsupportedVersion(_) => OutgoingResponse::upgrade_required(),
            HandshakeError::NoSubprotocol(supported) => OutgoingResponse::bad_request(&format!(
                "no supported subprotocol offered; this server speaks: {supported}"
            )),
            other => OutgoingResponse::new(other.status().unwrap_or(400)).text(format!("{other}\n")),
        }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, UsageError> {
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

impl super::head::Head for Request {
    fn parse(buf: &[u8], max_headers: usize) -> Result<Parsed<Self>, HandshakeError> {
        Request::parse(buf, max_headers)
    }
}
