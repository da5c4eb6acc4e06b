//! The JSON messages of the `chat.v1` protocol (see `protocol.md` beside this crate): what a
//! client may send, what the server sends, and the rules on a message's fields.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wsproto::PreparedFrame;

/// The subprotocol of this version of the JSON protocol. A `chat.v2` would be added beside it.
pub const SUBPROTOCOL: &str = "chat.v1";

/// The longest nickname, in characters.
pub const MAX_NICK_CHARS: usize = 32;

/// The longest chat or whisper text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Messages a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ClientMessage {
    Join {
        nick: String,
        /// The last message id the client saw: it gets the messages after it first.
        #[serde(default)]
        resume: Option<u64>,
    },
    Say {
        text: String,
    },
    Whisper {
        to: String,
        text: String,
    },
    Users,
    Draw(Stroke),
    Clear,
}

/// Why a client's text is not a [`ClientMessage`]: the `error` message's code and text.
pub(crate) type Malformed = (&'static str, String);

impl ClientMessage {
    /// Reads one client message, telling apart text that is not JSON, an unknown `type` and a
    /// known type with wrong fields.
    pub(crate) fn parse(text: &str) -> Result<ClientMessage, Malformed> {
        let parsed: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(_) => return Err(("bad_json", "message is not valid JSON".into())),
        };
        let Some(kind) = parsed.get("type").and_then(Value::as_str).map(str::to_owned) else {
            return Err(("bad_json", "message must be an object with a string \"type\"".into()));
        };
        if !matches!(kind.as_str(), "join" | "say" | "whisper" | "users" | "draw" | "clear") {
            return Err(("unknown_type", format!("unknown message type {kind:?}")));
        }
        serde_json::from_value(parsed).map_err(|e| ("bad_message", format!("malformed {kind:?} message: {e}")))
    }
}

/// A segment drawn on the board; coordinates are fractions of the board's size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Stroke {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    color: String,
    width: f64,
}

impl Stroke {
    /// Coordinates in [0, 1], a `#rrggbb` colour and a width of 1-50.
    pub(crate) fn is_valid(&self) -> bool {
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        let color = self.color.len() == 7
            && self.color.starts_with('#')
            && self.color[1..].bytes().all(|b| b.is_ascii_hexdigit());
        [self.x0, self.y0, self.x1, self.y1].into_iter().all(unit)
            && color
            && self.width.is_finite()
            && (1.0..=50.0).contains(&self.width)
    }
}

/// A stroke as kept on the board and relayed: who drew it, too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BoardStroke {
    pub(crate) from: String,
    #[serde(flatten)]
    pub(crate) stroke: Stroke,
}

/// Messages the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ServerMessage<'a> {
    Welcome { nick: &'a str, users: Vec<&'a str>, board: &'a VecDeque<BoardStroke> },
    Joined { nick: &'a str },
    Left { nick: &'a str, reason: &'a str },
    Message { id: u64, from: &'a str, text: &'a str, ts: u64 },
    Whisper { from: &'a str, to: &'a str, text: &'a str, ts: u64 },
    Users { users: Vec<&'a str> },
    Draw(&'a BoardStroke),
    Clear { from: &'a str },
    Error { code: &'a str, message: &'a str },
}

impl ServerMessage<'_> {
    /// The message as one text frame, encoded once for however many members it goes to.
    pub(crate) fn frame(&self) -> PreparedFrame {
        // Serialising these types cannot fail: no maps with non-string keys, no failing impls.
        PreparedFrame::text(&serde_json::to_string(self).unwrap_or_default())
    }
}

/// Checks a requested nickname: trimmed, 1-32 characters, no control characters.
pub fn validate_nick(raw: &str) -> Result<String, &'static str> {
    let nick = raw.trim();
    let chars = nick.chars().count();
    if chars == 0 {
        return Err("nickname is empty");
    }
    if chars > MAX_NICK_CHARS {
        return Err("nickname is longer than 32 characters");
    }
    if nick.chars().any(char::is_control) {
        return Err("nickname has control characters");
    }
    Ok(nick.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_rules() {
        assert_eq!(validate_nick("  alice "), Ok("alice".into()));
        assert_eq!(validate_nick(&"é".repeat(32)), Ok("é".repeat(32)));
        assert!(validate_nick(&"é".repeat(33)).is_err());
        assert!(validate_nick("   ").is_err());
        assert!(validate_nick("a\u{7}b").is_err());
        assert!(validate_nick("a\nb").is_err());
    }

    #[test]
    fn strokes_are_checked() {
        let good = Stroke { x0: 0.0, y0: 1.0, x1: 0.5, y1: 0.5, color: "#a0B1c2".into(), width: 4.0 };
        assert!(good.is_valid());
        for bad in [
            Stroke { x0: f64::NAN, ..good.clone() },
            Stroke { y1: 1.5, ..good.clone() },
            Stroke { color: "red".into(), ..good.clone() },
            Stroke { color: "#12345g".into(), ..good.clone() },
            Stroke { width: 0.5, ..good.clone() },
            Stroke { width: 51.0, ..good.clone() },
        ] {
            assert!(!bad.is_valid(), "{bad:?}");
        }
    }
}
