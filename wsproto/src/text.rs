//! Shared UTF-8 text: [`Utf8Bytes`], a reference-counted byte buffer known to hold valid UTF-8,
//! and the assembler that builds a received message's payload, validating text as it arrives
//! (RFC 6455 §8.1: fail as soon as the bytes cannot be UTF-8).
//!
//! This is the crate's one module with `unsafe`: viewing validated bytes as `str` without
//! validating them again. The invariant every `unsafe` block below relies on is
//!
//! > the bytes of every [`Utf8Bytes`] are valid UTF-8,
//!
//! and it is kept inside this module: the field is private, and every constructor either
//! validates ([`TryFrom<Bytes>`], [`Assembler::finish`]) or starts from a `str`/`String`.
//! The assembler's buffer is written only through [`Assembler::push`] and
//! [`Assembler::push_masked`], which validate exactly the bytes they append, in order, and
//! append nothing that failed; the validator's failure is for good (`is_complete` stays false);
//! so when it has seen the whole buffer and reports it complete, the buffer is valid UTF-8. Miri runs this module's tests in CI (`scripts/miri.sh`).
#![allow(unsafe_code)]

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::{Bytes, BytesMut};

use crate::event::{Message, MessageKind};
use crate::frame::apply_mask;
use crate::utf8::{InvalidUtf8, Utf8Validator};

/// A text message's payload: valid UTF-8 in a reference-counted buffer ([`Bytes`]), so that a
/// received message shares the connection's read buffer and a message sent to many
/// connections is not copied. Derefs to `str`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Text from a string constant, without a copy.
    pub const fn from_static(text: &'static str) -> Utf8Bytes {
        Utf8Bytes(Bytes::from_static(text.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: the module invariant: a `Utf8Bytes` holds valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The UTF-8 bytes, shared.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The UTF-8 bytes, shared (no copy).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The text as a `String`: without a copy when this is the buffer's only reference and it
    /// was allocated whole (a message received or assembled on its own); otherwise copied.
    pub fn into_string(self) -> String {
        let bytes: Vec<u8> = self.0.into();
        // SAFETY: the module invariant: the bytes are valid UTF-8 (`Vec::from(Bytes)` keeps
        // them as they are, copied or not).
        unsafe { String::from_utf8_unchecked(bytes) }
    }

    /// The byte length of the text.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for Utf8Bytes {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<str> for Utf8Bytes {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<String> for Utf8Bytes {
    /// Takes the string's buffer, without a copy.
    fn from(text: String) -> Self {
        Utf8Bytes(Bytes::from(text.into_bytes()))
    }
}

impl From<&str> for Utf8Bytes {
    /// Copies the text.
    fn from(text: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<&String> for Utf8Bytes {
    /// Copies the text.
    fn from(text: &String) -> Self {
        Utf8Bytes::from(text.as_str())
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Self {
        text.0
    }
}

impl From<Utf8Bytes> for String {
    fn from(text: Utf8Bytes) -> Self {
        text.into_string()
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = InvalidUtf8;

    /// Validates the bytes (no copy).
    fn try_from(bytes: Bytes) -> Result<Self, InvalidUtf8> {
        simdutf8::basic::from_utf8(&bytes).map_err(|_| InvalidUtf8)?;
        Ok(Utf8Bytes(bytes))
    }
}

impl TryFrom<Vec<u8>> for Utf8Bytes {
    type Error = InvalidUtf8;

    /// Validates the bytes (no copy).
    fn try_from(bytes: Vec<u8>) -> Result<Self, InvalidUtf8> {
        Utf8Bytes::try_from(Bytes::from(bytes))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Utf8Bytes {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Utf8Bytes> for str {
    fn eq(&self, other: &Utf8Bytes) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Utf8Bytes> for &str {
    fn eq(&self, other: &Utf8Bytes) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Utf8Bytes> for String {
    fn eq(&self, other: &Utf8Bytes) -> bool {
        self == other.as_str()
    }
}

/// A received data message's payload, built piece by piece as frames (or inflated output)
/// arrive: text is validated as each piece is appended, failing at the first impossible byte.
#[derive(Debug)]
pub(crate) struct Assembler {
    buf: BytesMut,
    /// Text only; `None` for binary.
    utf8: Option<Utf8Validator>,
}

impl Assembler {
    /// An empty payload of `kind`, with room for `capacity` bytes (what is already at hand,
    /// never what the peer merely announced).
    pub(crate) fn new(kind: MessageKind, capacity: usize) -> Assembler {
        let utf8 = (kind == MessageKind::Text).then(Utf8Validator::new);
        Assembler { buf: BytesMut::with_capacity(capacity), utf8 }
    }

    /// Appends `piece`.
    pub(crate) fn push(&mut self, piece: &[u8]) -> Result<(), InvalidUtf8> {
        if let Some(utf8) = self.utf8.as_mut() {
            utf8.feed(piece)?;
        }
        self.buf.extend_from_slice(piece);
        Ok(())
    }

    /// Appends `piece` unmasked with `key`, `offset` bytes into its frame's payload (§5.3).
    pub(crate) fn push_masked(&mut self, piece: &[u8], key: [u8; 4], offset: usize) -> Result<(), InvalidUtf8> {
        let start = self.buf.len();
        self.buf.extend_from_slice(piece);
        let new = &mut self.buf[start..];
        apply_mask(new, key, offset);
        if let Some(utf8) = self.utf8.as_mut() {
            if let Err(error) = utf8.feed(new) {
                // Unvalidated bytes never stay in the buffer.
                self.buf.truncate(start);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Bytes appended so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The whole message: text must end on a code point boundary.
    pub(crate) fn finish(self) -> Result<Message, InvalidUtf8> {
        let bytes = self.buf.freeze();
        match self.utf8 {
            None => Ok(Message::Binary(bytes)),
            Some(utf8) if utf8.is_complete() => {
                // The module invariant holds: every byte went through `utf8`, in order
                // (`push`, `push_masked`), and it ends on a code point boundary.
                Ok(Message::Text(Utf8Bytes(bytes)))
            }
            Some(_) => Err(InvalidUtf8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(kind: MessageKind, pieces: &[&[u8]]) -> Result<Message, InvalidUtf8> {
        let mut assembler = Assembler::new(kind, 0);
        for piece in pieces {
            assembler.push(piece)?;
        }
        assembler.finish()
    }

    #[test]
    fn text_split_inside_a_code_point_assembles() {
        let text = "κόσμε \u{10FFFF}";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let message = assemble(MessageKind::Text, &[a, b]).unwrap();
            assert_eq!(message.as_text(), Some(text));
        }
    }

    #[test]
    fn invalid_or_unfinished_text_never_becomes_utf8_bytes() {
        assert_eq!(assemble(MessageKind::Text, &[b"ok", b"\xff"]), Err(InvalidUtf8));
        assert_eq!(assemble(MessageKind::Text, &[b"ok \xf0\x9f\x98"]), Err(InvalidUtf8));
        assert_eq!(assemble(MessageKind::Text, &[b"\xed\xa0\x80"]), Err(InvalidUtf8));
        assert!(Utf8Bytes::try_from(Bytes::from_static(b"\xc0\xaf")).is_err());
        assert!(Utf8Bytes::try_from(vec![b'a', 0x80]).is_err());
        // Binary takes anything.
        assert_eq!(assemble(MessageKind::Binary, &[b"\xff"]).unwrap().as_bytes(), b"\xff");
    }

    #[test]
    fn nothing_after_a_failure_makes_the_text_valid() {
        // The start of a code point, a byte that cannot continue it, then valid text: the
        // buffer holds only the start, which must never be handed out as text.
        let mut assembler = Assembler::new(MessageKind::Text, 0);
        assembler.push(b"ok \xf0\x9f").unwrap();
        assert_eq!(assembler.push(b"\xff"), Err(InvalidUtf8));
        for _ in 0..4 {
            assert_eq!(assembler.push(b"\x98\x80 more"), Err(InvalidUtf8));
        }
        assert_eq!(assembler.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn a_rejected_masked_piece_leaves_no_bytes_behind() {
        let key = [1, 2, 3, 4];
        let mut masked = b"ab\xffc".to_vec();
        apply_mask(&mut masked, key, 0);
        let mut assembler = Assembler::new(MessageKind::Text, 0);
        assembler.push(b"hi").unwrap();
        assert_eq!(assembler.push_masked(&masked, key, 0), Err(InvalidUtf8));
        assert_eq!(assembler.len(), 2);
        assert_eq!(assembler.finish(), Err(InvalidUtf8));
        // Masked pieces are unmasked from their offset in the frame.
        let mut assembler = Assembler::new(MessageKind::Text, 0);
        assembler.push(b"hi").unwrap();
        let mut masked = "é!".as_bytes().to_vec();
        apply_mask(&mut masked, key, 3);
        assembler.push_masked(&masked, key, 3).unwrap();
        assert_eq!(assembler.finish().unwrap().as_text(), Some("hié!"));
    }

    #[test]
    fn views_and_conversions_keep_the_text() {
        let text = Utf8Bytes::from(String::from("grüße"));
        assert_eq!(text.as_str(), "grüße");
        assert_eq!(&*text, "grüße");
        assert_eq!(text.len(), "grüße".len());
        assert_eq!(text.to_string(), "grüße");
        assert_eq!(format!("{text:?}"), "\"grüße\"");
        let shared = text.clone();
        assert_eq!(shared.into_string(), "grüße");
        assert_eq!(text.into_string(), "grüße");
        assert_eq!(Utf8Bytes::from_static("static").as_str(), "static");
        assert_eq!(Utf8Bytes::from("copied"), "copied");
        assert!(Utf8Bytes::default().is_empty());
        let sliced = Utf8Bytes::try_from(Bytes::from_static("abc €".as_bytes())).unwrap();
        assert_eq!(sliced.as_bytes().as_ref(), "abc €".as_bytes());
    }

    #[test]
    fn a_unique_string_comes_back_without_a_copy() {
        let original = String::from("no copy, please");
        let pointer = original.as_ptr();
        let text = Utf8Bytes::from(original);
        let back = text.into_string();
        assert_eq!(back.as_ptr(), pointer);
    }
}
