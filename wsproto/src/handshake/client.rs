//! The client side of the opening handshake (RFC 6455 §4.1): the request it sends and the
//! server's response it checks.

use super::extensions::{split_outside_quotes, ExtensionOffer};
use super::head::{
    accept_key, check_header, copy_headers, find_header, has_token, header_list, is_token, map_httparse_error,
    write_headers, Header, Parsed,
};
use crate::error::{HandshakeError, UsageError};

/// What a client sends in its upgrade request (RFC 6455 §4.1).
#[derive(Debug, Clone, Default)]
pub struct OutgoingRequest {
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

impl OutgoingRequest {
    /// A request for `target` on `host`.
    pub fn new(host: impl Into<String>, target: impl Into<String>) -> Self {
        OutgoingRequest { host: host.into(), target: target.into(), ..Default::default() }
    }

    /// The request head with this key.
    pub(crate) fn encode(&self, key: &str) -> Result<Vec<u8>, UsageError> {
        let target = if self.target.is_empty() { "/" } else { self.target.as_str() };
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UsageError::InvalidHeader("request target".into()));
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
                return Err(UsageError::InvalidHeader(format!("subprotocol {bad}")));
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
    pub(crate) fn validate(&self, key: &str, request: &OutgoingRequest) -> Result<(), HandshakeError> {
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

impl super::head::Head for Response {
    fn parse(buf: &[u8], max_headers: usize) -> Result<Parsed<Self>, HandshakeError> {
        Response::parse(buf, max_headers)
    }
}
