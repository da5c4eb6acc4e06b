//! Close status codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

/// A close status code (RFC 6455 §7.4).
///
/// A `u16` newtype rather than an enum, so that application codes (3000-4999) and codes not
/// known to this crate travel unchanged; [`CloseCode::is_sendable`] says which codes may appear
/// on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose for which the connection was established has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: an endpoint is going away (server shutting down, browser leaving the page).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept (e.g. binary where only text is understood).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present. Reserved: never sent in a close frame.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame. Reserved: never sent in a close frame.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a message's data was inconsistent with its type (invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected the server to negotiate an extension it did not.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition (also used here for a keep-alive timeout).
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later, e.g. the server is overloaded (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1015: the TLS handshake failed. Reserved: never sent in a close frame.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may be sent in (and accepted from) a close frame.
    ///
    /// RFC 6455 §7.4.1 defines 1000-1003 and 1007-1011; the IANA registry adds 1012-1014, which
    /// browsers send; 3000-4999 belong to libraries and applications. 1004, 1005, 1006 and 1015
    /// are reserved, everything below 1000 and from 5000 up is invalid.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

/// The longest close reason that fits a control frame: 125 bytes of payload less the code.
pub const MAX_CLOSE_REASON: usize = 123;

/// Why a close frame payload was refused (RFC 6455 §5.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClosePayloadError {
    /// A one-byte payload: a code needs two.
    Truncated,
    /// A code that may not appear on the wire.
    InvalidCode(u16),
    /// The reason is not UTF-8.
    InvalidReason,
}

/// Parses a received close frame payload into its code and reason.
///
/// An empty payload means "no status" (1005) with an empty reason.
pub(crate) fn parse_close_payload(payload: &[u8]) -> Result<(CloseCode, String), ClosePayloadError> {
    match payload {
        [] => Ok((CloseCode::NO_STATUS, String::new())),
        [_] => Err(ClosePayloadError::Truncated),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(ClosePayloadError::InvalidCode(code.0));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ClosePayloadError::InvalidReason)?;
            Ok((code, reason.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_follow_rfc_and_registry() {
        let table: &[(u16, bool)] = &[
            (0, false),
            (999, false),
            (1000, true),
            (1001, true),
            (1002, true),
            (1003, true),
            (1004, false),
            (1005, false),
            (1006, false),
            (1007, true),
            (1011, true),
            (1012, true),
            (1014, true),
            (1015, false),
            (1016, false),
            (2999, false),
            (3000, true),
            (4999, true),
            (5000, false),
            (65535, false),
        ];
        for &(code, ok) in table {
            assert_eq!(CloseCode(code).is_sendable(), ok, "code {code}");
        }
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close_payload(b""), Ok((CloseCode::NO_STATUS, String::new())));
        assert_eq!(parse_close_payload(&[3]), Err(ClosePayloadError::Truncated));
        assert_eq!(parse_close_payload(&[0x03, 0xe8, b'h', b'i']), Ok((CloseCode::NORMAL, "hi".into())));
        assert_eq!(parse_close_payload(&[0x03, 0xed]), Err(ClosePayloadError::InvalidCode(1005)));
        assert_eq!(parse_close_payload(&[0x03, 0xe8, 0xff]), Err(ClosePayloadError::InvalidReason));
    }
}
