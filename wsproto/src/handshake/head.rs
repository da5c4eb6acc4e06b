//! What request and response heads share (RFC 6455 §4, RFC 9110): header fields and their
//! list syntax, tokens, the accept key, and the incremental reader that finds the end of a
//! head before anything is parsed or allocated.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::error::{HandshakeError, UsageError};

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
pub(super) fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(&h.value).ok())
}

/// Every comma-separated element of every `name` field, trimmed, empty ones skipped
/// (RFC 9110 §5.6.1 list syntax; several fields of one name form one list).
pub(super) fn header_list<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(&h.value).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

pub(super) fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    header_list(headers, name).any(|v| v.eq_ignore_ascii_case(token))
}

pub(super) fn copy_headers(parsed: &[httparse::Header<'_>]) -> Vec<Header> {
    parsed.iter().map(|h| Header { name: h.name.to_owned(), value: h.value.trim_ascii().to_vec() }).collect()
}

/// Outcome of trying to parse a head from a buffer.
pub(crate) enum Parsed<T> {
    /// Need more bytes.
    Partial,
    /// The head and how many bytes it took.
    Complete(T, usize),
}

pub(super) fn map_httparse_error(e: httparse::Error, max_headers: usize) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders(max_headers),
        other => HandshakeError::Malformed(other.to_string()),
    }
}

/// An HTTP token (RFC 9110 §5.6.2), the syntax of header names, subprotocols and extensions.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(super) fn check_header(name: &str, value: &str) -> Result<(), UsageError> {
    if !is_token(name) || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(UsageError::InvalidHeader(name.to_owned()));
    }
    Ok(())
}

pub(super) fn write_headers(out: &mut Vec<u8>, headers: &[(String, String)]) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// A head type the [`HeadReader`] can parse: [`Request`](super::Request) on a server,
/// [`Response`](super::Response) on a client.
pub(crate) trait Head: Sized {
    /// Parses a head from `buf`, which holds at least one candidate end of head.
    fn parse(buf: &[u8], max_headers: usize) -> Result<Parsed<Self>, HandshakeError>;
}

/// What [`HeadReader::push`] found.
pub(crate) enum HeadStatus<T> {
    /// The head is not complete yet.
    Partial,
    /// The head, parsed; the bytes behind it stay in the reader ([`HeadReader::take_rest`]).
    Complete(T),
    /// The head is malformed or longer than the limit.
    Failed(HandshakeError),
}

/// Collects the bytes of a request or response head and finds where it ends, for both roles.
///
/// Each byte is examined once, whatever the reads' sizes: the search resumes where the last
/// read stopped. Nothing is parsed, and so nothing allocated beyond the buffer itself, until a
/// blank line after the start of the head has arrived; leading empty lines (which RFC 9112
/// §2.2 lets a server ignore) do not count as one. The one exception is the first control
/// byte, which no valid head holds: the parser is asked then, so that garbage fails at once.
/// A head of n bytes sent one byte at a time therefore costs O(n), and the outcome does not
/// depend on how the bytes were split into reads.
#[derive(Debug, Default)]
pub(crate) struct HeadReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the end of the head.
    scanned: usize,
    /// Whether a byte other than CR or LF has been seen: only then can a blank line end a head.
    started: bool,
    /// Whether a control byte was already handed to the parser (see [`push`](Self::push)).
    control_checked: bool,
    /// Test instrumentation: bytes examined and parse attempts, to show the cost is linear.
    #[cfg(test)]
    examined: usize,
    #[cfg(test)]
    parses: usize,
}

impl HeadReader {
    /// Takes bytes read; answers whether the head is complete. Only the first `limit` bytes
    /// can hold a head we accept, so only they are searched: the outcome does not depend on how
    /// the bytes were split into reads.
    pub(crate) fn push<T: Head>(&mut self, data: &[u8], limit: usize, max_headers: usize) -> HeadStatus<T> {
        self.buf.extend_from_slice(data);
        let window = self.buf.len().min(limit);
        while self.scanned < window {
            let i = self.scanned;
            self.scanned += 1;
            #[cfg(test)]
            {
                self.examined += 1;
            }
            let byte = self.buf[i];
            if byte != b'\n' && byte != b'\r' {
                self.started = true;
                // A control byte has no place in a head (RFC 9110 §5.5, RFC 9112 §3): let the
                // parser name the error now rather than wait for a blank line that may never
                // come. Once only, so that bytes it tolerates cannot make this quadratic.
                let control = (byte < 0x20 && byte != b'\t') || byte == 0x7f;
                if control && !self.control_checked {
                    self.control_checked = true;
                    #[cfg(test)]
                    {
                        self.parses += 1;
                    }
                    if let Err(error) = T::parse(&self.buf[..=i], max_headers) {
                        return HeadStatus::Failed(error);
                    }
                }
                continue;
            }
            let blank_line = byte == b'\n'
                && (i.checked_sub(1).is_some_and(|j| self.buf[j] == b'\n')
                    || i.checked_sub(2).is_some_and(|j| &self.buf[j..i] == b"\n\r"));
            if !(self.started && blank_line) {
                continue;
            }
            #[cfg(test)]
            {
                self.parses += 1;
            }
            match T::parse(&self.buf[..=i], max_headers) {
                Ok(Parsed::Complete(head, len)) => {
                    self.buf.drain(..len);
                    self.scanned = 0;
                    return HeadStatus::Complete(head);
                }
                Ok(Parsed::Partial) => {}
                Err(error) => return HeadStatus::Failed(error),
            }
        }
        if self.buf.len() > limit {
            HeadStatus::Failed(HandshakeError::TooLarge(limit))
        } else {
            HeadStatus::Partial
        }
    }

    /// Bytes held: the partial head, or once it is complete what arrived behind it.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Holds bytes that arrive while the application decides on a complete head (a client
    /// must wait for the answer, RFC 6455 §4.1, so these are bounded by the caller).
    pub(crate) fn hold(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The bytes that arrived behind the head, emptying the reader.
    pub(crate) fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::Request;

    #[test]
    fn a_long_head_sent_byte_by_byte_is_examined_once_and_parsed_once() {
        let mut head = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Filler: "
            .to_vec();
        head.resize(8 * 1024 - 4, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        let mut reader = HeadReader::default();
        let mut done = None;
        for (i, byte) in head.iter().enumerate() {
            match reader.push::<Request>(std::slice::from_ref(byte), 8 * 1024, 64) {
                HeadStatus::Partial => assert!(i + 1 < head.len(), "incomplete at the end"),
                HeadStatus::Complete(request) => done = Some(request),
                HeadStatus::Failed(error) => panic!("{error}"),
            }
        }
        assert_eq!(done.expect("complete").path(), "/chat");
        assert_eq!(reader.examined, head.len(), "every byte examined exactly once");
        assert_eq!(reader.parses, 1, "parsed (and allocated) only once the head was complete");
    }

    #[test]
    fn a_control_byte_fails_at_once_without_a_blank_line() {
        let mut reader = HeadReader::default();
        let status = reader.push::<Request>(b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\x10\r\n", 8192, 64);
        assert!(matches!(status, HeadStatus::Failed(HandshakeError::Malformed(_))));
    }

    #[test]
    fn leading_empty_lines_do_not_end_a_head() {
        let mut reader = HeadReader::default();
        let status = reader.push::<Request>(b"\r\n\r\n\r\n", 8192, 64);
        assert!(matches!(status, HeadStatus::Partial));
        assert_eq!(reader.parses, 0);
    }
}
