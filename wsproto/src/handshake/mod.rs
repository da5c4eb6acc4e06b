//! The opening handshake (RFC 6455 §4): shared head handling (`head`), the server side
//! (`server`, §4.2), the client side (`client`, §4.1), extension offers (`extensions`, §9.1)
//! and URLs (`url`, §3).
//!
//! Parsing is incremental: the end of a head is searched for once per byte, and the head is
//! parsed (and allocated) only once it is complete; the caller bounds how much it buffers.

mod client;
mod extensions;
mod head;
mod server;
mod url;

pub use client::{OutgoingRequest, Response};
pub use extensions::ExtensionOffer;
#[cfg(test)]
use head::Parsed;
pub use head::{accept_key, Header};
pub(crate) use head::{HeadReader, HeadStatus};
pub use server::{Accept, OutgoingResponse, Request};
pub use url::WsUrl;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{HandshakeError, UsageError};

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
        let mut req = OutgoingRequest::new("example.com", "/chat");
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
        let mut req = OutgoingRequest::new("example.com", "/");
        req.headers.push(("X-Evil".into(), "a\r\nInjected: yes".into()));
        assert!(matches!(req.encode("k"), Err(UsageError::InvalidHeader(_))));
        let resp = OutgoingResponse::new(200).header("Bad Name", "x");
        assert!(resp.encode().is_err());
    }

    #[test]
    fn rejections_carry_their_headers() {
        let text = |r: OutgoingResponse| String::from_utf8(r.encode().unwrap()).unwrap();
        assert!(text(OutgoingResponse::upgrade_required()).contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(text(OutgoingResponse::forbidden()).starts_with("HTTP/1.1 403 Forbidden\r\n"));
        assert!(text(OutgoingResponse::service_unavailable()).starts_with("HTTP/1.1 503 "));
        assert!(text(OutgoingResponse::for_error(&HandshakeError::TooLarge(8192))).starts_with("HTTP/1.1 431 "));
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

    #[test]
    fn userinfo_is_refused_with_a_message_that_says_so() {
        for url in ["ws://user:pw@host/", "wss://user@host:443/chat", "ws://@host"] {
            let error = WsUrl::parse(url).unwrap_err();
            assert!(error.contains("userinfo"), "{url}: {error}");
        }
    }
}
